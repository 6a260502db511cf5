"""Errors in query text: each names the place (line, column, the line itself with a caret).

All of them are ``CircuitQLError``s, so the CLI prints the message and exits with code 2.
"""

from __future__ import annotations

from circuitql.errors import CircuitQLError
from circuitql.grammar.ast import Pos, SourceText


class QueryError(CircuitQLError):
    """A query or library file that cannot be run, pointing at the offending spot."""

    def __init__(
        self,
        what: str,
        *,
        source: SourceText | None = None,
        pos: Pos | None = None,
        fix: str | None = None,
    ) -> None:
        self.line = pos.line if pos else None
        self.column = pos.column if pos else None
        self.source_line = _line_of(source, pos)
        where = None
        if source is not None or pos is not None:
            origin = source.origin if source else "<query>"
            where = f"{origin}, line {pos.line}, column {pos.column}" if pos else origin
        excerpt = ""
        if self.source_line is not None and pos is not None:
            caret = " " * (pos.column - 1) + "^"
            excerpt = f"\n    {self.source_line}\n    {caret}"
        super().__init__(what + excerpt, where=where, fix=fix)


def _line_of(source: SourceText | None, pos: Pos | None) -> str | None:
    if source is None or pos is None:
        return None
    lines = source.text.splitlines()
    if 1 <= pos.line <= len(lines):
        return lines[pos.line - 1].expandtabs(1)
    return ""


class QuerySyntaxError(QueryError):
    """The text is not in the language. ``expected`` lists what would have been accepted."""

    def __init__(
        self,
        what: str,
        *,
        source: SourceText | None = None,
        pos: Pos | None = None,
        expected: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        self.expected = expected
        self.hint = hint
        if expected:
            what = f"{what}; expected {_one_of(expected)}"
        super().__init__(what, source=source, pos=pos, fix=hint)


def _one_of(items: tuple[str, ...]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


class UnknownCircuitError(QueryError):
    """A circuit name that is neither in the library nor defined in the query."""

    def __init__(
        self,
        name: str,
        suggestions: tuple[str, ...],
        *,
        source: SourceText | None = None,
        pos: Pos | None = None,
    ) -> None:
        self.name = name
        self.suggestions = suggestions
        if suggestions:
            fix = f"did you mean {_one_of(tuple(repr(s) for s in suggestions))}?"
        else:
            fix = "`SHOW CIRCUITS` lists the library; define new circuits with CIRCUIT"
        super().__init__(f"unknown circuit {name!r}", source=source, pos=pos, fix=fix)


class CircuitDefinitionError(QueryError):
    """A circuit that parses but cannot mean anything: an undefined unit, a cycle, an EXPECT
    over an undeclared variable, inputs and outputs that do not line up."""

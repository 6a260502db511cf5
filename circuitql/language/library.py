"""The library of known circuits, written in the query language itself (``library/*.cql``).

Keeping the library in the language means every entry is parsed, compiled and checked by the
same code as a user's query, and that ``circuitql library`` can print definitions a user can
copy and edit. Each entry has a docstring (what it computes, where it comes from) and an
EXAMPLE: a hand-wired network that satisfies its EXPECT, used by tests and by the model zoo.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from circuitql.cache import cached, content_key
from circuitql.grammar import ast
from circuitql.grammar.ast_json import from_json, parser_fingerprint, to_json
from circuitql.grammar.errors import CircuitDefinitionError
from circuitql.grammar.parser import parse
from circuitql.grammar.printer import definition_text
from circuitql.graph import NeuronGraph
from circuitql.language.compile import Compiler, ReferenceExample
from circuitql.language.pattern import Pattern

# Names the public contract promises: ``MATCH <name>`` works for each.
PUBLIC_NAMES = (
    "identity",
    "negation",
    "abs",
    "detector_pair",
    "add",
    "subtract",
    "min",
    "max",
    "min4",
    "less_than",
    "greater_than",
    "is_even",
    "xor",
    "and_gate",
    "or_gate",
    "scale",
)


class Library:
    """Named circuit definitions, compiled on demand; queries are compiled against them by
    ``compile.compile_query``."""

    def __init__(self, definitions: Iterable[ast.CircuitDef]) -> None:
        self._compiler = Compiler(definitions)

    @staticmethod
    def from_texts(texts: Mapping[str, str]) -> Library:
        """A library from ``{origin: text}``; files hold definitions only."""
        return Library(_definitions(texts))

    @property
    def names(self) -> tuple[str, ...]:
        """Every circuit in the library, sorted."""
        return self._compiler.names

    def matching(self, glob: str | None) -> tuple[str, ...]:
        """Names for ``SHOW CIRCUITS 'glob'`` (all of them without a glob)."""
        return tuple(n for n in self.names if glob is None or fnmatch.fnmatchcase(n, glob))

    def definition(self, name: str) -> ast.CircuitDef:
        """The parsed definition, docstring and EXAMPLE included."""
        return self._compiler.definition(name)

    def text(self, name: str) -> str:
        """The definition as query text, docstring included."""
        return definition_text(self.definition(name))

    def pattern(self, name: str) -> Pattern:
        """The circuit compiled, once (later calls share it)."""
        return self._compiler.pattern(name)

    def example(self, name: str) -> ReferenceExample:
        """The circuit's EXAMPLE network, with the parameter values it realises."""
        return self._compiler.example(name)

    @property
    def compiler(self) -> Compiler:
        """The library's definitions as a compiler, for ``compile.compile_query``."""
        return self._compiler


@cache
def builtin_library() -> Library:
    """The library shipped in ``library/*.cql``. Parsing it takes a cold command 0.1 s, so
    its definitions are kept in the cache, keyed by the files and the parser that reads
    them."""
    folder = resources.files("circuitql.language").joinpath("library")
    texts = {
        f"library/{entry.name}": entry.read_text("utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".cql")
    }
    key = content_key(
        LIBRARY_FORMAT, parser_fingerprint(), *(part for item in texts.items() for part in item)
    )

    def use(kept: Any) -> list[ast.CircuitDef]:
        definitions = [from_json(item) for item in kept]
        if not all(isinstance(d, ast.CircuitDef) for d in definitions):
            raise ValueError("the kept library holds something other than definitions")
        return definitions

    return Library(cached("library", key, lambda: [to_json(d) for d in _definitions(texts)], use))


# Bump when what the library cache keeps changes shape.
LIBRARY_FORMAT = "1"


def _definitions(texts: Mapping[str, str]) -> list[ast.CircuitDef]:
    definitions: list[ast.CircuitDef] = []
    for origin, text in texts.items():
        script = parse(text, origin)
        for action in script.actions:
            raise CircuitDefinitionError(
                "a library file holds CIRCUIT definitions only",
                source=ast.SourceText(origin, text),
                pos=action.pos,
                fix="move queries out of the library",
            )
        definitions += script.definitions
    return definitions


def reference_network(name: str) -> NeuronGraph:
    """The hand-wired network of a built-in circuit (inputs ``input:<i>``, other units named
    as in its EXAMPLE), for tests and the model zoo."""
    return builtin_library().example(name).graph

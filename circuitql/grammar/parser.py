"""Query text -> AST. The Lark grammar (query.lark) is parsed LALR(1) with a contextual lexer
and turned into ``circuitql.grammar.ast`` dataclasses by an inline transformer, so no Lark tree
is ever built or handed out.

The transformer also rejects what the grammar cannot: a unit with two activations, an EXPECT
that is not an equation, an unknown function. Those reach the user as ``QuerySyntaxError`` with
the same line, column and caret as a parse error. Whether names refer to anything is decided
later, when a query is compiled (``circuitql.language.compile``).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from circuitql.grammar import ast
from circuitql.grammar.errors import QuerySyntaxError
from circuitql.grammar.lalr import lalr_parser

# Typical mistakes, labelled with the hint shown for them (Lark's ``match_examples`` finds the
# example that fails in the same parser state as the user's query).
COMMON_MISTAKES: dict[str, list[str]] = {
    "MATCH needs a circuit: `MATCH abs`, `MATCH min(a, b) -> y`; `SHOW CIRCUITS` lists them": [
        "MATCH",
        "MATCH IN MODELS 'zoo/*'",
        "MATCH LIMIT 3",
        "MATCH TOLERANCE 0.1",
    ],
    "options go in this order: WHERE, IN MODELS, TOLERANCE, EXACT, LIMIT, TIMEOUT": [
        "MATCH abs LIMIT 3 TOLERANCE 0.1",
        "MATCH abs TIMEOUT 30s LIMIT 3",
        "MATCH abs EXACT TOLERANCE 0.1",
        "MATCH abs LIMIT 3 EXACT",
        "MATCH abs LIMIT 3 IN MODELS 'a'",
        "MATCH abs TOLERANCE 0.1 IN MODELS 'a'",
        "MATCH abs LIMIT 3 WHERE c > 0",
    ],
    "names of models and globs are quoted: IN MODELS 'zoo/*', COMPARE 'a' WITH 'b'": [
        "MATCH abs IN MODELS zoo",
        "COMPARE a WITH 'b'",
        "COMPARE 'a' WITH b",
        "SHOW CIRCUITS min",
    ],
    "TOLERANCE and LIMIT take a number: TOLERANCE 0.05, LIMIT 20": [
        "MATCH abs TOLERANCE high",
        "MATCH abs LIMIT all",
    ],
    "`->` introduces the outputs: `MATCH min(a, b) -> y`, `-> (p, n)` for several": [
        "MATCH min(a, b) y",
        "MATCH min(a, b) -> ",
        "CIRCUIT f(x) y { y = x }",
    ],
    "close every parenthesis, bracket and brace": [
        "MATCH min(a, b",
        "MATCH (abs | negation",
        "CIRCUIT f(x) -> y { y = relu(x }",
        "CIRCUIT f(x) -> y { y = relu(x)",
    ],
    "each unit is `name = expression`; a coefficient needs `*` (2*x, not 2 x)": [
        "CIRCUIT f(x) -> y { y = 2 x }",
        "CIRCUIT f(x) -> y { y }",
        "CIRCUIT f(x) -> y { y relu(x) }",
    ],
    "a circuit body is `{ unit = expression ... }` or `= circuit expression`": [
        "CIRCUIT f(x) -> y y = x",
        "CIRCUIT f(x) -> y",
        "CIRCUIT f",
    ],
    "EXPECT takes equations written with ==: `EXPECT y == abs(x)`": [
        "CIRCUIT f(x) -> y { y = x } EXPECT y = x",
    ],
    "WHERE joins its conditions with AND: `WHERE c > 0 AND c < 4`": [
        "MATCH fold WHERE c > 0, c < 3",
        "MATCH fold WHERE c > 0 c < 3",
        "CIRCUIT f(x) -> y { y = x } WHERE c > 0, c < 1",
    ],
    "repetition counts are written {m}, {m,} or {m,n}: `fold{3,}`": [
        "MATCH fold{}",
        "MATCH fold{,3}",
        "MATCH fold{3,,}",
    ],
    "the census reads `COUNT MODELS WITH circuit GROUP BY property`": [
        "COUNT abs GROUP BY depth",
        "COUNT MODELS abs GROUP BY depth",
        "COUNT MODELS WITH abs",
        "COUNT MODELS WITH abs GROUP depth",
    ],
    'a docstring is closed with """ and comes right before CIRCUIT': [
        '"""unterminated',
        "'doc' CIRCUIT f(x) -> y { y = x }",
    ],
    "a statement starts with MATCH, COUNT MODELS, COMPARE, SHOW CIRCUITS, EXPLAIN or "
    "CIRCUIT: `MATCH abs`, or a library circuit's name alone": [
        "hello world",
        "min(a, b) -> y",
        "7",
    ],
    "probe ranges read `FOR x IN [lo, hi]`, `IN {0, 1}` or `IN INTEGERS [0, 16)`": [
        "CIRCUIT f(x) -> y { y = x } EXPECT y == x FOR x [0, 1]",
        "CIRCUIT f(x) -> y { y = x } EXPECT y == x FOR x IN 0",
        "CIRCUIT f(x) -> y { y = x } EXPECT y == x FOR x IN [0 1]",
    ],
}

_CHARACTER_HINTS = {
    "$": "free parameters are written ?name, as in relu(x - ?c)",
    "^": "there is no power operator; multiply (x*x) or use a number",
    "%": "use mod(x, 2) for a remainder",
    "&": "conditions are joined with AND",
    "!": "`!=` compares; there is no `!` on its own",
    "=": "a unit is defined with `=` and compared with `==`",
    "#": "comments start with //",
}

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "PARAM": "a parameter (?c)",
    "DOCSTRING": "a docstring",
    "CMP": "a comparison",
    "ELLIPSIS": "'...'",
    "$END": "the end of the query",
    "$NEXT": "the next statement",
}
_STATEMENT_STARTS = {"MATCH", "CIRCUIT", "COUNT", "SHOW", "COMPARE", "EXPLAIN"}
_MAX_EXPECTED = 10
# Bounds that keep every later stage (compilation, printing, unrolling) small and non-recursive
# in the worst case: deeper expressions and longer repetitions are not circuits anyone writes.
MAX_DEPTH = 200
MAX_REPEAT = 100


class _Reject(Exception):
    """Raised inside the transformer; ``parse`` adds the source text and re-raises it as a
    QuerySyntaxError (the transformer itself is shared and stateless)."""

    def __init__(self, message: str, pos: ast.Pos | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint


def _at(tok: Token) -> ast.Pos:
    return ast.Pos(tok.line or 0, tok.column or 0)


def _pos_of(node: Any) -> ast.Pos | None:
    if isinstance(node, Token):
        return _at(node)
    return getattr(node, "pos", None)


@cache
def reserved_words() -> frozenset[str]:
    """The keywords, in lower case: never names, whatever their case."""
    return frozenset(
        t.pattern.value.lower()
        for t in _parser().terminals
        if isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()
    )


def _name(tok: Token) -> str:
    """A name, provided it is not a keyword.

    The contextual lexer would read ``in`` as a name in some places and as IN in others;
    reserving keywords everywhere keeps what is a valid name the same in every position.
    """
    if tok.lower() in reserved_words():
        raise _Reject(f"{tok} is a reserved word", _at(tok), f"choose another name, such as {tok}_")
    return str(tok)


def _number(tok: Token) -> float:
    value = float(tok)
    if not math.isfinite(value):
        raise _Reject(f"number {tok} is too large", _at(tok))
    return value


def _whole(tok: Token, what: str, least: int) -> int:
    value = _number(tok)
    if value != int(value) or value < least:
        raise _Reject(f"{what} must be a whole number of at least {least}, not {tok}", _at(tok))
    return int(value)


_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TIMEOUT = 7 * 24 * 3600.0  # a week: longer is a typo, not a search


def _duration(tok: Token) -> float:
    """``30``, ``30s``, ``500ms``, ``2m``, ``1h`` as seconds, above 0 and at most a week."""
    text = str(tok).lower()
    unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
    value = float(text[: len(text) - len(unit)]) * _UNITS.get(unit, 1.0)
    if not 0 < value <= MAX_TIMEOUT:
        raise _Reject(
            f"TIMEOUT must be above 0 and at most a week, not {tok}",
            _at(tok),
            "give seconds, or a number with a unit: 30s, 500ms, 2m, 1h",
        )
    return value


def _count(tok: Token) -> int:
    count = _whole(tok, "a repetition count", 1)
    if count > MAX_REPEAT:
        raise _Reject(
            f"repetition count {count} is above the limit of {MAX_REPEAT}",
            _at(tok),
            "use an open count, {m,}: the engine bounds it by the network's depth",
        )
    return count


_ESCAPE = re.compile(r"\\(.)")


def _string(tok: Token) -> str:
    return _ESCAPE.sub(r"\1", tok[1:-1])


def _nodes(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of an expression, parents first; bounded depth, so no recursion limit."""
    stack: list[tuple[ast.Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Reject(
                f"expression nested more than {MAX_DEPTH} levels deep",
                node.pos,
                "name intermediate units, or split the expression",
            )
        yield node
        if isinstance(node, ast.Call):
            stack += [(a, depth + 1) for a in reversed(node.args)]
        elif isinstance(node, ast.Unary):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, ast.Binary | ast.Compare):
            stack += [(node.right, depth + 1), (node.left, depth + 1)]


def _calls(expr: ast.Expr) -> Iterator[ast.Call]:
    return (n for n in _nodes(expr) if isinstance(n, ast.Call))


def _refs(expr: ast.Expr) -> Iterator[ast.Ref]:
    return (n for n in _nodes(expr) if isinstance(n, ast.Ref))


def _check_depth(expr: ast.CExpr) -> ast.CExpr:
    """Circuit expressions get the same depth bound as arithmetic ones."""
    stack: list[tuple[ast.CExpr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Reject(f"circuit expression nested more than {MAX_DEPTH} levels deep", node.pos)
        if isinstance(node, ast.Alternation):
            stack += [(o, depth + 1) for o in node.options]
        elif isinstance(node, ast.Chain):
            stack += [(p, depth + 1) for p in node.parts]
        elif isinstance(node, ast.Repeat | ast.Group):
            stack.append((node.body, depth + 1))
    return expr


def _check_functions(expr: ast.Expr) -> ast.Expr:
    """Every call in an EXPECT/WHERE/range expression is a known function with its arity."""
    for call in _calls(expr):
        if call.func not in ast.FUNCTIONS:
            close = difflib.get_close_matches(call.func, ast.FUNCTIONS, n=3)
            known = ", ".join(sorted(ast.FUNCTIONS))
            hint = f"did you mean {close[0]}?" if close else f"the functions are {known}"
            raise _Reject(f"unknown function {call.func!r}", call.pos, hint)
        if call.open:
            raise _Reject("`...` only marks open fan-in in a unit definition", call.pos)
        low, high = ast.FUNCTIONS[call.func]
        if len(call.args) < low or (high is not None and len(call.args) > high):
            count = f"{low}" if low == high else f"at least {low}"
            raise _Reject(
                f"{call.func} takes {count} argument{'s' if low > 1 else ''}, not {len(call.args)}",
                call.pos,
            )
    return expr


def _comparison(expr: ast.Expr, clause: str) -> ast.Compare:
    if not isinstance(expr, ast.Compare):
        raise _Reject(
            f"{clause} takes comparisons, and this is not one",
            _pos_of(expr),
            "write a condition such as `c > 0`",
        )
    _check_functions(expr)
    return expr


def _options(items: list[ast.CExpr]) -> tuple[ast.CExpr, ...]:
    """``(a | b) | c`` and ``a | b | c`` are one alternation: associativity is not structure."""
    return tuple(o for i in items for o in (i.options if isinstance(i, ast.Alternation) else (i,)))


def _parts(items: list[ast.CExpr]) -> tuple[ast.CExpr, ...]:
    return tuple(p for i in items for p in (i.parts if isinstance(i, ast.Chain) else (i,)))


def _unit_expr(expr: ast.Expr) -> None:
    """A unit reads plain names, numbers and parameters: no calls, no comparisons, no paths."""
    for call in _calls(expr):
        raise _Reject(
            f"{call.func}(...) inside a unit's sum",
            call.pos,
            "one activation per unit: give the inner unit its own line, p = relu(...)",
        )
    for ref in _refs(expr):
        if ref.index is not None or ref.attrs:
            raise _Reject(f"{ref.qualified} is not a unit name", ref.pos)
    if isinstance(expr, ast.Compare):
        raise _Reject("a unit is a sum, not a comparison", expr.pos)


class _Names(tuple[str, ...]):
    """A list of names that remembers where it starts (for errors about what it defines)."""

    pos: ast.Pos

    def __new__(cls, tokens: list[Token]) -> _Names:
        names = super().__new__(cls, (_name(t) for t in tokens))
        names.pos = _at(tokens[0])
        return names


class _ToAst(Transformer[Token, Any]):
    """Inline callbacks, one per grammar rule: children arrive already converted."""

    # ---- statements ----

    def start(self, items: list[Any]) -> ast.Script:
        return ast.Script(tuple(items))

    def explain(self, items: list[Any]) -> ast.Action:
        return replace(items[0], explain=True)

    def match(self, items: list[Any]) -> ast.Match:
        target, conditions, models, tolerance, exact, limit, timeout = items
        conditions = conditions or ()
        where = tuple(c for c in conditions if not isinstance(c, ast.Pin))
        pins = tuple(c for c in conditions if isinstance(c, ast.Pin))
        return ast.Match(
            target,
            where,
            models,
            tolerance,
            limit,
            pins=pins,
            exact=exact is not None,
            timeout=timeout,
            pos=target.pos,
        )

    def exact(self, items: list[Any]) -> bool:
        return True

    def match_where(self, items: list[Any]) -> tuple[ast.Compare | ast.Pin, ...]:
        return tuple(e if isinstance(e, ast.Pin) else _comparison(e, "WHERE") for e in items)

    def pin(self, items: list[Any]) -> ast.Pin:
        name, neuron = items
        return ast.Pin(str(name), _string(neuron), pos=_at(name))

    def census(self, items: list[Any]) -> ast.Census:
        target, where, models, tolerance, exact, timeout, group_by = items
        return ast.Census(
            target,
            group_by,
            where or (),
            models,
            tolerance,
            exact=exact is not None,
            timeout=timeout,
            pos=target.pos,
        )

    def show(self, items: list[Any]) -> ast.ShowCircuits:
        (pattern,) = items
        return ast.ShowCircuits(None if pattern is None else _string(pattern))

    def compare(self, items: list[Any]) -> ast.CompareModels:
        a, b, tolerance, timeout = items
        return ast.CompareModels(_string(a), _string(b), tolerance, timeout=timeout, pos=_at(a))

    def target(self, items: list[Any]) -> ast.Target:
        expr, inputs, outputs = items
        inputs = None if inputs is None else tuple(inputs)
        return ast.Target(_check_depth(expr), inputs, outputs, pos=expr.pos)

    def outs(self, items: list[Any]) -> tuple[str, ...]:
        (item,) = items
        return (str(item),) if isinstance(item, Token) else tuple(item)

    def names(self, items: list[Token]) -> _Names:
        seen: set[str] = set()
        for tok in items:
            if tok in seen:
                raise _Reject(f"{tok} is listed twice", _at(tok))
            seen.add(tok)
        return _Names(items)

    def models(self, items: list[Token]) -> str:
        return _string(items[0])

    def tolerance(self, items: list[Token]) -> float:
        return _number(items[0])

    def limit(self, items: list[Token]) -> int:
        return _whole(items[0], "LIMIT", 1)

    def timeout(self, items: list[Token]) -> float:
        return _duration(items[0])

    def model_property(self, items: list[Token]) -> str:
        if items[0].type == "STRING":
            return _string(items[0])
        return ".".join(items)

    # ---- circuit expressions ----

    def alternation(self, items: list[Any]) -> ast.Alternation:
        return ast.Alternation(_options(items), pos=items[0].pos)

    def chain(self, items: list[Any]) -> ast.Chain:
        return ast.Chain(_parts(items), pos=items[0].pos)

    def repeat_plus(self, items: list[Any]) -> ast.Repeat:
        return ast.Repeat(items[0], 1, None, pos=items[0].pos)

    def repeat_exact(self, items: list[Any]) -> ast.Repeat:
        count = _count(items[1])
        return ast.Repeat(items[0], count, count, pos=items[0].pos)

    def repeat_range(self, items: list[Any]) -> ast.Repeat:
        body, low_tok, high_tok = items
        low = _count(low_tok)
        high = None if high_tok is None else _count(high_tok)
        if high is not None and high < low:
            raise _Reject(f"repetition {{{low},{high}}} has its bounds reversed", _at(low_tok))
        return ast.Repeat(body, low, high, pos=body.pos)

    def circuit_ref(self, items: list[Token]) -> ast.CircuitRef:
        return ast.CircuitRef(_name(items[0]), pos=_at(items[0]))

    def group(self, items: list[Any]) -> ast.CExpr:
        body, where = items
        return body if where is None else ast.Group(body, where, pos=body.pos)

    # ---- definitions ----

    def circuit_def(self, items: list[Any]) -> ast.CircuitDef:
        doc, name, signature, body, where, expect, example = items
        inputs, outputs = signature if signature is not None else (None, None)
        if isinstance(body, tuple):
            if signature is None:
                raise _Reject(
                    f"circuit {name} has units but no inputs and outputs",
                    _at(name),
                    f"write CIRCUIT {name}(x) -> y {{ ... }}",
                )
            units, expr = body, None
        else:
            units, expr = None, _check_depth(body)
        return ast.CircuitDef(
            name=_name(name),
            inputs=inputs,
            outputs=outputs,
            body=units,
            expr=expr,
            where=where or (),
            expect=expect,
            example=example,
            doc=None if doc is None else inspect.cleandoc(doc[3:-3]),
            pos=_at(name),
        )

    def signature(self, items: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(items[0]), items[1]

    def body(self, items: list[Any]) -> Any:
        return items[0]

    def block(self, items: list[Any]) -> tuple[ast.BodyItem, ...]:
        return tuple(items)

    def unit(self, items: list[Any]) -> ast.BodyItem:
        names, expr = items
        pos = names.pos
        names = tuple(names)
        if isinstance(expr, ast.Call) and expr.func not in ast.ACTIVATIONS:
            for arg in expr.args:
                if not isinstance(arg, ast.Ref) or arg.index is not None or arg.attrs:
                    raise _Reject(
                        f"the inputs of circuit {expr.func} must be unit or input names",
                        _pos_of(arg),
                        "name the sum first: s = a + b, then m = circuit(s, c)",
                    )
            if expr.open:
                raise _Reject("`...` only marks open fan-in of an activation", expr.pos)
            args = tuple(arg.name for arg in expr.args if isinstance(arg, ast.Ref))
            return ast.CallDef(names, expr.func, args, pos=pos)
        if len(names) > 1:
            raise _Reject(
                f"{', '.join(names)} = ... defines several units, but only a circuit call "
                "has several outputs",
                pos,
            )
        if isinstance(expr, ast.Call):
            if len(expr.args) != 1:
                raise _Reject(
                    f"{expr.func} takes one sum, not {len(expr.args)}",
                    expr.pos,
                    f"add the inputs inside one argument: {expr.func}(a + b)",
                )
            _unit_expr(expr.args[0])
            return ast.UnitDef(names[0], ast.ACTIVATIONS[expr.func], expr.args[0], expr.open, pos)
        _unit_expr(expr)
        return ast.UnitDef(names[0], None, expr, False, pos)

    def where(self, items: list[Any]) -> tuple[ast.Compare, ...]:
        return tuple(_comparison(e, "WHERE") for e in items)

    def expect(self, items: list[Any]) -> ast.Expect:
        *equations, domains = items
        for eq in equations:
            if not (
                isinstance(eq, ast.Compare)
                and eq.op == "=="
                and isinstance(eq.left, ast.Ref)
                and eq.left.index is None
                and not eq.left.attrs
            ):
                raise _Reject(
                    "EXPECT takes equations `output == expression`",
                    _pos_of(eq),
                    "write EXPECT y == abs(x)",
                )
            _check_functions(eq.right)
        return ast.Expect(tuple(equations), domains or (), pos=equations[0].pos)

    def domain(self, items: list[ast.Domain]) -> tuple[ast.Domain, ...]:
        return tuple(items)

    def dom(self, items: list[Any]) -> ast.Domain:
        names, *ranges = items
        return ast.Domain(tuple(names), tuple(ranges), pos=names.pos)

    def interval(self, items: list[ast.Expr]) -> ast.Range:
        return ast.Range("interval", tuple(_check_functions(e) for e in items), _pos_of(items[0]))

    def values(self, items: list[ast.Expr]) -> ast.Range:
        return ast.Range("values", tuple(_check_functions(e) for e in items), _pos_of(items[0]))

    def integers(self, items: list[ast.Expr]) -> ast.Range:
        return ast.Range("integers", tuple(_check_functions(e) for e in items), _pos_of(items[0]))

    def example(self, items: list[Any]) -> ast.Example:
        settings, units = items
        return ast.Example(settings or (), units)

    def settings(
        self, items: list[tuple[ast.Ref, ast.Expr]]
    ) -> tuple[tuple[ast.Ref, ast.Expr], ...]:
        return tuple(items)

    def setting(self, items: list[Any]) -> tuple[ast.Ref, ast.Expr]:
        return items[0], _check_functions(items[1])

    # ---- expressions ----

    def comparison(self, items: list[Any]) -> ast.Compare:
        left, op, right = items
        return ast.Compare(str(op), left, right, pos=_pos_of(left))

    def _binary(self, op: str, items: list[Any]) -> ast.Binary:
        return ast.Binary(op, items[0], items[1], pos=_pos_of(items[0]))

    def add(self, items: list[Any]) -> ast.Binary:
        return self._binary("+", items)

    def sub(self, items: list[Any]) -> ast.Binary:
        return self._binary("-", items)

    def mul(self, items: list[Any]) -> ast.Binary:
        return self._binary("*", items)

    def div(self, items: list[Any]) -> ast.Binary:
        return self._binary("/", items)

    def neg(self, items: list[Any]) -> ast.Unary:
        return ast.Unary("-", items[0], pos=_pos_of(items[0]))

    def pos(self, items: list[Any]) -> ast.Unary:
        return ast.Unary("+", items[0], pos=_pos_of(items[0]))

    def number(self, items: list[Token]) -> ast.Num:
        return ast.Num(_number(items[0]), pos=_at(items[0]))

    def param(self, items: list[Token]) -> ast.Param:
        return ast.Param(str(items[0])[1:], pos=_at(items[0]))

    def ref(self, items: list[Any]) -> ast.Ref:
        name, index, *attrs = items
        idx = None if index is None else _whole(index, "an instance number", 1)
        return ast.Ref(_name(name), idx, tuple(_name(a) for a in attrs), pos=_at(name))

    def args(self, items: list[Any]) -> tuple[tuple[ast.Expr, ...], bool]:
        *args, ellipsis = items
        return tuple(args), ellipsis is not None

    def call(self, items: list[Any]) -> ast.Call:
        name, (args, is_open) = items
        return ast.Call(_name(name), args, is_open, pos=_at(name))


@cache
def _parser() -> Lark:
    return lalr_parser("query.lark", _ToAst(), lexer="contextual", maybe_placeholders=True)


# Characters parse reads: parsing is linear in the text, about 20 us a character, so this
# bounds it near 2 s. The built-in library's files are 10,000 together.
MAX_TEXT = 100_000


def parse(text: str, origin: str = "<query>") -> ast.Script:
    """Parse query text (or a library file) into a Script.

    Raises ``QuerySyntaxError`` for anything that is not in the language, and nothing else.
    """
    source = ast.SourceText(origin, text)
    if len(text) > MAX_TEXT:
        raise QuerySyntaxError(
            f"the text is {len(text):,} characters long; at most {MAX_TEXT:,} are read",
            source=ast.SourceText(origin, ""),
            hint="split it into several queries, or several library files",
        )
    try:
        script = _parser().parse(text)
    except _Reject as rej:
        raise QuerySyntaxError(rej.message, source=source, pos=rej.pos, hint=rej.hint) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, source) from None
    assert isinstance(script, ast.Script)
    return ast.Script(tuple(_with_source(s, source) for s in script.statements))


def _with_source(statement: ast.Statement, source: ast.SourceText) -> ast.Statement:
    if isinstance(statement, ast.CircuitDef | ast.Match | ast.Census):
        return replace(statement, source=source)
    return statement


def _syntax_error(err: UnexpectedInput, source: ast.SourceText) -> QuerySyntaxError:
    pos = ast.Pos(err.line, err.column) if err.line and err.line > 0 else _end_pos(source.text)
    if isinstance(err, UnexpectedCharacters):
        at = err.pos_in_stream or 0
        char = source.text[at] if at < len(source.text) else ""
        hint = _CHARACTER_HINTS.get(char) or _hint(err)
        return QuerySyntaxError(
            f"unexpected character {char!r}",
            source=source,
            pos=pos,
            expected=_describe(err.allowed or set()),
            hint=hint,
        )
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        word = str(err.token)
        if word.lower() in reserved_words() and "NAME" in (err.accepts or err.expected):
            return QuerySyntaxError(
                f"{word} is a reserved word",
                source=source,
                pos=pos,
                hint=f"choose another name, such as {word}_",
            )
        what = f"unexpected {_token_words(err.token)}"
        expected = _describe(err.accepts or err.expected)
    else:
        what = "the query ends too early"
        expected = _describe(getattr(err, "expected", None) or set())
    return QuerySyntaxError(what, source=source, pos=pos, expected=expected, hint=_hint(err))


def _end_pos(text: str) -> ast.Pos:
    lines = text.split("\n")
    return ast.Pos(len(lines), len(lines[-1]) + 1)


def _token_words(tok: Token) -> str:
    if tok.type in ("NAME", "NUMBER", "STRING", "PARAM"):
        return f"{_TERMINAL_WORDS[tok.type][2:]} {str(tok)!r}"
    return repr(str(tok))


def _describe(terminals: set[str] | frozenset[str]) -> tuple[str, ...]:
    names = set(terminals)
    if names >= _STATEMENT_STARTS:
        names = (names - _STATEMENT_STARTS - {"SEMICOLON", "DOCSTRING", "$END"}) | {"$NEXT"}
    words = sorted({_terminal_word(t) for t in names})
    if len(words) > _MAX_EXPECTED:
        words = [*words[:_MAX_EXPECTED], "..."]
    return tuple(words)


@cache
def _terminal_word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    if isinstance(pattern, PatternStr):
        return pattern.value.upper() if pattern.value.isalpha() else repr(pattern.value)
    return name


@cache
def _example_failure(text: str) -> UnexpectedInput | None:
    try:
        _parser().parse(text)
    except UnexpectedInput as err:
        return _numbered_state(err)
    except _Reject:
        return None
    return None


def _numbered_state(err: UnexpectedInput) -> UnexpectedInput:
    """Errors the contextual lexer raises carry a parser-state object where ``match_examples``
    expects the state number; give them the number."""
    position = getattr(err.state, "position", None)
    if position is not None:
        err.state = position
    return err


def _replay(text: str) -> Tree[Token]:
    """``match_examples`` parses each example; answer from the cache of their failures."""
    failure = _example_failure(text)
    if failure is not None:
        raise failure.with_traceback(None)  # a fresh traceback: re-raising must not grow it
    return Tree("start", [])


def _hint(err: UnexpectedInput) -> str | None:
    if err.state is None:
        return None
    # The token's type decides between hints for the same parser state: a stray name at
    # the start is not an unclosed docstring.
    label = _numbered_state(err).match_examples(
        _replay, COMMON_MISTAKES, token_type_match_fallback=True
    )
    return None if label is None else str(label)

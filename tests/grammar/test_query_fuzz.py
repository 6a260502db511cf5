"""Property tests: no input makes the parser raise anything but QuerySyntaxError, and printing
any parsed query gives text that parses back to the same AST."""

from __future__ import annotations

import contextlib
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitql.errors import CircuitQLError
from circuitql.grammar import ast
from circuitql.grammar.errors import QuerySyntaxError
from circuitql.grammar.parser import parse, reserved_words
from circuitql.grammar.printer import expr_text, script_text
from circuitql.language import builtin_library
from circuitql.language.compile import compile_query

SAMPLES = [
    "MATCH abs",
    "EXPLAIN MATCH min(a, b) -> y IN MODELS 'zoo/*' TOLERANCE 0.05 LIMIT 20",
    "MATCH (fold WHERE next.c == c / 2){2,} >> fold WHERE fold[1].c > 2",
    "COUNT MODELS WITH xor | and_gate GROUP BY meta.optimizer",
    "SHOW CIRCUITS 'm*'; COMPARE 'a' WITH 'b' TOLERANCE 0.1",
    "CIRCUIT g(x) -> y { h = relu(+x, ...) y = ?k * h - 2 } WHERE k > 0 "
    "EXPECT y == k * relu(x) - 2 FOR x IN [0, 4] MATCH g(u) -> v",
    "CIRCUIT h(a, b) -> (y, z) { m = min(a, b) d = relu(m - ?c) y = d + a z = linear(m) } "
    "WHERE c > 1 EXPECT y == relu(min(a, b) - c) + a, z == min(a, b) MATCH h >> add",
    "CIRCUIT k = (fold WHERE next.c < c){2,3} >> abs | fold EXPECT y == x MATCH k",
]
LIBRARY_TEXTS = [
    entry.read_text("utf-8")
    for entry in resources.files("circuitql.language").joinpath("library").iterdir()
    if entry.name.endswith(".cql")
]
ALPHABET = st.sampled_from(
    [
        *"abcxy019 _.,;:()[]{}<>=+-*/?|'\"\n\t$^",
        *("MATCH ", "CIRCUIT ", "->", ">>", "...", "WHERE ", "EXPECT ", "IN ", "relu("),
        *('"""', "//", "FOR ", "INTEGERS "),
    ]
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_syntax_error(text: str) -> ast.Script | None:
    try:
        return parse(text)
    except QuerySyntaxError:
        return None


@FAST
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_random_text_raises_only_syntax_errors(text: str) -> None:
    parse_or_syntax_error(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SAMPLES + LIBRARY_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "swap"]))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif kind == "insert":
            text = text[:at] + draw(ALPHABET) + text[at:]
        else:
            text = text[:at] + draw(ALPHABET) + text[at + 1 :]
    return text


@FAST
@given(mutated())
def test_mutated_queries_raise_only_syntax_errors_and_compile_only_user_errors(
    text: str,
) -> None:
    script = parse_or_syntax_error(text)
    if script is None or len(script.actions) != 1:
        return
    with contextlib.suppress(CircuitQLError):
        compile_query(script, builtin_library().compiler)


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,4}", fullmatch=True).filter(
    lambda name: name not in reserved_words()
)
NUMBERS = st.floats(min_value=0, max_value=1e20, allow_nan=False, allow_infinity=False)


def expressions() -> st.SearchStrategy[ast.Expr]:
    leaves = st.one_of(
        NUMBERS.map(ast.Num),
        NAMES.map(ast.Ref),
        NAMES.map(ast.Param),
        st.tuples(NAMES, st.integers(1, 9), st.lists(NAMES, min_size=1, max_size=2)).map(
            lambda t: ast.Ref(t[0], t[1], tuple(t[2]))
        ),
    )

    def extend(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        return st.one_of(
            st.tuples(st.sampled_from("+-"), inner).map(lambda t: ast.Unary(*t)),
            st.tuples(st.sampled_from("+-*/"), inner, inner).map(lambda t: ast.Binary(*t)),
            st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), inner, inner).map(
                lambda t: ast.Compare(*t)
            ),
            st.tuples(st.sampled_from(["abs", "relu", "step", "sigmoid"]), inner).map(
                lambda t: ast.Call(t[0], (t[1],))
            ),
            st.tuples(st.sampled_from(["min", "max"]), st.lists(inner, min_size=2, max_size=3)).map(
                lambda t: ast.Call(t[0], tuple(t[1]))
            ),
        )

    return st.recursive(leaves, extend, max_leaves=10)


EXPRESSIONS = expressions()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@FAST
@given(EXPRESSIONS)
def test_printed_expressions_parse_back_to_the_same_tree(expr: ast.Expr) -> None:
    equation = ast.Compare("==", ast.Ref("y"), expr)
    (d,) = parse(f"CIRCUIT f(x) -> y {{ y = x }} EXPECT {expr_text(equation)}").statements
    assert isinstance(d, ast.CircuitDef) and d.expect is not None
    assert d.expect.equations[0].right == expr


def test_library_files_print_and_parse_back_to_the_same_ast() -> None:
    for text in LIBRARY_TEXTS:
        script = parse(text)
        assert parse(script_text(script)) == script


@FAST
@given(mutated())
def test_any_query_that_parses_prints_back_to_itself(text: str) -> None:
    script = parse_or_syntax_error(text)
    if script is not None:
        assert parse(script_text(script)) == script

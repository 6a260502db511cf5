"""Malformed queries: QuerySyntaxError with line, column, the line and a caret, what was
expected, and a hint for the usual mistakes."""

from __future__ import annotations

import pytest

from circuitql.errors import CircuitQLError
from circuitql.grammar.errors import QuerySyntaxError
from circuitql.grammar.parser import COMMON_MISTAKES, parse


def syntax_error(text: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    return info.value


def test_error_names_line_column_and_shows_a_caret() -> None:
    err = syntax_error("CIRCUIT f(x) -> y {\n    p = relu(x)\n    y = p +* 2\n}")
    assert (err.line, err.column) == (3, 12)
    assert err.source_line == "    y = p +* 2"
    message = str(err)
    assert "<query>, line 3, column 12" in message
    assert "    y = p +* 2\n" + " " * 4 + " " * 11 + "^" in message
    assert "'*'" in message
    assert err.expected  # what would have been accepted
    assert isinstance(err, CircuitQLError)


def test_end_of_input_is_reported_as_such() -> None:
    err = syntax_error("MATCH min(a, b")
    assert "ends too early" in str(err)
    assert "')'" in err.expected
    assert err.hint == "close every parenthesis, bracket and brace"


def test_origin_names_the_file() -> None:
    with pytest.raises(QuerySyntaxError, match=r"^lib/x\.cql, line 1, column 7"):
        parse("MATCH @", origin="lib/x.cql")


@pytest.mark.parametrize(
    ("label", "example"),
    [(label, ex) for label, examples in COMMON_MISTAKES.items() for ex in examples],
)
def test_every_labelled_mistake_gets_its_hint(label: str, example: str) -> None:
    err = syntax_error(example)
    assert err.hint == label
    assert f"fix: {label}" in str(err)


def test_similar_mistakes_get_the_hint_too() -> None:
    assert syntax_error("MATCH min LIMIT 5 TOLERANCE 1").hint == (
        "options go in this order: WHERE, IN MODELS, TOLERANCE, EXACT, LIMIT, TIMEOUT"
    )
    assert "quoted" in (syntax_error("MATCH x IN MODELS models").hint or "")


@pytest.mark.parametrize("text", ["hello world", "abs(x) -> y", "42 abs", "x >> y"])
def test_text_that_is_no_statement_is_told_how_statements_start(text: str) -> None:
    assert (syntax_error(text).hint or "").startswith("a statement starts with MATCH")


def test_an_unclosed_docstring_still_gets_its_own_hint() -> None:
    assert "docstring" in (syntax_error("'doc' MATCH abs").hint or "")


@pytest.mark.parametrize(
    ("char", "hint"),
    [("$", "?name"), ("^", "power"), ("%", "mod"), ("&", "AND"), ("#", "//")],
)
def test_stray_characters_get_specific_hints(char: str, hint: str) -> None:
    err = syntax_error(f"CIRCUIT f(x) -> y {{ y = relu(x {char} 2) }}")
    assert "unexpected character" in str(err)
    assert hint in (err.hint or "")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("CIRCUIT f(x) -> y { y = relu(relu(x)) }", "relu(...) inside a unit's sum", 30),
        ("CIRCUIT f(x) -> y { y = relu(x, x) }", "relu takes one sum, not 2", 25),
        ("CIRCUIT f(x) -> y { y = x + ... }", "unexpected", 29),
        ("CIRCUIT f(x) -> y { y = x } EXPECT y == foo(x)", "unknown function 'foo'", 41),
        ("CIRCUIT f(x) -> y { y = x } EXPECT y == min(x)", "min takes at least 2", 41),
        ("CIRCUIT f(x) -> y { y = x } EXPECT y == max(x, ...)", "only marks open fan-in", 41),
        ("CIRCUIT f(x) -> y { y = x } EXPECT y < x", "EXPECT takes equations", 36),
        ("CIRCUIT f(x) -> y { y = x } WHERE c", "WHERE takes comparisons", 35),
        ("CIRCUIT f(x) -> y { y = x > 1 }", "a unit is a sum", 25),
        ("CIRCUIT f(x) -> y { y = next.x }", "next.x is not a unit name", 25),
        ("CIRCUIT f(x) -> y { y = min(x + 1, x) }", "must be unit or input names", 29),
        ("CIRCUIT f(x) -> y { p, q = relu(x) }", "only a circuit call", 21),
        ("CIRCUIT f { y = x }", "has units but no inputs and outputs", 9),
        ("CIRCUIT f(x, x) -> y { y = x }", "x is listed twice", 14),
        ("MATCH abs LIMIT 0", "LIMIT must be a whole number of at least 1", 17),
        ("MATCH abs LIMIT 2.5", "not 2.5", 17),
        ("MATCH fold{3,1}", "bounds reversed", 12),
        ("MATCH fold{0,}", "at least 1", 12),
        ("CIRCUIT f(x) -> y { y = 1e999 * x }", "too large", 25),
        ("CIRCUIT f(x) -> y = g EXPECT y == fold[0].c", "instance number", 40),
    ],
)
def test_what_the_grammar_cannot_say_is_still_a_syntax_error(
    text: str, message: str, column: int
) -> None:
    err = syntax_error(text)
    assert message in str(err)
    assert err.column == column


def test_unknown_function_suggests_the_closest() -> None:
    err = syntax_error("CIRCUIT f(x) -> y { y = x } EXPECT y == sigmod(x)")
    assert err.hint == "did you mean sigmoid?"


@pytest.mark.parametrize(
    "text",
    [
        "CIRCUIT f(x) -> y { y = " + "-" * 1000 + "x }",
        "CIRCUIT f(x) -> y { y = " + " + ".join(["x"] * 1000) + " }",
        "CIRCUIT f(x) -> y { y = x } EXPECT y == " + "abs(" * 500 + "x" + ")" * 500,
        "MATCH " + "(" * 300 + "fold+" + ")+" * 300,
    ],
)
def test_pathological_nesting_is_a_syntax_error_not_a_crash(text: str) -> None:
    assert "nested more than" in str(syntax_error(text))


def test_repetition_counts_are_bounded() -> None:
    assert "above the limit" in str(syntax_error("MATCH fold{1000000}"))
    assert "above the limit" in str(syntax_error("MATCH fold{2,1000}"))

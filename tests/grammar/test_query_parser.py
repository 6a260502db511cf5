"""The query grammar: every construct parses to the AST it means, and prints back."""

from __future__ import annotations

import pytest

from circuitql.grammar import ast
from circuitql.grammar.errors import QuerySyntaxError
from circuitql.grammar.parser import MAX_TEXT, parse, reserved_words
from circuitql.grammar.printer import script_text
from circuitql.graph import Activation


def one(text: str) -> ast.Statement:
    (statement,) = parse(text).statements
    return statement


def test_match_with_every_option() -> None:
    m = one("MATCH min(a, b) -> y WHERE c > 0 IN MODELS 'zoo/*' TOLERANCE 0.05 LIMIT 20")
    assert m == ast.Match(
        ast.Target(ast.CircuitRef("min"), ("a", "b"), ("y",)),
        where=(ast.Compare(">", ast.Ref("c"), ast.Num(0.0)),),
        models="zoo/*",
        tolerance=0.05,
        limit=20,
    )


def test_keywords_are_case_insensitive_and_reserved_as_names() -> None:
    assert one("explain match abs limit 3") == ast.Match(
        ast.Target(ast.CircuitRef("abs")), limit=3, explain=True
    )
    d = one("CIRCUIT inner(limits) -> matched { matched = relu(limits) }")
    assert isinstance(d, ast.CircuitDef) and d.inputs == ("limits",)
    for text in (
        "CIRCUIT f(x) -> y { p = relu(x) in = relu(-x) y = p + in }",
        "CIRCUIT In(x) -> y { y = x }",
        "MATCH count",
        "MATCH f WHERE limit > 0",
    ):
        with pytest.raises(QuerySyntaxError, match="is a reserved word"):
            parse(text)
    assert {"match", "in", "limit", "where", "and", "for", "integers"} <= reserved_words()


def test_explain_goes_in_front_of_every_action() -> None:
    for text in (
        "MATCH abs",
        "COUNT MODELS WITH abs GROUP BY depth",
        "SHOW CIRCUITS",
        "COMPARE 'a' WITH 'b'",
    ):
        statement = one("EXPLAIN " + text)
        assert getattr(statement, "explain", False), text


def test_unit_forms() -> None:
    d = one(
        """CIRCUIT f(x, a, b) -> y {
            p = relu(+x)
            h = relu(+x, ...)
            q = relu(x - 10)
            r = relu(x - ?c)
            s = sigmoid(?M * (?c - x))
            t = linear(a + b)
            y = a - p
        }"""
    )
    assert isinstance(d, ast.CircuitDef) and d.body is not None
    units = {u.name: u for u in d.body if isinstance(u, ast.UnitDef)}
    assert units["p"].expr == ast.Unary("+", ast.Ref("x"))
    assert units["h"].open and not units["p"].open
    assert units["q"].expr == ast.Binary("-", ast.Ref("x"), ast.Num(10.0))
    assert units["r"].expr == ast.Binary("-", ast.Ref("x"), ast.Param("c"))
    assert units["s"].activation is Activation.SIGMOID
    assert units["t"].activation is Activation.IDENTITY
    assert units["y"].activation is None


def test_calls_and_multiple_outputs() -> None:
    d = one("CIRCUIT f(x) -> (p, n) { p, n = detector_pair(x) }")
    assert isinstance(d, ast.CircuitDef) and d.body is not None
    assert d.outputs == ("p", "n")
    assert d.body == (ast.CallDef(("p", "n"), "detector_pair", ("x",)),)


def test_circuit_expressions_and_precedence() -> None:
    d = one("CIRCUIT c = a | b >> fold{3,} >> g+ | (h WHERE next.k == k / 2){2,5}")
    assert isinstance(d, ast.CircuitDef)
    a, b, g, h, fold = (ast.CircuitRef(n) for n in ("a", "b", "g", "h", "fold"))
    step = ast.Compare(
        "==", ast.Ref("next", None, ("k",)), ast.Binary("/", ast.Ref("k"), ast.Num(2.0))
    )
    assert d.expr == ast.Alternation(
        (
            a,
            ast.Chain((b, ast.Repeat(fold, 3, None), ast.Repeat(g, 1, None))),
            ast.Repeat(ast.Group(h, (step,)), 2, 5),
        )
    )


def test_nested_alternations_and_chains_flatten() -> None:
    assert one("MATCH (a | b) | c") == one("MATCH a | (b | c)") == one("MATCH a | b | c")
    assert one("MATCH (a >> b) >> c") == one("MATCH a >> b >> c")


def test_clauses() -> None:
    d = one(
        """CIRCUIT is_even(x) -> y = (fold WHERE next.c == c / 2)+ >> fold
        WHERE fold[1].c >= 1
        EXPECT y == mod(x, 2) FOR x IN INTEGERS [0, 2*fold[1].c)
        EXAMPLE WITH fold[1].c = 8 { y = x }"""
    )
    assert isinstance(d, ast.CircuitDef) and d.expect is not None and d.example is not None
    assert d.where[0].left == ast.Ref("fold", 1, ("c",))
    (dom,) = d.expect.domains
    assert dom.names == ("x",) and dom.ranges[0].kind == "integers"
    assert d.example.settings == ((ast.Ref("fold", 1, ("c",)), ast.Num(8.0)),)


def test_probe_ranges() -> None:
    d = one("CIRCUIT f(a, b) -> y { y = a } EXPECT y == a FOR a, b IN {0, 1} | [2, 3]")
    assert isinstance(d, ast.CircuitDef) and d.expect is not None
    (dom,) = d.expect.domains
    assert dom.names == ("a", "b")
    assert [r.kind for r in dom.ranges] == ["values", "interval"]


def test_census_show_compare() -> None:
    assert one("COUNT MODELS WITH abs IN MODELS 'z*' GROUP BY meta.depth") == ast.Census(
        ast.Target(ast.CircuitRef("abs")), "meta.depth", models="z*"
    )
    census = one("COUNT MODELS WITH abs GROUP BY 'odd key'")
    assert isinstance(census, ast.Census) and census.group_by == "odd key"
    assert one("SHOW CIRCUITS 'min*'") == ast.ShowCircuits("min*")
    assert one("COMPARE 'a\\'s' WITH \"b\" TOLERANCE 0.1") == ast.CompareModels("a's", "b", 0.1)
    assert one("COMPARE 'a' WITH 'b' TIMEOUT 2m") == ast.CompareModels("a", "b", timeout=120.0)


def test_docstrings_comments_and_separators() -> None:
    script = parse(
        '''// a comment
        """Says what it is.

            Detail,
              indented."""
        CIRCUIT f(x) -> y { y = x }  // trailing
        ; MATCH f;'''
    )
    d, m = script.statements
    assert isinstance(d, ast.CircuitDef)
    assert d.doc == "Says what it is.\n\nDetail,\n  indented."
    assert isinstance(m, ast.Match)


def test_positions_are_recorded_but_not_compared() -> None:
    a = one("MATCH abs")
    b = one("\n\n   MATCH   abs")
    assert a == b
    assert isinstance(b, ast.Match) and b.target.pos == ast.Pos(3, 12)


@pytest.mark.parametrize(
    "text",
    [
        "MATCH abs",
        "EXPLAIN MATCH min(a, b) -> y WHERE c > 0 AND c <= 2 IN MODELS 'a\\'b' TOLERANCE 0.05 "
        "LIMIT 20",
        "MATCH (abs | negation)(x) -> y",
        "MATCH (fold WHERE next.c == c / 2){2,} >> fold | fold{3} | (a >> b)+",
        "COUNT MODELS WITH min IN MODELS 'm*' TOLERANCE 0.1 GROUP BY 'opt.name'",
        "COUNT MODELS WITH abs TOLERANCE 0.1 EXACT GROUP BY meta.width",
        "COUNT MODELS WITH abs EXACT TIMEOUT 10m GROUP BY meta.width",
        "MATCH abs LIMIT 3 TIMEOUT 1.5",
        "SHOW CIRCUITS",
        "COMPARE 'a' WITH 'b'",
        "COMPARE 'a' WITH 'b' TOLERANCE 0.2 TIMEOUT 500ms",
        "CIRCUIT f(x, a) -> (y, z) {\n p = relu(-(x - 2) * 3, ...)\n q = tanh(a / 2 - -x)\n"
        " y = p - (q - x)\n z = leaky_relu(2 * (p + q))\n}\n"
        "WHERE c > 0\nEXPECT y == max(x, 0) * (x < 1), z == step(-x) FOR x IN [-1, 1], a IN {0}",
    ],
)
def test_print_then_parse_gives_the_same_ast(text: str) -> None:
    script = parse(text)
    printed = script_text(script)
    assert parse(printed) == script
    assert script_text(parse(printed)) == printed


@pytest.mark.parametrize(
    ("clause", "seconds"),
    [
        ("TIMEOUT 30", 30.0),
        ("TIMEOUT 30s", 30.0),
        ("timeout 500ms", 0.5),
        ("TIMEOUT 2m", 120.0),
        ("TIMEOUT 1H", 3600.0),
        ("TIMEOUT .25", 0.25),
    ],
)
def test_a_timeout_is_seconds_or_a_number_with_a_unit(clause: str, seconds: float) -> None:
    match = one(f"MATCH abs {clause}")
    assert isinstance(match, ast.Match) and match.timeout == seconds


@pytest.mark.parametrize("clause", ["TIMEOUT 0", "TIMEOUT 0ms", "TIMEOUT 200h"])
def test_a_timeout_outside_its_range_is_refused_with_a_caret(clause: str) -> None:
    with pytest.raises(QuerySyntaxError, match="TIMEOUT must be above 0") as err:
        parse(f"MATCH abs {clause}")
    assert "^" in str(err.value)


def test_printing_normalises_parentheses() -> None:
    printed = script_text(parse("CIRCUIT f(a, b) -> y { y = ((a)) + (b * 2) - (a - b) }"))
    assert "y = a + b * 2 - (a - b)" in printed


def test_a_text_past_the_size_cap_is_refused_unread() -> None:
    # min(x, ...) with 40,000 arguments took 5.7 s to parse; parsing is linear in the text,
    # so a cap on its length bounds it.
    text = "MATCH min(" + ", ".join(["x"] * 40_000) + ") -> y"
    assert len(text) > MAX_TEXT
    with pytest.raises(QuerySyntaxError, match=f"at most {MAX_TEXT:,} are read") as err:
        parse(text)
    assert err.value.fix is not None and "split it" in err.value.fix
    assert parse("MATCH abs" + " " * (MAX_TEXT - 9)).statements  # at the cap, read

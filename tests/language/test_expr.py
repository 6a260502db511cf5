"""The EXPECT/WHERE expression evaluator: numpy semantics, no eval, names by key."""

from __future__ import annotations

import numpy as np
import pytest

from circuitql.grammar import ast
from circuitql.grammar.parser import parse
from circuitql.language import expr as ev


def expression(text: str) -> ast.Expr:
    (d,) = parse(f"CIRCUIT f(x) -> y {{ y = x }} EXPECT y == {text}").statements
    assert isinstance(d, ast.CircuitDef) and d.expect is not None
    return d.expect.equations[0].right


X = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abs(x - 1)", np.abs(X - 1)),
        ("min(x, 0, 1)", np.minimum(np.minimum(X, 0), 1)),
        ("max(x, -x)", np.abs(X)),
        ("relu(x)", np.maximum(X, 0)),
        ("step(x)", (X > 0).astype(float)),
        ("sigmoid(0)", np.full(5, 0.5)),
        ("tanh(x)", np.tanh(X)),
        ("mod(x, 2)", np.mod(X, 2)),
        ("(x < 0) + 2 * (x >= 3)", (X < 0) + 2.0 * (X >= 3)),
        ("(x == 0.5) - (x != 0.5)", np.where(X == 0.5, 1.0, -1.0)),
        ("-x / 2 * 4 - -1", -X / 2 * 4 + 1),
        ("2 * ?c + c", np.full(5, 9.0)),
    ],
)
def test_evaluates_elementwise(text: str, expected: np.ndarray) -> None:
    got = np.broadcast_to(ev.evaluate(expression(text), {"x": X, "c": 3.0}), X.shape)
    np.testing.assert_allclose(got, expected)


def test_division_by_zero_gives_inf_not_an_exception() -> None:
    with np.errstate(all="raise"):
        assert np.isinf(ev.evaluate(expression("1 / x"), {"x": np.array([0.0])})[0])


def test_unbound_name_is_reported_by_name() -> None:
    with pytest.raises(ev.UnboundName, match=r"fold\[1\]\.c"):
        ev.evaluate(expression("x + fold[1].c"), {"x": X})


def test_names_and_keys() -> None:
    e = expression("max(x, ?c) + next.c * fold[2].k")
    assert [ev.key(n) for n in ev.names(e)] == ["x", "c", "next.c", "fold[2].k"]


def test_rename_and_substitute() -> None:
    e = expression("abs(x - c)")
    renamed = ev.rename(e, {"x": "u", "c": "fold[3].c"})
    assert [ev.key(n) for n in ev.names(renamed)] == ["u", "fold[3].c"]
    composed = ev.substitute(e, {"x": expression("x * 2")})
    np.testing.assert_allclose(ev.evaluate(composed, {"x": X, "c": 1.0}), np.abs(2 * X - 1))


def test_ref_parses_every_key_back() -> None:
    for key in ("x", "next.c", "fold[12].c", "m1.fold[2].c"):
        assert ev.ref(key).qualified == key


def test_text_never_reaches_eval() -> None:
    # A name that would be code in Python is only ever a lookup key.
    e = expression("__import__ + x")
    with pytest.raises(ev.UnboundName, match="__import__"):
        ev.evaluate(e, {"x": X})

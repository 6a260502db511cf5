"""Compilation: canonical coordinates, signature constraints, structure, and errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql.grammar.errors import CircuitDefinitionError, QueryError, UnknownCircuitError
from circuitql.graph import Activation, UnitKind
from circuitql.language import (
    Alternation,
    CensusQuery,
    Chain,
    CircuitPattern,
    CompareQuery,
    MatchQuery,
    Pattern,
    Repeat,
    ShowQuery,
    UnitConstraint,
    builtin_library,
    compile_query,
    expand,
)
from circuitql.language.pattern import CoefKind, Role, constraints_hold
from circuitql.language.unroll import MAX_REPEAT_CAP, over_budget
from circuitql.records import ACTIVATION_CODES, BiasClass, Signature
from circuitql.store.base import lookup_values


def match(text: str) -> Pattern:
    query = compile_query(text)
    assert isinstance(query, MatchQuery)
    return query.pattern


def flat(text: str) -> CircuitPattern:
    pattern = match(text)
    assert isinstance(pattern, CircuitPattern)
    return pattern


def weights(p: CircuitPattern, unit: str) -> dict[str, float]:
    return {s: c.value for s, c in p.unit(unit).inputs}


# ---- canonical coordinates -----------------------------------------------------------------


def test_hidden_units_get_unit_norm_and_readers_compensate() -> None:
    p = flat("MATCH min_skip")
    r = 1 / math.sqrt(2)
    assert weights(p, "d") == pytest.approx({"a": r, "b": -r})
    assert weights(p, "y") == pytest.approx({"a": 1.0, "d": -math.sqrt(2)})


def test_coefficients_are_ratios() -> None:
    a = flat("CIRCUIT f(a, b) -> y { d = relu(a - b) y = a - d } MATCH f")
    b = flat("CIRCUIT f(a, b) -> y { d = relu(4*a - 4*b) y = a - d / 4 } MATCH f")
    assert a.units == b.units


def test_linear_units_are_folded_into_their_readers() -> None:
    p = flat("MATCH min_sym")
    assert [u.name for u in p.units] == ["a", "b", "p", "n", "y"]
    assert set(weights(p, "y")) == {"a", "b", "p", "n"}
    two_layer = flat("MATCH min_two_layer")
    assert "a1" not in two_layer.by_name and "b1" not in two_layer.by_name
    assert set(weights(two_layer, "d")) == {"ap", "an", "bp", "bn"}


def test_units_come_in_dependency_order_whatever_the_text_order() -> None:
    p = flat("CIRCUIT f(x) -> y { y = h - g  h = relu(g + x)  g = relu(-x) } MATCH f")
    assert [u.name for u in p.units] == ["x", "g", "h", "y"]


def test_insignificant_weights_are_dropped_like_the_canonical_form_does() -> None:
    p = flat("CIRCUIT f(x, z) -> y { y = relu(x + 0.01*z) } MATCH f")
    assert weights(p, "y") == {"x": 1.0}


def test_open_fan_in_and_free_weights_make_downstream_weights_sign_only() -> None:
    p = flat("CIRCUIT f(x) -> y { h = relu(+x, ...)  g = relu(?k*x)  y = 2*h - 3*g } MATCH f")
    y = p.unit("y")
    assert [(s, c.kind, c.value) for s, c in y.inputs] == [
        ("h", CoefKind.SIGN, 1.0),
        ("g", CoefKind.SIGN, -1.0),
    ]
    assert p.unit("h").open_fan_in and p.unit("g").inputs[0][1].kind is CoefKind.FREE


def test_free_parameters_are_polynomials_in_canonical_coordinates() -> None:
    p = flat("MATCH less_than_sigmoid")
    y = p.unit("y")
    assert [(s, c.poly.text()) for s, c in y.inputs] == [("x", "-?M")]
    assert y.bias.poly.text() == "?M*?c"
    assert y.bias.poly.evaluate({"M": 10, "c": 0.5}) == 5
    assert p.params == ("M", "c")


# ---- signature constraints -----------------------------------------------------------------


def test_closed_hidden_unit_pins_the_index_columns() -> None:
    d = flat("MATCH min_skip").unit("d").constraint
    assert d.columns() == {
        "kind": "hidden",
        "activation": "relu",
        "fan_in": 2,
        "n_pos": 1,
        "n_neg": 1,
        "bias_class": "0",
    }
    assert d.token_prefix == "relu(+1-1)b0>(+"
    assert (d.out_pos, d.out_neg) == (0, 1)


def test_outputs_do_not_pin_kind_and_inputs_only_bound_fan_out() -> None:
    p = flat("MATCH abs")
    y, x = p.unit("y").constraint, p.unit("x").constraint
    assert y.columns() == {"fan_in": 2, "n_pos": 2, "n_neg": 0, "bias_class": "0", "layer_min": 2}
    assert x.columns() == {} and (x.out_pos, x.out_neg) == (1, 1)
    assert p.unit("x").role is Role.INPUT


def test_a_unit_is_looked_up_no_shallower_than_its_depth_in_the_pattern() -> None:
    # A pattern edge is a network edge and a network unit's layer is its longest-path depth:
    # min_two_layer's output reads a difference of pairs that read the inputs (a1 = ap - an
    # folds into its readers).
    p = flat("MATCH min_two_layer")
    depth = {u.name: u.constraint.layer_min for u in p.units}
    assert depth == {
        "a": 0, "b": 0, "ap": 1, "an": 1, "bp": 1, "bn": 1, "sp": 2, "sn": 2, "d": 2, "y": 3
    }  # fmt: skip
    assert p.unit("y").constraint.columns()["layer_min"] == 3
    assert "layer_min" not in p.unit("ap").constraint.columns()  # every computed unit is >= 1


def test_open_fan_in_gives_lower_bounds_only() -> None:
    h = flat("CIRCUIT f(x) -> y { h = relu(+x, ...) y = h } MATCH f").unit("h").constraint
    assert h.columns() == {
        "kind": "hidden",
        "activation": "relu",
        "fan_in_min": 1,
        "n_pos_min": 1,
    }
    wider = Signature(UnitKind.HIDDEN, Activation.RELU, 3, 2, BiasClass.POSITIVE, 1, 0)
    assert h.admits(wider)
    assert not h.admits(Signature(UnitKind.HIDDEN, Activation.RELU, 0, 2, BiasClass.ZERO, 1, 0))


@pytest.mark.parametrize(
    ("unit", "bias_class"),
    [
        ("relu(x - 10)", BiasClass.NEGATIVE),
        ("relu(x + 3)", BiasClass.POSITIVE),
        ("relu(x - 0.01)", BiasClass.ZERO),
        ("relu(x - ?c)", None),
        ("relu(x)", BiasClass.ZERO),
    ],
)
def test_bias_class_follows_the_signature_rule(unit: str, bias_class: BiasClass | None) -> None:
    p = flat(f"CIRCUIT f(x) -> y {{ h = {unit} y = h }} MATCH f")
    assert p.unit("h").constraint.bias_class == bias_class


def test_where_pins_parameter_signs_for_sign_counts() -> None:
    with_sign = flat("MATCH less_than_sigmoid").unit("y").constraint
    assert with_sign.signs_exact and with_sign.n_neg == 1
    free = flat("CIRCUIT f(x) -> y { y = sigmoid(?M*x) } MATCH f").unit("y").constraint
    assert free.fan_in == 1 and not free.signs_exact


def test_example_parameter_values_satisfy_where() -> None:
    p = flat("MATCH less_than_sigmoid")
    assert constraints_hold(p.where, {"M": 50, "c": 0.5})
    assert not constraints_hold(p.where, {"M": 5, "c": 0.5})


@st.composite
def signatures(draw: st.DrawFn) -> Signature:
    """Signatures as the indexer makes them: network inputs are plain identity units."""
    kind = draw(st.sampled_from(list(UnitKind)))
    out = (draw(st.integers(0, 12)), draw(st.integers(0, 12)))
    if kind is UnitKind.INPUT:
        return Signature(kind, Activation.IDENTITY, 0, 0, BiasClass.ZERO, *out)
    return Signature(
        kind,
        draw(st.sampled_from(list(ACTIVATION_CODES))),
        draw(st.integers(0, 12)),
        draw(st.integers(0, 12)),
        draw(st.sampled_from(list(BiasClass))),
        *out,
    )


@st.composite
def constraints(draw: st.DrawFn) -> UnitConstraint:
    fan_in = draw(st.none() | st.integers(0, 6))
    n_pos = draw(st.integers(0, fan_in if fan_in is not None else 4))
    n_neg = draw(st.integers(0, (fan_in - n_pos) if fan_in is not None else 4))
    return UnitConstraint(
        kind=draw(st.none() | st.sampled_from(list(UnitKind))),
        activation=draw(st.none() | st.sampled_from(list(ACTIVATION_CODES))),
        fan_in=fan_in,
        n_pos=n_pos,
        n_neg=n_neg,
        bias_class=draw(st.none() | st.sampled_from(list(BiasClass))),
        out_pos=draw(st.integers(0, 3)),
        out_neg=draw(st.integers(0, 3)),
    )


@settings(max_examples=300, deadline=None)
@given(constraints(), signatures())
def test_constraints_are_readable_from_tokens(c: UnitConstraint, sig: Signature) -> None:
    """What a constraint admits, the token language admits: lookup needs no more than tokens.
    For hidden units the two agree exactly."""
    admitted = c.admits(sig)
    if admitted:
        assert c.admits_token(sig.token)
        assert sig.token.startswith(c.token_prefix)
        assert all(_holds(sig, key, value) for key, value in c.columns().items())
    if c.kind is UnitKind.HIDDEN and sig.kind is UnitKind.HIDDEN:
        assert c.admits_token(sig.token) == admitted


def _holds(sig: Signature, key: str, value: object) -> bool:
    """Whether ``sig`` has the lookup key's value, or lies within its bound."""
    [(column, comparison, wanted)] = lookup_values({key: value})
    have: Any = sig.fan_in if column == "fan_in" else getattr(sig, column)
    have = getattr(have, "value", have)
    return {"=": have == wanted, "<=": have <= wanted, ">=": have >= wanted}[comparison]


# ---- structure -----------------------------------------------------------------------------


def test_alternation_lists_the_implementations() -> None:
    p = match("MATCH min")
    assert isinstance(p, Alternation)
    assert [o.name for o in p.options] == ["min_skip", "min_sym", "min_two_layer"]
    assert [f.variant for f in expand(p)] == ["min_skip", "min_sym", "min_two_layer"]


def test_calls_inline_every_variant_of_the_callee() -> None:
    p = match("MATCH min4")
    assert isinstance(p, Alternation) and len(p.options) == 27
    skip = next(f for f in expand(p) if f.variant == "m1=min_skip, m2=min_skip, y=min_skip")
    assert {u.name for u in skip.units} == {"a", "b", "c", "d", "m1.d", "m2.d", "y.d", "y"}
    assert set(weights(skip, "y.d")) == {"a", "m1.d", "c", "m2.d"}


def test_composition_joins_outputs_to_inputs_and_composes_references() -> None:
    p = match("MATCH abs >> negation")
    assert isinstance(p, Chain)
    f, _folded = expand(p)
    assert f.variant == "abs >> negation"
    assert set(weights(f, "negation[1].p")) == {"abs[1].p", "abs[1].n"}
    x = np.linspace(-3, 3, 13)[:, None]
    assert f.reference is not None
    np.testing.assert_allclose(f.reference(x)[:, 0], -np.abs(x[:, 0]))


def test_repetition_unrolls_with_instance_names_and_step_constraints() -> None:
    p = match("MATCH (fold WHERE next.c == c / 2){2,3}")
    assert isinstance(p, Repeat) and p.links == (("y", "x"),)
    two, three = expand(p)
    assert [u.name for u in three.hidden][-2:] == ["fold[3].p", "fold[3].n"]
    assert three.params == ("fold[1].c", "fold[2].c", "fold[3].c")
    values = {"fold[1].c": 4.0, "fold[2].c": 2.0, "fold[3].c": 1.0}
    assert constraints_hold(three.where, values)
    assert not constraints_hold(three.where, {**values, "fold[3].c": 1.5})
    assert len(two.hidden) == 4


def test_unbounded_repetition_needs_a_bound_to_unroll() -> None:
    p = match("MATCH fold+")
    assert len(list(expand(p, max_repeat=3))) == 3
    with pytest.raises(ValueError, match="max_repeat"):
        list(expand(p))


def test_is_even_unrolls_into_halving_folds() -> None:
    patterns = list(expand(builtin_library().pattern("is_even"), max_repeat=4))
    assert [len(p.hidden) // 2 for p in patterns] == [2, 3, 4, 5]
    last = patterns[-1]
    assert last.reference is not None
    x = np.arange(16.0)[:, None]
    np.testing.assert_array_equal(last.reference(x, {"fold[1].c": 8.0})[:, 0], x[:, 0] % 2)
    probes = last.reference.probes(np.random.default_rng(0), 200, {"fold[1].c": 8.0})
    assert set(np.unique(probes)) == set(range(16))


def test_match_names_inputs_and_outputs() -> None:
    p = match("MATCH min(u, v) -> w")
    assert (p.inputs, p.outputs) == (("u", "v"), ("w",))
    for f in expand(p):
        assert (f.inputs, f.outputs) == (("u", "v"), ("w",))
        assert f.reference is not None
        np.testing.assert_allclose(
            f.reference({"u": np.array([1.0]), "v": np.array([-2.0])}), [[-2.0]]
        )


def test_renaming_onto_an_internal_unit_name_keeps_them_apart() -> None:
    f = flat("MATCH min_skip(d, b) -> y")
    assert weights(f, "y") == pytest.approx({"d": 1.0, "d'": -math.sqrt(2)})


def test_match_where_is_added_to_the_pattern() -> None:
    p = flat("MATCH fold WHERE c > 2")
    assert len(p.where) == 2 and not constraints_hold(p.where, {"c": 1.0})


def test_other_actions() -> None:
    census = compile_query("EXPLAIN COUNT MODELS WITH xor IN MODELS 'z*' GROUP BY meta.seed")
    assert isinstance(census, CensusQuery) and census.explain and census.group_by == "meta.seed"
    assert compile_query("SHOW CIRCUITS 'm*'") == ShowQuery("m*")
    assert compile_query("COMPARE 'a' WITH 'b' TOLERANCE 0.2") == CompareQuery("a", "b", 0.2)
    m = compile_query("MATCH abs IN MODELS 'm?' TOLERANCE 0.1 LIMIT 5")
    assert isinstance(m, MatchQuery) and (m.models, m.tolerance, m.limit) == ("m?", 0.1, 5)


# ---- errors --------------------------------------------------------------------------------


def compile_error(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        compile_query(text)
    return info.value


def test_unknown_circuit_suggests_library_names() -> None:
    err = compile_error("MATCH mni(a, b)")
    assert isinstance(err, UnknownCircuitError)
    assert err.suggestions[0] == "min" and (err.line, err.column) == (1, 7)
    assert "did you mean 'min'" in str(err)


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("CIRCUIT f(x) -> y { y = relu(x - z) } MATCH f", "z is not an input or a unit", (1, 34)),
        (
            "CIRCUIT f(x) -> y { p = relu(q) q = relu(p) y = p + x } MATCH f",
            "units form a cycle: p -> q -> p",
            None,
        ),
        (
            "CIRCUIT f(x) -> y { y = relu(x) } EXPECT y == relu(x) * k MATCH f",
            "EXPECT uses k, which is not declared",
            (1, 57),
        ),
        (
            "CIRCUIT f(x) -> y { y = relu(x - ?c) } EXPECT y == relu(x - d) MATCH f",
            "EXPECT uses d",
            (1, 61),
        ),
        ("CIRCUIT f(x) -> y { y = relu(x) } WHERE k > 0 MATCH f", "WHERE uses k", (1, 41)),
        (
            "CIRCUIT f(x) -> y { y = x } EXPECT y == x FOR z IN [0, 1] MATCH f",
            "FOR gives a range to z",
            None,
        ),
        (
            "CIRCUIT f(x) -> (y, z) { y = x z = x } EXPECT y == x MATCH f",
            "EXPECT says nothing about output z",
            None,
        ),
        ("CIRCUIT f(x) -> y { p = x } MATCH f", "output y is not defined", (1, 9)),
        (
            "CIRCUIT f(x) -> y { p = relu(x) y = relu(x) } MATCH f",
            "p does not feed any output",
            (1, 21),
        ),
        ("CIRCUIT f(x, z) -> y { y = relu(x) } MATCH f", "input z is not read", None),
        ("CIRCUIT f(x) -> y { y = relu(x) y = x } MATCH f", "y is defined twice", None),
        ("CIRCUIT f(x) -> y { y = relu(x - ?y) } MATCH f", "parameter ?y has the name", None),
        ("CIRCUIT f(a, b) -> y { y = a * b } MATCH f", "multiplies two units", None),
        ("CIRCUIT f(a) -> y { y = a / ?c } MATCH f", "divided by a nonzero number", None),
        ("CIRCUIT f(x) -> y { y = relu(x - x) } MATCH f", "its terms cancel", None),
        ("CIRCUIT a = b CIRCUIT b = a MATCH a", "defined in terms of itself: a -> b -> a", None),
        ("MATCH abs >> min", "abs gives 1 output but min takes 2 inputs", (1, 14)),
        ("MATCH abs | min", "alternatives differ", (1, 13)),
        ("MATCH detector_pair+", "outputs feed its inputs", None),
        ("MATCH (abs WHERE next.c > 1)", "WHERE uses next.c", None),
        ("MATCH min(a) -> y", "2 inputs and 1 output", (1, 7)),
        ("MATCH fold(c)", "c is already a parameter of fold", None),
        ("CIRCUIT f(x) -> y { y = min(x) } MATCH f", "this call gives it 1 input", None),
        ("CIRCUIT f(x) -> y { y = is_even(x) } MATCH f", "repeats without bound", None),
        ("CIRCUIT abs(x) -> y { y = x } MATCH abs", "already in the library", (1, 9)),
        ("CIRCUIT f(x) -> y { y = x }", "the query asks nothing", None),
        ("MATCH abs MATCH min", "one query asks one thing", (2, 7)),
    ],
)
def test_circuits_that_cannot_mean_anything_are_rejected_with_their_place(
    text: str, message: str, where: tuple[int, int] | None
) -> None:
    text = text.replace("MATCH abs MATCH min", "MATCH abs\nMATCH min")
    err = compile_error(text)
    assert isinstance(err, CircuitDefinitionError)
    assert message in str(err)
    if where is not None:
        assert (err.line, err.column) == where
        assert err.source_line is not None and "^" in str(err)


def test_query_circuits_do_not_leak_into_the_library() -> None:
    compile_query("CIRCUIT mine(x) -> y { y = relu(x) } MATCH mine")
    with pytest.raises(UnknownCircuitError):
        compile_query("MATCH mine")


def test_variant_explosion_is_refused() -> None:
    calls = " ".join(f"m{i} = min(m{i - 1}, x)" for i in range(1, 9))
    err = compile_error(f"CIRCUIT f(m0, x) -> m8 {{ {calls} }} MATCH f")
    assert "6561 variants" in str(err)


def test_compositions_lose_the_units_a_network_computing_them_loses() -> None:
    """abs >> negation feeds |x| >= 0 into negation's relu(-x), which can never fire: the
    canonical form removes such a unit, and the pattern does too. relu(|x|) only touches its
    kink: the pattern has a form with it and one with it folded into the output."""
    from circuitql.language import compile_query
    from circuitql.language.unroll import expand

    flats = list(expand(compile_query("MATCH abs >> negation").pattern))
    assert [len(p.units) for p in flats] == [5, 4]
    assert flats[1].variant.endswith("folded")
    folded = flats[1].unit("y")
    assert {src for src, _ in folded.inputs} == {"abs[1].p", "abs[1].n"}
    assert all(c.value < 0 for _, c in folded.inputs)


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("MATCH (abs | negation){100} >> fold", 8, "chains 100 circuits in one pattern"),
        (
            "MATCH (fold | abs | scale | identity | negation){1,8}",
            8,
            "stands for 488,280 flat patterns",
        ),
        ("MATCH ((((((((((fold{2}){2}){2}){2}){2}){2}){2}){2}){2}){2})", 17, "chains 64 circuits"),
    ],
)
def test_a_query_past_its_budget_is_refused_where_it_grows(
    text: str, column: int, problem: str
) -> None:
    # Counted, not built: each is refused at once, at the repetition or alternation that
    # outgrows the budget, where unrolling it would take minutes or exhaust the stack.
    with pytest.raises(QueryError, match=problem) as err:
        compile_query(text)
    assert err.value.column == column and err.value.fix is not None


def test_the_library_is_within_the_budget() -> None:
    for name in builtin_library().names:
        assert over_budget(builtin_library().pattern(name), MAX_REPEAT_CAP) is None, name


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        ("[1, 0]", "is reversed"),
        ("INTEGERS [0, 0)", "holds no integer"),
        ("[-1e308, 1e308]", "finite numbers within"),
        ("INTEGERS [0, 1e300)", "finite numbers within"),
    ],
)
def test_a_for_range_that_cannot_be_probed_is_refused_at_it(domain: str, problem: str) -> None:
    text = f"CIRCUIT f(x) -> y {{ y = relu(x) }} EXPECT y == max(x, 0) FOR x IN {domain} MATCH f"
    with pytest.raises(QueryError, match=problem) as err:
        compile_query(text)
    start = text.index(domain)
    assert err.value.column is not None and start < err.value.column <= start + len(domain)

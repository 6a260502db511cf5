"""The canonical form is invariant to every symmetry of a ReLU network, and to nothing else."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from circuitql.domain import Domain
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import Config, _sums_in_order, canonicalize, float32_precision
from circuitql.indexer.fidelity import faithful_canonical, output_error, probes
from circuitql.records import DEFAULT_SIGNIFICANCE
from tests.indexer.random_graphs import (
    add_dead_units,
    add_tiny_weights,
    isomorphic,
    layered_graphs,
    permute_hidden,
    rescale_hidden,
    signature_multisets,
    split_unit,
)

Transform = Callable[[NeuronGraph, np.random.Generator], NeuronGraph]
SYMMETRIES: dict[str, Transform] = {
    "permutation": permute_hidden,
    "rescaling": rescale_hidden,
    "duplication": split_unit,
    "dead units": add_dead_units,
    "tiny weights": add_tiny_weights,
}
PROBES = np.random.default_rng(0).normal(size=(64, 4)) * 3

property_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _same_function(a: NeuronGraph, b: NeuronGraph) -> None:
    """Equal outputs, up to what the 1e-6-relative "tiny" weights can add over a few layers."""
    x = PROBES[:, : len(a.inputs)]
    np.testing.assert_allclose(a.evaluate(x), b.evaluate(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(SYMMETRIES))
@property_settings
@given(graph=layered_graphs(), seed=st.integers(0, 2**32 - 1))
def test_canonical_form_is_invariant(name: str, graph: NeuronGraph, seed: int) -> None:
    transformed = SYMMETRIES[name](graph, np.random.default_rng(seed))
    _same_function(graph, transformed)  # the transformation is a true symmetry
    assert signature_multisets(transformed) == signature_multisets(graph)
    assert isomorphic(canonicalize(transformed).graph, canonicalize(graph).graph)


@property_settings
@given(graph=layered_graphs(), seed=st.integers(0, 2**32 - 1))
def test_all_symmetries_at_once(graph: NeuronGraph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    transformed = graph
    for name in sorted(SYMMETRIES):
        transformed = SYMMETRIES[name](transformed, rng)
    assert signature_multisets(transformed) == signature_multisets(graph)
    assert isomorphic(canonicalize(transformed).graph, canonicalize(graph).graph)


@property_settings
@given(graph=layered_graphs(), seed=st.integers(0, 2**32 - 1))
def test_canonical_graph_computes_the_same_function(graph: NeuronGraph, seed: int) -> None:
    # Within the canonical error bound: pruning may drop what two near-cancelling weights of
    # merged duplicates leave (-1.0008 x 0.5003 + 1.0 x 0.5000), which indexing measures.
    noisy = add_tiny_weights(
        add_dead_units(graph, np.random.default_rng(seed)), np.random.default_rng(seed)
    )
    canon, error = faithful_canonical(noisy, Config())
    x = probes(graph, Config())
    expected = noisy.evaluate(x)
    assert error == output_error(expected, canon.graph.evaluate(x), x) <= Config().max_error
    # Against the network before the noise: the bound, plus what 1e-6-relative weights add
    # (absolute: an output that nearly cancels is no larger than their effect).
    reach = float(np.abs(expected).max())
    np.testing.assert_allclose(
        canon.graph.evaluate(x), graph.evaluate(x), rtol=0, atol=Config().max_error * reach + 1e-4
    )


@property_settings
@given(graph=layered_graphs(), seed=st.integers(0, 2**32 - 1))
def test_a_sign_flip_changes_the_canonical_form(graph: NeuronGraph, seed: int) -> None:
    """Flip the sign of one output weight whose source is a single original neuron.

    (Flipping one of several merged duplicates' weights can leave their sum's sign as it was:
    the canonical weights change, but not necessarily the coarse signature. An edge a linear
    unit folded into the output is not one the original network has. An insignificant edge
    does not count in the signature, whatever its sign: a unit of two nearly cancelling
    inputs, 0.0009 of its reader's largest weight once rescaled, is one.)
    """
    canonical = canonicalize(graph)
    canon = canonical.graph
    edges = [
        (out, src)
        for out in canon.outputs
        for src in sorted(out.inputs)
        if len(canonical.members[src]) == 1
        and src in graph[out.id].inputs
        and abs(out.inputs[src]) >= DEFAULT_SIGNIFICANCE * max(map(abs, out.inputs.values()))
    ]
    assume(edges)  # a network whose outputs are constant has no sign left to flip
    output, src = edges[int(np.random.default_rng(seed).integers(len(edges)))]
    flipped = graph.with_units(
        u if u.id != output.id else u.with_inputs({**u.inputs, src: -u.inputs[src]})
        for u in graph.units
    )
    assert signature_multisets(flipped) != signature_multisets(graph)
    assert not isomorphic(canonicalize(flipped).graph, canon)


def test_members_record_rescaling_and_merging() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    a = Unit("fc:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 2.0})
    b = Unit("fc:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 0.5})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc:0": 1.0, "fc:1": 4.0})
    canon = canonicalize(NeuronGraph((x, a, b, y)))
    assert [u.id for u in canon.graph.hidden] == ["fc:0"]
    assert dict(canon.members["fc:0"]) == pytest.approx({"fc:0": 2.0, "fc:1": 0.5})
    assert canon.graph["out:0"].inputs == pytest.approx({"fc:0": 4.0})
    assert [s.action for s in canon.steps if s.action != "rescale"] == ["merge"]


@pytest.mark.parametrize("reversed_inputs", [False, True])
def test_units_listing_the_same_inputs_in_another_order_merge(reversed_inputs: bool) -> None:
    """Equal rows are compared on their sources sorted: a unit that lists its inputs out of
    unit order (a concatenation can) still merges with its copy."""
    xs = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(3)]
    row = {"input:0": 1.0, "input:1": -2.0, "input:2": 0.5}
    listed = dict(reversed(row.items())) if reversed_inputs else row
    a = Unit("fc:0", UnitKind.HIDDEN, Activation.RELU, 0.1, row)
    b = Unit("fc:1", UnitKind.HIDDEN, Activation.RELU, 0.3, {k: 3 * w for k, w in listed.items()})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc:0": 1.0, "fc:1": 1.0})
    canon = canonicalize(NeuronGraph((*xs, a, b, y)))
    (kept,) = canon.graph.hidden
    assert {uid for uid, _ in canon.members[kept.id]} == {"fc:0", "fc:1"}


def test_merge_that_cancels_removes_the_unit() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    a = Unit("fc:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0})
    b = Unit("fc:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 3.0})
    y = Unit(
        "out:0",
        UnitKind.OUTPUT,
        Activation.IDENTITY,
        0.5,
        {"input:0": 1.0, "fc:0": 3.0, "fc:1": -1.0},
    )
    canon = canonicalize(NeuronGraph((x, a, b, y)))
    assert canon.graph.hidden == ()
    assert canon.graph["out:0"].inputs == {"input:0": 1.0}


def test_dead_relu_found_by_interval_bounds() -> None:
    """A ReLU fed only by ReLUs through negative weights, with bias <= 0, never fires."""
    x = Unit("input:0", UnitKind.INPUT)
    h = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0})
    dead = Unit("fc2:0", UnitKind.HIDDEN, Activation.RELU, -0.1, {"fc1:0": -2.0})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 1.0, "fc2:0": 7.0})
    canon = canonicalize(NeuronGraph((x, h, dead, y)))
    assert "fc2:0" not in canon.graph
    assert any(s.action == "remove_dead" and s.unit == "fc2:0" for s in canon.steps)


def test_input_bounds_make_more_units_provably_dead() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    h = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, -2.0, {"input:0": 1.0})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 1.0})
    graph = NeuronGraph((x, h, y))
    assert "fc1:0" in canonicalize(graph).graph
    assert "fc1:0" not in canonicalize(graph, Config(domain=Domain(((0.0, 1.0),)))).graph


def test_constant_unit_folds_into_downstream_bias() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    c = Unit("fc1:0", UnitKind.HIDDEN, Activation.SIGMOID, 0.0, {})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 1.0, {"input:0": 1.0, "fc1:0": 2.0})
    canon = canonicalize(NeuronGraph((x, c, y))).graph
    assert canon["out:0"].bias == pytest.approx(2.0)  # 1 + 2 * sigmoid(0)
    assert canon["out:0"].inputs == {"input:0": 1.0}


def test_sigmoid_units_are_not_rescaled() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    s = Unit("fc1:0", UnitKind.HIDDEN, Activation.SIGMOID, 0.0, {"input:0": 5.0})
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 1.0})
    canon = canonicalize(NeuronGraph((x, s, y))).graph
    assert canon["fc1:0"].inputs == {"input:0": 5.0}


@property_settings
@given(graph=layered_graphs())
def test_canonical_weights_are_float32_values(graph: NeuronGraph) -> None:
    # What the store keeps in four bytes a weight must be the form itself, not a copy of it.
    weights = canonicalize(graph).graph.edge_arrays.weight
    assert np.array_equal(weights.astype(np.float32).astype(np.float64), weights)


def test_weights_float32_cannot_hold_keep_every_bit() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"input:0": 1e300 + 1e284})
    z = Unit("out:1", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"input:0": 1e-300})
    canon = canonicalize(NeuronGraph((x, y, z)), Config(prune_tol=0.0)).graph
    assert canon["out:0"].inputs == {"input:0": 1e300 + 1e284}
    assert canon["out:1"].inputs == {"input:0": 1e-300}
    assert float32_precision(np.array([0.1]))[0] == float(np.float32(0.1)) != 0.1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=6), min_size=1, max_size=6),
    st.integers(1, 3),
)
def test_vectorised_sums_round_like_a_loop(rows: list[list[float]], repeats: int) -> None:
    """The canonical form's interval bounds are sums of many terms; summed as a vector they
    must round exactly as the per-unit loop of ``+=`` they replace, or a bound on the edge of
    zero could fold a unit one way in one process and the other way in another."""
    first = np.array([float(len(r)) - 2.5 for r in rows])
    counts = np.array([len(r) for r in rows])
    flat = [w for r in rows for w in r]
    terms = np.array([[w * (k + 1) for w in flat] for k in range(repeats)]).reshape(repeats, -1)
    got = _sums_in_order(first, terms, counts)
    for k in range(repeats):
        at = 0
        for i, row in enumerate(rows):
            total = float(first[i])
            for w in row:
                total += w * (k + 1)
            at += len(row)
            assert got[k, i] == total and math.copysign(1, got[k, i]) == math.copysign(1, total)


# ---- on a domain: dead units go, linear units fold into their readers ----------------------


@st.composite
def boxes(draw: st.DrawFn, n_inputs: int) -> Domain:
    box = []
    for _ in range(n_inputs):
        lo = draw(st.floats(-3.0, 2.0))
        box.append((lo, lo + draw(st.floats(0.05, 4.0))))
    return Domain(tuple(box))


@property_settings
@given(graph=layered_graphs(), data=st.data())
def test_on_its_domain_the_canonical_graph_computes_the_same_function(
    graph: NeuronGraph, data: st.DataObject
) -> None:
    # Without pruning, which is lossy by definition (tests/indexer/test_fidelity.py bounds
    # it), every step on a domain is exact there.
    domain = data.draw(boxes(len(graph.inputs)))
    canonical = canonicalize(graph, Config(domain=domain, prune_tol=0.0))
    lo, hi = np.array(domain.box).T
    x = lo + (hi - lo) * np.random.default_rng(0).random((256, len(lo)))
    x = np.vstack([x, lo, hi])  # the box's corners touch every bound
    np.testing.assert_allclose(canonical.graph.evaluate(x), graph.evaluate(x), rtol=1e-6, atol=1e-6)
    unbounded = canonicalize(graph, Config(prune_tol=0.0))
    assert len(canonical.graph) <= len(unbounded.graph)


def _pair_beside(bias: float, slope: float = 0.5) -> NeuronGraph:
    """A detector pair, a unit relu(slope x + bias) and a unit dead on [-2, 2], into y."""
    x = Unit("input:0", UnitKind.INPUT)
    p = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0})
    n = Unit("fc1:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": -1.0})
    lin = Unit("fc1:2", UnitKind.HIDDEN, Activation.RELU, bias, {"input:0": slope})
    dead = Unit("fc1:3", UnitKind.HIDDEN, Activation.RELU, -3.0, {"input:0": 0.4})
    y = Unit(
        "out:0",
        UnitKind.OUTPUT,
        Activation.IDENTITY,
        0.0,
        {"fc1:0": 1.2, "fc1:1": 0.8, "fc1:2": -0.4, "fc1:3": 2.0},
    )
    return NeuronGraph((x, p, n, lin, dead, y))


def test_units_linear_or_dead_on_the_domain_are_folded_and_logged() -> None:
    graph = _pair_beside(3.0)
    canon = canonicalize(graph, Config(domain=Domain(((-2.0, 2.0),))))
    assert [u.id for u in canon.graph.hidden] == ["fc1:0", "fc1:1"]
    # relu(0.5 x + 3) is 0.5 x + 3 there: the output reads x directly and takes the bias.
    assert canon.graph["out:0"].inputs["input:0"] == pytest.approx(-0.2)
    assert canon.graph["out:0"].bias == pytest.approx(-1.2)
    actions = {(s.action, s.unit) for s in canon.steps}
    assert ("linearize", "fc1:2") in actions and ("remove_dead", "fc1:3") in actions
    assert all(
        "on the domain" in s.detail for s in canon.steps if s.action in ("linearize", "remove_dead")
    )
    # Unbounded, both units can bend: nothing is folded.
    assert len(canonicalize(graph).graph.hidden) == 4


def test_a_unit_whose_range_touches_its_kink_stays_a_unit() -> None:
    """relu(p + n) is the identity on p + n >= 0, and is also how |x| is written as a neuron:
    it stays. relu(p + n + 0.1) never reaches its kink, and folds."""
    x = Unit("input:0", UnitKind.INPUT)
    p = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0})
    n = Unit("fc1:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": -1.0})
    for bias, kept in ((0.0, True), (0.1, False)):
        q = Unit("fc2:0", UnitKind.HIDDEN, Activation.RELU, bias, {"fc1:0": 1.0, "fc1:1": 1.0})
        y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc2:0": 2.0})
        assert ("fc2:0" in canonicalize(NeuronGraph((x, p, n, q, y))).graph) is kept


def test_a_leaky_unit_below_its_kink_folds_with_its_slope() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    leak = Unit("fc1:0", UnitKind.HIDDEN, Activation.LEAKY_RELU, -5.0, {"input:0": 1.0}, alpha=0.1)
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 2.0})
    canon = canonicalize(NeuronGraph((x, leak, y)), Config(domain=Domain(((-1.0, 1.0),))))
    assert canon.graph.hidden == ()
    assert canon.graph["out:0"].inputs == pytest.approx({"input:0": 0.2})
    assert canon.graph["out:0"].bias == pytest.approx(-1.0)

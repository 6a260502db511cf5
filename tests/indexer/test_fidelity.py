"""The canonical form keeps a network's function within the stated bound, and says how far."""

from __future__ import annotations

import numpy as np
import pytest

from circuitql.domain import Domain
from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import Config, canonicalize
from circuitql.indexer.fidelity import canonical_error, faithful_canonical, output_error, probes

X0, X1 = Unit("input:0", UnitKind.INPUT), Unit("input:1", UnitKind.INPUT)


def _normalized_input_network() -> NeuronGraph:
    """An input spanning [0, 60000] read at 1e-5 (normalization folded into the first layer)
    beside one spanning [-1, 1] read at 1: both move the hidden unit alike."""
    hidden = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.2, {X0.id: 1e-5, X1.id: 1.0})
    return NeuronGraph((X0, X1, hidden, Unit("out:0", UnitKind.OUTPUT, inputs={hidden.id: 1.0})))


def test_a_weight_on_a_wide_input_is_judged_by_its_contribution() -> None:
    network = _normalized_input_network()
    wide = Config(domain=Domain(((0.0, 60000.0), (-1.0, 1.0))))
    canon, error = faithful_canonical(network, wide)
    assert X0.id in canon.graph["fc1:0"].inputs
    assert error <= wide.max_error
    # Without a domain, inputs are taken to move alike, over [-1, 1]: there the weight is
    # negligible, and pruning it changes the outputs by less than the bound.
    canon, error = faithful_canonical(network, Config())
    assert X0.id not in canon.graph["fc1:0"].inputs
    assert 0.0 < error <= Config().max_error


def test_a_pruned_weight_leaves_its_mean_over_the_domain_in_the_bias() -> None:
    network = NeuronGraph(
        (X0, X1, Unit("out:0", UnitKind.OUTPUT, bias=0.5, inputs={X0.id: 1.0, X1.id: 1e-5}))
    )
    config = Config(domain=Domain(((-1.0, 1.0), (2.0, 4.0))))
    out = canonicalize(network, config).graph["out:0"]
    assert out.inputs == {X0.id: 1.0}
    assert out.bias == pytest.approx(0.5 + 3e-5, abs=1e-15)
    # What is left is the weight times half the interval (at its ends), over the reach 1.5.
    error = canonical_error(network, canonicalize(network, config).graph, config)
    assert error == pytest.approx(1e-5 / 1.5, rel=1e-3)


def test_weights_negligible_one_by_one_but_not_together_are_kept_and_the_log_says_why() -> None:
    # 200 weights each under prune_tol of the largest add up to 18% of it: pruning them all
    # moves the output far over the bound, so pruning is tightened until it does not.
    inputs = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(201)]
    weights = {"input:0": 1.0, **{f"input:{i}": 9e-4 for i in range(1, 201)}}
    hidden = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, weights)
    network = NeuronGraph(
        (*inputs, hidden, Unit("out:0", UnitKind.OUTPUT, inputs={hidden.id: 1.0}))
    )
    assert len(canonicalize(network).graph["fc1:0"].inputs) == 1
    canon, error = faithful_canonical(network, Config())
    assert len(canon.graph["fc1:0"].inputs) == 201
    assert error <= Config().max_error
    assert [s.action for s in canon.steps[:1]] == ["tighten"]
    assert str(canon.steps[0]).startswith("tighten prune_tol: 0.001 -> 0.0001: canonical error")


def test_a_network_whose_outputs_overflow_is_refused_with_a_reason() -> None:
    hidden = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {X0.id: 1e200})
    network = NeuronGraph((X0, hidden, Unit("out:0", UnitKind.OUTPUT, inputs={hidden.id: 1e200})))
    with pytest.raises(ModelLoadError, match="even without pruning") as err:
        faithful_canonical(network, Config(), "huge.onnx")
    assert "huge.onnx" in str(err.value)


def test_probes_cover_the_domain_and_its_corners() -> None:
    network = _normalized_input_network()
    x = probes(network, Config(domain=Domain(((0.0, 60000.0), (-1.0, 1.0)))))
    assert x[:, 0].min() >= 0.0 and x[:, 0].max() <= 60000.0
    corners = {tuple(row) for row in x.tolist()}
    assert {(0.0, -1.0), (0.0, 1.0), (60000.0, -1.0), (60000.0, 1.0)} <= corners
    unbounded = probes(network, Config())
    assert np.abs(unbounded).max() <= 1.0


def test_output_error_is_relative_to_the_outputs_reach() -> None:
    x = np.array([[1.0], [-1.0]])
    expected = np.array([[2.0, -4.0], [1.0, 0.0]])
    moved = expected + np.array([[0.0, 0.04], [0.0, 0.0]])
    assert output_error(expected, moved, x) == pytest.approx(0.01)
    assert output_error(np.zeros((2, 1)), np.full((2, 1), 0.5), x) == 0.5
    # Outputs a millionth of the inputs are rounding, not a function: their error is absolute.
    assert output_error(np.full((2, 1), 3e-7), np.full((2, 1), 1e-7), x) == pytest.approx(2e-7)
    assert output_error(np.full((2, 1), 3e-7), np.full((2, 1), 1e-7), x * 1e-3) == pytest.approx(
        2 / 3
    )
    assert output_error(expected, expected + np.array([[np.inf, 0.0], [0.0, 0.0]]), x) == np.inf

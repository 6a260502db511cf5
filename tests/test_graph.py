"""A whole network evaluated a level at a time computes what it computes unit by unit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from circuitql import graph as graph_module
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind, input_id
from tests.indexer.random_graphs import any_activation_graphs


@settings(max_examples=60, deadline=None)
@given(network=any_activation_graphs())
def test_evaluating_by_level_agrees_with_evaluating_unit_by_unit(network: NeuronGraph) -> None:
    x = np.random.default_rng(0).normal(size=(32, len(network.inputs))) * 3
    values = network.activations(x)
    one_by_one = np.stack([values[u.id] for u in network.outputs], axis=1)
    np.testing.assert_allclose(network._evaluate_by_level(x), one_by_one, rtol=1e-12, atol=1e-12)


def test_a_level_too_large_for_one_product_is_split_into_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    inputs = [Unit(input_id(i), UnitKind.INPUT) for i in range(6)]
    hidden = [
        Unit(
            f"fc1:{j}",
            UnitKind.HIDDEN,
            Activation.RELU,
            float(rng.normal()),
            {u.id: float(rng.normal()) for u in inputs if rng.random() < 0.7},
        )
        for j in range(9)
    ]
    out = Unit("out:0", UnitKind.OUTPUT, inputs={u.id: float(rng.normal()) for u in hidden})
    network = NeuronGraph((*inputs, *hidden, out))
    x = rng.normal(size=(16, 6))
    whole = network._evaluate_by_level(x)
    monkeypatch.setattr(graph_module, "BLOCK_CELLS", 4)
    np.testing.assert_allclose(network._evaluate_by_level(x), whole, rtol=1e-12)

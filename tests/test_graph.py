"""A whole network evaluated a level at a time computes what it computes unit by unit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql import graph as graph_module
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind, input_id
from tests.indexer.random_graphs import any_activation_graphs


@settings(max_examples=60, deadline=None)
@given(network=any_activation_graphs())
def test_evaluating_by_level_agrees_with_evaluating_unit_by_unit(network: NeuronGraph) -> None:
    x = np.random.default_rng(0).normal(size=(32, len(network.inputs))) * 3
    one_by_one = network._activations_by_unit(x)
    by_level = network._values_by_level(x)
    for i, unit in enumerate(network.units):
        np.testing.assert_allclose(by_level[i], one_by_one[unit.id], rtol=1e-12, atol=1e-12)


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
    whole = network._values_by_level(x)
    monkeypatch.setattr(graph_module, "BLOCK_CELLS", 4)
    np.testing.assert_allclose(network._values_by_level(x), whole, rtol=1e-12)


def test_gelu_is_the_same_whether_erf_goes_value_by_value_or_by_arrays() -> None:
    """A wide GELU layer's values go through erf by arrays, a few through math.erf: the two
    agree to the last bits, so a network's function does not depend on its batch size."""
    import math

    from circuitql.graph import ERF_BY_ARRAY, Activation

    z = np.linspace(-8.0, 8.0, ERF_BY_ARRAY + 1)
    many = Activation.GELU.apply(z)
    one_by_one = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z])
    np.testing.assert_allclose(many, one_by_one, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(Activation.GELU.apply(z[:5]), one_by_one[:5])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=200),
    st.floats(-30.0, 30.0),
)
def test_erf_by_arrays_is_math_erf_to_a_few_units_in_the_last_place(
    values: list[float], spread: float
) -> None:
    """erf by arrays (a series below 3, a continued fraction above) against math.erf: on
    values hypothesis picks (zeros of either sign, subnormals, huge, infinite, nan) and on
    a dense grid through the split, within 4e-15 relative (1.9e-15 the worst of 4 million
    values measured), signs and nan kept."""
    import math

    from circuitql.graph import ERF_SERIES_BELOW, _erf_of_array

    grid = np.linspace(-abs(spread) - ERF_SERIES_BELOW, abs(spread) + ERF_SERIES_BELOW, 4001)
    x = np.concatenate([np.array(values), grid, [0.0, -0.0, 5e-324, ERF_SERIES_BELOW]])
    got = _erf_of_array(x)
    expected = np.array([math.erf(v) for v in x])
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    real = ~np.isnan(expected)
    assert np.array_equal(np.signbit(got[real]), np.signbit(expected[real]))
    np.testing.assert_allclose(got[real], expected[real], rtol=4e-15, atol=0)


def test_a_graph_built_from_arrays_is_checked_as_one_built_from_units() -> None:
    """from_arrays checks on arrays what NeuronGraph checks per input: an edge from a later
    unit, or two units with one id, is refused the same way."""
    from circuitql.graph import EdgeArrays

    units = [
        Unit("input:0", UnitKind.INPUT),
        Unit("h", UnitKind.HIDDEN, Activation.RELU),
        Unit("y", UnitKind.OUTPUT, Activation.IDENTITY),
    ]
    bias = np.zeros(3)

    def edges(src: list[int], dst: list[int]) -> EdgeArrays:
        return EdgeArrays.grouped(np.array(src), np.array(dst), np.ones(len(src)), 3)

    graph = NeuronGraph.from_arrays(units, bias, edges([0, 1], [1, 2]))
    assert graph.units[2].inputs == {"h": 1.0} and graph == NeuronGraph(graph.units)
    with pytest.raises(ValueError, match="'h' reads 'y', which is not an earlier unit"):
        NeuronGraph.from_arrays(units, bias, edges([0, 2], [1, 1]))
    twice = [units[0], units[1], Unit("h", UnitKind.OUTPUT, Activation.IDENTITY)]
    with pytest.raises(ValueError, match="duplicate unit id 'h'"):
        NeuronGraph.from_arrays(twice, bias, edges([0, 1], [1, 2]))


def test_inputs_read_from_arrays_behave_as_the_dicts_they_stand_for() -> None:
    # A graph built from arrays keeps each unit's inputs as a slice of them, made a dict
    # when read: equal to it, listed in the same order, shown and pickled as it.
    import pickle

    from circuitql.graph import EdgeArrays

    units = [
        Unit("input:0", UnitKind.INPUT),
        Unit("input:1", UnitKind.INPUT),
        Unit("y", UnitKind.OUTPUT, Activation.IDENTITY),
    ]
    edges = EdgeArrays.grouped(np.array([1, 0]), np.array([2, 2]), np.array([-2.0, 0.5]), 3)
    graph = NeuronGraph.from_arrays(units, np.array([0.0, 0.0, 1.0]), edges)
    inputs = graph.units[2].inputs
    assert len(inputs) == 2 and graph.units[0].inputs == {}
    expected = {"input:1": -2.0, "input:0": 0.5}
    assert inputs == expected
    assert expected == inputs  # the dict on the left: the reflected comparison
    assert list(inputs) == ["input:1", "input:0"] and list(inputs.values()) == [-2.0, 0.5]
    assert "input:0" in inputs and "y" not in inputs and inputs["input:1"] == -2.0
    assert repr(inputs) == repr({"input:1": -2.0, "input:0": 0.5})
    assert pickle.loads(pickle.dumps(graph)) == graph
    assert type(pickle.loads(pickle.dumps(inputs))) is dict
    plain = NeuronGraph(tuple(u.with_inputs(dict(u.inputs)) for u in graph.units))
    assert plain.content_hash() == graph.content_hash()
    np.testing.assert_array_equal(plain.evaluate(np.eye(2)), graph.evaluate(np.eye(2)))

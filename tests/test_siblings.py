"""The near-parallel rule and the input groups the index counts by it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.signature import groups_column, signature_table
from circuitql.records import DEFAULT_SIGNIFICANCE
from circuitql.siblings import GROUPS_FAN_IN, Source, input_groups, near, sine


def _source(row: dict[str, float], bias: float = 0.0, free: bool = False) -> Source:
    return Source(row, bias, Activation.RELU, free)


def _rotated(degrees: float) -> dict[str, float]:
    angle = math.radians(degrees)
    return {"u": math.cos(angle), "v": math.sin(angle)}


def test_the_sine_is_of_the_angle_between_rows_and_none_past_a_right_angle() -> None:
    thirty = sine({"u": 1.0}, 1.0, _rotated(30), 1.0)
    assert thirty is not None and math.isclose(thirty, 0.5)
    assert sine({"u": 1.0}, 1.0, {"u": -1.0}, 1.0) is None
    assert sine({"u": 1.0}, 1.0, {"u": -1.0}, 1.0, flip=True) == 0.0
    assert sine({}, 0.0, {"u": 1.0}, 1.0) is None


def test_near_needs_both_the_direction_and_the_kink() -> None:
    assert near(0.1, 0.2, 0.05)
    assert not near(0.2, 0.2, 0.05)  # 11.5 degrees apart: past 3 x 5%
    assert not near(0.1, 0.4, 0.05)  # kinks 0.4 apart: past 6 x 5%
    assert not near(None, 0.0, 0.05)


def test_a_split_is_one_group_and_an_anti_parallel_pair_two() -> None:
    host = _source({"u": 1.0, "v": -1.0}, 0.5)
    half = _source({"u": 1.03, "v": -0.97}, 0.52)
    assert input_groups([host, half]) == 1
    assert input_groups([host, _source({"u": -1.0, "v": 1.0}, 0.5)]) == 2
    assert input_groups([host, _source({"u": 1.0, "v": -1.0}, -2.0)]) == 2  # kinks far apart


def test_free_units_join_groups_but_never_make_one() -> None:
    host = _source({"u": 1.0}, 0.0)
    dead = _source({"x": 1.0}, -5.0, free=True)
    assert input_groups([host, dead]) == 1
    assert input_groups([dead]) == 0
    # a free host's halves are one group through it
    assert input_groups([_source({"x": 1.0}, free=True), _source({"x": 1.0, "u": 0.05})]) == 1


def test_units_of_different_activations_never_share_a_group() -> None:
    relu = _source({"u": 1.0})
    tanh = Source({"u": 1.0}, 0.0, Activation.TANH, False)
    assert input_groups([relu, tanh]) == 2


@given(
    angles=st.lists(st.floats(0.0, 40.0), min_size=1, max_size=6),
    offsets=st.lists(st.floats(-0.3, 0.3), min_size=6, max_size=6),
)
def test_groups_are_components_independent_of_order(
    angles: list[float], offsets: list[float]
) -> None:
    # Near-parallel is not transitive (halves 6 and 12 degrees off a host are each near it):
    # the count is of components, so it cannot depend on the order the inputs come in.
    sources = [_source(_rotated(a), b) for a, b in zip(angles, offsets, strict=False)]
    assert input_groups(sources) == input_groups(sources[::-1])
    assert 1 <= input_groups(sources) <= len(sources)


def _reader_network() -> NeuronGraph:
    """Two first-layer units on the inputs (free), then units reading them: h and a half of
    it, g another direction; readers of the split, of a split and a free unit, of h and g."""
    relu, hidden = Activation.RELU, UnitKind.HIDDEN
    units = [
        Unit("input:0", UnitKind.INPUT),
        Unit("input:1", UnitKind.INPUT),
        Unit("u", hidden, relu, 0.0, {"input:0": 1.0, "input:1": -1.0}),
        Unit("v", hidden, relu, 0.0, {"input:0": -1.0, "input:1": 1.0}),
        Unit("h", hidden, relu, -0.5, {"u": 1.0, "v": 1.0}),
        Unit("h2", hidden, relu, -0.52, {"u": 1.03, "v": 0.97}),
        Unit("g", hidden, relu, 0.0, {"u": 1.0, "v": -1.0}),
        Unit("split", hidden, relu, 0.0, {"h": 0.6, "h2": 0.4}),
        Unit("free", hidden, relu, 0.0, {"h": 1.0, "u": -0.5}),
        Unit("two", hidden, relu, 0.0, {"h": 1.0, "g": -1.0}),
        Unit("out", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"split": 1.0, "free": 1.0}),
        Unit("out2", UnitKind.OUTPUT, inputs={"two": 1.0}),
    ]
    return NeuronGraph(tuple(units))


def test_the_index_counts_each_readers_groups() -> None:
    graph = _reader_network()
    table = signature_table(graph)
    groups = dict(zip([u.id for u in graph.units], groups_column(graph, table.fan_in), strict=True))
    assert groups["split"] == 1
    assert groups["free"] == 1  # u reads network inputs only: it may be dead on a domain
    assert groups["two"] == 2
    assert groups["u"] == 2  # two network inputs
    assert groups["input:0"] == 0  # reads nothing: not counted
    assert groups["h"] == 0  # u and v are free: no group of its own


def test_wide_readers_and_other_significances_are_not_counted() -> None:
    wide = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(GROUPS_FAN_IN + 1)]
    row = {u.id: 1.0 + 0.1 * i for i, u in enumerate(wide)}
    graph = NeuronGraph((*wide, Unit("out", UnitKind.OUTPUT, inputs=row)))
    assert groups_column(graph, signature_table(graph).fan_in)[-1] == 0
    reader = _reader_network()
    fan_in = signature_table(reader, 0.1).fan_in
    assert set(groups_column(reader, fan_in, 0.1)) == {0}  # a view judges at the default
    assert set(groups_column(reader, fan_in, DEFAULT_SIGNIFICANCE)) != {0}

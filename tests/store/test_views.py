"""What the query engine reads off a stored neuron's view, without asking the store again."""

from __future__ import annotations

from circuitql.graph import Activation, UnitKind
from circuitql.records import BiasClass, NeuronRecord, Signature
from circuitql.store.base import FAN_IN_SEEN, NARROW_SOURCES, NeuronView


def _view(
    target_fan_ins: tuple[int, ...] | None, source_fan_ins: tuple[int, ...] | None = (0,)
) -> NeuronView:
    signature = Signature(UnitKind.HIDDEN, Activation.RELU, 1, 0, BiasClass.ZERO, 4, 0)
    record = NeuronRecord("h", 1, signature, 0.0, (("h", 1.0),))
    outputs = (("a", 1.0), ("b", 0.5), ("c", 0.2), ("d", 0.1))
    inputs = tuple((f"s{i}", 1.0) for i in range(len(source_fan_ins or (0,))))
    return NeuronView(record, inputs, outputs, target_fan_ins, source_fan_ins)


def test_targets_are_chosen_by_their_fan_in() -> None:
    view = _view((2, 64, FAN_IN_SEEN, 3))
    assert view.targets_with_fan_in(2, 3) == ("a", "d")
    assert view.targets_with_fan_in(3, None) == ("b", "c", "d")
    assert view.targets_with_fan_in(0, 2) == ("a",)


def test_a_fan_in_past_what_a_byte_holds_may_be_any_larger_one() -> None:
    # 255 stands for 255 or more: a pattern unit reading 300 units must still reach it.
    view = _view((2, 64, FAN_IN_SEEN, 3))
    assert view.targets_with_fan_in(300, 300) == ("c",)
    assert view.targets_with_fan_in(FAN_IN_SEEN, FAN_IN_SEEN + 10) == ("c",)


def test_without_fan_ins_every_target_is_reached() -> None:
    # A view read from a store that does not keep them hides nothing.
    assert _view(None).targets_with_fan_in(2, 3) == ("a", "b", "c", "d")


def test_sources_are_chosen_by_their_fan_in() -> None:
    # An input of the network reads nothing; a dense layer's unit, its whole layer.
    view = _view(None, (0, 1, 2, 64, NARROW_SOURCES, NARROW_SOURCES + 1, FAN_IN_SEEN))
    assert view.sources_reading_at_most(0) == []
    assert view.sources_reading_at_most(1) == ["s1"]
    assert view.sources_reading_at_most(2) == ["s1", "s2"]
    assert view.sources_reading_at_most(NARROW_SOURCES) == ["s1", "s2", "s4"]
    assert view.sources_reading_at_most(64) == ["s1", "s2", "s3", "s4", "s5"]
    # Without fan-ins, every source may read as few as asked for.
    assert _view(None, None).sources_reading_at_most(1) == ["s0"]

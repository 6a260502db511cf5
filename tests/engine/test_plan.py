"""Plans of every flat library pattern, for any index statistics: each unit is reached once,
through a unit reached before it, along a pattern edge; candidates are pruned by the units
that can prune them before the engine fetches pattern inputs, which admit any neuron."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql.engine.plan import Plan, plan
from circuitql.language import builtin_library, expand
from circuitql.language.pattern import CircuitPattern, Role

LIBRARY = builtin_library()
FLAT = [p for name in LIBRARY.names for p in expand(LIBRARY.pattern(name), max_repeat=3)]


def _edges(pattern: CircuitPattern) -> set[tuple[str, str]]:
    return {(src, unit.name) for unit in pattern.units for src, _ in unit.inputs}


def _plan_with(pattern: CircuitPattern, costs: Mapping[str, int]) -> Plan:
    """A plan whose index counts each non-input unit by ``costs`` (units with the same
    signature columns share the count of the last of them)."""
    by_columns = {
        frozenset(u.constraint.columns().items()): costs[u.name]
        for u in pattern.units
        if u.role is not Role.INPUT
    }
    return plan(pattern, lambda columns: by_columns[frozenset(columns.items())])


def _drawn(data: st.DataObject, index: int) -> tuple[CircuitPattern, Plan]:
    """Library flat pattern ``index`` and its plan under index counts drawn by hypothesis."""
    pattern = FLAT[index]
    names = [u.name for u in pattern.units if u.role is not Role.INPUT]
    costs = data.draw(st.fixed_dictionaries({n: st.integers(0, 10_000) for n in names}))
    return pattern, _plan_with(pattern, costs)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), index=st.integers(0, len(FLAT) - 1))
def test_every_unit_is_reached_once_along_a_pattern_edge(data: st.DataObject, index: int) -> None:
    pattern, the_plan = _drawn(data, index)
    edges = _edges(pattern)
    reached = [the_plan.anchor]
    for step in the_plan.steps:
        assert step.via in reached and step.unit not in reached
        edge = (step.unit, step.via) if step.direction == "input" else (step.via, step.unit)
        assert edge in edges
        reached.append(step.unit)
    assert sorted(reached) == sorted(u.name for u in pattern.units)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), index=st.integers(0, len(FLAT) - 1))
def test_pattern_inputs_wait_for_every_unit_that_can_prune(data: st.DataObject, index: int) -> None:
    # When the plan steps to a pattern input, no other unit was one step away: the units
    # after it are reachable only through pattern inputs.
    pattern, the_plan = _drawn(data, index)
    edges = _edges(pattern)
    inputs = {u.name for u in pattern.units if u.role is Role.INPUT}
    reached = {the_plan.anchor}
    for k, step in enumerate(the_plan.steps):
        if step.unit in inputs:
            later = {s.unit for s in the_plan.steps[k:]} - inputs
            assert not any(
                (a in reached and b in later) or (b in reached and a in later) for a, b in edges
            )
        reached.add(step.unit)


def test_min4_anchors_on_its_rarest_unit_and_steps_to_its_inputs_last() -> None:
    # a, b, c and d admit any neuron and come last, after every unit that prunes, wherever
    # the anchor is: a detector of the inner min(a, b), whose first step goes to its readers,
    # or a detector of the outer min, whose first step goes to its few sources.
    pattern = next(
        p
        for p in expand(LIBRARY.pattern("min4"))
        if p.variant == "m1=min_skip, m2=min_sym, y=min_sym"
    )
    # As a 10,000-model zoo counts them: the three detectors share a signature, so do y.p
    # and y.n; random dense layers hold many neurons like y.
    counts = {"m1.d": 886, "m2.p": 886, "m2.n": 886, "y.p": 2_545, "y.n": 2_545, "y": 10_914}
    the_plan = _plan_with(pattern, counts)
    order = [step.unit for step in the_plan.steps]
    assert the_plan.anchor == "m1.d"
    assert set(order[:5]) == {"y.p", "y.n", "y", "m2.p", "m2.n"}
    assert set(order[5:]) == {"a", "b", "c", "d"}
    rarer = _plan_with(pattern, {**counts, "y.p": 100, "y.n": 100})
    order = [step.unit for step in rarer.steps]
    assert rarer.anchor == "y.p"
    assert rarer.steps[0].direction == "input"
    assert set(order[-4:]) == {"a", "b", "c", "d"}

"""Plan a flat pattern: which unit to look up first, and in which order to grow from it.

The anchor is the pattern unit whose signature constraint the store's indexes count the fewest
neurons for, so the lookup returns the fewest candidates; the rest of the pattern is reached
from it along pattern edges, each step one store round trip for the neighbours of every
candidate. Steps are ordered so that candidates die before their neighbourhoods are fetched:
a unit's inputs before its outputs, rare units before common ones, pattern inputs last. A
pattern input admits any neuron; stepping to it first (as breadth first would, to the
anchor's inputs) fetches every candidate's inputs, 64-wide views in a dense layer, to prune
nothing.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from circuitql.language.pattern import CircuitPattern, Role
from circuitql.lazy import cached_property


@dataclass(frozen=True)
class Step:
    """Reach ``unit`` as an ``input`` (a source) or an ``output`` (a target) of ``via``."""

    unit: str
    via: str
    direction: Literal["input", "output"]


@dataclass(frozen=True)
class Plan:
    """How to search one flat pattern: look ``anchor`` up through the store's indexes (about
    ``estimate`` stored neurons; 1 when pinned), then take ``steps`` in order. ``counts``
    holds the stored neurons with each computed unit's index columns."""

    pattern: CircuitPattern
    anchor: str
    estimate: int
    steps: tuple[Step, ...]
    counts: Mapping[str, int]

    @property
    def columns(self) -> dict[str, object]:
        """The anchor's signature columns: the index lookup its candidates come from."""
        return self.pattern.unit(self.anchor).constraint.columns()

    @cached_property
    def alongside(self) -> list[dict[str, object]]:
        """The index columns of the other units the pattern computes, each set once: a model
        without a neuron of one of them holds no match, so the anchor's lookup leaves its
        candidates out before any is grown (``Store.find_neurons``). Only units at most
        ``ALONGSIDE_REACH`` times as common as the anchor: the store reads each of their
        neurons to find its model, and a candidate left out saves about a hundred times
        that. Made once per plan: the lookup and EXPLAIN both read it."""
        if self.estimate == 0:
            return []
        anchor = self.columns
        distinct: dict[frozenset[tuple[str, object]], dict[str, object]] = {}
        for unit in self.pattern.units:
            columns = unit.constraint.columns()
            if (
                unit.role is not Role.INPUT
                and columns
                and columns != anchor
                and self.counts.get(unit.name, 0) <= ALONGSIDE_REACH * self.estimate
            ):
                distinct.setdefault(frozenset(columns.items()), columns)
        return list(distinct.values())

    def text(self) -> str:
        """The plan as a tree, for EXPLAIN."""
        lines = [
            f"{self.pattern.name}" + (f" [{self.pattern.variant}]" if self.pattern.variant else ""),
            f"  anchor {self.anchor}: index lookup {self.columns} "
            f"(~{self.estimate} stored neurons)",
        ]
        if self.alongside:
            lines.append(
                f"    in models that also hold a neuron of each of {len(self.alongside)} "
                "other unit(s)' columns"
            )
        depth = {self.anchor: 1}
        for step in self.steps:
            depth[step.unit] = depth[step.via] + 1
            arrow = "<-" if step.direction == "input" else "->"
            lines.append(
                "  " * (depth[step.unit]) + f"{arrow} {step.unit} ({step.direction} of {step.via})"
            )
        return "\n".join(lines)


Counter = Callable[[Mapping[str, object]], int]

# How much more common than the anchor another unit may be and still prune its lookup.
ALONGSIDE_REACH = 2


def plan(pattern: CircuitPattern, count: Counter, pinned: Mapping[str, str] | None = None) -> Plan:
    """``count(columns)`` is the number of stored neurons with those signature columns.

    A pinned variable (``WHERE x = 'input:3'``) is the anchor, whatever its role: the search
    then grows only around that neuron.
    """
    anchors = [u for u in pattern.units if u.role is not Role.INPUT]
    costs = {u.name: count(u.constraint.columns()) for u in anchors}
    pin = next((u.name for u in pattern.units if u.name in (pinned or {})), None)
    if pin is not None:
        return Plan(pattern, pin, 1, _grow(pattern, pin, costs), costs)
    # Cheapest first; among equals, closed fan-in (an exact index key) and hidden units first.
    # A unit whose first step goes to its readers costs no more per candidate than one whose
    # first step goes to its sources: a dense layer's readers are told apart by the fan-ins
    # its view carries (``NeuronView.targets_with_fan_in``), without a store round trip.
    # Weighting such anchors 4 times, as before, made the library's queries at 10,000 hosted
    # models take 22% longer together (default search; 18% EXACT; add 3.1x, min4 2.0x) once
    # depth bounds the lookups.
    best = min(anchors, key=lambda u: (costs[u.name], u.open_fan_in, u.role is Role.OUTPUT))
    return Plan(pattern, best.name, costs[best.name], _grow(pattern, best.name, costs), costs)


def _grow(pattern: CircuitPattern, anchor: str, costs: Mapping[str, int]) -> tuple[Step, ...]:
    """Every unit reached once from ``anchor``, through a unit reached before it.

    Next comes, of the steps open, an input step before an output step (a candidate has a
    few significant inputs but fans out to a whole layer), the rarer unit (``costs``) before
    the commoner, and pattern order among equals; steps to pattern inputs, which prune
    nothing, come last."""
    sources = {u.name: [src for src, _ in u.inputs] for u in pattern.units}
    targets: dict[str, list[str]] = {u.name: [] for u in pattern.units}
    for unit in pattern.units:
        for src in sources[unit.name]:
            targets[src].append(unit.name)
    order = {u.name: i for i, u in enumerate(pattern.units)}

    def rank(step: Step) -> tuple[bool, bool, int, int]:
        return (
            step.unit not in costs,
            step.direction == "output",
            costs.get(step.unit, 0),
            order[step.unit],
        )

    # (rank, order pushed, step): the first way found to reach a unit wins among equals.
    frontier: list[tuple[tuple[bool, bool, int, int], int, Step]] = []
    pushed = itertools.count()
    reached = {anchor}
    steps: list[Step] = []
    current = anchor
    while True:
        for direction, neighbours in (("input", sources[current]), ("output", targets[current])):
            for name in neighbours:
                if name not in reached:
                    step = Step(name, current, direction)  # type: ignore[arg-type]
                    heapq.heappush(frontier, (rank(step), next(pushed), step))
        while frontier and frontier[0][2].unit in reached:
            heapq.heappop(frontier)
        if not frontier:
            return tuple(steps)
        step = heapq.heappop(frontier)[2]
        reached.add(step.unit)
        steps.append(step)
        current = step.unit

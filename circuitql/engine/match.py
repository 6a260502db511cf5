"""From anchor candidates to structural matches: grow the neighbourhood, run the
monomorphism (the weights are checked next, in ``fit``).

Growing follows the plan: each step fetches, in one store round trip for all candidates
together, the significant neighbours of the units found so far and keeps those whose
signature the next pattern unit admits. Nothing outside the pattern's reach is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from circuitql.engine.cache import NeuronCache
from circuitql.engine.isomorphism import monomorphisms
from circuitql.engine.plan import Plan
from circuitql.language.pattern import CircuitPattern, Coef, CoefKind, Role, UnitConstraint
from circuitql.records import NeuronKey
from circuitql.store.base import NeuronView


@dataclass(frozen=True)
class Neighbourhood:
    """Candidate network units per pattern unit, and every fetched unit's view."""

    candidates: Mapping[str, frozenset[str]]
    views: Mapping[str, NeuronView]


def grow(
    cache: NeuronCache,
    anchors: Sequence[NeuronKey],
    plan: Plan,
    keep: Callable[[str, NeuronView], bool] | None = None,
) -> list[tuple[str, Neighbourhood]]:
    """(model, neighbourhood) around each anchor whose every pattern unit has a candidate
    (and that ``keep``, given the anchor's model and view, keeps: what its numbers already
    rule out grows nothing).

    All anchors grow in lockstep: each plan step asks the store once for what every surviving
    neighbourhood reached, so a query costs a few round trips per plan step whatever the
    number of candidates (which is what makes a networked store usable). Neighbourhoods of
    the same model share one view table: their units overlap, and each is fetched once.
    """
    pattern = plan.pattern
    cache.trim()
    views = cache.views
    cache.fetch(anchors)
    alive = [
        (model, {plan.anchor: frozenset([uid])})
        for model, uid in anchors
        if uid in views[model] and (keep is None or keep(model, views[model][uid]))
    ]
    for step in plan.steps:
        unit = pattern.unit(step.unit)
        if pattern.unit(step.via).role is Role.INPUT:  # grown through after all: read it now
            cache.fetch(
                list(
                    dict.fromkeys(
                        (model, uid) for model, candidates in alive for uid in candidates[step.via]
                    )
                )
            )
        reached = [
            (model, _reach(views[model], candidates[step.via], step.direction, unit.constraint))
            for model, candidates in alive
        ]
        if unit.role is Role.INPUT:
            # A pattern input admits any unit, and the only edges of it a match looks at are
            # those its readers hold: its own view (a network input's lists a whole layer)
            # is read once a match binds it, if one does.
            alive = [
                (model, {**candidates, step.unit: uids})
                for (model, candidates), (_, uids) in zip(alive, reached, strict=True)
                if uids
            ]
            continue
        # A dense layer fans out to every unit of the next, and a fan-in reaches units of every
        # kind: look at their signatures first, and fetch edges (64 and more per unit in a
        # dense layer) only for those the next pattern unit admits.
        reached = cache.admits(reached, unit.constraint)
        cache.fetch(list(dict.fromkeys((model, uid) for model, uids in reached for uid in uids)))
        survivors = []
        for (model, candidates), (_, uids) in zip(alive, reached, strict=True):
            hood = views[model]
            via = candidates[step.via]
            kept = frozenset(
                uid
                for uid in uids
                if uid in hood
                and unit.constraint.admits(hood[uid].record.signature)
                and (step.direction == "input" or not hood[uid].sources.isdisjoint(via))
            )
            if kept:
                survivors.append((model, {**candidates, step.unit: kept}))
        alive = survivors
    return [(model, Neighbourhood(candidates, views[model])) for model, candidates in alive]


def _reach(
    views: Mapping[str, NeuronView],
    via: frozenset[str],
    direction: Literal["input", "output"],
    constraint: UnitConstraint,
) -> frozenset[str]:
    """Units one step from ``via``: significant sources, or the targets whose fan-in
    ``constraint`` allows."""
    if direction == "input":
        return frozenset().union(*(views[uid].sources for uid in via))
    low, high = constraint.fan_in_range
    return frozenset().union(*(views[uid].targets_with_fan_in(low, high) for uid in via))


def structural_matches(
    pattern: CircuitPattern, hood: Neighbourhood, expired: Callable[[], bool] = lambda: False
) -> Iterator[dict[str, str]]:
    """The pattern's maps into the neighbourhood, until ``expired`` says the query's time is
    up."""
    allowed: dict[str, set[str]] = {}
    for name, uids in hood.candidates.items():
        for uid in uids:
            allowed.setdefault(uid, set()).add(name)
    # Units standing only for pattern inputs may have no view yet: no pattern edge ends there.
    edges = [
        (src, uid, w)
        for uid in allowed
        if uid in hood.views
        for src, w in hood.views[uid].significant_inputs
        if src in allowed
    ]
    pattern_edges = {
        (src, unit.name): _edge_sign(coef) for unit in pattern.units for src, coef in unit.inputs
    }
    yield from monomorphisms(
        {u: frozenset(n) for u, n in allowed.items()}, edges, pattern_edges, expired
    )


def _edge_sign(coef: Coef) -> int | None:
    value = coef.value if coef.kind is not CoefKind.FREE else 0.0
    if coef.kind is CoefKind.FREE:
        sign = coef.sign({})
        return sign if sign else None
    return 1 if value > 0 else -1

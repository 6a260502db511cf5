"""Run a compiled MATCH: plan, prune by index, grow neighbourhoods, match, fit, verify.

Results stream: ``run`` is a generator that yields each match as soon as it is verified, and
``LIMIT n`` stops the search after n matches instead of truncating a full result. Alternatives
and unrolled repetitions are flat patterns run one after another; a circuit instance (the same
set of network units) found by several of them, or several times by a symmetric pattern (add
is symmetric in a and b), is reported once.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from circuitql.graph import NeuronGraph, UnitKind
from circuitql.query import expr as ev
from circuitql.query.compile import MatchQuery
from circuitql.query.match import Neighbourhood, NeuronCache, fit, grow, structural_matches
from circuitql.query.pattern import CircuitPattern, Role
from circuitql.query.plan import Plan, plan
from circuitql.query.unroll import bounded, expand
from circuitql.query.verify import subnetwork, verify
from circuitql.store.base import Store

if TYPE_CHECKING:
    from circuitql.api import Database
    from circuitql.render import Svg

DEFAULT_TOLERANCE = 0.05
MAX_REPEAT_CAP = 32
STAGES = ("lookup", "grow", "match", "fit", "verify")
# Anchors grown together: one store round trip per plan step for the whole batch, while a
# LIMIT still stops the search after the batch that satisfied it.
GROW_BATCH = 512


@dataclass(frozen=True)
class Match:
    """One verified circuit instance, in the user's coordinates.

    ``bindings`` maps every pattern variable to the source id of the neuron it matched;
    ``members`` lists, per variable, every original neuron merged into that canonical neuron
    (duplicates the canonical form folded together). ``error`` is the largest deviation from
    the reference over the verification probes, relative to the reference's magnitude, after
    the best positive output scale: ``scales`` has one per output (a hidden output's scale is a
    symmetry of the network, a network output's is 1), ``scale`` is the first.
    """

    model: str
    circuit: str
    bindings: Mapping[str, str]
    error: float
    params: Mapping[str, float] = field(default_factory=dict)
    scale: float = 1.0
    scales: tuple[float, ...] = ()
    variant: str = ""
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    graph: NeuronGraph | None = field(default=None, compare=False, repr=False)
    pattern: CircuitPattern | None = field(default=None, compare=False, repr=False)

    def subnetwork(self) -> Any:
        """The circuit alone as an ``nn.Module`` (inputs and output in pattern order)."""
        from circuitql.query.subnetwork import as_module

        assert self.graph is not None
        return as_module(self.graph)

    def draw(self, context: Database | Store | None = None) -> Svg:
        """The matched sub-network as an SVG picture (shown inline in Jupyter); pass the
        database (or store) to draw the whole model with the match highlighted instead."""
        from circuitql.render import draw_match

        return draw_match(self, context)

    def verify(self, inputs: np.ndarray) -> float:
        """Relative error of the matched sub-network against the reference on ``inputs``."""
        from circuitql.query.verify import compare

        assert self.graph is not None and self.pattern is not None
        if self.pattern.reference is None:
            raise ValueError(f"{self.circuit} has no EXPECT clause to verify against")
        x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        expected = self.pattern.reference(x, self.params)
        fixed = (False,) * expected.shape[1]
        scales = np.asarray(self.scales or (self.scale,))
        return compare(scales * self.graph.evaluate(x), expected, fixed).error

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "circuit": self.circuit, "bindings": dict(self.bindings),
                "error": self.error, "params": dict(self.params), "scale": self.scale,
                "variant": self.variant,
                "members": {k: list(v) for k, v in self.members.items() if len(v) > 1}}


@dataclass
class Explain:
    """Counts and seconds per stage, and the plans: what EXPLAIN prints."""

    plans: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    patterns: int = 0
    models: int | None = None  # None: the whole store, not listed

    def to_json(self) -> dict[str, Any]:
        return {"patterns": self.patterns, "models": self.models, "plans": self.plans,
                "counts": dict(self.counts),
                "seconds": {k: round(v, 6) for k, v in self.seconds.items()}}

    def text(self) -> str:
        scope = "all models" if self.models is None else f"{self.models} model(s)"
        lines = [f"{self.patterns} flat pattern(s) over {scope}"]
        lines += self.plans
        for stage in STAGES:
            seconds = self.seconds[stage]
            lines.append(f"{stage:>7}: {self.counts[stage]:>8}  {seconds * 1e3:9.1f} ms")
        return "\n".join(lines)


class _Clock:
    def __init__(self, explain: Explain, stage: str) -> None:
        self.explain, self.stage = explain, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.explain.seconds[self.stage] += time.perf_counter() - self.start


def run(store: Store, query: MatchQuery, explain: Explain | None = None,
        models: Sequence[str] | None = None) -> Iterator[Match]:
    """Verified matches of ``query``, streamed; stops after ``query.limit`` of them.

    ``models`` restricts the search to those model names (on top of ``IN MODELS``).
    """
    explain = explain or Explain()
    tolerance = query.tolerance if query.tolerance is not None else DEFAULT_TOLERANCE
    restricted = query.models is not None or models is not None
    infos = []
    # Listing every model costs per model; a plain query over the whole store never does it,
    # so its cost follows the index's candidates, not the size of the zoo.
    if restricted or query.pins:
        infos = [m for m in store.models()
                 if (query.models is None or fnmatch.fnmatchcase(m.name, query.models))
                 and (models is None or m.name in models)]
        explain.models = len(infos)
        if not infos:
            return
    names = [m.name for m in infos] if restricted else None
    max_repeat = None
    if not bounded(query.pattern):
        # A chain of k blocks needs at least k + 1 layers between input and output.
        max_repeat = max(1, min(MAX_REPEAT_CAP, store.max_layer(names) - 1))
    scope = [m.name for m in infos]  # listed above whenever there are pins
    cache = NeuronCache(store)
    seen: set[tuple[str, frozenset[str]]] = set()
    found = 0
    for pattern in expand(query.pattern, max_repeat):
        if any(var not in pattern.by_name for var in query.pins):
            continue  # a variant without the pinned unit cannot bind it
        explain.patterns += 1
        the_plan = plan(pattern, lambda columns: cache.count(columns, names), query.pins)
        explain.plans.append(the_plan.text())
        for match in _run_pattern(cache, the_plan, names, tolerance, explain, seen,
                                  query.pins, scope):
            yield match
            found += 1
            if query.limit is not None and found >= query.limit:
                return


def _run_pattern(cache: NeuronCache, the_plan: Plan, models: list[str] | None,
                 tolerance: float, explain: Explain, seen: set[tuple[str, frozenset[str]]],
                 pins: Mapping[str, str], scope: list[str]) -> Iterator[Match]:
    pattern = the_plan.pattern
    anchor_unit = pattern.unit(the_plan.anchor)
    with _Clock(explain, "lookup"):
        if the_plan.anchor in pins:
            pinned = frozenset([pins[the_plan.anchor]])
            anchors = [(model, uid) for model, uids in
                       cache.admits([(m, pinned) for m in scope], anchor_unit.constraint)
                       for uid in uids]
        else:
            anchors = cache.lookup(anchor_unit.constraint, models)
    explain.counts["lookup"] += len(anchors)
    for start in range(0, len(anchors), GROW_BATCH):
        with _Clock(explain, "grow"):
            hoods = grow(cache, anchors[start:start + GROW_BATCH], the_plan)
        explain.counts["grow"] += len(hoods)
        for model, hood in hoods:
            yield from _matches_in(model, pattern, hood, tolerance, explain, seen, pins)


def _matches_in(model: str, pattern: CircuitPattern, hood: Neighbourhood, tolerance: float,
                explain: Explain, seen: set[tuple[str, frozenset[str]]],
                pins: Mapping[str, str]) -> Iterator[Match]:
    with _Clock(explain, "match"):
        mappings = [m for m in structural_matches(pattern, hood)
                    if all(m.get(var) == uid for var, uid in pins.items())]
    explain.counts["match"] += len(mappings)
    for mapping in mappings:
        key = (model, frozenset(mapping.values()))
        if key in seen:
            continue
        with _Clock(explain, "fit"):
            fitted = fit(pattern, mapping, hood, tolerance)
            ok = fitted is not None and _where_holds(pattern, fitted.params, tolerance)
        if not ok or fitted is None:
            continue
        explain.counts["fit"] += 1
        with _Clock(explain, "verify"):
            graph = subnetwork(pattern, mapping, hood.views)
            free_scale = tuple(hood.views[mapping[o]].record.signature.kind is not UnitKind.OUTPUT
                               for o in pattern.outputs)
            verdict = verify(pattern, graph, fitted.params, free_scale)
        if verdict.error > tolerance:
            continue
        explain.counts["verify"] += 1
        seen.add(key)
        yield Match(
            model=model,
            circuit=pattern.name,
            bindings={name: mapping[name] for name in _public_order(pattern)},
            error=verdict.error,
            params=dict(fitted.params),
            scale=verdict.scales[0] if verdict.scales else 1.0,
            scales=verdict.scales,
            variant=pattern.variant,
            members={name: tuple(src for src, _ in hood.views[uid].record.members)
                     for name, uid in mapping.items()},
            graph=graph,
            pattern=pattern,
        )


def _public_order(pattern: CircuitPattern) -> list[str]:
    """Inputs, then hidden units, then outputs: the order bindings are listed in."""
    order = {Role.INPUT: 0, Role.HIDDEN: 1, Role.OUTPUT: 2}
    return [u.name for u in sorted(pattern.units, key=lambda u: order[u.role])]


def _where_holds(pattern: CircuitPattern, params: Mapping[str, float], tolerance: float) -> bool:
    """WHERE constraints on fitted parameters; ``==`` holds within the query tolerance
    (fitted numbers are never exactly equal)."""
    for condition in pattern.where:
        left = float(ev.evaluate(condition.left, params))
        right = float(ev.evaluate(condition.right, params))
        slack = tolerance * max(abs(left), abs(right), 1.0)
        holds = {
            "==": abs(left - right) <= slack,
            "!=": abs(left - right) > slack,
            "<": left < right + slack,
            "<=": left <= right + slack,
            ">": left > right - slack,
            ">=": left >= right - slack,
        }[condition.op]
        if not holds:
            return False
    return True

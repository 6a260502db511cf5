"""From anchor candidates to structural matches: grow the neighbourhood, run the
monomorphism, check the weights.

Growing follows the plan: each step fetches, in one store round trip for all candidates
together, the significant neighbours of the units found so far and keeps those whose
signature the next pattern unit admits. Nothing outside the pattern's reach is loaded.
Every structural match is then checked coefficient by coefficient: exact weights as ratios
within tolerance, sign-only weights by sign, free parameters fitted by least squares across
all units that mention them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from circuitql.engine.isomorphism import monomorphisms
from circuitql.engine.plan import Plan
from circuitql.engine.wiring import Wiring, strict
from circuitql.graph import UnitKind
from circuitql.language.pattern import CircuitPattern, Coef, CoefKind, Poly, Role, UnitConstraint
from circuitql.records import NeuronKey, NeuronRecord
from circuitql.store.base import NeuronView, Store


@dataclass(frozen=True)
class Neighbourhood:
    """Candidate network units per pattern unit, and every fetched unit's view."""

    candidates: Mapping[str, frozenset[str]]
    views: Mapping[str, NeuronView]


_Columns = tuple[frozenset[tuple[str, object]], tuple[str, ...] | None]


def _columns_key(columns: Mapping[str, object], models: Sequence[str] | None) -> _Columns:
    return frozenset(columns.items()), None if models is None else tuple(models)


VIEW_LIMIT = 20_000  # cached neuron views per query (a 64-wide view is ~10 KB)


class NeuronCache:
    """What one query has read from the store, shared by all its flat patterns.

    Alternatives and unrolled repetitions (is_even's 2 to 9 folds, min4's 27 combinations of
    min) grow from the same anchors through the same neurons: each view is fetched once per
    query, and each dense fan-out's signature check against a pattern unit is asked once.
    Views are dropped, between batches, once there are ``VIEW_LIMIT`` of them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.views: dict[str, dict[str, NeuronView]] = defaultdict(dict)
        self.size = 0
        self.admitted: dict[UnitConstraint, dict[NeuronKey, bool]] = defaultdict(dict)
        self.lookups: dict[tuple[UnitConstraint, tuple[str, ...] | None], list[NeuronKey]] = {}
        self.everywhere: dict[UnitConstraint, Mapping[str, AbstractSet[str]]] = {}
        self.counts: dict[_Columns, int] = {}
        self.found: dict[_Columns, list[tuple[str, NeuronRecord]]] = {}

    def count(self, columns: Mapping[str, object], models: Sequence[str] | None) -> int:
        """``Store.count_neurons``, asked once per query for each set of columns."""
        key = _columns_key(columns, models)
        if key not in self.counts:
            self.counts[key] = self.store.count_neurons(columns, models)
        return self.counts[key]

    def trim(self) -> None:
        if self.size > VIEW_LIMIT:
            self.views, self.size = defaultdict(dict), 0

    def fetch(self, keys: Sequence[NeuronKey]) -> None:
        missing = [(model, uid) for model, uid in keys if uid not in self.views[model]]
        if missing:
            for (model, uid), view in self.store.fetch(missing).items():
                self.views[model][uid] = view
                self.size += 1

    def lookup(self, constraint: UnitConstraint, models: Sequence[str] | None
               ) -> list[NeuronKey]:
        """The neurons ``constraint`` admits, found through the store's indexes; asked once
        per query for each constraint (the variants of a repetition share their anchor)."""
        key = (constraint, None if models is None else tuple(models))
        if key not in self.lookups:
            self.lookups[key] = [(model, record.uid)
                                 for model, record in self._find(constraint.columns(), models)
                                 if constraint.admits(record.signature)]
        return self.lookups[key]

    def _find(self, columns: Mapping[str, object], models: Sequence[str] | None
              ) -> list[tuple[str, NeuronRecord]]:
        """``Store.find_neurons``, asked once per query for each set of columns: the same
        unit in different places of a pattern differs only in its fan-out bounds (min4's
        detector units, five ways), which no index column holds."""
        key = _columns_key(columns, models)
        if key not in self.found:
            self.found[key] = self.store.find_neurons(columns, models)
        return self.found[key]

    def admits(self, reached: Sequence[tuple[str, frozenset[str]]], constraint: UnitConstraint
               ) -> list[tuple[str, frozenset[str]]]:
        """Per (model, uids), the uids whose signature ``constraint`` admits. Units not yet
        fetched are judged by the store's indexed columns first, so that rejected neurons
        never leave it.

        When the store holds fewer neurons with those columns than there are uids (a rare
        signature, a zoo-sized batch of fan-outs), one index lookup of them all is cheaper
        than sending the keys, and every later step and variant reuses it: each model's
        uids then meet that model's admitted neurons in one set intersection."""
        columns = constraint.columns()
        if columns and self.count(columns, None) <= sum(len(uids) for _, uids in reached):
            everywhere = self._everywhere(constraint)
            return [(model, uids & everywhere.get(model, _NONE)) for model, uids in reached]
        views, known = self.views, self.admitted[constraint]
        unknown = list(dict.fromkeys(
            (model, uid) for model, uids in reached for uid in uids
            if uid not in views[model] and (model, uid) not in known))
        if unknown:
            records = self.store.records(unknown, columns)
            for key in unknown:
                known[key] = key in records and constraint.admits(records[key].signature)
        return [(model, frozenset(uid for uid in uids if (
                    constraint.admits(views[model][uid].record.signature)
                    if uid in views[model] else known[model, uid])))
                for model, uids in reached]

    def _everywhere(self, constraint: UnitConstraint) -> Mapping[str, AbstractSet[str]]:
        """Every stored neuron ``constraint`` admits, by model."""
        if constraint not in self.everywhere:
            by_model: dict[str, set[str]] = defaultdict(set)
            for model, uid in self.lookup(constraint, None):
                by_model[model].add(uid)
            self.everywhere[constraint] = by_model
        return self.everywhere[constraint]


_NONE: frozenset[str] = frozenset()


def grow(cache: NeuronCache, anchors: Sequence[NeuronKey], plan: Plan
         ) -> list[tuple[str, Neighbourhood]]:
    """(model, neighbourhood) around each anchor whose every pattern unit has a candidate.

    All anchors grow in lockstep: each plan step asks the store once for what every surviving
    neighbourhood reached, so a query costs a few round trips per plan step whatever the
    number of candidates (which is what makes a networked store usable). Neighbourhoods of
    the same model share one view table: their units overlap, and each is fetched once.
    """
    pattern = plan.pattern
    cache.trim()
    views = cache.views
    cache.fetch(anchors)
    alive = [(model, {plan.anchor: frozenset([uid])}) for model, uid in anchors
             if uid in views[model]]
    for step in plan.steps:
        unit = pattern.unit(step.unit)
        if pattern.unit(step.via).role is Role.INPUT:  # grown through after all: read it now
            cache.fetch(list(dict.fromkeys((model, uid) for model, candidates in alive
                                           for uid in candidates[step.via])))
        reached = [(model, _reach(views[model], candidates[step.via], step.direction,
                                  unit.constraint))
                   for model, candidates in alive]
        if unit.role is Role.INPUT:
            # A pattern input admits any unit, and the only edges of it a match looks at are
            # those its readers hold: its own view (a network input's lists a whole layer)
            # is read once a match binds it, if one does.
            alive = [(model, {**candidates, step.unit: uids})
                     for (model, candidates), (_, uids) in zip(alive, reached, strict=True)
                     if uids]
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
                uid for uid in uids
                if uid in hood and unit.constraint.admits(hood[uid].record.signature)
                and (step.direction == "input" or not hood[uid].sources.isdisjoint(via))
            )
            if kept:
                survivors.append((model, {**candidates, step.unit: kept}))
        alive = survivors
    return [(model, Neighbourhood(candidates, views[model])) for model, candidates in alive]


def _reach(views: Mapping[str, NeuronView], via: frozenset[str],
           direction: Literal["input", "output"], constraint: UnitConstraint
           ) -> frozenset[str]:
    """Units one step from ``via``: significant sources, or the targets whose fan-in
    ``constraint`` allows."""
    if direction == "input":
        return frozenset().union(*(views[uid].sources for uid in via))
    low, high = constraint.fan_in_range
    return frozenset().union(*(views[uid].targets_with_fan_in(low, high) for uid in via))


def structural_matches(pattern: CircuitPattern, hood: Neighbourhood) -> Iterator[dict[str, str]]:
    allowed: dict[str, set[str]] = {}
    for name, uids in hood.candidates.items():
        for uid in uids:
            allowed.setdefault(uid, set()).add(name)
    # Units standing only for pattern inputs may have no view yet: no pattern edge ends there.
    edges = [(src, uid, w) for uid in allowed if uid in hood.views
             for src, w in hood.views[uid].significant_inputs if src in allowed]
    pattern_edges = {(src, unit.name): _edge_sign(coef)
                     for unit in pattern.units for src, coef in unit.inputs}
    yield from monomorphisms({u: frozenset(n) for u, n in allowed.items()}, edges,
                             pattern_edges)


def _edge_sign(coef: Coef) -> int | None:
    value = coef.value if coef.kind is not CoefKind.FREE else 0.0
    if coef.kind is CoefKind.FREE:
        sign = coef.sign({})
        return sign if sign else None
    return 1 if value > 0 else -1


@dataclass(frozen=True)
class Fit:
    """Parameter values and each unit's scale (network weights / pattern coefficients).

    ``input_scales`` holds the positive scale of each circuit input bound to a hidden unit:
    the circuit reads ``scale * canonical value``, since a hidden unit's own scale is a
    symmetry of the network.
    """

    params: Mapping[str, float]
    scales: Mapping[str, float]
    residual: float
    input_scales: Mapping[str, float] = field(default_factory=dict)


Equation = tuple[Poly, float]  # poly(params) == value, both divided by the unit's largest weight


def fit(pattern: CircuitPattern, mapping: Mapping[str, str], hood: Neighbourhood,
        tolerance: float, wiring: Wiring | None = None, approximate: bool = False,
        kinks: AbstractSet[str] = frozenset()) -> Fit | None:
    """Check every unit's weights against the pattern; fit free parameters. None: no fit.

    Weights come from ``wiring`` (default: the matched edges alone) and are compared as
    ratios: residuals are relative to each unit's largest weight, so ``tolerance`` means the
    same thing for every unit.

    Exactly, a unit's scale (canonical weights / pattern coefficients) is fitted on its own
    exact coefficients, bias included; a unit the canonical form never rescales (an output,
    a sigmoid) has scale 1 even without them. Approximately, scales are fitted across the
    circuit (``_scales``): each circuit input bound to a hidden unit gets a scale of its own,
    and a unit's scale carries into the weights of its readers. The biases of ``kinks``
    (units whose zero bias approximation lets move) are not compared here: how far their
    kinks sit from the origin is judged on the domain, by verification.
    """
    wiring = wiring or strict(pattern, mapping, hood.views)
    unit_scale: dict[str, float] = {}
    source_scale: dict[str, float] = {}
    if approximate:
        fitted = _scales(pattern, mapping, hood.views, wiring)
        if fitted is None:
            return None
        unit_scale, source_scale = fitted
    scales: dict[str, float] = {}
    equations: list[Equation] = []
    worst = 0.0
    for unit in pattern.units:
        if unit.role is Role.INPUT:
            continue
        view = hood.views[mapping[unit.name]]
        weights = wiring.weights[unit.name]
        terms = [(weights[src], _scaled(coef, source_scale.get(src))) for src, coef in unit.inputs]
        terms.append((view.record.bias, unit.bias))
        top = max((abs(w) for w, _ in terms[:-1]), default=0.0) or 1.0
        fixed = _fixed_scale(view)
        scale = unit_scale.get(unit.name, fixed) if approximate else _unit_scale(terms, fixed)
        if scale is not None and scale <= 0:
            return None
        for value, coef in terms:
            if coef.kind is CoefKind.SIGN:
                if value * coef.value <= 0:
                    return None  # an approximate wiring can move a weight across zero
                continue
            if scale is None or (coef is unit.bias and unit.name in kinks):
                continue  # nothing to compare against, or a kink judged on the domain
            if coef.kind is CoefKind.EXACT:
                worst = max(worst, abs(value - scale * coef.value) / top)
            else:
                equations.append((coef.poly.scaled(scale / top), value / top))
        if worst > tolerance:
            return None
        if scale is not None:
            scales[unit.name] = scale
    params = _solve(pattern.params, equations)
    if params is None:
        return None
    residual = max((abs(poly.evaluate(params) - value) for poly, value in equations),
                   default=0.0)
    if residual > tolerance:
        return None
    inputs = {name: source_scale[name] for name in pattern.inputs if name in source_scale}
    return Fit(params, scales, max(worst, residual), inputs)


def _scaled(coef: Coef, scale: float | None) -> Coef:
    """A coefficient on a source the network carries at ``scale`` times the pattern's."""
    if scale is None or coef.kind is CoefKind.SIGN:
        return coef
    return Coef(coef.poly.scaled(scale))


# How strongly a hidden input's scale is pulled to its canonical scale where the weights
# leave it free: far too weakly to move a scale they determine.
GAUGE_PULL = 1e-3


def _scales(pattern: CircuitPattern, mapping: Mapping[str, str],
            views: Mapping[str, NeuronView], wiring: Wiring
            ) -> tuple[dict[str, float], dict[str, float]] | None:
    """Every unit's scale k and every source's scale, fitted across the circuit together.

    A network unit computes 1/k_U times its pattern unit (k_U = 1 where the canonical form
    never rescales), and a circuit input bound to a hidden unit is read at 1/s_i its value.
    So an exact coefficient c of source j in unit U predicts the weight
    w = c * sigma_j * k_U, with sigma_j = s_j for such an input, 1/k_j for a hidden pattern
    unit and 1 for a network input; an exact bias c predicts b = c * k_U. Least squares on
    log |w / c| gives every scale at once, consistent across the circuit: a decoy whose two
    detectors read different directions, or whose reader weighs a unit as its scale does not
    allow, leaves residuals the ratio checks then reject. None when a weight's sign
    disagrees with its coefficient's.

    Where the weights leave an input's scale free (x's scale against its readers' in
    is_even: only their product is seen), it stays at the canonical scale, 1: a weak pull
    toward it decides, never the data. A circuit whose reference is not scale-free (parity
    on the integers) is only found there.
    """
    unknowns: dict[str, int] = {}
    for name in pattern.inputs:
        if views[mapping[name]].record.signature.kind is not UnitKind.INPUT:
            unknowns[name] = len(unknowns)
    inputs = list(unknowns.values())
    for unit in pattern.units:
        if unit.role is not Role.INPUT and _fixed_scale(views[mapping[unit.name]]) is None:
            unknowns[unit.name] = len(unknowns)
    rows: list[tuple[dict[int, float], float]] = []
    for unit in pattern.units:
        if unit.role is Role.INPUT:
            continue
        terms: list[tuple[float, Coef, str | None]] = [
            (wiring.weights[unit.name][src], coef, src) for src, coef in unit.inputs]
        terms.append((views[mapping[unit.name]].record.bias, unit.bias, None))
        for value, coef, src in terms:
            if coef.kind is not CoefKind.EXACT or coef.is_zero:
                continue
            if value * coef.value <= 0:
                return None
            row: dict[int, float] = {}
            if unit.name in unknowns:
                row[unknowns[unit.name]] = 1.0  # log k_U
            if src in unknowns:
                sign = 1.0 if pattern.unit(src).role is Role.INPUT else -1.0
                row[unknowns[src]] = row.get(unknowns[src], 0.0) + sign  # log sigma_j
            rows.append((row, math.log(value / coef.value)))
    rows += [({column: GAUGE_PULL}, 0.0) for column in inputs]
    log = np.zeros(len(unknowns))
    if rows and unknowns:
        a = np.zeros((len(rows), len(unknowns)))
        for r, (row, _) in enumerate(rows):
            for column, factor in row.items():
                a[r, column] = factor
        log, *_ = np.linalg.lstsq(a, np.array([value for _, value in rows]), rcond=None)
    unit_scale, source_scale = {}, {}
    for name, column in unknowns.items():
        value = math.exp(float(log[column]))
        if pattern.unit(name).role is Role.INPUT:
            source_scale[name] = value
        else:
            unit_scale[name] = value
            source_scale[name] = 1.0 / value
    return unit_scale, source_scale


def _fixed_scale(view: NeuronView) -> float | None:
    """Scale 1 for units canonicalization leaves unscaled (outputs, sigmoid/tanh/gelu)."""
    sig = view.record.signature
    if sig.kind is UnitKind.OUTPUT or not sig.activation.positively_homogeneous:
        return 1.0
    return None


def _unit_scale(terms: list[tuple[float, Coef]], fixed: float | None) -> float | None:
    """Least-squares scale of the exact nonzero coefficients, else ``fixed``."""
    exact = [(w, c.value) for w, c in terms if c.kind is CoefKind.EXACT and c.value != 0]
    if not exact:
        return fixed
    w = np.array([e[0] for e in exact])
    c = np.array([e[1] for e in exact])
    return float(w @ c / (c @ c))


def _solve(names: tuple[str, ...], equations: list[Equation]) -> dict[str, float] | None:
    """Solve polynomial equations by rounds of linear least squares.

    Each round substitutes the parameters known so far; equations left linear in the unknowns
    are solved together (M from ``-M*x``, then c from ``M*c`` in the next round). Parameters
    no equation pins down make the fit fail: their value would be a guess.
    """
    known: dict[str, float] = {}
    while len(known) < len(names):
        rows = [r for r in (_linear(poly, known, value) for poly, value in equations) if r]
        unknowns = sorted({p for linear, _ in rows for p in linear})
        if not unknowns:
            return None
        a = np.array([[linear.get(p, 0.0) for p in unknowns] for linear, _ in rows])
        b = np.array([value for _, value in rows])
        if np.linalg.matrix_rank(a) < len(unknowns):
            return None
        solution, *_ = np.linalg.lstsq(a, b, rcond=None)
        known.update(zip(unknowns, solution.tolist(), strict=True))
    return known


def _linear(poly: Poly, known: Mapping[str, float], value: float
            ) -> tuple[dict[str, float], float] | None:
    """``poly == value`` with known parameters substituted, as (coefficients of the unknowns,
    right-hand side), when it is linear in them and mentions at least one."""
    linear: dict[str, float] = {}
    rhs = value
    for mono, factor in poly.terms:
        rest = [p for p in mono if p not in known]
        factor *= float(np.prod([known[p] for p in mono if p in known]))
        if not rest:
            rhs -= factor
        elif len(rest) == 1:
            linear[rest[0]] = linear.get(rest[0], 0.0) + factor
        else:
            return None
    return (linear, rhs) if linear else None

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
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from circuitql.domain import Domain
from circuitql.engine.cache import NeuronCache
from circuitql.engine.collector import collector_paused
from circuitql.engine.explain import Clock, Explain, PartialAnswer
from circuitql.engine.fit import Fit, fit
from circuitql.engine.match import Neighbourhood, grow, structural_matches
from circuitql.engine.plan import Plan, plan
from circuitql.engine.results import Match
from circuitql.engine.verify import (
    Probed,
    Probing,
    faithfulness,
    kink_floor,
    kink_ratio,
    reference_values,
    subnetwork,
    verify,
)
from circuitql.engine.wiring import (
    Fetch,
    approximate,
    loose_inputs,
    relaxed,
    strict,
    with_quiet,
)
from circuitql.graph import NeuronGraph, UnitKind, input_index
from circuitql.language.compile import MatchQuery
from circuitql.language.pattern import DEFAULT_INTERVAL, CircuitPattern, Role
from circuitql.language.unroll import unrolled
from circuitql.store.base import NeuronView, Store

DEFAULT_TOLERANCE = 0.05
# Seconds a search may run without a TIMEOUT of its own: a query over a 10,000-model zoo takes
# about a second; one that runs for minutes is a pattern that explodes, and the answer so far
# is more use than a wait with no end.
DEFAULT_TIMEOUT = 120.0
# How far from the origin a pattern's zero-bias kink may sit in an approximate match, in
# spans of its unit's pre-activation where the circuit is probed (or TOLERANCE, if larger).
# Where a moved kink shows in the function (abs: a dead or live zone; min: a shifted
# threshold), verification rejects it long before this; where it cannot show (a detector
# pair recombined linearly, both kinks at one point, the output bias cancelling: identity,
# negation, which training leaves anywhere the loss is flat) this is the rule left: each
# detector is off on at least a quarter of its range and on on another, so it detects a
# sign. Kinks near the domain's ends make units linear on the data, not a detector pair.
KINK_REACH = 0.25


# Anchors grown together: one store round trip per plan step for the whole batch, while a
# LIMIT still stops the search after the batch that satisfied it.
GROW_BATCH = 512


def run(
    store: Store,
    query: MatchQuery,
    explain: Explain | None = None,
    models: Sequence[str] | None = None,
) -> Iterator[Match]:
    """Verified matches of ``query``, streamed; stops after ``query.limit`` of them, or at
    its deadline (``TIMEOUT``, else ``DEFAULT_TIMEOUT``): then ``explain.partial`` says so
    and a ``PartialAnswer`` warning is issued.

    ``models`` restricts the search to those model names (on top of ``IN MODELS``).
    """
    explain = explain or Explain()
    scope = _scope(store, query, models)
    if scope.listed is not None:
        explain.models = len(scope.listed)
        if not scope.listed:
            return
    seconds = query.timeout if query.timeout is not None else DEFAULT_TIMEOUT
    search = _Search(store, query, explain, scope, time.monotonic() + seconds)
    found = 0
    for pattern in unrolled(query.pattern, lambda: store.max_layer(scope.names)):
        if any(var not in pattern.by_name for var in query.pins):
            continue  # a variant without the pinned unit cannot bind it
        if search.expired():
            break
        for match in _run_pattern(search, pattern):
            yield match
            found += 1
            if query.limit is not None and found >= query.limit:
                return
    if search.expired():
        explain.partial = (
            f"the search stopped at its {seconds:g} s deadline with {found} "
            "match(es): there may be more"
        )
        warnings.warn(explain.partial, PartialAnswer, stacklevel=2)


@dataclass(frozen=True)
class _Scope:
    """The models a query searches. ``names`` restricts index lookups (None: the whole
    store, never listed, so that a plain query's cost follows the index's candidates and not
    the size of the zoo); ``listed`` has every model in scope, read only when the query
    restricts the models or pins a unit (whose model is not known beforehand)."""

    names: list[str] | None
    listed: list[str] | None


def _scope(store: Store, query: MatchQuery, models: Sequence[str] | None) -> _Scope:
    restricted = query.models is not None or models is not None
    if not (restricted or query.pins):
        return _Scope(None, None)
    listed = [
        m.name
        for m in store.models()
        if (query.models is None or fnmatch.fnmatchcase(m.name, query.models))
        and (models is None or m.name in models)
    ]
    return _Scope(listed if restricted else None, listed)


@dataclass
class _Search:
    """One query's state, carried through every stage in place of many arguments: the
    store and its per-query cache, the query's settings and scope, its deadline, the
    instances already reported, and each model's domain as it is first needed."""

    store: Store
    query: MatchQuery
    explain: Explain
    scope: _Scope
    deadline: float  # time.monotonic() past which the search stops
    cache: NeuronCache = field(init=False)
    seen: set[tuple[str, frozenset[str]]] = field(default_factory=set)
    domains: dict[str, Domain | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache = NeuronCache(self.store)

    @property
    def tolerance(self) -> float:
        given = self.query.tolerance
        return given if given is not None else DEFAULT_TOLERANCE

    @property
    def approximate(self) -> bool:
        return not self.query.exact

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def read_domains(self, models: Iterable[str]) -> None:
        """Read the domains of ``models`` not read yet, in one store round trip: those of
        every model a batch's structural matches lie in, before any is fitted."""
        missing = [model for model in dict.fromkeys(models) if model not in self.domains]
        if missing:
            found = self.store.domains(missing)
            self.domains.update((model, found.get(model)) for model in missing)

    def domain(self, model: str) -> Domain | None:
        self.read_domains([model])
        return self.domains[model]

    def interval(self, model: str, uid: str) -> tuple[float, float] | None:
        """Where the network input ``uid`` lives: its interval of the model's domain (None
        for a unit that is no network input, or a model without a domain)."""
        index, domain = input_index(uid), self.domain(model)
        if index is None or domain is None or index >= len(domain.box):
            return None
        return domain.box[index]

    def probed_on(self, model: str, uid: str) -> tuple[float, float]:
        """The interval of the network input ``uid``, the default probe range where the
        model has no domain."""
        return self.interval(model, uid) or DEFAULT_INTERVAL

    def box(self, model: str, uids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """``probed_on`` of each of ``uids``."""
        return {uid: self.probed_on(model, uid) for uid in uids}

    def fetcher(self, model: str, views: dict[str, NeuronView]) -> Fetch:
        """Views of more units of ``model`` (split halves the wiring looks at, the cone a
        faithfulness is measured on), read from ``views`` where they are and through the
        query's cache, into ``views``, where they are not."""

        def fetch(uids: Sequence[str]) -> Mapping[str, NeuronView]:
            missing = [(model, uid) for uid in uids if uid not in views]
            if missing:  # through the query's cache: the next match in the model reuses them
                self.cache.fetch(missing)
                known = self.cache.views[model]
                views.update({uid: known[uid] for _, uid in missing if uid in known})
            return {uid: views[uid] for uid in uids if uid in views}

        return fetch


def _run_pattern(search: _Search, pattern: CircuitPattern) -> Iterator[Match]:
    """Matches of one flat pattern, planned over the pattern as it is looked up (relaxed,
    for an approximate search)."""
    explain = search.explain
    explain.patterns += 1
    looked_up = relaxed(pattern, search.tolerance) if search.approximate else pattern
    the_plan = plan(
        looked_up,
        lambda columns: search.cache.count(columns, search.scope.names),
        search.query.pins,
    )
    explain.plans.append(the_plan.text())
    with collector_paused(), Clock(explain, "lookup"):
        anchors = _anchors(search, the_plan)
    explain.counts["lookup"] += len(anchors)
    explain.advance(0)
    in_reach = _kink_in_reach(search, pattern, the_plan.anchor)
    for start in range(0, len(anchors), GROW_BATCH):
        if search.expired():
            return
        with collector_paused():
            with Clock(explain, "grow"):
                batch = anchors[start : start + GROW_BATCH]
                if in_reach is not None:
                    search.read_domains(model for model, _ in batch)
                hoods = grow(search.cache, batch, the_plan, in_reach)
            explain.counts["grow"] += len(hoods)
            with Clock(explain, "match"):
                matched = _structural(search, pattern, hoods)
        explain.advance(len(batch))  # the caller's on_progress: with its own collector
        yield from _verified(search, pattern, matched)


def _verified(
    search: _Search,
    pattern: CircuitPattern,
    matched: list[tuple[str, Neighbourhood, list[dict[str, str]]]],
) -> Iterator[Match]:
    """The matches of each neighbourhood in turn, with the collector paused from one match
    handed to the caller to the next, not resumed after every neighbourhood: each resume
    sets off a pass over what the pause allocated, and most neighbourhoods hold none (a
    fifth of MATCH or_gate's time at 10,000 models went to those passes)."""
    pending = iter(matched)
    while True:
        found: list[Match] = []
        with collector_paused():
            for model, hood, mappings in pending:
                if search.expired():
                    return
                search.explain.counts["match"] += len(mappings)
                found = list(_matches_in(search, _Candidates(model, pattern, hood, mappings)))
                if found:
                    break
        if not found:
            return
        yield from found


def _past(deadline: float) -> bool:
    return time.monotonic() > deadline


def _anchors(search: _Search, the_plan: Plan) -> list[tuple[str, str]]:
    """The (model, unit) pairs the plan's anchor may bind: the index's candidates, or the
    pinned unit in each model in scope that admits it."""
    constraint = the_plan.pattern.unit(the_plan.anchor).constraint
    pin = search.query.pins.get(the_plan.anchor)
    if pin is None:
        return search.cache.lookup(constraint, search.scope.names, the_plan.alongside)
    pinned = frozenset([pin])
    in_scope = [(m, pinned) for m in search.scope.listed or ()]
    return [(m, uid) for m, uids in search.cache.admits(in_scope, constraint) for uid in uids]


def _structural(
    search: _Search, pattern: CircuitPattern, hoods: list[tuple[str, Neighbourhood]]
) -> list[tuple[str, Neighbourhood, list[dict[str, str]]]]:
    """The structural matches of ``pattern`` in each neighbourhood that respect the pins;
    then the units bound to pattern inputs, which growth did not read, and (approximately)
    the extra inputs the wiring must explain, in one store round trip for the whole batch,
    not one per neighbourhood or per match."""
    pins = search.query.pins
    # The deadline alone, not the search: networkx's matcher (a large neighbourhood's) keeps
    # reference cycles, and through a bound method they would hold every view read so far.
    expired = partial(_past, search.deadline)
    matched = []
    for model, hood in hoods:
        if search.expired():
            break
        mappings = [
            m
            for m in structural_matches(pattern, hood, expired)
            if all(m.get(v) == uid for v, uid in pins.items())
        ]
        matched.append((model, hood, mappings))

    def needed(mapping: dict[str, str], views: Mapping[str, NeuronView]) -> Iterable[str]:
        yield from mapping.values()
        if search.approximate:
            yield from loose_inputs(pattern, mapping, views)

    unread = {
        (model, uid)
        for model, hood, mappings in matched
        for mapping in mappings
        for uid in needed(mapping, hood.views)
        if uid not in hood.views
    }
    search.cache.fetch(sorted(unread))
    search.read_domains(model for model, _, mappings in matched if mappings)
    return matched


@dataclass(frozen=True)
class _Candidates:
    """Structural matches of one flat pattern in one neighbourhood of one model: what the
    numeric stages (fit, verify) take in turn."""

    model: str
    pattern: CircuitPattern
    hood: Neighbourhood
    mappings: list[dict[str, str]]


def _matches_in(search: _Search, found: _Candidates) -> Iterator[Match]:
    """The candidates that fit the pattern's numbers and verify, as matches; a circuit
    instance reported already (by another flat pattern, or a symmetric mapping) is not
    reported again."""
    model, pattern, hood, mappings = found.model, found.pattern, found.hood, found.mappings
    explain, tolerance = search.explain, search.tolerance
    offsets = _movable_offsets(search, pattern)
    views = dict(hood.views)  # a copy: the cache's table may be trimmed meanwhile
    fetch = search.fetcher(model, views)
    fetch(sorted({uid for mapping in mappings for uid in mapping.values()}))  # read already
    bound = Neighbourhood(hood.candidates, views)
    for mapping in mappings:
        if search.expired():
            return
        key = (model, frozenset(mapping.values()))
        if key in search.seen:
            continue
        with Clock(explain, "fit"):
            ranges = _input_ranges(search, model, pattern, mapping)
            wiring = (
                approximate(pattern, mapping, views, fetch, tolerance, ranges)
                if search.approximate
                else strict(pattern, mapping, views)
            )
            kinks = _movable_kinks(search, pattern, mapping)
            fitted = (
                None
                if wiring is None
                else fit(
                    pattern, mapping, bound, tolerance, wiring, search.approximate, kinks, offsets
                )
            )
            fits: tuple[Probing, Probed | None] | None = None  # how to verify, if it fits
            if (
                wiring is not None
                and fitted is not None
                and _where_holds(pattern, fitted.params, tolerance)
            ):
                probing = _probing(search, model, pattern, mapping, views, kinks)
                floor = partial(kink_floor, pattern, mapping, views, wiring, kinks)
                holds, probed = _judged_early(pattern, fitted, probing, floor, tolerance)
                fits = (probing, probed) if holds else None
        if fits is None or fitted is None or wiring is None:
            continue
        probing, probed = fits
        explain.counts["fit"] += 1
        with Clock(explain, "verify"):
            graph = subnetwork(pattern, mapping, views, wiring, fitted.input_scales)
            verdict = verify(pattern, mapping, graph, fitted.params, probing, probed)
            if search.approximate and verdict.error > tolerance:
                wiring = with_quiet(wiring, pattern, mapping, views, fetch, ranges)
                if wiring.quiet:
                    graph = subnetwork(pattern, mapping, views, wiring, fitted.input_scales)
                    verdict = verify(pattern, mapping, graph, fitted.params, probing, probed)
        if verdict.error > tolerance or verdict.kink > max(tolerance, KINK_REACH):
            continue
        explain.counts["verify"] += 1
        search.seen.add(key)
        exact = not search.approximate or (
            not wiring.approximate
            and not wiring.quiet
            and all(
                unit.constraint.admits(views[mapping[unit.name]].record.signature)
                for unit in pattern.units
                if unit.role is not Role.INPUT
            )
            and fit(pattern, mapping, bound, tolerance) is not None
        )
        members = {
            name: tuple(src for src, _ in views[uid].record.members)
            for name, uid in mapping.items()
        }
        for name, uids in wiring.siblings.items():
            members[name] += tuple(src for uid in uids for src, _ in views[uid].record.members)
        yield Match(
            model=model,
            circuit=pattern.name,
            bindings={name: mapping[name] for name in _public_order(pattern)},
            error=verdict.error,
            params=dict(fitted.params),
            scale=verdict.scales[0] if verdict.scales else 1.0,
            scales=verdict.scales,
            variant=pattern.variant,
            members=members,
            graph=graph,
            pattern=pattern,
            exact=exact,
            input_scales={k: v for k, v in fitted.input_scales.items()},
            measure=partial(
                _faithfulness,
                search,
                model,
                fetch,
                graph,
                tuple(mapping[o] for o in pattern.outputs),
            ),
        )


def _faithfulness(
    search: _Search, model: str, fetch: Fetch, circuit: NeuronGraph, outputs: tuple[str, ...]
) -> float:
    """``verify.faithfulness`` of a match, on the cone of its outputs: measured when asked
    for, since reading the cone costs a store round trip per layer."""
    cone = _cone(outputs, fetch)
    return faithfulness(cone, circuit, outputs, search.box(model, [u.id for u in cone.inputs]))


def _cone(outputs: Sequence[str], fetch: Fetch) -> NeuronGraph:
    """Every unit ``outputs`` depend on, as a network: one store round trip per layer,
    views the search has read already costing nothing."""
    cone: dict[str, NeuronView] = {}
    frontier = list(outputs)
    while frontier:
        found = fetch(frontier)
        cone.update(found)
        frontier = list(
            dict.fromkeys(
                src
                for uid in frontier
                if uid in found
                for src, _ in found[uid].inputs
                if src not in cone
            )
        )
    order = sorted(cone.values(), key=lambda v: v.record.layer)
    return NeuronGraph(tuple(v.record.unit(dict(v.inputs)) for v in order))


def _input_ranges(
    search: _Search, model: str, pattern: CircuitPattern, mapping: Mapping[str, str]
) -> dict[str, tuple[float, float]]:
    """The range of each network input the circuit reads, by uid: its interval of the
    model's domain, else the probe range the circuit is verified on."""
    return search.box(
        model, [mapping[name] for name in pattern.inputs if input_index(mapping[name]) is not None]
    )


def _movable_kinks(
    search: _Search, pattern: CircuitPattern, mapping: Mapping[str, str]
) -> frozenset[str]:
    """The pattern units whose zero bias an approximate search lets move: rectifiers that
    read network inputs only, whose kink can be measured against the inputs' range (the
    domain, or the probe range). A kink on hidden inputs could sit anywhere in their unknown
    range, so there the bias is held to the exact rule."""
    if not search.approximate:
        return frozenset()
    return frozenset(
        name
        for name, sources in pattern.input_kinks
        if all(input_index(mapping[src]) is not None for src in sources)
    )


def _kink_in_reach(
    search: _Search, pattern: CircuitPattern, anchor: str
) -> Callable[[str, NeuronView], bool] | None:
    """For an anchor bound to a zero-bias kink on circuit inputs (``input_kinks``), probed
    where its model lives (no FOR range of its own): whether a candidate's kink can lie
    where verification allows it, by ``verify.kink_ratio`` over the probe box (every input
    it reads, over the model's domain, else the default range). None: nothing to judge (an
    exact search, another anchor, a range the fitted parameters decide). A first-layer
    unit reads network inputs alone, so its kink moves (and is measured) whatever the
    match binds to it."""
    sources = dict(pattern.input_kinks).get(anchor)
    ranged = pattern.reference.ranged if pattern.reference else frozenset()
    if not search.approximate or sources is None or ranged.intersection(sources):
        return None
    reach = max(search.tolerance, KINK_REACH)

    def keep(model: str, view: NeuronView) -> bool:
        def width(uid: str) -> float:
            lo, hi = search.probed_on(model, uid)
            return hi - lo

        ratio = kink_ratio(view, width)
        return ratio is None or ratio <= reach

    return keep


def _movable_offsets(search: _Search, pattern: CircuitPattern) -> frozenset[str]:
    """Units with a zero bias and no kink (a bare-sum output): an approximate search lets
    their offset move, as an output bias cancels what the kinks moved, as far as
    ``fit`` allows, and verification judges the function it leaves."""
    return pattern.bare_sums if search.approximate else frozenset()


def _probing(
    search: _Search,
    model: str,
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    kinks: frozenset[str],
) -> Probing:
    """Probe where the model lives: a circuit input bound to a network input ranges over
    that input's interval of the model's domain (unless the circuit's EXPECT says where);
    an approximate search also measures how far each movable kink moved."""
    free_scale = tuple(
        views[mapping[o]].record.signature.kind is not UnitKind.OUTPUT for o in pattern.outputs
    )
    intervals = {
        name: interval
        for name in pattern.inputs
        if (interval := search.interval(model, mapping[name])) is not None
    }
    return Probing(free_scale, intervals, frozenset(mapping[name] for name in kinks))


def _judged_early(
    pattern: CircuitPattern,
    fitted: Fit,
    probing: Probing,
    floor: Callable[[Probed], float],
    tolerance: float,
) -> tuple[bool, Probed | None]:
    """What verification would reject, told from the probes before the matched units are
    built into a network and evaluated: a bare-sum offset beyond what it may cancel
    (``Fit.offset``, in the pattern's units) past ``tolerance`` of the reference's reach on
    the probes, where no output scale brings the sum back; or movable kinks whose ``floor``
    on the probes (``verify.kink_floor``) is past what verification allows. Returns whether
    the match may still verify, and the probes, drawn once for verification too where they
    were drawn here (None: not drawn, as for a pattern without EXPECT, whose reference is
    its own arithmetic and is not judged here)."""
    if pattern.reference is None or (fitted.offset <= 0 and not probing.kinks):
        return True, None  # verification draws the probes, if it is reached
    probed = reference_values(pattern, fitted.params, probing)
    if probed is None:  # the fitted parameters leave a FOR range nothing to probe
        return False, None
    reach = float(np.max(np.abs(probed[1]), initial=0.0))
    if fitted.offset > tolerance * reach:
        return False, probed
    return floor(probed) <= max(tolerance, KINK_REACH), probed


def _public_order(pattern: CircuitPattern) -> list[str]:
    """Inputs, then hidden units, then outputs: the order bindings are listed in."""
    order = {Role.INPUT: 0, Role.HIDDEN: 1, Role.OUTPUT: 2}
    return [u.name for u in sorted(pattern.units, key=lambda u: order[u.role])]


def _where_holds(pattern: CircuitPattern, params: Mapping[str, float], tolerance: float) -> bool:
    """WHERE constraints on fitted parameters. ``==`` and ``!=`` compare within the query's
    tolerance, relative to the larger side (fitted numbers are never exactly equal: is_even's
    next.c == c / 2); ``<``, ``<=``, ``>``, ``>=`` compare exactly, as written, so that
    ``c > 0`` never holds for c = 0."""
    for left_side, op, right_side in pattern.where_sides:
        left, right = float(left_side(params)), float(right_side(params))
        slack = tolerance * max(abs(left), abs(right), 1.0)
        holds = {
            "==": abs(left - right) <= slack,
            "!=": abs(left - right) > slack,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
        if not holds:
            return False
    return True

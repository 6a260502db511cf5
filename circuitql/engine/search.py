"""Run a compiled MATCH: plan, prune by index, grow neighbourhoods, match, fit, verify.

Results stream: ``run`` is a generator that yields each match as soon as it is verified, and
``LIMIT n`` stops the search after n matches instead of truncating a full result. Alternatives
and unrolled repetitions are flat patterns run one after another; a circuit instance (the same
set of network units) found by several of them, or several times by a symmetric pattern (add
is symmetric in a and b), is reported once.
"""

from __future__ import annotations

import fnmatch
import math
import time
import warnings
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from circuitql.domain import Domain
from circuitql.engine.cache import NeuronCache
from circuitql.engine.fit import fit
from circuitql.engine.match import Neighbourhood, grow, structural_matches
from circuitql.engine.plan import Plan, plan
from circuitql.engine.verify import Probing, faithfulness, subnetwork, verify
from circuitql.engine.wiring import Fetch, approximate, relaxed, strict, with_quiet
from circuitql.errors import CircuitQLError
from circuitql.grammar.errors import QueryError
from circuitql.graph import Activation, NeuronGraph, UnitKind, input_index
from circuitql.language import expr as ev
from circuitql.language.compile import MatchQuery
from circuitql.language.pattern import DEFAULT_INTERVAL, CircuitPattern, Role
from circuitql.language.unroll import BUDGET_FIX, bounded, expand, over_budget
from circuitql.store.base import NeuronView, Store

if TYPE_CHECKING:
    from circuitql.api import Database
    from circuitql.picture import Svg

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


class PartialAnswer(UserWarning):
    """A search stopped at its deadline: the matches it gave are real, but not all."""


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

    ``exact`` says whether the match holds as the pattern is written: every unit's
    signature as the pattern demands, every coefficient within tolerance, nothing but the
    pattern's edges. An approximate match holds only as training leaves circuits: kinks
    near the origin, detectors split over near-parallel units (their neurons are in
    ``members`` too), linear paths beside detector pairs. ``input_scales`` has the fitted
    scale of each circuit input bound to a hidden unit (whose own scale is a symmetry): the
    circuit reads ``scale x`` the unit's canonical value.

    ``faithfulness`` is how much of the circuit's output units the matched units alone leave
    unexplained where the model lives (its domain, else the probe range): every other input
    of each output unit ablated, the largest change relative to the output's range. 0 when
    the circuit is all its output reads; 0.3 when 30% of the output's swing comes from units
    outside the circuit. It is measured on first use (it reads the outputs' whole cone from
    the store, which must still be open), by ``measure``.
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
    exact: bool = True
    input_scales: Mapping[str, float] = field(default_factory=dict)
    measure: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def faithfulness(self) -> float:
        if self.measure is None:
            raise ValueError("this match carries nothing to measure its faithfulness on")
        return self.measure()

    def subnetwork(self) -> Any:
        """The circuit alone as an ``nn.Module``: it takes (batch, circuit inputs) and gives
        (batch, circuit outputs), both in the circuit's order, the order of the ``input_ids``
        and ``output_ids`` it carries (the model's units they stand for)."""
        from circuitql.engine.subnetwork import as_module

        return as_module(self._circuit_graph())

    def save(self, path: str | Path) -> Path:
        """Write the circuit alone as a model file, by the suffix: ``.onnx``, or
        ``.safetensors`` / ``.pt`` with its JSON config beside it. It computes what
        ``subnetwork()`` computes, in the model's own coordinates: inputs and outputs in the
        circuit's order, and a hidden output at the scale the model gives it. The config's
        meta names the model, the circuit, the bindings, the model unit behind each unit of
        the file, and ``scales`` and ``input_scales``, which turn it into the circuit as its
        definition writes it."""
        from circuitql.export import save, spec_from_graph

        path = Path(path)
        if path.suffix not in (".onnx", ".safetensors", ".pt"):
            named = path.suffix or "a file without suffix"
            raise CircuitQLError(
                f"cannot write a circuit as {named!r}",
                where=str(path),
                fix="name the file .onnx, .safetensors or .pt",
            )
        try:
            spec = spec_from_graph(
                self._circuit_graph(),
                {
                    "model": self.model,
                    "circuit": self.circuit,
                    "bindings": dict(self.bindings),
                    "scales": list(self.scales or (self.scale,)),
                    "input_scales": dict(self.input_scales),
                },
            )
        except ValueError as err:
            raise CircuitQLError(
                f"this circuit cannot be written as dense layers: {err}",
                fix="use subnetwork() for an nn.Module, which keeps any wiring",
            ) from err
        try:
            return save(spec, path)
        except OSError as err:
            raise CircuitQLError(
                f"cannot write the circuit: {err.strerror or err}",
                where=str(path),
                fix="write to a folder that is writable",
            ) from err

    def _circuit_graph(self) -> NeuronGraph:
        if self.graph is None:
            raise CircuitQLError(
                "this match carries no sub-network",
                fix="take matches from db.query(...), which attach it",
            )
        return self.graph

    def draw(self, context: Database | Store | None = None) -> Svg:
        """The matched sub-network as an SVG picture (shown inline in Jupyter); pass the
        database (or store) to draw the whole model with the match highlighted instead."""
        from circuitql.render import draw_match

        # A Database carries its store; a store is one.
        store = getattr(context, "store", None) or context
        return draw_match(self, cast("Store | None", store))

    def verify(self, inputs: np.ndarray) -> float:
        """Relative error of the matched sub-network against the reference on ``inputs``."""
        from circuitql.engine.verify import compare

        graph = self._circuit_graph()
        assert self.pattern is not None
        if self.pattern.reference is None:
            raise ValueError(f"{self.circuit} has no EXPECT clause to verify against")
        x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        expected = self.pattern.reference(x, self.params)
        fixed = (False,) * expected.shape[1]
        scales = np.asarray(self.scales or (self.scale,))
        return compare(scales * graph.evaluate(x), expected, fixed).error

    def _repr_html_(self) -> str:
        """In Jupyter: what matched where, the numbers, and the matched sub-network drawn."""
        from circuitql.html import table

        numbers = [
            ("error", self.error),
            ("exact", self.exact),
            ("scale", self.scale),
            *((f"param {k}", v) for k, v in self.params.items()),
            *((f"input scale {k}", v) for k, v in self.input_scales.items()),
        ]
        if self.measure is not None:
            numbers.append(("faithfulness", self.faithfulness))
        bound = [
            (name, uid, ", ".join(self.members.get(name, ())[1:]))
            for name, uid in self.bindings.items()
        ]
        picture = self.draw().text if self.graph is not None else ""
        return (
            table(("", ""), numbers, caption=f"{self.circuit} in {self.model}")
            + table(("variable", "unit", "merged with"), bound)
            + picture
        )

    def to_dict(self) -> dict[str, Any]:
        """The match as plain data (what ``--json`` prints per match): names, numbers, lists
        and dicts only, so it goes to JSON, a DataFrame row or a CSV line as it is."""
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "circuit": self.circuit,
            "bindings": dict(self.bindings),
            "error": self.error,
            "params": dict(self.params),
            "scale": self.scale,
            "variant": self.variant,
            "exact": self.exact,
            "input_scales": dict(self.input_scales),
            "faithfulness": self.faithfulness,
            "members": {k: list(v) for k, v in self.members.items() if len(v) > 1},
        }


@dataclass
class Explain:
    """Counts and seconds per stage, and the plans: what EXPLAIN prints."""

    plans: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    patterns: int = 0
    models: int | None = None  # None: the whole store, not listed
    partial: str | None = None  # why the search stopped before it was complete
    # Hears (candidates examined, candidates found so far) as the search goes: the second
    # grows as each flat pattern's anchors are looked up, so a bar's end moves with it.
    on_progress: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)
    examined: int = 0

    def advance(self, candidates: int) -> None:
        """``candidates`` more anchors examined (0: only more were looked up)."""
        self.examined += candidates
        if self.on_progress is not None:
            self.on_progress(self.examined, self.counts["lookup"])

    def to_json(self) -> dict[str, Any]:
        return {
            "patterns": self.patterns,
            "models": self.models,
            "plans": self.plans,
            "partial": self.partial,
            "counts": dict(self.counts),
            "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
        }

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
    seconds = query.timeout if query.timeout is not None else DEFAULT_TIMEOUT
    deadline = time.monotonic() + seconds
    tolerance = query.tolerance if query.tolerance is not None else DEFAULT_TOLERANCE
    restricted = query.models is not None or models is not None
    infos = []
    # Listing every model costs per model; a plain query over the whole store never does it,
    # so its cost follows the index's candidates, not the size of the zoo.
    if restricted or query.pins:
        infos = [
            m
            for m in store.models()
            if (query.models is None or fnmatch.fnmatchcase(m.name, query.models))
            and (models is None or m.name in models)
        ]
        explain.models = len(infos)
        if not infos:
            return
    names = [m.name for m in infos] if restricted else None
    max_repeat = None
    if not bounded(query.pattern):
        # A chain of k blocks needs at least k + 1 layers between input and output.
        max_repeat = max(1, min(MAX_REPEAT_CAP, store.max_layer(names) - 1))
        problem = over_budget(query.pattern, max_repeat)
        if problem is not None:
            raise QueryError(
                f"{problem}, once its repetitions run to {max_repeat} (the "
                "deepest network searched allows that many)",
                fix=BUDGET_FIX,
            )
    search = _Search(
        store,
        NeuronCache(store),
        names,
        tolerance,
        explain,
        query.pins,
        [m.name for m in infos],
        approximate=not query.exact,
        deadline=deadline,
    )
    found = 0
    for pattern in expand(query.pattern, max_repeat):
        if any(var not in pattern.by_name for var in query.pins):
            continue  # a variant without the pinned unit cannot bind it
        if search.expired():
            break
        explain.patterns += 1
        looked_up = relaxed(pattern) if search.approximate else pattern
        the_plan = plan(looked_up, lambda columns: search.cache.count(columns, names), query.pins)
        explain.plans.append(the_plan.text())
        for match in _run_pattern(search, the_plan, pattern):
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


@dataclass
class _Search:
    """What one query's flat patterns share: the store and its per-query cache, the scope
    (``models`` None: the whole store; ``scope`` lists it when pins need it), the settings,
    the instances already reported, and each model's domain as it is first needed."""

    store: Store
    cache: NeuronCache
    models: list[str] | None
    tolerance: float
    explain: Explain
    pins: Mapping[str, str]
    scope: list[str]
    approximate: bool
    deadline: float = math.inf  # time.monotonic() past which the search stops

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    seen: set[tuple[str, frozenset[str]]] = field(default_factory=set)
    domains: dict[str, Domain | None] = field(default_factory=dict)

    def domain(self, model: str) -> Domain | None:
        if model not in self.domains:
            info = self.store.get_model(model)
            self.domains[model] = None if info is None else info.domain
        return self.domains[model]

    def interval(self, model: str, uid: str) -> tuple[float, float] | None:
        """Where the network input ``uid`` lives: its interval of the model's domain (None
        for a unit that is no network input, or a model without a domain)."""
        index, domain = input_index(uid), self.domain(model)
        if index is None or domain is None or index >= len(domain.box):
            return None
        return domain.box[index]

    def box(self, model: str, uids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """The intervals of the network inputs ``uids``, the default probe range where the
        model has no domain."""
        return {uid: self.interval(model, uid) or DEFAULT_INTERVAL for uid in uids}

    def fetcher(self, model: str, views: ChainMap[str, NeuronView]) -> Fetch:
        """Views of more units of ``model`` (split halves the wiring looks at, the cone a
        faithfulness is measured on), read from ``views`` where they are and through the
        query's cache, into ``views``, where they are not."""

        def fetch(uids: Sequence[str]) -> Mapping[str, NeuronView]:
            missing = [(model, uid) for uid in uids if uid not in views]
            if missing:  # through the query's cache: the next match in the model reuses them
                self.cache.fetch(missing)
                known = self.cache.views[model]
                views.maps[0].update({uid: known[uid] for _, uid in missing if uid in known})
            return {uid: views[uid] for uid in uids if uid in views}

        return fetch


def _run_pattern(search: _Search, the_plan: Plan, pattern: CircuitPattern) -> Iterator[Match]:
    """Matches of one flat pattern; ``the_plan`` is over the pattern as it is looked up
    (relaxed, for an approximate search)."""
    cache, explain = search.cache, search.explain
    anchor_unit = the_plan.pattern.unit(the_plan.anchor)
    with _Clock(explain, "lookup"):
        if the_plan.anchor in search.pins:
            pinned = frozenset([search.pins[the_plan.anchor]])
            anchors = [
                (model, uid)
                for model, uids in cache.admits(
                    [(m, pinned) for m in search.scope], anchor_unit.constraint
                )
                for uid in uids
            ]
        else:
            anchors = cache.lookup(anchor_unit.constraint, search.models)
    explain.counts["lookup"] += len(anchors)
    explain.advance(0)
    for start in range(0, len(anchors), GROW_BATCH):
        if search.expired():
            return
        with _Clock(explain, "grow"):
            batch = anchors[start : start + GROW_BATCH]
            hoods = grow(cache, batch, the_plan)
        explain.counts["grow"] += len(hoods)
        explain.advance(len(batch))
        with _Clock(explain, "match"):
            matched = []
            for model, hood in hoods:
                if search.expired():
                    break
                matched.append(
                    (
                        model,
                        hood,
                        [
                            m
                            for m in structural_matches(pattern, hood, search.expired)
                            if all(m.get(v) == uid for v, uid in search.pins.items())
                        ],
                    )
                )
            # The units bound to pattern inputs, which growth did not read: one store round
            # trip for the whole batch, not one per neighbourhood.
            cache.fetch(
                sorted(
                    {
                        (model, uid)
                        for model, hood, mappings in matched
                        for mapping in mappings
                        for uid in mapping.values()
                        if uid not in hood.views
                    }
                )
            )
        for model, hood, mappings in matched:
            if search.expired():
                return
            explain.counts["match"] += len(mappings)
            yield from _matches_in(search, model, pattern, hood, mappings)


def _matches_in(
    search: _Search,
    model: str,
    pattern: CircuitPattern,
    hood: Neighbourhood,
    mappings: list[dict[str, str]],
) -> Iterator[Match]:
    explain, tolerance = search.explain, search.tolerance
    offsets = _movable_offsets(search, pattern)
    views: ChainMap[str, NeuronView] = ChainMap({}, dict(hood.views))
    fetch = search.fetcher(model, views)
    fetch(sorted({uid for mapping in mappings for uid in mapping.values()}))  # read already
    bound = Neighbourhood(hood.candidates, views)
    for mapping in mappings:
        if search.expired():
            return
        key = (model, frozenset(mapping.values()))
        if key in search.seen:
            continue
        with _Clock(explain, "fit"):
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
                    pattern, mapping, bound, tolerance, wiring, search.approximate, kinks | offsets
                )
            )
            ok = fitted is not None and _where_holds(pattern, fitted.params, tolerance)
        if not ok or fitted is None or wiring is None:
            continue
        explain.counts["fit"] += 1
        with _Clock(explain, "verify"):
            probing = _probing(search, model, pattern, mapping, views, kinks)
            graph = subnetwork(pattern, mapping, views, wiring, fitted.input_scales)
            verdict = verify(pattern, mapping, graph, fitted.params, probing)
            if search.approximate and verdict.error > tolerance:
                wiring = with_quiet(wiring, pattern, mapping, views, fetch, ranges)
                if wiring.quiet:
                    graph = subnetwork(pattern, mapping, views, wiring, fitted.input_scales)
                    verdict = verify(pattern, mapping, graph, fitted.params, probing)
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
        u.name
        for u in pattern.units
        if u.role is not Role.INPUT
        and u.bias.is_zero
        and u.inputs
        and u.activation in (Activation.RELU, Activation.LEAKY_RELU)
        and all(
            pattern.unit(src).role is Role.INPUT and input_index(mapping[src]) is not None
            for src, _ in u.inputs
        )
    )


def _movable_offsets(search: _Search, pattern: CircuitPattern) -> frozenset[str]:
    """Units with a zero bias and no kink (a bare-sum output): an approximate search lets
    their offset move, as an output bias cancels what the kinks moved, and verification
    judges the function it leaves."""
    if not search.approximate:
        return frozenset()
    return frozenset(
        u.name
        for u in pattern.units
        if u.role is not Role.INPUT
        and u.bias.is_zero
        and u.activation in (None, Activation.IDENTITY)
    )


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


def _public_order(pattern: CircuitPattern) -> list[str]:
    """Inputs, then hidden units, then outputs: the order bindings are listed in."""
    order = {Role.INPUT: 0, Role.HIDDEN: 1, Role.OUTPUT: 2}
    return [u.name for u in sorted(pattern.units, key=lambda u: order[u.role])]


def _where_holds(pattern: CircuitPattern, params: Mapping[str, float], tolerance: float) -> bool:
    """WHERE constraints on fitted parameters. ``==`` and ``!=`` compare within the query's
    tolerance, relative to the larger side (fitted numbers are never exactly equal: is_even's
    next.c == c / 2); ``<``, ``<=``, ``>``, ``>=`` compare exactly, as written, so that
    ``c > 0`` never holds for c = 0."""
    for condition in pattern.where:
        left = float(ev.evaluate(condition.left, params))
        right = float(ev.evaluate(condition.right, params))
        slack = tolerance * max(abs(left), abs(right), 1.0)
        holds = {
            "==": abs(left - right) <= slack,
            "!=": abs(left - right) > slack,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[condition.op]
        if not holds:
            return False
    return True


class Results(Iterator[Match]):
    """The matches of a query, as they are verified: an iterator (``for m in db.query(...)``
    streams them, and ``LIMIT`` stops the search early), and a table once read:
    ``to_records()`` and ``to_pandas()`` read the rest and give one row per match."""

    def __init__(self, matches: Iterator[Match]) -> None:
        self._matches = matches
        self.read: list[Match] = []

    def __next__(self) -> Match:
        match = next(self._matches)
        self.read.append(match)
        return match

    def _repr_html_(self) -> str:
        """In Jupyter: a row per match, reading (at most) the first ``MAX_ROWS`` of them."""
        from circuitql.html import MAX_ROWS, table

        for _ in zip(range(MAX_ROWS + 1 - len(self.read)), self, strict=False):
            pass
        rows = [
            (
                m.model,
                m.circuit,
                m.error,
                "exact" if m.exact else "approximate",
                ", ".join(f"{k}={v}" for k, v in m.bindings.items()),
            )
            for m in self.read[:MAX_ROWS]
        ]
        cut = len(self.read) > MAX_ROWS
        more = "… and more: iterate on, or to_records() / to_pandas() for them all" if cut else ""
        return table(
            ("model", "circuit", "error", "kind", "bindings"),
            rows,
            caption=f"the first {len(rows)} matches" if cut else f"{len(rows)} match(es)",
            footer=more,
        )

    def to_records(self) -> list[dict[str, Any]]:
        """Every match (those already read, then the rest) as plain data: ``Match.to_dict``,
        with one column per binding."""
        for _ in self:
            pass
        return [
            {
                **{k: v for k, v in m.to_dict().items() if k != "bindings"},
                **{f"bound.{name}": uid for name, uid in m.bindings.items()},
            }
            for m in self.read
        ]

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas is an optional extra)."""
        return data_frame(self.to_records())


def data_frame(records: list[dict[str, Any]]) -> Any:
    """Rows as a pandas DataFrame; pandas is an optional extra, so its absence is an error
    that says how to install it, or how to do without."""
    try:
        import pandas
    except ImportError:
        raise QueryError(
            "pandas is not installed, and to_pandas() needs it",
            fix="pip install 'circuitql[data]' (or pandas), or use to_records() for plain rows",
        ) from None
    return pandas.DataFrame.from_records(records)

"""How matched network units read the circuit: exactly as the pattern is wired, or as gradient
descent leaves it.

A structural match maps every pattern unit to a network unit. The fit then compares, for each
pattern edge, the network's weight with the pattern's coefficient. Exactly, that weight is the
one edge the monomorphism matched, and every other significant input of the unit is excluded
by its closed fan-in. Trained networks wire a circuit less tidily, in two ways that change
nothing a reader of the circuit could see:

- **Near-parallel units.** A detector split over two or three ReLUs whose hyperplanes nearly
  coincide (kinks a few hundredths apart, directions a few degrees apart), feeding the reader
  with weights of the same sign: together they act as one unit, and the reader's weight from
  the pattern unit is the sum. Halves whose outgoing weights have opposite signs cancel rather
  than add, and are no split.
- **Linear paths beside a detector pair.** A reader of the pair relu(u.s), relu(-u.s) that
  also reads the pair's sources directly, along u: t * u.s = t * relu(u.s) - t * relu(-u.s),
  so the direct path is the pair's weights shifted by +t and -t. Training leaves such paths
  when a unit is active on the whole domain (linear there) and folds into its readers.

- **Units linear or dead where the circuit lives.** A ReLU reading the circuit's inputs
  whose kink sits within tolerance of an end of its range on the domain is linear there (a
  linear path, as above) or dead (nothing); the canonical form folds only the ones whose
  kink lies strictly outside.

Any other significant input is unexplained, and the match is no match. What is explained is
kept (``siblings``, ``absorbed``) so the verified sub-network is the network's own function,
with the split halves and the direct paths in it: the numbers decide, not the rewriting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from circuitql.graph import Activation
from circuitql.language.pattern import CircuitPattern, PatternUnit, Role
from circuitql.siblings import GROUPS_TOLERANCE, PARALLEL, near, offset, sine
from circuitql.store.base import NeuronView

# Significant inputs an approximate search lets a unit have beyond the pattern's, per hidden
# pattern unit it reads: two more halves of a split, or a linear path's sources.
EXTRA_PER_SOURCE = 2

Fetch = Callable[[Sequence[str]], Mapping[str, NeuronView]]


@dataclass(frozen=True)
class Wiring:
    """Per matched pattern unit, the network weight of each of its pattern edges (source
    pattern unit -> weight), with what stands behind it beyond the matched edge."""

    weights: Mapping[str, Mapping[str, float]]
    siblings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    linear: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    absorbed: Mapping[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    # Insignificant inputs computed from the circuit's inputs alone: part of the function
    # verified, not of the match (an exact match may have them too).
    quiet: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    significant_paths: bool = False  # a path absorbed was one the signature counts

    @property
    def approximate(self) -> bool:
        """Whether the exact pattern would not see the match: small direct edges absorbed
        into a pair are as invisible to it as to the signature."""
        return any(self.siblings.values()) or any(self.linear.values()) or (self.significant_paths)


def strict(
    pattern: CircuitPattern, mapping: Mapping[str, str], views: Mapping[str, NeuronView]
) -> Wiring:
    """Each pattern edge's weight is the matched network edge's."""
    weights = {}
    for unit in _computed(pattern):
        inputs = views[mapping[unit.name]].row
        weights[unit.name] = {src: inputs[mapping[src]] for src, _ in unit.inputs}
    return Wiring(weights)


def approximate(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    fetch: Fetch,
    tolerance: float,
    ranges: Mapping[str, tuple[float, float]],
) -> Wiring | None:
    """Every significant input of every matched unit accounted for, as a pattern edge, a
    near-parallel sibling of a pattern source, or a linear path along a detector pair the
    unit reads; None when one is not. ``ranges`` bounds the network units bound to circuit
    inputs (the domain, or the probe range): on them a unit whose kink lies within
    ``tolerance`` of an end of its range is linear (a path) or dead (nothing) there."""
    wiring = strict(pattern, mapping, views)
    matched = set(mapping.values())
    siblings: dict[str, list[str]] = {}
    linear: dict[str, tuple[str, ...]] = {}
    absorbed: dict[str, tuple[tuple[str, float], ...]] = {}
    noticed = False  # a significant path was re-expressed
    weights = {name: dict(w) for name, w in wiring.weights.items()}
    for unit in _computed(pattern):
        view = views[mapping[unit.name]]
        named = {mapping[src] for src, _ in unit.inputs}
        extra = [(uid, w) for uid, w in view.significant_inputs if uid not in named]
        # Every direct edge from the circuit's own units is a linear path, however small:
        # a significant one must be re-expressed, a small one is when it can be. (Looked
        # for among the few matched units, not a dense layer's inputs, then kept in order.)
        row = view.row
        others = {uid for uid in matched if uid not in named and uid in row}
        direct = [(uid, w) for uid, w in view.inputs if uid in others] if others else []
        if not extra and not direct:
            continue
        path = dict(direct)
        loose = _loose(unit, mapping, view)
        hidden = [src for src, _ in unit.inputs if pattern.unit(src).role is not Role.INPUT]
        found = fetch([uid for uid, _ in loose])
        through: list[str] = []
        for uid, w in loose:
            host = _sibling_of(found.get(uid), w, hidden, mapping, views, view, tolerance)
            if host is not None:
                if (abs(w), mapping[host]) > (abs(wiring.weights[unit.name][host]), uid):
                    return None  # the split's heaviest half stands for it: one report
                weights[unit.name][host] += w
                siblings.setdefault(host, []).append(uid)
                continue
            fate = _fate_on(found.get(uid), ranges, tolerance)
            if fate is None:
                return None
            through.append(uid)
            for src, v in fate.items():  # a linear unit: a path through it
                path[src] = path.get(src, 0.0) + w * v
        if through:
            linear[unit.name] = tuple(through)
        if path:
            shift = _absorb(list(path.items()), unit, mapping, views, tolerance)
            if shift is None:
                if through or any(uid in matched for uid, _ in extra):
                    return None
                continue  # small direct edges and no pair along them: ignored, as exactly
            for src, t in shift.items():
                weights[unit.name][src] += t
            absorbed[unit.name] = tuple(direct)
            noticed |= bool(through) or any(uid in matched for uid, _ in extra)
    return replace(
        wiring,
        weights=weights,
        siblings={k: tuple(dict.fromkeys(v)) for k, v in siblings.items()},
        linear=linear,
        absorbed=absorbed,
        significant_paths=noticed,
    )


def loose_inputs(
    pattern: CircuitPattern, mapping: Mapping[str, str], views: Mapping[str, NeuronView]
) -> list[str]:
    """The units ``approximate`` reads to explain a match's extra inputs (the significant
    inputs of its units that the match does not bind), so that a search can fetch those of
    a whole batch of matches in one store round trip rather than one per match. Units whose
    view is not in ``views`` are skipped: their extras are fetched when asked for."""
    return [
        uid
        for unit in _computed(pattern)
        if mapping[unit.name] in views
        for uid, _ in _loose(unit, mapping, views[mapping[unit.name]])
    ]


def _loose(
    unit: PatternUnit, mapping: Mapping[str, str], view: NeuronView
) -> list[tuple[str, float]]:
    """The significant inputs of ``view`` (``unit``'s binding) that no pattern unit is bound
    to: each must be a split half or a unit linear where the circuit lives."""
    bound = set(mapping.values())
    return [(uid, w) for uid, w in view.significant_inputs if uid not in bound]


def with_quiet(
    wiring: Wiring,
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    fetch: Fetch,
    ranges: Mapping[str, tuple[float, float]],
) -> Wiring:
    """``wiring`` with every matched unit's insignificant inputs that read nothing but the
    circuit's inputs: too small next to the unit's largest weight to count for its
    signature, they can still move it by a few percent where their own values are large.
    Asked for only when a match misses without them (they cost a store round trip). A unit
    the match binds is never one: it is in the sub-network already, as itself."""
    quiet = {}
    bound = set(mapping.values())
    for unit in _computed(pattern):
        view = views[mapping[unit.name]]
        seen = bound | {uid for uid, _ in view.significant_inputs}
        found = _quiet(view, seen, fetch, ranges)
        if found:
            quiet[unit.name] = found
    return replace(wiring, quiet=quiet)


def _quiet(
    view: NeuronView, seen: set[str], fetch: Fetch, ranges: Mapping[str, tuple[float, float]]
) -> tuple[str, ...]:
    """The inputs of ``view`` outside ``seen`` whose own significant inputs are all
    circuit inputs (units of known range). Where the view knows its sources' fan-ins, only
    those reading at most as many units as there are circuit inputs are fetched: in a dense
    layer none is."""
    quiet = [
        uid
        for uid in view.sources_reading_at_most(len(ranges))
        if uid not in seen and uid not in ranges
    ]
    if not quiet:
        return ()
    found = fetch(quiet)
    return tuple(
        uid
        for uid in quiet
        if uid in found
        and found[uid].inputs
        and {s for s, _ in found[uid].significant_inputs} <= set(ranges)
    )


def _fate_on(
    view: NeuronView | None, ranges: Mapping[str, tuple[float, float]], tolerance: float
) -> dict[str, float] | None:
    """A rectifier reading only units of known range whose kink lies within ``tolerance``
    (of its pre-activation's span) of an end of that span: its row when it is linear there
    (fires almost everywhere), {} when it is dead there (almost never fires), else None."""
    if view is None or view.record.signature.activation is not Activation.RELU:
        return None
    row = dict(view.significant_inputs)
    if not row or not set(row) <= set(ranges):
        return None
    lo = hi = view.record.bias
    for src, w in row.items():
        ends = (w * ranges[src][0], w * ranges[src][1])
        lo, hi = lo + min(ends), hi + max(ends)
    span = hi - lo
    if span <= 0:
        return None
    if lo >= -tolerance * span:
        return row
    if hi <= tolerance * span:
        return {}
    return None


def _computed(pattern: CircuitPattern) -> list[PatternUnit]:
    return [u for u in pattern.units if u.role is not Role.INPUT]


def _sibling_of(
    candidate: NeuronView | None,
    weight: float,
    hosts: Sequence[str],
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    reader: NeuronView,
    tolerance: float,
) -> str | None:
    """The pattern source ``candidate`` stands beside: same activation, a near-parallel row,
    a kink close to it and a weight into the reader of the same sign (or, for a small
    remainder training left, one of the other sign at most ``PARALLEL * tolerance`` of the
    host's: a half that cancels much of its host is a decoy)."""
    if candidate is None:
        return None
    best, best_sine = None, PARALLEL * tolerance
    inputs = reader.row
    for host in hosts:
        host_view = views[mapping[host]]
        if host_view.record.signature.activation is not candidate.record.signature.activation:
            continue
        host_weight = inputs[mapping[host]]
        if host_weight * weight <= 0 and abs(weight) > PARALLEL * tolerance * abs(host_weight):
            continue
        angle = _sine(host_view, candidate)
        gap = abs(_offset(host_view) - _offset(candidate))
        if angle is None or angle > best_sine or not near(angle, gap, tolerance):
            continue
        best, best_sine = host, angle
    return best


def _absorb(
    direct: Sequence[tuple[str, float]],
    unit: PatternUnit,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    tolerance: float,
) -> dict[str, float] | None:
    """Shifts of a detector pair's weights that re-express the direct edges ``direct``:
    {positive detector: +t, negative detector: -t}, or None when no pair the unit reads
    runs along them."""
    path = dict(direct)
    norm = math.sqrt(sum(w * w for w in path.values()))
    sources = [src for src, _ in unit.inputs]
    for pos in sources:
        view = views[mapping[pos]]
        row = view.row
        if not row or not set(path) <= set(row):
            continue
        t = sum(w * row[s] for s, w in path.items()) / sum(v * v for v in row.values())
        residual = math.sqrt(sum((path.get(s, 0.0) - t * v) ** 2 for s, v in row.items()))
        if residual > PARALLEL * tolerance * norm:
            continue
        for neg in sources:
            angle = _sine(view, views[mapping[neg]], flip=True) if neg != pos else None
            if angle is not None and angle <= PARALLEL * tolerance:
                return {pos: t, neg: -t}
    return None


def _sine(a: NeuronView, b: NeuronView, flip: bool = False) -> float | None:
    """``siblings.sine`` of two views' rows: the rule the index counts groups by."""
    return sine(a.row, a.norm, b.row, b.norm, flip)


def _offset(view: NeuronView) -> float:
    """``siblings.offset`` of a view: where its kink sits along its row."""
    return offset(view.record.bias, view.norm)


def relaxed(pattern: CircuitPattern, tolerance: float) -> CircuitPattern:
    """The pattern as an approximate search looks it up: a zero bias admits any bias class
    (its kink is judged on the domain), and a unit that reads hidden pattern units admits a
    few more inputs than the pattern names (``EXTRA_PER_SOURCE`` per such unit: split halves
    and linear paths, which ``approximate`` must then explain; a dense layer's unit reads far
    more). A unit that reads one hidden unit and nothing else can have no linear path (no
    pair to run along), so its extra inputs are halves of that unit's split or free units
    (``_fate_on``): its inputs form one group of near-parallel units (``input_groups``),
    which the index checks at tolerances up to the one it counted groups at. Everything else
    the index checks stays as strict."""
    units = []
    for unit in pattern.units:
        constraint = unit.constraint
        if unit.role is not Role.INPUT:
            if unit.bias.is_zero:
                constraint = replace(constraint, bias_class=None)
            hidden = sum(pattern.unit(src).role is not Role.INPUT for src, _ in unit.inputs)
            if hidden and constraint.fan_in is not None:
                constraint = replace(
                    constraint,
                    fan_in=None,
                    fan_in_max=constraint.fan_in + EXTRA_PER_SOURCE * hidden,
                )
            if hidden == len(unit.inputs) == 1 and tolerance <= GROUPS_TOLERANCE:
                constraint = replace(constraint, groups_max=1)
        units.append(replace(unit, constraint=constraint))
    return replace(pattern, units=tuple(units))

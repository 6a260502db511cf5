"""Numeric verification: does the matched sub-network compute the circuit's function?

The matched units are rebuilt as a small NeuronGraph in the network's *original* coordinates
(canonical weights times the scales the canonical form recorded), so what is verified is what
the user's model computes, in its own units. The same graph is what ``Match.subnetwork()``
returns and what ``Match.verify(inputs)`` evaluates.

The circuit's inputs are the exception: they are read in canonical coordinates, as the fit
reads them. A hidden unit's own scale is a symmetry of the network (scale it by k and its
outgoing weights by 1/k, nothing changes), so "min of two hidden units" only means something
for their canonical, unit-norm values; in original units the same circuit would stop being
min whenever one of its inputs were rescaled. Network inputs are never rescaled, so for them
both coordinates agree.

When the circuit's output is a hidden neuron, its scale is a symmetry of the network (it can
move into the outgoing weights), so the circuit is identified up to a positive output scale
(reported as ``scale``). A network output's scale is part of the function: y = 2x is
``scale``, not ``identity``. The error is the largest deviation after the scale, relative to
the reference's largest magnitude on the probes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from circuitql.engine.wiring import Wiring, strict
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.language.pattern import (
    DEFAULT_INTERVAL,
    CircuitPattern,
    Coef,
    CoefKind,
    PatternUnit,
    ProbeRangeError,
    Role,
)
from circuitql.store.base import NeuronView

PROBES = 512
SEED = 0
_SEEDED = np.random.default_rng(SEED).bit_generator.state
_generators = threading.local()


def _seeded() -> np.random.Generator:
    """This thread's generator, back at its seeded start: every verification draws the same
    probes. Seeding a new generator costs 11 us, and a search verifies hundreds of matches;
    setting the state back costs 1.3."""
    rng: np.random.Generator | None = getattr(_generators, "rng", None)
    if rng is None:
        rng = _generators.rng = np.random.default_rng(SEED)
    rng.bit_generator.state = _SEEDED
    return rng


def member_scale(view: NeuronView) -> float:
    """Original output = scale x canonical output, for the representative original neuron."""
    return view.record.members[0][1] if view.record.members else 1.0


def subnetwork(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    wiring: Wiring | None = None,
    input_scales: Mapping[str, float] | None = None,
) -> NeuronGraph:
    """The matched units as a network of their own, inputs and outputs in pattern order.

    With an approximate ``wiring``, the units that stand beside a pattern unit (the other
    halves of a split detector) follow it, and every edge the wiring explained is there: the
    sub-network computes what the network computes, not what the rewriting says it does.
    An input with a fitted scale (``input_scales``) is read at its canonical value times
    that scale, so the sub-network takes the circuit's own inputs.
    """
    wiring = wiring or strict(pattern, mapping, views)
    units: list[Unit] = []
    scale = {
        uid: (input_scales or {}).get(name, 1.0)
        if pattern.unit(name).role is Role.INPUT
        else member_scale(views[uid])
        for name, uid in mapping.items()
    }
    for uids in wiring.siblings.values():
        scale.update({uid: member_scale(views[uid]) for uid in uids})
    for unit in pattern.units:
        uid = mapping[unit.name]
        if unit.role is Role.INPUT:
            units.append(Unit(uid, UnitKind.INPUT))
            continue
        sources = [mapping[src] for src, _ in unit.inputs]
        sources += [s for src, _ in unit.inputs for s in wiring.siblings.get(src, ())]
        sources += [s for s, _ in wiring.absorbed.get(unit.name, ())]
        for extra in (*wiring.linear.get(unit.name, ()), *wiring.quiet.get(unit.name, ())):
            placed = {u.id for u in units}
            if extra not in placed:  # another unit's extra too: placed once, read by both
                scale[extra] = member_scale(views[extra])
                reads = [s for s, _ in views[extra].inputs if s in placed]
                units.append(_unit(views[extra], extra, scale, reads, None))
            sources.append(extra)
        units.append(_unit(views[uid], uid, scale, sources, unit))
        for sibling in wiring.siblings.get(unit.name, ()):
            placed = {u.id for u in units}
            reads = [s for s, _ in views[sibling].inputs if s in placed]
            units.append(_unit(views[sibling], sibling, scale, reads, None))
    return NeuronGraph(tuple(units))


def _unit(
    view: NeuronView,
    uid: str,
    scale: Mapping[str, float],
    sources: list[str],
    role: PatternUnit | None,
) -> Unit:
    """One matched unit in original coordinates, reading ``sources``; ``role`` is the
    pattern unit it stands for (None: a sibling, a hidden unit like its host)."""
    weights = view.row
    inputs = {src: scale[uid] * weights[src] / scale[src] for src in sources}
    bias = scale[uid] * view.record.bias
    if role is not None and role.role is Role.OUTPUT:
        # A bare-sum output is its pre-activation; an output the pattern writes with an
        # activation (a detector pair's relu(+x)) is that activation's value.
        act = Activation.IDENTITY if role.activation is None else role.activation
        return Unit(uid, UnitKind.OUTPUT, act, bias, inputs, view.record.alpha)
    return Unit(
        uid, UnitKind.HIDDEN, view.record.signature.activation, bias, inputs, view.record.alpha
    )


@dataclass(frozen=True)
class Verdict:
    """The worst relative error after the best output scales, and, per hidden unit the
    caller asked about, how far its kink sits from the origin relative to the span of its
    pre-activation over the probes (``kink``: the worst of them)."""

    error: float
    scales: tuple[float, ...]
    kink: float = 0.0


def compare(
    outputs: np.ndarray, expected: np.ndarray, free_scale: tuple[bool, ...] | None = None
) -> Verdict:
    """Per output column the best positive scale (where ``free_scale`` allows one, else 1)
    and the worst relative error after it."""
    errors, scales = [], []
    for col in range(expected.shape[1]):
        z, r = outputs[:, col], expected[:, col]
        zz = float(z @ z)
        if free_scale is not None and not free_scale[col]:
            k = 1.0
        else:
            k = float(z @ r) / zz if zz > 0 else 0.0
        reach = float(np.max(np.abs(r))) if r.size else 0.0
        if k <= 0:
            return Verdict(float("inf"), ())
        errors.append(float(np.max(np.abs(k * z - r))) / (reach if reach > 0 else 1.0))
        scales.append(k)
    return Verdict(max(errors, default=0.0), tuple(scales))


@dataclass(frozen=True)
class Probing:
    """Where and how a matched sub-network is evaluated.

    ``intervals`` gives the range of circuit inputs the circuit's EXPECT leaves to the
    model (the model's domain, where it has one); ``kinks`` the sub-network units whose
    kink the pattern puts at the origin and approximation let move."""

    free_scale: tuple[bool, ...]
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    kinks: frozenset[str] = frozenset()
    probes: int = PROBES


Probed = tuple[np.ndarray, np.ndarray]  # probe inputs, and the reference's values there


def reference_values(
    pattern: CircuitPattern, params: Mapping[str, float], probing: Probing
) -> Probed | None:
    """The probes of a pattern with an EXPECT and its reference's values there, as
    ``verify`` draws them; None where the fitted parameters leave a FOR range nothing to
    probe. Known before the matched units are built into a network: a search that needs
    the reference's reach first draws them once, for both."""
    if pattern.reference is None:
        raise ValueError(f"{pattern.name} has no EXPECT: its reference is its own arithmetic")
    try:
        x = pattern.reference.probes(_seeded(), probing.probes, params, probing.intervals)
    except ProbeRangeError:
        return None
    return x, pattern.reference(x, params)


def verify(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    graph: NeuronGraph,
    params: Mapping[str, float],
    probing: Probing,
    probed: Probed | None = None,
) -> Verdict:
    """Evaluate ``graph`` against the pattern's reference on its probe inputs (``probed``,
    where ``reference_values`` drew them already)."""
    if pattern.reference is None:
        rng = _seeded()
        x = np.column_stack(
            [
                rng.uniform(*probing.intervals.get(name, DEFAULT_INTERVAL), size=probing.probes)
                for name in pattern.inputs
            ]
        )
        expected = _pattern_values(pattern, graph, mapping, params, x)
    else:
        probed = probed or reference_values(pattern, params, probing)
        if probed is None:  # the fitted parameters leave a FOR range nothing to probe
            return Verdict(math.inf, ())
        x, expected = probed
    values = graph.activations(x)
    outputs = np.stack([values[u.id] for u in graph.outputs], axis=1)
    verdict = compare(outputs, expected, probing.free_scale)
    if not probing.kinks:
        return verdict
    return replace(verdict, kink=_kink_offset(graph, values, len(x), probing.kinks))


def _kink_offset(
    graph: NeuronGraph, values: Mapping[str, np.ndarray], n: int, units: frozenset[str]
) -> float:
    """The worst |bias| / span of pre-activation over the probes among ``units``, from every
    unit's ``values`` there: 0 is a kink at the origin, 1 a unit constant (or linear) on the
    whole range."""
    worst = 0.0
    for unit in graph.units:
        if unit.id not in units:
            continue
        z = np.full(n, unit.bias)
        for src, w in unit.inputs.items():
            z = z + w * values[src]
        span = float(z.max() - z.min())
        worst = max(worst, abs(unit.bias) / span if span > 0 else math.inf)
    return worst


def kink_ratio(view: NeuronView, width: Callable[[str], float]) -> float | None:
    """|bias| of a first-layer unit over the widest span its pre-activation can take with
    each input spread over its ``width`` (0 for an input left out): 0 for a zero bias, inf
    for a bias on no span. However the widths were found (the probes', a domain's), a floor
    under the kink verification measures (``_kink_offset``). None for a unit that reads a
    hidden unit too: its kink moves with that unit, and is not judged here."""
    if view.record.layer != 1:
        return None
    bias = abs(view.record.bias)
    if bias == 0:
        return 0.0
    span = sum(abs(w) * width(uid) for uid, w in view.inputs)
    return bias / span if span > 0 else math.inf


def kink_floor(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    wiring: Wiring,
    kinks: frozenset[str],
    probed: Probed,
) -> float:
    """A lower bound on the kink ``verify`` measures among the pattern units ``kinks``, from
    the probes alone, before the sub-network is built: ``kink_ratio`` over the probes'
    spread per circuit input. Only units that read network inputs alone, with nothing the
    wiring adds, count: the sub-network reads them through the circuit inputs they are
    bound to, as here, and no quiet input (a hidden unit) can join them later."""
    spread = np.ptp(probed[0], axis=0) if len(probed[0]) else np.zeros(len(pattern.inputs))
    widths = {mapping[name]: float(spread[i]) for i, name in enumerate(pattern.inputs)}
    worst = 0.0
    for name in kinks:
        if name in wiring.absorbed or name in wiring.linear or name in wiring.quiet:
            continue
        ratio = kink_ratio(views[mapping[name]], lambda uid: widths.get(uid, 0.0))
        worst = max(worst, 0.0 if ratio is None else ratio)
    return worst


def _pattern_values(
    pattern: CircuitPattern,
    graph: NeuronGraph,
    mapping: Mapping[str, str],
    params: Mapping[str, float],
    x: np.ndarray,
) -> np.ndarray:
    """Without EXPECT, the pattern's own arithmetic (sign-only weights taken as matched) is
    the reference: the structural match is confirmed on numbers, not trusted."""
    values = {name: x[:, i] for i, name in enumerate(pattern.inputs)}
    for unit in pattern.units:
        if unit.role is Role.INPUT:
            continue
        actual = graph[mapping[unit.name]]
        z = np.full(len(x), _value(unit.bias, actual.bias, params))
        for src, coef in unit.inputs:
            z = z + _value(coef, actual.inputs[mapping[src]], params) * values[src]
        values[unit.name] = z if unit.activation is None else unit.activation.apply(z)
    return np.stack([values[name] for name in pattern.outputs], axis=1)


def _value(coef: Coef, actual: float, params: Mapping[str, float]) -> float:
    if coef.kind is CoefKind.SIGN:
        return actual
    return coef.poly.evaluate(params)


FAITHFULNESS_PROBES = 128


def faithfulness(
    cone: NeuronGraph,
    circuit: NeuronGraph,
    outputs: Sequence[str],
    box: Mapping[str, tuple[float, float]],
) -> float:
    """How much of its output units' value the circuit alone leaves unexplained: ``cone``
    (every canonical unit the outputs depend on) evaluated on network inputs drawn from
    ``box`` (an interval per input id), each output unit's pre-activation compared with what
    it is once every input that is not a unit of ``circuit`` is ablated (set to zero). The
    worst difference relative to the output's own range: 0 when the circuit is all the
    output reads."""
    rng = _seeded()
    ends = np.array([box[u.id] for u in cone.inputs], dtype=np.float64).reshape(-1, 2)
    x = ends[:, 0] + (ends[:, 1] - ends[:, 0]) * rng.random((FAITHFULNESS_PROBES, len(ends)))
    values = _values(cone, x)
    position = {u.id: i for i, u in enumerate(cone.units)}
    kept = set(circuit.by_id)
    worst = 0.0
    for uid in outputs:
        unit = cone[uid]
        sources = [position[s] for s in unit.inputs]
        weights = np.array(list(unit.inputs.values()))
        inside = np.array([s in kept for s in unit.inputs], dtype=bool)
        terms = weights[:, None] * values[sources]
        full = unit.bias + terms.sum(axis=0)
        gap = float(np.max(np.abs(terms[~inside].sum(axis=0)))) if (~inside).any() else 0.0
        span = float(full.max() - full.min())
        worst = max(worst, gap / span if span > 0 else (0.0 if gap == 0 else math.inf))
    return worst


def _values(graph: NeuronGraph, x: np.ndarray) -> np.ndarray:
    """Every unit's post-activation value (rows, in unit order) on a batch ``x``, one dense
    matrix product per layer: a measure over a whole cone of units, where the per-unit
    evaluation ``NeuronGraph.activations`` keeps to verify each sum in a fixed order."""
    n = len(graph.units)
    edges = graph.edge_arrays
    weights = np.zeros((n, n))
    weights[edges.dst, edges.src] = edges.weight
    bias = np.array([u.bias for u in graph.units])
    activation = np.array([u.activation for u in graph.units], dtype=object)
    inputs = np.array([u.kind is UnitKind.INPUT for u in graph.units])
    depth = edges.depths(inputs)
    values = np.zeros((n, len(x)))
    values[inputs] = x.T
    for level in range(1, int(depth.max(initial=0)) + 1):
        rows = np.flatnonzero(depth == level)
        z = weights[rows] @ values + bias[rows, None]
        relu = activation[rows] == Activation.RELU
        values[rows[relu]] = np.maximum(z[relu], 0.0)
        for i in np.flatnonzero(~relu).tolist():
            unit = graph.units[rows[i]]
            values[rows[i]] = unit.activation.apply(z[i], unit.alpha)
    return values

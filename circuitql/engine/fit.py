"""Checking a structural match's weights against the pattern: exact weights as ratios within
tolerance, sign-only weights by sign, free parameters fitted by least squares across every
unit that mentions them, and each unit's (and each hidden input's) positive scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

from circuitql.engine.match import Neighbourhood
from circuitql.engine.wiring import Wiring, strict
from circuitql.graph import UnitKind
from circuitql.language.pattern import CircuitPattern, Coef, CoefKind, Poly, Role
from circuitql.store.base import NeuronView


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
    # How far, in the pattern's units, a bare sum's bias sits beyond what it may cancel and
    # the exact rule allows (``_unexplained_offset``): verification's to judge against the
    # reference's reach, which the weights do not know.
    offset: float = 0.0


Equation = tuple[Poly, float]  # poly(params) == value, both divided by the unit's largest weight


def fit(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    hood: Neighbourhood,
    tolerance: float,
    wiring: Wiring | None = None,
    approximate: bool = False,
    kinks: AbstractSet[str] = frozenset(),
    offsets: AbstractSet[str] = frozenset(),
) -> Fit | None:
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
    kinks sit from the origin is judged on the domain, by verification. The biases of
    ``offsets`` (bare sums whose zero bias approximation lets move) are not compared either;
    each may cancel no more than the biases before it moved (``_unexplained_offset``).
    """
    wiring = wiring or strict(pattern, mapping, hood.views)
    fixed = {
        unit.name: _fixed_scale(hood.views[mapping[unit.name]])
        for unit in pattern.units
        if unit.role is not Role.INPUT
    }
    unit_scale: dict[str, float] = {}
    source_scale: dict[str, float] = {}
    if approximate:
        fitted = _scales(pattern, mapping, hood.views, wiring, fixed)
        if fitted is None:
            return None
        unit_scale, source_scale = fitted
    scales: dict[str, float] = {}
    equations: list[Equation] = []
    worst = 0.0
    # Per computed unit, its bias's distance from the pattern's, known now or once the
    # parameters are (poly, unit scale): what an offset may cancel.
    moved: dict[str, float | tuple[Poly, float]] = {}
    for unit in pattern.units:
        if unit.role is Role.INPUT:
            continue
        view = hood.views[mapping[unit.name]]
        weights = wiring.weights[unit.name]
        # (network value, coefficient, the scale its source is read at; None: as written)
        terms = [(weights[src], coef, source_scale.get(src)) for src, coef in unit.inputs]
        top = max((abs(w) for w, _, _ in terms), default=0.0) or 1.0
        terms.append((view.record.bias, unit.bias, None))
        own = fixed[unit.name]
        scale = unit_scale.get(unit.name, own) if approximate else _unit_scale(terms, own)
        if scale is not None and scale <= 0:
            return None
        bias = len(terms) - 1
        for position, (value, coef, factor) in enumerate(terms):
            kind = coef.kind
            if kind is CoefKind.SIGN:
                if value * coef.value <= 0:
                    return None  # an approximate wiring can move a weight across zero
                continue
            if position == bias and scale is not None:
                moved[unit.name] = _moved(value, coef, scale)
            if scale is None or (position == bias and unit.name in kinks | offsets):
                continue  # nothing to compare against, or a kink or offset judged below
            if kind is CoefKind.EXACT:
                worst = max(worst, abs(value - scale * _read_at(coef.value, factor)) / top)
            else:
                poly = coef.poly if factor is None else coef.poly.scaled(factor)
                equations.append((poly.scaled(scale / top), value / top))
        if worst > tolerance:
            return None
        if scale is not None:
            scales[unit.name] = scale
    params = _solve(pattern.params, equations)
    if params is None:
        return None
    residual = max((abs(poly.evaluate(params) - value) for poly, value in equations), default=0.0)
    if residual > tolerance:
        return None
    offset = (
        _unexplained_offset(
            pattern, mapping, hood.views, wiring, moved, scales, params, offsets, tolerance
        )
        if offsets
        else 0.0
    )
    inputs = {name: source_scale[name] for name in pattern.inputs if name in source_scale}
    return Fit(params, scales, max(worst, residual), inputs, offset)


def _moved(value: float, coef: Coef, scale: float) -> float | tuple[Poly, float]:
    """How far a unit's bias ``value`` sits from the pattern's ``coef`` at the unit's
    ``scale``, in network units: a sign-only bias has no value to sit from; a parameter's
    is known once the parameters are (the poly and the scale, for ``_unexplained_offset``)."""
    if coef.kind is CoefKind.SIGN:
        return 0.0
    if coef.kind is CoefKind.EXACT:
        return abs(value - scale * coef.value)
    return (coef.poly, scale)


def _unexplained_offset(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    wiring: Wiring,
    moved: Mapping[str, float | tuple[Poly, float]],
    scales: Mapping[str, float],
    params: Mapping[str, float],
    offsets: AbstractSet[str],
    tolerance: float,
) -> float:
    """The largest bias among ``offsets`` beyond what the exact rule allows (``tolerance``
    of its unit's largest weight) and what it can cancel, in the pattern's units (over the
    unit's scale); 0 where that is nothing, or not known.

    What a bias can cancel is how far, at most, the biases before it moved its inputs'
    values from the pattern's. A unit's value moves by at most its own bias's distance from
    the pattern's (a ReLU is 1-Lipschitz, and so is the identity) plus its weights times
    its inputs' moves; a split half moves its host's value by its own kink's distance from
    its host's, and a unit linear or dead on the domain by its bias (the constant it adds,
    or more). The bound holds at every input, so a bias beyond it shifts the bare sum off
    the pattern's value everywhere, by the difference: past the reference's reach times
    the tolerance, no verification can pass. A sum bound to the next stage of a chain
    (fold >> fold on the first two folds of five, the third's threshold in its bias) is so
    rejected before it is verified. An input of unknown provenance (no view read) leaves
    the bias to verification alone.
    """
    slack = {name: tolerance * _top(views[mapping[name]]) for name in offsets}
    if all(abs(views[mapping[name]].record.bias) <= slack[name] for name in offsets):
        return 0.0  # within the exact rule: nothing to explain
    hosts = {uid: src for src, uids in wiring.siblings.items() for uid in uids}
    circuit_inputs = {mapping[u.name] for u in pattern.units if u.role is Role.INPUT}
    bound = set(mapping.values())
    drift: dict[str, float] = {}
    own: dict[str, float] = {}
    for unit in pattern.units:
        if unit.role is Role.INPUT:
            drift[unit.name] = 0.0
            continue
        distance = moved.get(unit.name)
        if distance is None:
            return 0.0
        if isinstance(distance, tuple):
            poly, scale = distance
            distance = abs(views[mapping[unit.name]].record.bias - scale * poly.evaluate(params))
        own[unit.name] = total = distance
        sources = {mapping[src]: src for src, _ in unit.inputs}
        for uid, weight in views[mapping[unit.name]].significant_inputs:
            if uid in sources:
                total += abs(weight) * drift[sources[uid]]
            elif uid in circuit_inputs:
                continue  # a linear path from a circuit input adds no constant
            elif uid in hosts and uid in views:
                host = mapping[hosts[uid]]
                gap = abs(views[uid].record.bias - views[host].record.bias)
                total += abs(weight) * (gap + drift[hosts[uid]])
            elif uid in views and uid not in bound:
                total += abs(weight) * abs(views[uid].record.bias)
            else:
                return 0.0
        drift[unit.name] = total
    worst = 0.0
    for name in offsets:
        beyond = abs(views[mapping[name]].record.bias) - (drift[name] - own[name]) - slack[name]
        worst = max(worst, beyond / scales[name])
    return worst


def _top(view: NeuronView) -> float:
    """A unit's largest significant weight (0 for a unit that reads nothing)."""
    return max((abs(w) for _, w in view.significant_inputs), default=0.0)


def _read_at(value: float, factor: float | None) -> float:
    """An exact coefficient on a source the network carries at ``factor`` times the
    pattern's (None: as the pattern writes it)."""
    return value if factor is None else value * factor


# How strongly a hidden input's scale is pulled to its canonical scale where the weights
# leave it free: far too weakly to move a scale they determine.
GAUGE_PULL = 1e-3


def _scales(
    pattern: CircuitPattern,
    mapping: Mapping[str, str],
    views: Mapping[str, NeuronView],
    wiring: Wiring,
    fixed: Mapping[str, float | None],
) -> tuple[dict[str, float], dict[str, float]] | None:
    """Every unit's scale k and every source's scale, fitted across the circuit together.
    ``fixed`` has each computed unit's ``_fixed_scale``, in pattern order.

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
    hidden_inputs = tuple(
        views[mapping[name]].record.signature.kind is not UnitKind.INPUT for name in pattern.inputs
    )
    rescaled = tuple(scale is None for scale in fixed.values())
    system = _system(pattern, hidden_inputs, rescaled)
    values = []
    for unit, coef, src in system.rows:
        value = views[mapping[unit]].record.bias if src is None else wiring.weights[unit][src]
        if value * coef.value <= 0:
            return None
        values.append(math.log(value / coef.value))
    values += [0.0] * (system.solve.shape[1] - len(system.rows))  # the gauge's pull rows
    log = system.solve @ np.array(values, dtype=np.float64)
    unit_scale, source_scale = {}, {}
    for name, column in system.unknowns.items():
        scale = math.exp(float(log[column]))
        if pattern.unit(name).role is Role.INPUT:
            source_scale[name] = scale
        else:
            unit_scale[name] = scale
            source_scale[name] = 1.0 / scale
    return unit_scale, source_scale


@dataclass(frozen=True)
class _System:
    """The least squares ``_scales`` solves, for one pattern and one shape of match (which
    circuit inputs are hidden units, which units the canonical form rescales): the same for
    every candidate of that shape, so it is set up and pseudo-inverted once, and a fit is a
    matrix-vector product. ``rows`` are the exact nonzero coefficients, (unit, coefficient,
    source; None for the bias), in the order of the matrix's rows."""

    pattern: CircuitPattern  # held: its id keys the system, and cannot be reused while held
    unknowns: dict[str, int]
    rows: tuple[tuple[str, Coef, str | None], ...]
    solve: np.ndarray  # the pseudo-inverse: unknowns x rows (the pull rows included)


# Systems kept across queries, at most this many (patterns times shapes of match).
SYSTEMS_KEPT = 4096
_systems: dict[tuple[int, tuple[bool, ...], tuple[bool, ...]], _System] = {}


def _system(
    pattern: CircuitPattern, hidden_inputs: tuple[bool, ...], rescaled: tuple[bool, ...]
) -> _System:
    """The system of ``pattern`` when its inputs are hidden units as ``hidden_inputs``
    says and its computed units are rescaled as ``rescaled`` says, made on first use."""
    key = (id(pattern), hidden_inputs, rescaled)
    system = _systems.get(key)
    if system is None:
        if len(_systems) >= SYSTEMS_KEPT:
            _systems.clear()
        system = _systems[key] = _set_up(pattern, hidden_inputs, rescaled)
    return system


def _set_up(
    pattern: CircuitPattern, hidden_inputs: tuple[bool, ...], rescaled: tuple[bool, ...]
) -> _System:
    unknowns: dict[str, int] = {}
    for name, hidden in zip(pattern.inputs, hidden_inputs, strict=True):
        if hidden:
            unknowns[name] = len(unknowns)
    pulled = list(unknowns.values())
    computed = [unit for unit in pattern.units if unit.role is not Role.INPUT]
    for unit, free in zip(computed, rescaled, strict=True):
        if free:
            unknowns[unit.name] = len(unknowns)
    rows: list[tuple[str, Coef, str | None]] = []
    matrix: list[dict[int, float]] = []
    for unit in computed:
        terms: list[tuple[Coef, str | None]] = [(coef, src) for src, coef in unit.inputs]
        terms.append((unit.bias, None))
        for coef, src in terms:
            if coef.kind is not CoefKind.EXACT or coef.is_zero:
                continue
            row: dict[int, float] = {}
            if unit.name in unknowns:
                row[unknowns[unit.name]] = 1.0  # log k_U
            if src in unknowns:
                sign = 1.0 if pattern.unit(src).role is Role.INPUT else -1.0
                row[unknowns[src]] = row.get(unknowns[src], 0.0) + sign  # log sigma_j
            rows.append((unit.name, coef, src))
            matrix.append(row)
    matrix += [{column: GAUGE_PULL} for column in pulled]
    a = np.zeros((len(matrix), len(unknowns)))
    for r, row in enumerate(matrix):
        for column, factor in row.items():
            a[r, column] = factor
    # lstsq's cut-off for small singular values, so a fit gives lstsq's minimum-norm answer
    cutoff = np.finfo(np.float64).eps * max(a.shape, default=0)
    solve = np.linalg.pinv(a, rcond=cutoff) if a.size else np.zeros((len(unknowns), len(matrix)))
    return _System(pattern, unknowns, tuple(rows), solve)


def _fixed_scale(view: NeuronView) -> float | None:
    """Scale 1 for units canonicalization leaves unscaled (outputs, sigmoid/tanh/gelu)."""
    sig = view.record.signature
    if sig.kind is UnitKind.OUTPUT or not sig.activation.positively_homogeneous:
        return 1.0
    return None


def _unit_scale(terms: list[tuple[float, Coef, float | None]], fixed: float | None) -> float | None:
    """Least-squares scale of the exact nonzero coefficients, else ``fixed``."""
    exact = [
        (w, _read_at(c.value, factor))
        for w, c, factor in terms
        if c.kind is CoefKind.EXACT and c.value != 0
    ]
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
        if len(unknowns) == 1:  # in closed form: lstsq's answer, without its 10 us of set-up
            column = [linear[unknowns[0]] for linear, _ in rows]
            norm = sum(c * c for c in column)
            if norm == 0:
                return None  # rank 0
            known[unknowns[0]] = sum(c * v for c, (_, v) in zip(column, rows, strict=True)) / norm
            continue
        a = np.array([[linear.get(p, 0.0) for p in unknowns] for linear, _ in rows])
        b = np.array([value for _, value in rows])
        # lstsq's rank is matrix_rank's (the same SVD cut-off), without a second SVD.
        solution, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
        if rank < len(unknowns):
            return None
        known.update(zip(unknowns, solution.tolist(), strict=True))
    return known


def _linear(
    poly: Poly, known: Mapping[str, float], value: float
) -> tuple[dict[str, float], float] | None:
    """``poly == value`` with known parameters substituted, as (coefficients of the unknowns,
    right-hand side), when it is linear in them and mentions at least one."""
    linear: dict[str, float] = {}
    rhs = value
    for mono, factor in poly.terms:
        rest = [p for p in mono if p not in known]
        factor *= math.prod(known[p] for p in mono if p in known)
        if not rest:
            rhs -= factor
        elif len(rest) == 1:
            linear[rest[0]] = linear.get(rest[0], 0.0) + factor
        else:
            return None
    return (linear, rhs) if linear else None

"""The canonical form: one representative for all the ways of writing the same network.

A ReLU network can be rewritten without changing its function: permute hidden neurons, scale a
neuron's incoming weights by k > 0 and its outgoing ones by 1/k, add neurons that never fire or
whose output goes nowhere, split a neuron into two copies, add weights too small to matter.
Each step below undoes one of these, and together they run to a fixed point, so two networks
that differ only by such rewrites end up with the same canonical graph (up to the order of
units, which signatures and isomorphism checks ignore).

Every step is a pure function ``(State, Config) -> (State, [Step])``. ``State.members`` keeps,
for every canonical unit, the original neurons folded into it and their scale, so a match found
in the canonical graph is reported in the user's own coordinates.

Defaults (documented in docs/canonical-form.md):

* ``prune_tol = 1e-3``: an incoming weight is negligible when its contribution is under 0.1%
  of the largest contribution to its neuron: the weight, measured after upstream neurons are
  rescaled (so it also stands for the upstream neuron's downstream effect), times the width
  of the source's interval when the source is a network input (``input_ranges``).
* ``max_error = 1e-4``: the most the canonical network may differ from the original, relative
  to the output's reach, on probes over the domain (``circuitql.indexer.fidelity``); a model
  over it is canonicalized again with a tighter ``prune_tol``.
* ``merge_tol = 1e-6``: two neurons are duplicates when their canonical incoming weights and
  biases differ by at most this much (max-abs, on unit-norm rows).
* ``domain = None``: the box the inputs live in (``circuitql.domain.Domain``), unbounded when
  None. On it a ReLU whose pre-activation is never positive is dead, and one whose
  pre-activation is never negative is linear and folds into the units that read it.

The form's edge weights end at float32 precision (``float32_precision``): the precision models
are trained and shipped in, so no digit that decides a match is lost, and a store keeps every
weight in four bytes and reads back exactly the form that was written (biases, one a unit,
stay float64). The rounding is part of the form, so the canonical error measures it.

The steps work on the graph's edges as arrays (``EdgeArrays``), not on one input mapping per
unit: a dense 3 x 64 MLP has ~9,000 edges, and indexing a zoo runs every step on every model.
Wherever the order of float operations decides a result (norms, interval sums, merged weights)
the arrays are combined in the order the per-unit definition gives, so the canonical form is
the same to the last bit whichever way it is computed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, islice
from types import MappingProxyType

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import (
    RUN_EDGES,
    Activation,
    EdgeArrays,
    NeuronGraph,
    Unit,
    UnitKind,
    position_type,
    row_max,
)
from circuitql.lazy import cached_property

Members = Mapping[str, tuple[tuple[str, float], ...]]
MAX_ROUNDS = 100
_HOMOGENEOUS = tuple(a for a in Activation if a.positively_homogeneous)


# Bumped whenever a rule below changes what a network's canonical form is: a model stored
# under another version is canonicalized again when it is indexed again.
VERSION = 4


@dataclass(frozen=True)
class Config:
    """The tolerances and input box canonicalization runs under (defaults and their meaning
    in the module docstring); ``fingerprint`` is stored with every model."""

    prune_tol: float = 1e-3
    merge_tol: float = 1e-6
    domain: Domain | None = None
    max_error: float = 1e-4

    def box(self, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of every input's interval (unbounded without a domain)."""
        if self.domain is None:
            return np.full(n_inputs, -math.inf), np.full(n_inputs, math.inf)
        box = np.array(self.domain.for_inputs(n_inputs).box, dtype=np.float64).reshape(-1, 2)
        return box[:, 0].copy(), box[:, 1].copy()

    def fingerprint(self) -> dict[str, object]:
        """What decides the canonical form besides the network: stored with every model."""
        return {
            "version": VERSION,
            "prune_tol": self.prune_tol,
            "merge_tol": self.merge_tol,
            "domain": None if self.domain is None else self.domain.to_json(),
            "max_error": self.max_error,
        }


@dataclass(frozen=True)
class Step:
    """One thing canonicalization did, in the source ids of the units it touched."""

    action: str
    unit: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.unit}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True, eq=False)
class State:
    """A network between two steps.

    ``units`` says what each unit is (id, kind, activation, alpha), and ``kind`` and
    ``activation`` repeat that as arrays, for masks; a unit's current bias is ``bias[i]`` and
    its current inputs are the edges into position i (the units' own ``bias`` and ``inputs``
    are the loaded ones). ``level`` (longest-path depth) orders evaluation: every edge goes
    from a lower level to a higher one. Removing units or edges keeps that true, so it is
    computed again only after a merge, which may add edges. ``box`` holds the lower and upper
    ends of every input's interval, over which ``fates`` are proved.
    """

    units: tuple[Unit, ...]
    kind: np.ndarray
    activation: np.ndarray
    bias: np.ndarray
    edges: EdgeArrays
    level: np.ndarray
    members: Members
    box: tuple[np.ndarray, np.ndarray]

    @staticmethod
    def of(graph: NeuronGraph, config: Config, bare: bool = False) -> State:
        """The loaded network before any step: each unit its own only member, at scale 1.

        ``bare``: the units without their input mappings, which hold the loaded graph's edge
        arrays (``ArrayInputs``) long after the steps have made their own; the state then
        keeps nothing of the graph once its edges are rebuilt."""
        units = graph.units
        if bare:
            units = tuple(
                Unit(u.id, u.kind, u.activation, u.bias, _NO_INPUTS, u.alpha) for u in units
            )
        kind = np.array([u.kind for u in units], dtype=object)
        return State(
            units,
            kind,
            np.array([u.activation for u in units], dtype=object),
            np.array([u.bias for u in units], dtype=np.float64),
            graph.edge_arrays,
            graph.depth_array,
            {u.id: ((u.id, 1.0),) for u in units},
            config.box(len(graph.inputs)),
        )

    @cached_property
    def fates(self) -> tuple[np.ndarray, np.ndarray]:
        """``rectifier_fates`` of every unit on the box: one pass of interval bounds, read by
        both fold_constants and linearize, and by the next round too when a round changed
        nothing (a step that changes nothing hands on the same state)."""
        lo, hi = bounds(self)
        return rectifier_fates(self.activation.tolist(), [u.alpha for u in self.units], lo, hi)

    @cached_property
    def fan_in(self) -> np.ndarray:
        """Each unit's current number of incoming edges, by position."""
        return np.diff(self.edges.starts)

    @cached_property
    def hidden(self) -> np.ndarray:
        """A mask by position: the units that are neither inputs nor outputs."""
        return self.kind == UnitKind.HIDDEN

    def has(self, *activations: Activation) -> np.ndarray:
        """A mask by position: the units whose activation is one of ``activations``."""
        return np.isin(self.activation, activations)

    def ids(self, positions: np.ndarray) -> list[str]:
        """The source ids of the units at ``positions``: what a Step names them by."""
        return [self.units[i].id for i in positions.tolist()]


@dataclass(frozen=True)
class Canonical:
    """The canonical graph, who is in each canonical unit, and the log of what was done."""

    graph: NeuronGraph
    members: Members
    steps: tuple[Step, ...] = field(default=())


StepFn = Callable[[State, Config], tuple[State, list[Step]]]


def canonicalize(graph: NeuronGraph, config: Config | None = None) -> Canonical:
    """Apply every step until none changes anything."""
    config = config or Config()
    return canonical_form(State.of(graph, config), config)


def canonical_form(state: State, config: Config) -> Canonical:
    """``canonicalize`` from a state: each step's result replaces it, so a caller that hands
    over its only reference (``faithful_canonical``, for a big network) holds no array of the
    loaded graph's once the steps have made their own."""
    log: list[Step] = []
    for _ in range(MAX_ROUNDS):
        changed = False
        for step in PIPELINE:
            state, steps = step(state, config)
            # Rescaling reports every unit it touches on the first round; only structural
            # changes make another round necessary.
            changed |= any(s.action != "rescale" for s in steps)
            log.extend(steps)
        if not changed:
            break
    edges = state.edges
    edges = edges.with_weights(float32_precision(edges.weight))
    canonical = NeuronGraph.from_arrays(state.units, state.bias, edges)
    return Canonical(canonical, state.members, tuple(log))


_FLOAT32 = np.finfo(np.float32)
_NO_INPUTS: Mapping[str, float] = MappingProxyType({})


def float32_precision(weights: np.ndarray) -> np.ndarray:
    """``weights`` rounded to the nearest float32, as float64 (read-only, like the arrays of
    ``EdgeArrays``). A weight float32 cannot hold keeps every bit: rounding would make it
    infinite, subnormal or zero, where float64 still computes with it. One float64 copy,
    and masks of a run of weights at a time: a GPT-2-sized stack has 57 million weights."""
    out = np.empty_like(weights, dtype=np.float64)
    for start in range(0, len(weights), RUN_EDGES):
        part = weights[start : start + RUN_EDGES]
        with np.errstate(over="ignore"):
            rounded = part.astype(np.float32).astype(np.float64)
        kept = ~np.isfinite(rounded)
        kept |= (rounded > -_FLOAT32.tiny) & (rounded < _FLOAT32.tiny)
        rounded[kept] = part[kept]
        out[start : start + RUN_EDGES] = rounded
    out.flags.writeable = False
    return out


def _by_level(state: State) -> Iterator[tuple[np.ndarray, np.ndarray | slice]]:
    """Per level, lowest first: its units in unit order, and the positions of their edges
    (grouped by unit, each unit's inputs in order), a slice where the level's units lie
    side by side (a layer's do). A unit's sources are all on lower levels. Each level's
    edges are listed as it comes: a level of every edge at once would be two arrays of 8
    bytes an edge (920 MB for a GPT-2-sized stack)."""
    units = np.argsort(state.level, kind="stable")
    cuts = np.arange(int(state.level.max(initial=0)) + 2)
    unit_cuts = np.searchsorted(state.level[units], cuts).tolist()
    starts = state.edges.starts
    for level in range(len(cuts) - 1):
        rows = units[unit_cuts[level] : unit_cuts[level + 1]]
        if len(rows) and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
            yield rows, slice(int(starts[rows[0]]), int(starts[rows[-1] + 1]))
        else:
            yield rows, state.edges.into(rows)


def _rebuild(
    state: State, removed: np.ndarray | None = None, kept_edges: np.ndarray | None = None
) -> State:
    """``state`` without the ``removed`` units and every edge that touches them, and without
    the edges ``kept_edges`` leaves out. Only the kept edges' arrays are made (a GPT-2-sized
    stack's are 690 MB a copy), the mask a run of edges at a time."""
    edges = state.edges
    keep = np.ones(len(edges), dtype=bool) if kept_edges is None else kept_edges
    if removed is None:  # edges alone: every unit keeps its position
        return replace(state, edges=edges.kept(keep))
    if kept_edges is not None:
        keep = keep.copy()  # narrowed below: the caller's mask stays as it was
    kept = ~removed
    for run in edges.runs():
        keep[run.lo : run.hi] &= kept[edges.src[run.lo : run.hi]]
        keep[run.lo : run.hi] &= kept[run.first : run.end][run.targets(edges)]
    position = (np.cumsum(kept) - 1).astype(position_type(int(kept.sum())))
    units = tuple(compress(state.units, kept.tolist()))
    survivors = edges.kept(keep)  # a removed unit has no edges left: its count is 0
    return State(
        units,
        state.kind[kept],
        state.activation[kept],
        state.bias[kept],
        EdgeArrays.of(
            position[survivors.src],
            survivors.weight,
            survivors.starts[np.append(np.flatnonzero(kept), len(kept))],
        ),
        state.level[kept],
        state.members,
        state.box,
    )


def fold_constants(state: State, config: Config) -> tuple[State, list[Step]]:
    """Remove hidden units whose output never varies.

    A unit without inputs outputs ``act(bias)``: that constant moves into its consumers' biases.
    A ReLU whose pre-activation is provably never positive (interval bounds over the input box)
    outputs 0 and simply goes.
    """
    constant = state.hidden & (state.fan_in == 0)
    candidates = state.hidden & (state.fan_in > 0) & state.has(Activation.RELU)
    dead = np.zeros_like(candidates)
    if candidates.any():
        dead = candidates & state.fates[0]
    if not constant.any() and not dead.any():
        return state, []
    edges = state.edges
    bias = state.bias.tolist()
    steps: list[Step] = []
    for c in np.flatnonzero(constant).tolist():
        unit = state.units[c]
        value = float(unit.activation.apply(np.array(state.bias[c]), unit.alpha))
        out = np.flatnonzero(edges.src == c)  # targets in unit order
        targets = edges.target_of(out).tolist()
        for target, w in zip(targets, edges.weight[out].tolist(), strict=True):
            bias[target] += w * value
        steps.append(Step("fold_constant", unit.id, f"constant {value:.6g}"))
    where = "" if config.domain is None else " on the domain"
    steps += [
        Step(
            "remove_dead",
            uid,
            f"pre-activation can never be positive{where}" + _members_text(state, uid),
        )
        for uid in state.ids(np.flatnonzero(dead))
    ]
    return _rebuild(replace(state, bias=np.array(bias)), constant | dead), steps


def rectifier_fates(
    activation: Sequence[Activation | None],
    alpha: Sequence[float],
    lo: np.ndarray,
    hi: np.ndarray,
    touching: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The rule both networks and patterns are normalized by: given bounds [lo, hi] of
    hidden units' pre-activations, which ReLUs are dead (never positive: they output 0) and,
    for the rectifiers that are linear wherever their inputs can be, the slope (1 when never
    negative; a leaky ReLU's ``alpha`` when never positive); nan where neither holds.

    Linear means the kink lies strictly outside the reachable range: relu(3 + x/2) on
    [-2, 2], a unit training left active on all its data. A unit whose range only touches
    its kink, relu(p + n) with p, n >= 0, is the identity too, but it is also how a circuit
    with a non-negative output (|x| as p + n) is written as a neuron, so it stays: a pattern
    accepts it either way (``touching`` counts it as linear, for the pattern's other form).
    """
    relu = np.array([a is Activation.RELU for a in activation], dtype=bool)
    leaky = np.array([a is Activation.LEAKY_RELU for a in activation], dtype=bool)
    with np.errstate(invalid="ignore"):  # nan bounds prove nothing
        dead = relu & (hi <= 0.0)
        above = (lo >= 0.0) if touching else (lo > 0.0)
        below = (hi <= 0.0) if touching else (hi < 0.0)
        active = (relu | leaky) & above & ~dead
        negative = leaky & below & ~active
    slope = np.full(len(relu), np.nan)
    slope[active] = 1.0
    slope[negative] = np.asarray(alpha, dtype=np.float64)[negative]
    return dead, slope


def linearize(state: State, config: Config) -> tuple[State, list[Step]]:
    """Fold units that are linear wherever the inputs can be into the units that read them.

    A ReLU whose pre-activation is never negative (a leaky ReLU's, or one never positive) is a
    linear map there: it computes nothing a neuron of its own is needed for, and a network
    that leaves one beside a circuit (a trained unit whose kink lies outside the data) reads
    as a linear path from its sources to its readers. Each reader gets the unit's incoming
    weights times its weight to the unit, and the unit's bias into its own; units are folded
    lowest level first, so a chain of linear units collapses in one pass.
    """
    rectifier = (
        state.hidden & (state.fan_in > 0) & state.has(Activation.RELU, Activation.LEAKY_RELU)
    )
    if not rectifier.any():
        return state, []
    slope = state.fates[1]
    linear = rectifier & ~np.isnan(slope)
    if not linear.any():
        return state, []
    edges = state.edges
    rows: list[dict[int, float]] = [{} for _ in state.units]
    readers: list[list[int]] = [[] for _ in state.units]
    for src, dst, w in zip(
        edges.src.tolist(), edges.dst.tolist(), edges.weight.tolist(), strict=True
    ):
        rows[dst][src] = w
        readers[src].append(dst)
    bias = state.bias.tolist()
    where = "" if config.domain is None else " on the domain"
    steps = []
    order = np.flatnonzero(linear)
    for unit in order[np.argsort(state.level[order], kind="stable")].tolist():
        for reader in readers[unit]:
            w = rows[reader].pop(unit) * slope[unit]
            bias[reader] += w * bias[unit]
            for src, v in rows[unit].items():
                if src not in rows[reader]:
                    readers[src].append(reader)
                rows[reader][src] = rows[reader].get(src, 0.0) + w * v
        for src in rows[unit]:
            readers[src].remove(unit)
        rows[unit], readers[unit] = {}, []
        uid = state.units[unit].id
        slope_text = "" if slope[unit] == 1.0 else f" with slope {slope[unit]:g}"
        steps.append(
            Step(
                "linearize",
                uid,
                f"linear{slope_text}{where}: folded into its readers" + _members_text(state, uid),
            )
        )
    src = [s for row in rows for s in row]
    dst = [d for d, row in enumerate(rows) for _ in row]
    weight = [w for row in rows for w in row.values()]
    folded = replace(
        state,
        bias=np.array(bias),
        edges=EdgeArrays.grouped(
            np.array(src, dtype=np.intp),
            np.array(dst, dtype=np.intp),
            np.array(weight),
            len(state.units),
        ),
    )
    folded = _rebuild(folded, linear)
    return replace(folded, level=folded.edges.depths(folded.kind == UnitKind.INPUT)), steps


def _members_text(state: State, uid: str) -> str:
    """The original neurons behind a canonical unit, when it stands for more than itself."""
    members = [src for src, _ in state.members[uid]]
    return "" if members == [uid] else f" (members {', '.join(members)})"


def bounds(state: State) -> tuple[np.ndarray, np.ndarray]:
    """Sound lower and upper bounds of every unit's pre-activation (an input's: its interval),
    propagated level by level through post-activation intervals over the state's box."""
    n = len(state.units)
    post_lo, post_hi = np.empty(n), np.empty(n)
    pre_lo, pre_hi = np.empty(n), np.empty(n)
    inputs = state.kind == UnitKind.INPUT
    box_lo, box_hi = state.box
    input_index = np.cumsum(inputs) - 1
    relu = state.has(Activation.RELU) & ~inputs
    other = ~(inputs | state.has(Activation.RELU, Activation.IDENTITY))
    edges = state.edges
    # 0 * inf is nan, as in Python floats: such a bound proves nothing, and stays unproven.
    with np.errstate(invalid="ignore", over="ignore"):
        for rows, idx in _by_level(state):
            weight, src = edges.weight[idx], edges.src[idx]
            positive = weight > 0
            # No inf - inf can arise: lower-bound terms are never +inf, upper ones never -inf.
            lo_terms = weight * np.where(positive, post_lo[src], post_hi[src])
            hi_terms = weight * np.where(positive, post_hi[src], post_lo[src])
            lo, hi = _sums_in_order(
                state.bias[rows], np.stack((lo_terms, hi_terms)), state.fan_in[rows]
            )
            pre_lo[rows], pre_hi[rows] = lo, hi
            # Activation.bounds, vectorized for identity and ReLU (max(x, 0.0) keeps x unless
            # x < 0.0, also for a nan or a -0.0, as here); the rarer activations go one by one.
            post_lo[rows], post_hi[rows] = lo, hi
            for ends, bound in ((post_lo, lo), (post_hi, hi)):
                ends[rows] = np.where(relu[rows] & (bound < 0.0), 0.0, bound)
            for row in rows[other[rows]].tolist():
                unit = state.units[row]
                post_lo[row], post_hi[row] = unit.activation.bounds(
                    post_lo[row], post_hi[row], unit.alpha
                )
            boxed = rows[inputs[rows]]
            post_lo[boxed] = pre_lo[boxed] = box_lo[input_index[boxed]]
            post_hi[boxed] = pre_hi[boxed] = box_hi[input_index[boxed]]
    return pre_lo, pre_hi


def _sums_in_order(first: np.ndarray, terms: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each row of ``terms`` (several sums at once), ``first[i]`` plus unit i's terms
    (``counts[i]`` consecutive columns), added left to right like a loop of ``+=``.

    The terms go into a table with one column per unit, padded with -0.0 (the one value whose
    addition changes nothing, not even the sign of a zero), and are summed down its first
    axis: numpy adds pairwise, which rounds differently, only along the innermost axis in
    memory (see numpy.sum's notes).
    """
    width = 1 + int(counts.max(initial=0))
    table = np.full((len(terms), len(first), width), -0.0)
    table[:, :, 0] = first
    filled = np.zeros((len(first), width), dtype=bool)
    filled[:, 1:] = np.arange(width - 1) < counts[:, None]
    for sums, row in zip(table, terms, strict=True):
        sums[filled] = row  # unit by unit, each unit's terms in order
    return np.add.reduce(np.ascontiguousarray(table.transpose(2, 0, 1)), axis=0, initial=-0.0)


def rescale(state: State, config: Config) -> tuple[State, list[Step]]:
    """Give every positively homogeneous hidden unit unit-norm incoming weights.

    The factor moves into the outgoing weights, so the function is unchanged; units are visited
    level by level, so each unit sees its inputs' final scale. A weight ends as
    ``w * source factor / own factor``, the two operations in the order a unit-by-unit pass
    would apply them.
    """
    edges = state.edges
    eligible = state.hidden & (state.fan_in > 0) & state.has(*_HOMOGENEOUS)
    factor = np.ones(len(state.units))
    norms: dict[int, float] = {}
    for rows, idx in _by_level(state):
        if not eligible[rows].any():
            continue
        scaled = (edges.weight[idx] * factor[edges.src[idx]]).tolist()
        end = 0
        for row, count in zip(rows.tolist(), state.fan_in[rows].tolist(), strict=True):
            start, end = end, end + count
            if not eligible[row]:
                continue
            norm = math.hypot(*scaled[start:end])
            if norm == 0.0 or abs(norm - 1.0) <= 1e-12:
                continue
            factor[row] = norms[row] = norm
    if not norms:
        return state, []
    members = dict(state.members)
    steps = []
    for row in sorted(norms):
        uid, norm = state.units[row].id, norms[row]
        members[uid] = tuple((src, k * norm) for src, k in members[uid])
        steps.append(Step("rescale", uid, f"x{norm:.6g}"))
    # In the order written, w * source factor / own factor, a run of edges at a time: the
    # new weights are the one array the size of the weights (a GPT-2-sized stack's are 460
    # MB), the temporaries a run's.
    weight = np.empty_like(edges.weight)
    for run in edges.runs():
        part = factor[edges.src[run.lo : run.hi]]
        part *= edges.weight[run.lo : run.hi]
        part /= factor[run.first : run.end][run.targets(edges)]
        weight[run.lo : run.hi] = part
    edges = edges.with_weights(weight)
    return replace(state, bias=state.bias / factor, edges=edges, members=members), steps


def prune_weights(state: State, config: Config) -> tuple[State, list[Step]]:
    """Drop incoming weights whose contribution is under ``prune_tol`` of the unit's largest.

    A contribution is the weight times how far its source can move: for a network input, the
    width of its interval on the domain (``input_ranges``), since a weight of 1e-5 on an input
    that spans 60,000 is not negligible; for a hidden unit, 1, its scale being the one
    rescaling gave it. A pruned weight from a bounded input leaves its mean over the interval
    in the bias.
    """
    edges = state.edges
    if not len(edges):
        return state, []
    inputs = state.kind == UnitKind.INPUT
    width, center = np.ones(len(state.units)), np.zeros(len(state.units))
    lo, hi = input_ranges(state.box)
    width[inputs] = hi - lo
    bounded = np.isfinite(state.box[0]) & np.isfinite(state.box[1])
    center[np.flatnonzero(inputs)[bounded]] = ((lo + hi) / 2)[bounded]
    # A run of whole units' edges at a time: no array the size of the weights (a GPT-2-sized
    # stack's are 460 MB) but the mask, a byte an edge.
    weak = np.empty(len(edges), dtype=bool)
    for run in edges.runs():
        contribution = np.abs(edges.weight[run.lo : run.hi])
        contribution *= width[edges.src[run.lo : run.hi]]
        top = config.prune_tol * row_max(contribution, run.starts(edges))
        weak[run.lo : run.hi] = contribution < top[run.targets(edges)]
    if not weak.any():
        return state, []
    weak_edges = np.flatnonzero(weak)
    targets = edges.target_of(weak_edges)
    sources, weights = edges.src[weak_edges], edges.weight[weak_edges]
    steps = [
        Step("prune_edge", unit, f"from {src} ({w:.3g})")
        for unit, src, w in zip(
            state.ids(targets), state.ids(sources), weights.tolist(), strict=True
        )
    ]
    bias = state.bias.copy()
    np.add.at(bias, targets, weights * center[sources])
    return _rebuild(replace(state, bias=bias), kept_edges=~weak), steps


def input_ranges(box: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per network input, the interval it is judged on: its ``box`` interval, with an
    unbounded end put 2 from the other (or at -1 and 1 when both are).

    Without a domain nothing says how far an input moves, and inputs are taken to move alike,
    over [-1, 1]: the weights cannot tell a 1e-5 weight on an input spanning 60,000 (input
    normalization folded into the first layer) from a 1e-5 weight on an input the network
    ignores, and pruning the second is what makes the form blind to negligible weights. A
    network read at other scales needs its domain (``--domain``, or a .nnet file's own).
    """
    lo, hi = box[0].copy(), box[1].copy()
    open_lo, open_hi = ~np.isfinite(lo), ~np.isfinite(hi)
    both = open_lo & open_hi
    lo[both], hi[both] = -1.0, 1.0
    lo[open_lo & ~both] = hi[open_lo & ~both] - 2.0
    hi[open_hi & ~both] = lo[open_hi & ~both] + 2.0
    return lo, hi


def remove_unused(state: State, config: Config) -> tuple[State, list[Step]]:
    """Remove hidden units that feed nothing: their output cannot reach any network output.

    A chain of units that only feed each other goes at once: each pass also removes the units
    whose targets the previous pass removed.
    """
    edges = state.edges
    removed = np.zeros(len(state.units), dtype=bool)
    while True:
        feeds = np.zeros(len(state.units), dtype=np.intp)
        for run in edges.runs():  # counting widens the sources to 8 bytes: a run at a time
            kept = ~removed[run.first : run.end][run.targets(edges)]
            feeds += np.bincount(edges.src[run.lo : run.hi][kept], minlength=len(feeds))
        now = state.hidden & (feeds == 0)
        if np.array_equal(now, removed):
            break
        removed = now
    if not removed.any():
        return state, []
    steps = [
        Step("remove_unused", uid, "no significant outgoing weight")
        for uid in state.ids(np.flatnonzero(removed))
    ]
    return _rebuild(state, removed), steps


def merge_duplicates(state: State, config: Config) -> tuple[State, list[Step]]:
    """Merge hidden units that compute the same thing, summing their outgoing weights.

    After rescaling, two ReLU units that differ by a positive factor have equal incoming rows,
    so one comparison covers both exact copies and rescaled copies.
    """
    edges = state.edges
    # Each unit's sources in ascending order: equal bytes are equal sets of inputs. Loaders
    # list a unit's inputs in unit order already, so the sort is mostly skipped (it is a
    # fifth of a second on a 3-million-edge network, twice a canonicalization).
    in_order = all(
        np.all(np.diff(edges.src[run.lo : run.hi])[np.diff(run.targets(edges)) == 0] > 0)
        for run in edges.runs()
    )
    sources = edges.src if in_order else edges.src[np.lexsort((edges.src, edges.dst))]
    starts = edges.starts.tolist()
    buckets: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for i in np.flatnonzero(state.hidden).tolist():
        hidden = state.units[i]
        key = (hidden.activation, hidden.alpha, sources[starts[i] : starts[i + 1]].tobytes())
        buckets[key].append(i)
    bias = state.bias.tolist()
    keep_of: dict[int, int] = {}
    for group in buckets.values():
        # Sorted by bias, a unit can only duplicate the units after it whose bias is within
        # tolerance: a dense layer (one bucket) costs a sort, not a comparison of every pair.
        group.sort(key=bias.__getitem__)
        for i, unit in enumerate(group):
            if unit in keep_of:
                continue
            for other in islice(group, i + 1, None):
                if bias[other] - bias[unit] > config.merge_tol:
                    break
                if other not in keep_of and _same_row(state, unit, other, config.merge_tol):
                    keep_of[other] = unit
    if not keep_of:
        return state, []
    return _merge(state, keep_of)


def _same_row(state: State, a: int, b: int, tol: float) -> bool:
    if abs(state.bias[a] - state.bias[b]) > tol:
        return False
    row_b = _row(state, b)
    return all(abs(w - row_b[s]) <= tol for s, w in _row(state, a).items())


def _row(state: State, unit: int) -> dict[int, float]:
    lo, hi = state.edges.starts[unit], state.edges.starts[unit + 1]
    return dict(
        zip(state.edges.src[lo:hi].tolist(), state.edges.weight[lo:hi].tolist(), strict=True)
    )


def _merge(state: State, keep_of: dict[int, int]) -> tuple[State, list[Step]]:
    """Fold each duplicate into the unit it copies: its outgoing weights add to the kept
    unit's, in the order the duplicates were found; a consumer that did not read the kept
    unit gets it as its last input."""
    edges = state.edges
    src, dst = edges.src.tolist(), edges.dst.tolist()
    weight = edges.weight.tolist()
    position = {(d, s): k for k, (d, s) in enumerate(zip(dst, src, strict=True))}
    n_edges = len(weight)
    members = dict(state.members)
    steps = []
    for dup, keep in keep_of.items():
        for k in np.flatnonzero(edges.src == dup).tolist():  # consumers in unit order
            target, w = dst[k], edges.weight[k].item()
            j = position.get((target, keep))
            if j is None:
                position[target, keep] = len(weight)
                src.append(keep)
                dst.append(target)
                weight.append(0.0 + w)
            else:
                weight[j] += w
        keep_id, dup_id = state.units[keep].id, state.units[dup].id
        members[keep_id] = members[keep_id] + members.pop(dup_id)
        steps.append(Step("merge", keep_id, f"absorbed duplicate {dup_id}"))
    if len(weight) > n_edges:  # appended inputs go last in their unit's row
        order = np.argsort(np.array(dst), kind="stable")
        edges = EdgeArrays.grouped(
            np.array(src)[order], np.array(dst)[order], np.array(weight)[order], len(state.units)
        )
    else:
        edges = EdgeArrays.grouped(edges.src, edges.dst, np.array(weight), len(state.units))
    duplicates = np.zeros(len(state.units), dtype=bool)
    duplicates[list(keep_of)] = True
    merged = _rebuild(replace(state, edges=edges, members=members), duplicates)
    return replace(merged, level=merged.edges.depths(merged.kind == UnitKind.INPUT)), steps


# Pruning comes before dead-unit removal: a weight is judged against the row it was written
# in, including weights from units about to be found dead. Otherwise a unit that loses its
# real inputs would promote its negligible leftovers to "largest input".
PIPELINE: tuple[StepFn, ...] = (
    rescale,
    prune_weights,
    fold_constants,
    linearize,
    remove_unused,
    merge_duplicates,
)

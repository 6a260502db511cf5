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

* ``prune_tol = 1e-3``: an incoming weight is negligible when it is under 0.1% of the largest
  incoming weight of its neuron, measured after upstream neurons are rescaled (so the weight
  also stands for the upstream neuron's downstream effect).
* ``merge_tol = 1e-6``: two neurons are duplicates when their canonical incoming weights and
  biases differ by at most this much (max-abs, on unit-norm rows).
* ``input_bounds = (-inf, inf)``: the input box used to prove neurons dead; tighten it when the
  inputs are known to be bounded (e.g. pixels in [0, 1]).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind

Members = Mapping[str, tuple[tuple[str, float], ...]]
MAX_ROUNDS = 100


@dataclass(frozen=True)
class Config:
    prune_tol: float = 1e-3
    merge_tol: float = 1e-6
    input_bounds: tuple[float, float] = (-math.inf, math.inf)


@dataclass(frozen=True)
class Step:
    """One thing canonicalization did, in the source ids of the units it touched."""

    action: str
    unit: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.unit}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class State:
    graph: NeuronGraph
    members: Members

    @staticmethod
    def of(graph: NeuronGraph) -> State:
        return State(graph, {u.id: ((u.id, 1.0),) for u in graph.units})


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
    state, log = State.of(graph), []
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
    return Canonical(state.graph, state.members, tuple(log))


def _rebuild(graph: NeuronGraph, incoming: Mapping[str, dict[str, float]],
             bias: Mapping[str, float], removed: set[str]) -> NeuronGraph:
    units = []
    for unit in graph.units:
        if unit.id in removed:
            continue
        inputs = {s: w for s, w in incoming[unit.id].items() if s not in removed}
        units.append(replace(unit, inputs=inputs, bias=bias[unit.id]))
    return NeuronGraph(tuple(units))


def _editable(graph: NeuronGraph) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    return ({u.id: dict(u.inputs) for u in graph.units}, {u.id: u.bias for u in graph.units})


def fold_constants(state: State, config: Config) -> tuple[State, list[Step]]:
    """Remove hidden units whose output never varies.

    A unit without inputs outputs ``act(bias)``: that constant moves into its consumers' biases.
    A ReLU whose pre-activation is provably never positive (interval bounds over the input box)
    outputs 0 and simply goes.
    """
    graph = state.graph
    bounds = _bounds(graph, config.input_bounds)
    constant = [u for u in graph.hidden if not u.inputs]
    dead = [u for u in graph.hidden
            if u.inputs and u.activation is Activation.RELU and bounds[u.id][1] <= 0.0]
    if not constant and not dead:
        return state, []
    incoming, bias = _editable(graph)
    steps: list[Step] = []
    for unit in constant:
        value = float(unit.activation.apply(np.array(unit.bias), unit.alpha))
        for target, w in graph.successors[unit.id].items():
            bias[target] += w * value
        steps.append(Step("fold_constant", unit.id, f"constant {value:.6g}"))
    steps += [Step("remove_dead", u.id, "pre-activation can never be positive") for u in dead]
    removed = {u.id for u in constant + dead}
    return replace(state, graph=_rebuild(graph, incoming, bias, removed)), steps


def _bounds(graph: NeuronGraph, box: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """Sound pre-activation intervals, propagated through post-activation intervals."""
    post: dict[str, tuple[float, float]] = {}
    pre: dict[str, tuple[float, float]] = {}
    for unit in graph.units:
        if unit.kind is UnitKind.INPUT:
            post[unit.id] = pre[unit.id] = box
            continue
        lo = hi = unit.bias
        for src, w in unit.inputs.items():
            # No inf - inf can arise: lower-bound terms are never +inf, upper ones never -inf.
            s_lo, s_hi = post[src]
            if w > 0:
                lo += w * s_lo
                hi += w * s_hi
            else:
                lo += w * s_hi
                hi += w * s_lo
        pre[unit.id] = (lo, hi)
        post[unit.id] = unit.activation.bounds(lo, hi, unit.alpha)
    return pre


def rescale(state: State, config: Config) -> tuple[State, list[Step]]:
    """Give every positively homogeneous hidden unit unit-norm incoming weights.

    The factor moves into the outgoing weights, so the function is unchanged; units are visited
    in topological order, so each unit sees its inputs' final scale.
    """
    graph = state.graph
    if all(abs(_norm(u.inputs) - 1.0) <= 1e-12 for u in graph.hidden
           if u.activation.positively_homogeneous and u.inputs):
        return state, []  # already canonical: nothing upstream will move either
    incoming, bias = _editable(graph)
    successors = graph.successors
    members = dict(state.members)
    steps: list[Step] = []
    for unit in graph.hidden:
        if not unit.activation.positively_homogeneous or not incoming[unit.id]:
            continue
        norm = _norm(incoming[unit.id])
        if norm == 0.0 or abs(norm - 1.0) <= 1e-12:
            continue
        incoming[unit.id] = {s: w / norm for s, w in incoming[unit.id].items()}
        bias[unit.id] /= norm
        for target in successors[unit.id]:
            incoming[target][unit.id] *= norm
        members[unit.id] = tuple((src, k * norm) for src, k in members[unit.id])
        steps.append(Step("rescale", unit.id, f"x{norm:.6g}"))
    if not steps:
        return state, []
    return State(_rebuild(graph, incoming, bias, set()), members), steps


def _norm(weights: Mapping[str, float]) -> float:
    return math.hypot(*weights.values())


def prune_weights(state: State, config: Config) -> tuple[State, list[Step]]:
    """Drop incoming weights under ``prune_tol`` of the largest incoming weight of the unit."""
    graph = state.graph
    weak: list[tuple[Unit, str]] = []
    for unit in graph.units:
        if unit.inputs:
            floor = config.prune_tol * max(map(abs, unit.inputs.values()))
            weak += [(unit, src) for src, w in unit.inputs.items() if -floor < w < floor]
    if not weak:
        return state, []
    incoming, bias = _editable(graph)
    steps: list[Step] = []
    for unit, src in weak:
        steps.append(Step("prune_edge", unit.id, f"from {src} ({unit.inputs[src]:.3g})"))
        del incoming[unit.id][src]
    return replace(state, graph=_rebuild(graph, incoming, bias, set())), steps


def remove_unused(state: State, config: Config) -> tuple[State, list[Step]]:
    """Remove hidden units that feed nothing: their output cannot reach any network output."""
    graph = state.graph
    removed: set[str] = set()
    # Reverse topological order, so a chain of units that only feed each other goes at once.
    for unit in reversed(graph.hidden):
        if all(t in removed for t in graph.successors[unit.id]):
            removed.add(unit.id)
    if not removed:
        return state, []
    incoming, bias = _editable(graph)
    steps = [Step("remove_unused", u, "no significant outgoing weight") for u in
             (unit.id for unit in graph.hidden) if u in removed]
    return replace(state, graph=_rebuild(graph, incoming, bias, removed)), steps


def merge_duplicates(state: State, config: Config) -> tuple[State, list[Step]]:
    """Merge hidden units that compute the same thing, summing their outgoing weights.

    After rescaling, two ReLU units that differ by a positive factor have equal incoming rows,
    so one comparison covers both exact copies and rescaled copies.
    """
    graph = state.graph
    buckets: dict[tuple[object, ...], list[Unit]] = defaultdict(list)
    for unit in graph.hidden:
        key = (unit.activation, unit.alpha, frozenset(unit.inputs))
        buckets[key].append(unit)
    keep_of: dict[str, str] = {}
    for group in buckets.values():
        # Sorted by bias, a unit can only duplicate the units after it whose bias is within
        # tolerance: a dense layer (one bucket) costs a sort, not a comparison of every pair.
        group.sort(key=lambda u: u.bias)
        for i, unit in enumerate(group):
            if unit.id in keep_of:
                continue
            for other in group[i + 1:]:
                if other.bias - unit.bias > config.merge_tol:
                    break
                if other.id not in keep_of and _same_row(unit, other, config.merge_tol):
                    keep_of[other.id] = unit.id
    if not keep_of:
        return state, []
    incoming, bias = _editable(graph)
    members = dict(state.members)
    steps = []
    for dup, keep in keep_of.items():
        for target, w in graph.successors[dup].items():
            incoming[target][keep] = incoming[target].get(keep, 0.0) + w
        members[keep] = members[keep] + members.pop(dup)
        steps.append(Step("merge", keep, f"absorbed duplicate {dup}"))
    graph = _rebuild(graph, incoming, bias, set(keep_of))
    return State(graph, members), steps


def _same_row(a: Unit, b: Unit, tol: float) -> bool:
    if abs(a.bias - b.bias) > tol:
        return False
    return all(abs(w - b.inputs[s]) <= tol for s, w in a.inputs.items())


# Pruning comes before dead-unit removal: a weight is judged against the row it was written
# in, including weights from units about to be found dead. Otherwise a unit that loses its
# real inputs would promote its negligible leftovers to "largest input".
PIPELINE: tuple[StepFn, ...] = (
    rescale, prune_weights, fold_constants, remove_unused, merge_duplicates,
)

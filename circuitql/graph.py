"""The neuron graph: the one data structure every stage of circuitql reads and returns.

A network is a DAG of *units*: network inputs, hidden neurons and outputs. Each non-input unit
computes ``activation(bias + sum(w * source))`` over its incoming edges. Keeping every unit
explicit (rather than per-layer matrices) is what lets skip connections, concatenations and
merged duplicates all live in one representation, and what lets the canonical form and the
query engine talk about single neurons in the user's own coordinates: every unit's ``id`` is the
source id of the neuron it came from (``"<module path>:<row>"`` or ``"input:<i>"``).

Graphs are treated as immutable: stages build new graphs instead of editing old ones, so each
stage stays a pure function that can be tested on its own.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import defaultdict
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from circuitql.lazy import cached_property

# A leaky ReLU's negative slope where nothing says otherwise (PyTorch's default).
LEAKY_SLOPE = 0.01


class Activation(StrEnum):
    """A unit's nonlinearity. The value is what stores keep; tokens write shorter codes
    (``records.ACTIVATION_CODES``)."""

    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    GELU = "gelu"
    IDENTITY = "identity"

    @property
    def positively_homogeneous(self) -> bool:
        """act(k*z) == k*act(z) for k > 0: the units whose scale can be pushed downstream."""
        return self in (Activation.RELU, Activation.LEAKY_RELU, Activation.IDENTITY)

    def apply(self, z: np.ndarray, alpha: float = LEAKY_SLOPE) -> np.ndarray:
        """Elementwise on pre-activations ``z``; ``alpha`` matters for leaky_relu only."""
        if self is Activation.RELU:
            return np.maximum(z, 0.0)
        if self is Activation.LEAKY_RELU:
            return np.where(z >= 0.0, z, alpha * z)
        if self is Activation.SIGMOID:
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
        if self is Activation.TANH:
            return np.tanh(z)
        if self is Activation.GELU:
            return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
        return z

    def bounds(self, lo: float, hi: float, alpha: float = LEAKY_SLOPE) -> tuple[float, float]:
        """Sound output interval for a pre-activation in [lo, hi] (used to find dead units)."""
        if self is Activation.RELU:
            return max(lo, 0.0), max(hi, 0.0)
        if self is Activation.LEAKY_RELU:
            return (lo if lo >= 0 else alpha * lo), (hi if hi >= 0 else alpha * hi)
        if self is Activation.SIGMOID:
            return float(self.apply(np.array(lo))), float(self.apply(np.array(hi)))
        if self is Activation.TANH:
            return math.tanh(lo), math.tanh(hi)
        if self is Activation.GELU:
            gelu_min = -0.17004
            upper = max(hi, 0.0) if hi < math.inf else math.inf
            return gelu_min, upper
        return lo, hi


# Values from which erf is computed by whole arrays (``_erf_of_array``) rather than by
# Python's math.erf one value at a time: a GELU layer of 3,072 units on 10,000 probes is 30
# million values, 30 s one by one.
ERF_BY_ARRAY = 10_000
# Below this |x|, erf's series; above, erfc's continued fraction; each with enough terms for
# a double's precision on its side of the split (tests hold it to math.erf).
ERF_SERIES_BELOW = 3.0
ERF_SERIES_TERMS = 50
ERF_FRACTION_TERMS = 60
ERF_BLOCK = 1 << 14  # values per pass: the terms' arrays stay in the processor's cache


def _erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise, in float64 (numpy has none): math.erf for a few values, else
    ``_erf_of_array``, within a few units in the last place of it."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < ERF_BY_ARRAY:
        return np.vectorize(math.erf, otypes=[float])(x)
    flat = x.ravel()
    out = np.empty_like(flat)
    for start in range(0, len(flat), ERF_BLOCK):
        out[start : start + ERF_BLOCK] = _erf_of_array(flat[start : start + ERF_BLOCK])
    return out.reshape(x.shape)


def _erf_of_array(x: np.ndarray) -> np.ndarray:
    """erf by arrays, about 75 ns a value. Below ``ERF_SERIES_BELOW``, erf(a) = 2/sqrt(pi)
    exp(-a^2) sum_n a (2a^2)^n / (1 * 3 * ... * (2n + 1)), whose terms are all positive (no
    cancellation, unlike the Taylor series); above, 1 - erfc(a) with erfc(a) = exp(-a^2) /
    (sqrt(pi) (a + (1/2) / (a + (2/2) / (a + (3/2) / ...)))), evaluated from the bottom up.
    Torch's erf did this before, at the price of its import: 500 MB of resident memory, a
    quarter of what indexing a GPT-2-sized stack may take."""
    a = np.abs(x)
    out = np.empty_like(a)
    small = a < ERF_SERIES_BELOW
    s = a[small]
    ratio = 2.0 * s * s
    term, total = s.copy(), s.copy()
    for n in range(1, ERF_SERIES_TERMS):
        term *= ratio * (1.0 / (2 * n + 1))
        total += term
    out[small] = (2.0 / math.sqrt(math.pi)) * np.exp(-s * s) * total
    large = a[~small]  # and nan, which stays nan
    with np.errstate(invalid="ignore", over="ignore"):
        fraction = large.copy()
        for n in range(ERF_FRACTION_TERMS, 0, -1):
            fraction = large + (n / 2.0) / fraction
        out[~small] = 1.0 - np.exp(-large * large) / (math.sqrt(math.pi) * fraction)
    return np.copysign(out, x)


INPUT_PREFIX = "input:"

# Up to this many units a graph is evaluated unit by unit (see NeuronGraph.evaluate).
SMALL_GRAPH = 64
# The most cells of a weight matrix built at once when a whole network is evaluated.
BLOCK_CELLS = 1 << 22


def input_id(index: int) -> str:
    """The source id of network input ``index``: every loader names inputs this way."""
    return f"{INPUT_PREFIX}{index}"


def input_index(uid: str) -> int | None:
    """Which network input ``uid`` names (None: not an input id)."""
    head, _, tail = uid.partition(":")
    if f"{head}:" != INPUT_PREFIX or not tail.isdigit():
        return None
    return int(tail)


class UnitKind(StrEnum):
    """Where a unit sits in the network: signatures and tokens treat each kind differently."""

    INPUT = "input"
    HIDDEN = "hidden"
    OUTPUT = "output"


@dataclass(frozen=True)
class Unit:
    """One neuron (or network input) with its incoming weighted edges.

    ``inputs`` maps source unit id -> weight. It is never mutated after construction; stages
    that change weights build a new Unit with ``dataclasses.replace``.
    """

    id: str
    kind: UnitKind
    activation: Activation = Activation.IDENTITY
    bias: float = 0.0
    inputs: Mapping[str, float] = field(default_factory=dict)
    alpha: float = LEAKY_SLOPE  # negative slope, meaningful for leaky_relu only

    def with_inputs(self, inputs: Mapping[str, float], bias: float | None = None) -> Unit:
        """A copy reading ``inputs`` (and with ``bias``, when given): units are never edited."""
        return replace(self, inputs=dict(inputs), bias=self.bias if bias is None else bias)


class ArrayInputs(Mapping[str, float]):
    """A unit's inputs as a graph built from arrays holds them: a slice of the graph's edge
    arrays, made a dict only when read. A wide network's stages (the canonical form,
    signatures, evaluation) work on the arrays, and a 784-1024-1024-1024-10 MLP has 2.9
    million edges: as dicts, 0.7 s each time such a graph is built (three times per index),
    mostly never read. The source ids are looked up when the dict is made: an object array
    of every edge's source id would take 8 bytes an edge (460 MB for a GPT-2-sized stack)."""

    __slots__ = ("_edges", "_hi", "_ids", "_lo", "_made")

    def __init__(self, ids: np.ndarray, edges: EdgeArrays, lo: int, hi: int) -> None:
        self._ids, self._edges, self._lo, self._hi = ids, edges, lo, hi
        self._made: dict[str, float] | None = None

    def _dict(self) -> dict[str, float]:
        if self._made is None:
            lo, hi = self._lo, self._hi
            sources = self._ids[self._edges.src[lo:hi]].tolist()
            self._made = dict(zip(sources, self._edges.weight[lo:hi].tolist(), strict=True))
        return self._made

    def __getitem__(self, key: str) -> float:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return self._hi - self._lo

    def __contains__(self, key: object) -> bool:
        return key in self._dict()

    def items(self) -> ItemsView[str, float]:
        """The dict's own item view (Mapping's would look every key up again)."""
        return self._dict().items()

    def values(self) -> ValuesView[float]:
        """The dict's own value view."""
        return self._dict().values()

    def keys(self) -> KeysView[str]:
        """The dict's own key view."""
        return self._dict().keys()

    def __repr__(self) -> str:
        return repr(self._dict())

    def __reduce__(self) -> tuple[type[dict[str, float]], tuple[dict[str, float]]]:
        # Pickled as the dict it stands for: never the whole graph's arrays with each unit.
        return dict, (self._dict(),)


# Edges per run of ``EdgeArrays.runs``: a float64 array of a run is 32 MB.
RUN_EDGES = 1 << 22


def position_type(n_units: int) -> np.dtype:
    """The integer type of unit positions in a graph of ``n_units``: 4 bytes where they fit,
    as they do in any network that fits in memory. Two such columns per edge: 460 MB less
    for each copy of a GPT-2-sized stack's 57 million edges than at 8 bytes."""
    return np.dtype(np.int32) if n_units <= np.iinfo(np.int32).max else np.dtype(np.intp)


@dataclass(frozen=True, eq=False)
class EdgeArrays:
    """Every edge of a graph as parallel arrays: what the stages that touch all edges (the
    canonical form, signatures) work on, since a 3 x 64 MLP has ~9,000 of them and a Python
    loop over its input mappings costs milliseconds where a numpy pass costs microseconds.

    Edges are grouped by target in unit order and keep each target's input order, so unit i's
    inputs are edges ``starts[i]:starts[i + 1]`` and mappings rebuilt from the arrays list their
    inputs in the same order. ``src`` (and ``dst``) are positions in ``NeuronGraph.units``.
    The arrays are read-only: a graph caches them.

    Each edge's target is ``starts`` spelled out, so it is not kept: ``dst`` is made when
    first asked for, and the passes over a big network's edges never ask, reading a run's
    targets at a time (``EdgeRun.targets``) or a few edges' (``target_of``). A GPT-2-sized
    stack's 57 million edges hold 230 MB less for each copy.
    """

    src: np.ndarray
    weight: np.ndarray
    starts: np.ndarray

    @staticmethod
    def grouped(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_units: int) -> EdgeArrays:
        """Edges already grouped by target in unit order (``dst`` non-decreasing; a
        ValueError otherwise). Each unit's first edge is found by a binary search in ``dst``,
        which needs no array the size of the edges (counting them would widen ``dst`` to 8
        bytes an edge first)."""
        position = position_type(n_units)
        dst = np.asarray(dst, dtype=position)
        if len(dst) > 1 and bool(np.any(dst[1:] < dst[:-1])):
            raise ValueError("edges must come grouped by target, in unit order")
        starts = np.searchsorted(dst, np.arange(n_units + 1, dtype=position))
        return EdgeArrays.of(np.asarray(src, dtype=position), weight, starts)

    @staticmethod
    def of(src: np.ndarray, weight: np.ndarray, starts: np.ndarray) -> EdgeArrays:
        """The edges ``src`` -> the unit each falls to by ``starts``, made read-only."""
        arrays = (src, np.asarray(weight, dtype=np.float64), np.asarray(starts, dtype=np.intp))
        for column in arrays:
            column.flags.writeable = False
        return EdgeArrays(*arrays)

    def __len__(self) -> int:
        return int(self.weight.shape[0])

    @cached_property
    def dst(self) -> np.ndarray:
        """Each edge's target, spelled out from ``starts`` when first asked for."""
        targets = _spelled_out(self.starts)
        targets.flags.writeable = False
        return targets

    def target_of(self, positions: np.ndarray) -> np.ndarray:
        """The targets of the edges at ``positions``, without spelling out every edge's."""
        return np.searchsorted(self.starts, positions, side="right") - 1

    def kept(self, keep: np.ndarray) -> EdgeArrays:
        """The edges the mask ``keep`` keeps, every unit in its place: only the kept
        edges' arrays are made, each unit's count of them a run at a time."""
        counts = np.zeros(len(self.starts) - 1, dtype=np.intp)
        for run in self.runs():
            kept_targets = run.targets(self)[keep[run.lo : run.hi]]
            counts[run.first : run.end] = np.bincount(kept_targets, minlength=run.end - run.first)
        starts = np.zeros(len(self.starts), dtype=np.intp)
        np.cumsum(counts, out=starts[1:])
        return EdgeArrays.of(self.src[keep], self.weight[keep], starts)

    def with_weights(self, weight: np.ndarray) -> EdgeArrays:
        """The same edges carrying ``weight``."""
        return EdgeArrays.of(self.src, weight, self.starts)

    def depths(self, inputs: np.ndarray) -> np.ndarray:
        """Longest-path depth of every unit, as ``NeuronGraph.layers`` defines it: 0 for the
        ``inputs`` (a mask over units), else one more than the deepest source (1 without any).
        Relaxes every edge, a run at a time, until nothing moves: at most one pass per layer
        of depth."""
        depth = np.where(inputs, 0, 1)
        runs = []  # per run of edges (no gather of every edge's source depth at once)
        for run in self.runs():
            starts = run.starts(self)
            rows = np.flatnonzero(np.diff(starts))
            if len(rows):
                units = run.first + rows
                runs.append((self.src[run.lo : run.hi], starts[rows], units, inputs[units]))
        while True:
            moved = False
            for sources, firsts, units, fixed in runs:
                deeper = np.where(fixed, 0, 1 + np.maximum.reduceat(depth[sources], firsts))
                if not np.array_equal(deeper, depth[units]):
                    depth[units] = deeper
                    moved = True
            if not moved:
                return depth

    def into(self, rows: np.ndarray) -> np.ndarray:
        """Positions of the edges into the units ``rows``, unit by unit, each unit's in
        order: ascending positions when ``rows`` ascend."""
        counts = self.starts[rows + 1] - self.starts[rows]
        return np.repeat(self.starts[rows] - np.cumsum(counts) + counts, counts) + np.arange(
            int(counts.sum())
        )

    def runs(self) -> Iterator[EdgeRun]:
        """The edges in consecutive runs of whole units' inputs, about ``RUN_EDGES`` each (a
        unit with more inputs in a run of its own): what a pass over every edge that needs
        arrays of its own works through, so that they are the size of a run, not of the
        graph's edges."""
        n_units = len(self.starts) - 1
        if len(self) <= RUN_EDGES:  # most networks: one run, found without a search
            if n_units:
                yield EdgeRun(0, n_units, 0, len(self))
            return
        first = 0
        while first < n_units:
            wanted = int(self.starts[first]) + RUN_EDGES
            end = max(first + 1, int(np.searchsorted(self.starts, wanted, side="right")) - 1)
            end = min(end, n_units)
            yield EdgeRun(first, end, int(self.starts[first]), int(self.starts[end]))
            first = end


@dataclass(frozen=True)
class EdgeRun:
    """Units ``first`` to ``end`` (exclusive) and their input edges, ``lo`` to ``hi``."""

    first: int
    end: int
    lo: int
    hi: int

    def starts(self, edges: EdgeArrays) -> np.ndarray:
        """The run's units' first edges, counted from the run's first edge, and its end."""
        return edges.starts[self.first : self.end + 1] - self.lo

    def targets(self, edges: EdgeArrays) -> np.ndarray:
        """Each edge's target, counted from the run's first unit."""
        if self.first == 0 and self.end == len(edges.starts) - 1:
            return edges.dst  # the whole graph's, made once
        return _spelled_out(edges.starts[self.first : self.end + 1])


def _spelled_out(starts: np.ndarray) -> np.ndarray:
    """Each edge's unit, counted from the first of ``starts`` (the units' first edges and
    the end of the last unit's)."""
    n_units = len(starts) - 1
    return np.repeat(np.arange(n_units, dtype=position_type(n_units)), np.diff(starts))


def row_max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per unit, the largest of its edges' ``values``, unit i's being ``starts[i]`` to
    ``starts[i + 1]`` (0 for a unit without edges)."""
    rows = np.flatnonzero(np.diff(starts))
    out = np.zeros(len(starts) - 1)
    if len(rows):
        out[rows] = np.maximum.reduceat(values, starts[rows])
    return out


@dataclass(frozen=True)
class NeuronGraph:
    """A network as a DAG of units, kept in topological order.

    Inputs come first in network-input order; outputs keep network-output order among
    themselves. Every edge points from an earlier unit to a later one.
    """

    units: tuple[Unit, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for unit in self.units:
            if unit.id in seen:
                raise ValueError(f"duplicate unit id {unit.id!r}")
            missing = [src for src in unit.inputs if src not in seen]
            if missing:
                raise ValueError(
                    f"unit {unit.id!r} reads {missing[0]!r}, which is not an earlier unit"
                )
            seen.add(unit.id)

    @cached_property
    def by_id(self) -> dict[str, Unit]:
        """unit id -> unit, built once: what ``graph[id]`` and ``id in graph`` read."""
        return {unit.id: unit for unit in self.units}

    def __getitem__(self, unit_id: str) -> Unit:
        return self.by_id[unit_id]

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.by_id

    def __len__(self) -> int:
        return len(self.units)

    @cached_property
    def inputs(self) -> tuple[Unit, ...]:
        """The network inputs, in network-input order."""
        return tuple(u for u in self.units if u.kind is UnitKind.INPUT)

    @cached_property
    def outputs(self) -> tuple[Unit, ...]:
        """The output units, in network-output order."""
        return tuple(u for u in self.units if u.kind is UnitKind.OUTPUT)

    @cached_property
    def hidden(self) -> tuple[Unit, ...]:
        """The hidden units, in topological order."""
        return tuple(u for u in self.units if u.kind is UnitKind.HIDDEN)

    @cached_property
    def successors(self) -> dict[str, dict[str, float]]:
        """unit id -> {target id: weight}: the outgoing edges, derived from the incoming ones."""
        out: dict[str, dict[str, float]] = {u.id: {} for u in self.units}
        for unit in self.units:
            for src, w in unit.inputs.items():
                out[src][unit.id] = w
        return out

    @cached_property
    def layers(self) -> dict[str, int]:
        """Longest-path depth of every unit: inputs are layer 0.

        Depth rather than module order is what makes layers comparable across networks that
        were written differently (a skip connection does not shift its target's layer).
        """
        depth: dict[str, int] = {}
        for unit in self.units:
            if unit.kind is UnitKind.INPUT:
                depth[unit.id] = 0
            else:
                depth[unit.id] = 1 + max((depth[s] for s in unit.inputs), default=0)
        return depth

    @cached_property
    def depth_array(self) -> np.ndarray:
        """``layers`` by position, as an array: what the stages that work on the edge arrays
        read (evaluation a level at a time, the canonical form's first state)."""
        inputs = np.array([unit.kind is UnitKind.INPUT for unit in self.units], dtype=bool)
        depth = self.edge_arrays.depths(inputs)
        depth.flags.writeable = False
        return depth

    @cached_property
    def edge_arrays(self) -> EdgeArrays:
        """Every edge as arrays, built once from the input mappings (``from_arrays`` hands
        them over instead)."""
        position = {unit.id: i for i, unit in enumerate(self.units)}
        sources = [position[src] for unit in self.units for src in unit.inputs]
        weights = [w for unit in self.units for w in unit.inputs.values()]
        counts = [len(unit.inputs) for unit in self.units]
        return EdgeArrays.grouped(
            np.array(sources, dtype=np.intp),
            np.repeat(np.arange(len(self.units), dtype=np.intp), counts),
            np.array(weights, dtype=np.float64),
            len(self.units),
        )

    @classmethod
    def from_arrays(cls, units: Sequence[Unit], bias: np.ndarray, edges: EdgeArrays) -> NeuronGraph:
        """``units`` with new biases and new inputs, given as arrays (the units' own ``bias``
        and ``inputs`` are ignored). The graph keeps ``edges`` as its ``edge_arrays`` and
        computes ``layers`` from them, so stages reading it next skip the input mappings."""
        ids = np.array([unit.id for unit in units], dtype=object)
        _check_arrays(ids, edges)
        starts = edges.starts.tolist()
        # The checks __post_init__ makes one input at a time, made on the arrays above: a
        # 4.7-million-edge network is built in a fraction of the time.
        graph = object.__new__(cls)
        object.__setattr__(
            graph,
            "units",
            tuple(
                Unit(
                    unit.id,
                    unit.kind,
                    unit.activation,
                    b,
                    ArrayInputs(ids, edges, lo, hi),
                    unit.alpha,
                )
                for unit, b, lo, hi in zip(
                    units, bias.tolist(), starts[:-1], starts[1:], strict=True
                )
            ),
        )
        inputs = np.array([unit.kind is UnitKind.INPUT for unit in units], dtype=bool)
        # Filling cached_property slots: what they would compute, computed faster here.
        depth = edges.depths(inputs)
        depth.flags.writeable = False
        graph.__dict__["edge_arrays"] = edges
        graph.__dict__["depth_array"] = depth
        graph.__dict__["layers"] = dict(zip(ids.tolist(), depth.tolist(), strict=True))
        return graph

    @property
    def n_edges(self) -> int:
        """How many weighted edges the units read, counted anew on every read."""
        return sum(len(u.inputs) for u in self.units)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch of inputs, shape (batch, n_inputs) -> (batch, n_outputs).

        A matched sub-network (a handful of units, evaluated once per candidate) goes unit by
        unit, where building arrays would cost more than it saves; a whole network (checking
        its canonical form, thousands of units) goes a level at a time in matrix products.
        """
        if len(self.units) <= SMALL_GRAPH:
            values = self.activations(x)
            return np.stack([values[u.id] for u in self.outputs], axis=1)
        outputs = [i for i, unit in enumerate(self.units) if unit.kind is UnitKind.OUTPUT]
        return self._values_by_level(self._batch(x))[outputs].T

    def _values_by_level(self, x: np.ndarray) -> np.ndarray:
        """Every unit's value on the batch, shape (units, batch), a level at a time.

        A layered network's levels are runs of consecutive units, read and written as views
        of ``values`` (``_span``): a copy of a 64-unit level on the fidelity probes costs as
        much as its matrix product, and every model indexed is evaluated twice."""
        edges, depth = self.edge_arrays, self.depth_array
        values = np.empty((len(self.units), x.shape[0]))
        values[depth == 0] = x.T  # the inputs, and nothing else, are at depth 0
        bias = np.array([u.bias for u in self.units])
        nonlinear = [(u.activation, u.alpha) for u in self.units]
        for level in range(1, int(depth.max(initial=0)) + 1):
            rows = np.flatnonzero(depth == level)
            for block in _row_blocks(rows, edges):
                at = _span(block)
                values[at] = _weighted_sums(block, edges, values)
                values[at] += bias[at, None]
            groups: dict[tuple[Activation, float], list[int]] = defaultdict(list)
            for row in rows.tolist():
                groups[nonlinear[row]].append(row)
            for (activation, alpha), members in groups.items():
                if activation is not Activation.IDENTITY:
                    at = _span(np.array(members)) if len(groups) > 1 else _span(rows)
                    values[at] = activation.apply(values[at], alpha)
        return values

    def _batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs per row, got {x.shape[1]}")
        return x

    def activations(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every unit's post-activation value on a batch (outputs: their pre-activation),
        unit by unit for a small graph, a level at a time in matrix products for a whole
        network (a GPT-2-sized MLP block's 4.7 million edges: 15 s one by one)."""
        x = self._batch(x)
        if len(self.units) > SMALL_GRAPH:
            by_level = self._values_by_level(x)
            return {unit.id: by_level[i] for i, unit in enumerate(self.units)}
        return self._activations_by_unit(x)

    def _activations_by_unit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        for i, unit in enumerate(self.inputs):
            values[unit.id] = x[:, i]
        for unit in self.units:
            if unit.kind is UnitKind.INPUT:
                continue
            z = np.full(x.shape[0], unit.bias)
            for src, w in unit.inputs.items():
                z = z + w * values[src]
            values[unit.id] = unit.activation.apply(z, unit.alpha)
        return values

    def content_hash(self) -> str:
        """A digest of the exact weights and wiring, independent of file format.

        Two files holding the same network hash the same, which is what makes indexing
        idempotent across formats: every loader lists a unit's inputs in the order of the
        units they come from, so insertion order is part of the content, no sort needed.
        """
        digest = hashlib.sha256()
        edges = self.edge_arrays  # the arrays, not the input mappings (``ArrayInputs``)
        ids = np.array([unit.id for unit in self.units], dtype=object)
        starts = edges.starts.tolist()
        for run in edges.runs():  # each edge's source named a run at a time, not all at once
            sources = ids[edges.src[run.lo : run.hi]].tolist()
            weights = edges.weight[run.lo : run.hi].astype(np.float64)  # as array("d") writes
            for i in range(run.first, run.end):
                unit = self.units[i]
                lo, hi = starts[i] - run.lo, starts[i + 1] - run.lo
                digest.update(f"{unit.id}|{unit.kind}|{unit.activation}|".encode())
                digest.update("|".join(sources[lo:hi]).encode())
                digest.update(array("d", [unit.bias, unit.alpha]).tobytes())
                digest.update(weights[lo:hi].tobytes())
        return digest.hexdigest()

    def with_units(self, units: Iterable[Unit]) -> NeuronGraph:
        """A new graph of ``units`` (checked like any other): graphs are never edited."""
        return NeuronGraph(tuple(units))


def _check_arrays(ids: np.ndarray, edges: EdgeArrays) -> None:
    """What ``NeuronGraph.__post_init__`` checks, on arrays: unit ids are unique, and every
    edge comes from an earlier unit."""
    names = ids.tolist()
    if len(set(names)) != len(names):
        duplicate = next(uid for i, uid in enumerate(names) if uid in names[:i])
        raise ValueError(f"duplicate unit id {duplicate!r}")
    for run in edges.runs():  # the targets a run at a time
        targets = run.first + run.targets(edges)
        late = np.flatnonzero(edges.src[run.lo : run.hi] >= targets)
        if len(late):
            source = edges.src[run.lo + int(late[0])]
            raise ValueError(
                f"unit {ids[targets[late[0]]]!r} reads {ids[source]!r}, which is not an "
                "earlier unit"
            )


def _row_blocks(rows: np.ndarray, edges: EdgeArrays) -> Iterator[np.ndarray]:
    """``rows`` in blocks whose weight matrix (rows x sources read) has at most
    ``BLOCK_CELLS`` cells: a dense layer is one product, a huge one several."""
    fan_in = int((edges.starts[rows + 1] - edges.starts[rows]).sum())
    if (
        len(rows) <= 1
        or len(rows) * fan_in <= BLOCK_CELLS
        or len(rows) * np.count_nonzero(_present(edges.src[edges.into(rows)], edges)) <= BLOCK_CELLS
    ):
        yield rows
        return
    half = len(rows) // 2
    yield from _row_blocks(rows[:half], edges)
    yield from _row_blocks(rows[half:], edges)


def _distinct(positions: np.ndarray, edges: EdgeArrays) -> tuple[np.ndarray, np.ndarray]:
    """The distinct unit positions in ``positions``, ascending, and where each element of
    ``positions`` is among them: ``np.unique(positions, return_inverse=True)``, by a table
    over the graph's units rather than a sort (a layer of a million edges per probe batch,
    three times per model indexed)."""
    distinct = np.flatnonzero(_present(positions, edges))
    rank = np.zeros(len(edges.starts) - 1, dtype=np.intp)
    rank[distinct] = np.arange(len(distinct))
    return distinct, rank[positions]


def _present(positions: np.ndarray, edges: EdgeArrays) -> np.ndarray:
    """A mask over the graph's units: those among ``positions``."""
    present = np.zeros(len(edges.starts) - 1, dtype=bool)
    present[positions] = True
    return present


def _weighted_sums(rows: np.ndarray, edges: EdgeArrays, values: np.ndarray) -> np.ndarray:
    """Each row's sum of weight x source value, for every probe (one matrix product);
    ``rows`` ascending."""
    idx = edges.into(rows)
    sources, column = _distinct(edges.src[idx], edges)
    matrix = np.zeros((len(rows), len(sources)))
    counts = edges.starts[rows + 1] - edges.starts[rows]
    matrix[np.repeat(np.arange(len(rows)), counts), column] = edges.weight[idx]
    return matrix @ values[_span(sources)]


def _span(rows: np.ndarray) -> slice | np.ndarray:
    """``rows`` (ascending) as a slice where they are consecutive, so that indexing with
    them is a view rather than a copy; else as they are."""
    if len(rows) and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows

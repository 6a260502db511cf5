"""A model's edges as the embedded store keeps them: one row of arrays per model.

The query engine reads a neuron together with its edges in both directions, and a 3 x 64 MLP
has ~9,000 edges between ~200 neurons. Kept on the neuron rows, each edge was written twice
(once at each end) with its neighbour named in JSON: 2.6 KB a neuron, 16 times the model's
safetensors file. Here every edge is written once, its source as a position in the model's
unit list and its weight as float32, grouped by target. The unit list, where each unit's edges
end and the sources are zlib-compressed: a dense layer repeats the same run of sources for
every unit, so 18 KB of them take half a kilobyte and decompress in 15 microseconds. The
weights are not: their random mantissas gain 7% for 220 microseconds a read. They are float32
because the canonical form's are (``canonical.float32_precision``), and float64 for a weight
that is not, so a graph read back always computes exactly what was written. A neuron's
outgoing edges are the same arrays grouped by source, sorted when a model is read.

``Adjacency`` is the one place that knows the layout: the writer encodes with ``of_columns``,
the reader decodes with ``from_row``, and a migration builds it from older rows.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from circuitql.lazy import cached_property
from circuitql.records import (
    MAGNITUDE_STEPS,
    MAGNITUDES,
    EdgeColumns,
    NeuronColumns,
    NeuronRecord,
    significant_in_row,
)
from circuitql.store.base import FAN_IN_SEEN, NeuronView, reads_between

_COUNT = np.dtype("<u4")
_WEIGHT = np.dtype("<f8")
_NARROW_WEIGHT = np.dtype("<f4")
assert MAGNITUDE_STEPS <= 255, "a signature magnitude must fit in one byte"


# Neurons of one model read one at a time (a scan of its sources each) before the model's
# edges are grouped by source (a sort, worth it when a query reads much of the model).
SCAN_VIEWS = 8


def _position_type(n_units: int) -> np.dtype:
    """Positions in a model of ``n_units``: two bytes each while they fit, else four."""
    return np.dtype("<u2") if n_units <= 1 << 16 else np.dtype("<u4")


# What a model's row in the ``graphs`` table holds, in this order after its model_id.
COLUMNS = ("uids", "in_ends", "in_sources", "in_weights", "fan_ins")


@dataclass(eq=False)
class Adjacency:
    """One model's units and edges: ``uids`` in write order; per unit, where its incoming
    edges end (a running count); the sources (positions in ``uids``) and weights of every
    edge, grouped by target in that order; and each unit's signature fan-in, at most
    ``FAN_IN_SEEN``, which the views' ``target_fan_ins`` report."""

    uids: Sequence[str]
    in_ends: np.ndarray
    in_sources: np.ndarray
    in_weights: np.ndarray
    fan_ins: bytes
    # Neurons whose outgoing edges were asked for so far: past ``SCAN_VIEWS`` the edges are
    # grouped by source once, rather than scanned for each neuron's.
    views_made: int = field(default=0, init=False, repr=False)

    @staticmethod
    def of_columns(neurons: NeuronColumns, edges: EdgeColumns) -> Adjacency:
        """The layout of a model handed to the store; ValueError for a weight that is not
        finite (a graph read back must compute what was written)."""
        broken = ~np.isfinite(edges.weight)
        if broken.any():
            dst = int(edges.dst[broken].min())
            raise ValueError(
                f"an edge into {neurons.uid[dst]} has weight "
                f"{edges.weight[edges.dst == dst].tolist()}"
            )
        n = len(neurons)
        # Edges usually come grouped by target already: then no sort, and no copy of them
        # but the narrower sources (a GPT-2-sized stack has 57 million edges).
        grouped = bool(np.all(edges.dst[1:] >= edges.dst[:-1]))
        order = slice(None) if grouped else np.argsort(edges.dst, kind="stable")
        fan_in = np.minimum(np.add(neurons.n_pos, neurons.n_neg, dtype=np.intp), FAN_IN_SEEN)
        return Adjacency(
            neurons.uid,
            np.cumsum(np.bincount(edges.dst, minlength=n)).astype(_COUNT),
            edges.src[order].astype(_position_type(n)),
            np.asarray(edges.weight[order], dtype=_WEIGHT),
            fan_in.astype(np.uint8).tobytes(),
        )

    @staticmethod
    def of_inputs(
        uids: Sequence[str], inputs: Sequence[Sequence[tuple[str, float]]], fan_ins: Sequence[int]
    ) -> Adjacency:
        """The layout of units given with their incoming edges (source uid, weight), in
        order: how a store written before this layout is converted."""
        position = {uid: i for i, uid in enumerate(uids)}
        sources = [position[src] for edges in inputs for src, _ in edges]
        return Adjacency(
            tuple(uids),
            np.cumsum([len(edges) for edges in inputs], dtype=np.intp).astype(_COUNT),
            np.array(sources, dtype=_position_type(len(uids))),
            np.array([w for edges in inputs for _, w in edges], dtype=_WEIGHT),
            bytes(min(f, FAN_IN_SEEN) for f in fan_ins),
        )

    def row(self) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """The values of ``COLUMNS``, as the store writes them: the weights as float32 when
        every one of them is a float32, else as float64 (``weight_type``)."""
        return (*self.compressed(), b"".join(self.weight_pieces()), self.fan_ins)

    def compressed(self) -> tuple[bytes, bytes, bytes]:
        """The values of the first three ``COLUMNS`` (uids, in_ends, in_sources), compressed."""
        return (
            zlib.compress(json.dumps(list(self.uids)).encode()),
            zlib.compress(_bytes_of(self.in_ends)),
            zlib.compress(_bytes_of(self.in_sources)),
        )

    @cached_property
    def weight_type(self) -> np.dtype:
        """How the store keeps the weights: float32 when every one of them is a float32,
        else float64; judged a million weights at a time, never widening or narrowing all
        of them."""
        with np.errstate(over="ignore"):
            narrow = all(
                np.array_equal(piece.astype(_NARROW_WEIGHT), piece)
                for piece in self._weight_chunks()
            )
        return _NARROW_WEIGHT if narrow else _WEIGHT

    @property
    def weight_bytes(self) -> int:
        """The length of the ``in_weights`` value."""
        return len(self.in_weights) * self.weight_type.itemsize

    def weight_pieces(self) -> Iterator[bytes]:
        """The ``in_weights`` value, a million weights at a time: a store that writes a
        value in pieces (SQLite's blob I/O) never holds a copy of all of a big model's
        weights (230 MB for a GPT-2-sized stack)."""
        with np.errstate(over="ignore"):
            for piece in self._weight_chunks():
                yield piece.astype(self.weight_type).tobytes()

    def _weight_chunks(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.in_weights), _CHUNK):
            yield self.in_weights[i : i + _CHUNK]

    @staticmethod
    def from_row(
        uids: bytes, in_ends: bytes, in_sources: bytes, in_weights: bytes, fan_ins: bytes
    ) -> Adjacency:
        """Decode a row written by ``row``; the weights come back as float64, whichever
        width they were written in (told by the blob's length per edge)."""
        names = json.loads(zlib.decompress(uids))
        ends = np.frombuffer(zlib.decompress(in_ends), dtype=_COUNT)
        n_edges = int(ends[-1]) if len(ends) else 0
        narrow = n_edges > 0 and len(in_weights) == n_edges * _NARROW_WEIGHT.itemsize
        sources = np.frombuffer(zlib.decompress(in_sources), dtype=_position_type(len(names)))
        weights = np.frombuffer(in_weights, dtype=_NARROW_WEIGHT if narrow else _WEIGHT)
        if not (
            len(ends) == len(names) == len(fan_ins)
            and len(sources) == len(weights) == n_edges
            and (n_edges == 0 or int(sources.max()) < len(names))
        ):
            raise ValueError(
                f"{len(names)} units, {len(ends)} ends, {len(fan_ins)} fan-ins, "
                f"{len(sources)} sources and {len(weights)} weights for {n_edges} edges"
            )
        return Adjacency(names, ends, sources, weights.astype(np.float64, copy=False), fan_ins)

    @staticmethod
    def from_uncompressed_row(
        uids: str, in_ends: bytes, in_sources: bytes, in_weights: bytes, fan_ins: bytes
    ) -> Adjacency:
        """Decode a row of schema version 11 and earlier: the unit list as JSON text, the
        other arrays as they are in memory, the weights float64."""
        names = json.loads(uids)
        return Adjacency(
            names,
            np.frombuffer(in_ends, dtype=_COUNT),
            np.frombuffer(in_sources, dtype=_position_type(len(names))),
            np.frombuffer(in_weights, dtype=_WEIGHT),
            fan_ins,
        )

    @property
    def nbytes(self) -> int:
        """Roughly what the decoded model holds in memory (its arrays and its uid strings)."""
        return (
            self.in_ends.nbytes
            + self.in_sources.nbytes
            + self.in_weights.nbytes
            + len(self.fan_ins)
            + _UID_BYTES * len(self.uids)
        )

    def inputs(self) -> dict[str, dict[str, float]]:
        """Every unit's incoming edges by source uid, units in write order."""
        uids, ends = self.uids, [0, *self.in_ends.tolist()]
        sources = [uids[i] for i in self.in_sources.tolist()]
        weights = self.in_weights.tolist()
        return {
            uid: dict(
                zip(sources[ends[i] : ends[i + 1]], weights[ends[i] : ends[i + 1]], strict=True)
            )
            for i, uid in enumerate(uids)
        }

    @cached_property
    def _uid_array(self) -> np.ndarray:
        return np.array(self.uids, dtype=object)

    @cached_property
    def _fan_in_array(self) -> np.ndarray:
        return np.frombuffer(self.fan_ins, dtype=np.uint8)

    @cached_property
    def _by_source(self) -> tuple[list[int], np.ndarray]:
        """Every edge's position grouped by source, in edge order within a group, and where
        each source's group starts: what a scan for one source finds, for all at once."""
        counts = np.bincount(self.in_sources, minlength=len(self.uids))
        starts = [0, *np.cumsum(counts).tolist()]
        return starts, np.argsort(self.in_sources, kind="stable")

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {uid: i for i, uid in enumerate(self.uids)}

    def view(self, record: NeuronRecord) -> AdjacencyView:
        """The neuron of ``record`` with its edges in both directions, decoded from the
        arrays only as the engine asks for them (``AdjacencyView``)."""
        return AdjacencyView(record, self, self._positions[record.uid])

    def outgoing(self, position: int) -> np.ndarray:
        """The edges (positions in the edge arrays) out of the unit at ``position``. A query
        reads a neuron or two of most models it touches, so at first each is found by one
        comparison over the sources; after ``SCAN_VIEWS`` of them, from the edges grouped
        by source once."""
        self.views_made += 1
        if self.views_made > SCAN_VIEWS:
            starts, by_source = self._by_source
            return by_source[starts[position] : starts[position + 1]]
        return np.flatnonzero(self.in_sources == position)


def _bytes_of(array: np.ndarray) -> memoryview:
    """The array's bytes, without copying them."""
    return np.ascontiguousarray(array).data.cast("B")


_CHUNK = 1 << 20


class AdjacencyView(NeuronView):
    """A neuron of an ``Adjacency``: its edges stay arrays, and each field a reader asks
    for is decoded once. The engine grows most views through ``sources`` (a mask over the
    incoming weights) or ``targets_with_fan_in`` (a mask over the readers' fan-ins) and never
    reads the edge lists of the dense layers it passes."""

    def __init__(self, record: NeuronRecord, adjacency: Adjacency, position: int) -> None:
        self.record = record
        ends = adjacency.in_ends
        lo, hi = (int(ends[position - 1]) if position else 0), int(ends[position])
        self._adjacency = adjacency
        self._position = position
        self._source_positions = adjacency.in_sources[lo:hi]
        self._weights = adjacency.in_weights[lo:hi]

    def _names(self, positions: np.ndarray) -> list[str]:
        return self._adjacency._uid_array[positions].tolist()

    @cached_property
    def inputs(self) -> tuple[tuple[str, float], ...]:
        """(source uid, weight) of every incoming edge."""
        names = self._names(self._source_positions)
        return tuple(zip(names, self._weights.tolist(), strict=True))

    @cached_property
    def source_fan_ins(self) -> tuple[int, ...]:
        """Each input's source's fan-in, in ``inputs`` order."""
        return tuple(self._adjacency._fan_in_array[self._source_positions].tolist())

    def _sources_reading(self, most: int | None) -> tuple[tuple[str, int], ...]:
        """(uid, fan-in) of the sources reading 1 to ``most`` units (None: any number), as
        ``reads_between`` says, found on the fan-in array: only their names are decoded."""
        fan_ins = self._adjacency._fan_in_array[self._source_positions]
        keep = reads_between(fan_ins, 1, most)
        names = self._names(self._source_positions[keep])
        return tuple(zip(names, fan_ins[keep].tolist(), strict=True))

    @cached_property
    def _outgoing(self) -> tuple[np.ndarray, np.ndarray]:
        """The outgoing edges' positions in the edge arrays, and each one's target."""
        adjacency = self._adjacency
        outgoing = adjacency.outgoing(self._position)
        return outgoing, np.searchsorted(adjacency.in_ends, outgoing, side="right")

    @cached_property
    def outputs(self) -> tuple[tuple[str, float], ...]:
        """(target uid, weight) of every outgoing edge."""
        outgoing, targets = self._outgoing
        weights = self._adjacency.in_weights[outgoing].tolist()
        return tuple(zip(self._names(targets), weights, strict=True))

    @cached_property
    def target_fan_ins(self) -> tuple[int, ...]:
        """Each output's target's fan-in, in ``outputs`` order."""
        return tuple(self._adjacency._fan_in_array[self._outgoing[1]].tolist())

    @cached_property
    def targets(self) -> tuple[str, ...]:
        """The uids of ``outputs``."""
        return tuple(self._names(self._outgoing[1]))

    def targets_with_fan_in(self, low: int, high: int | None) -> tuple[str, ...]:
        """The targets whose fan-in may lie in [low, high], as ``reads_between`` says, in
        ``outputs`` order: one comparison over the targets' fan-ins."""
        targets = self._outgoing[1]
        keep = reads_between(self._adjacency._fan_in_array[targets], low, high)
        return tuple(self._names(targets[keep]))

    @cached_property
    def _significant(self) -> np.ndarray:
        return significant_in_row(self._weights)

    @cached_property
    def significant_inputs(self) -> tuple[tuple[str, float], ...]:
        """The inputs ``significant`` keeps, in stored order."""
        keep = self._significant
        names = self._names(self._source_positions[keep])
        return tuple(zip(names, self._weights[keep].tolist(), strict=True))

    @cached_property
    def sources(self) -> frozenset[str]:
        """The uids of ``significant_inputs``."""
        return frozenset(self._names(self._source_positions[self._significant]))


_UID_BYTES = 64  # a short str object and its list slot


class AdjacencyCache:
    """Decoded models, least recently used dropped first once they hold more than
    ``max_bytes``: a query grows every candidate a step at a time, each step reading the
    same models' edges again. The store clears it whenever the stored models may change."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[str, Adjacency] = OrderedDict()
        self._bytes = 0

    def get(self, model: str) -> Adjacency | None:
        """The model's edges if held (and now the most recently used), else None."""
        adjacency = self._held.get(model)
        if adjacency is not None:
            self._held.move_to_end(model)
        return adjacency

    def put(self, model: str, adjacency: Adjacency) -> None:
        """Hold the model's edges, dropping the least recently used beyond ``max_bytes``."""
        if model in self._held:
            self._bytes -= self._held.pop(model).nbytes
        self._held[model] = adjacency
        self._bytes += adjacency.nbytes
        while self._bytes > self.max_bytes and len(self._held) > 1:
            self._bytes -= self._held.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        """Forget every model."""
        self._held.clear()
        self._bytes = 0


def magnitudes_of(blob: bytes) -> list[float]:
    """The magnitudes a store wrote as steps (``magnitude_steps``), as the same floats (a
    table lookup per byte: a query decodes thousands of rows of a few bytes each)."""
    return [MAGNITUDES[step] for step in blob]

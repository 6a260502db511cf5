"""The Store protocol: what every backend (SQLite, Neo4j) keeps and answers.

A store holds *indexed models*: the canonical neurons of each model with their signatures and
tokens, the weighted edges between them, and per-token counts the query planner uses to pick
its most selective starting point. The records below are the whole contract between the
indexer and a store, so a backend never needs to import the indexer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from itertools import accumulate, chain
from typing import Any, Literal, NamedTuple, Protocol, overload

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import LEAKY_SLOPE, NeuronGraph, Unit, UnitKind
from circuitql.indexer.signature import DEFAULT_SIGNIFICANCE, Signature

# Targets' fan-ins as views carry them, one byte each: a fan-in of this or more reads as this.
FAN_IN_SEEN = 255

# Lookup keys that bound a column rather than give its value: key -> (column, comparison).
BOUNDS = {"fan_in_max": ("fan_in", "<="), "fan_in_min": ("fan_in", ">=")}
# The only signature columns a lookup may constrain, in every backend: a key outside this set
# is rejected before any query text is built, so a key can never smuggle text into SQL or
# Cypher. Values always travel as parameters.
SIGNATURE_COLUMNS = frozenset(
    {"kind", "activation", "n_pos", "n_neg", "fan_in", "bias_class", "out_pos", "out_neg",
     "layer", "token", *BOUNDS}
)


def lookup_values(constraints: Mapping[str, object]) -> list[tuple[str, str, object]]:
    """(column, comparison, plain value) triples of a signature lookup, in a stable order:
    "=" for a column, the bound's comparison for a key of ``BOUNDS`` (``fan_in_max`` is
    ``fan_in <=``); enum members (Activation.RELU) become their stored values ("relu").
    Unknown keys: ValueError."""
    unknown = sorted(set(constraints) - SIGNATURE_COLUMNS)
    if unknown:  # a caller's bug, not a user's: queries only produce whitelisted keys
        raise ValueError(f"cannot look neurons up by {unknown}; searchable columns are "
                         f"{sorted(SIGNATURE_COLUMNS)}")
    return [(*BOUNDS.get(key, (key, "=")), value.value if isinstance(value, Enum) else value)
            for key, value in sorted(constraints.items())]


@dataclass(frozen=True)
class NeuronRecord:
    """One canonical neuron.

    ``uid`` is the canonical unit's id: the source id of the representative original neuron.
    ``members`` lists every original neuron folded into this one as (source id, scale): the
    original neuron's output is ``scale`` times the canonical neuron's. A neuron that was only
    rescaled has one member; merged duplicates have several. ``alpha`` is a leaky ReLU's
    negative slope: without it, a network read back from the store computes another function.
    """

    uid: str
    layer: int
    signature: Signature
    bias: float
    members: tuple[tuple[str, float], ...]
    alpha: float = LEAKY_SLOPE

    def unit(self, inputs: Mapping[str, float]) -> Unit:
        """The neuron as a graph unit reading ``inputs``."""
        return Unit(self.uid, self.signature.kind, self.signature.activation, self.bias,
                    dict(inputs), self.alpha)

    @property
    def token(self) -> str:
        return self.signature.token


NeuronKey = tuple[str, str]
"""(model name, neuron uid): a neuron's address anywhere in the store."""


class EdgeRecord(NamedTuple):
    """One weighted edge. A NamedTuple, not a dataclass: a model has thousands of them and a
    frozen dataclass costs several times more to build."""

    src: str
    dst: str
    weight: float


@dataclass(frozen=True, eq=False)
class EdgeColumns(Sequence[EdgeRecord]):
    """A model's edges as three columns: what the indexer hands a store.

    ``src`` and ``dst`` are positions in ``uids`` (the model's neurons, in order) and ``weight``
    the canonical weights. A dense model has thousands of edges: as arrays they cross from an
    indexing worker process to the writing one as three buffers (a tuple of EdgeRecords takes
    ~30 ms to pickle and unpickle), and a store can group them without a loop per edge. Read as
    a sequence they are EdgeRecords, in order, so a store may treat them as any other edges.
    """

    uids: tuple[str, ...]
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray

    @staticmethod
    def of(uids: Sequence[str], edges: Iterable[EdgeRecord]) -> EdgeColumns:
        """Columns for edges that name their ends by uid; ValueError for an end not in
        ``uids``."""
        position = {uid: i for i, uid in enumerate(uids)}
        src: list[int] = []
        dst: list[int] = []
        weight: list[float] = []
        for edge in edges:
            if edge.src not in position or edge.dst not in position:
                raise ValueError(f"edge {edge.src} -> {edge.dst} names a neuron the model lacks")
            src.append(position[edge.src])
            dst.append(position[edge.dst])
            weight.append(edge.weight)
        return EdgeColumns(tuple(uids), np.array(src, dtype=np.intp),
                           np.array(dst, dtype=np.intp), np.array(weight, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.weight)

    @overload
    def __getitem__(self, index: int) -> EdgeRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[EdgeRecord]: ...

    def __getitem__(self, index: int | slice) -> EdgeRecord | Sequence[EdgeRecord]:
        if isinstance(index, slice):
            return EdgeColumns(self.uids, self.src[index], self.dst[index], self.weight[index])
        return EdgeRecord(self.uids[self.src[index]], self.uids[self.dst[index]],
                          float(self.weight[index]))

    def __iter__(self) -> Iterator[EdgeRecord]:
        uids = self.uids
        return map(EdgeRecord, [uids[i] for i in self.src.tolist()],
                   [uids[i] for i in self.dst.tolist()], self.weight.tolist())


@dataclass(frozen=True, eq=False)
class NeuronColumns(Sequence[NeuronRecord]):
    """A model's neurons as columns, entry i for neuron i: what the indexer hands a store.

    For the reason EdgeColumns exist: a model's ~200 NeuronRecords, each with its Signature,
    cost the writing process more to unpickle than tuples of plain values, and a store reads
    its columns straight from these. ``kind``, ``activation`` and ``bias_class`` hold the
    enums' values; ``magnitudes`` holds every neuron's signature magnitudes back to back,
    neuron i's ending at ``magnitude_ends[i]``. Read as a sequence they are NeuronRecords, in
    order.
    """

    uid: tuple[str, ...]
    layer: tuple[int, ...]
    kind: tuple[str, ...]
    activation: tuple[str, ...]
    n_pos: tuple[int, ...]
    n_neg: tuple[int, ...]
    bias_class: tuple[str, ...]
    out_pos: tuple[int, ...]
    out_neg: tuple[int, ...]
    magnitudes: np.ndarray
    magnitude_ends: tuple[int, ...]
    bias: tuple[float, ...]
    members: tuple[tuple[tuple[str, float], ...], ...]
    token: tuple[str, ...]
    alpha: tuple[float, ...]

    @staticmethod
    def of(neurons: Sequence[NeuronRecord]) -> NeuronColumns:
        sigs = [n.signature for n in neurons]
        return NeuronColumns(
            uid=tuple(n.uid for n in neurons),
            layer=tuple(n.layer for n in neurons),
            kind=tuple(s.kind.value for s in sigs),
            activation=tuple(s.activation.value for s in sigs),
            n_pos=tuple(s.n_pos for s in sigs),
            n_neg=tuple(s.n_neg for s in sigs),
            bias_class=tuple(s.bias_class.value for s in sigs),
            out_pos=tuple(s.out_pos for s in sigs),
            out_neg=tuple(s.out_neg for s in sigs),
            magnitudes=np.fromiter(chain.from_iterable(s.magnitudes for s in sigs),
                                   dtype=np.float64),
            magnitude_ends=tuple(accumulate(len(s.magnitudes) for s in sigs)),
            bias=tuple(n.bias for n in neurons),
            members=tuple(n.members for n in neurons),
            token=tuple(s.token for s in sigs),
            alpha=tuple(n.alpha for n in neurons),
        )

    def __len__(self) -> int:
        return len(self.uid)

    @overload
    def __getitem__(self, index: int) -> NeuronRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NeuronRecord]: ...

    def __getitem__(self, index: int | slice) -> NeuronRecord | Sequence[NeuronRecord]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        i = range(len(self))[index]
        start = self.magnitude_ends[i - 1] if i else 0
        signature = Signature.from_values(
            self.kind[i], self.activation[i], self.n_pos[i], self.n_neg[i],
            self.bias_class[i], self.out_pos[i], self.out_neg[i],
            self.magnitudes[start:self.magnitude_ends[i]].tolist(),
        )
        return NeuronRecord(self.uid[i], self.layer[i], signature, self.bias[i], self.members[i],
                            self.alpha[i])

    def __iter__(self) -> Iterator[NeuronRecord]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True)
class NeuronView:
    """A stored neuron with its edges: what the query engine expands a candidate through.

    ``inputs`` and ``outputs`` are (neighbour uid, canonical weight) in stored order.
    """

    record: NeuronRecord
    inputs: tuple[tuple[str, float], ...]
    outputs: tuple[tuple[str, float], ...]
    # Each output's target's fan-in (its signature's), in ``outputs`` order, at most
    # ``FAN_IN_SEEN``; None where the store does not keep them (written before it did).
    target_fan_ins: tuple[int, ...] | None = None

    @cached_property
    def significant_inputs(self) -> tuple[tuple[str, float], ...]:
        """The inputs that count for the signature (the indexer's significance rule): the
        edges the query engine grows through and matches on, asked for many times per view
        and so computed once."""
        top = max((abs(w) for _, w in self.inputs), default=0.0)
        return tuple((s, w) for s, w in self.inputs
                     if top > 0 and abs(w) >= DEFAULT_SIGNIFICANCE * top)

    @cached_property
    def sources(self) -> frozenset[str]:
        """The uids of ``significant_inputs``: a candidate's fan-in, as the engine grows."""
        return frozenset(s for s, _ in self.significant_inputs)

    @cached_property
    def targets(self) -> tuple[str, ...]:
        """The uids of ``outputs``: a candidate's fan-out, as the engine grows."""
        return tuple(t for t, _ in self.outputs)

    def targets_with_fan_in(self, low: int, high: int | None) -> tuple[str, ...]:
        """The targets whose fan-in may lie in [low, high] (``high`` None: unbounded).

        A unit of a dense layer feeds the whole next layer, tens of units each reading tens
        of others; a circuit's unit reads a few. Told apart here, a step to a candidate's
        readers looks at the few and never asks the store about the rest."""
        if self.target_fan_ins is None:
            return self.targets
        low = min(low, FAN_IN_SEEN)
        return tuple(chain.from_iterable(
            targets for fan_in, targets in self._targets_by_fan_in.items()
            if fan_in >= low and (high is None or fan_in <= high)))

    @cached_property
    def _targets_by_fan_in(self) -> dict[int, tuple[str, ...]]:
        """The targets grouped by fan-in: a dense layer's are a group or two, so a step
        through a unit with 64 readers compares a few fan-ins, not 64, every time a pattern
        variant steps through it."""
        groups: dict[int, list[str]] = defaultdict(list)
        for target, fan_in in zip(self.targets, self.target_fan_ins or (), strict=True):
            groups[fan_in].append(target)
        return {fan_in: tuple(targets) for fan_in, targets in groups.items()}


@dataclass(frozen=True)
class IndexedModel:
    """Everything a store writes for one model, in one transaction."""

    name: str
    content_hash: str
    source: str
    n_inputs: int
    n_outputs: int
    network_string: str
    # NeuronColumns and EdgeColumns from the indexer; any records will do.
    neurons: Sequence[NeuronRecord]
    edges: Sequence[EdgeRecord]
    canonical_log: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    # The canonical form's version and settings, the input domain among them: a model stored
    # under other ones is canonicalized again when it is indexed again.
    normal_form: Mapping[str, Any] = field(default_factory=dict)
    # How far the canonical network's outputs are from the original's, relative to their
    # reach, on probes over the domain (indexer.fidelity); None: not measured (older stores).
    canonical_error: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A stored model as listed by ``circuitql models``."""

    name: str
    content_hash: str
    source: str
    n_inputs: int
    n_outputs: int
    n_neurons: int
    n_edges: int
    network_string: str
    meta: Mapping[str, Any]
    normal_form: Mapping[str, Any] = field(default_factory=dict)
    canonical_error: float | None = None

    @property
    def domain(self) -> Domain | None:
        """The box the model was canonicalized on (None: unbounded inputs)."""
        box = self.normal_form.get("domain")
        return None if box is None else Domain.from_json(box).for_inputs(self.n_inputs)


@dataclass(frozen=True)
class WriteOutcome:
    """``indexed`` when the model was written; ``unchanged`` when the same content was there."""

    status: Literal["indexed", "unchanged"]
    model: ModelInfo


class Store(Protocol):
    """One backend. Every method is safe to call with any user-given value: values reach the
    database only as query parameters."""

    uri: str

    def write(self, model: IndexedModel, replace: bool = False) -> WriteOutcome:
        """Write a model atomically, under its name; the same network may be stored under
        other names too. The same network already under that name: nothing changes, unless
        it was stored under another ``normal_form``; then it is replaced, in the same
        transaction. A different network under that name: ``StoreError`` naming both, or,
        with ``replace``, it is replaced."""
        ...

    def models(self) -> list[ModelInfo]: ...

    def get_model(self, name: str) -> ModelInfo | None: ...

    def neurons(self, model: str) -> list[NeuronRecord]: ...

    def inputs(self, model: str) -> dict[str, dict[str, float]]:
        """Each neuron's incoming edges, ``{neuron uid: {source uid: weight}}``, in stored
        order (a neuron without inputs may be absent): the form a graph is rebuilt in, with
        no record per edge (a 768-wide layer has 600,000 edges)."""
        ...

    def delete(self, model: str) -> bool:
        """Remove a model and everything under it; False when there was none."""
        ...

    def token_counts(self) -> dict[str, int]:
        """How many stored neurons carry each token, across all models (the zoo's
        vocabulary; the planner uses ``count_neurons``, which stays cheap when dense networks
        make most tokens unique)."""
        ...

    def find_neurons(
        self, constraints: Mapping[str, object], models: Sequence[str] | None = None
    ) -> list[tuple[str, NeuronRecord]]:
        """(model name, neuron) for neurons whose signature columns equal ``constraints``.

        Keys are signature column names: kind, activation, n_pos, n_neg, fan_in, bias_class,
        out_pos, out_neg, layer, token. Served by the store's indexes.
        """
        ...

    def count_neurons(
        self, constraints: Mapping[str, object], models: Sequence[str] | None = None
    ) -> int:
        """How many neurons ``find_neurons`` would return, answered from the indexes: the
        planner's selectivity estimate for each pattern unit."""
        ...

    def max_layer(self, models: Sequence[str] | None = None) -> int:
        """The deepest neuron's layer (0 for an empty store): how many times a repetition can
        repeat, answered from an index rather than by listing the zoo."""
        ...

    def records(self, keys: Sequence[NeuronKey], constraints: Mapping[str, object] | None = None
                ) -> dict[NeuronKey, NeuronRecord]:
        """The named neurons without their edges, only those whose signature columns equal
        ``constraints`` (the keys of ``find_neurons``): the cheap first look at a dense
        layer's worth of neighbours, most of which the signature rejects before they leave
        the store. Keys the store lacks are left out."""
        ...

    def fetch(self, keys: Sequence[NeuronKey]) -> dict[NeuronKey, NeuronView]:
        """The named neurons with their incoming and outgoing edges; keys the store lacks are
        left out. One round trip however many keys, across any number of models: the engine
        grows every candidate neighbourhood of a query in lockstep and calls this once per
        pattern step, so a networked store costs a handful of round trips per query, not a
        handful per candidate."""
        ...

    def close(self) -> None: ...


def stored_graph(store: Store, model: str) -> NeuronGraph:
    """A model's canonical graph, rebuilt from the store's neurons and edges (layer by
    layer, so every unit follows its sources; the outputs last, in the network's order,
    whatever their depths)."""
    neurons = sorted(store.neurons(model),
                     key=lambda n: (1, 0) if n.signature.kind is UnitKind.OUTPUT else (0, n.layer))
    incoming = store.inputs(model)
    return NeuronGraph(tuple(n.unit(incoming.get(n.uid, {})) for n in neurons))

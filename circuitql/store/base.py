"""The Store protocol: what every backend (SQLite, Neo4j) keeps and answers.

A store holds *indexed models*: the canonical neurons of each model with their signatures and
tokens, the weighted edges between them, and per-token counts the query planner uses to pick
its most selective starting point. The records it writes and returns live below every
layer, in ``circuitql.records``: they are the whole contract between the indexer and a store,
so a backend never imports the indexer, nor the indexer a backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from enum import Enum
from typing import Protocol

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import NeuronGraph, UnitKind
from circuitql.lazy import cached_property
from circuitql.records import (
    EdgeColumns,
    IndexedModel,
    ModelInfo,
    NeuronColumns,
    NeuronKey,
    NeuronRecord,
    WriteOutcome,
    significant_in_row,
)

# Targets' fan-ins as views carry them, one byte each: a fan-in of this or more reads as this.
FAN_IN_SEEN = 255
# Sources reading at most this many units are kept apart by each view (``sources_reading_at_most``).
NARROW_SOURCES = 8

# Lookup keys that bound a column rather than give its value: key -> (column, comparison).
BOUNDS = {
    "fan_in_max": ("fan_in", "<="),
    "fan_in_min": ("fan_in", ">="),
    "layer_min": ("layer", ">="),
    "n_pos_min": ("n_pos", ">="),
    "n_neg_min": ("n_neg", ">="),
    "groups_max": ("input_groups", "<="),
}
# The only signature columns a lookup may constrain, in every backend: a key outside this set
# is rejected before any query text is built, so a key can never smuggle text into SQL or
# Cypher. Values always travel as parameters.
SIGNATURE_COLUMNS = frozenset(
    {
        "kind",
        "activation",
        "n_pos",
        "n_neg",
        "fan_in",
        "bias_class",
        "out_pos",
        "out_neg",
        "layer",
        *BOUNDS,
    }
)


def lookup_values(constraints: Mapping[str, object]) -> list[tuple[str, str, object]]:
    """(column, comparison, plain value) triples of a signature lookup, in a stable order:
    "=" for a column, the bound's comparison for a key of ``BOUNDS`` (``fan_in_max`` is
    ``fan_in <=``); enum members (Activation.RELU) become their stored values ("relu").
    Unknown keys: ValueError."""
    unknown = sorted(set(constraints) - SIGNATURE_COLUMNS)
    if unknown:  # a caller's bug, not a user's: queries only produce whitelisted keys
        raise ValueError(
            f"cannot look neurons up by {unknown}; searchable columns are "
            f"{sorted(SIGNATURE_COLUMNS)}"
        )
    return [
        (*BOUNDS.get(key, (key, "=")), value.value if isinstance(value, Enum) else value)
        for key, value in sorted(constraints.items())
    ]


class NeuronView:
    """A stored neuron with its edges: what the query engine expands a candidate through.

    ``inputs`` and ``outputs`` are (neighbour uid, canonical weight) in stored order. A
    store that reads edges as arrays (the embedded one) hands out ``AdjacencyView``, which
    decodes each of these only when it is asked for: the engine looks at most views
    through ``sources`` and ``targets_with_fan_in`` alone, and a unit of a dense layer has
    64 and more edges each way. Views compare equal when every field does.
    """

    def __init__(
        self,
        record: NeuronRecord,
        inputs: tuple[tuple[str, float], ...],
        outputs: tuple[tuple[str, float], ...],
        target_fan_ins: tuple[int, ...] | None = None,
        source_fan_ins: tuple[int, ...] | None = None,
    ) -> None:
        self.record = record
        self._inputs = inputs
        self._outputs = outputs
        self._target_fan_ins = target_fan_ins
        self._source_fan_ins = source_fan_ins

    @property
    def inputs(self) -> tuple[tuple[str, float], ...]:
        """(source uid, weight) of every incoming edge."""
        return self._inputs

    @property
    def outputs(self) -> tuple[tuple[str, float], ...]:
        """(target uid, weight) of every outgoing edge."""
        return self._outputs

    @property
    def target_fan_ins(self) -> tuple[int, ...] | None:
        """Each output's target's fan-in (its signature's), in ``outputs`` order, at most
        ``FAN_IN_SEEN``; None where the store does not keep them (written before it did)."""
        return self._target_fan_ins

    @property
    def source_fan_ins(self) -> tuple[int, ...] | None:
        """Each input's source's fan-in, likewise, in ``inputs`` order."""
        return self._source_fan_ins

    def _fields(self) -> tuple[object, ...]:
        return (
            self.record,
            self.inputs,
            self.outputs,
            self.target_fan_ins,
            self.source_fan_ins,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuronView):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.record, self.inputs))

    def __repr__(self) -> str:
        return f"NeuronView({self.record.uid!r}, inputs={self.inputs!r}, outputs={self.outputs!r})"

    @cached_property
    def significant_inputs(self) -> tuple[tuple[str, float], ...]:
        """The inputs that count for the signature (the indexer's rule, ``significant``):
        the edges the query engine grows through and matches on, asked for many times per
        view and so computed once."""
        keep = significant_in_row(np.fromiter((w for _, w in self.inputs), dtype=np.float64))
        return tuple(edge for edge, kept in zip(self.inputs, keep.tolist(), strict=True) if kept)

    @cached_property
    def row(self) -> dict[str, float]:
        """``inputs`` as a mapping from source uid to weight, made once per view: the wiring
        compares a candidate's row with several others'."""
        return dict(self.inputs)

    @cached_property
    def norm(self) -> float:
        """The Euclidean norm of the unit's incoming weights."""
        return math.sqrt(sum(w * w for _, w in self.inputs))

    @cached_property
    def sources(self) -> frozenset[str]:
        """The uids of ``significant_inputs``: a candidate's fan-in, as the engine grows."""
        return frozenset(s for s, _ in self.significant_inputs)

    @cached_property
    def targets(self) -> tuple[str, ...]:
        """The uids of ``outputs``: a candidate's fan-out, as the engine grows."""
        return tuple(t for t, _ in self.outputs)

    def sources_reading_at_most(self, limit: int) -> list[str]:
        """The sources that read between 1 and ``limit`` units, in ``inputs`` order (every
        source, as reading one, where the store keeps no fan-ins). The wiring asks, for
        every candidate it explains, which inputs of a unit could read nothing but the
        circuit's few inputs: of a dense layer's 64 sources, none."""
        pool = self._narrow_sources if limit <= NARROW_SOURCES else self._sources_reading(None)
        return [uid for uid, fan_in in pool if fan_in <= limit]

    @cached_property
    def _narrow_sources(self) -> tuple[tuple[str, int], ...]:
        return self._sources_reading(NARROW_SOURCES)

    def _sources_reading(self, most: int | None) -> tuple[tuple[str, int], ...]:
        """(uid, fan-in) of the sources reading 1 to ``most`` units (None: any number), as
        ``reads_between`` says."""
        fan_ins = self.source_fan_ins or (1,) * len(self.inputs)
        keep = reads_between(np.array(fan_ins, dtype=np.intp), 1, most).tolist()
        return tuple(
            (uid, fan_in)
            for (uid, _), fan_in, kept in zip(self.inputs, fan_ins, keep, strict=True)
            if kept
        )

    def targets_with_fan_in(self, low: int, high: int | None) -> tuple[str, ...]:
        """The targets whose fan-in may lie in [low, high] (``high`` None: unbounded), in
        ``outputs`` order.

        A unit of a dense layer feeds the whole next layer, tens of units each reading tens
        of others; a circuit's unit reads a few. Told apart here, a step to a candidate's
        readers looks at the few and never asks the store about the rest."""
        if self.target_fan_ins is None:
            return self.targets
        keep = reads_between(np.array(self.target_fan_ins, dtype=np.intp), low, high)
        return tuple(t for t, kept in zip(self.targets, keep.tolist(), strict=True) if kept)


def reads_between(fan_ins: np.ndarray, low: int, high: int | None) -> np.ndarray:
    """Which of the targets whose stored fan-ins are ``fan_ins`` (``FAN_IN_SEEN`` standing
    for it or more) may read between ``low`` and ``high`` units (``high`` None: unbounded):
    the one rule both kinds of view select readers by."""
    keep = fan_ins >= min(low, FAN_IN_SEEN)
    return keep if high is None else keep & (fan_ins <= high)


def nothing_to_commit() -> None:
    """A write group's commit where there is never anything pending: every write commits
    itself (Neo4j), or nothing is a store (the bulk path's CSV files)."""


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

    def write_group(self) -> AbstractContextManager[Callable[[], None]]:
        """A run of ``write`` calls the store may commit together: each write is still whole
        or not at all, a failed one (``NameTaken``) leaves the others, and everything
        written is committed on leaving, or when the function it gives is called (before
        the writer waits). What indexing many models writes in."""
        ...

    def models(self) -> list[ModelInfo]:
        """Every stored model, ordered by name."""
        ...

    def get_model(self, name: str) -> ModelInfo | None:
        """The model stored under ``name``; None when there is none."""
        ...

    def domains(self, models: Sequence[str]) -> dict[str, Domain | None]:
        """Each named model's input domain (``ModelInfo.domain``) in one round trip, without
        the rest of its row; names the store lacks are left out. A search reads the domain
        of every model a candidate lies in (hundreds per query at zoo size)."""
        ...

    def neurons(self, model: str) -> list[NeuronRecord]:
        """A model's neurons without their edges (``inputs`` has those), in the order they were
        written; empty for an unknown model."""
        ...

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
        self,
        constraints: Mapping[str, object],
        models: Sequence[str] | None = None,
        alongside: Sequence[Mapping[str, object]] = (),
    ) -> list[tuple[str, NeuronRecord]]:
        """(model name, neuron) for neurons whose signature columns equal ``constraints``.

        Keys are signature column names: kind, activation, n_pos, n_neg, fan_in, bias_class,
        out_pos, out_neg, layer, token. Served by the store's indexes.

        ``alongside`` keeps only neurons of models that also hold, for each of its column
        sets, a neuron with those columns (another unit of the pattern being looked up: a
        model without one cannot hold a match, and its candidates are never grown).
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

    def records(
        self, keys: Sequence[NeuronKey], constraints: Mapping[str, object] | None = None
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

    def close(self) -> None:
        """Release what the store holds open; it is not used after this."""
        ...


def unchanged(stored: ModelInfo, model: IndexedModel) -> bool:
    """Whether the stored model already says everything ``model`` would: the same network,
    canonicalized the same way, with the same metadata (``ModelInfo.says_all_of``)."""
    return stored.says_all_of(model.content_hash, model.normal_form, model.meta)


def stored_graph(store: Store, model: str) -> NeuronGraph:
    """A model's canonical graph, rebuilt from the store's neurons and edges (layer by
    layer, so every unit follows its sources; the outputs last, in the network's order,
    whatever their depths)."""
    neurons = sorted(
        store.neurons(model),
        key=lambda n: (1, 0) if n.signature.kind is UnitKind.OUTPUT else (0, n.layer),
    )
    incoming = store.inputs(model)
    return NeuronGraph(tuple(n.unit(incoming.get(n.uid, {})) for n in neurons))


def redacted(uri: str) -> str:
    """A store URI as typed, less any password: what error messages and logs may show."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", uri)


def model_columns(model: IndexedModel) -> tuple[NeuronColumns, EdgeColumns]:
    """The model's neurons and edges as columns: as the indexer hands them over, or converted
    from records (ValueError for an edge that names a neuron the model lacks). Every store
    writes from columns, so a model of thousands of edges is never a loop over edge objects."""
    neurons = model.neurons
    if not isinstance(neurons, NeuronColumns):
        neurons = NeuronColumns.of(neurons)
    edges = model.edges
    if not (isinstance(edges, EdgeColumns) and edges.uids == neurons.uid):
        edges = EdgeColumns.of(neurons.uid, edges)
    return neurons, edges

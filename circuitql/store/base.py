"""The Store protocol: what every backend (SQLite, Neo4j) keeps and answers.

A store holds *indexed models*: the canonical neurons of each model with their signatures and
tokens, the weighted edges between them, and per-token counts the query planner uses to pick
its most selective starting point. The records below are the whole contract between the
indexer and a store, so a backend never needs to import the indexer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, NamedTuple, Protocol

from circuitql.indexer.signature import Signature

# The only signature columns a lookup may constrain, in every backend: a key outside this set
# is rejected before any query text is built, so a key can never smuggle text into SQL or
# Cypher. Values always travel as parameters.
SIGNATURE_COLUMNS = frozenset(
    {"kind", "activation", "n_pos", "n_neg", "fan_in", "bias_class", "out_pos", "out_neg",
     "layer", "token"}
)


def lookup_values(constraints: Mapping[str, object]) -> list[tuple[str, object]]:
    """(column, plain value) pairs of a signature lookup, in a stable order; enum members
    (Activation.RELU) become their stored values ("relu"). Unknown columns: ValueError."""
    unknown = sorted(set(constraints) - SIGNATURE_COLUMNS)
    if unknown:  # a caller's bug, not a user's: queries only produce whitelisted keys
        raise ValueError(f"cannot look neurons up by {unknown}; searchable columns are "
                         f"{sorted(SIGNATURE_COLUMNS)}")
    return [(key, value.value if isinstance(value, Enum) else value)
            for key, value in sorted(constraints.items())]


@dataclass(frozen=True)
class NeuronRecord:
    """One canonical neuron.

    ``uid`` is the canonical unit's id: the source id of the representative original neuron.
    ``members`` lists every original neuron folded into this one as (source id, scale): the
    original neuron's output is ``scale`` times the canonical neuron's. A neuron that was only
    rescaled has one member; merged duplicates have several.
    """

    uid: str
    layer: int
    signature: Signature
    bias: float
    members: tuple[tuple[str, float], ...]

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


@dataclass(frozen=True)
class NeuronView:
    """A stored neuron with its edges: what the query engine expands a candidate through.

    ``inputs`` and ``outputs`` are (neighbour uid, canonical weight) in stored order.
    """

    record: NeuronRecord
    inputs: tuple[tuple[str, float], ...]
    outputs: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class IndexedModel:
    """Everything a store writes for one model, in one transaction."""

    name: str
    content_hash: str
    source: str
    n_inputs: int
    n_outputs: int
    network_string: str
    neurons: tuple[NeuronRecord, ...]
    edges: tuple[EdgeRecord, ...]
    canonical_log: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class WriteOutcome:
    """``indexed`` when the model was written; ``unchanged`` when the same content was there."""

    status: Literal["indexed", "unchanged"]
    model: ModelInfo


class Store(Protocol):
    """One backend. Every method is safe to call with any user-given value: values reach the
    database only as query parameters."""

    uri: str

    def write(self, model: IndexedModel) -> WriteOutcome:
        """Write a model atomically. Same content hash already stored: nothing changes.
        A different model already under that name: ``StoreError`` naming both."""
        ...

    def models(self) -> list[ModelInfo]: ...

    def get_model(self, name: str) -> ModelInfo | None: ...

    def neurons(self, model: str) -> list[NeuronRecord]: ...

    def edges(self, model: str) -> list[EdgeRecord]: ...

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

    def records(self, keys: Sequence[NeuronKey]) -> dict[NeuronKey, NeuronRecord]:
        """The named neurons without their edges: the cheap first look at a dense layer's
        worth of neighbours, most of which a signature check rejects. Keys the store lacks
        are left out."""
        ...

    def fetch(self, keys: Sequence[NeuronKey]) -> dict[NeuronKey, NeuronView]:
        """The named neurons with their incoming and outgoing edges; keys the store lacks are
        left out. One round trip however many keys, across any number of models: the engine
        grows every candidate neighbourhood of a query in lockstep and calls this once per
        pattern step, so a networked store costs a handful of round trips per query, not a
        handful per candidate."""
        ...

    def close(self) -> None: ...

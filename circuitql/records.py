"""The records every stage shares: a neuron's signature, the indexed model a store writes,
and the model a store lists.

This is the floor: the indexer builds these records, stores keep and return them, the query
engine and the analyses read them, and none of those layers needs to import another to do it.
It imports nothing of circuitql but the graph and the domain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate, chain
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import LEAKY_SLOPE, Activation, Unit, UnitKind
from circuitql.lazy import cached_property

DEFAULT_SIGNIFICANCE = 0.05


def significant(
    magnitude: np.ndarray, top: np.ndarray | float, significance: float = DEFAULT_SIGNIFICANCE
) -> np.ndarray:
    """Which edges count for their target's signature, by the magnitude of each and of its
    target's heaviest input (``top``): at least ``significance`` times that, and none of a
    target whose inputs all weigh 0. The indexer signs neurons by it; the query engine grows
    through, and matches on, the edges it keeps."""
    return (magnitude >= significance * top) & (top > 0.0)


def significant_in_row(weights: np.ndarray) -> np.ndarray:
    """Which of one unit's incoming ``weights`` are significant next to its heaviest: the
    rule as a store's view applies it to a unit, and as the index counts a unit's input
    groups (at the default significance, as views judge)."""
    magnitude = np.abs(weights)
    return significant(magnitude, magnitude.max(initial=0.0))


# A signature's magnitudes are ratios in [0, 1] rounded to this many decimals: coarse enough
# that float noise from rescaling never changes them, and that a store keeps each in a byte.
MAGNITUDE_DECIMALS = 2
MAGNITUDE_STEPS = 10**MAGNITUDE_DECIMALS
# The magnitude of each step (one byte's worth): k / 100, the float np.round(x, 2) gives for
# the ratios it stands for. Signatures and stores take their magnitudes from this table, so
# a zoo's millions of magnitudes are references to 101 floats, not a float object each.
MAGNITUDES: tuple[float, ...] = tuple((np.arange(256) / MAGNITUDE_STEPS).tolist())


def magnitude_steps(magnitudes: np.ndarray) -> np.ndarray:
    """Signature magnitudes (ratios rounded to ``MAGNITUDE_DECIMALS``) as steps, one byte
    each, ``MAGNITUDES[step]`` reading the same float back: how columns and stores keep
    them, 8 times less than float64. A value that would not survive the round trip is a
    ValueError, never a changed signature."""
    values = np.asarray(magnitudes, dtype=np.float64)
    steps = np.clip(np.rint(values * MAGNITUDE_STEPS), 0, MAGNITUDE_STEPS)
    if not np.array_equal(steps / MAGNITUDE_STEPS, values):  # off the grid, or out of [0, 1]
        raise ValueError(
            f"signature magnitudes must be ratios in [0, 1] rounded to {MAGNITUDE_DECIMALS} "
            f"decimals, not {values.tolist()}"
        )
    return steps.astype(np.uint8)


ACTIVATION_CODES: dict[Activation, str] = {
    Activation.RELU: "relu",
    Activation.LEAKY_RELU: "lrelu",
    Activation.SIGMOID: "sig",
    Activation.TANH: "tanh",
    Activation.GELU: "gelu",
    Activation.IDENTITY: "lin",
}


class BiasClass(StrEnum):
    """A bias's sign, ZERO unless the bias is significant next to its unit's largest input
    weight; the value is what a token writes after its ``b``."""

    POSITIVE = "+"
    NEGATIVE = "-"
    ZERO = "0"


_KINDS = {kind.value: kind for kind in UnitKind}
_ACTIVATIONS = {activation.value: activation for activation in Activation}
_BIAS_CLASSES = {bias.value: bias for bias in BiasClass}


@dataclass(frozen=True, order=True)
class Signature:
    """Everything about a canonical neuron that does not depend on how the network was written.

    The first seven fields are the coarse part, which the token spells out; ``magnitudes`` (the
    significant input weights divided by the largest, sorted descending, rounded) is the finer
    detail kept in the store's columns for ratio constraints.
    """

    kind: UnitKind
    activation: Activation
    n_pos: int
    n_neg: int
    bias_class: BiasClass
    out_pos: int
    out_neg: int
    magnitudes: tuple[float, ...] = ()

    @staticmethod
    def from_values(
        kind: str,
        activation: str,
        n_pos: int,
        n_neg: int,
        bias_class: str,
        out_pos: int,
        out_neg: int,
        magnitudes: Iterable[float] = (),
    ) -> Signature:
        """A signature from the enums' values, as every store keeps them. A query decodes
        thousands of stored records, and a dict lookup is 30x cheaper than ``Enum(value)``."""
        return Signature(
            _KINDS[kind],
            _ACTIVATIONS[activation],
            n_pos,
            n_neg,
            _BIAS_CLASSES[bias_class],
            out_pos,
            out_neg,
            tuple(magnitudes),
        )

    @property
    def fan_in(self) -> int:
        """Significant inputs of either sign."""
        return self.n_pos + self.n_neg

    @property
    def fan_out(self) -> int:
        """Outgoing weights of either sign that are significant for their targets."""
        return self.out_pos + self.out_neg

    @property
    def coarse(self) -> Signature:
        """The part a token carries (magnitudes dropped)."""
        return Signature(
            self.kind,
            self.activation,
            self.n_pos,
            self.n_neg,
            self.bias_class,
            self.out_pos,
            self.out_neg,
        )

    @cached_property  # the indexer reads it for the network string and the store's column
    def token(self) -> str:
        """The coarse signature as a word of the token grammar (``relu(+1-1)b0>(+2-0)``): an
        input's word has no fan-in nor bias, an output's no activation nor fan-out."""
        fan_out = f">(+{self.out_pos}-{self.out_neg})"
        if self.kind is UnitKind.INPUT:
            return f"x{fan_out}"
        fan_in = f"(+{self.n_pos}-{self.n_neg})b{self.bias_class}"
        if self.kind is UnitKind.OUTPUT:
            return f"y{fan_in}"
        return f"{ACTIVATION_CODES[self.activation]}{fan_in}{fan_out}"


@dataclass(frozen=True)
class NeuronRecord:
    """One canonical neuron.

    ``uid`` is the canonical unit's id: the source id of the representative original neuron.
    ``members`` lists every original neuron folded into this one as (source id, scale): the
    original neuron's output is ``scale`` times the canonical neuron's. A neuron that was only
    rescaled has one member; merged duplicates have several. ``alpha`` is a leaky ReLU's
    negative slope: without it, a network read back from the store computes another function.
    ``input_groups`` counts the groups of near-parallel units among the neuron's significant
    inputs (``siblings.input_groups``; 0 when not counted): an index column, like ``layer``,
    that an approximate search bounds its readers of one hidden unit by.
    """

    uid: str
    layer: int
    signature: Signature
    bias: float
    members: tuple[tuple[str, float], ...]
    alpha: float = LEAKY_SLOPE
    input_groups: int = 0

    def unit(self, inputs: Mapping[str, float]) -> Unit:
        """The neuron as a graph unit reading ``inputs``."""
        return Unit(
            self.uid,
            self.signature.kind,
            self.signature.activation,
            self.bias,
            dict(inputs),
            self.alpha,
        )

    @property
    def token(self) -> str:
        """The signature's token: the word network strings are made of, and a lookup key."""
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
        return EdgeColumns(
            tuple(uids),
            np.array(src, dtype=np.intp),
            np.array(dst, dtype=np.intp),
            np.array(weight, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.weight)

    @overload
    def __getitem__(self, index: int) -> EdgeRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[EdgeRecord]: ...

    def __getitem__(self, index: int | slice) -> EdgeRecord | Sequence[EdgeRecord]:
        if isinstance(index, slice):
            return EdgeColumns(self.uids, self.src[index], self.dst[index], self.weight[index])
        return EdgeRecord(
            self.uids[self.src[index]], self.uids[self.dst[index]], float(self.weight[index])
        )

    def __iter__(self) -> Iterator[EdgeRecord]:
        uids = self.uids
        return map(
            EdgeRecord,
            [uids[i] for i in self.src.tolist()],
            [uids[i] for i in self.dst.tolist()],
            self.weight.tolist(),
        )


@dataclass(frozen=True, eq=False)
class NeuronColumns(Sequence[NeuronRecord]):
    """A model's neurons as columns, entry i for neuron i: what the indexer hands a store.

    For the reason EdgeColumns exist: a model's ~200 NeuronRecords, each with its Signature,
    cost the writing process more to unpickle than tuples of plain values, and a store reads
    its columns straight from these. ``kind``, ``activation`` and ``bias_class`` hold the
    enums' values; ``magnitude_steps`` holds every neuron's signature magnitudes back to
    back as steps (``magnitude_steps``), neuron i's ending at ``magnitude_ends[i]``. Read as a
    sequence they are NeuronRecords, in order.
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
    magnitude_steps: np.ndarray
    magnitude_ends: tuple[int, ...]
    bias: tuple[float, ...]
    members: tuple[tuple[tuple[str, float], ...], ...]
    token: tuple[str, ...]
    alpha: tuple[float, ...]
    input_groups: tuple[int, ...]

    @staticmethod
    def of(
        neurons: Sequence[NeuronRecord],
        steps: tuple[np.ndarray, Sequence[int]] | None = None,
    ) -> NeuronColumns:
        """Columns for records, in their order: how the indexer hands its neurons over, and how
        a store given plain records converts them (ValueError for a magnitude no step holds).

        ``steps``: every neuron's magnitude steps back to back and where each neuron's end,
        when the caller has them as steps already, and the records' signatures carry none.
        The indexer does: a signature's magnitudes are a float per significant weight, a
        tuple of 57 million for a GPT-2-sized stack."""
        sigs = [n.signature for n in neurons]
        if steps is None:
            steps = (
                magnitude_steps(
                    np.fromiter(chain.from_iterable(s.magnitudes for s in sigs), np.float64)
                ),
                tuple(accumulate(len(s.magnitudes) for s in sigs)),
            )
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
            magnitude_steps=steps[0],
            magnitude_ends=tuple(steps[1]),
            bias=tuple(n.bias for n in neurons),
            members=tuple(n.members for n in neurons),
            token=tuple(s.token for s in sigs),
            alpha=tuple(n.alpha for n in neurons),
            input_groups=tuple(n.input_groups for n in neurons),
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
            self.kind[i],
            self.activation[i],
            self.n_pos[i],
            self.n_neg[i],
            self.bias_class[i],
            self.out_pos[i],
            self.out_neg[i],
            map(MAGNITUDES.__getitem__, self.magnitude_steps[start : self.magnitude_ends[i]]),
        )
        return NeuronRecord(
            self.uid[i],
            self.layer[i],
            signature,
            self.bias[i],
            self.members[i],
            self.alpha[i],
            self.input_groups[i],
        )

    def __iter__(self) -> Iterator[NeuronRecord]:
        return (self[i] for i in range(len(self)))


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
        return domain_of(self.normal_form, self.n_inputs)

    def says_all_of(
        self, content_hash: str, normal_form: Mapping[str, Any], meta: Mapping[str, Any]
    ) -> bool:
        """Whether this stored model already says everything the network of
        ``content_hash``, canonicalized under ``normal_form`` and described by ``meta``,
        would: writing that one would change nothing. The network alone is not enough: a
        config whose meta was edited must update what a census groups the model by."""
        return (
            self.content_hash == content_hash
            and self.normal_form == normal_form
            and dict(self.meta) == json.loads(json.dumps(dict(meta)))
        )


def domain_of(normal_form: Mapping[str, Any], n_inputs: int) -> Domain | None:
    """The input domain a model's ``normal_form`` records, one interval per input (None:
    unbounded inputs): ``ModelInfo.domain``, and what ``Store.domains`` reads without the
    rest of the model's row."""
    box = normal_form.get("domain")
    return None if box is None else Domain.from_json(box).for_inputs(n_inputs)


@dataclass(frozen=True)
class WriteOutcome:
    """``indexed`` when the model was written; ``unchanged`` when the same content was there."""

    status: Literal["indexed", "unchanged"]
    model: ModelInfo

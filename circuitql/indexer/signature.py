"""Per-neuron signatures and tokens: what makes candidate lookup an index lookup.

A *signature* describes a canonical neuron by what survives every symmetry of the network:
activation, how many significant inputs of each sign it has, the class of its bias, the signs of
its significant outgoing weights, and its sorted input magnitudes (quantized). Two neurons that
compute the same thing up to permutation and rescaling have equal signatures, so comparing
neurons costs a tuple comparison instead of an exhaustive evaluation.

A *token* is the coarse part of the signature written as a short word of a regular language
(``relu(+1-1)b0>(+2-0)``). A layer's word is its sorted tokens and a network's string is its
layers' words in order; the grammar in ``circuitql/grammar/tokens.lark`` parses every string
this module emits back to the same coarse signatures.

"Significant" is relative: an input counts when its weight is at least ``significance`` times
the unit's largest incoming weight. The same rule, seen from the other end of the edge, decides
which outgoing weights count. The default 0.05 keeps trained networks' small leftovers (and 1%
noise) from changing a token while every weight that shapes the function still counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind, row_max
from circuitql.records import (
    DEFAULT_SIGNIFICANCE,
    MAGNITUDE_STEPS,
    MAGNITUDES,
    BiasClass,
    Signature,
    significant_in_row,
)
from circuitql.records import significant as is_significant
from circuitql.siblings import GROUPS_FAN_IN, Source, input_groups


@dataclass(frozen=True)
class SignatureTable:
    """Every unit's signature as columns, by position in the graph: the magnitudes as steps
    (``MAGNITUDES[step]``) back to back, each unit's descending and ending at ``ends[i]``.
    A signature's magnitudes as floats are a tuple of one per significant weight; a store
    keeps them as steps, and a big network's records need never hold the floats."""

    graph: NeuronGraph
    n_pos: list[int]
    fan_in: list[int]
    out_pos: list[int]
    out_neg: list[int]
    bias_class: list[BiasClass]
    steps: np.ndarray
    ends: list[int]

    def coarse(self, i: int) -> Signature:
        """Unit i's signature without its magnitudes: what its token spells out."""
        unit = self.graph.units[i]
        return Signature(
            kind=unit.kind,
            activation=unit.activation,
            n_pos=self.n_pos[i],
            n_neg=self.fan_in[i] - self.n_pos[i],
            bias_class=self.bias_class[i],
            out_pos=self.out_pos[i],
            out_neg=self.out_neg[i],
        )

    def signature(self, i: int) -> Signature:
        """Unit i's whole signature."""
        steps = self.steps[self.ends[i] - self.fan_in[i] : self.ends[i]].tolist()
        return replace(self.coarse(i), magnitudes=tuple(map(MAGNITUDES.__getitem__, steps)))


def signatures(
    graph: NeuronGraph, significance: float = DEFAULT_SIGNIFICANCE
) -> dict[str, Signature]:
    """The signature of every unit of a (canonical) graph, keyed by unit id."""
    table = signature_table(graph, significance)
    return {unit.id: table.signature(i) for i, unit in enumerate(graph.units)}


def signature_table(
    graph: NeuronGraph, significance: float = DEFAULT_SIGNIFICANCE
) -> SignatureTable:
    """The signatures of every unit of a (canonical) graph, as columns.

    Computed over all edges (``graph.edge_arrays``), a run of whole units' edges at a time:
    a GPT-2-sized stack's 57 million weights make arrays of 460 MB where a pass over all of
    them needs its own. An outgoing edge counts for its source when it is significant for
    its target, the same rule seen from the other end.
    """
    edges = graph.edge_arrays
    n = len(graph.units)
    top = np.zeros(n)
    fan_in = np.zeros(n, dtype=np.intp)
    n_pos = np.zeros(n, dtype=np.intp)
    out_pos = np.zeros(n, dtype=np.intp)
    out_any = np.zeros(n, dtype=np.intp)
    steps_of_runs = []
    for run in edges.runs():
        units = run.targets(edges)
        magnitude = np.abs(edges.weight[run.lo : run.hi])
        run_top = row_max(magnitude, run.starts(edges))
        edge_top = run_top[units]
        significant = is_significant(magnitude, edge_top, significance)
        positive = significant & (edges.weight[run.lo : run.hi] > 0)
        sources = edges.src[run.lo : run.hi]
        top[run.first : run.end] = run_top
        fan_in[run.first : run.end] = np.bincount(units[significant], minlength=len(run_top))
        n_pos[run.first : run.end] = np.bincount(units[positive], minlength=len(run_top))
        out_pos += np.bincount(sources[positive], minlength=n)
        out_any += np.bincount(sources[significant], minlength=n)
        ratios = magnitude[significant]
        ratios /= edge_top[significant]
        steps_of_runs.append(_sorted_steps(units[significant], _steps(ratios)))
    return SignatureTable(
        graph,
        n_pos.tolist(),
        fan_in.tolist(),
        out_pos.tolist(),
        (out_any - out_pos).tolist(),
        [
            bias_class_for(unit.bias, unit_top, significance)
            for unit, unit_top in zip(graph.units, top.tolist(), strict=True)
        ],
        np.concatenate(steps_of_runs) if steps_of_runs else np.zeros(0, dtype=np.uint8),
        np.cumsum(fan_in).tolist(),
    )


def groups_column(
    graph: NeuronGraph, fan_in: Sequence[int], significance: float = DEFAULT_SIGNIFICANCE
) -> list[int]:
    """Each unit's ``siblings.input_groups`` (``fan_in``: its significant inputs, as the
    signature counts them), 0 where not counted: for a unit reading more than
    ``GROUPS_FAN_IN`` units, or none, and for every unit when ``significance`` is not the
    one a search explains a match's inputs by (a store's views judge at the default). A
    unit of the first layer reads network inputs only, each a group of its own: a dense
    host's first layer (64 units reading 8 inputs) costs no comparison."""
    counts = [0] * len(graph.units)
    if significance != DEFAULT_SIGNIFICANCE:
        return counts
    by_id, depth = graph.by_id, graph.layers
    sources: dict[str, Source] = {}

    def source(uid: str) -> Source:
        if uid not in sources:
            unit = by_id[uid]
            reads = _significant_sources(unit)
            sources[uid] = Source(
                unit.inputs,
                unit.bias,
                unit.activation,
                unit.activation is Activation.RELU
                and bool(reads)
                and all(by_id[s].kind is UnitKind.INPUT for s in reads),
            )
        return sources[uid]

    counted = np.array(fan_in, dtype=np.intp)
    for i in np.flatnonzero((counted >= 1) & (counted <= GROUPS_FAN_IN)).tolist():
        unit = graph.units[i]
        if depth[unit.id] == 1:
            counts[i] = fan_in[i]
        else:
            counts[i] = input_groups([source(s) for s in _significant_sources(unit)])
    return counts


def _significant_sources(unit: Unit) -> list[str]:
    """The sources of ``unit``'s significant inputs, as a store's view lists them."""
    names = list(unit.inputs)
    keep = significant_in_row(np.fromiter(unit.inputs.values(), np.float64, count=len(names)))
    return [name for name, kept in zip(names, keep.tolist(), strict=True) if kept]


def _steps(ratios: np.ndarray) -> np.ndarray:
    """Weight ratios in [0, 1] as magnitude steps (``MAGNITUDES[k]`` is the ratio rounded to
    ``MAGNITUDE_DECIMALS``, as ``np.round`` rounds it), one byte each: a GPT-2-sized stack's
    57 million ratios as floats, sorted and listed, took gigabytes. ``ratios`` is worked on
    in place, and spent.

    The nudge keeps float noise from rescaling (1e-15) off the rounding boundary: 0.125 and
    0.12500000000000003 must land in the same bucket.
    """
    ratios += 1e-9
    ratios *= MAGNITUDE_STEPS
    return np.rint(ratios, out=ratios).astype(np.uint8)


def _sorted_steps(units: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``steps`` grouped by unit (``units``, non-decreasing positions), each unit's
    descending. A step is at most 255, so with units 256 apart on one key no group overlaps
    another, and the sorted key gives the steps back: no index array the size of the edges,
    nor a gather through it. The key is ``units`` itself, worked on in place where its
    4-byte positions leave room for the step (below 2**23 units), and ``units`` is spent."""
    narrow = not len(units) or int(units[-1]) < 2**23
    key: np.ndarray = units.astype(np.dtype(np.int32 if narrow else np.int64), copy=False)
    key *= 256
    key += 255
    key -= steps
    key.sort()
    key &= 255
    key ^= 255  # 255 - step, for a step in [0, 255]
    return key.astype(np.uint8)


def bias_class_for(bias: float, row_max: float, significance: float) -> BiasClass:
    """A bias is zero unless it is significant next to the unit's largest input weight.

    A unit without inputs has no scale to compare with, so any nonzero bias counts.
    """
    if bias == 0.0 or abs(bias) <= significance * row_max:
        return BiasClass.ZERO
    return BiasClass.POSITIVE if bias > 0 else BiasClass.NEGATIVE


def layer_words(graph: NeuronGraph, sigs: dict[str, Signature]) -> list[list[str]]:
    """Tokens grouped by layer (longest-path depth), each layer sorted."""
    depth = graph.layers
    n_layers = 1 + max(depth.values(), default=0)
    words: list[list[str]] = [[] for _ in range(n_layers)]
    for unit in graph.units:
        words[depth[unit.id]].append(sigs[unit.id].token)
    return [sorted(w) for w in words]


def format_layer(tokens: list[str]) -> str:
    """``[2*relu(+1-0)b0>(+1-0) y(+2-0)b0]``: sorted tokens, repeats written once with a count."""
    items: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and tokens[j] == tokens[i]:
            j += 1
        items.append(tokens[i] if j - i == 1 else f"{j - i}*{tokens[i]}")
        i = j
    return "[" + " ".join(items) + "]"


def network_string(graph: NeuronGraph, sigs: dict[str, Signature]) -> str:
    """The layers' words from the inputs up, space-separated: the string stored with the
    model, which the token grammar parses back."""
    return " ".join(format_layer(words) for words in layer_words(graph, sigs))

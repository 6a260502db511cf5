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

import numpy as np

from circuitql.graph import NeuronGraph
from circuitql.records import (
    DEFAULT_SIGNIFICANCE,
    MAGNITUDE_STEPS,
    MAGNITUDES,
    BiasClass,
    Signature,
)
from circuitql.records import significant as is_significant


def signatures(
    graph: NeuronGraph, significance: float = DEFAULT_SIGNIFICANCE
) -> dict[str, Signature]:
    """The signature of every unit of a (canonical) graph, keyed by unit id.

    Computed over all edges at once (``graph.edge_arrays``); an outgoing edge counts for its
    source when it is significant for its target, the same rule seen from the other end.
    """
    edges = graph.edge_arrays
    n = len(graph.units)
    magnitude = np.abs(edges.weight)
    top = edges.row_max(magnitude)
    edge_top = top[edges.dst]
    significant = is_significant(magnitude, edge_top, significance)
    positive = significant & (edges.weight > 0)
    fan_in = np.bincount(edges.dst[significant], minlength=n)
    n_pos = np.bincount(edges.dst[positive], minlength=n)
    out_pos = np.bincount(edges.src[positive], minlength=n)
    out_neg = np.bincount(edges.src[significant], minlength=n) - out_pos
    ratios = magnitude[significant]
    ratios /= edge_top[significant]
    del magnitude, edge_top  # each the size of the weights (460 MB for a GPT-2-sized stack)
    steps = _sorted_steps(edges.dst[significant], _steps(ratios))
    ends = np.cumsum(fan_in).tolist()
    result: dict[str, Signature] = {}
    for unit, pos, count, unit_top, o_pos, o_neg, end in zip(
        graph.units,
        n_pos.tolist(),
        fan_in.tolist(),
        top.tolist(),
        out_pos.tolist(),
        out_neg.tolist(),
        ends,
        strict=True,
    ):
        result[unit.id] = Signature(
            kind=unit.kind,
            activation=unit.activation,
            n_pos=pos,
            n_neg=count - pos,
            bias_class=bias_class_for(unit.bias, unit_top, significance),
            out_pos=o_pos,
            out_neg=o_neg,
            magnitudes=tuple(map(MAGNITUDES.__getitem__, steps[end - count : end].tolist())),
        )
    return result


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
    nor a gather through it. ``units`` is spent."""
    key = units.astype(np.int64, copy=False)
    key *= 256
    key += 255
    key -= steps
    key.sort()
    return (255 - (key & 255)).astype(np.uint8)


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

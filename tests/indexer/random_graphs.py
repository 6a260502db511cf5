"""Random layered networks and the symmetry transformations the canonical form must undo.

Weights are drawn away from the thresholds canonicalization and signatures use (|w| >= 0.2,
so no weight is negligible or insignificant by accident); the transformations then add exactly
the degeneracies the canonical form exists to remove.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

from circuitql.analysis.equivalence import isomorphic as compare_isomorphic
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import canonicalize
from circuitql.indexer.signature import signatures


def _weight(draw: st.DrawFn, rng: np.random.Generator) -> float:
    """A weight in +-[0.2, 1], jittered off "simple" values.

    Significance is a threshold on weight ratios; simple values (0.2, 0.5, 1) can combine to a
    ratio of exactly 0.05, where float noise of 1e-12 decides a count. Real weights sit there
    with probability zero, so the jitter keeps the tests about symmetries, not about ties.
    """
    sign = draw(st.sampled_from([-1.0, 1.0]))
    jitter = 1.0 + 1e-3 * rng.random()  # from a seeded generator: shrinking cannot zero it
    return sign * draw(st.floats(0.2, 1.0, allow_nan=False)) * jitter


@st.composite
def layered_graphs(draw: st.DrawFn) -> NeuronGraph:
    """A ReLU MLP: 1-4 inputs, 1-3 hidden layers of 1-5 units, 1-2 outputs, some sparsity."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n_in = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    n_out = draw(st.integers(1, 2))
    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(n_in)]
    previous = [u.id for u in units]
    for layer, width in enumerate([*widths, n_out]):
        is_output = layer == len(widths)
        current = []
        for row in range(width):
            inputs = {src: _weight(draw, rng) for src in previous if draw(st.integers(0, 4)) > 0}
            if not inputs:
                inputs = {previous[0]: _weight(draw, rng)}
            bias = draw(st.sampled_from([0.0, 1.0])) * _weight(draw, rng)
            uid = f"out:{row}" if is_output else f"fc{layer}:{row}"
            units.append(
                Unit(
                    uid,
                    UnitKind.OUTPUT if is_output else UnitKind.HIDDEN,
                    Activation.IDENTITY if is_output else Activation.RELU,
                    bias,
                    inputs,
                )
            )
            current.append(uid)
        previous = current
    return NeuronGraph(tuple(units))


@st.composite
def any_activation_graphs(draw: st.DrawFn) -> NeuronGraph:
    """Random layered networks whose hidden units use every activation circuitql reads."""
    graph = draw(layered_graphs())
    kinds = st.sampled_from(
        [
            (Activation.RELU, 0.01),
            (Activation.LEAKY_RELU, 0.01),
            (Activation.LEAKY_RELU, 0.1),
            (Activation.LEAKY_RELU, 0.3),
            (Activation.SIGMOID, 0.01),
            (Activation.TANH, 0.01),
            (Activation.GELU, 0.01),
        ]
    )
    units = []
    for unit in graph.units:
        if unit.kind is UnitKind.HIDDEN:
            activation, alpha = draw(kinds)
            unit = replace(unit, activation=activation, alpha=alpha)
        units.append(unit)
    return NeuronGraph(tuple(units))


def _hidden_layers(graph: NeuronGraph) -> list[list[str]]:
    layers: dict[str, list[str]] = {}
    for unit in graph.hidden:
        layers.setdefault(unit.id.split(":")[0], []).append(unit.id)
    return list(layers.values())


def permute_hidden(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """Shuffle each hidden layer and renumber its rows, as a reordered model file would."""
    rename: dict[str, str] = {}
    order: dict[str, int] = {}
    for ids in _hidden_layers(graph):
        prefix = ids[0].split(":")[0]
        for new_row, old in enumerate(rng.permutation(ids)):
            rename[str(old)] = f"{prefix}:{new_row}"
            order[str(old)] = new_row
    units = sorted(graph.units, key=lambda u: (graph.layers[u.id], order.get(u.id, 0)))
    return NeuronGraph(
        tuple(
            replace(
                u,
                id=rename.get(u.id, u.id),
                inputs={rename.get(s, s): w for s, w in u.inputs.items()},
            )
            for u in units
        )
    )


def _scaled(graph: NeuronGraph, factors: dict[str, float]) -> NeuronGraph:
    units = []
    for unit in graph.units:
        k = factors.get(unit.id, 1.0)
        units.append(
            replace(
                unit,
                bias=unit.bias * k,
                inputs={s: w * k / factors.get(s, 1.0) for s, w in unit.inputs.items()},
            )
        )
    return NeuronGraph(tuple(units))


def rescale_hidden(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """Scale each hidden ReLU's incoming weights by k > 0 and its outgoing ones by 1/k."""
    return _scaled(graph, {u.id: float(np.exp(rng.uniform(-2.3, 2.3))) for u in graph.hidden})


def split_unit(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """Replace one hidden unit by two copies (the second rescaled) sharing its outgoing weight."""
    victim = graph.hidden[int(rng.integers(len(graph.hidden)))]
    k, share = float(rng.uniform(0.3, 3.0)), float(rng.uniform(0.2, 0.8))
    twin = replace(
        victim,
        id=victim.id + "b",
        bias=victim.bias * k,
        inputs={s: w * k for s, w in victim.inputs.items()},
    )
    units = []
    for unit in graph.units:
        if victim.id in unit.inputs:
            w = unit.inputs[victim.id]
            inputs = dict(unit.inputs)
            inputs[victim.id] = share * w
            inputs[twin.id] = (1 - share) * w / k
            unit = replace(unit, inputs=inputs)
        units.append(unit)
        if unit.id == victim.id:
            units.append(twin)
    return NeuronGraph(tuple(units))


def add_dead_units(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """Add a ReLU that never fires (no input, bias <= 0) and one whose output goes nowhere."""
    units = list(graph.units)
    first_consumer = next(i for i, u in enumerate(units) if u.kind is not UnitKind.INPUT)
    dead = Unit("dead:0", UnitKind.HIDDEN, Activation.RELU, -float(rng.uniform(0, 2)), {})
    orphan = Unit(
        "orphan:0",
        UnitKind.HIDDEN,
        Activation.RELU,
        0.3,
        {graph.inputs[0].id: float(rng.uniform(0.2, 1.0))},
    )
    units[first_consumer:first_consumer] = [dead, orphan]
    # The dead unit feeds every later unit with a large weight: it still changes nothing.
    units = [
        replace(u, inputs={**u.inputs, dead.id: float(rng.uniform(-5, 5))})
        if u.kind is not UnitKind.INPUT and u.id not in (dead.id, orphan.id)
        else u
        for u in units
    ]
    return NeuronGraph(tuple(units))


def add_tiny_weights(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """Connect every earlier-layer unit that is not connected yet with a negligible weight."""
    layers = graph.layers
    units = []
    for unit in graph.units:
        if unit.inputs:
            top = max(abs(w) for w in unit.inputs.values())
            extra = {
                s.id: float(rng.uniform(-1e-6, 1e-6)) * top
                for s in graph.units
                if layers[s.id] == layers[unit.id] - 1 and s.id not in unit.inputs
            }
            unit = replace(unit, inputs={**unit.inputs, **extra})
        units.append(unit)
    return NeuronGraph(tuple(units))


def signature_multisets(graph: NeuronGraph) -> list[Counter[object]]:
    """The canonical form seen as a multiset of signatures per layer."""
    canon = canonicalize(graph).graph
    sigs = signatures(canon)
    layers: dict[int, Counter[object]] = {}
    for unit in canon.units:
        layers.setdefault(canon.layers[unit.id], Counter())[sigs[unit.id]] += 1
    return [layers[k] for k in sorted(layers)]


def isomorphic(a: NeuronGraph, b: NeuronGraph) -> bool:
    """Canonical graphs equal up to hidden-unit order, weights within 1e-6."""
    return compare_isomorphic(a, b, tol=1e-6)

"""Network equivalence by sorting gives VF2's answers: on permuted, rescaled twins, on twins
with one value moved past the tolerance, on unrelated networks, and where near-duplicate
units make the sort hand over to VF2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql.analysis import equivalence
from circuitql.analysis.equivalence import _vf2, isomorphic
from circuitql.api import connect
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import canonicalize
from circuitql.store.base import stored_graph
from tests.indexer.random_graphs import layered_graphs, permute_hidden, rescale_hidden

TOL = 1e-4


def moved(graph: NeuronGraph, rng: np.random.Generator) -> NeuronGraph:
    """One weight or bias of one computed unit moved by ten times the tolerance."""
    computed = [u for u in graph.units if u.kind is not UnitKind.INPUT]
    unit = computed[int(rng.integers(len(computed)))]
    sources = list(unit.inputs)
    which = int(rng.integers(len(sources) + 1))
    if which == len(sources):
        changed = replace(unit, bias=unit.bias + 10 * TOL * max(1.0, abs(unit.bias)))
    else:
        w = unit.inputs[sources[which]]
        changed = unit.with_inputs({**unit.inputs, sources[which]: w + 10 * TOL * max(1.0, abs(w))})
    return graph.with_units(changed if u.id == unit.id else u for u in graph.units)


@settings(max_examples=150, deadline=None)
@given(layered_graphs(), layered_graphs(), st.integers(0, 2**16))
def test_sorting_gives_vf2s_answer(graph: NeuronGraph, other: NeuronGraph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = canonicalize(graph).graph
    twin = canonicalize(rescale_hidden(permute_hidden(graph, rng), rng)).graph
    assert isomorphic(a, twin, TOL) and _vf2(a, twin, TOL)
    changed = moved(twin, rng)
    assert isomorphic(a, changed, TOL) == _vf2(a, changed, TOL)
    unrelated = canonicalize(other).graph
    assert isomorphic(a, unrelated, TOL) == _vf2(a, unrelated, TOL)


def near_duplicates(first: float, second: float, order: tuple[int, int]) -> NeuronGraph:
    """Two ReLUs of x a third of the tolerance apart, read by the output with weights
    ``first`` and ``second``, listed in ``order``."""
    x = Unit("input:0", UnitKind.INPUT)
    hidden = [
        Unit("h0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0}),
        Unit("h1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0 + TOL / 3}),
    ]
    out = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"h0": first, "h1": second})
    return NeuronGraph((x, hidden[order[0]], hidden[order[1]], out))


def test_near_duplicate_units_are_left_to_vf2() -> None:
    a = near_duplicates(1.0, 2.0, (0, 1))
    assert isomorphic(a, near_duplicates(1.0, 2.0, (1, 0)), TOL)
    # Each hidden unit may stand for the other: the output's weights decide, swapped.
    assert isomorphic(a, near_duplicates(2.0, 1.0, (0, 1)), TOL)
    assert not isomorphic(a, near_duplicates(1.0, 3.0, (1, 0)), TOL)


@pytest.mark.parametrize(("n_inputs", "width"), [(8, 256), (166, 1000)])
def test_a_wide_twin_is_matched_without_vf2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n_inputs: int, width: int
) -> None:
    """Many sources and readers too, as in a transformer's MLP block (d -> width -> d): a
    sort on a sum of the weights left ten units to a window there, and VF2 ran for minutes."""
    rng = np.random.default_rng(0)
    x = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(n_inputs)]
    w1 = rng.normal(size=(width, n_inputs)) / np.sqrt(n_inputs)
    b1 = 0.1 * rng.normal(size=width)
    n_outputs = 2 if n_inputs < 16 else n_inputs
    w2 = rng.normal(size=(n_outputs, width)) / np.sqrt(width)

    def network(order: np.ndarray, scale: np.ndarray) -> NeuronGraph:
        hidden = [
            Unit(
                f"h{k}",
                UnitKind.HIDDEN,
                Activation.RELU,
                float(b1[j] * scale[j]),
                {f"input:{i}": float(w1[j, i] * scale[j]) for i in range(n_inputs)},
            )
            for k, j in enumerate(order)
        ]
        outputs = [
            Unit(
                f"out:{o}",
                UnitKind.OUTPUT,
                Activation.IDENTITY,
                0.0,
                {f"h{k}": float(w2[o, j] / scale[j]) for k, j in enumerate(order)},
            )
            for o in range(n_outputs)
        ]
        name = f"m{len(stored)}"
        stored.append(name)
        db.index(NeuronGraph((*x, *hidden, *outputs)), name=name)
        return stored_graph(db.store, name)

    stored: list[str] = []
    with connect(str(tmp_path / "s.db")) as db:
        a = network(np.arange(width), np.ones(width))
        b = network(rng.permutation(width), rng.uniform(0.5, 2.0, width))

    def refuse(*args: object) -> bool:
        raise AssertionError("a twin of distinct units needs no VF2")

    monkeypatch.setattr(equivalence, "_vf2", refuse)
    assert isomorphic(a, b, TOL)
    assert not isomorphic(a, moved(b, rng), TOL)

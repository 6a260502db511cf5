"""The sparse-Jacobian basis: sparser, same function, and it finds a basis that was hidden."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from circuitql.analysis.basis import (
    HEATMAP_CELLS,
    Search,
    basis_agreement,
    heatmap_svg,
    jacobian_count,
    layered,
    sparse_basis,
)
from circuitql.analysis.degeneracy import Probes
from circuitql.cli import main
from circuitql.errors import CircuitQLError
from circuitql.export import save
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.zoo.demo import random_mlp

PROBES = Probes(n=256)
SEARCH = Search(max_steps=600)


def mlp_graph(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activations: Sequence[Activation]
) -> NeuronGraph:
    """A layered graph straight from matrices (zero weights are no edge); the last layer is
    the outputs. Built by hand because loaders fold identity-activation layers away."""
    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(weights[0].shape[1])]
    previous = [u.id for u in units]
    for layer, (w, b, act) in enumerate(zip(weights, biases, activations, strict=True)):
        last = layer == len(weights) - 1
        ids = [f"out:{r}" if last else f"fc{layer + 1}:{r}" for r in range(len(w))]
        units += [
            Unit(
                uid,
                UnitKind.OUTPUT if last else UnitKind.HIDDEN,
                act,
                float(b[r]),
                {src: float(w[r, c]) for c, src in enumerate(previous) if w[r, c]},
            )
            for r, uid in enumerate(ids)
        ]
        previous = ids
    return NeuronGraph(tuple(units))


def sparse_and_rotated(seed: int, n: int = 6) -> tuple[NeuronGraph, NeuronGraph]:
    """A network with diagonal Jacobians, and the same function with a rotated hidden basis.

    Layer 1 is linear, so rotating its basis by Q can be written into the weights: W1 -> Q W1,
    b1 -> Q b1, W2 -> W2 Q^T. Both networks compute the same function; only the rotated one's
    Jacobians L0->L1 (Q W1) and L1->L2 (diag(relu') W2 Q^T) are dense.
    """
    rng = np.random.default_rng(seed)
    w1 = np.diag(rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.5, n))
    w2 = np.diag(rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.5, n))
    w3, b1, b2 = rng.normal(size=(2, n)), 0.1 * rng.normal(size=n), 0.1 * rng.normal(size=n)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    acts = (Activation.IDENTITY, Activation.RELU, Activation.IDENTITY)
    sparse = mlp_graph((w1, w2, w3), (b1, b2, np.zeros(2)), acts)
    rotated = mlp_graph((q @ w1, w2 @ q.T, w3), (q @ b1, b2, np.zeros(2)), acts)
    return sparse, rotated


def layered_random() -> NeuronGraph:
    spec = random_mlp(np.random.default_rng(0), 4, [8, 6], 2)
    return mlp_graph(
        [layer.weight for layer in spec.layers],
        [layer.bias for layer in spec.layers],
        [Activation.RELU, Activation.RELU, Activation.IDENTITY],
    )


def test_search_sparsifies_and_keeps_the_function() -> None:
    graph = layered_random()
    report = sparse_basis(graph, probes=PROBES, search=SEARCH)
    assert [p.name for p in report.pairs] == ["L0->L1", "L1->L2", "L2->L3"]
    hidden_to_hidden = report.pairs[1]
    assert sorted(hidden_to_hidden.rotations) == [1, 2]
    assert hidden_to_hidden.after > hidden_to_hidden.before + 0.05
    assert all(p.after >= p.before for p in report.pairs)
    assert report.max_error < 1e-5
    for pair in report.pairs:
        for r in pair.rotations.values():
            np.testing.assert_allclose(r @ r.T, np.eye(len(r)), atol=1e-10)


def test_a_rotated_sparse_network_gets_its_sparsity_back() -> None:
    sparse, rotated = sparse_and_rotated(seed=1)
    x = PROBES.sample(6)
    np.testing.assert_allclose(sparse.evaluate(x), rotated.evaluate(x), atol=1e-12)
    original = sparse_basis(sparse, probes=PROBES, search=Search(max_steps=1))
    found = sparse_basis(rotated, probes=PROBES, search=SEARCH)
    for target, pair in zip(original.pairs[:2], found.pairs[:2], strict=True):
        assert pair.before < target.before - 0.2  # the rotation hid the sparsity...
        assert pair.after > target.before - 0.02  # ...and the search found it again
    assert found.max_error < 1e-5
    # Layer 1's basis is the one both Jacobians point to.
    (layer1, _layer2) = found.layers
    assert layer1.layer == 1 and layer1.matches and layer1.agreement > layer1.chance


def test_basis_agreement_ignores_order_and_sign() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    shuffled = (q * rng.choice([-1.0, 1.0], 7)[:, None])[rng.permutation(7)]
    assert basis_agreement(q, shuffled) == pytest.approx(1.0)
    other, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    assert basis_agreement(q, other) < 0.9


def test_only_strictly_layered_networks() -> None:
    units = (
        Unit("input:0", UnitKind.INPUT),
        Unit("h:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0}),
        Unit("out:0", UnitKind.OUTPUT, inputs={"h:0": 1.0, "input:0": 1.0}),
    )
    with pytest.raises(CircuitQLError, match="reads input:0 from layer 0"):
        layered(NeuronGraph(units))


def test_heatmaps_are_svg_and_stay_small(tmp_path: Path) -> None:
    report = sparse_basis(layered_random(), probes=PROBES, search=Search(max_steps=20))
    files = report.write_heatmaps(tmp_path)
    assert len(files) == 2 * len(report.pairs)
    root = ET.parse(files[0]).getroot()
    assert root.tag.endswith("svg")
    big = heatmap_svg(np.random.default_rng(0).random((128, 784)), "big")
    rects = ET.fromstring(big).findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) <= HEATMAP_CELLS * HEATMAP_CELLS + 11  # cells, frame, colour bar
    assert "block-averaged" in big


def test_cli_basis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(random_mlp(np.random.default_rng(3), 3, [5, 4], 2), tmp_path / "m.onnx")
    code = main(
        [
            "basis",
            str(path),
            "--json",
            "--steps",
            "40",
            "--probes",
            "64",
            "--out",
            str(tmp_path / "heat"),
        ]
    )
    out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0 and data["max_error"] < 1e-5
    assert [j["jacobian"] for j in data["jacobians"]] == ["L0->L1", "L1->L2", "L2->L3"]
    assert len(data["heatmaps"]) == 6 and all(Path(p).is_file() for p in data["heatmaps"])


def test_every_jacobian_searched_is_announced() -> None:
    graph = layered_random()
    heard: list[None] = []
    report = sparse_basis(
        graph, probes=PROBES, search=Search(max_steps=5), on_jacobian=lambda: heard.append(None)
    )
    assert len(heard) == len(report.pairs) == jacobian_count(graph) > 0

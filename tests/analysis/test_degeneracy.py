"""The degeneracy report counts exactly what was planted, layer by layer."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from circuitql.analysis.degeneracy import Probes, degeneracy, numerical_rank
from circuitql.cli import main
from circuitql.export import DenseLayer, MLPSpec, save
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.load import load

TINY = 1e-6


def planted() -> MLPSpec:
    """3 inputs, two ReLU layers, 2 outputs, with every degeneracy planted once or twice.

    fc1:3 is fc1:0 doubled (a duplicate), fc1:4 has no inputs (a constant); fc2:3 reads only
    ReLUs, through negative weights, with a negative bias (dead); fc2:4 feeds nothing
    (unused); three weights are 1e-6 (negligible): into fc2:1, fc2:5 and out:1.
    """
    w1 = np.array(
        [[0.9, -0.4, 0.3], [-0.5, 0.8, 0.6], [0.7, 0.5, -0.9], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        dtype=np.float32,
    )
    b1 = np.array([0.1, 0.2, -0.1, 0.0, 0.5], dtype=np.float32)
    w1[3], b1[3] = 2 * w1[0], 2 * b1[0]
    w2 = np.array(
        [
            [0.8, -0.6, 0.5, 0.4, 0.7],
            [-0.3, 0.9, TINY, 0.2, -0.4],
            [0.6, 0.4, -0.7, -0.5, 0.3],
            [-0.5, -0.8, -0.6, -0.9, 0.0],
            [0.5, 0.6, 0.4, 0.3, -0.2],
            [0.4, TINY, 0.8, 0.2, 0.1],
        ],
        dtype=np.float32,
    )
    b2 = np.array([0.1, 0.3, -0.2, -0.1, 0.0, 0.0], dtype=np.float32)
    w3 = np.array(
        [[1.0, -0.7, 0.5, 0.6, 0.0, 0.9], [-0.4, 0.8, TINY, 0.3, 0.0, -0.6]], dtype=np.float32
    )
    b3 = np.array([0.0, 0.1], dtype=np.float32)
    return MLPSpec(
        3,
        (
            DenseLayer("fc1", w1, b1),
            DenseLayer("fc2", w2, b2),
            DenseLayer("out", w3, b3, "identity"),
        ),
    )


def planted_module() -> nn.Module:
    """The planted network as torch layers named like the spec's, so the ids agree."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in planted().layers:
        linear = nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight))
            linear.bias.copy_(torch.from_numpy(layer.bias))
        modules[layer.name] = linear
        if layer.activation == "relu":
            modules[f"{layer.name}_relu"] = nn.ReLU()
    return nn.Sequential(modules)


def rank_deficient() -> NeuronGraph:
    """Five ReLUs on two inputs whose activations span only three directions.

    a, b, e never switch off on the probes (bias 10 or more), so they are linear in x and fire
    together; c - d = x0 - 0.3 x1 (relu(z) - relu(-z) = z) is in the same plane.
    """
    rows = {
        "h:a": ({"input:0": 1.0}, 10.0),
        "h:b": ({"input:1": 1.0}, 10.0),
        "h:c": ({"input:0": 1.0, "input:1": -0.3}, 0.0),
        "h:d": ({"input:0": -1.0, "input:1": 0.3}, 0.0),
        "h:e": ({"input:0": 1.0, "input:1": 0.5}, 20.0),
    }
    units = [Unit("input:0", UnitKind.INPUT), Unit("input:1", UnitKind.INPUT)]
    units += [
        Unit(uid, UnitKind.HIDDEN, Activation.RELU, bias, inputs)
        for uid, (inputs, bias) in rows.items()
    ]
    units.append(Unit("out:0", UnitKind.OUTPUT, inputs={uid: 1.0 for uid in rows}))
    return NeuronGraph(tuple(units))


def test_planted_degeneracies_are_counted_exactly() -> None:
    report = degeneracy(load(planted_module(), input_dim=3).graph, name="planted")
    layers = {d.layer: d for d in report.layers}
    assert sorted(layers) == [1, 2, 3]
    first, second, out = layers[1], layers[2], layers[3]
    assert (first.raw, first.dead, first.unused, first.merged) == (
        5,
        ("fc1:4",),
        (),
        (("fc1:3", "fc1:0"),),
    )
    assert (second.raw, second.dead, second.unused, second.merged) == (
        6,
        ("fc2:3",),
        ("fc2:4",),
        (),
    )
    assert (out.raw, out.dead, out.unused, out.merged) == (2, (), (), ())
    assert [len(d.pruned) for d in (first, second, out)] == [0, 2, 1]
    # fc2:5 reads ReLUs through positive weights only, with a positive bias, and so does
    # fc2:1 once the duplicate fc1:3 merges into fc1:0: they never reach their kink.
    assert (first.linear, second.linear, out.linear) == ((), ("fc2:1", "fc2:5"), ())
    assert [d.kept for d in (first, second, out)] == [3, 2, 2]
    # The unused fc2:4 is a direction of layer 2's activations, but not an effective one.
    assert [d.rank for d in (first, second, out)] == [3, 5, 2]
    assert [d.effective for d in (first, second, out)] == [3, 2, 2]
    assert (report.raw, report.effective) == (13, 7)
    # The duplicate fires exactly when its original does.
    assert any(g.units == ("fc1:0", "fc1:3") for g in first.firing_groups)


def test_rank_and_identical_firing() -> None:
    probes = Probes(n=400)
    (layer, _out) = degeneracy(rank_deficient(), probes=probes).layers
    assert (layer.raw, layer.kept, layer.rank, layer.effective) == (5, 5, 3, 3)
    assert [(g.units, g.fires_on) for g in layer.firing_groups] == [(("h:a", "h:b", "h:e"), 400)]


def test_numerical_rank_ignores_scale_and_constants() -> None:
    x = np.random.default_rng(0).normal(size=(50, 2))
    values = np.column_stack(
        [x[:, 0], 1e-4 * x[:, 1], 1e4 * (x[:, 0] - x[:, 1]), np.full(50, 7.0), np.zeros(50)]
    )
    assert numerical_rank(values) == 2
    assert numerical_rank(np.zeros((10, 3))) == 0


def test_probes_are_reproducible_and_mixed() -> None:
    probes = Probes(n=101, std=3.0, box=(0.0, 1.0), seed=4)
    x = probes.sample(6)
    assert x.shape == (101, 6)
    np.testing.assert_array_equal(x, probes.sample(6))
    assert (x[:50] < 0).any() and ((x[50:] >= 0) & (x[50:] <= 1)).all()


def test_report_json_and_text() -> None:
    report = degeneracy(load(planted_module(), input_dim=3).graph, name="planted")
    data = json.loads(json.dumps(report.to_json()))
    assert data["raw_units"] == 13 and data["effective_units"] == 7
    assert data["layers"][0]["merged"] == [{"unit": "fc1:3", "into": "fc1:0"}]
    assert data["layers"][1]["pruned_weights"] == 2
    text = report.text()
    assert "planted: 7 effective of 13 units" in text
    assert "layer 1 merged: fc1:3 -> fc1:0" in text and "layer 2 unused: fc2:4" in text


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_on_a_file_and_on_an_indexed_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save(planted(), tmp_path / "planted.safetensors")
    code, out, _ = run(capsys, "degeneracy", str(path), "--json")
    assert code == 0 and json.loads(out)["effective_units"] == 7
    store = str(tmp_path / "s.db")
    assert run(capsys, "index", str(path), "--store", store, "--name", "p")[0] == 0
    code, out, _ = run(capsys, "degeneracy", "p", "--store", store, "--probes", "64")
    assert code == 0 and "p: 7 effective of 13 units" in out


def test_cli_explains_what_it_cannot_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import circuitql

    store = str(tmp_path / "s.db")
    with circuitql.connect(store) as db:
        db.index(planted_module(), name="in-memory", input_dim=3)
    code, _, err = run(capsys, "degeneracy", "in-memory", "--store", store)
    assert code == 2 and "not a file" in err and "fix:" in err
    code, _, err = run(capsys, "degeneracy", "nothing-here", "--store", store)
    assert code == 2 and "no model named" in err

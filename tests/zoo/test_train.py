"""The trained zoo: deterministic training, files with metadata that index, the reference
networks as files, and the census plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

import circuitql
from circuitql.analysis.census import PLOT_HEIGHT, Census, CensusRow
from circuitql.cli import main
from circuitql.errors import CircuitQLError
from circuitql.export import save, spec_from_graph
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.load import load
from circuitql.language.library import builtin_library, reference_network
from circuitql.zoo.build import Plan, build_zoo, plan_for
from circuitql.zoo.train import TASKS, Member, TrainConfig, Trained, train_group
from docs.showcase import FIT, by, survey

META_KEYS = {
    "task",
    "circuit",
    "width",
    "depth",
    "seed",
    "optimizer",
    "init",
    "final_loss",
    "steps",
}


def tiny_plan(seeds: tuple[int, ...] = (0,), steps: int = 60) -> Plan:
    return Plan(
        tasks=("min", "abs"),
        multipliers=(1,),
        seeds=seeds,
        optimizers=("adam",),
        inits=("default",),
        train=TrainConfig(steps=steps),
    )


def weights(trained: list[Trained]) -> list[np.ndarray]:
    return [layer.weight for t in trained for layer in t.spec.layers]


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = build_zoo(tmp_path / "a", tiny_plan(), jobs=1)
    second = build_zoo(tmp_path / "b", tiny_plan(), jobs=2)
    assert len(first.written) == 4  # min and abs, depths 1 and 2
    for a, b in zip(first.written, second.written, strict=True):
        assert a.relative_to(tmp_path / "a") == b.relative_to(tmp_path / "b")
        assert a.read_bytes() == b.read_bytes()


def test_another_seed_gives_another_network() -> None:
    task = TASKS["abs"]
    zero, one = (
        train_group(task, 1, "sgd", [Member(2, s, "kaiming")], TrainConfig(steps=5)) for s in (0, 1)
    )
    assert not np.array_equal(weights(zero)[0], weights(one)[0])


def test_mini_batches_are_drawn_from_each_networks_seed() -> None:
    task, config = TASKS["max"], TrainConfig(steps=20, batch_size=16)
    members = [Member(2, 0, "default"), Member(1, 1, "kaiming")]
    first, second = (train_group(task, 1, "sgd", members, config) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(weights(first), weights(second), strict=True))
    assert first[0].spec.meta["batch_size"] == 16
    full = train_group(task, 1, "sgd", members, TrainConfig(steps=20))
    assert not np.array_equal(weights(first)[0], weights(full)[0])


def test_a_network_trains_the_same_alone_as_padded_in_a_group() -> None:
    """Narrow members train inside wider tensors; their zero padding must change nothing."""
    task, config = TASKS["min"], TrainConfig(steps=100)
    alone = train_group(task, 2, "adam", [Member(1, 3, "small")], config)
    grouped = train_group(
        task,
        2,
        "adam",
        [Member(4, 0, "default"), Member(1, 3, "small"), Member(2, 5, "kaiming")],
        config,
    )
    for a, b in zip(weights(alone), weights(grouped[1:2]), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["identity", "min", "less_than", "xor"])
def test_a_saved_network_computes_what_was_trained(name: str) -> None:
    """The exported spec, cut from padded tensors, has the loss recorded in its metadata,
    and training lowered that loss."""
    task = TASKS[name]
    depth = task.depths[-1]
    members = [Member(w, 0, "default") for w in task.widths(depth, (1, 2))]
    untrained = train_group(task, depth, "adam", members, TrainConfig(steps=0))
    trained = train_group(task, depth, "adam", members, TrainConfig(steps=300))
    x = task.inputs(torch.Generator().manual_seed(0), TrainConfig().n_samples)
    target = task.target(x).numpy()
    for before, after in zip(untrained, trained, strict=True):
        out = after.spec.evaluate(x.numpy().astype(np.float64))[:, 0]
        if task.output == "sigmoid":
            p = np.clip(out, 1e-12, 1 - 1e-12)
            loss = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))
        else:
            loss = np.mean((out - target) ** 2)
        assert loss == pytest.approx(after.spec.meta["final_loss"], rel=1e-3, abs=1e-7)
        assert after.spec.meta["final_loss"] < before.spec.meta["final_loss"]


def test_a_tiny_zoo_indexes_with_its_metadata(tmp_path: Path) -> None:
    report = build_zoo(tmp_path / "zoo", tiny_plan(seeds=(0, 1)), jobs=1)
    assert not report.diverged
    assert main(["index", str(tmp_path / "zoo"), "--store", str(tmp_path / "db"), "--quiet"]) == 0
    with circuitql.connect(str(tmp_path / "db")) as db:
        models = {m.name: m for m in db.models()}
        assert len(models) == len(report.written) == 8
        info = models["min/w1-d1-adam-default-s1"]
        assert set(info.meta) >= META_KEYS
        assert (info.meta["task"], info.meta["width"], info.meta["depth"], info.meta["seed"]) == (
            "min",
            1,
            1,
            1,
        )
        counted = db.census("abs", "meta.task")
    assert [(r.group, r.models) for r in counted.rows] == [("abs", 4), ("min", 4)]


def test_the_showcase_surveys_every_network_of_a_trained_zoo(tmp_path: Path) -> None:
    # docs/showcase.py writes the README's tables: each network asked for its task's circuit,
    # exactly and approximately, with its training outcome.
    build_zoo(tmp_path / "zoo", tiny_plan(seeds=(0, 1)), jobs=1)
    assert main(["index", str(tmp_path / "zoo"), "--store", str(tmp_path / "db"), "--quiet"]) == 0
    with circuitql.connect(str(tmp_path / "db")) as db:
        networks = {n.name: n for n in survey(db)}
        infos = {m.name: m for m in db.models()}
        found = {
            m.model
            for task in ("min", "abs")
            for m in db.query(f"MATCH {task} IN MODELS '{task}/*'")
        }
    assert set(networks) == set(infos)
    for name, n in networks.items():
        assert n.fit == (infos[name].meta["final_loss"] < FIT)
        assert n.found == (name in found) and (not n.exact or n.found)
        assert (n.faithfulness is not None) == n.found
    rows = by(list(networks.values()), lambda n: n.task)
    assert [row[:2] for row in rows] == [["abs", "4"], ["min", "4"]]


def test_diverged_networks_are_reported_not_saved(tmp_path: Path) -> None:
    plan = Plan(
        tasks=("is_even",),
        multipliers=(1,),
        seeds=(0,),
        optimizers=("sgd",),
        inits=("default",),
        train=TrainConfig(steps=30, lr=1e6),
    )
    report = build_zoo(tmp_path, plan, jobs=1)
    assert report.diverged and not report.written
    assert not any(tmp_path.rglob("*.safetensors"))


def test_zoo_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command end to end, on a plan small enough for a test; a bad size is a user
    error."""
    monkeypatch.setattr("circuitql.zoo.build.plan_for", lambda size, seed: tiny_plan((seed,)))
    assert main(["zoo", "build", str(tmp_path), "--seed", "5", "--jobs", "1"]) == 0
    assert "wrote 4 models" in capsys.readouterr().out
    assert (tmp_path / "min" / "w1-d2-adam-default-s5.safetensors").is_file()
    monkeypatch.undo()
    assert main(["zoo", "build", str(tmp_path), "--size", "huge"]) == 2
    assert "unknown zoo size" in capsys.readouterr().err


def test_plan_sizes() -> None:
    small, default = len(plan_for("small")), len(plan_for("default"))
    assert small < default < len(plan_for("large"))
    assert len(plan_for("3")) == 3 * default
    assert plan_for("default", seed=7).seeds[0] == 7
    with pytest.raises(CircuitQLError, match="unknown zoo size"):
        plan_for("huge")


@pytest.mark.parametrize("suffix", [".safetensors", ".onnx"])
def test_every_reference_network_round_trips_through_a_file(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    for name in builtin_library().names:
        graph = reference_network(name)
        spec = spec_from_graph(graph, {"circuit": name})
        loaded = load(save(spec, tmp_path / f"{name}{suffix}")).graph
        x = rng.uniform(-20, 20, (64, len(graph.inputs)))
        expected = graph.evaluate(x)
        np.testing.assert_allclose(
            loaded.evaluate(x),
            expected,
            rtol=1e-5,
            atol=1e-5 * np.abs(expected).max(),
            err_msg=name,
        )
        assert set(spec.meta["units"].values()) == {
            u.id for u in graph.units if u.kind is not UnitKind.INPUT
        }


def test_a_graph_whose_outputs_mix_activations_is_refused() -> None:
    graph = NeuronGraph(
        (
            Unit("input:0", UnitKind.INPUT),
            Unit("y", UnitKind.OUTPUT, Activation.RELU, 0.0, {"input:0": 1.0}),
            Unit("z", UnitKind.OUTPUT, Activation.SIGMOID, 0.0, {"input:0": 1.0}),
        )
    )
    with pytest.raises(ValueError, match="mix activations"):
        spec_from_graph(graph)


def test_reference_zoo_holds_each_circuit(tmp_path: Path) -> None:
    """``zoo reference`` writes every library circuit, and the census finds each one where
    it was wired (the census's ground truth), drawn as a plot."""
    store, plot = str(tmp_path / "db"), tmp_path / "census.svg"
    assert main(["zoo", "reference", str(tmp_path / "ref")]) == 0
    assert len(list((tmp_path / "ref").glob("*.safetensors"))) == len(builtin_library().names)
    assert main(["index", str(tmp_path / "ref"), "--store", store, "--quiet"]) == 0
    with circuitql.connect(store) as db:
        for circuit in builtin_library().names:
            counted = db.census(circuit, "meta.circuit", models=circuit)
            assert [(r.group, r.with_circuit) for r in counted.rows] == [(circuit, 1)]
    assert (
        main(["census", "min", "--by", "meta.circuit", "--store", store, "--plot", str(plot)]) == 0
    )
    assert len(bars(plot)) == len(builtin_library().names)


def bars(svg: Path) -> list[ET.Element]:
    root = ET.parse(svg).getroot()
    return [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "bar"]


def test_census_plot_draws_one_bar_per_group(tmp_path: Path) -> None:
    census = Census(
        "min",
        "meta.width",
        (CensusRow("1", 0, 8), CensusRow("2", 3, 6), CensusRow("4 & <more>", 5, 5)),
    )
    found = bars(census.plot(tmp_path / "min.svg"))
    assert [float(b.get("height", "nan")) for b in found] == [0.0, PLOT_HEIGHT / 2, PLOT_HEIGHT]
    text = (tmp_path / "min.svg").read_text()
    assert "3/6" in text and "4 &amp; &lt;more&gt;" in text
    with pytest.raises(CircuitQLError, match=r"\.svg or \.png"):
        census.plot(tmp_path / "min.jpg")
    assert not (tmp_path / "min.jpg").exists()


def test_census_plot_is_written_as_png_too(tmp_path: Path) -> None:
    pytest.importorskip("cairosvg", reason="PNG needs the render extra")
    census = Census("min", "meta.width", (CensusRow("1", 1, 2),))
    assert census.plot(tmp_path / "min.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kept_ids_must_number_rows() -> None:
    """Keeping ids writes ``fc1:3`` as row 3 of layer fc1: a gap would shift every later row
    and the ground truth would name the wrong neurons, so it is refused."""
    graph = NeuronGraph(
        (
            Unit("input:0", UnitKind.INPUT),
            Unit("fc1:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0}),
            Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:1": 1.0}),
        )
    )
    with pytest.raises(ValueError, match="do not number rows"):
        spec_from_graph(graph, keep_ids=True)
    assert "units" in spec_from_graph(graph).meta

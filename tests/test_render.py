"""Pictures of real matches and models, read back as XML: every unit, edge and label that the
picture promises is checked in the file that was written."""

from __future__ import annotations

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from circuitql.api import Database, connect
from circuitql.cli import main
from circuitql.engine.results import Match
from circuitql.errors import CircuitQLError
from circuitql.export import save
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.picture import Svg
from circuitql.render import (
    MAX_EDGES,
    NEGATIVE,
    POSITIVE,
    draw_graph,
    draw_model,
    weight_text,
)
from circuitql.store.base import stored_graph
from circuitql.zoo.demo import build_demo_zoo, random_mlp

NS = {"svg": "http://www.w3.org/2000/svg"}
ACASXU = Path(__file__).resolve().parents[1].parent / "shared" / "zoo" / "acasxu"
ACASXU_1_1 = ACASXU / "ACASXU_experimental_v2a_1_1.onnx"


def abs_host(path: Path) -> Path:
    """A random 4-10-10-2 MLP with abs wired into it: fc1:0 = relu(1.3 x0),
    fc1:1 = relu(-1.3 x0), and fc2:0 reads only those two, with 0.8 each."""
    spec = random_mlp(np.random.default_rng(3), 4, [10, 10], 2)
    fc1, fc2, out = spec.layers
    w1, b1, w2, b2 = fc1.weight.copy(), fc1.bias.copy(), fc2.weight.copy(), fc2.bias.copy()
    w1[:2], b1[:2] = [[1.3, 0, 0, 0], [-1.3, 0, 0, 0]], 0.0
    w2[0], b2[0] = 0.0, 0.0
    w2[0, :2] = 0.8
    layers = (
        dataclasses.replace(fc1, weight=w1, bias=b1),
        dataclasses.replace(fc2, weight=w2, bias=b2),
        out,
    )
    return save(dataclasses.replace(spec, layers=layers), path)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    build_demo_zoo(root / "demo", n_random=2)
    abs_host(root / "demo" / "hosts" / "abs_host.safetensors")
    return root


@pytest.fixture(scope="module")
def store_path(zoo: Path) -> str:
    path = str(zoo / "store.db")
    with connect(path) as db:
        assert not db.index_paths([zoo / "demo"]).failed
    return path


@pytest.fixture
def db(store_path: str) -> Iterator[Database]:
    with connect(store_path) as database:
        yield database


def first(db: Database, query: str) -> Match:
    return next(iter(db.query(query)))


def written(svg: Svg, path: Path) -> ET.Element:
    """Save, then parse what is on disk: the file is what a user gets."""
    svg.save(path)
    return ET.parse(path).getroot()


def units(root: ET.Element) -> dict[str, ET.Element]:
    return {
        g.get("data-id", ""): g
        for g in root.iter(f"{{{NS['svg']}}}g")
        if "unit" in (g.get("class") or "").split()
    }


def edges(root: ET.Element) -> list[ET.Element]:
    return [
        p for p in root.iter(f"{{{NS['svg']}}}path") if "edge" in (p.get("class") or "").split()
    ]


def texts(root: ET.Element, cls: str) -> list[str]:
    return [
        t.text or ""
        for t in root.iter(f"{{{NS['svg']}}}text")
        if cls in (t.get("class") or "").split()
    ]


def check_edges_follow_graph(root: ET.Element, graph: NeuronGraph) -> None:
    """Every edge drawn is an edge of the graph with its weight, coloured by its sign."""
    for path in edges(root):
        src, dst = path.get("data-src", ""), path.get("data-dst", "")
        weight = float(path.get("data-weight", "nan"))
        assert graph[dst].inputs[src] == weight
        assert path.get("stroke") == (POSITIVE if weight >= 0 else NEGATIVE)
        assert ("pos" if weight >= 0 else "neg") in (path.get("class") or "").split()


def test_abs_match_is_drawn_with_units_edges_and_labels(db: Database, tmp_path: Path) -> None:
    match = first(db, "MATCH abs IN MODELS 'circuits/abs'")
    assert match.graph is not None
    root = written(match.draw(), tmp_path / "abs.svg")
    drawn = units(root)
    assert set(drawn) == {"input:0", "fc1:0", "fc1:1", "out:0"}
    assert drawn["fc1:0"].get("data-activation") == "relu"
    assert drawn["out:0"].get("data-kind") == "output"
    assert all(drawn[u].find("svg:polyline", NS) is not None for u in ("fc1:0", "fc1:1"))
    assert len(edges(root)) == match.graph.n_edges == 4
    assert sorted(p.get("stroke") for p in edges(root)) == sorted([POSITIVE] * 3 + [NEGATIVE])
    check_edges_follow_graph(root, match.graph)
    assert set(texts(root, "label")) == {"x = input:0", "p = fc1:0", "n = fc1:1", "y = out:0"}
    assert sorted(texts(root, "weight")) == ["+1", "+1", "+1", "-1"]
    assert texts(root, "title") == [f"abs in circuits/abs (error {match.error:.1e})"]
    assert match.draw()._repr_svg_() == (tmp_path / "abs.svg").read_text()


def test_min_match_draws_its_skip_connection_as_a_curve(db: Database, tmp_path: Path) -> None:
    match = first(db, "MATCH min IN MODELS 'circuits/*'")
    assert match.graph is not None and match.model == "circuits/min_skip"
    root = written(match.draw(), tmp_path / "min.svg")
    assert set(units(root)) == set(match.bindings.values())
    assert len(edges(root)) == match.graph.n_edges
    check_edges_follow_graph(root, match.graph)
    skip = [
        p
        for p in edges(root)
        if p.get("data-src") == match.bindings["a"] and p.get("data-dst") == match.bindings["y"]
    ]
    assert len(skip) == 1 and " Q" in (skip[0].get("d") or "")
    assert set(texts(root, "label")) == {f"{v} = {u}" for v, u in match.bindings.items()}
    assert sorted(texts(root, "weight")) == sorted(
        weight_text(w) for u in match.graph.units for w in u.inputs.values()
    )


def test_whole_model_with_a_match_highlighted(db: Database, tmp_path: Path) -> None:
    match = first(db, "MATCH abs IN MODELS 'hosts/*'")
    assert dict(match.bindings) == {"x": "input:0", "p": "fc1:0", "n": "fc1:1", "y": "fc2:0"}
    graph = stored_graph(db.store, "hosts/abs_host")
    root = written(match.draw(db), tmp_path / "host.svg")
    drawn = units(root)
    assert set(drawn) == {u.id for u in graph.units}
    bound = {uid for uid, g in drawn.items() if "bound" in (g.get("class") or "").split()}
    assert bound == set(match.bindings.values())
    assert {drawn[u].get("opacity") for u in drawn if u not in bound} == {"0.45"}
    check_edges_follow_graph(root, graph)
    assert len(edges(root)) == graph.n_edges
    in_match = [p for p in edges(root) if "bound" in (p.get("class") or "").split()]
    assert {(p.get("data-src"), p.get("data-dst")) for p in in_match} == {
        ("input:0", "fc1:0"),
        ("input:0", "fc1:1"),
        ("fc1:0", "fc2:0"),
        ("fc1:1", "fc2:0"),
    }
    thinnest_bound = min(float(p.get("stroke-width", 0)) for p in in_match)
    faint = [p for p in edges(root) if p not in in_match]
    assert all(float(p.get("stroke-width", 0)) < thinnest_bound for p in faint)
    assert {p.get("stroke-opacity") for p in faint} == {"0.15"}
    assert len(texts(root, "weight")) == 4  # only the match's own edges carry weights
    labels = set(texts(root, "label"))
    assert {"x = input:0", "p = fc1:0", "n = fc1:1", "y = fc2:0", "fc1:5", "out:1"} <= labels
    assert "canonical form" in texts(root, "title")[0]


def test_whole_model_without_a_match(db: Database, tmp_path: Path) -> None:
    graph = stored_graph(db.store, "random/mlp0")
    root = written(draw_model(db.store, "random/mlp0"), tmp_path / "mlp0.svg")
    assert set(units(root)) == {u.id for u in graph.units}
    assert len(edges(root)) == graph.n_edges
    check_edges_follow_graph(root, graph)
    assert texts(root, "weight") == []  # 446 edges: labels would hide the picture
    assert set(texts(root, "header")) == {"input", "fc1", "fc2", "out"}


def test_columns_are_ordered_to_avoid_crossings() -> None:
    """Hidden units listed against their inputs' order are drawn in their inputs' order."""
    graph = NeuronGraph(
        (
            Unit("input:0", UnitKind.INPUT),
            Unit("input:1", UnitKind.INPUT),
            Unit("h:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:1": 1.0}),
            Unit("h:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": -2.0}),
            Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.5, {"h:0": 1.0, "h:1": 1.0}),
        )
    )
    root = ET.fromstring(draw_graph(graph).text)
    y = {
        uid: float(circle.get("cy", "nan"))
        for uid, g in units(root).items()
        for circle in g.iterfind("svg:circle", NS)
    }
    assert y["input:0"] < y["input:1"] and y["h:1"] < y["h:0"]
    assert "b +0.5" in texts(root, "bias")


def test_acasxu_whole_model_stays_small(tmp_path: Path) -> None:
    if not ACASXU_1_1.exists():
        pytest.skip(f"{ACASXU_1_1} is not here")
    with connect(str(tmp_path / "acas.db")) as db:
        db.index(ACASXU_1_1, name="acas")
        graph = stored_graph(db.store, "acas")
        root = written(draw_model(db.store, "acas"), tmp_path / "acas.svg")
    assert (tmp_path / "acas.svg").stat().st_size < 2_000_000
    assert set(units(root)) == {u.id for u in graph.units}
    drawn = edges(root)
    assert 0.9 * MAX_EDGES <= len(drawn) <= 1.1 * MAX_EDGES < graph.n_edges
    check_edges_follow_graph(root, graph)
    assert texts(root, "weight") == []
    assert set(texts(root, "label")) == {u.id for u in (*graph.inputs, *graph.outputs)}
    assert re.search(rf"of {graph.n_edges:,} edges drawn", texts(root, "caption")[0])


def test_png_is_written(db: Database, tmp_path: Path) -> None:
    pytest.importorskip("cairosvg", reason="PNG needs the render extra")
    path = first(db, "MATCH abs IN MODELS 'circuits/abs'").draw().save(tmp_path / "abs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_refuses_other_formats_and_missing_folders(db: Database, tmp_path: Path) -> None:
    svg = draw_model(db.store, "circuits/abs")
    with pytest.raises(CircuitQLError, match=r"\.svg or \.png"):
        svg.save(tmp_path / "abs.jpg")
    with pytest.raises(CircuitQLError, match="folder that exists"):
        svg.save(tmp_path / "no" / "such" / "abs.svg")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_show_draws_matches_and_models(
    store_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abs.svg"
    code, printed, _ = run(
        capsys, "show", "MATCH abs IN MODELS 'circuits/*'", "--out", str(out), "--store", store_path
    )
    assert code == 0 and f"wrote {out}" in printed
    assert set(texts(ET.parse(out).getroot(), "label")) == {
        "x = input:0",
        "p = fc1:0",
        "n = fc1:1",
        "y = out:0",
    }

    code, _, _ = run(
        capsys,
        "show",
        "MATCH abs IN MODELS 'hosts/*'",
        "--model-context",
        "--out",
        str(out),
        "--store",
        store_path,
        "--match",
        "1",
    )
    assert code == 0
    drawn = units(ET.parse(out).getroot())
    assert len(drawn) == len(stored_graph_of(store_path, "hosts/abs_host"))
    assert sum("bound" in (g.get("class") or "") for g in drawn.values()) == 4

    code, printed, _ = run(capsys, "show", "random/mlp1", "--out", str(out), "--store", store_path)
    assert code == 0 and "model random/mlp1" in printed
    assert len(units(ET.parse(out).getroot())) == len(stored_graph_of(store_path, "random/mlp1"))


def test_cli_show_asks_when_a_name_is_a_model_and_a_circuit(
    store_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    shutil.copy(store_path, store)
    x = Unit("input:0", UnitKind.INPUT)
    h = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.25, {x.id: 1.5})
    with connect(store) as db:
        db.index(
            NeuronGraph((x, h, Unit("out:0", UnitKind.OUTPUT, inputs={h.id: 2.0}))), name="abs"
        )
    out = tmp_path / "x.svg"
    code, _, err = run(capsys, "show", "abs", "--out", str(out), "--store", store)
    assert code == 2 and "both a model" in err and "--model" in err and not out.exists()
    code, printed, _ = run(capsys, "show", "abs", "--model", "--out", str(out), "--store", store)
    assert code == 0 and "model abs" in printed
    code, printed, _ = run(capsys, "show", "abs", "--query", "--out", str(out), "--store", store)
    assert code == 0 and "model abs" not in printed and "abs" in printed
    code, _, err = run(capsys, "show", "absx", "--model", "--out", str(out), "--store", store)
    assert code == 2 and "no model named 'absx'" in err


def stored_graph_of(store_path: str, model: str) -> NeuronGraph:
    with connect(store_path) as db:
        return stored_graph(db.store, model)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("show", "abs", "--out", "abs.jpg"), r"\.svg or \.png"),
        (("show", "random/mlp9", "--out", "x.svg"), "neither a model"),
        (
            ("show", "MATCH abs IN MODELS 'circuits/abs'", "--match", "2", "--out", "x.svg"),
            "no match 2",
        ),
        (("show", "MATCH abs(", "--out", "x.svg"), ""),
    ],
)
def test_cli_show_user_errors_exit_2(
    store_path: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    argv = tuple(str(tmp_path / a) if a.endswith((".jpg", ".svg")) else a for a in argv)
    code, _, err = run(capsys, *argv, "--store", store_path)
    assert code == 2 and err.startswith("error:")
    assert re.search(message, err)
    assert not list(tmp_path.iterdir())

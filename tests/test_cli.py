"""The circuitql command on real files: indexing, listing, tokens, and bad input."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from circuitql.api import connect
from circuitql.cli import main
from circuitql.engine.explain import Explain
from circuitql.errors import CircuitQLError
from circuitql.export import save
from circuitql.language.library import PUBLIC_NAMES
from circuitql.store.sqlite import SCHEMA_VERSION
from circuitql.zoo.demo import build_demo_zoo, random_mlp

ACASXU = Path(__file__).resolve().parents[1].parent / "shared" / "zoo" / "acasxu"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    build_demo_zoo(tmp_path / "zoo", n_random=3)
    return tmp_path / "zoo"


def test_index_a_folder_of_every_format(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    code, out, _ = run(capsys, "index", str(zoo), "--store", store)
    assert code == 0
    assert "indexed 7 model(s)" in out and "0 failed" in out
    code, out, _ = run(capsys, "models", "--store", store, "--json")
    models = {m["name"]: m for m in json.loads(out)}
    assert set(models) == {
        "circuits/abs",
        "circuits/identity",
        "circuits/min_skip",
        "circuits/negation",
        "random/mlp0",
        "random/mlp1",
        "random/mlp2",
    }
    assert {Path(m["source"]).suffix for m in models.values()} == {".pt", ".safetensors", ".onnx"}
    code, out, _ = run(capsys, "tokens", "circuits/abs", "--store", store)
    assert out.strip() == "[x>(+1-1)] [relu(+0-1)b0>(+1-0) relu(+1-0)b0>(+1-0)] [y(+2-0)b0]"
    code, out, _ = run(capsys, "tokens", "circuits/abs", "--store", store, "--by-layer")
    assert out.splitlines()[0] == "L0 [x>(+1-1)]"


def test_indexing_twice_changes_nothing(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.db"
    run(capsys, "index", str(zoo), "--store", str(store))
    before = sqlite3.connect(store).execute("SELECT count(*), sum(n_neurons) FROM models")
    before_rows = before.fetchall()
    code, out, _ = run(capsys, "index", str(zoo), "--store", str(store))
    assert code == 0 and "0 model(s)" in out and "7 already indexed" in out
    after = sqlite3.connect(store).execute("SELECT count(*), sum(n_neurons) FROM models")
    assert after.fetchall() == before_rows


def test_bad_files_exit_2_and_write_nothing_for_them(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    spec = random_mlp(np.random.default_rng(0), 3, [4], 1)
    truncated = save(spec, bad / "truncated.safetensors")
    truncated.write_bytes(truncated.read_bytes()[:40])
    torch.save(torch.nn.Linear(2, 2), bad / "pickled.pt")
    (bad / "pickled.json").write_text((bad / "truncated.json").read_text())
    (bad / "garbage.onnx").write_bytes(b"not a model")
    nan = save(spec, bad / "nan.pt")
    weights = torch.load(nan, weights_only=True)
    weights["fc1.weight"][0, 0] = float("nan")
    torch.save(weights, nan)
    store = tmp_path / "s.db"
    code, out, err = run(capsys, "index", str(bad), "--store", str(store))
    assert code == 2
    assert "4 failed" in out
    for name in ("truncated.safetensors", "pickled.pt", "garbage.onnx", "nan.pt"):
        assert name in err
    assert "Traceback" not in err
    code, out, _ = run(capsys, "models", "--store", str(store))
    assert "no models indexed yet" in out


def test_unwritable_store_is_a_user_error(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "index", str(zoo), "--store", str(tmp_path / "no" / "s.db"))
    assert code == 2
    assert "does not exist" in err and "mkdir" in err
    assert not (tmp_path / "no").exists()


def test_unknown_model_suggests_close_names(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    code, _, err = run(capsys, "tokens", "circuits/ab", "--store", store)
    assert code == 2 and "circuits/abs" in err


def test_name_only_for_one_file(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    code, _, err = run(capsys, "index", str(zoo), "--name", "x", "--store", store)
    assert code == 2 and "--name" in err
    code, out, _ = run(
        capsys,
        "index",
        str(zoo / "circuits" / "abs.safetensors"),
        "--name",
        "my-abs",
        "--store",
        store,
    )
    assert code == 0 and "my-abs: [x>(+1-1)]" in out


def test_indexing_one_wide_model_shows_the_start_of_its_network_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = random_mlp(np.random.default_rng(0), 4, [300, 300], 2)
    path = save(spec, tmp_path / "wide.safetensors")
    code, out, _ = run(capsys, "index", str(path), "--store", str(tmp_path / "s.db"))
    (line,) = [line for line in out.splitlines() if line.startswith("wide: ")]
    assert code == 0 and len(line) < 600 and line.endswith("--by-layer` prints it all)")
    code, whole, _ = run(capsys, "tokens", "wide", "--store", str(tmp_path / "s.db"))
    assert whole.startswith(line[len("wide: ") :].split(" ...")[0])


def test_store_from_environment(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCUITQL_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    code, _, _ = run(capsys, "index", str(zoo / "circuits"))
    assert code == 0 and (tmp_path / "env.db").exists()


def test_delete(zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo / "circuits"), "--store", store)
    assert run(capsys, "delete", "abs", "--store", store)[0] == 0
    code, _, err = run(capsys, "delete", "abs", "--store", store)
    assert code == 2 and "no model named 'abs'" in err


@pytest.mark.skipif(not ACASXU.is_dir(), reason="the shared ACAS Xu zoo is not beside the repo")
def test_index_the_acasxu_zoo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    code, out, _ = run(capsys, "index", str(ACASXU), "--store", store, "--quiet")
    assert code == 0 and "indexed 45 model(s)" in out
    code, out, _ = run(
        capsys, "tokens", "ACASXU_experimental_v2a_1_1", "--store", store, "--by-layer"
    )
    lines = out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("L0 [") and lines[-1].startswith("L7 [")
    assert lines[-1].count("y(") == 5
    code, out, _ = run(
        capsys,
        "compare",
        "ACASXU_experimental_v2a_1_1",
        "ACASXU_experimental_v2a_2_3",
        "--store",
        store,
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["equivalent"] is False
    assert result["hidden_neurons"][0] > 250 and set(result["circuits"]) >= {"abs", "min"}


def test_worker_processes_give_the_same_store(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = zoo / "random" / "broken.onnx"
    bad.write_bytes(b"garbage")
    results = []
    for jobs in ("1", "2"):
        store = str(tmp_path / f"jobs{jobs}.db")
        code, out, err = run(capsys, "index", str(zoo), "--store", store, "--jobs", jobs)
        assert code == 2 and "broken.onnx" in err and "1 failed" in out
        results.append(json.loads(run(capsys, "models", "--store", store, "--json")[1]))
    for models in results:
        for m in models:
            m.pop("source")
    assert results[0] == results[1]


def test_query_library_compare_census(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    code, out, _ = run(capsys, "query", "MATCH abs", "--store", store)
    assert code == 0
    assert "circuits/abs  abs  error=0.00e+00  x=input:0, p=fc1:0, n=fc1:1, y=out:0" in out
    assert out.strip().endswith("1 match(es)")
    code, out, _ = run(capsys, "query", "min", "--store", store, "--json")
    result = json.loads(out)
    assert result["query"] == "min"
    assert [m["model"] for m in result["matches"]] == ["circuits/min_skip"]
    assert result["matches"][0]["bindings"] == {
        "a": "input:0",
        "b": "input:1",
        "d": "fc1:0",
        "y": "out:0",
    }
    assert set(result["explain"]["counts"]) == {"lookup", "grow", "match", "fit", "verify"}
    code, out, _ = run(capsys, "query", "EXPLAIN MATCH identity", "--store", store)
    assert "anchor" in out and "verify:" in out
    code, out, _ = run(capsys, "library")
    assert code == 0 and out.splitlines()[0].startswith("abs ")
    code, out, _ = run(capsys, "library", "abs")
    assert "CIRCUIT abs(x) -> y" in out
    code, out, _ = run(capsys, "compare", "circuits/abs", "circuits/identity", "--store", store)
    assert "not equivalent" in out and "detector_pair" in out
    code, out, _ = run(capsys, "census", "abs", "--by", "meta.kind", "--store", store, "--json")
    groups = {g["group"]: (g["with_circuit"], g["models"]) for g in json.loads(out)["groups"]}
    assert groups["random"] == (0, 2)
    code, out, _ = run(capsys, "census", "abs", "--by", "meta.kind", "--exact", "--store", store)
    assert code == 0 and "with abs exactly" in out.splitlines()[0]


def test_index_tokens_and_library_print_json(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    (zoo / "circuits" / "junk.onnx").write_bytes(b"not a model")
    code, out, _ = run(capsys, "index", str(zoo), "--store", store, "--json")
    report = json.loads(out)
    assert code == 2 and len(report["indexed"]) == 7 and report["unchanged"] == []
    assert [f["path"].endswith("junk.onnx") for f in report["failed"]] == [True]
    assert all(m["canonical_error"] is not None for m in report["indexed"])
    # The same network under another name is kept under that name too.
    abs_file = str(zoo / "circuits" / "abs.safetensors")
    code, out, _ = run(capsys, "index", abs_file, "--store", store, "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)["indexed"]] == ["abs"]
    code, out, _ = run(capsys, "index", abs_file, "--store", store, "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)["unchanged"]] == ["abs"]
    # Another network under a stored name: refused, or with --replace put in its place.
    other = str(zoo / "circuits" / "negation.safetensors")
    code, _, err = run(capsys, "index", other, "--name", "abs", "--store", store)
    assert code == 2 and "--replace" in err
    code, out, _ = run(
        capsys, "index", other, "--name", "abs", "--store", store, "--json", "--replace"
    )
    assert code == 0 and [m["source"] for m in json.loads(out)["indexed"]] == [other]
    code, out, _ = run(capsys, "tokens", "circuits/abs", "--store", store, "--json")
    tokens = json.loads(out)
    assert (
        tokens["layers"][0] == "[x>(+1-1)]"
        and " ".join(tokens["layers"]) == (tokens["network_string"])
    )
    code, out, _ = run(capsys, "library", "--json")
    assert "min" in json.loads(out)
    code, out, _ = run(capsys, "library", "abs", "--json")
    assert "CIRCUIT abs(x) -> y" in json.loads(out)["text"]


def test_doctor_reports_the_installation_the_store_and_the_limits(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo / "circuits"), "--store", store)
    code, out, _ = run(capsys, "doctor", "--store", store, "--json")
    report = json.loads(out)
    assert code == 0 and report["store"]["opens"] == "yes"
    assert report["store"]["models"] == 4
    assert report["store"]["schema version"] == SCHEMA_VERSION
    assert report["packages"]["numpy"] != "not installed"
    assert report["limits"]["units per layer"] == "8,192"
    code, out, _ = run(capsys, "doctor", "--store", str(tmp_path / "missing.db"))
    assert code == 0 and "opens  no: there is no store here" in out
    assert not (tmp_path / "missing.db").exists()


def test_results_say_exactly_what_was_asked(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    # The smaller LIMIT wins, whichever side gives it.
    both = {"MATCH detector_pair LIMIT 1": "5", "MATCH detector_pair LIMIT 5": "1"}
    for text, flag in both.items():
        code, out, _ = run(capsys, "query", text, "--store", store, "--limit", flag)
        assert out.strip().endswith("1 match(es)")
    # --no-circuits compares no circuits, and says nothing about them.
    code, out, _ = run(
        capsys, "compare", "circuits/abs", "circuits/identity", "--store", store, "--no-circuits"
    )
    assert code == 0 and "circuits in both" not in out
    code, out, _ = run(
        capsys,
        "compare",
        "circuits/abs",
        "circuits/identity",
        "--store",
        store,
        "--no-circuits",
        "--json",
    )
    assert json.loads(out)["circuits"] is None
    # A census names the models, and counts any circuit MATCH takes.
    code, out, _ = run(
        capsys, "census", "abs >> identity | abs", "--by", "meta.kind", "--store", store, "--json"
    )
    (circuits,) = [g for g in json.loads(out)["groups"] if g["group"] == "(none)"]
    assert circuits["holders"] == ["circuits/abs"] and circuits["with_circuit"] == 1
    code, out, _ = run(capsys, "census", "abs", "--by", "meta.kind", "--store", store)
    assert "(none): circuits/abs" in out.splitlines()
    code, out, _ = run(
        capsys, "query", "EXPLAIN COUNT MODELS WITH abs GROUP BY meta.kind", "--store", store
    )
    assert "anchor" in out and "verify:" in out  # the census's search, explained
    code, out, _ = run(
        capsys, "query", "EXPLAIN COMPARE 'circuits/abs' WITH 'circuits/abs'", "--store", store
    )
    plan = out[out.index("plan:") :].splitlines()
    assert code == 0 and len(plan) == 5 and plan[4].startswith("  4. circuits: MATCH each")
    code, out, _ = run(capsys, "query", "EXPLAIN SHOW CIRCUITS 'min*'", "--store", store)
    assert out.splitlines()[-1].startswith("plan: the library's circuit names matched")
    code, out, _ = run(capsys, "query", "SHOW CIRCUITS 'min*'", "--store", store)
    assert "plan:" not in out
    # In JSON, EXPLAIN adds the plan beside what the statement prints.
    code, out, _ = run(capsys, "query", "EXPLAIN SHOW CIRCUITS 'min*'", "--store", store, "--json")
    shown = json.loads(out)
    assert "min" in shown["circuits"] and shown["explain"].startswith("plan: the library's")
    code, out, _ = run(
        capsys,
        "query",
        "EXPLAIN COMPARE 'circuits/abs' WITH 'circuits/abs'",
        "--store",
        store,
        "--json",
    )
    assert json.loads(out)["equivalent"] and "4. circuits" in json.loads(out)["explain"]
    # Tables as CSV: a row per model, per match, per group; nested values as JSON text.
    code, out, _ = run(capsys, "models", "--store", store, "--csv")
    models = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and "circuits/abs" in {m["name"] for m in models}
    assert json.loads(models[0]["normal_form"])["version"] >= 1
    code, out, _ = run(capsys, "query", "MATCH abs", "--store", store, "--csv")
    (match,) = [m for m in csv.DictReader(io.StringIO(out)) if m["model"] == "circuits/abs"]
    assert match["bound.x"] == "input:0" and float(match["error"]) < 1e-6
    code, out, _ = run(capsys, "census", "abs", "--by", "meta.kind", "--store", store, "--csv")
    groups = {g["group"]: g for g in csv.DictReader(io.StringIO(out))}
    assert json.loads(groups["(none)"]["holders"]) == ["circuits/abs"]
    # ... and per model: whether it holds the circuit, and its best match.
    code, out, _ = run(
        capsys, "census", "abs", "--by", "meta.kind", "--store", store, "--csv", "--per-model"
    )
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["circuits/abs"]["holds"] == "True" and rows["circuits/abs"]["exact"] == "True"
    assert rows["random/mlp0"]["holds"] == "False" and rows["random/mlp0"]["error"] == ""
    code, out, _ = run(
        capsys, "census", "abs", "--by", "meta.kind", "--store", store, "--per-model"
    )
    assert any(line.startswith("circuits/abs") and "exact" in line for line in out.splitlines())
    with connect(store) as db:
        frame = db.census("abs", "meta.kind").to_pandas()
        assert len(frame) == 7 and frame["holds"].sum() == 1
        assert frame.set_index("model").loc["circuits/abs", "bindings"]["p"] == "fc1:0"
    code, _, err = run(capsys, "query", "SHOW CIRCUITS", "--store", store, "--csv")
    assert code == 2 and "--json" in err
    # In Jupyter: tables, with names escaped.
    with connect(store) as db:
        table = db.census("abs", "meta.kind")._repr_html_()
        assert "<td>circuits/abs</td>" in table and table.count("<tr>") == 3
        compared = db.compare("circuits/abs", "random/mlp0", circuits=False)._repr_html_()
        assert compared.startswith("<pre>circuits/abs vs random/mlp0")
    # A misspelt census key is an error listing the keys there are, not one "(none)" group.
    code, _, err = run(capsys, "census", "abs", "--by", "meta.kidn", "--store", store)
    assert code == 2 and "'meta.kidn'" in err and "meta.kind" in err
    with connect(store) as db:
        assert repr(db) == f"<circuitql.Database sqlite:///{tmp_path / 's.db'}>"
        page = db._repr_html_()
        assert "<td>circuits/abs</td>" in page and ": 7 model(s)</caption>" in page
        (match,) = db.query("MATCH abs")
        shown = match._repr_html_()
        assert "<caption>abs in circuits/abs</caption>" in shown and "<svg" in shown
        assert "<td>faithfulness</td><td>0</td>" in shown
        assert match.to_dict()["bindings"] == {
            "x": "input:0",
            "p": "fc1:0",
            "n": "fc1:1",
            "y": "out:0",
        }
        assert json.loads(json.dumps(match.to_dict())) == match.to_dict()
        results = db.query("MATCH detector_pair")
        first = next(results)
        rows = results.to_records()  # the one read, then the rest
        assert rows[0]["model"] == first.model and len(rows) > 1
        assert {"model", "circuit", "error", "exact", "bound.x"} <= set(rows[0])
        frame = db.query("MATCH detector_pair").to_pandas()
        assert list(frame["model"]) == [r["model"] for r in rows]
        monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
        with pytest.raises(CircuitQLError, match="pandas is not installed"):
            db.query("MATCH abs").to_pandas()


def test_query_errors_exit_2(zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo / "circuits"), "--store", store)
    code, _, err = run(capsys, "query", "MATCH abss", "--store", store)
    assert code == 2 and "did you mean 'abs'" in err and "^" in err
    code, _, err = run(capsys, "query", "MATCH abs LIMIT", "--store", store)
    assert code == 2 and "line 1" in err
    code, _, err = run(capsys, "compare", "abs", "nope", "--store", store)
    assert code == 2 and "no model named 'nope'" in err
    code, _, err = run(capsys, "library", "ab")
    assert code == 2 and "abs" in err


def test_compare_a_network_with_its_permuted_rescaled_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = random_mlp(np.random.default_rng(5), 4, [6, 5], 2)
    rng = np.random.default_rng(6)
    first, second = spec.layers[0], spec.layers[1]
    perm = rng.permutation(6)
    k = rng.uniform(0.3, 3.0, 6)
    copy = type(spec)(
        4,
        (
            type(first)(first.name, first.weight[perm] * k[:, None], first.bias[perm] * k),
            type(second)(second.name, second.weight[:, perm] / k, second.bias),
            spec.layers[2],
        ),
    )
    store = str(tmp_path / "s.db")
    save(spec, tmp_path / "zoo" / "a.safetensors")
    save(copy, tmp_path / "zoo" / "b.onnx")
    run(capsys, "index", str(tmp_path / "zoo"), "--store", store)
    code, out, _ = run(capsys, "compare", "a", "b", "--store", store, "--json", "--no-circuits")
    result = json.loads(out)
    assert code == 0 and result["equivalent"] is True
    assert result["shared_hidden_neurons"] == result["hidden_neurons"][0] == 11
    with connect(store, create=False) as db:
        heard: list[str] = []
        db.compare("a", "b", on_circuit=heard.append)
    assert heard == list(PUBLIC_NAMES)


def test_a_domain_is_stored_shown_and_changes_the_canonical_form(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    abs_file = str(zoo / "circuits" / "abs.safetensors")
    run(capsys, "index", abs_file, "--store", store)
    code, out, _ = run(capsys, "index", abs_file, "--store", store, "--domain", "-2:2")
    assert code == 0 and "indexed 1 model(s)" in out  # canonicalized again, not unchanged
    code, out, _ = run(capsys, "index", abs_file, "--store", store, "--domain", "-2:2")
    assert "1 already indexed" in out
    code, out, _ = run(capsys, "models", "--store", store)
    assert "[-2, 2]" in out.splitlines()[1]
    code, out, _ = run(capsys, "models", "--store", store, "--json")
    assert json.loads(out)[0]["normal_form"]["domain"] == [-2.0, 2.0]
    code, _, err = run(capsys, "index", abs_file, "--store", store, "--domain", "2:-2")
    assert code == 2 and "empty" in err and "Traceback" not in err
    code, out, _ = run(capsys, "query", "MATCH abs EXACT", "--store", store, "--json")
    assert [m["exact"] for m in json.loads(out)["matches"]] == [True]


def test_files_named_with_dots_index_under_their_names_and_errors_name_a_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "runs"
    for i in range(3):
        save(random_mlp(np.random.default_rng(i), 3, [4], 1), folder / f"mlp_s0.{i}.safetensors")
    (folder / "broken.0.pt").write_bytes(b"not a torch file")
    store = str(tmp_path / "s.db")
    code, out, err = run(capsys, "index", str(folder), "--store", store)
    assert code == 2 and "indexed 3 model(s)" in out and "1 failed" in out
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.count("broken.0.pt") == 1
    code, out, _ = run(capsys, "models", "--store", store, "--json")
    assert sorted(m["name"] for m in json.loads(out)) == [f"mlp_s0.{i}" for i in range(3)]


def test_an_argument_with_bytes_that_are_not_utf8_finds_the_name_stored_for_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A shell passes Latin-1 bytes as lone surrogates ("caf\udce9"); the file indexed from
    # that name is stored escaped, and the same argument finds it.
    folder = tmp_path / "zoo"
    save(random_mlp(np.random.default_rng(0), 2, [3], 1), folder / "caf\udce9.safetensors")
    store = str(tmp_path / "s.db")
    assert run(capsys, "index", str(folder), "--store", store)[0] == 0
    code, out, err = run(capsys, "tokens", "caf\udce9", "--store", store)
    assert code == 0 and "Traceback" not in err and out.startswith("[x>")
    code, _, err = run(capsys, "tokens", "caf\udce8", "--store", store)
    assert code == 2 and "did you mean caf\\xe9" in err and "Traceback" not in err


def test_a_query_past_its_deadline_says_it_is_partial(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    code, out, err = run(capsys, "query", "MATCH abs", "--store", store, "--timeout", "1e-9")
    assert code == 0 and "0 match(es)" in out
    assert "partial answer: the search stopped at its 1e-09 s deadline" in err
    code, out, _ = run(
        capsys, "query", "MATCH abs", "--store", store, "--json", "--timeout", "1e-9"
    )
    assert json.loads(out)["explain"]["partial"].startswith("the search stopped")
    code, out, err = run(capsys, "query", "MATCH abs TIMEOUT 5m", "--store", store)
    assert "1 match(es)" in out and "partial" not in err
    code, _, err = run(
        capsys, "census", "abs", "--by", "name", "--store", store, "--timeout", "1e-9"
    )
    assert code == 2 and "census could not finish" in err


@pytest.mark.parametrize(
    "command",
    [
        ["zoo", "demo"],
        ["zoo", "planted", "--quiet"],
        ["zoo", "reference"],
        ["zoo", "build", "--quiet"],
    ],
)
def test_a_folder_that_cannot_be_written_is_refused_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    code, _, err = run(capsys, *command[:2], str(blocked / "zoo"), *command[2:])
    assert code == 2 and "cannot write into this folder" in err and "Traceback" not in err


def test_basis_refuses_an_unwritable_out_folder_before_its_search(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    code, _, err = run(
        capsys,
        "basis",
        str(zoo / "circuits" / "abs.safetensors"),
        "--out",
        str(blocked / "heatmaps"),
    )
    assert code == 2 and "cannot write into this folder" in err


def test_zoo_planted_runs_as_the_readme_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "zoo", "planted", str(tmp_path / "zoo"))
    assert code == 0 and "ground truth in" in out


def test_check_compares_a_file_with_what_circuitql_reads_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    net = str(ACASXU / "ACASXU_experimental_v2a_1_1.onnx")
    code, out, _ = run(capsys, "check", net, "--probes", "500", "--domain", "-0.5:0.5")
    assert code == 0
    assert "loaded graph vs ONNX reference evaluator" in out and "argmin" in out
    code, out, _ = run(capsys, "check", net, "--probes", "500", "--json")
    report = json.loads(out)
    assert [c["compared"] for c in report["comparisons"]] == [
        "loaded graph vs ONNX reference evaluator",
        "canonical graph vs loaded graph",
    ]
    assert list(tmp_path.iterdir()) == []  # no store, nothing written
    code, _, err = run(capsys, "check", str(tmp_path / "absent.onnx"))
    assert code == 2 and "no such file" in err and "Traceback" not in err


def test_the_canonical_error_is_bounded_stored_and_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = str(ACASXU / "ACASXU_experimental_v2a_1_1.onnx")
    store = str(tmp_path / "s.db")
    code, out, err = run(capsys, "index", net, "--store", store, "--max-canonical-error", "1e-6")
    assert code == 0 and "note: ACASXU_experimental_v2a_1_1: pruning tightened" in err
    code, out, _ = run(
        capsys,
        "index",
        net,
        "--name",
        "again",
        "--store",
        store,
        "--max-canonical-error",
        "1e-6",
        "--json",
    )
    (tightened,) = json.loads(out)["tightened"]
    assert tightened["name"] == "again" and tightened["log"][0].startswith("tighten prune_tol")
    code, out, _ = run(capsys, "models", "--store", store, "--json")
    model, _again = json.loads(out)
    assert 0 < model["canonical_error"] <= 1e-6
    assert model["normal_form"]["max_error"] == 1e-6
    code, out, _ = run(capsys, "models", "--store", store)
    assert f"{model['canonical_error']:.1e}" in out.splitlines()[1]
    (log,) = sqlite3.connect(store).execute("SELECT canonical_log FROM models").fetchone()
    assert any(line.startswith("tighten prune_tol: 0.001 -> 0.0001") for line in json.loads(log))
    for bad in ("0", "-1", "nan", "inf", "abc"):
        with pytest.raises(SystemExit) as exit_:
            main(["index", net, "--store", store, "--max-canonical-error", bad])
        assert exit_.value.code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["query", "MATCH abs"],
        ["models"],
        ["tokens", "m"],
        ["census", "abs", "--by", "meta.task"],
        ["compare", "a", "b"],
        ["delete", "m"],
    ],
)
def test_a_read_command_never_creates_a_store(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # --store zooo.db used to create an empty store and answer "0 match(es)".
    real = tmp_path / "zoo.db"
    connect(str(real)).close()
    typo = tmp_path / "zooo.db"
    code, _, err = run(capsys, *command, "--store", str(typo))
    assert code == 2 and "there is no store here" in err and str(real) in err
    assert not typo.exists()


def test_slow_work_shows_progress_only_to_a_person_watching(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """query and census report candidates examined against found; the API hears the same
    numbers. No bar with --quiet, --json or --csv, nor when stderr is not a terminal."""
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    with connect(store, create=False) as db:
        heard: list[tuple[int, int]] = []
        explain = Explain()
        list(
            db.query(
                "MATCH detector_pair",
                explain=explain,
                on_progress=lambda done, total: heard.append((done, total)),
            )
        )
        assert heard and heard[-1] == (explain.counts["lookup"],) * 2
        assert all(d <= t for d, t in heard) and [d for d, _ in heard] == sorted(
            d for d, _ in heard
        )
        counted: list[tuple[int, int]] = []
        db.census("abs", "meta.kind", on_progress=lambda d, t: counted.append((d, t)))
        assert counted and counted[-1][0] == counted[-1][1] > 0
    code, _, err = run(capsys, "query", "MATCH abs", "--store", store)
    assert code == 0 and "candidate" not in err  # stderr is no terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    for argv in (
        ("query", "MATCH abs"),
        ("census", "abs", "--by", "meta.kind"),
        ("query", "COUNT MODELS WITH abs GROUP BY meta.kind"),
    ):
        code, out, err = run(capsys, *argv, "--store", store)
        assert code == 0 and "candidate" in err and "candidate" not in out
        for flag in ("--quiet", "--json", "--csv"):
            code, _, err = run(capsys, *argv, "--store", store, flag)
            assert code == 0 and "candidate" not in err, flag


def test_json_output_is_strict_json() -> None:
    """JSON has no infinity or NaN: a number that is not finite is written as null."""
    from circuitql.cli import _json

    text = _json({"error": math.inf, "rows": [1.5, -math.inf, {"x": math.nan}], "n": 3})
    assert json.loads(text) == {"error": None, "rows": [1.5, None, {"x": None}], "n": 3}


def test_a_name_held_by_another_network_fails_that_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """x.onnx and x.safetensors in one folder are both named x: the second is listed as
    failed, and every other file is indexed, in text and in --json."""
    folder = tmp_path / "zoo"
    save(random_mlp(np.random.default_rng(0), 3, [4], 1), folder / "x.onnx")
    save(random_mlp(np.random.default_rng(1), 3, [4], 1), folder / "x.safetensors")
    save(random_mlp(np.random.default_rng(2), 3, [4], 1), folder / "y.pt")
    store = str(tmp_path / "s.db")
    code, out, err = run(capsys, "index", str(folder), "--store", store, "--json")
    report = json.loads(out)
    assert code == 2 and {m["name"] for m in report["indexed"]} == {"x", "y"}
    (failed,) = report["failed"]
    assert failed["path"].endswith("x.safetensors") and "already stored" in failed["error"]
    code, out, err = run(capsys, "index", str(folder), "--store", store)
    assert code == 2 and "x.safetensors" in err and "2 already indexed, 1 failed" in out


def test_tables_escape_control_characters_from_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source path or a metadata value holding an escape sequence or a newline is shown
    escaped: it can neither retitle the terminal nor forge a row."""
    folder = tmp_path / "d\x1b]0;T\x07"
    path = save(random_mlp(np.random.default_rng(0), 3, [4], 1), folder / "m.safetensors")
    config = json.loads(path.with_suffix(".json").read_text())
    config["meta"] = {"opt": "x\nforged row"}
    path.with_suffix(".json").write_text(json.dumps(config))
    store = str(tmp_path / "s.db")
    run(capsys, "index", str(folder), "--store", store)
    code, out, _ = run(capsys, "models", "--store", store)
    assert code == 0 and "\x1b" not in out and "d\\x1b]0;T\\x07" in out
    code, out, _ = run(capsys, "census", "abs", "--by", "meta.opt", "--store", store)
    assert code == 0 and "x\\x0aforged row" in out and len(out.splitlines()) == 2


def test_compare_says_which_circuit_searches_stopped_at_their_deadline(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comparison whose library searches run out of time counts what they found, and says
    so, instead of passing the counts off as complete."""
    from circuitql.engine import search

    store = str(tmp_path / "s.db")
    run(capsys, "index", str(zoo), "--store", store)
    monkeypatch.setattr(search, "DEFAULT_TIMEOUT", 1e-9)
    code, out, _ = run(capsys, "compare", "circuits/abs", "random/mlp0", "--store", store, "--json")
    assert code == 0 and json.loads(out)["unfinished"] == list(PUBLIC_NAMES)
    code, out, _ = run(capsys, "compare", "circuits/abs", "random/mlp0", "--store", store)
    assert "searches stopped at their deadline" in out
    monkeypatch.undo()
    code, out, _ = run(capsys, "compare", "circuits/abs", "random/mlp0", "--store", store, "--json")
    assert json.loads(out)["unfinished"] == []
    # Its own deadline, given three ways: --timeout, TIMEOUT in COMPARE, timeout= in Python.
    code, out, _ = run(
        capsys,
        "compare",
        "circuits/abs",
        "random/mlp0",
        "--timeout",
        "1e-9",
        "--store",
        store,
        "--json",
    )
    assert code == 0 and json.loads(out)["unfinished"] == list(PUBLIC_NAMES)
    text = "COMPARE 'circuits/abs' WITH 'random/mlp0' TIMEOUT 0.001ms"
    code, out, _ = run(capsys, "query", text, "--store", store, "--json")
    assert code == 0 and json.loads(out)["unfinished"]
    with connect(store) as db:
        assert db.compare("circuits/abs", "random/mlp0", timeout=1e-9).unfinished
        with pytest.raises(CircuitQLError, match="finite number of seconds"):
            db.compare("circuits/abs", "random/mlp0", timeout=math.inf)


@pytest.mark.parametrize(
    ("given", "said"), [("0", "0 is not a positive number"), ("x", "'x' is not a whole number")]
)
def test_a_count_argument_that_is_not_a_positive_whole_number_is_refused_by_name(
    given: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["show", "abs", "--out", "x.svg", "--match", given])
    assert stopped.value.code == 2 and f"argument --match: {said}" in capsys.readouterr().err


def test_neo4j_import_needs_paths_and_the_other_actions_take_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "neo4j", "import", "--data-dir", str(tmp_path))
    assert code == 2 and "needs the model files" in err and "Traceback" not in err
    code, _, err = run(capsys, "neo4j", "status", "zoo", "--data-dir", str(tmp_path))
    assert code == 2 and "takes no paths" in err


def test_neo4j_import_refuses_a_data_directory_that_holds_a_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zoo: Path
) -> None:
    store_file = tmp_path / "data" / "databases" / "neo4j" / "neostore"
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(b"")
    code, _, err = run(capsys, "neo4j", "import", str(zoo), "--data-dir", str(tmp_path))
    assert code == 2 and "already holds a database" in err and "--data-dir" in err


def test_neo4j_import_refuses_a_port_in_use_before_writing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zoo: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        data_dir = tmp_path / "neo4j"
        code, _, err = run(
            capsys, "neo4j", "import", str(zoo), "--data-dir", str(data_dir), "--port", port
        )
    assert code == 2 and "already in use" in err
    assert not data_dir.exists()  # no CSV files, no database


def test_neo4j_import_refuses_a_short_password_before_preparing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zoo: Path
) -> None:
    # Neo4j refuses passwords under 8 characters when it starts, which comes last: the
    # check comes first, before a zoo is prepared for nothing.
    data_dir = tmp_path / "neo4j"
    code, out, err = run(
        capsys, "neo4j", "import", str(zoo), "--data-dir", str(data_dir), "--password", "short"
    )
    assert code == 2 and "at least 8 characters" in err and "--password" in err
    assert "indexed" not in out and not data_dir.exists()

"""Every ``--json`` document the command prints validates against its schema in
``circuitql/schemas``, every schema is documented in docs/json.md, and every command with a
``--json`` flag is run here: a new command, or a changed field, without a schema fails."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from circuitql.api import connect
from circuitql.cli import _parser, main
from circuitql.errors import CircuitQLError
from circuitql.indexer.canonical import Config
from circuitql.indexer.pipeline import IndexConfig
from circuitql.schemas import NAMES, SUFFIX, schema
from circuitql.zoo.demo import build_demo_zoo
from circuitql.zoo.perturbed import perturbed_zoo

SCHEMAS = Path(__file__).resolve().parents[1] / "circuitql" / "schemas"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "json.md"
# Approximate matches: a split detector (members) and hidden inputs of their own scales
# (input_scales).
PERTURBED = ("perturbed/split2-abs", "perturbed/gauge-min")
APPROXIMATE = ("MATCH abs", "MATCH min")


def _cases(zoo: Path, bad: Path, store: str, tmp: Path) -> list[tuple[str, list[str], int]]:
    """(schema, argv, exit code) in the order they run: the first ones fill the store."""
    abs_file = str(zoo / "circuits" / "abs.safetensors")
    s = ["--store", store]
    return [
        ("index", ["index", str(zoo), *s, "--json"], 0),
        ("index", ["index", str(zoo), str(bad), *s, "--json"], 2),  # unchanged, failed
        ("index", ["index", abs_file, "--name", "copy/abs", *s, "--json"], 0),
        ("models", ["models", *s, "--json"], 0),
        ("tokens", ["tokens", "circuits/abs", *s, "--json"], 0),
        ("match", ["query", "MATCH abs", *s, "--json"], 0),
        ("match", ["query", "EXPLAIN MATCH scale IN MODELS 'circuits/*'", *s, "--json"], 0),
        ("match", ["query", "MATCH min", *s, "--json"], 0),
        ("match", ["query", "MATCH abs IN MODELS 'random/*'", *s, "--json"], 0),
        ("match", ["query", "MATCH detector_pair", *s, "--json", "--timeout", "1e-9"], 0),
        ("census", ["query", "COUNT MODELS WITH abs GROUP BY name", *s, "--json"], 0),
        ("census", ["census", "abs", "--by", "meta.kind", *s, "--json"], 0),
        (
            "census",
            ["census", "abs", "--by", "name", "--exact", "--models", "circuits/*", *s, "--json"],
            0,
        ),
        ("library", ["library", "--json"], 0),
        ("library", ["query", "SHOW CIRCUITS", *s, "--json"], 0),
        ("library", ["query", "SHOW CIRCUITS 'none*'", *s, "--json"], 0),
        ("library-circuit", ["library", "abs", "--json"], 0),
        ("show-circuits-explained", ["query", "EXPLAIN SHOW CIRCUITS 'min*'", *s, "--json"], 0),
        ("compare", ["compare", "circuits/abs", "copy/abs", *s, "--json"], 0),
        ("compare", ["compare", "random/mlp0", "random/mlp1", "--no-circuits", *s, "--json"], 0),
        (
            "compare",
            ["query", "EXPLAIN COMPARE 'circuits/abs' WITH 'circuits/identity'", *s, "--json"],
            0,
        ),
        ("check", ["check", str(zoo / "random" / "mlp2.onnx"), "--probes", "200", "--json"], 0),
        ("check", ["check", abs_file, "--domain", "-2:2", "--probes", "200", "--json"], 0),
        (
            "check",
            [
                "check",
                str(zoo / "circuits" / "min_skip.onnx"),
                "--domain",
                "-1:1,0:2",
                "--probes",
                "200",
                "--json",
            ],
            0,
        ),
        ("doctor", ["doctor", *s, "--json"], 0),
        ("doctor", ["doctor", "--store", str(tmp / "missing.db"), "--json"], 0),
        ("degeneracy", ["degeneracy", "random/mlp0", *s, "--probes", "64", "--json"], 0),
        ("degeneracy", ["degeneracy", abs_file, "--probes", "64", "--json"], 0),
        (
            "basis",
            [
                "basis",
                "random/mlp0",
                *s,
                "--steps",
                "20",
                "--probes",
                "64",
                "--out",
                str(tmp / "heat"),
                "--json",
            ],
            0,
        ),
        ("basis", ["basis", abs_file, "--steps", "20", "--probes", "64", "--json"], 0),
        ("show", ["show", "abs", "--out", str(tmp / "abs.svg"), *s, "--json"], 0),
        ("show", ["show", "random/mlp0", "--out", str(tmp / "mlp0.svg"), *s, "--json"], 0),
    ]


def _strict_json(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity (which json.dumps writes) are refused."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


Printed = list[tuple[str, list[str], Any]]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Printed:
    """Every case run once, in order, on one store: (schema, argv, the JSON printed)."""
    tmp = tmp_path_factory.mktemp("json")
    zoo, bad, store = tmp / "zoo", tmp / "bad", str(tmp / "s.db")
    build_demo_zoo(zoo, n_random=3)
    bad.mkdir()
    (bad / "abs.safetensors").write_bytes((zoo / "circuits" / "abs.safetensors").read_bytes())
    config = json.loads((zoo / "circuits" / "abs.json").read_text())
    config["layers"][0]["input"] = 5
    (bad / "abs.json").write_text(json.dumps(config))
    out: Printed = []
    for name, argv, code in _cases(zoo, bad, store, tmp):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            got = main(argv)
        assert got == code, f"circuitql {' '.join(argv)} exited {got}: {stderr.getvalue()}"
        out.append((name, argv, _strict_json(stdout.getvalue())))
    return out


def test_every_document_validates(printed: Printed) -> None:
    errors = []
    for name, argv, doc in printed:
        validator = Draft202012Validator(schema(name))
        errors += [
            f"circuitql {' '.join(argv[:2])}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
    assert not errors, "\n".join(errors)


def test_a_changed_field_fails(printed: Printed) -> None:
    """The schemas are strict enough to notice drift: a new field, a field gone."""
    for name, argv, doc in printed:
        if name == "library":  # keys are circuit names: any name is allowed
            continue
        target = doc[0] if isinstance(doc, list) else doc
        if not isinstance(target, dict):
            continue
        validator = Draft202012Validator(schema(name))
        added = {**target, "renamed_field": 1}
        removed = dict(list(target.items())[1:])
        for changed in (added, removed):
            bad = [changed, *doc[1:]] if isinstance(doc, list) else changed
            assert not validator.is_valid(bad), f"circuitql {' '.join(argv[:2])}: not noticed"


def test_the_cases_reach_the_rarer_fields(printed: Printed) -> None:
    """The documents above hold what a schema is most likely to get wrong: optional and
    nullable fields, approximate matches, failures."""
    by = {name: [doc for n, _, doc in printed if n == name] for name in NAMES}
    index = by["index"]
    assert index[0]["indexed"] and index[1]["unchanged"] and index[1]["failed"]
    assert any(m["meta"] for m in by["models"][0])
    matches = [m for doc in by["match"] for m in doc["matches"]]
    assert any(m["params"] for m in matches) and any(m["variant"] for m in matches)
    assert any(doc["explain"]["models"] is not None for doc in by["match"])
    assert any(doc["explain"]["partial"] is not None for doc in by["match"])
    assert any(not doc["matches"] for doc in by["match"])
    assert "explain" in by["census"][0] and "explain" not in by["census"][1]
    assert by["library"][2] == {}
    compared = by["compare"]
    assert compared[0]["equivalent"] and compared[0]["sublayers"] and compared[0]["circuits"]
    assert compared[1]["circuits"] is None and "explain" in compared[2]
    domains = [doc["domain"] for doc in by["check"]]
    assert domains[0] is None and isinstance(domains[1][0], float)
    assert isinstance(domains[2][0], list)
    assert any(c["argmax_agreement"] is None for doc in by["check"] for c in doc["comparisons"])
    assert "models" in by["doctor"][0]["store"] and "models" not in by["doctor"][1]["store"]
    assert by["basis"][0]["heatmaps"] and not by["basis"][1]["heatmaps"]


@pytest.fixture(scope="module")
def approximate_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of circuits as training leaves them: only approximate matches."""
    store = str(tmp_path_factory.mktemp("approximate") / "s.db")
    with connect(store) as db:
        for model, graph, domain, _ in perturbed_zoo(0):
            if model in PERTURBED:
                db.config = IndexConfig(Config(domain=domain))
                db.index(graph, name=model)
    return store


def test_approximate_matches_validate(approximate_store: str) -> None:
    """A match's members and input_scales, as ``Match.to_json`` (what --json prints per
    match) gives them."""
    match = schema("match")
    validator = Draft202012Validator(
        {"$schema": match["$schema"], "$defs": match["$defs"], "$ref": "#/$defs/match"}
    )
    with connect(approximate_store, create=False) as db:
        docs = [m.to_json() for query in APPROXIMATE for m in db.query(query)]
    for doc in docs:
        validator.validate(_strict_json(json.dumps(doc)))
    assert docs and not any(doc["exact"] for doc in docs)
    assert any(doc["members"] for doc in docs) and any(doc["input_scales"] for doc in docs)


@pytest.mark.parametrize("query", APPROXIMATE)
def test_approximate_matches_print_as_json(approximate_store: str, query: str) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["query", query, "--store", approximate_store, "--json"])
    assert code == 0, stderr.getvalue()
    Draft202012Validator(schema("match")).validate(_strict_json(stdout.getvalue()))
    # Faithfulness is read from the store while it is open, for CSV rows as for JSON.
    with contextlib.redirect_stdout(io.StringIO()) as rows, contextlib.redirect_stderr(stderr):
        code = main(["query", query, "--store", approximate_store, "--csv"])
    assert code == 0 and "faithfulness" in rows.getvalue().splitlines()[0], stderr.getvalue()


def _json_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    """The command paths (``("query",)``, ``("zoo", "demo")``) that take ``--json``."""
    found = set()
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.add(path)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _json_commands(sub, (*path, name))
    return found


def test_every_command_with_json_is_covered(printed: Printed) -> None:
    commands = _json_commands(_parser())
    assert ("query",) in commands and ("basis",) in commands  # the walk finds them
    run = {tuple(argv[: len(c)]) for _, argv, _ in printed for c in commands}
    missing = sorted(" ".join(c) for c in commands - run)
    assert not missing, (
        f"commands with --json and no case in this test (add one, and a "
        f"schema if it prints a new document): {missing}"
    )
    assert {name for name, _, _ in printed} == set(NAMES), "a schema no command prints"


def test_every_schema_is_valid_named_and_listed() -> None:
    files = {p.name.removesuffix(SUFFIX) for p in SCHEMAS.glob("*" + SUFFIX)}
    assert files == set(NAMES)
    for name in NAMES:
        doc = schema(name)
        Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["$id"] == f"https://circuitql.dev/schemas/{name}{SUFFIX}"
        assert isinstance(doc["x-version"], int)
        assert f"version {doc['x-version']}" in doc["description"]


def _objects(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((where, node))
        for key, value in node.items():
            found += _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects(value, f"{where}/{i}")
    return found


def test_every_object_is_closed_and_shared_parts_agree() -> None:
    """Fixed fields: ``additionalProperties: false``; data keys: a schema for the values.
    A part two documents share (the model, EXPLAIN's counts) is the same in both."""
    shared: dict[str, tuple[str, Any]] = {}
    for name in NAMES:
        doc = schema(name)
        for where, obj in _objects(doc):
            extra = obj.get("additionalProperties")
            assert extra is False or isinstance(extra, dict), f"{name}{where}: open object"
            if extra is False:
                assert set(obj.get("required", [])) <= set(obj["properties"]), f"{name}{where}"
        for key, part in doc.get("$defs", {}).items():
            first = shared.setdefault(key, (name, part))
            assert first[1] == part, f"$defs/{key} differs in {first[0]} and {name}"


def test_docs_describe_every_schema() -> None:
    text = DOCS.read_text()
    for name in NAMES:
        assert f"circuitql/schemas/{name}{SUFFIX}" in text, f"{name}{SUFFIX} not in docs/json.md"
    documented = set(re.findall(r"circuitql/schemas/([\w-]+)\.schema\.json", text))
    assert documented <= set(NAMES), f"docs/json.md names missing schemas: {documented}"


def test_an_unknown_schema_is_a_user_error() -> None:
    with pytest.raises(CircuitQLError, match="no JSON schema named 'nope'") as err:
        schema("nope")
    assert err.value.fix is not None and "library-circuit" in err.value.fix

"""What only the embedded SQLite store does: files, paths, URIs and the schema version."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from circuitql.errors import StoreError
from circuitql.graph import LEAKY_SLOPE, Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import build_records
from circuitql.records import (
    BiasClass,
    EdgeRecord,
    IndexedModel,
    NeuronColumns,
    NeuronRecord,
    Signature,
)
from circuitql.store import sqlite as sqlite_module
from circuitql.store.adjacency import SCAN_VIEWS, Adjacency, AdjacencyCache, magnitudes_of
from circuitql.store.base import NeuronView, model_columns
from circuitql.store.sqlite import ENUM_CODES, SCHEMA_VERSION, SQLiteStore, stored_signature
from circuitql.store.uri import open_store
from tests.store.fakes import edges_of, fake_model


def _open_and_close(path: str | Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.close()
    return store


def test_a_missing_directory_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "z.db"
    with pytest.raises(StoreError) as err:
        SQLiteStore(path)
    assert str(path) in str(err.value)
    assert "mkdir" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory")
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "plain" / "z.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_a_directory_as_the_store_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="file permissions do not bind the superuser (or Windows)",
)
def test_an_unwritable_directory_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError, match="not writable") as err:
            SQLiteStore(locked / "z.db")
        assert str(locked / "z.db") in str(err.value)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    text = "these are my notes, not a database\n" * 100
    path.write_text(text)
    with pytest.raises(StoreError, match="not an SQLite database") as err:
        SQLiteStore(path)
    assert str(path) in str(err.value)
    assert path.read_text() == text


def test_another_programs_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="belongs to something else"):
        SQLiteStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("accounts",)]
    conn.close()


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    _open_and_close(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SQLiteStore(path)


def test_a_new_store_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    _open_and_close(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_models_persist_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "kept.db"
    model = fake_model("m1")
    store = SQLiteStore(path)
    first = store.write(model)
    store.close()

    reopened = SQLiteStore(path)
    try:
        assert reopened.models() == [first.model]
        assert reopened.neurons("m1") == list(model.neurons)
        assert edges_of(reopened, "m1") == list(model.edges)
        assert reopened.write(model).status == "unchanged"
    finally:
        reopened.close()


def _edges_on_rows(conn: sqlite3.Connection) -> None:
    """Version 9's layout: each neuron's edges on its row, both ways, neighbours in JSON;
    magnitudes as float64; members as JSON."""
    for column in ("input_ids", "input_weights", "output_ids", "output_weights"):
        conn.execute(f"ALTER TABLE neurons ADD COLUMN {column} BLOB NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE neurons ADD COLUMN output_fan_ins BLOB")
    graphs = conn.execute(
        "SELECT model_id, uids, in_ends, in_sources, in_weights, fan_ins FROM graphs"
    ).fetchall()
    for model_id, *columns in graphs:
        adjacency = Adjacency.from_uncompressed_row(*columns)
        for neuron, view in [
            (uid, adjacency.view(_RecordOf(uid)))  # type: ignore[arg-type]
            for uid in adjacency.uids
        ]:
            conn.execute(
                "UPDATE neurons SET input_ids = ?, input_weights = ?, output_ids = ?, "
                "output_weights = ?, output_fan_ins = ? WHERE model_id = ? AND uid = ?",
                (
                    json.dumps([src for src, _ in view.inputs]),
                    array("d", [w for _, w in view.inputs]).tobytes(),
                    json.dumps([dst for dst, _ in view.outputs]),
                    array("d", [w for _, w in view.outputs]).tobytes(),
                    bytes(view.target_fan_ins or ()),
                    model_id,
                    neuron,
                ),
            )
    conn.create_function(
        "float_magnitudes", 1, lambda blob: np.array(magnitudes_of(blob)).tobytes()
    )
    conn.execute("UPDATE neurons SET magnitudes = float_magnitudes(magnitudes)")
    conn.create_function(
        "json_members",
        2,
        lambda uid, m: m if isinstance(m, str) else json.dumps([[uid, struct.unpack("<d", m)[0]]]),
    )
    conn.execute("UPDATE neurons SET members = json_members(uid, members)")
    conn.execute("DROP TABLE graphs")


def _version_11_rows(conn: sqlite3.Connection) -> None:
    """Version 11's layout: ``graphs`` rows with the unit list as JSON text, the arrays as
    they are in memory and the weights float64; network strings as text; each neuron's
    token in a column of its own, indexed, and counted in ``token_stats``; enum columns as
    text; an index of layers, and no model's depth."""
    graphs = conn.execute(
        "SELECT model_id, uids, in_ends, in_sources, in_weights, fan_ins FROM graphs"
    ).fetchall()
    for model_id, *columns in graphs:
        adjacency = Adjacency.from_row(*columns)
        conn.execute(
            "UPDATE graphs SET uids = ?, in_ends = ?, in_sources = ?, in_weights = ? "
            "WHERE model_id = ?",
            (
                json.dumps(list(adjacency.uids)),
                adjacency.in_ends.tobytes(),
                adjacency.in_sources.tobytes(),
                adjacency.in_weights.astype("<f8").tobytes(),
                model_id,
            ),
        )
    conn.create_function("plain_text", 1, lambda blob: zlib.decompress(blob).decode())
    conn.execute("UPDATE models SET network_string = plain_text(network_string)")
    values = {
        column: {code: v for v, code in codes.items()} for column, codes in ENUM_CODES.items()
    }
    conn.create_function("text_of", 2, lambda column, code: values[column][code])
    conn.create_function("token_of", 7, lambda *fields: stored_signature(*fields).token)
    today = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'neurons'").fetchone()[0]
    for new, old in _CHANGED_IN_12:
        today = today.replace(new, old)
    conn.execute(today)
    conn.execute(
        "INSERT INTO neurons_v11 SELECT model_id, uid, layer, text_of('kind', kind), "
        "text_of('activation', activation), n_pos, n_neg, fan_in, "
        "text_of('bias_class', bias_class), out_pos, out_neg, magnitudes, bias, "
        "token_of(kind, activation, n_pos, n_neg, bias_class, out_pos, out_neg), members, "
        f"coalesce(alpha, {LEAKY_SLOPE!r}) FROM neurons ORDER BY rowid"
    )
    conn.execute("DROP TABLE neurons")
    conn.execute("ALTER TABLE neurons_v11 RENAME TO neurons")
    for columns in _VERSION_11_INDEXES:
        conn.execute(f"CREATE INDEX neurons_by_{columns}")
    conn.execute(
        "CREATE TABLE token_stats (token TEXT PRIMARY KEY, count INTEGER NOT NULL CHECK "
        "(count >= 0))"
    )
    conn.execute("INSERT INTO token_stats SELECT token, count(*) FROM neurons GROUP BY token")
    conn.execute("DROP INDEX models_by_depth")
    conn.execute("ALTER TABLE models DROP COLUMN depth")


# Version 12's neurons table against version 11's: enum columns as text, a token column, a
# slope always written.
_CHANGED_IN_12 = (
    ("CREATE TABLE neurons", "CREATE TABLE neurons_v11"),
    ("kind INTEGER", "kind TEXT"),
    ("activation INTEGER", "activation TEXT"),
    ("bias_class INTEGER", "bias_class TEXT"),
    ("members BLOB NOT NULL", "token TEXT NOT NULL, members BLOB NOT NULL"),
    ("alpha REAL", "alpha REAL NOT NULL"),
)
_VERSION_11_INDEXES = (
    "token ON neurons(token)",
    "detector ON neurons(activation, n_pos, n_neg, bias_class)",
    "shape ON neurons(kind, activation, fan_in, n_pos, n_neg, bias_class, layer)",
    "layer ON neurons(layer)",
    "fan_in ON neurons(fan_in, layer, n_pos, n_neg, bias_class)",
)


@dataclasses.dataclass(frozen=True)
class _RecordOf:
    """Just enough of a NeuronRecord for ``Adjacency.view``: its uid."""

    uid: str


# What each schema version added, as the statements (or the function) that take it back.
_ADDED_IN: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    5: "ALTER TABLE models DROP COLUMN normal_form",
    6: "ALTER TABLE neurons DROP COLUMN output_fan_ins",
    7: "ALTER TABLE neurons DROP COLUMN alpha",
    8: "ALTER TABLE models DROP COLUMN canonical_error",
    # Version 8's content_hash was UNIQUE: its index stands for that rule.
    9: "DROP INDEX models_by_content; CREATE UNIQUE INDEX models_content ON models(content_hash)",
    10: _edges_on_rows,
    11: "DROP INDEX neurons_by_shape; "
    "CREATE INDEX neurons_by_shape ON neurons(kind, activation, fan_in, n_pos, n_neg, bias_class); "
    "DROP INDEX neurons_by_fan_in; "
    "CREATE INDEX neurons_by_fan_in ON neurons(fan_in, n_pos, n_neg, bias_class)",
    12: _version_11_rows,
    13: "DROP INDEX neurons_by_shape; "
    "CREATE INDEX neurons_by_shape "
    "ON neurons(kind, activation, fan_in, n_pos, n_neg, bias_class, layer); "
    "DROP INDEX neurons_by_fan_in; "
    "CREATE INDEX neurons_by_fan_in ON neurons(fan_in, layer, n_pos, n_neg, bias_class); "
    "ALTER TABLE neurons DROP COLUMN input_groups",
}


def _older_store(path: Path, models: Sequence[IndexedModel], version: int, *undo: str) -> None:
    """A store holding ``models`` as circuitql wrote them at schema ``version``: today's,
    without what later versions added, and with the statements ``undo`` taking back the rest."""
    store = SQLiteStore(path)
    for model in models:
        store.write(model)
    store.close()
    conn = sqlite3.connect(path)
    for statements in undo + tuple(
        _ADDED_IN[v] for v in sorted(_ADDED_IN, reverse=True) if v > version
    ):
        if callable(statements):
            statements(conn)
            continue
        for statement in statements.split("; "):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version:d}")
    conn.commit()
    conn.close()


def _migrated_plan(path: Path, query: str) -> str:
    """SQLite's plan for ``query`` in the store at ``path``, which must be at today's version."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        return str(conn.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())
    finally:
        conn.close()


def test_a_version_3_store_is_migrated_in_place(tmp_path: Path) -> None:
    # Version 3 is version 4 with a narrower shape index: a store written then must open with
    # its models intact and its counts served by the new index.
    path = tmp_path / "v3.db"
    model = fake_model("m1")
    _older_store(
        path,
        [model],
        3,
        "DROP INDEX neurons_by_shape",
        "CREATE INDEX neurons_by_shape ON neurons(kind, activation, fan_in)",
    )
    migrated = SQLiteStore(path)
    try:
        assert migrated.neurons("m1") == list(model.neurons)

        def shape(sig: Signature) -> tuple[object, ...]:
            return (
                sig.kind.value,
                sig.activation.value,
                sig.fan_in,
                sig.n_pos,
                sig.n_neg,
                sig.bias_class.value,
            )

        hidden = next(n.signature for n in model.neurons if n.signature.kind.value == "hidden")
        columns = dict(
            zip(
                ("kind", "activation", "fan_in", "n_pos", "n_neg", "bias_class"),
                shape(hidden),
                strict=True,
            )
        )
        expected = sum(shape(n.signature) == shape(hidden) for n in model.neurons)
        assert migrated.count_neurons(columns) == expected
    finally:
        migrated.close()
    plan = _migrated_plan(
        path,
        "SELECT count(*) FROM neurons WHERE kind = 'hidden' AND activation = 'relu' "
        "AND fan_in = 2 AND n_pos = 1 AND n_neg = 1 AND bias_class = '0'",
    )
    assert "COVERING INDEX" in plan


def test_a_version_4_store_is_migrated_and_its_models_canonicalized_again(tmp_path: Path) -> None:
    # Version 4 kept no normal form: its models open intact, read as canonicalized under
    # unknown settings, and are written again when indexed again.
    path = tmp_path / "v4.db"
    model = fake_model("m1", normal_form={"version": 2})
    _older_store(path, [model], 4)
    migrated = SQLiteStore(path)
    try:
        assert migrated.neurons("m1") == list(model.neurons)
        info = migrated.get_model("m1")
        assert info is not None and dict(info.normal_form) == {}
        assert migrated.write(model).status == "indexed"
        assert migrated.write(model).status == "unchanged"
    finally:
        migrated.close()


def _two_models_as_written_today(
    tmp_path: Path,
) -> tuple[list[IndexedModel], list[tuple[str, str]], dict[tuple[str, str], NeuronView]]:
    """Two models, every neuron's key, and the views a store written today gives for them."""
    models = [fake_model("m1"), fake_model("m2", scale=2.0, hidden=5)]
    keys = [(m.name, n.uid) for m in models for n in m.neurons]
    today = SQLiteStore(tmp_path / "today.db")
    for model in models:
        today.write(model)
    expected = today.fetch(keys)
    today.close()
    return models, keys, expected


def _today_at_version(
    tmp_path: Path, version: int
) -> tuple[list[IndexedModel], list[tuple[str, str]], dict[tuple[str, str], NeuronView], Path]:
    """``_two_models_as_written_today``, and a store holding them at schema ``version``."""
    models, keys, expected = _two_models_as_written_today(tmp_path)
    path = tmp_path / f"v{version}.db"
    _older_store(path, models, version)
    return models, keys, expected, path


def _reads_as_written_today(
    store: SQLiteStore,
    models: list[IndexedModel],
    keys: list[tuple[str, str]],
    expected: dict[tuple[str, str], NeuronView],
) -> None:
    """``store`` gives the views, neurons, edges and network strings a store written today
    gives for ``models``."""
    assert store.fetch(keys) == expected
    strings = {info.name: info.network_string for info in store.models()}
    for model in models:
        assert store.neurons(model.name) == list(model.neurons)
        assert edges_of(store, model.name) == list(model.edges)
        assert strings[model.name] == model.network_string


def test_a_version_5_store_is_migrated_with_its_targets_fan_ins(tmp_path: Path) -> None:
    # Version 5 kept no targets' fan-ins: after the migration every view carries them, just
    # as a store written today does, model by model.
    _, keys, expected, path = _today_at_version(tmp_path, 5)
    migrated = SQLiteStore(path)
    try:
        views = migrated.fetch(keys)
        assert views == expected
        assert all(view.target_fan_ins is not None for view in views.values())
    finally:
        migrated.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_a_version_6_store_is_migrated_and_its_leaky_models_indexed_again(tmp_path: Path) -> None:
    # Version 6 kept no negative slope: a leaky ReLU read back at 0.01. Its models now count
    # as canonicalized under unknown settings, so indexing them again writes their slope;
    # other models keep their normal form.
    path = tmp_path / "v6.db"
    x = Unit("input:0", UnitKind.INPUT)
    leaky = build_records(
        lambda: load(
            NeuronGraph(
                (
                    x,
                    Unit("fc1:0", UnitKind.HIDDEN, Activation.LEAKY_RELU, 0.5, {x.id: 2.0}, 0.2),
                    Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 1.0}),
                )
            )
        ),
        "leaky",
    )
    plain = fake_model("m1", normal_form={"version": 2})
    _older_store(path, [plain, leaky], 6)
    migrated = SQLiteStore(path)
    try:
        stale = migrated.get_model("leaky")
        kept = migrated.get_model("m1")
        assert stale is not None and dict(stale.normal_form) == {}
        assert kept is not None and dict(kept.normal_form) == {"version": 2}
        assert migrated.write(leaky).status == "indexed"
        assert {
            n.alpha
            for n in migrated.neurons("leaky")
            if n.signature.activation is Activation.LEAKY_RELU
        } == {0.2}
        assert migrated.write(plain).status == "unchanged"
    finally:
        migrated.close()


def test_a_version_7_store_is_migrated_with_canonical_errors_not_measured(tmp_path: Path) -> None:
    path = tmp_path / "v7.db"
    _older_store(path, [fake_model("m1", canonical_error=2e-5)], 7)
    migrated = SQLiteStore(path)
    try:
        info = migrated.get_model("m1")
        assert info is not None and info.canonical_error is None
        assert migrated.write(fake_model("m2", scale=2.0, canonical_error=3e-6)).status == (
            "indexed"
        )
        written = migrated.get_model("m2")
        assert written is not None and written.canonical_error == 3e-6
    finally:
        migrated.close()


def test_a_version_8_store_keeps_its_neurons_and_then_every_name(tmp_path: Path) -> None:
    # Version 8 kept one name per network; the models table is rebuilt without that rule,
    # and the neurons that reference it stay.
    path = tmp_path / "v8.db"
    models = [fake_model("m1"), fake_model("m2", scale=2.0, hidden=5)]
    _older_store(path, models, 8)
    migrated = SQLiteStore(path)
    try:
        assert [m.name for m in migrated.models()] == ["m1", "m2"]
        for model in models:
            assert _by_uid(migrated.neurons(model.name)) == _by_uid(list(model.neurons))
        assert migrated.write(fake_model("m1 again")).status == "indexed"
        assert migrated.delete("m2") and migrated.get_model("m1") is not None
    finally:
        migrated.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute(
        "SELECT count(*) FROM neurons WHERE model_id NOT IN (SELECT id FROM models)"
    ).fetchone() == (0,)
    conn.close()


def test_a_version_9_store_moves_its_edges_to_one_row_per_model(tmp_path: Path) -> None:
    # Version 9 kept each neuron's edges on its row, both ways: after the migration the
    # models read back exactly as a store written today reads them, from a smaller file.
    models, keys, expected, path = _today_at_version(tmp_path, 9)
    conn = sqlite3.connect(path)
    row_bytes = conn.execute("SELECT sum(length(input_ids) + length(output_ids)) FROM neurons")
    assert row_bytes.fetchone()[0] > 0
    conn.close()
    migrated = SQLiteStore(path)
    try:
        _reads_as_written_today(migrated, models, keys, expected)
        assert migrated.write(fake_model("m3", scale=3.0)).status == "indexed"
        assert migrated.delete("m1")
    finally:
        migrated.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(neurons)")}
    assert not columns & {"input_ids", "input_weights", "output_ids", "output_weights"}
    assert conn.execute("SELECT count(*) FROM graphs").fetchone() == (2,)
    conn.close()


def test_a_version_10_store_looks_neurons_up_by_depth_from_its_indexes(tmp_path: Path) -> None:
    # Version 10's signature indexes ended before the layer: a lookup bounded by a pattern
    # unit's depth read every row of its fan-in. After the migration the indexes answer it.
    path = tmp_path / "v10.db"
    models = [fake_model("m1"), fake_model("m2", scale=2.0)]
    _older_store(path, models, 10)
    migrated = SQLiteStore(path)
    try:
        deep = [n for m in models for n in m.neurons if n.layer >= 2]
        assert deep
        fan_in = deep[0].signature.fan_in
        columns = {"fan_in_min": fan_in, "fan_in_max": fan_in + 1, "layer_min": 2}
        expected = sum(fan_in <= n.signature.fan_in <= fan_in + 1 for n in deep)
        assert migrated.count_neurons(columns) == expected == len(migrated.find_neurons(columns))
    finally:
        migrated.close()
    plan = _migrated_plan(
        path,
        "SELECT count(*) FROM neurons AS n "
        "WHERE n.fan_in IN (2, 3) AND n.layer >= 2 AND n.n_pos >= 1",
    )
    assert "COVERING INDEX neurons_by_fan_in (fan_in=? AND layer>?)" in plan


def test_a_version_11_store_is_compressed_in_place(tmp_path: Path) -> None:
    # Version 11 kept the unit lists, ends, sources and network strings as written, every
    # weight as float64, and tokens in a column: after the migration the models read back
    # exactly as a store written today reads them, from compressed rows, without tokens.
    models, keys, expected, path = _today_at_version(tmp_path, 11)
    migrated = SQLiteStore(path)
    try:
        _reads_as_written_today(migrated, models, keys, expected)
        depths = {m.name: max(n.layer for n in m.neurons) for m in models}
        assert migrated.max_layer() == max(depths.values())
        assert all(migrated.max_layer([name]) == depth for name, depth in depths.items())
    finally:
        migrated.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute(
        "SELECT DISTINCT typeof(g.uids), typeof(m.network_string) FROM graphs AS g "
        "JOIN models AS m ON m.id = g.model_id"
    ).fetchall() == [("blob", "blob")]
    assert "token" not in {row[1] for row in conn.execute("PRAGMA table_info(neurons)")}
    assert conn.execute(
        "SELECT DISTINCT typeof(kind), typeof(activation), typeof(bias_class) FROM neurons"
    ).fetchall() == [("integer", "integer", "integer")]
    assert conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name IN ('neurons_by_token', 'token_stats')"
    ).fetchone() == (0,)
    conn.close()


def _by_uid(neurons: list[NeuronRecord]) -> list[NeuronRecord]:
    return sorted(neurons, key=lambda n: n.uid)


@pytest.mark.parametrize("folder_writable", [True, False], ids=["file", "file-and-folder"])
def test_a_store_that_cannot_be_written_is_opened_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder_writable: bool
) -> None:
    # Permissions do not bind root, who runs CI: what the process may write is simulated,
    # and SQLite itself enforces the read-only opening.
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.write(fake_model("m1"))
    store.close()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode: (
            (folder_writable and Path(p) == tmp_path) if mode == os.W_OK else real_access(p, mode)
        ),
    )
    read_only = SQLiteStore(path, create=False)
    try:
        assert read_only.read_only and [m.name for m in read_only.models()] == ["m1"]
        assert read_only.neurons("m1")
        with pytest.raises(StoreError, match=r"readonly|read-only"):
            read_only.write(fake_model("m2", scale=2.0))
    finally:
        read_only.close()
    monkeypatch.undo()
    writable = SQLiteStore(path, create=False)
    assert writable.read_only is False  # writable again: opened for writing, as before
    writable.close()


def test_delete_leaves_no_orphan_rows(tmp_path: Path) -> None:
    # The API cannot see rows whose model is gone; the file can, and they would pile up.
    path = tmp_path / "s.db"
    kept = fake_model("kept", scale=1.0)
    store = SQLiteStore(path)
    store.write(fake_model("gone", scale=2.0, hidden=5))
    store.write(kept)
    store.delete("gone")
    store.close()
    conn = sqlite3.connect(path)
    uids = [row[0] for row in conn.execute("SELECT uid FROM neurons")]
    conn.close()
    assert sorted(uids) == sorted(n.uid for n in kept.neurons)


def test_an_invalid_edge_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    model = fake_model("m1")
    broken = dataclasses.replace(
        model, edges=(*model.edges, EdgeRecord("input:0", "fc2:0", float("nan")))
    )
    try:
        with pytest.raises(ValueError, match="nan"):
            store.write(broken)
        assert store.models() == []
        assert store.neurons("m1") == []
        assert store.token_counts() == {}
        assert store.write(model).status == "indexed"
    finally:
        store.close()


def test_sql_looking_values_are_stored_verbatim_and_harmless(tmp_path: Path) -> None:
    evil = "x'); DROP TABLE models; --"
    store = SQLiteStore(tmp_path / "s.db")
    try:
        model = dataclasses.replace(
            fake_model(evil, meta={"note": evil}), source=evil, network_string=evil
        )
        info = store.write(model).model
        assert (info.name, info.source, info.network_string) == (evil, evil, evil)
        assert info.meta == {"note": evil}
        assert store.get_model(evil) == info
        assert store.neurons(evil) == list(model.neurons)
        assert store.find_neurons({"activation": evil}) == []
        assert {name for name, _ in store.find_neurons({"layer": 0}, [evil])} == {evil}
        assert store.delete(evil) is True
        assert store.models() == []
    finally:
        store.close()


# --- open_store: one URI rule for the library and the CLI -----------------------------------


def test_sqlite_uri_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    store = open_store("sqlite:///sub/rel.db")
    store.close()
    assert isinstance(store, SQLiteStore)
    assert (tmp_path / "sub" / "rel.db").is_file()


def test_sqlite_uri_with_an_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    assert isinstance(store, SQLiteStore) and store.path == path
    assert path.is_file()


def test_a_store_uri_reopens_the_same_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    store.write(fake_model("m1"))
    store.close()
    again = open_store(store.uri)
    try:
        assert [info.name for info in again.models()] == ["m1"]
    finally:
        again.close()


def test_a_plain_path_is_a_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    store = open_store(str(path))
    store.close()
    assert isinstance(store, SQLiteStore) and store.path == path


def test_the_environment_variable_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCUITQL_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    store = open_store(None)
    store.close()
    assert (tmp_path / "env.db").is_file()


def test_without_uri_or_environment_the_store_is_circuitql_db_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIRCUITQL_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    store.close()
    assert (tmp_path / "circuitql.db").is_file()


@pytest.mark.parametrize(
    "uri", ["postgres://localhost/db", "sqlite://host/x.db", "sqlite:///", "http://x"]
)
def test_an_unsupported_uri_lists_the_accepted_forms(uri: str) -> None:
    with pytest.raises(StoreError) as err:
        open_store(uri)
    message = str(err.value)
    assert "sqlite:///" in message and "neo4j://" in message and "bolt://" in message


def test_a_password_in_a_bad_uri_is_not_echoed() -> None:
    with pytest.raises(StoreError) as err:
        open_store("redis://admin:s3cret@localhost:6379")
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("scheme", ["neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"])
def test_neo4j_uris_without_the_backend_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    # None in sys.modules is Python's own "this module cannot be imported".
    monkeypatch.setitem(sys.modules, "circuitql.store.neo4j", None)
    with pytest.raises(StoreError, match=r"circuitql\[neo4j\]") as err:
        open_store(f"{scheme}://neo4j:s3cret@localhost:7687")
    assert "s3cret" not in str(err.value)


def test_a_store_is_created_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with pytest.raises(StoreError, match="there is no store here"):
        SQLiteStore(path, create=False)
    assert not path.exists()
    SQLiteStore(path).close()
    SQLiteStore(path, create=False).close()


def test_edges_read_before_another_connection_replaced_the_model_are_not_served(
    tmp_path: Path,
) -> None:
    # A store keeps decoded edges between the steps of a query; a model replaced by another
    # process in between must be read afresh, and so must one this connection replaced.
    path = tmp_path / "shared.db"
    reader, writer = SQLiteStore(path), SQLiteStore(path)
    try:
        reader.write(fake_model("m"))
        keys = [("m", n.uid) for n in fake_model("m").neurons]
        before = reader.fetch(keys)
        writer.write(fake_model("m", scale=2.0), replace=True)
        after = reader.fetch(keys)
        assert after != before
        assert after == writer.fetch(keys)
        reader.write(fake_model("m", scale=3.0), replace=True)
        assert reader.fetch(keys) != after
        assert edges_of(reader, "m") == list(fake_model("m", scale=3.0).edges)
    finally:
        reader.close()
        writer.close()


def test_the_decoded_edges_held_are_bounded() -> None:
    small = fake_model("a")
    adjacency = Adjacency.of_columns(*model_columns(small))
    cache = AdjacencyCache(max_bytes=2 * adjacency.nbytes)
    for name in ("a", "b", "c"):
        cache.put(name, adjacency)
    assert cache.get("a") is None  # the least recently used went first
    assert cache.get("b") is adjacency and cache.get("c") is adjacency
    cache.put("d", adjacency)  # "b" was read before "c": it goes now
    assert cache.get("b") is None and cache.get("c") is adjacency


@pytest.mark.parametrize(
    ("weights", "width"),
    [
        (np.float32([0.1, -2.5, 3e-30, 7.0]), 4),  # every weight a float32: four bytes each
        (np.array([0.1, -2.5, 3e-30, 7.0]), 8),  # one that is not: all keep eight
        (np.array([0.5, 1e300]), 8),  # beyond float32's range
    ],
)
def test_weights_are_written_four_bytes_each_only_where_that_loses_nothing(
    weights: np.ndarray, width: int
) -> None:
    adjacency = Adjacency(  # unit b reads unit a once per weight
        ["a", "b"],
        np.array([0, len(weights)], dtype="<u4"),
        np.zeros(len(weights), dtype="<u2"),
        weights.astype(np.float64),
        bytes(2),
    )
    row = adjacency.row()
    assert len(row[3]) == width * len(weights)
    back = Adjacency.from_row(*row)
    assert back.in_weights.dtype == np.float64
    assert back.in_weights.tolist() == weights.astype(np.float64).tolist()
    assert (back.uids, back.in_ends.tolist()) == (adjacency.uids, adjacency.in_ends.tolist())


def test_every_value_of_an_enum_column_has_a_code_of_its_own() -> None:
    for column, enum in (("kind", UnitKind), ("activation", Activation), ("bias_class", BiasClass)):
        codes = ENUM_CODES[column]
        assert set(codes) == {member.value for member in enum}
        assert len(set(codes.values())) == len(codes)


def test_a_magnitude_the_store_cannot_keep_exactly_is_refused(tmp_path: Path) -> None:
    # Magnitudes are kept one byte each; a ratio with more decimals than signatures round
    # to would read back changed, so it is refused and nothing is written.
    model = fake_model("m")
    first = model.neurons[0]
    odd = dataclasses.replace(
        first, signature=dataclasses.replace(first.signature, magnitudes=(0.123,))
    )
    store = SQLiteStore(tmp_path / "s.db")
    try:
        with pytest.raises(ValueError, match="rounded to 2 decimals"):
            store.write(dataclasses.replace(model, neurons=[odd, *model.neurons[1:]]))
        assert store.models() == []
    finally:
        store.close()


def test_edges_handed_over_in_any_order_are_laid_out_by_target() -> None:
    # Edges usually arrive grouped by target and are laid out as they are; in another order
    # they are sorted first, stably: the same layout either way.
    neurons, edges = model_columns(fake_model("m", hidden=6))
    shuffled = np.random.default_rng(0).permutation(len(edges.src))
    reordered = dataclasses.replace(
        edges, src=edges.src[shuffled], dst=edges.dst[shuffled], weight=edges.weight[shuffled]
    )
    grouped = np.argsort(reordered.dst, kind="stable")
    assert not np.array_equal(reordered.dst, reordered.dst[grouped])
    expected = Adjacency.of_columns(
        neurons,
        dataclasses.replace(
            edges,
            src=reordered.src[grouped],
            dst=reordered.dst[grouped],
            weight=reordered.weight[grouped],
        ),
    )
    assert Adjacency.of_columns(neurons, reordered).row() == expected.row()


def test_a_neuron_reads_the_same_edges_however_many_of_its_model_were_read() -> None:
    # Past SCAN_VIEWS neurons of a model, outgoing edges come from one grouping by source
    # instead of a scan per neuron: both must give the same views, in the same order.
    model = fake_model("m", hidden=3 * SCAN_VIEWS)
    neurons, edges = model_columns(model)
    shared = Adjacency.of_columns(neurons, edges)
    for record in reversed(neurons):  # the inputs, which feed every hidden unit, last
        fresh = Adjacency.of_columns(neurons, edges)
        assert shared.view(record) == fresh.view(record)
    assert shared.views_made > SCAN_VIEWS


def _damaged(tmp_path: Path, update: str, value: bytes) -> SQLiteStore:
    """A store holding model ``m`` as written today, then changed by ``update`` (one
    parameter, ``value``) behind circuitql's back, opened again."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.write(fake_model("m"))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(update, (value,))
    conn.commit()
    conn.close()
    return SQLiteStore(path)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("uids", b"not zlib"),
        ("in_sources", zlib.compress(b"\x00")),  # half a source
        ("in_weights", b"\x00" * 3),
        ("in_ends", zlib.compress(np.array([0, 1, 999], dtype="<u4").tobytes())),
    ],
)
def test_a_damaged_graphs_row_is_a_store_error_naming_its_model(
    tmp_path: Path, column: str, value: bytes
) -> None:
    store = _damaged(tmp_path, f"UPDATE graphs SET {column} = ?", value)
    try:
        with pytest.raises(StoreError, match="edges of model 'm' are damaged") as caught:
            store.fetch([("m", n.uid) for n in fake_model("m").neurons])
        assert "--replace" in str(caught.value)
        with pytest.raises(StoreError, match="edges of model 'm' are damaged"):
            store.inputs("m")
    finally:
        store.close()


def test_a_damaged_network_string_is_a_store_error_naming_its_model(tmp_path: Path) -> None:
    store = _damaged(tmp_path, "UPDATE models SET network_string = ?", b"\x01\x02")
    try:
        with pytest.raises(StoreError, match="network string of model 'm' is damaged"):
            store.models()
    finally:
        store.close()


def test_a_model_deleted_while_its_neurons_are_read_is_seen_whole(tmp_path: Path) -> None:
    # fetch reads the neurons, then their models' edges: a model another process deletes
    # between the two statements must still come back with its edges, as it was.
    path = tmp_path / "shared.db"
    writer = SQLiteStore(path)
    writer.write(fake_model("m"))

    class DeletedInBetween(SQLiteStore):
        def _rows_by_key(self, *args: Any, **kwargs: Any) -> list[Any]:
            rows = super()._rows_by_key(*args, **kwargs)
            assert writer.delete("m")
            return rows

    reader = DeletedInBetween(path)
    try:
        keys = [("m", n.uid) for n in fake_model("m").neurons]
        views = reader.fetch(keys)
        assert set(views) == set(keys)
        assert views[keys[0]].outputs
        assert writer.get_model("m") is None
    finally:
        reader.close()
        writer.close()


def test_a_version_12_store_reads_its_groups_as_not_counted(tmp_path: Path) -> None:
    # Version 12 counted no input groups: after the migration every neuron reads 0, which
    # every bound admits, and both signature indexes hold the column.
    model = fake_model("m1")
    neurons = [dataclasses.replace(n, input_groups=2) for n in model.neurons]
    path = tmp_path / "v12.db"
    _older_store(path, [dataclasses.replace(model, neurons=NeuronColumns.of(neurons))], 12)
    migrated = SQLiteStore(path)
    try:
        assert {n.input_groups for n in migrated.neurons("m1")} == {0}
        assert len(migrated.find_neurons({"groups_max": 1})) == len(neurons)
    finally:
        migrated.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    indexes = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name IN ('neurons_by_shape', 'neurons_by_fan_in')"
    ).fetchall()
    conn.close()
    assert len(indexes) == 2 and all("input_groups" in sql for (sql,) in indexes)


def test_a_write_group_commits_as_it_fills_and_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "GROUP_MODELS", 2)
    store, reader = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")

    def names() -> list[str]:
        """What another process sees."""
        return [m.name for m in reader.models()]

    with store.write_group():
        store.write(fake_model("a", scale=1.0))
        assert names() == []
        store.write(fake_model("b", scale=2.0))
        assert names() == ["a", "b"]
        store.write(fake_model("c", scale=3.0))
        assert names() == ["a", "b"]
        store.close()
        assert names() == ["a", "b", "c"]

"""The offline bulk path: a zoo loaded by Neo4j's importer answers as the same zoo indexed
model by model (into SQLite, the reference every store agrees with)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import circuitql
from circuitql.errors import NameTaken, StoreError
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import build_records
from circuitql.store import neo4j_server
from circuitql.store.base import stored_graph
from circuitql.store.neo4j import Neo4jStore
from circuitql.store.neo4j_bulk import IMPORT_LOG, STORE_FILE, BulkCsv, check_fresh, run_import
from circuitql.zoo.plant import write_zoo

needs_server = pytest.mark.skipif(
    not os.environ.get("CIRCUITQL_TEST_NEO4J_URI"),
    reason="CIRCUITQL_TEST_NEO4J_URI is not set: no Java and Neo4j launcher for this run",
)
QUERIES = ("MATCH abs", "MATCH min", "MATCH xor", "MATCH is_even", "MATCH subtract EXACT")


@needs_server
def test_a_bulk_loaded_zoo_answers_as_the_zoo_indexed_model_by_model(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    write_zoo(zoo)
    # A name the CSV files must quote: a comma, a double quote, a semicolon.
    for suffix in (".safetensors", ".json"):
        shutil.copy(zoo / "planted" / f"abs{suffix}", zoo / f'odd "abs", copy;1{suffix}')
    data_dir = tmp_path / "neo4j"
    password = "bulk-test-pw"
    loaded = circuitql.neo4j_bulk_load([zoo], data_dir, password=password)
    try:
        assert not loaded.report.failed
        uri = f"neo4j://neo4j:{password}@127.0.0.1:{loaded.server.port}"
        with (
            circuitql.connect(str(tmp_path / "reference.db")) as reference,
            circuitql.connect(uri) as bulk,
        ):
            reference.index_paths([zoo])
            assert {m.name: m for m in bulk.models()} == {m.name: m for m in reference.models()}
            assert 'odd "abs", copy;1' in {m.name for m in bulk.models()}
            for info in reference.models():
                want, got = (
                    stored_graph(reference.store, info.name),
                    stored_graph(bulk.store, info.name),
                )
                assert got.units == want.units, info.name
                assert bulk.store.neurons(info.name) == reference.store.neurons(info.name)
            assert bulk.store.token_counts() == reference.store.token_counts()
            for query in QUERIES:
                want_matches = sorted(
                    (m.model, sorted(m.bindings.items())) for m in reference.query(query)
                )
                got_matches = sorted(
                    (m.model, sorted(m.bindings.items())) for m in bulk.query(query)
                )
                assert got_matches == want_matches, query
            store = bulk.store
            assert isinstance(store, Neo4jStore)
            with store.session() as session:
                logs = dict(session.run("MATCH (m:Model) RETURN m.name, m.canonical_log").values())
            assert logs["planted/abs"] == list(
                build_records(
                    lambda: load(zoo / "planted" / "abs.safetensors"), "planted/abs"
                ).canonical_log
            )
        # The importer writes store files directly: never into a database that is there.
        with pytest.raises(StoreError, match="a Neo4j server runs"):
            circuitql.neo4j_bulk_load([zoo], data_dir, password=password)
        neo4j_server.stop(data_dir)
        with pytest.raises(StoreError, match="already holds a database"):
            circuitql.neo4j_bulk_load([zoo], data_dir, password=password)
    finally:
        neo4j_server.stop(data_dir)


def test_a_name_holds_one_network_in_the_csv_files(tmp_path: Path) -> None:
    from tests.store.fakes import fake_model

    sink = BulkCsv(tmp_path)
    first = sink.write(fake_model("m"))
    assert first.status == "indexed"
    assert sink.write(fake_model("m")).status == "unchanged"
    with pytest.raises(NameTaken, match="hold different networks"):
        sink.write(fake_model("m", scale=2.0))
    files = sink.close()
    assert set(files) == {"Model", "Neuron", "HAS", "FEEDS", "TokenStat"}
    header = files["Neuron"].read_text().splitlines()[0]
    assert '"magnitudes:double[]"' in header and '"fan_in:long"' in header
    assert len(files["Model"].read_text().splitlines()) == 2  # the header and one model
    assert not sink.multiline


def test_a_line_break_in_a_text_makes_the_importer_read_fields_across_lines(
    tmp_path: Path,
) -> None:
    from tests.store.fakes import fake_model

    sink = BulkCsv(tmp_path)
    sink.write(fake_model("two\nlines"))
    assert sink.multiline


@needs_server
def test_a_failed_import_says_why_and_leaves_no_database(tmp_path: Path) -> None:
    rows = tmp_path / "Model.csv"
    rows.write_text(':ID(Model),name\n0,"unterminated\n')
    with pytest.raises(StoreError, match="importer failed") as failure:
        run_import(tmp_path, {"Model": rows})
    assert failure.value.where == str(tmp_path / IMPORT_LOG)
    assert not (tmp_path / STORE_FILE).exists()
    check_fresh(tmp_path)  # a second attempt may go ahead

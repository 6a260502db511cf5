"""The façade the CLI calls: ``Database.run`` answers every kind of statement, and the
store-less functions serve the commands that need no store."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitql import (
    Answer,
    CircuitQLError,
    Database,
    Results,
    connect,
    degeneracy_of,
    library_circuit,
)
from circuitql.analysis.census import Census
from circuitql.analysis.compare import Comparison
from circuitql.language import reference_network


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = connect(str(tmp_path / "api.db"))
    database.index(reference_network("abs"), name="abs_net")
    database.index(reference_network("min"), name="min_net")
    return database


def test_run_answers_each_kind_of_statement_with_its_own_result(db: Database) -> None:
    found = db.run("MATCH abs")
    assert isinstance(found, Answer) and isinstance(found.result, Results)
    assert [m.model for m in found.result] == ["abs_net"]
    assert found.explain is not None and found.explain.counts["verify"] == 1
    counted = db.run("COUNT MODELS WITH abs GROUP BY name").result
    assert isinstance(counted, Census)
    assert {row.group for row in counted.rows if row.with_circuit} == {"abs_net"}
    compared = db.run("EXPLAIN COMPARE 'abs_net' WITH 'min_net'")
    assert isinstance(compared.result, Comparison) and compared.query.explain
    assert compared.plan is not None and "circuits" in compared.plan
    shown = db.run("SHOW CIRCUITS 'mi*'")
    assert isinstance(shown.result, dict) and {"min", "min4"} <= set(shown.result)
    assert all(name.startswith("mi") for name in shown.result)
    assert shown.result["min"] == library_circuit("min").doc


def test_run_for_rows_refuses_statements_without_rows_before_any_work(db: Database) -> None:
    with pytest.raises(CircuitQLError, match="with rows"):
        db.run("COMPARE 'abs_net' WITH 'min_net'", rows=True)
    assert isinstance(db.run("MATCH abs", rows=True).result, Results)


def test_picture_draws_a_model_or_the_nth_match(db: Database) -> None:
    model = db.picture("abs_net")
    assert model.match is None and model.title == "model abs_net"
    first = db.picture("MATCH abs", match=1)
    assert first.match is not None and first.model == "abs_net"
    with pytest.raises(CircuitQLError, match="no match 2"):
        db.picture("MATCH abs", match=2)
    with pytest.raises(CircuitQLError, match="counted from 1"):
        db.picture("MATCH abs", match=0)


def test_token_layers_join_back_into_the_network_string(db: Database) -> None:
    layers = db.token_layers("abs_net")
    assert len(layers) == 3 and " ".join(layers) == db.tokens("abs_net")


def test_library_circuit_gives_the_text_or_names_the_closest() -> None:
    circuit = library_circuit("abs")
    assert "CIRCUIT abs" in circuit.text and circuit.doc.splitlines()[0] in circuit.text
    with pytest.raises(CircuitQLError) as caught:
        library_circuit("abss")
    assert caught.value.fix is not None and "abs" in caught.value.fix


def test_degeneracy_of_a_stored_model_reads_its_file_again(tmp_path: Path) -> None:
    from circuitql.export import save, spec_from_graph

    path = save(spec_from_graph(reference_network("abs"), {}), tmp_path / "abs.safetensors")
    with connect(str(tmp_path / "d.db")) as db:
        db.index_paths([str(path)])
    by_file = degeneracy_of(path).to_json()
    by_name = degeneracy_of("abs", str(tmp_path / "d.db")).to_json()
    assert by_file["layers"] == by_name["layers"]

"""Names as files give them: every good file indexed under a name a store and a terminal can
carry; a name that cannot be carried refused on its own, the rest of the folder indexed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from circuitql.api import connect
from circuitql.errors import CircuitQLError
from circuitql.export import save, spec_from_graph
from circuitql.graph import NeuronGraph, Unit, UnitKind
from circuitql.language.library import reference_network


def _write(folder: Path, name: str, circuit: str) -> None:
    save(spec_from_graph(reference_network(circuit)), folder / f"{name}.safetensors")


def test_a_folder_keeps_every_good_name_and_reports_the_bad_one(tmp_path: Path) -> None:
    folder = tmp_path / "zoo"
    _write(folder, "plain", "abs")
    _write(folder, os.fsdecode(b"b\xe9b\xe9"), "min_skip")  # a Latin-1 file name
    _write(folder, "two\nlines", "identity")  # a newline would forge a row of `models`
    with connect(str(tmp_path / "s.db")) as db:
        report = db.index_paths([folder], jobs=1)
        names = sorted(m.name for m in db.models())
        assert names == ["b\\xe9b\\xe9", "plain"]
        assert sorted(m.name for m in report.indexed) == names
        ((failed, error),) = report.failed
        assert "two" in str(failed) and "'\\n'" in str(error) and error.fix is not None
        assert [m.model for m in db.query("MATCH min")] == ["b\\xe9b\\xe9"]


@pytest.mark.parametrize("uid", ["fc1:\x00", "fc1:\x1b[2J"])
def test_a_unit_id_with_a_control_character_is_refused(tmp_path: Path, uid: str) -> None:
    # A NUL cut the id short inside SQLite's JSON functions: the model was stored, then
    # never found again.
    x = Unit("input:0", UnitKind.INPUT)
    graph = NeuronGraph((x, Unit(uid, UnitKind.OUTPUT, inputs={x.id: 1.0})))
    with connect(str(tmp_path / "s.db")) as db:
        with pytest.raises(CircuitQLError, match="which a name cannot carry"):
            db.index(graph, name="m")
        assert db.models() == []

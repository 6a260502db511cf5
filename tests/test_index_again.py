"""Indexing a zoo again: a model the store already holds as it would be written is reported
unchanged once its file is read and hashed, with no canonical form; any other is indexed as
the first time, including one that changed in the store while the run went on."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from circuitql.api import connect, index_items
from circuitql.export import save, spec_from_graph
from circuitql.indexer.pipeline import IndexConfig
from circuitql.language.library import reference_network
from circuitql.store.sqlite import SQLiteStore


def _write(folder: Path, name: str, circuit: str, meta: dict[str, object] | None = None) -> Path:
    path = folder / f"{name}.safetensors"
    save(spec_from_graph(reference_network(circuit), meta=meta), path)
    return path


@pytest.mark.parametrize("jobs", [1, 2])
def test_unchanged_models_skip_the_canonical_form_and_changed_ones_do_not(
    tmp_path: Path, jobs: int
) -> None:
    zoo = tmp_path / "zoo"
    for name, circuit in (("a", "abs"), ("b", "min"), ("c", "max")):
        _write(zoo, name, circuit, meta={"run": 1})
    with connect(str(tmp_path / "s.db")) as db:
        first = db.index_paths([zoo], jobs=jobs)
        assert len(first.indexed) == 3 and first.times.canonicalize > 0

        again = db.index_paths([zoo], jobs=jobs)
        assert (again.indexed, again.failed) == ([], [])
        assert sorted(again.unchanged, key=lambda m: m.name) == db.models()
        assert again.times.canonicalize == 0.0

        _write(zoo, "b", "min", meta={"run": 2})  # the same network, described otherwise
        _write(zoo, "c", "abs")  # another network under a stored name
        edited = db.index_paths([zoo], jobs=jobs, replace=True)
        assert [m.name for m in edited.unchanged] == ["a"]
        assert sorted(m.name for m in edited.indexed) == ["b", "c"]
        assert dict(db.model("b").meta)["run"] == 2
        assert sorted(m.model for m in db.query("MATCH abs EXACT")) == ["a", "c"]


def test_a_model_rewritten_in_the_store_during_the_run_is_prepared_and_written(
    tmp_path: Path,
) -> None:
    """Two files under one name, the second the network the store held when the run began:
    by the time it is written the store holds the first one's, not the one the run listed,
    so it is indexed whole (in its place), not reported unchanged."""
    first = _write(tmp_path / "one", "m", "abs")
    second = _write(tmp_path / "two", "m", "min")
    store = SQLiteStore(tmp_path / "s.db")
    try:
        index_items([(second, "m")], store.write, IndexConfig(), jobs=1, stored=store)
        held = store.get_model("m")
        assert held is not None
        replacing = partial(store.write, replace=True)
        items = [(first, "m"), (second, "m")]
        report = index_items(items, replacing, IndexConfig(), jobs=1, stored=store)
        assert report.unchanged == []
        assert [m.content_hash != held.content_hash for m in report.indexed] == [True, False]
        assert store.get_model("m") == held
    finally:
        store.close()

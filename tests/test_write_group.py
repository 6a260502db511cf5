"""Indexing many models commits its writes before it waits for a model to be prepared, so
another process writing to the same store never finds it locked by work that is not
writing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from circuitql import api
from circuitql.api import path_items
from circuitql.export import save, spec_from_graph
from circuitql.language.library import reference_network
from circuitql.parallel import in_order, prepared_here
from circuitql.store.sqlite import SQLiteStore


def test_the_writer_commits_before_waiting_for_work_that_is_not_ready() -> None:
    release = threading.Event()
    waited: list[int] = []

    def prepare(item: int) -> int:
        release.wait(5)  # held until the writer says it waits
        return item

    def on_wait() -> None:
        waited.append(len(waited))
        release.set()

    with ThreadPoolExecutor(1) as pool:
        assert list(in_order(pool, 1, prepare, [1, 2], on_wait=on_wait)) == [1, 2]
    assert waited  # the first result was not ready when it was asked for


@pytest.mark.parametrize(("slow", "commits"), [(0.0, 2), (float("inf"), 0)])
def test_in_this_process_the_writer_commits_after_a_slow_preparation(
    slow: float, commits: int
) -> None:
    waited: list[None] = []
    results = prepared_here(lambda x: x, [1, 2, 3], lambda: waited.append(None), slow)
    assert list(results) == [1, 2, 3]
    assert len(waited) == commits


def test_models_written_before_a_slow_preparation_are_committed_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, circuit in (("a", "abs"), ("b", "min"), ("c", "max")):
        save(spec_from_graph(reference_network(circuit)), tmp_path / "zoo" / f"{name}.safetensors")
    monkeypatch.setattr(api, "SLOW_PREPARATION", 0.0)  # every preparation counts as slow
    store, reader = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    seen: list[int] = []

    def on_done(_: object) -> None:
        """What another process sees of the store as each model is written."""
        seen.append(len(reader.models()))

    try:
        items = path_items([tmp_path / "zoo"])
        report = api.index_items(
            items, store.write, api.IndexConfig(), jobs=1, on_done=on_done, stored=store
        )
        assert len(report.indexed) == 3
        # Each model is written after the one before was committed, and the last on leaving.
        assert seen == [0, 1, 2] and len(reader.models()) == 3
    finally:
        store.close()
        reader.close()

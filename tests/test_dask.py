"""Indexing on a Dask cluster writes the store the process pool writes: a LocalCluster of two
workers, a folder with a bad file in it, the same models, neurons and failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from circuitql.api import IndexReport, connect
from circuitql.cli import main
from circuitql.errors import CircuitQLError
from circuitql.export import save
from circuitql.zoo.demo import random_mlp


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(3)
    for i in range(10):
        save(random_mlp(rng, 4, [12, 12], 2), root / "runs" / f"m{i:02d}.safetensors")
    save(random_mlp(rng, 3, [8], 1), root / "bad.safetensors")
    (root / "bad.json").write_text(json.dumps({"inputs": "three"}))
    return root


def stored(path: Path) -> tuple[object, ...]:
    with connect(str(path), create=False) as db:
        infos = db.models()
        return tuple(
            (
                m.name,
                m.content_hash,
                m.n_neurons,
                m.n_edges,
                m.network_string,
                m.canonical_error,
                tuple(db.store.neurons(m.name)),
            )
            for m in infos
        )


def index(folder: Path, store: Path, **how: object) -> IndexReport:
    with connect(str(store)) as db:
        return db.index_paths([folder], **how)  # type: ignore[arg-type]


def test_a_local_cluster_writes_what_the_process_pool_writes(folder: Path, tmp_path: Path) -> None:
    on_dask = index(folder, tmp_path / "dask.db", dask="local", jobs=2)
    in_pool = index(folder, tmp_path / "pool.db", jobs=2)
    alone = index(folder, tmp_path / "alone.db", jobs=1)
    for report in (on_dask, in_pool, alone):
        assert len(report.indexed) == 10
        assert [(Path(p).name, type(e)) for p, e in report.failed] == [
            ("bad.safetensors", type(alone.failed[0][1]))
        ]
    assert (
        stored(tmp_path / "dask.db")
        == stored(tmp_path / "pool.db")
        == stored(tmp_path / "alone.db")
    )
    assert len(stored(tmp_path / "dask.db")) == 10


def test_the_cli_indexes_on_a_local_cluster(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "cli.db"
    code = main(
        [
            "index",
            str(folder / "runs"),
            "--store",
            str(store),
            "--dask",
            "local",
            "--jobs",
            "2",
            "--json",
        ]
    )
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)["indexed"]) == 10


@pytest.mark.parametrize("address", ["", "no-port-here", "xyz://host:1"])
def test_a_bad_scheduler_address_is_a_user_error(
    folder: Path, tmp_path: Path, address: str
) -> None:
    with pytest.raises(CircuitQLError) as caught:
        index(folder, tmp_path / "x.db", dask=address)
    assert caught.value.fix is not None and "local" in caught.value.fix

"""Loading a zoo into Neo4j: through the store (Bolt, a transaction per model) and through
the offline bulk path (CSV and Neo4j's importer), against the embedded SQLite store.

    python benchmarks/bench_neo4j_bulk.py --models 1000 --jobs 2

The zoo of bench_index (random ReLU MLPs 8-64-64-64-4 as safetensors + JSON config) is
written once (not timed); then each row is one whole ``circuitql`` process under
``/usr/bin/time -v`` on the same folder, each into a fresh store:

- ``circuitql index`` into a new SQLite file;
- ``circuitql index`` into a Neo4j server started beforehand on a new data directory (its
  start is not timed);
- ``circuitql neo4j import`` into a new data directory: preparing the models, the CSV files,
  Neo4j's importer, the server's start and the schema built on the loaded data, so that
  its end is a store that answers queries.

Then, on the through-the-store row's server (which holds that zoo by then), where a write's
time goes: ``--sample`` of the models, prepared in this process (not timed), are written a
transaction each in four ways, each into a namespace of its own: the store's own write, and
only the ``Neuron`` nodes (no relationship, no Model node), with every index, without the
embedding the vector index reads, and under a label no index covers. The nodes alone bound
what any schema that keeps the neurons as nodes can reach, whatever it does with the edges.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import LiteralString

import neo4j

from benchmarks.bench_index import write_zoo
from benchmarks.report import Report, add_json_argument, time_process
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import build_records
from circuitql.records import IndexedModel
from circuitql.store import neo4j_server
from circuitql.store.base import model_columns
from circuitql.store.neo4j import Neo4jStore, neuron_row

CLI = "import sys; from circuitql.cli import main; sys.exit(main())"
PASSWORD = "bench-bulk-pw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sample", type=int, default=100, help="models written in each way of the write's cost"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Neo4j: through the store and in bulk")
    report.say(
        f"{args.models:,} random ReLU MLPs 8-64-64-64-4 (the bench_index zoo), each row one "
        f"whole `circuitql` process with `--jobs {args.jobs}` under `/usr/bin/time -v` into a "
        "fresh store. The bulk row ends when the server runs on the imported database with "
        "its schema built (the import's server start included); the Neo4j store row's server "
        "was started before the clock. Peak RSS is circuitql's process and the importer it "
        "runs, not the server's."
    )
    python = [sys.executable, "-c", CLI]
    jobs = ["--jobs", str(args.jobs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        zoo = root / "zoo"
        zoo.mkdir()
        write_zoo(zoo, args.models, args.seed)
        sqlite = time_process(
            [*python, "index", str(zoo), "--store", str(root / "s.db"), "--quiet", *jobs]
        )
        server = neo4j_server.start(root / "store-neo4j", port=0, password=PASSWORD)
        try:
            uri = f"neo4j://neo4j:{PASSWORD}@127.0.0.1:{server.port}"
            store = time_process([*python, "index", str(zoo), "--store", uri, "--quiet", *jobs])
            sample = [
                build_records(partial(load, path), path.stem)
                for path in sorted(zoo.glob("*.safetensors"))[: args.sample]
            ]
            costs = write_costs(uri, sample)
        finally:
            neo4j_server.stop(root / "store-neo4j")
        data_dir = root / "bulk-neo4j"
        try:
            bulk = time_process(
                [
                    *python,
                    "neo4j",
                    "import",
                    str(zoo),
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    "0",
                    "--password",
                    PASSWORD,
                    "--quiet",
                    *jobs,
                ]
            )
        finally:
            neo4j_server.stop(data_dir)
    found = re.search(r"importer and the schema took ([\d.]+)s", bulk.stdout)
    importer = float(found.group(1)) if found else float("nan")
    rows = [
        ("SQLite, `circuitql index`", sqlite),
        ("Neo4j through the store, `circuitql index`", store),
        ("Neo4j in bulk, `circuitql neo4j import`", bulk),
    ]
    report.table(
        ["path", "wall", "models/s", "against SQLite", "peak RSS"],
        [
            [
                label,
                f"{run.wall:.1f} s",
                f"{args.models / run.wall:.1f}",
                f"{sqlite.wall / run.wall:.2f}x",
                f"{run.rss:,.0f} MiB",
            ]
            for label, run in rows
        ],
        right={1, 2, 3, 4},
    )
    prepare = bulk.wall - importer
    report.say(
        f"Of the bulk row's {bulk.wall:.1f} s, {importer:.1f} s went to Neo4j's importer, "
        f"the server's start and the schema; the other {prepare:.1f} s to preparing the "
        "models (the same work as for either store) and writing the CSV files. At 5x "
        f"SQLite's throughput the bulk path would have {sqlite.wall / 5:.1f} s for all of it, "
        f"a fifth of the SQLite row's {sqlite.wall:.1f} s, whose work is mostly that same "
        'preparation (the stage columns of "Indexing throughput"): less than preparing the '
        "models takes, before any CSV file, importer or server."
    )
    report_costs(report, costs, len(sample), args.models / sqlite.wall)
    report.target(
        f"Neo4j through the store against SQLite, {args.models:,} models",
        ">= 0.5x",
        f"{sqlite.wall / store.wall:.2f}x",
        sqlite.wall / store.wall >= 0.5,
    )
    report.target(
        f"Neo4j in bulk against SQLite, {args.models:,} models",
        ">= 5x",
        f"{sqlite.wall / bulk.wall:.2f}x",
        sqlite.wall / bulk.wall >= 5,
    )
    report.save(args.json)


@dataclass(frozen=True)
class WriteCost:
    """One way of writing the sample: seconds per model, wall and this process's CPU."""

    label: str
    wall: float
    client: float


# Only the neurons, as the store writes them (its statement's first clause), in three ways.
NODES: LiteralString = "UNWIND $rows AS row CREATE (n:Neuron) SET n = row"
UNINDEXED: LiteralString = "UNWIND $rows AS row CREATE (n:UnindexedNeuron) SET n = row"
NODE_WAYS: tuple[tuple[str, LiteralString, bool], ...] = (
    ("the Neuron nodes alone, every index", NODES, True),
    ("the Neuron nodes alone, no embedding (the vector index skips them)", NODES, False),
    ("the nodes alone under a label no index covers", UNINDEXED, True),
)


def write_costs(uri: str, models: Sequence[IndexedModel]) -> list[WriteCost]:
    """The sample written in each way, a transaction per model, each way in a namespace of
    its own on the same server (the rows are built before the clock)."""
    store = Neo4jStore.from_uri(uri, namespace="bench-write-cost-store")
    try:
        costs = [_timed("the store's write", len(models), partial(_write_each, store, models))]
    finally:
        store.close()
    for i, (label, statement, embedding) in enumerate(NODE_WAYS):
        namespace = f"bench-write-cost-{i}"
        rows = [_neuron_rows(namespace, model, embedding) for model in models]
        store = Neo4jStore.from_uri(uri, namespace=namespace)
        try:
            with store.session() as session:
                costs.append(
                    _timed(label, len(models), partial(_write_rows, session, statement, rows))
                )
        finally:
            store.close()
    return costs


def _neuron_rows(namespace: str, model: IndexedModel, embedding: bool) -> list[dict[str, object]]:
    neurons, _ = model_columns(model)
    rows = [neuron_row(namespace, model.name, i, n) for i, n in enumerate(neurons)]
    if not embedding:
        for row in rows:
            del row["embedding"]
    return rows


def _write_rows(
    session: neo4j.Session, statement: LiteralString, models: list[list[dict[str, object]]]
) -> None:
    for rows in models:
        session.execute_write(_run, statement, rows)


def _run(tx: neo4j.ManagedTransaction, statement: LiteralString, rows: object) -> None:
    tx.run(statement, rows=rows).consume()


def _write_each(store: Neo4jStore, models: Sequence[IndexedModel]) -> None:
    for model in models:
        store.write(model)


def _timed(label: str, n: int, write: Callable[[], object]) -> WriteCost:
    """``write()``'s wall and CPU time, per model of the ``n`` it writes."""
    wall, cpu = time.perf_counter(), time.process_time()
    write()
    return WriteCost(label, (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)


def report_costs(report: Report, costs: list[WriteCost], sample: int, sqlite_rate: float) -> None:
    """The costs as a table, and the bound the nodes alone put on any schema keeping them."""
    report.say(
        f"Where a write's time goes, on the through-the-store row's server after that row, "
        f"{sample} of the models, a transaction each (the client is this process's CPU: the "
        "driver packing the rows; the rest is the server's):"
    )
    report.table(
        ["written", "per model", "client", "models/s at most", "against SQLite"],
        [
            [
                cost.label,
                f"{1000 * cost.wall:.1f} ms",
                f"{1000 * cost.client:.1f} ms",
                f"{1 / cost.wall:.1f}",
                f"{1 / cost.wall / sqlite_rate:.2f}x",
            ]
            for cost in costs
        ],
        right={1, 2, 3, 4},
    )
    nodes = costs[1]
    report.say(
        f"A writer that did nothing but write the neurons, with the schema's indexes, would "
        f"take {1000 * nodes.wall:.1f} ms a model, {1 / nodes.wall / sqlite_rate:.2f}x "
        "SQLite's throughput at best, before any relationship, with the server and the "
        "workers preparing the models sharing the same cores."
    )


if __name__ == "__main__":
    main()

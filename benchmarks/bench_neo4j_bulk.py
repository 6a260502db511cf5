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
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_index import write_zoo
from benchmarks.report import Report, add_json_argument, time_process
from circuitql.store import neo4j_server

CLI = "import sys; from circuitql.cli import main; sys.exit(main())"
PASSWORD = "bench-bulk-pw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
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
        "models (the same work as for either store) and writing the CSV files."
    )
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


if __name__ == "__main__":
    main()

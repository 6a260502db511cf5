"""The embedded store's size against the model files, and every library query on it, against
the earlier store layout in the same run.

    python benchmarks/bench_store.py --models 1000 --repeats 5 --baseline DIR

The zoo is ``circuitql.zoo.plant.hosted_zoo`` (dense 8-64-64-64-4 ReLU hosts, one in ten
carrying a library circuit or a decoy), written once as safetensors + JSON config. This
circuitql and the earlier one at ``DIR`` (a ``git worktree`` of the commit before the compact
layout, in a worker process) each index it into a fresh store; the files and both stores are
measured in bytes. Then every library circuit and composition runs on both stores, the
default search and ``EXACT``, interleaved, each engine ``--repeats`` times two ways: cold, as a
shell's single query meets it (a new connection for each run, opening it not timed: neither
SQLite's page cache nor decoded edges carry over) and warm, as in a Python session (one
connection for every run). The operating system's file cache is warm for both. Finally a copy
of the earlier store is upgraded in place by opening it, timed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from benchmarks.bench_library import COMPOSITIONS, EngineWorker, add_zoo_arguments, write_hosted_zoo
from benchmarks.report import Report, add_json_argument, ms, timed
from circuitql import Match
from circuitql.api import Database, connect
from circuitql.language.library import builtin_library

SIZE_TARGET = 2.0  # store bytes per model at most twice the model's files
LATENCY_TARGET = 1.2  # no query slower than the earlier layout's by more than this


def _bytes(path: Path) -> int:
    """A store file's bytes with its write-ahead log, if one is left."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _all(db: Database, text: str) -> list[Match]:
    return list(db.query(text))


def _cold(store: Path, text: str, repeats: int) -> float:
    """Median seconds of the query on a fresh connection each time (opening not timed)."""
    times = []
    for _ in range(repeats):
        with connect(str(store), create=False) as db:
            times += timed(partial(_all, db, text), 1)[0]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    add_zoo_arguments(parser)
    parser.add_argument(
        "--baseline",
        type=Path,
        required=True,
        metavar="DIR",
        help="a checkout of the commit before the compact layout (git worktree add DIR COMMIT)",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("The embedded store: bytes per model, and queries on it")
    report.say(__doc__.split("\n\n", 2)[2].replace("\n", " "))
    baseline = EngineWorker(args.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        folder.mkdir()
        write_hosted_zoo(folder, args.models, args.seed, args.jobs)
        files = sorted(folder.glob("*.safetensors"))
        file_bytes = sum(f.stat().st_size + f.with_suffix(".json").stat().st_size for f in files)
        ours, theirs = Path(tmp) / "ours.db", Path(tmp) / "theirs.db"
        with connect(str(ours)) as db:
            indexed = db.index_paths([folder], files=files, jobs=args.jobs)
        assert len(indexed.indexed) == len(files), indexed.failed[:3]
        neurons = sum(m.n_neurons for m in indexed.indexed)
        baseline.ask(op="index", store=str(theirs), files=[str(f) for f in files], jobs=args.jobs)
        rows, worst = _latency(baseline, ours, theirs, args.repeats)
        baseline.close()  # its connection closed: its write-ahead log is checkpointed
        upgraded = Path(tmp) / "upgraded.db"
        shutil.copy(theirs, upgraded)
        start = time.perf_counter()
        with connect(str(upgraded)):
            upgrade = time.perf_counter() - start
        sizes = {"model files": file_bytes, "earlier store": _bytes(theirs), "store": _bytes(ours)}
    n = len(files)
    report.say(f"{n:,} models, {neurons:,} canonical neurons.")
    report.table(
        ["", "bytes", "per model", "per neuron", "against the files"],
        [
            [
                label,
                f"{size:,}",
                f"{size / n / 1024:,.1f} KiB",
                f"{size / neurons:,.0f} B",
                f"{size / file_bytes:.2f}x",
            ]
            for label, size in sizes.items()
        ],
    )
    report.table(
        ["query", "earlier, cold", "cold", "", "earlier, warm", "warm", ""],
        rows,
    )
    report.say(
        f"Upgrading a copy of the earlier store in place (opening it): {upgrade:.1f} s for "
        f"{n:,} models."
    )
    ratio = sizes["store"] / file_bytes
    report.target(
        f"store bytes against the model files ({n:,} models)",
        f"<= {SIZE_TARGET:g}x",
        f"{ratio:.2f}x (earlier: {sizes['earlier store'] / file_bytes:.2f}x)",
        ratio <= SIZE_TARGET,
    )
    name, slowest = worst
    report.target(
        f"library queries on the compact store at {n:,} models against the earlier layout",
        f"within {LATENCY_TARGET:g}x each",
        f"worst {name}: {slowest:.2f}x",
        slowest <= LATENCY_TARGET,
    )
    report.save(args.json)


def _latency(
    baseline: EngineWorker, ours: Path, theirs: Path, repeats: int
) -> tuple[list[list[str]], tuple[str, float]]:
    """A row per query, and the query slowest against the earlier store, cold or warm."""
    rows: list[list[str]] = []
    worst = ("", 0.0)
    with connect(str(ours), create=False) as warm_db:
        for circuit in [*builtin_library().names, *COMPOSITIONS]:
            for text in (f"MATCH {circuit}", f"MATCH {circuit} EXACT"):
                earlier = {
                    fresh: statistics.median(
                        baseline.ask(
                            op="time", store=str(theirs), query=text, repeats=repeats, fresh=fresh
                        )["times"]
                    )
                    for fresh in (True, False)
                }
                cold = _cold(ours, text, repeats)
                warm = statistics.median(timed(partial(_all, warm_db, text), repeats)[0])
                ratios = (cold / earlier[True], warm / earlier[False])
                for label, ratio in zip(("cold", "warm"), ratios, strict=True):
                    worst = max(worst, (f"{text} ({label})", ratio), key=lambda item: item[1])
                rows.append(
                    [
                        f"`{text}`",
                        ms(earlier[True]),
                        ms(cold),
                        f"{ratios[0]:.2f}x",
                        ms(earlier[False]),
                        ms(warm),
                        f"{ratios[1]:.2f}x",
                    ]
                )
                print(rows[-1], file=sys.stderr, flush=True)
    return rows, worst


if __name__ == "__main__":
    main()

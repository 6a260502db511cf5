"""Indexing throughput and the signature-vs-excited-states comparison.

    python benchmarks/bench_index.py --models 1000 --jobs 1 2

1. Write N random ReLU MLPs (8 inputs, 3 hidden layers of 64, 4 outputs) as safetensors + JSON
   config files (not timed), then index the folder into a fresh embedded store once per
   ``--jobs`` value, with the time split per stage (load, canonicalize, sign, write; summed
   over worker processes) and the peak resident memory of the writing process.
   With ``--neo4j URI`` the same folder is also indexed into a Neo4j store (a fresh namespace,
   deleted after) with the largest ``--jobs`` value, and both stores' models/s, neurons/s and
   relationships/s (edges written) are printed side by side:

       python benchmarks/bench_index.py --models 200 --jobs 1 --neo4j neo4j://USER:PW@HOST:7687

   With ``--busy N`` each ``--jobs`` value is also timed with N busy-loop processes running
   beside it (an artificial competing load, started before and stopped after each run), as
   on a machine other jobs keep busy.

2. Neuron equivalence for the same neuron at n binary inputs: the exhaustive "excited states"
   comparison (evaluate both neurons on all 2^n binary inputs) against comparing signatures,
   measured per pair in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_json_argument, ms, peak_rss_mib
from circuitql.api import Database, connect
from circuitql.export import save
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.pipeline import StageTimes
from circuitql.indexer.signature import signatures
from circuitql.store.neo4j import scratch_store
from circuitql.zoo.demo import random_mlp


@dataclass(frozen=True)
class IndexRun:
    """One indexing of the folder into one store: what was written and how long it took."""

    wall: float
    models: int
    neurons: int
    relationships: int  # edges written
    times: StageTimes

    def rates(self) -> list[str]:
        """models/s, neurons/s, relationships/s."""
        return [
            f"{self.models / self.wall:.1f}",
            f"{self.neurons / self.wall:,.0f}",
            f"{self.relationships / self.wall:,.0f}",
        ]


def index_folder(
    db: Database, n_models: int, jobs: int, folder: Path, dask: str | None = None
) -> IndexRun:
    start = time.perf_counter()
    report = db.index_paths([folder], jobs=jobs, dask=dask)
    wall = time.perf_counter() - start
    assert len(report.indexed) == n_models, report.failed[:3]
    return IndexRun(
        wall,
        n_models,
        sum(m.n_neurons for m in report.indexed),
        sum(m.n_edges for m in report.indexed),
        report.times,
    )


STAGES = ("load", "canonicalize", "sign", "write")


def stage_cells(times: StageTimes, models: int) -> list[str]:
    """Each stage's time per model, as table cells."""
    return [ms(getattr(times, stage) / models) for stage in STAGES]


def bench_index(
    n_models: int, jobs: int, folder: Path, dask: str | None = None
) -> tuple[IndexRun, float]:
    """One indexing into a fresh SQLite store, and the writer's peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp, connect(str(Path(tmp) / "bench.db")) as db:
        run = index_folder(db, n_models, jobs, folder, dask)
    return run, peak_rss_mib()


@contextmanager
def busy_loops(n: int) -> Iterator[None]:
    """``n`` processes spinning on a core each, for as long as the block runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)  # let them reach their loop
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def bench_neo4j(uri: str, n_models: int, jobs: int, folder: Path) -> IndexRun:
    with scratch_store(uri, "bench") as store:
        return index_folder(Database(store), n_models, jobs, folder)


def write_zoo(folder: Path, n_models: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n_models):
        save(random_mlp(rng, 8, [64, 64, 64], 4), folder / f"mlp{i:05d}.safetensors")


def bench_equivalence(n_inputs: int, pairs: int, seed: int) -> tuple[float, float]:
    """Seconds per pair: the exhaustive excited-states comparison, and signatures."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_inputs)
    b = float(rng.normal())
    k = 2.5  # the same neuron, rescaled: equivalent by both methods
    states = np.array(list(itertools.product([0.0, 1.0], repeat=n_inputs)))

    def excited_states_equal() -> bool:
        return bool(
            np.allclose(np.maximum(states @ w + b, 0) * k, np.maximum(states @ (k * w) + k * b, 0))
        )

    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(n_inputs)]
    a = NeuronGraph(
        (
            *units,
            Unit(
                "h:0",
                UnitKind.HIDDEN,
                Activation.RELU,
                b,
                dict(zip([u.id for u in units], w.tolist(), strict=True)),
            ),
        )
    )
    sig_a = signatures(a)["h:0"]
    sig_b = signatures(a)["h:0"]

    start = time.perf_counter()
    slow_runs = max(1, pairs // 1000)
    for _ in range(slow_runs):
        assert excited_states_equal()
    exhaustive = (time.perf_counter() - start) / slow_runs

    start = time.perf_counter()
    for _ in range(pairs):
        assert sig_a == sig_b
    return exhaustive, (time.perf_counter() - start) / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--inputs", type=int, default=16, help="binary inputs for equivalence")
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--neo4j", metavar="URI", help="also index into this Neo4j server and compare with sqlite"
    )
    parser.add_argument(
        "--dask",
        action="store_true",
        help="also index on a Dask LocalCluster of the largest --jobs workers",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="also time each --jobs value beside N busy-loop processes",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Indexing throughput")
    report.say(
        f"{args.models:,} random ReLU MLPs 8-64-64-64-4 written as safetensors + JSON "
        "config (not timed), then `index_paths` on the folder into a fresh store per "
        "row. Stage times are per model, summed over worker processes (CPU time, not "
        "wall time); peak RSS is the writing process's."
    )
    rows: list[list[str]] = []
    walls: dict[int, float] = {}
    busy_walls: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_zoo(Path(tmp), args.models, args.seed)
        for jobs in args.jobs:
            run, rss = bench_index(args.models, jobs, Path(tmp))
            walls[jobs] = run.wall
            rows.append(
                [
                    "SQLite",
                    f"{jobs}",
                    "0",
                    f"{run.wall:.1f} s",
                    *run.rates(),
                    *stage_cells(run.times, run.models),
                    f"{rss:,.0f} MiB",
                ]
            )
            if args.neo4j and jobs == max(args.jobs):  # Neo4j's writer is the bottleneck
                neo = bench_neo4j(args.neo4j, args.models, jobs, Path(tmp))
                rows.append(
                    [
                        "Neo4j",
                        f"{jobs}",
                        "0",
                        f"{neo.wall:.1f} s",
                        *neo.rates(),
                        *stage_cells(neo.times, neo.models),
                        "",
                    ]
                )
        if args.dask:
            jobs = max(args.jobs)
            run, rss = bench_index(args.models, jobs, Path(tmp), dask="local")
            dask_wall = run.wall
            rows.append(
                [
                    f"SQLite, Dask LocalCluster of {jobs}",
                    f"{jobs}",
                    "0",
                    f"{run.wall:.1f} s",
                    *run.rates(),
                    *stage_cells(run.times, run.models),
                    f"{rss:,.0f} MiB",
                ]
            )
        for jobs in args.jobs if args.busy else ():
            with busy_loops(args.busy):
                run, rss = bench_index(args.models, jobs, Path(tmp))
            busy_walls[jobs] = run.wall
            rows.append(
                [
                    "SQLite",
                    f"{jobs}",
                    f"{args.busy}",
                    f"{run.wall:.1f} s",
                    *run.rates(),
                    *stage_cells(run.times, run.models),
                    "",
                ]
            )
    report.table(
        [
            "store",
            "jobs",
            "busy loops",
            "wall",
            "models/s",
            "neurons/s",
            "relationships/s",
            "load",
            "canonicalize",
            "sign",
            "write",
            "peak RSS",
        ],
        rows,
        right=set(range(1, 12)),
    )
    fastest = min(walls.values())
    for label, timed in (("", walls), (f" beside {args.busy} busy loops", busy_walls)):
        if 1 in timed and len(timed) > 1:
            report.say(
                f"Speed against one process{label}: "
                + ", ".join(
                    f"{jobs} jobs {timed[1] / wall:.2f}x"
                    for jobs, wall in timed.items()
                    if jobs != 1
                )
                + "."
            )
    if args.dask:
        pool = walls[max(args.jobs)]
        report.say(
            f"The Dask LocalCluster ({max(args.jobs)} single-threaded workers, started "
            f"inside the timed run) takes {dask_wall / pool:.2f}x the process pool's "
            "wall time on the same folder."
        )
    if 1 in busy_walls and 2 in busy_walls:
        report.target(
            f"2 jobs against 1 beside {args.busy} busy loops",
            "faster",
            f"{busy_walls[1] / busy_walls[2]:.2f}x",
            busy_walls[2] < busy_walls[1],
        )
    if args.models == 1000:
        report.target(
            "index 1,000 3x64 models (embedded store)", "< 60 s", f"{fastest:.1f} s", fastest < 60
        )
    exhaustive, indexed = bench_equivalence(args.inputs, args.pairs, args.seed)
    report.say(
        f'Neuron equivalence, same run: the exhaustive "excited states" comparison of '
        f"one neuron with its rescaled copy over all 2^{args.inputs} binary inputs "
        f"(vectorised numpy) takes {ms(exhaustive)} per pair; comparing their "
        f"signatures takes {indexed * 1e9:,.0f} ns per pair: "
        f"**{exhaustive / indexed:,.0f}x** faster."
    )
    report.target(
        f"signatures vs excited states at n = {args.inputs}",
        ">= 1,000x",
        f"{exhaustive / indexed:,.0f}x",
        exhaustive / indexed >= 1000,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

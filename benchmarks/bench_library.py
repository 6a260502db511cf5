"""Every library circuit at zoo scale: indexing, query latency, recall and precision.

    python benchmarks/bench_library.py --sizes 100 1000 10000 --repeats 5

The zoo is ``circuitql.zoo.plant.hosted_zoo``: dense 8-64-64-64-4 ReLU hosts, one in ten
carrying a library circuit or one of its decoys (a flipped sign, a ratio 40% off), cycling
through every case, each permuted, rescaled and noised; the rest random. It is written once
as safetensors + JSON config files (not timed); each size indexes the first N files into a
fresh embedded store (timed, per stage), then runs ``MATCH <circuit>`` for every library
circuit and scores the answers against the ground truth (``GroundTruth.score``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from benchmarks.bench_index import stage_cells
from benchmarks.bench_query import time_query
from benchmarks.report import Report, add_json_argument, ms, peak_rss_mib, percentile
from circuitql.api import connect
from circuitql.query.library import builtin_library
from circuitql.zoo.export import save, spec_from_graph
from circuitql.zoo.plant import Expected, GroundTruth, HostShape, Score, hosted_zoo

INDEX_TARGET_S = 600.0  # 10,000 models in under 10 minutes
QUERY_TARGET_S = 1.0  # every library query under 1 s median at 10,000 models
TARGET_SIZE = 10_000


def _write_slice(bounds: tuple[int, int], folder: Path, seed: int) -> list[Expected]:
    first, end = bounds
    expected: list[Expected] = []
    for name, graph, found in hosted_zoo(end, seed, HostShape(), first=first):
        save(spec_from_graph(graph, keep_ids=True), folder / f"{name}.safetensors")
        expected += found
    return expected


def write_hosted_zoo(folder: Path, size: int, seed: int, jobs: int) -> GroundTruth:
    """The zoo's files, written by ``jobs`` processes in slices (each model depends only on
    its index, so the files are the same whatever ``jobs``)."""
    step = max(1, min(500, size // (4 * jobs) or 1))
    slices = [(lo, min(size, lo + step)) for lo in range(0, size, step)]
    write = partial(_write_slice, folder=folder, seed=seed)
    with get_context("forkserver").Pool(jobs) as pool:
        parts = pool.map(write, slices)
    return GroundTruth(seed, tuple(e for part in parts for e in part))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="indexing worker processes")
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Every library circuit at zoo scale")
    circuits = builtin_library().names
    report.say(__doc__.split("\n\n", 2)[2].replace("\n", " "))
    index_rows: list[list[str]] = []
    scores: dict[int, dict[str, Score]] = {}
    latency: dict[str, list[tuple[float, float, int]]] = {c: [] for c in circuits}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        start = time.perf_counter()
        truth = write_hosted_zoo(folder, max(args.sizes), args.seed, args.jobs)
        print(f"wrote {max(args.sizes)} models in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        files = sorted(folder.glob("*.safetensors"))
        for size in sorted(args.sizes):
            names = {f.stem for f in files[:size]}
            sized = GroundTruth(truth.seed, tuple(e for e in truth.expected if e.model in names))
            with connect(str(Path(tmp) / f"zoo{size}.db")) as db:
                start = time.perf_counter()
                indexed = db.index_paths([folder], files=files[:size], jobs=args.jobs)
                wall = time.perf_counter() - start
                assert len(indexed.indexed) == size, indexed.failed[:3]
                neurons = sum(m.n_neurons for m in indexed.indexed)
                index_rows.append([f"{size:,}", f"{wall:,.1f} s", f"{size / wall:.1f}",
                                   f"{neurons / wall:,.0f}",
                                   *stage_cells(indexed.times, size),
                                   f"{peak_rss_mib():,.0f} MiB"])
                if size == TARGET_SIZE:
                    report.target("index 10,000 3x64 models (embedded store)", "< 10 min",
                                   f"{wall / 60:.1f} min", wall < INDEX_TARGET_S)
                scores[size] = {}
                for circuit in circuits:
                    times, explain, matches = time_query(db, circuit, args.repeats)
                    latency[circuit].append((statistics.median(times), percentile(times, 0.95),
                                             explain.counts["lookup"]))
                    scores[size][circuit] = sized.score(
                        circuit, [(m.model, m.bindings) for m in matches])
            print(f"size {size}: done", file=sys.stderr)
    sizes = sorted(args.sizes)
    report.say(f"Indexing ({args.jobs} worker processes; stage times are per model, summed "
               "over workers; peak RSS of the writing process):")
    report.table(["models", "wall", "models/s", "neurons/s", "load", "canonicalize", "sign",
                  "write", "peak RSS"], index_rows)
    report.say(f"Query latency, median / p95 of {args.repeats} runs, and the anchor candidates "
               "the index returned (the engine's work is proportional to them):")
    report.table(["circuit", *(f"{s:,} models" for s in sizes),
                  f"candidates at {sizes[-1]:,}"],
                 [[c, *(f"{ms(med)} / {ms(p95)}" for med, p95, _ in latency[c]),
                   f"{latency[c][-1][2]:,}"] for c in circuits])
    report.say("Against the ground truth: *found* planted instances at their binding, "
               "*false* reports (a decoy reported as what it imitates, a wrong binding, a "
               "circuit in a random host), *nested* circuits inside a planted network (abs "
               "holds a detector pair), which the truth does not list and are not errors:")
    rows = []
    for size in sizes:
        total = sum(scores[size].values(), Score(0, 0, 0, 0))
        rows.append([f"{size:,}", f"{total.found} / {total.found + total.missed}",
                     f"{total.recall:.1%}", f"{total.false}", f"{total.precision:.1%}",
                     f"{total.nested}"])
        worst = [c for c, s in scores[size].items() if s.missed or s.false]
        if worst:
            report.say(f"At {size:,} models, circuits with misses or false reports: " + ", ".join(
                f"{c} ({scores[size][c]})" for c in worst))
        report.target(f"recall and precision on planted ground truth ({size:,} models)",
                      "100%, no false positive",
                      f"{total.recall:.1%} recall, {total.false} false",
                      total.missed == 0 and total.false == 0)
    report.table(["models", "found / planted", "recall", "false", "precision", "nested"], rows)
    if sizes[-1] == TARGET_SIZE:
        slowest = max(circuits, key=lambda c: latency[c][-1][0])
        report.target("library queries at 10,000 models", "< 1 s median each",
                      f"slowest {slowest}: {ms(latency[slowest][-1][0])}",
                      latency[slowest][-1][0] < QUERY_TARGET_S)
    report.save(args.json)


if __name__ == "__main__":
    main()

"""Every library circuit at zoo scale: indexing, query latency, recall and precision, exact
and approximate, against an earlier engine in the same run.

    python benchmarks/bench_library.py --sizes 100 1000 10000 --repeats 5 --baseline DIR

The zoo is ``circuitql.zoo.plant.hosted_zoo``: dense 8-64-64-64-4 ReLU hosts, one in ten
carrying a library circuit or one of its decoys (a flipped sign, a ratio 40% off), cycling
through every case, each permuted, rescaled and noised; the rest random. Beside them lie the
circuits as training leaves them, ``circuitql.zoo.perturbed``: 21 cases (small cancelling
biases, detectors split over near-parallel units, linear and dead units beside a pair, inputs
read from hidden units of another scale, compositions, a perturbed is_even chain) and 17
decoys, each in a small host of its own with its domain recorded, one set per 1,000 hosted
models (at least one). Every model is written once as safetensors + JSON config (not
timed); each size indexes the first N hosted files and its perturbed sets into a fresh
embedded store (timed, per stage), then runs every library circuit and composition three
ways, interleaved: the default (approximate) search, ``MATCH ... EXACT``, and, with
``--baseline``, the earlier engine at that directory (a ``git worktree``) on a store it
indexed from the same files. Each engine is timed in a worker process of its own, by the
same script (``benchmarks/baseline_worker.py``): this one's queries once ran in the
benchmark's process, among the ground truth and every answer kept for scoring, and a heap
that size slows the same search (``MATCH scale`` took 24% longer beside five million live
objects than alone, in one measurement by hand).
Answers are scored against the ground truth (``GroundTruth.score``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.bench_index import stage_cells
from benchmarks.report import Report, add_json_argument, ms, peak_rss_mib
from circuitql.api import connect
from circuitql.export import save, spec_from_graph
from circuitql.language.library import builtin_library
from circuitql.zoo.perturbed import perturbed_zoo
from circuitql.zoo.plant import Expected, GroundTruth, HostShape, Score, hosted_zoo

INDEX_TARGET_S = 600.0  # 10,000 models in under 10 minutes
QUERY_TARGET_S = 1.0  # every library query under 1 s median at 10,000 models
BASELINE_RATIO = 1.5  # every library query within 1.5x of the earlier engine at 10,000
TARGET_SIZE = 10_000
PERTURBED_EVERY = 1_000  # one set of perturbed cases per this many hosted models
COMPOSITIONS = ("abs >> negation", "(abs | negation) >> scale")
ROOT = Path(__file__).resolve().parent.parent  # this checkout

Matches = list[tuple[str, Mapping[str, str]]]


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


def write_perturbed(folder: Path, seed: int) -> tuple[list[Path], list[Expected]]:
    """One set of perturbed cases as files named ``perturbed-s<seed>-<case>``, their domain
    in the JSON config, and the ground truth renamed to match."""
    files, expected = [], []
    for name, graph, domain, found in perturbed_zoo(seed):
        stem = f"perturbed-s{seed}-" + re.sub(r"[^A-Za-z0-9]+", "_", name.split("/", 1)[1])
        spec = replace(spec_from_graph(graph, keep_ids=True), domain=domain)
        files.append(save(spec, folder / f"{stem}.safetensors"))
        expected += [replace(e, model=stem) for e in found]
    return files, expected


def add_zoo_arguments(parser: argparse.ArgumentParser) -> None:
    """--repeats, --jobs and --seed, as every benchmark over the hosted zoo takes them."""
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="indexing worker processes")
    parser.add_argument("--seed", type=int, default=0)


class EngineWorker:
    """An engine in a worker process (``benchmarks/baseline_worker.py``): the checkout at
    ``root`` and nothing else on its path."""

    def __init__(self, root: Path) -> None:
        worker = Path(__file__).resolve().with_name("baseline_worker.py")
        # In the checkout: its indexing workers' fork server imports circuitql before it
        # takes this process's path, from its working directory.
        self.process = subprocess.Popen(
            [sys.executable, str(worker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("an engine worker stopped; see its output above")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


@dataclass
class Timing:
    """Median and p95 seconds of one query at one size, what it found, and (for the
    approximate search) how many anchor candidates the index returned."""

    median: float
    p95: float
    matches: Matches
    candidates: int = 0

    @staticmethod
    def of(times: list[float], matches: Matches, candidates: int = 0) -> Timing:
        ranked = sorted(times)
        return Timing(
            statistics.median(times),
            ranked[max(0, -(-95 * len(ranked) // 100) - 1)],
            matches,
            candidates,
        )


def _ours(worker: EngineWorker, store: str, text: str, repeats: int) -> Timing:
    answer = worker.ask(op="time", store=store, query=text, repeats=repeats, explain=True)
    return Timing.of(
        answer["times"],
        [(model, bindings) for model, bindings in answer["matches"]],
        answer["candidates"],
    )


def _only(matches: Matches, models: set[str]) -> Matches:
    return [(model, bindings) for model, bindings in matches if model in models]


def _same(a: Matches, b: Matches) -> bool:
    """Whether two answers report the same instances: the same units of the same models (a
    symmetric circuit's instance may be bound either way round: add(a, b) is add(b, a))."""

    def key(matches: Matches) -> set[tuple[str, frozenset[str]]]:
        return {(model, frozenset(bindings.values())) for model, bindings in matches}

    return key(a) == key(b)


def _total(scores: Iterable[Score]) -> Score:
    return sum(scores, Score(0, 0, 0, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    add_zoo_arguments(parser)
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="a checkout of an earlier commit (git worktree add DIR COMMIT) "
        "whose engine to time beside this one",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Every library circuit at zoo scale")
    circuits = [*builtin_library().names, *COMPOSITIONS]
    sizes = sorted(args.sizes)
    report.say(__doc__.split("\n\n", 2)[2].replace("\n", " "))
    baseline = EngineWorker(args.baseline) if args.baseline else None
    ours = EngineWorker(ROOT)
    index_rows: list[list[str]] = []
    latency: dict[int, dict[str, dict[str, Timing]]] = {}
    scores: dict[int, dict[str, dict[str, Score]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        folder.mkdir()
        start = time.perf_counter()
        truth = write_hosted_zoo(folder, sizes[-1], args.seed, args.jobs)
        hosted_files = sorted(folder.glob("host*.safetensors"))
        perturbed: list[tuple[list[Path], list[Expected]]] = [
            write_perturbed(folder, seed) for seed in range(max(1, sizes[-1] // PERTURBED_EVERY))
        ]
        print(
            f"wrote {len(hosted_files) + sum(len(f) for f, _ in perturbed)} models in "
            f"{time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        for size in sizes:
            sets = perturbed[: max(1, size // PERTURBED_EVERY)]
            files = hosted_files[:size] + [f for part, _ in sets for f in part]
            hosted = {f.stem for f in hosted_files[:size]}
            hosted_truth = GroundTruth(
                truth.seed, tuple(e for e in truth.expected if e.model in hosted)
            )
            full_truth = replace(
                hosted_truth,
                expected=hosted_truth.expected + tuple(e for _, found in sets for e in found),
            )
            store = str(Path(tmp) / f"zoo{size}.db")
            with connect(store) as db:
                start = time.perf_counter()
                indexed = db.index_paths([folder], files=files, jobs=args.jobs)
                wall = time.perf_counter() - start
                assert len(indexed.indexed) == len(files), indexed.failed[:3]
                neurons = sum(m.n_neurons for m in indexed.indexed)
                base_wall = ""
                if baseline is not None:
                    answer = baseline.ask(
                        op="index",
                        store=store + ".base",
                        files=[str(f) for f in files],
                        jobs=args.jobs,
                    )
                    base_wall = f"{answer['wall']:,.1f} s"
                index_rows.append(
                    [
                        f"{size:,} + {len(files) - size}",
                        f"{wall:,.1f} s",
                        f"{len(files) / wall:.1f}",
                        f"{neurons / wall:,.0f}",
                        *stage_cells(indexed.times, len(files)),
                        f"{peak_rss_mib():,.0f} MiB",
                        base_wall,
                    ]
                )
                if size == TARGET_SIZE:
                    report.target(
                        "index 10,000 3x64 models (embedded store)",
                        "< 10 min",
                        f"{wall / 60:.1f} min",
                        wall < INDEX_TARGET_S,
                    )
                latency[size], scores[size] = {}, {}
                for circuit in circuits:
                    runs = {}
                    if baseline is not None:
                        answer = baseline.ask(
                            op="time",
                            store=store + ".base",
                            query=f"MATCH {circuit}",
                            repeats=args.repeats,
                        )
                        runs["baseline"] = Timing.of(
                            answer["times"],
                            [(model, bindings) for model, bindings in answer["matches"]],
                        )
                    runs["exact"] = _ours(ours, store, f"MATCH {circuit} EXACT", args.repeats)
                    runs["default"] = _ours(ours, store, f"MATCH {circuit}", args.repeats)
                    latency[size][circuit] = runs
                    scores[size][circuit] = {
                        "default": full_truth.score(circuit, runs["default"].matches),
                        "exact": hosted_truth.score(circuit, _only(runs["exact"].matches, hosted)),
                    }
            print(f"size {size}: done", file=sys.stderr)
    ours.close()
    if baseline is not None:
        baseline.close()
    _report(report, sizes, circuits, index_rows, latency, scores, args)
    report.save(args.json)


def _report(
    report: Report,
    sizes: list[int],
    circuits: list[str],
    index_rows: list[list[str]],
    latency: dict[int, dict[str, dict[str, Timing]]],
    scores: dict[int, dict[str, dict[str, Score]]],
    args: argparse.Namespace,
) -> None:
    with_base = args.baseline is not None
    if with_base:
        revision = subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        report.say(f"The earlier engine is commit {revision.stdout.strip() or '(unknown)'}.")
    report.say(
        f"Indexing ({args.jobs} worker processes; models are hosted + perturbed; stage "
        "times are per model, summed over workers; peak RSS of the writing process"
        + ("; the last column is the earlier engine indexing the same files" if with_base else "")
        + "):"
    )
    report.table(
        [
            "models",
            "wall",
            "models/s",
            "neurons/s",
            "load",
            "canonicalize",
            "sign",
            "write",
            "peak RSS",
            *(["earlier engine"] if with_base else []),
        ],
        index_rows,
    )
    for size in sizes:
        report.say(
            f"Query latency at {size:,} hosted models, median / p95 of {args.repeats} "
            "runs"
            + (", and each against the earlier engine's median" if with_base else "")
            + "; the default search's anchor candidates:"
        )
        rows = []
        for circuit in circuits:
            runs = latency[size][circuit]
            base = runs.get("baseline")
            cells = [] if base is None else [f"{ms(base.median)} / {ms(base.p95)}"]
            for mode in ("exact", "default"):
                t = runs[mode]
                ratio = "" if base is None else f" ({t.median / base.median:.2f}x)"
                cells.append(f"{ms(t.median)} / {ms(t.p95)}{ratio}")
            rows.append([circuit, *cells, f"{runs['default'].candidates:,}"])
        report.table(
            [
                "circuit",
                *(["earlier engine"] if with_base else []),
                "EXACT",
                "default (approximate)",
                "candidates",
            ],
            rows,
        )
    report.say(
        "Against the ground truth: *found* planted instances at their binding, "
        "*false* reports (a decoy reported as what it imitates, a wrong binding, a "
        "circuit in a random host), *nested* circuits inside a planted network (abs "
        "holds a detector pair), which the truth does not list and are not errors. "
        "The default search is scored on every model, hosted and perturbed; EXACT on "
        "the hosted models, where it must give the answers it always gave"
        + (
            " (the earlier engine's instances, unit for unit, for every library "
            "circuit; the compositions are new: the earlier engine found none of them)"
            if with_base
            else ""
        )
        + ":"
    )
    rows = []
    for size in sizes:
        for mode in ("default", "exact"):
            total = _total(s[mode] for s in scores[size].values())
            same = ""
            if with_base and mode == "exact":
                hosted = {
                    m
                    for c in circuits
                    for m, _ in latency[size][c]["exact"].matches
                    if m.startswith("host")
                } | {
                    m
                    for c in circuits
                    for m, _ in latency[size][c]["baseline"].matches
                    if m.startswith("host")
                }
                differ = [
                    c
                    for c in circuits
                    if c not in COMPOSITIONS
                    and not _same(
                        _only(latency[size][c]["exact"].matches, hosted),
                        _only(latency[size][c]["baseline"].matches, hosted),
                    )
                ]
                same = "yes" if not differ else "differ: " + ", ".join(differ)
                if "fold" in differ:
                    report.say(
                        f"At {size:,} models, fold differs by design: the earlier "
                        "engine compared WHERE within the tolerance and reported abs "
                        "networks as folds at c = 0, though fold says WHERE c > 0; "
                        "inequalities now compare exactly."
                    )
            rows.append(
                [
                    f"{size:,}",
                    "default" if mode == "default" else "EXACT",
                    f"{total.found} / {total.found + total.missed}",
                    f"{total.recall:.1%}",
                    f"{total.false}",
                    f"{total.precision:.1%}",
                    f"{total.nested}",
                    *([same] if with_base else []),
                ]
            )
            worst = [c for c, s in scores[size].items() if s[mode].missed or s[mode].false]
            if worst:
                report.say(
                    f"At {size:,} models ({mode}), circuits with misses or false "
                    "reports: " + ", ".join(f"{c} ({scores[size][c][mode]})" for c in worst)
                )
            name = "" if mode == "default" else " EXACT, hosted models"
            report.target(
                f"recall and precision on planted ground truth ({size:,} models{name})",
                "100%, no false positive",
                f"{total.recall:.1%} recall, {total.false} false",
                total.missed == 0 and total.false == 0,
            )
    report.table(
        [
            "models",
            "search",
            "found / planted",
            "recall",
            "false",
            "precision",
            "nested",
            *(["same answers as the earlier engine"] if with_base else []),
        ],
        rows,
    )
    top = sizes[-1]
    library = [c for c in circuits if c not in COMPOSITIONS]  # what the targets are about
    if top == TARGET_SIZE:
        for mode in ("exact", "default"):
            slowest = max(library, key=lambda c: latency[top][c][mode].median)
            report.target(
                f"library queries at 10,000 models ({mode})",
                "< 1 s median each",
                f"slowest {slowest}: {ms(latency[top][slowest][mode].median)}",
                latency[top][slowest][mode].median < QUERY_TARGET_S,
            )
            if with_base:

                def slowdown(c: str, mode: str = mode) -> float:
                    runs = latency[top][c]
                    return runs[mode].median / runs["baseline"].median

                farthest = max(library, key=slowdown)
                report.target(
                    f"library queries at 10,000 models ({mode}) against the earlier engine",
                    f"within {BASELINE_RATIO}x each",
                    f"worst {farthest}: {slowdown(farthest):.2f}x",
                    slowdown(farthest) <= BASELINE_RATIO,
                )


if __name__ == "__main__":
    main()

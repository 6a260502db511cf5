"""Query latency against zoo size, and against the no-index VF2 baseline.

    python benchmarks/bench_query.py --sizes 100 1000 --baseline-models 2

For each zoo size N: index N random ReLU MLPs (8 inputs, 3 hidden layers of 64, 4 outputs),
one in ten with an abs circuit planted (permuted, rescaled, 1% noise), into a fresh embedded
store; then time ``MATCH abs`` (median and p95 of repeated runs) and report its candidates per
stage. Then, on a small zoo of narrower networks (the baseline is exponential in width), run
the per-model networkx VF2 baseline (``benchmarks/vf2_baseline.py``) on models planted and
not, compare its answers with the engine's on the same models, and report the ratio of
per-model times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_json_argument, ms, percentile, timed
from benchmarks.vf2_baseline import baseline_matches
from circuitql.api import Database, connect
from circuitql.engine.explain import Explain
from circuitql.engine.results import Match
from circuitql.language import compile_query, expand
from circuitql.language.compile import MatchQuery
from circuitql.zoo.plant import planted_host, random_host

SHAPE = (8, [64, 64, 64], 4)
PLANTED_EVERY = 10


def zoo_items(
    n_models: int, seed: int, width: int = 64, planted_count: int | None = None
) -> tuple[list[tuple[object, str]], list[str]]:
    """(graph, name) pairs of the zoo, and the names of the models with a planted abs: one
    in ten, or the first ``planted_count`` of every ten when that is given."""
    planted: list[str] = []
    items: list[tuple[object, str]] = []
    n_inputs, widths, n_outputs = SHAPE[0], [width] * len(SHAPE[1]), SHAPE[2]
    every = max(1, n_models // planted_count) if planted_count else PLANTED_EVERY
    for i in range(n_models):
        rng = np.random.default_rng([seed, i])
        name = f"mlp{i:05d}"
        if i % every == 0 and (planted_count is None or len(planted) < planted_count):
            graph, _ = planted_host("abs", n_inputs, widths, n_outputs, rng)
            planted.append(name)
        else:
            graph = random_host(rng, n_inputs, widths, n_outputs)
        items.append((graph, name))
    return items, planted


def build_zoo(
    db_path: Path, n_models: int, seed: int, width: int = 64, planted_count: int | None = None
) -> list[str]:
    """Index the zoo into a fresh store; returns the names of the planted models."""
    items, planted = zoo_items(n_models, seed, width, planted_count)
    with connect(str(db_path)) as db:
        db.index_many(items)
    return planted


def time_query(db: Database, text: str, repeats: int) -> tuple[list[float], Explain, list[Match]]:
    """Seconds of each run of the query, and the last run's EXPLAIN and matches."""

    def run() -> tuple[Explain, list[Match]]:
        explain = Explain()
        return explain, list(db.query(text, explain=explain))

    times, (explain, matches) = timed(run, repeats)
    return times, explain, matches


def models_found(db_path: Path, text: str, repeats: int) -> tuple[list[float], Explain, set[str]]:
    with connect(str(db_path)) as db:
        times, explain, matches = time_query(db, text, repeats)
    return times, explain, {m.model for m in matches}


def run_baseline(db_path: Path, models: list[str], budget: float) -> tuple[dict[str, int], float]:
    query = compile_query("MATCH abs")
    assert isinstance(query, MatchQuery)
    pattern = next(expand(query.pattern))
    found, spent = {}, 0.0
    with connect(str(db_path)) as db:
        for model in models:
            start = time.perf_counter()
            found[model] = sum(
                1 for _ in baseline_matches(db.store, model, pattern, deadline=start + budget)
            )
            spent += time.perf_counter() - start
    return found, spent / len(models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--planted",
        type=int,
        default=None,
        metavar="N",
        help="plant abs in N models whatever the zoo size (default: one in "
        "ten), to see cost follow candidates rather than models",
    )
    parser.add_argument(
        "--baseline-models",
        type=int,
        default=2,
        help="models the VF2 baseline runs on (0: skip it)",
    )
    parser.add_argument(
        "--baseline-width",
        type=int,
        default=32,
        help="hidden width of the zoo the baseline runs on (it is exponential "
        "in width: ~9 s per model at 32)",
    )
    parser.add_argument(
        "--baseline-budget", type=float, default=600.0, help="seconds allowed per baseline model"
    )
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("MATCH abs against zoo size, and the no-index VF2 baseline")
    planted_text = (
        f"{args.planted} models with abs planted whatever the size"
        if args.planted
        else "abs planted in one model in ten"
    )
    report.say(
        f"Zoo: random ReLU MLPs 8-64-64-64-4, {planted_text} (permuted, rescaled, 1% "
        f"noise), indexed into a fresh embedded store; `MATCH abs` timed "
        f"{args.repeats} times per size. With a fixed number planted, the candidates "
        "the index returns stay the same while the zoo grows: the time should too."
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            db_path = Path(tmp) / f"zoo{size}.db"
            planted = build_zoo(db_path, size, args.seed, planted_count=args.planted)
            times, explain, found = models_found(db_path, "MATCH abs", args.repeats)
            rows.append(
                [
                    f"{size:,}",
                    f"{len(planted)}",
                    ms(statistics.median(times)),
                    ms(percentile(times, 0.95)),
                    f"{explain.counts['lookup']}",
                    f"{len(found & set(planted)) / len(planted):.0%}",
                    f"{len(found - set(planted))}",
                ]
            )
        report.table(
            ["models", "planted", "median", "p95", "candidates", "recall", "false positives"], rows
        )
        if args.baseline_models > 0:
            baseline(report, args, Path(tmp) / "baseline.db")
    report.save(args.json)


def baseline(report: Report, args: argparse.Namespace, db_path: Path) -> None:
    """Per-model VF2 on a narrower zoo (the baseline is exponential in width), on planted
    and unplanted models, against the engine's whole-zoo query divided by the zoo size."""
    n = 2 * args.baseline_models
    planted = build_zoo(db_path, n, args.seed, args.baseline_width)
    unplanted = [f"mlp{i:05d}" for i in range(n) if f"mlp{i:05d}" not in planted]
    sample = [*planted[: args.baseline_models], *unplanted[: args.baseline_models]]
    engine_times, _, engine_found = models_found(db_path, "MATCH abs", args.repeats)
    per_model_engine = statistics.median(engine_times) / n
    report.say(
        f"Baseline, same run: per-model networkx VF2 subgraph monomorphism of the abs "
        "pattern with activation and sign predicates, then the engine's own weight and "
        f"numeric checks (`benchmarks/vf2_baseline.py`), on {len(sample)} models of a "
        f"zoo of hidden width {args.baseline_width}, half of them planted."
    )
    try:
        found, per_model = run_baseline(db_path, sample, args.baseline_budget)
    except TimeoutError:
        report.say(
            f"A baseline model took over {args.baseline_budget:.0f} s: the ratio is "
            f"above {args.baseline_budget / per_model_engine:,.0f}x."
        )
        return
    same = all((found[m] > 0) == (m in engine_found) for m in sample)
    report.table(
        ["hidden width", "VF2 per model", "circuitql per model", "ratio", "same answers"],
        [
            [
                f"{args.baseline_width}",
                f"{per_model:.2f} s",
                ms(per_model_engine),
                f"{per_model / per_model_engine:,.0f}x",
                "yes" if same else "**no**",
            ]
        ],
    )
    report.target("same answers as the VF2 baseline", "yes", "yes" if same else "no", same)


if __name__ == "__main__":
    main()

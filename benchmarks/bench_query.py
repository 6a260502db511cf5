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

from benchmarks.vf2_baseline import baseline_matches
from circuitql.api import connect
from circuitql.query import compile_query, expand
from circuitql.query.compile import MatchQuery
from circuitql.query.engine import Explain
from circuitql.zoo.plant import planted_host, random_host

SHAPE = (8, [64, 64, 64], 4)
PLANTED_EVERY = 10


def zoo_items(n_models: int, seed: int, width: int = 64, planted_count: int | None = None
              ) -> tuple[list[tuple[object, str]], list[str]]:
    """(graph, name) pairs of the zoo, and the names of the models with a planted abs: one
    in ten, or the first ``planted_count`` of every ten when that is given."""
    planted, items = [], []
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


def build_zoo(db_path: Path, n_models: int, seed: int, width: int = 64,
              planted_count: int | None = None) -> list[str]:
    """Index the zoo into a fresh store; returns the names of the planted models."""
    items, planted = zoo_items(n_models, seed, width, planted_count)
    with connect(str(db_path)) as db:
        db.index_many(items)
    return planted


def time_query(db_path: Path, text: str, repeats: int) -> tuple[list[float], Explain, set[str]]:
    times, explain, models = [], Explain(), set()
    with connect(str(db_path)) as db:
        for _ in range(repeats):
            explain = Explain()
            start = time.perf_counter()
            models = {m.model for m in db.query(text, explain=explain)}
            times.append(time.perf_counter() - start)
    return times, explain, models


def run_baseline(db_path: Path, models: list[str], budget: float) -> tuple[dict[str, int], float]:
    pattern = next(expand(compile_query("MATCH abs").pattern))  # type: ignore[union-attr]
    found, spent = {}, 0.0
    with connect(str(db_path)) as db:
        for model in models:
            start = time.perf_counter()
            found[model] = sum(1 for _ in baseline_matches(db.store, model, pattern,
                                                           deadline=start + budget))
            spent += time.perf_counter() - start
    return found, spent / len(models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--planted", type=int, default=None, metavar="N",
                        help="plant abs in N models whatever the zoo size (default: one in "
                        "ten), to see cost follow candidates rather than models")
    parser.add_argument("--baseline-models", type=int, default=2,
                        help="models the VF2 baseline runs on (0: skip it)")
    parser.add_argument("--baseline-width", type=int, default=32,
                        help="hidden width of the zoo the baseline runs on (it is exponential "
                        "in width: ~9 s per model at 32)")
    parser.add_argument("--baseline-budget", type=float, default=600.0,
                        help="seconds allowed per baseline model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    assert isinstance(compile_query("MATCH abs"), MatchQuery)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            db_path = Path(tmp) / f"zoo{size}.db"
            start = time.perf_counter()
            planted = build_zoo(db_path, size, args.seed, planted_count=args.planted)
            build = time.perf_counter() - start
            times, explain, found = time_query(db_path, "MATCH abs", args.repeats)
            p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
            print(f"N={size}: indexed in {build:.1f} s; MATCH abs median "
                  f"{statistics.median(times) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms over "
                  f"{len(times)} runs; {len(found)} models matched ({len(planted)} planted, "
                  f"recall {len(found & set(planted)) / len(planted):.0%}, "
                  f"{len(found - set(planted))} unplanted); stage counts {explain.counts}")
        if args.baseline_models == 0:
            return
        db_path = Path(tmp) / "baseline.db"
        n = 2 * args.baseline_models
        planted = build_zoo(db_path, n, args.seed, args.baseline_width)
        sample = [*planted[: args.baseline_models],
                  *[f"mlp{i:05d}" for i in range(1, n) if f"mlp{i:05d}" not in planted]]
        sample = sample[: args.baseline_models + len(planted[: args.baseline_models])]
        engine_times, _, engine_found = time_query(db_path, "MATCH abs", args.repeats)
        per_model_engine = statistics.median(engine_times) / n
        try:
            baseline, per_model = run_baseline(db_path, sample, args.baseline_budget)
        except TimeoutError:
            print(f"baseline: a model took over {args.baseline_budget:.0f} s; ratio > "
                  f"{args.baseline_budget / per_model_engine:,.0f}x")
            return
        same = all((baseline[m] > 0) == (m in engine_found) for m in sample)
        print(f"width {args.baseline_width}, {n} models: baseline VF2 {per_model:.2f} s per "
              f"model on {len(sample)} of them; engine {per_model_engine * 1e3:.3f} ms per model "
              f"(median whole-zoo query / {n}); ratio {per_model / per_model_engine:,.0f}x; "
              f"same answers: {same} (baseline matches per model {baseline})")


if __name__ == "__main__":
    main()

"""Indexing throughput and the signature-vs-excited-states comparison.

    python benchmarks/bench_index.py --models 1000 --jobs 1 2

1. Write N random ReLU MLPs (8 inputs, 3 hidden layers of 64, 4 outputs) as safetensors + JSON
   config files (not timed), then index the folder into a fresh embedded store once per
   ``--jobs`` value, with the time split per stage (load, canonicalize, sign, write; summed
   over worker processes) and the peak resident memory of the writing process.
2. Neuron equivalence for the same neuron at n binary inputs: the exhaustive "excited states"
   comparison (evaluate both neurons on all 2^n binary inputs) against comparing signatures,
   measured per pair in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from circuitql.api import connect
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.pipeline import StageTimes
from circuitql.indexer.signature import signatures
from circuitql.zoo.demo import random_mlp
from circuitql.zoo.export import save


def bench_index(n_models: int, jobs: int, folder: Path) -> float:
    times = StageTimes()
    with tempfile.TemporaryDirectory() as tmp, connect(str(Path(tmp) / "bench.db")) as db:
        start = time.perf_counter()
        report = db.index_paths([folder], jobs=jobs)
        wall = time.perf_counter() - start
        times = report.times
        assert len(report.indexed) == n_models, report.failed[:3]
        neurons = sum(m.n_neurons for m in report.indexed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"jobs={jobs}: indexed {n_models} models ({neurons} canonical neurons) in {wall:.1f} s "
          f"= {n_models / wall:.1f} models/s, {neurons / wall:,.0f} neurons/s; "
          f"peak RSS of the writing process {rss:.0f} MiB")
    for stage in ("load", "canonicalize", "sign", "write"):
        seconds = getattr(times, stage)
        print(f"  {stage:<13}{seconds:7.2f} s  {1000 * seconds / n_models:6.2f} ms/model")
    return wall


def write_zoo(folder: Path, n_models: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n_models):
        save(random_mlp(rng, 8, [64, 64, 64], 4), folder / f"mlp{i:05d}.safetensors")


def bench_equivalence(n_inputs: int, pairs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_inputs)
    b = float(rng.normal())
    k = 2.5  # the same neuron, rescaled: equivalent by both methods
    states = np.array(list(itertools.product([0.0, 1.0], repeat=n_inputs)))

    def excited_states_equal() -> bool:
        return bool(np.allclose(np.maximum(states @ w + b, 0) * k,
                                np.maximum(states @ (k * w) + k * b, 0)))

    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(n_inputs)]
    a = NeuronGraph((*units, Unit("h:0", UnitKind.HIDDEN, Activation.RELU, b,
                                  dict(zip([u.id for u in units], w.tolist(), strict=True)))))
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
    indexed = (time.perf_counter() - start) / pairs
    print(f"neuron equivalence at n={n_inputs}: excited states {exhaustive * 1e3:.2f} ms/pair "
          f"({2**n_inputs} states), signatures {indexed * 1e9:.0f} ns/pair, "
          f"ratio {exhaustive / indexed:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--inputs", type=int, default=16, help="binary inputs for equivalence")
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_zoo(Path(tmp), args.models, args.seed)
        walls = {jobs: bench_index(args.models, jobs, Path(tmp)) for jobs in args.jobs}
    if 1 in walls:
        for jobs, wall in walls.items():
            print(f"jobs={jobs}: {walls[1] / wall:.2f}x the wall time of jobs=1")
    bench_equivalence(args.inputs, args.pairs, args.seed)


if __name__ == "__main__":
    main()

"""Indexing throughput and the signature-vs-excited-states comparison.

    python benchmarks/bench_index.py --models 1000

1. Index N random ReLU MLPs (8 inputs, 3 hidden layers of 64, 4 outputs) into a fresh
   embedded store, with the time split per stage (load, canonicalize, sign, write) and the
   peak resident memory of the process.
2. Neuron equivalence for the same neuron at n binary inputs: the exhaustive "excited states"
   comparison (evaluate both neurons on all 2^n binary inputs) against comparing signatures,
   measured per pair in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from circuitql.api import connect
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.pipeline import StageTimes
from circuitql.indexer.signature import signatures


def random_mlp(rng: np.random.Generator, sizes: list[int]) -> NeuronGraph:
    """A random ReLU MLP built directly as a graph, like a loaded nn.Sequential."""
    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(sizes[0])]
    previous = [u.id for u in units]
    for layer, width in enumerate(sizes[1:]):
        last = layer == len(sizes) - 2
        bound = 1.0 / np.sqrt(len(previous))
        weights = rng.uniform(-bound, bound, (width, len(previous)))
        biases = rng.uniform(-bound, bound, width)
        current = []
        for row in range(width):
            uid = f"{'out' if last else f'fc{layer + 1}'}:{row}"
            units.append(Unit(
                uid, UnitKind.OUTPUT if last else UnitKind.HIDDEN,
                Activation.IDENTITY if last else Activation.RELU, float(biases[row]),
                dict(zip(previous, weights[row].tolist(), strict=True)),
            ))
            current.append(uid)
        previous = current
    return NeuronGraph(tuple(units))


def bench_index(n_models: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [8, 64, 64, 64, 4]
    times = StageTimes()
    with tempfile.TemporaryDirectory() as tmp, connect(str(Path(tmp) / "bench.db")) as db:
        start = time.perf_counter()
        for i in range(n_models):
            # "load" here is building the graph from weight matrices: what every loader ends in
            graph = times.timed("load", lambda: random_mlp(rng, sizes))
            db.index(graph, f"mlp{i}", times=times)
        wall = time.perf_counter() - start
        neurons = sum(m.n_neurons for m in db.models())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"indexed {n_models} models ({neurons} canonical neurons) in {wall:.1f} s "
          f"= {n_models / wall:.1f} models/s, {neurons / wall:,.0f} neurons/s; "
          f"peak RSS {peak_mib:.0f} MiB")
    for stage in ("load", "canonicalize", "sign", "write"):
        seconds = getattr(times, stage)
        print(f"  {stage:<13}{seconds:7.2f} s  {1000 * seconds / n_models:6.2f} ms/model")


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
    parser.add_argument("--inputs", type=int, default=16, help="binary inputs for equivalence")
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench_index(args.models, args.seed)
    bench_equivalence(args.inputs, args.pairs, args.seed)


if __name__ == "__main__":
    main()

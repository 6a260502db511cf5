"""Sparse-Jacobian basis search on an MNIST-sized MLP (784-128-64-10).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_basis.py --threads 1 2 [--json PATH]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_basis.py --threads 1 --train-steps 0

The MLP is trained for ``--train-steps`` Adam steps on synthetic 10-class data (class
prototypes in [0, 1]^784 plus noise: a stand-in for MNIST that needs no download; 0 keeps the
random initialisation), then loaded into a neuron graph and searched with the library's
defaults, once per ``--threads`` value: small per-step matrices make the thread count matter.
Reported per Jacobian: the steps and seconds until early stopping, sparsity before and after,
and the max error of the rotated network; per hidden layer whether the two bases found agree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from benchmarks.report import Report, add_json_argument
from circuitql.analysis.basis import (
    MATCH_THRESHOLD,
    MEASURE,
    BasisReport,
    PairBasis,
    Search,
    sparse_basis,
)
from circuitql.analysis.degeneracy import Probes
from circuitql.graph import NeuronGraph
from circuitql.indexer.load import load

SIZES = (784, 128, 64, 10)
TRAIN_SAMPLES = 4096
TRAIN_BATCH = 128
TRAIN_LR = 1e-3


def synthetic_mnist(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten fixed sparse "digit" prototypes, each sample one of them plus pixel noise."""
    prototypes = (torch.rand(10, SIZES[0], generator=generator) < 0.2).float()
    labels = torch.randint(0, 10, (n,), generator=generator)
    noise = 0.3 * torch.rand(n, SIZES[0], generator=generator)
    return (prototypes[labels] + noise).clamp(0.0, 1.0), labels


def mlp(train_steps: int, seed: int) -> tuple[nn.Module, float, float]:
    """The model, with its loss and accuracy on the whole training set (after training)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for fan_in, fan_out in pairwise(SIZES):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    x, y = synthetic_mnist(TRAIN_SAMPLES, generator)
    optimiser = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
    for _ in range(train_steps):
        rows = torch.randint(0, len(x), (TRAIN_BATCH,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
    return model.eval(), loss.item(), accuracy.item()


@dataclass(frozen=True)
class Run:
    """One search over every Jacobian with a given torch thread count."""

    threads: int
    basis: BasisReport
    wall: float
    cpu: float
    load_before: float
    load_after: float


def search(graph: NeuronGraph, threads: int, probes: Probes, settings: Search) -> Run:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    basis = sparse_basis(
        graph, name="mlp-" + "-".join(map(str, SIZES)), probes=probes, search=settings
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run(threads, basis, wall, cpu, load_before, os.getloadavg()[0])


def layer_name(layer: int) -> str:
    return "input" if layer == 0 else "output" if layer == len(SIZES) - 1 else f"L{layer}"


def jacobian(pair: PairBasis) -> str:
    return f"{layer_name(pair.source)} -> {layer_name(pair.target)}"


def names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def threads(n: int) -> str:
    return f"{n} torch thread" + ("" if n == 1 else "s")


def describe(report: Report, run: Run, settings: Search) -> None:
    """The tables and sentences of one run, every figure from it."""
    pairs = run.basis.pairs
    cpus = os.cpu_count() or 1
    busy = (
        f", above the {cpus} CPUs: other processes competed for the cores"
        if max(run.load_before, run.load_after) > cpus
        else ""
    )
    report.say(
        f"**{threads(run.threads)}** (1-minute load average {run.load_before:.1f} "
        f"before, {run.load_after:.1f} after{busy}):"
    )
    report.table(
        [
            "Jacobian",
            "shape",
            "sparsity before",
            "after",
            "steps",
            "converged",
            "seconds",
            "max error",
        ],
        [
            [
                jacobian(p),
                f"{p.shape[0]}x{p.shape[1]}",
                f"{p.before:.3f}",
                f"{p.after:.3f}",
                f"{p.steps:,}",
                "yes" if p.converged else "no (step limit)",
                f"{p.seconds:.1f}",
                f"{p.max_error:.1e}",
            ]
            for p in pairs
        ]
        + [
            [
                "**all, with measurement and function checks**",
                "",
                "",
                "",
                "",
                "",
                f"**{run.wall:.1f} s wall, {run.cpu:.1f} s CPU**",
                "",
            ]
        ],
        right={1, 2, 3, 4, 6, 7},
    )
    limited = [jacobian(p) for p in pairs if not p.converged]
    sentences = [
        f"Ran into the {settings.max_steps:,}-step limit: the search for {names(limited)}."
        if limited
        else "Every search stopped early, before the step limit."
    ]
    kept = [
        jacobian(p)
        for p in pairs
        if all(np.allclose(r, np.eye(len(r))) for r in p.rotations.values())
    ]
    if kept:
        sentences.append(
            f"For {names(kept)} no rotation checked was sparser than the neuron "
            "basis, so the search returned the identity."
        )
    report.say(" ".join(sentences))
    layers = run.basis.layers
    if layers:
        report.table(
            [
                "layer",
                "into vs out of",
                "chance",
                "into vs neurons",
                "out of vs neurons",
                "same basis",
            ],
            [
                [
                    f"L{a.layer}",
                    f"{a.agreement:.3f}",
                    f"{a.chance:.3f}",
                    f"{a.incoming_vs_neurons:.3f}",
                    f"{a.outgoing_vs_neurons:.3f}",
                    "yes" if a.matches else "no",
                ]
                for a in layers
            ],
            right={1, 2, 3, 4},
        )
        same = [f"L{a.layer}" for a in layers if a.matches]
        report.say(
            f"Same basis from both sides: {names(same) if same else 'none'} of the "
            f"{len(layers)} hidden layers."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[2],
        help="torch CPU threads; one search per value",
    )
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--probes", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=Search.max_steps)
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Sparse-Jacobian basis")
    probes = Probes(n=args.probes, box=(0.0, 1.0), seed=args.seed)
    settings = Search(max_steps=args.max_steps, seed=args.seed)

    print("training", file=sys.stderr, flush=True)
    model, loss, accuracy = mlp(args.train_steps, args.seed)
    graph = load(model, input_dim=SIZES[0]).graph
    # One tiny search first: the first Adam step imports parts of torch, a one-off cost that
    # would otherwise land in the first Jacobian's time.
    sparse_basis(
        load(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))).graph,
        probes=Probes(n=8),
        search=Search(max_steps=2, eval_every=1),
    )
    runs = []
    for n in args.threads:
        print(f"searching with {threads(n)}", file=sys.stderr, flush=True)
        runs.append(search(graph, n, probes, settings))

    training = (
        f"trained {args.train_steps} Adam steps (lr {TRAIN_LR:g}, batches of {TRAIN_BATCH})"
        if args.train_steps
        else "untrained (random initialisation)"
    )
    report.say(
        f"Network: {'-'.join(map(str, SIZES))} ReLU MLP, {training}, seed {args.seed}, on "
        f'{TRAIN_SAMPLES:,} synthetic 10-class "digits" (class prototypes in [0, 1]^'
        f"{SIZES[0]} plus noise, a stand-in for MNIST that needs no download): loss "
        f"{loss:.2g}, accuracy {accuracy:.3f} on them."
    )
    report.say(
        f"Search, the library's defaults where not set on the command line: "
        f"{probes.describe()}; Adam lr {settings.lr:g} on minibatches of {settings.batch} "
        f"probes, a whole-pool check every {settings.eval_every} steps, stop after "
        f"{settings.patience} checks in a row improving less than {settings.rel_tol:.1%}, at "
        f"most {settings.max_steps:,} steps per Jacobian."
    )
    report.say(
        f"Sparsity is the {MEASURE}. Max error is the rotated network's largest output "
        "difference from the original on the probes; seconds are the search's wall time, the "
        "total also counts measuring sparsity and checking the function. Every hidden layer is "
        "rotated twice, as the output side of the Jacobian into it and as the input side of "
        "the one out of it; the layer table compares those two bases with each other and with "
        "the neuron basis by the mean |cos| of greedily matched basis vectors (1 = the same "
        f"basis up to order and sign, same from {MATCH_THRESHOLD:g}; chance = a random "
        "rotation against the neurons)."
    )
    for run in runs:
        describe(report, run, settings)
    first = runs[0]
    for run in runs[1:]:
        report.say(
            f"{threads(run.threads)} took {run.wall / first.wall:.2f}x the wall time and "
            f"{run.cpu / first.cpu:.2f}x the CPU time of {threads(first.threads)}."
        )
    report.save(args.json)


if __name__ == "__main__":
    main()

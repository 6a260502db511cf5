"""Sparse-Jacobian basis search on an MNIST-sized MLP (784-128-64-10).

    python benchmarks/bench_basis.py --threads 2
    python benchmarks/bench_basis.py --threads 2 --train-steps 0     # untrained, random init

The MLP is trained for ``--train-steps`` Adam steps on synthetic 10-class data (class
prototypes in [0, 1]^784 plus noise: a stand-in for MNIST that needs no download), then
loaded into a neuron graph and searched with the library's defaults. Printed: per Jacobian the
steps and seconds until early stopping, sparsity before and after, and the max error of the
rotated network; per hidden layer whether the two bases found agree.
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import pairwise

import torch
from torch import nn

from circuitql.indexer.basis import Search, sparse_basis
from circuitql.indexer.degeneracy import Probes
from circuitql.indexer.load import load

SIZES = (784, 128, 64, 10)


def synthetic_mnist(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten fixed sparse "digit" prototypes, each sample one of them plus pixel noise."""
    prototypes = (torch.rand(10, SIZES[0], generator=generator) < 0.2).float()
    labels = torch.randint(0, 10, (n,), generator=generator)
    noise = 0.3 * torch.rand(n, SIZES[0], generator=generator)
    return (prototypes[labels] + noise).clamp(0.0, 1.0), labels


def mlp(train_steps: int, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for fan_in, fan_out in pairwise(SIZES):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    x, y = synthetic_mnist(4096, generator)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(train_steps):
        rows = torch.randint(0, len(x), (128,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step == train_steps - 1:
            accuracy = (model(x).argmax(1) == y).float().mean()
            print(f"trained {train_steps} steps: loss {loss.item():.3f}, "
                  f"train accuracy {accuracy:.3f}")
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--probes", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=Search.max_steps)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = mlp(args.train_steps, args.seed)
    graph = load(model, input_dim=SIZES[0]).graph
    # One tiny search first: the first Adam step imports parts of torch, a one-off cost that
    # would otherwise land in the first Jacobian's time.
    sparse_basis(load(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))).graph,
                 probes=Probes(n=8), search=Search(max_steps=2, eval_every=1))
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    report = sparse_basis(graph, name="mlp-784-128-64-10",
                          probes=Probes(n=args.probes, box=(0.0, 1.0), seed=args.seed),
                          search=Search(max_steps=args.max_steps, seed=args.seed))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"torch threads: {torch.get_num_threads()}; 1-minute load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes share "
          "the cores when it is above the thread count)")
    print(report.text())
    print(f"total {wall:.1f} s wall, {cpu:.1f} s CPU (search, measurement and function check "
          "of every Jacobian)")


if __name__ == "__main__":
    main()

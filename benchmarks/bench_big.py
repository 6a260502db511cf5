"""Big models: indexing and degeneracy in bounded time and memory.

    python benchmarks/bench_big.py --blocks 12

Random-weight networks the size of what people index (not timed to write): a 784-1024-1024-
1024-10 ReLU MLP (an MNIST classifier's shape), and stacks of GPT-2-small-sized MLP blocks,
Linear(768, 3072) -> GELU -> Linear(3072, 768), of 1 and ``--blocks`` blocks, each as
safetensors + JSON config. Each row is one whole ``circuitql`` process on a fresh store:
under ``/usr/bin/time -v``, or, for the stack of ``--blocks``, watched with a memory ceiling
and a time limit, past which it is stopped and the row says so (as it says when circuitql
refuses the model for the memory it would take).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_json_argument, time_process, watch_process
from circuitql.export import DenseLayer, MLPSpec, save
from circuitql.zoo.demo import random_mlp

CLI = "import sys; from circuitql.cli import main; sys.exit(main())"
WIDTH, HIDDEN = 768, 3072  # GPT-2 small's residual width and MLP width
STACK_SECONDS, STACK_MIB = 120.0, 2048.0  # issue 15's targets for the 12-block stack
MNIST_SECONDS, DEGENERACY_SECONDS = 5.0, 10.0


def mlp_stack(blocks: int, seed: int) -> MLPSpec:
    """``blocks`` GPT-2-small-sized MLP blocks in a row, weights as nn.Linear initializes."""
    rng = np.random.default_rng(seed)
    layers = []
    for b in range(blocks):
        for name, (fan_out, fan_in), activation in (
            (f"h{b}.fc", (HIDDEN, WIDTH), "gelu"),
            (f"h{b}.proj", (WIDTH, HIDDEN), "identity"),
        ):
            bound = 1.0 / np.sqrt(fan_in)
            layers.append(
                DenseLayer(
                    name,
                    rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                    rng.uniform(-bound, bound, fan_out).astype(np.float32),
                    activation,
                )
            )
    return MLPSpec(WIDTH, tuple(layers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ceiling", type=float, default=8192.0, help="MiB past which the stack is stopped"
    )
    parser.add_argument("--limit", type=float, default=600.0, help="seconds for the stack")
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Big models")
    python = [sys.executable, "-c", CLI]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mnist = save(
            random_mlp(np.random.default_rng(args.seed), 784, [1024, 1024, 1024], 10),
            root / "mnist.safetensors",
        )
        block = save(mlp_stack(1, args.seed), root / "block.safetensors")
        stack = save(mlp_stack(args.blocks, args.seed), root / "stack.safetensors")
        sizes = {p: p.stat().st_size / 2**20 for p in (mnist, block, stack)}

        def index(path: Path) -> list[str]:
            return [*python, "index", str(path), "--store", str(root / f"{path.stem}.db")]

        runs = [
            ("index 784-1024-1024-1024-10", mnist, time_process(index(mnist))),
            ("index 1 MLP block", block, time_process(index(block))),
            (
                "degeneracy of 1 MLP block",
                block,
                time_process([*python, "degeneracy", str(block), "--store", str(root / "d.db")]),
            ),
        ]
        watched = watch_process(index(stack), args.ceiling, args.limit)
    report.say(
        "Random-weight networks as safetensors + JSON config, written before the clock; each "
        "row one whole `circuitql` process on a fresh store (`/usr/bin/time -v`: wall time "
        f"and peak RSS). The stack of {args.blocks} blocks is watched instead, and stopped "
        f"past {args.ceiling:,.0f} MiB of resident memory or {args.limit:.0f} s."
    )
    rows = [
        [label, f"{sizes[path]:,.1f} MiB", f"{run.wall:.1f} s", f"{run.rss:,.0f} MiB", "finished"]
        for label, path, run in runs
    ]
    rows.append(
        [
            f"index {args.blocks} MLP blocks",
            f"{sizes[stack]:,.1f} MiB",
            f"{watched.wall:.1f} s",
            f"{watched.rss:,.0f} MiB",
            watched.stopped or "finished",
        ]
    )
    report.table(["run", "file", "wall", "peak RSS", "outcome"], rows, right={1, 2, 3})
    mnist_run, _, degeneracy = (run for _, _, run in runs)
    report.target(
        "index a 784-1024-1024-1024-10 MLP (whole process)",
        f"< {MNIST_SECONDS:.0f} s",
        f"{mnist_run.wall:.1f} s",
        mnist_run.wall < MNIST_SECONDS,
    )
    report.target(
        "degeneracy of one GPT-2-small-sized MLP block (whole process)",
        f"< {DEGENERACY_SECONDS:.0f} s",
        f"{degeneracy.wall:.1f} s",
        degeneracy.wall < DEGENERACY_SECONDS,
    )
    report.target(
        f"index {args.blocks} GPT-2-small-sized MLP blocks",
        f"< {STACK_SECONDS:.0f} s and < {STACK_MIB:,.0f} MiB peak RSS",
        f"{watched.stopped}"
        if watched.stopped
        else f"{watched.wall:.1f} s, {watched.rss:,.0f} MiB",
        watched.stopped is None and watched.wall < STACK_SECONDS and watched.rss < STACK_MIB,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

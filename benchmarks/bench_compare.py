"""``circuitql compare`` on wide networks: a network against its permuted, rescaled twin,
and two different networks, as whole processes beside an earlier commit's, in the same run.

The networks are MLP blocks as in a transformer (d -> width ReLU -> d, random weights, seeded);
the twin is the same block with its hidden units permuted and each scaled by a positive
factor. Each engine indexes them into a store of its own, then runs
``compare A B --no-circuits`` under ``/usr/bin/time -v`` (wall time, peak RSS); a run of the
earlier commit that passes ``--limit`` seconds is stopped and reported as such.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_cold import ISOLATED, compiled_env
from benchmarks.report import Report, add_json_argument, time_process

ROOT = Path(__file__).resolve().parent.parent
TWIN_TARGET = 1.0  # seconds, issue 15: 768 units against its twin
DIFFERENT_TARGET = 2.0  # seconds, issue 15: two different 1,000-unit networks

# Run by each engine with its own code on the path: the same networks, from the same seeds.
INDEX = (
    ISOLATED
    + """
import numpy as np
from circuitql.api import connect
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind

def block(d, width, seed, permute):
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(size=(width, d)) / np.sqrt(d), rng.normal(size=width) * 0.1
    w2, b2 = rng.normal(size=(d, width)) / np.sqrt(width), rng.normal(size=d) * 0.1
    order, scale = np.arange(width), np.ones(width)
    if permute:
        twist = np.random.default_rng(seed + 1)
        order, scale = twist.permutation(width), twist.uniform(0.5, 2.0, width)
    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(d)]
    units += [Unit(f"fc1:{k}", UnitKind.HIDDEN, Activation.RELU, float(b1[j] * scale[j]),
                   {f"input:{i}": float(w1[j, i] * scale[j]) for i in range(d)})
              for k, j in enumerate(order)]
    units += [Unit(f"fc2:{o}", UnitKind.OUTPUT, Activation.IDENTITY, float(b2[o]),
                   {f"fc1:{k}": float(w2[o, j] / scale[j]) for k, j in enumerate(order)})
              for o in range(d)]
    return NeuronGraph(tuple(units))

db = connect(sys.argv[1])
d, width = int(sys.argv[2]), int(sys.argv[3])
db.index(block(d, width, 0, False), name="a")
db.index(block(d, width, 0, True), name="twin")
db.index(block(d, width, 7, False), name="other")
db.close()
"""
)
CLI = ISOLATED + "from circuitql.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class Run:
    wall: float | None  # None: stopped at the limit
    rss: float
    answer: str


def run_compare(code: Path, store: Path, a: str, b: str, limit: float) -> Run:
    command = [sys.executable, "-c", CLI, "compare", "--store", str(store), a, b, "--no-circuits"]
    try:
        done = time_process(command, env=compiled_env(code), timeout=limit, cwd=store.parent)
    except subprocess.TimeoutExpired:
        return Run(None, 0.0, "")
    return Run(done.wall, done.rss, done.stdout.splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a worktree of the earlier commit"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[768, 1000],
        help="hidden widths (d is a sixth of the width)",
    )
    parser.add_argument(
        "--limit", type=float, default=300.0, help="seconds after which a run is stopped"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Comparing wide networks")
    report.say(__doc__.split("\n\n", 1)[1])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.sizes:
            d = max(1, width // 6)
            for label, code in (("earlier", args.baseline), ("this", ROOT)):
                store = Path(tmp) / f"{label}-{width}.db"
                # Run from the store's folder: from this checkout, ``python -c`` would import
                # this checkout's circuitql before the one PYTHONPATH names.
                subprocess.run(
                    [sys.executable, "-c", INDEX, str(store), str(d), str(width)],
                    check=True,
                    cwd=tmp,
                    env={**os.environ, "PYTHONPATH": str(code)},
                )
                for pair, other in (("twin", "twin"), ("different", "other")):
                    run = run_compare(code, store, "a", other, args.limit)
                    rows.append((width, d, pair, label, run))
    table = []
    for width, d, pair, label, run in rows:
        wall = f"> {args.limit:.0f} s (stopped)" if run.wall is None else f"{run.wall:.2f} s"
        table.append(
            [
                f"{d}-{width}-{d}",
                pair,
                "this commit" if label == "this" else "earlier commit",
                wall,
                f"{run.rss:.0f} MiB" if run.wall else "-",
                run.answer.split(": ", 1)[-1] if run.answer else "-",
            ]
        )
    report.table(["block", "pair", "engine", "wall", "peak RSS", "answer"], table, right={3, 4})
    for width, target, pair in ((768, TWIN_TARGET, "twin"), (1000, DIFFERENT_TARGET, "different")):
        found = [r for w, _, p, label, r in rows if (w, p, label) == (width, pair, "this")]
        if found and found[0].wall is not None:
            name = (
                f"compare a {width}-unit network with its twin"
                if pair == "twin"
                else f"compare two different {width}-unit networks"
            )
            report.target(
                name + " (whole process)",
                f"< {target:g} s",
                f"{found[0].wall:.2f} s",
                found[0].wall < target,
            )
    report.save(args.json)


if __name__ == "__main__":
    main()

"""A one-model query from the shell, as a user types it: the whole process, from exec to
exit, beside an earlier commit's, interleaved in the same run.

Each run is a fresh interpreter (``/usr/bin/time -v``: wall time and peak RSS): the first
with an empty cache directory (what the first command after an install or an upgrade pays),
the rest with the cache it left. The earlier commit runs from its own worktree on a store
it indexed itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Report, add_json_argument, time_process

ROOT = Path(__file__).resolve().parent.parent
QUERY = "MATCH abs"
COLD_TARGET = 0.5  # seconds, issue 15

# Each engine runs its own code only: an editable install's import finder would fill in any
# module an earlier commit lacks from this checkout, and time a mixture of the two.
ISOLATED = (
    "import sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith('__editable')]; "
)
INDEX = (
    ISOLATED
    + """
from circuitql.api import connect
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
# abs written out as units, which every engine's graph reads (its library moved over time)
units = (
    Unit("input:0", UnitKind.INPUT),
    Unit("p:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 1.0}),
    Unit("n:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": -1.0}),
    Unit("y:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"p:0": 1.0, "n:0": 1.0}),
)
db = connect(sys.argv[1])
db.index(NeuronGraph(units), name="abs")
db.close()
"""
)
CLI = ISOLATED + "from circuitql.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    rss: float  # MiB


@dataclass(frozen=True)
class Engine:
    label: str
    code: Path
    store: Path
    cache: Path

    def env(self) -> dict[str, str]:
        return {**compiled_env(self.code), "CIRCUITQL_CACHE": str(self.cache)}

    def query(self) -> Run:
        done = time_process(
            [sys.executable, "-c", CLI, "query", "--store", str(self.store), QUERY],
            env=self.env(),
            cwd=self.store.parent,
        )
        if "1 match(es)" not in done.stdout:
            raise SystemExit(f"{self.label}: unexpected answer {done.stdout!r}")
        return Run(done.wall, done.rss)


def compiled_env(code: Path) -> dict[str, str]:
    """The environment to run ``code`` in, its modules compiled to bytecode first and read
    from it, as in any installation (a shell with PYTHONDONTWRITEBYTECODE set would compile
    every module on every start, and a fresh worktree has no bytecode at all)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "circuitql")], check=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def engine(label: str, code: Path, tmp: Path) -> Engine:
    folder = tmp / label
    folder.mkdir()
    store = folder / "store.db"
    subprocess.run(
        [sys.executable, "-c", INDEX, str(store)],
        check=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    return Engine(label, code, store, folder / "cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="warm runs per engine")
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a worktree of the earlier commit"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("A one-model query from the shell")
    with tempfile.TemporaryDirectory() as tmp:
        engines = [engine("this", ROOT, Path(tmp)), engine("earlier", args.baseline, Path(tmp))]
        first = {e.label: e.query() for e in engines}
        warm: dict[str, list[Run]] = {e.label: [] for e in engines}
        for _ in range(args.repeats):
            for e in engines:
                warm[e.label].append(e.query())
    report.say(
        f"`circuitql query --store STORE '{QUERY}'` on a store holding one model (the "
        "library's abs network), run as a fresh process each time and measured by "
        "`/usr/bin/time -v`, every module compiled to bytecode beforehand: the first "
        "run with an empty cache directory, then "
        f"{args.repeats} runs with the cache it left, interleaved with the earlier "
        "commit's (from its worktree, on a store it indexed)."
    )
    rows = []
    median = {}
    for label, name in (("earlier", "earlier commit"), ("this", "this commit")):
        walls = [r.wall for r in warm[label]]
        median[label] = statistics.median(walls)
        rows.append(
            [
                name,
                f"{first[label].wall:.2f} s",
                f"{median[label]:.2f} s",
                f"{max(walls):.2f} s",
                f"{max(r.rss for r in warm[label]):.0f} MiB",
            ]
        )
    report.table(["engine", "first run", "median", "slowest", "peak RSS"], rows)
    report.say(
        f"This commit answers in {median['this'] / median['earlier']:.2f}x the earlier "
        "commit's wall time."
    )
    report.target(
        "one-model query from the shell (median wall time)",
        f"< {COLD_TARGET} s",
        f"{median['this']:.2f} s",
        median["this"] < COLD_TARGET,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

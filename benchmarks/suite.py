"""Run the benchmarks and write benchmarks/BENCHMARKS.md from what they measured.

    PYTHONPATH=. .venv/bin/python benchmarks/suite.py            # the full suite (about 1 h)
    PYTHONPATH=. .venv/bin/python benchmarks/suite.py --quick    # small sizes, minutes
    PYTHONPATH=. .venv/bin/python benchmarks/suite.py --only bench_library.py

Each benchmark runs as its own process (so its peak memory is its own) and hands back a
report (``benchmarks/report.py``): Markdown built from its measurements, and the targets it
checked. Reports are kept in ``benchmarks/results.json``, one section per benchmark, each
stamped with when and from which commit it was measured: ``--only`` reruns some benchmarks
and keeps the others' last measurements, so the file is always assembled from measured
values. It gets the machine, the load average around each benchmark (the machine may be
shared, and speed figures mean little without it), every command exactly as run, and a
summary of the targets. A Neo4j server is started for the run when a benchmark needs one
(``--neo4j URI`` uses a running one instead) and stopped after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "circuitql-bench"
RESULTS = ROOT / "benchmarks" / "results.json"
BASELINE = "eccae1f"  # the engine before approximate matching, which bench_library times too
COLD_BASELINE = "a967651"  # the last commit before the cache, lazy imports and sorted compare
STORE_BASELINE = "15e67cd"  # the last commit before the compact SQLite layout


@dataclass(frozen=True)
class Bench:
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    needs_neo4j: bool = False
    # The earlier commit "{baseline}" names for this benchmark (default: ``--baseline``).
    baseline: str | None = None


BENCHES = (
    Bench(
        "bench_index.py",
        ("--models", "1000", "--jobs", "1", "2", "--busy", "4", "--dask", "--neo4j", "{uri}"),
        ("--models", "100", "--jobs", "1", "2", "--busy", "4", "--dask", "--neo4j", "{uri}"),
        needs_neo4j=True,
    ),
    Bench(
        "bench_library.py",
        ("--sizes", "100", "1000", "10000", "--repeats", "5", "--baseline", "{baseline}"),
        ("--sizes", "100", "300", "--repeats", "2", "--baseline", "{baseline}"),
    ),
    Bench("bench_seeds.py", ("--seeds", "1", "120"), ("--seeds", "1", "3")),
    Bench(
        "bench_store.py",
        ("--models", "10000", "--repeats", "5", "--baseline", "{baseline}"),
        ("--models", "300", "--repeats", "2", "--baseline", "{baseline}"),
        baseline=STORE_BASELINE,
    ),
    Bench(
        "bench_big.py",
        ("--blocks", "12"),
        ("--blocks", "2", "--limit", "120"),
    ),
    Bench(
        "bench_neo4j_bulk.py",
        ("--models", "1000", "--jobs", "2"),
        ("--models", "100", "--jobs", "2"),
    ),
    Bench(
        "bench_neo4j_query.py",
        ("--uri", "{uri}", "--models", "1000", "--repeats", "5"),
        ("--uri", "{uri}", "--models", "100", "--repeats", "2"),
        needs_neo4j=True,
    ),
    Bench(
        "bench_query.py",
        (
            "--sizes",
            "100",
            "1000",
            "--planted",
            "10",
            "--repeats",
            "7",
            "--baseline-models",
            "1",
            "--baseline-width",
            "32",
        ),
        (
            "--sizes",
            "100",
            "--planted",
            "10",
            "--repeats",
            "2",
            "--baseline-models",
            "1",
            "--baseline-width",
            "16",
        ),
    ),
    Bench("parse_speed.py", ("--repeats", "5"), ("--repeats", "1")),
    Bench("bench_basis.py", ("--threads", "1"), ("--threads", "1")),
    Bench("bench_fidelity.py", ("--inputs", "10000"), ("--inputs", "2000")),
    Bench(
        "bench_compare.py",
        ("--sizes", "768", "1000", "--limit", "120", "--baseline", "{baseline}"),
        ("--sizes", "128", "--limit", "60", "--baseline", "{baseline}"),
        baseline=COLD_BASELINE,
    ),
    Bench(
        "bench_cold.py",
        ("--repeats", "7", "--baseline", "{baseline}"),
        ("--repeats", "2", "--baseline", "{baseline}"),
        baseline=COLD_BASELINE,
    ),
)


def machine() -> list[str]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem = next(
        (
            int(line.split()[1]) / 2**20
            for line in _read("/proc/meminfo")
            if line.startswith("MemTotal")
        ),
        0.0,
    )
    versions = ", ".join(
        f"{pkg} {_version(pkg)}" for pkg in ("torch", "numpy", "networkx", "neo4j", "lark")
    )
    return [
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.platform()}",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {versions}; "
        "Neo4j Community 5.26 through circuitql's embedded launcher",
    ]


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}"


@contextmanager
def neo4j_server(uri: str | None, needed: bool) -> Iterator[str]:
    """The given server, or a fresh one in a temporary data directory, stopped after."""
    if uri or not needed:
        yield uri or ""
        return
    from circuitql.store import neo4j_server as server

    with tempfile.TemporaryDirectory(prefix="circuitql-bench-neo4j-") as data:
        status = server.start(data, port=0, password=PASSWORD)
        try:
            yield f"neo4j://neo4j:{PASSWORD}@127.0.0.1:{status.port}"
        finally:
            server.stop(data)


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass(frozen=True)
class Result:
    """One benchmark's section of the file, as kept in ``results.json``."""

    script: str
    title: str
    command: str
    markdown: str
    targets: list[dict[str, object]]
    seconds: float
    load: str
    measured: str  # when, UTC
    commit: str
    quick: bool = False
    failed: bool = False
    machine: str = ""  # what it ran on (machine()), since the sections may come from several


@dataclass(frozen=True)
class Context:
    """What the benchmarks' arguments may name: a Neo4j server and the earlier engines, a
    worktree per commit."""

    uri: str
    worktrees: dict[str, str]
    baseline: str  # the commit "{baseline}" names where a benchmark does not name its own

    def worktree(self, bench: Bench) -> str:
        return self.worktrees.get(bench.baseline or self.baseline, "")


def run_bench(bench: Bench, quick: bool, context: Context, out: Path) -> Result:
    worktree = context.worktree(bench)
    args = [
        a.replace("{uri}", context.uri).replace("{baseline}", worktree)
        for a in (bench.quick if quick else bench.full)
    ]
    command = [sys.executable, str(ROOT / "benchmarks" / bench.script), *args, "--json", str(out)]
    print(f"\n=== {bench.script} {' '.join(args)}", file=sys.stderr, flush=True)
    before, start = load(), time.perf_counter()
    measured, revision = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", commit()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    seconds = time.perf_counter() - start
    shown = _shown(bench.script, args, context.uri, worktree)
    if done.returncode != 0 or not out.exists():
        return Result(
            bench.script,
            bench.script,
            shown,
            f"**Failed** (exit status {done.returncode}); see the suite's output.",
            [],
            seconds,
            before,
            measured,
            revision,
            quick,
            failed=True,
            machine="; ".join(machine()),
        )
    report = json.loads(out.read_text())
    return Result(
        bench.script,
        report["title"],
        shown,
        report["markdown"],
        report["targets"],
        seconds,
        f"{before} before, {load()} after",
        measured,
        revision,
        quick,
        machine="; ".join(machine()),
    )


def _shown(script: str, args: list[str], uri: str, worktree: str) -> str:
    """The command as a reader can rerun it: the password and the temporary worktree
    replaced by placeholders."""
    shown = [a.replace(uri, "neo4j://neo4j:PASSWORD@127.0.0.1:PORT") if uri else a for a in args]
    if worktree:
        shown = [a.replace(worktree, "WORKTREE") for a in shown]
    return f"PYTHONPATH=. .venv/bin/python benchmarks/{script} {shlex.join(shown)}"


def render(results: list[Result]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/suite.py` from `benchmarks/results.json`. Each section was "
        "measured in one run, stamped under its title with the date, the commit and the "
        "load; every figure in it was measured in that run. Rerun everything, or one "
        "benchmark, to update this file (`WORKTREE` in a command is a `git worktree` of "
        "the earlier commit it compares with, which the suite makes itself):",
        "",
        "```sh",
        "PYTHONPATH=. .venv/bin/python benchmarks/suite.py",
        "PYTHONPATH=. .venv/bin/python benchmarks/suite.py --only bench_library.py",
        "```",
        "",
        "Each section names the machine it ran on, and the load average (1, 5, 15 minutes) "
        "around it: the machine may be shared, and timings taken under load are slower than "
        "the code is. Ratios are between runs of one section, on one machine.",
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for result in results:
        for t in result.targets:
            lines.append(
                f"| {t['name']} | {t['goal']} | {t['measured']} | "
                f"{'yes' if t['met'] else '**no**'} |"
            )
    for result in results:
        quick = " (--quick)" if result.quick else ""
        lines += [
            "",
            f"## {result.title}",
            "",
            "```sh",
            result.command,
            "```",
            "",
            f"Measured on {result.measured} from commit {result.commit}{quick}, in "
            f"{result.seconds / 60:.1f} minutes; load average {result.load}; machine: "
            f"{result.machine or 'not recorded'}.",
            "",
            result.markdown,
        ]
    return "\n".join(lines) + "\n"


def kept() -> dict[str, Result]:
    """The last measurement of each benchmark, by script."""
    if not RESULTS.exists():
        return {}
    return {raw["script"]: Result(**raw) for raw in json.loads(RESULTS.read_text())["sections"]}


@contextmanager
def worktrees(commits: set[str]) -> Iterator[dict[str, str]]:
    """A checkout of each commit in a temporary directory, for the benchmarks that time an
    earlier engine beside this one; removed after."""
    with tempfile.TemporaryDirectory(prefix="circuitql-baseline-") as tmp:
        paths = {commit_id: str(Path(tmp) / commit_id) for commit_id in sorted(commits)}
        try:
            for commit_id, path in paths.items():
                subprocess.run(
                    ["git", "worktree", "add", "--detach", path, commit_id],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                )
            yield paths
        finally:
            for path in paths.values():
                subprocess.run(
                    ["git", "worktree", "remove", "--force", path],
                    cwd=ROOT,
                    check=False,
                    capture_output=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: checks that every benchmark runs, in minutes",
    )
    parser.add_argument("--neo4j", metavar="URI", help="a running server (default: start one)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SCRIPT",
        help="run only these benchmarks (e.g. bench_library.py); the others "
        "keep their last measurements",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        metavar="COMMIT",
        help=f"the earlier engine to time beside this one (default {BASELINE}: "
        "the last before approximate matching)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "BENCHMARKS.md")
    args = parser.parse_args()
    unknown = sorted(set(args.only or ()) - {b.script for b in BENCHES})
    if unknown:
        parser.error(
            f"no benchmark {', '.join(unknown)}; there are {', '.join(b.script for b in BENCHES)}"
        )
    benches = [b for b in BENCHES if not args.only or b.script in args.only]
    results = kept()
    commits = {b.baseline or args.baseline for b in benches if "{baseline}" in " ".join(b.full)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        neo4j_server(args.neo4j, any(b.needs_neo4j for b in benches)) as uri,
        worktrees(commits) as paths,
    ):
        for bench in benches:
            results[bench.script] = run_bench(
                bench,
                args.quick,
                Context(uri, paths, args.baseline),
                Path(tmp) / f"{bench.script}.json",
            )
    ordered = [results[b.script] for b in BENCHES if b.script in results]
    RESULTS.write_text(json.dumps({"sections": [asdict(r) for r in ordered]}, indent=2) + "\n")
    args.out.write_text(render(ordered))
    failed = [r.title for r in ordered if r.failed and r.script in {b.script for b in benches}]
    print(
        f"wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

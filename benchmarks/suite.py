"""Run every benchmark and write benchmarks/BENCHMARKS.md from what they measured.

    PYTHONPATH=. .venv/bin/python benchmarks/suite.py            # the full suite (about 1 h)
    PYTHONPATH=. .venv/bin/python benchmarks/suite.py --quick    # small sizes, minutes

Each benchmark runs as its own process (so its peak memory is its own) and hands back a
report (``benchmarks/report.py``): Markdown built from its measurements, and the targets it
checked. The file gets the machine, the commit, the load average around each benchmark (the
machine may be shared, and speed figures mean little without it), every command exactly as
run, and a summary of the targets. A Neo4j server is started for the run (``--neo4j URI``
uses a running one instead) and stopped after.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "circuitql-bench"


@dataclass(frozen=True)
class Bench:
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    needs_neo4j: bool = False


BENCHES = (
    Bench("bench_index.py", ("--models", "1000", "--jobs", "1", "2", "--neo4j", "{uri}"),
          ("--models", "100", "--jobs", "1", "2", "--neo4j", "{uri}"), needs_neo4j=True),
    Bench("bench_library.py", ("--sizes", "100", "1000", "10000", "--repeats", "5"),
          ("--sizes", "100", "300", "--repeats", "2")),
    Bench("bench_neo4j_query.py", ("--uri", "{uri}", "--models", "1000", "--repeats", "5"),
          ("--uri", "{uri}", "--models", "100", "--repeats", "2"), needs_neo4j=True),
    Bench("bench_query.py", ("--sizes", "100", "1000", "--planted", "10", "--repeats", "7",
                             "--baseline-models", "1", "--baseline-width", "32"),
          ("--sizes", "100", "--planted", "10", "--repeats", "2", "--baseline-models", "1",
           "--baseline-width", "16")),
    Bench("parse_speed.py", ("--repeats", "5"), ("--repeats", "1")),
    Bench("bench_basis.py", ("--threads", "1"), ("--threads", "1")),
)


def machine() -> list[str]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(line.split()[1]) / 2**20 for line in _read("/proc/meminfo")
                if line.startswith("MemTotal")), 0.0)
    versions = ", ".join(f"{pkg} {_version(pkg)}" for pkg in
                         ("torch", "numpy", "networkx", "neo4j", "lark"))
    return [f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.platform()}",
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {versions}; "
            "Neo4j Community 5.26 through circuitql's embedded launcher"]


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
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    dirty = " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") \
        else ""
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
    title: str
    command: str
    markdown: str
    targets: list[dict[str, object]]
    seconds: float
    load: str
    failed: bool = False


def run_bench(bench: Bench, quick: bool, uri: str, out: Path) -> Result:
    args = [a.replace("{uri}", uri) for a in (bench.quick if quick else bench.full)]
    command = [sys.executable, str(ROOT / "benchmarks" / bench.script), *args, "--json",
               str(out)]
    print(f"\n=== {bench.script} {' '.join(args)}", file=sys.stderr, flush=True)
    before, start = load(), time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    seconds = time.perf_counter() - start
    shown = _shown(bench.script, args, uri)
    if done.returncode != 0 or not out.exists():
        return Result(bench.script, shown, f"**Failed** (exit status {done.returncode}); see "
                      "the suite's output.", [], seconds, before, failed=True)
    report = json.loads(out.read_text())
    return Result(report["title"], shown, report["markdown"], report["targets"], seconds,
                  f"{before} before, {load()} after")


def _shown(script: str, args: list[str], uri: str) -> str:
    """The command as a reader can rerun it: the password replaced by a placeholder."""
    shown = [a.replace(uri, "neo4j://neo4j:PASSWORD@127.0.0.1:PORT") for a in args]
    return f"PYTHONPATH=. .venv/bin/python benchmarks/{script} {shlex.join(shown)}"


def render(results: list[Result], quick: bool, total: float) -> str:
    lines = ["# Benchmarks", "",
             "Written by `benchmarks/suite.py`" + (" --quick" if quick else "") + " on "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC from commit {commit()}, in "
             f"{total / 60:.0f} minutes; every figure below was measured in that run. "
             "Rerun it to update this file:", "",
             "```sh", "PYTHONPATH=. .venv/bin/python benchmarks/suite.py"
             + (" --quick" if quick else ""), "```", "",
             "Machine: " + "; ".join(machine()) + ". The load average (1, 5, 15 minutes) "
             "is given around each benchmark: the machine may be shared, and timings taken "
             "under load are slower than the code is.", "",
             "## Targets", "", "| target | goal | measured | met |", "| --- | --- | --- | --- |"]
    for result in results:
        for t in result.targets:
            lines.append(f"| {t['name']} | {t['goal']} | {t['measured']} | "
                         f"{'yes' if t['met'] else '**no**'} |")
    for result in results:
        lines += ["", f"## {result.title}", "", "```sh", result.command, "```", "",
                  f"{result.seconds / 60:.1f} minutes; load average {result.load}.", "",
                  result.markdown]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: checks that every benchmark runs, in minutes")
    parser.add_argument("--neo4j", metavar="URI", help="a running server (default: start one)")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT",
                        help="run only these benchmarks (e.g. bench_library.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "BENCHMARKS.md")
    args = parser.parse_args()
    benches = [b for b in BENCHES if not args.only or b.script in args.only]
    start = time.perf_counter()
    results = []
    needed = any(b.needs_neo4j for b in benches)
    with tempfile.TemporaryDirectory() as tmp, neo4j_server(args.neo4j, needed) as uri:
        for bench in benches:
            results.append(run_bench(bench, args.quick, uri, Path(tmp) / f"{bench.script}.json"))
    args.out.write_text(render(results, args.quick, time.perf_counter() - start))
    failed = [r.title for r in results if r.failed]
    print(f"wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""),
          file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""What a benchmark reports: Markdown for people, JSON for the suite that assembles
BENCHMARKS.md.

Every benchmark script builds one ``Report``: paragraphs and tables whose numbers come from
the run, and the targets it checks (goal, measured value, met or not). Run alone, a script
prints its Markdown; run by ``benchmarks/suite.py`` it also writes the JSON the suite reads
(``--json PATH``), so the file is assembled from measured values only, never edited by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """One goal the issue set, and whether this run met it."""

    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class Report:
    title: str
    command: str
    blocks: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    @staticmethod
    def of(title: str) -> Report:
        """A report whose command is this process's own command line, as it was typed."""
        argv = _without_json(sys.argv[1:])
        script = Path(sys.argv[0])
        with contextlib.suppress(ValueError):
            script = script.resolve().relative_to(Path.cwd())
        return Report(
            title, " ".join(["PYTHONPATH=. .venv/bin/python", str(script), *map(shlex.quote, argv)])
        )

    def say(self, text: str) -> None:
        """A paragraph (also printed at once, so a long run shows its progress)."""
        self.blocks.append(text.strip())
        print(text.strip(), flush=True)

    def table(
        self, header: list[str], rows: list[list[str]], right: set[int] | None = None
    ) -> None:
        """A Markdown table; columns in ``right`` (default: all but the first) align right."""
        right = set(range(1, len(header))) if right is None else right
        align = ["---:" if i in right else "---" for i in range(len(header))]
        lines = [_row(header), _row(align), *(_row(r) for r in rows)]
        self.blocks.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def target(self, name: str, goal: str, measured: str, met: bool) -> None:
        self.targets.append(Target(name, goal, measured, met))

    def markdown(self) -> str:
        return "\n\n".join(self.blocks)

    def save(self, path: Path | None) -> None:
        if path is not None:
            path.write_text(
                json.dumps(
                    {
                        "title": self.title,
                        "command": self.command,
                        "markdown": self.markdown(),
                        "targets": [asdict(t) for t in self.targets],
                    },
                    indent=2,
                )
            )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the report as JSON (what benchmarks/suite.py reads)",
    )


def _without_json(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            out.append(arg)
    return out


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def ms(seconds: float) -> str:
    """Milliseconds with the precision a reader needs: 0.84 ms, 62.2 ms, 4,188 ms."""
    value = seconds * 1e3
    return (
        f"{value:.2f} ms"
        if value < 10
        else f"{value:,.1f} ms"
        if value < 1000
        else f"{value:,.0f} ms"
    )


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: with 7 runs, p95 is the slowest."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]


def timed(run: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    """Seconds of each of ``repeats`` calls, and what the last one returned."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return times, result


def peak_rss_mib() -> float:
    """Peak resident memory of this process (the one that writes the store), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Process:
    """A whole process as ``/usr/bin/time -v`` saw it: wall seconds, peak RSS in MiB (the
    largest of the process and the children it waited for), and its standard output."""

    wall: float
    rss: float
    stdout: str


def time_process(command: list[str], **options: Any) -> Process:
    """Run ``command`` under ``/usr/bin/time -v`` (``subprocess.run`` options pass through;
    a failure stops the benchmark with the process's output)."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False, **options
    )
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    clock = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if clock is None or rss is None:
        raise SystemExit(f"no timing in /usr/bin/time's report:\n{done.stderr}")
    wall = float(clock.group(1) or 0) * 60 + float(clock.group(2))
    return Process(wall, int(rss.group(1)) / 1024, done.stdout)


@dataclass(frozen=True)
class Watched:
    """A process run under a memory ceiling and a time limit: its wall seconds, its peak
    RSS in MiB (the kernel's high-water mark, read while it ran), and why it was stopped or
    failed (None: it finished): the ceiling, the limit, or its exit status and the first
    line of its error output (circuitql refusing the model)."""

    wall: float
    rss: float
    stopped: str | None


def watch_process(
    command: list[str], ceiling_mib: float, limit_s: float, **options: Any
) -> Watched:
    """Run ``command``, stopping it when its resident memory passes ``ceiling_mib`` or its
    wall time ``limit_s``: how a benchmark measures what may not fit the machine (Linux,
    /proc)."""
    with tempfile.TemporaryFile("w+") as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, **options)
        peak, stopped = _watch(process, ceiling_mib, limit_s, start)
        wall = time.perf_counter() - start
        if stopped is None and process.returncode != 0:
            errors.seek(0)
            first = next((line.strip() for line in errors if line.strip()), "")
            stopped = f"exit status {process.returncode}: {first}"
    return Watched(wall, peak, stopped)


def _watch(
    process: subprocess.Popen[str], ceiling_mib: float, limit_s: float, start: float
) -> tuple[float, str | None]:
    """Poll a running process's memory until it ends, or kill it past the ceiling or the
    limit: its peak RSS in MiB, and why it was stopped."""
    status = Path(f"/proc/{process.pid}/status")
    peak = 0.0
    while process.poll() is None:
        stopped = None
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
            rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
            if rss > ceiling_mib:
                stopped = f"stopped at {rss:,.0f} MiB, over the {ceiling_mib:,.0f} MiB ceiling"
            elif time.perf_counter() - start > limit_s:
                stopped = f"stopped at the {limit_s:.0f} s limit"
        if stopped:
            process.kill()
            process.wait()
            return peak, stopped
        time.sleep(0.2)
    return peak, None

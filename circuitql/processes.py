"""Processes: whether one still runs (asked by the Neo4j launcher of its server and by
indexing workers of the process that feeds them), and how many cores are free for more."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists (ours to signal or not) and is no zombie, a
    process that has exited and waits only for its parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def idle_cores() -> int:
    """Cores this process may use that other work is not using now: the cores it may run on
    less the last minute's load average, at least one.

    Indexing starts this many workers by default. On a machine other jobs keep busy, workers
    beyond the idle cores only take turns with them and with the writer, the one serial stage.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on macOS or Windows
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on Windows
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))

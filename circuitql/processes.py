"""Processes: whether one still runs (asked by the Neo4j launcher of its server and by
indexing workers of the process that feeds them), and how many cores are free for more."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
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


# Allocations this large or larger are mapped from the kernel on their own and given back
# when freed (glibc's M_MMAP_THRESHOLD, which mallopt sets with this code).
_M_MMAP_THRESHOLD = -3
HEAP_LIMIT = 1 << 20


def return_freed_arrays() -> None:
    """Have the C library map every allocation of ``HEAP_LIMIT`` or more on its own, so that
    freeing one gives its memory back at once. By default glibc raises that threshold each
    time a large block is freed, up to 32 MB: from then on a big network's per-layer arrays
    (19 MB each in a GPT-2-sized stack) come from the heap, which cannot shrink past what is
    still in use, and loading the 12-block stack peaked at 5,089 MiB rather than 4,586 MiB.
    Called by processes circuitql owns (the command line, indexing workers), never on
    import: a library leaves its host's allocator alone. A no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, HEAP_LIMIT)

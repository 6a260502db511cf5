"""Whether a process still runs: asked by the Neo4j launcher of its server and by indexing
workers of the process that feeds them."""

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

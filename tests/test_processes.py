"""What circuitql sets up in the processes it owns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# In a fresh process: free a 16 MB array (glibc then serves blocks up to 16 MB from its
# heap), make twenty 4 MB arrays, free all but the last, and print how many MiB of them the
# process still holds.
_HELD_AFTER_FREEING = """
import sys
import numpy as np
from circuitql.processes import return_freed_arrays

def resident():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "set":
    return_freed_arrays()
big = np.ones(2 << 20)
del big
before = resident()
arrays = [np.ones(1 << 19) for _ in range(20)]
last = arrays[-1]
del arrays
print(round(resident() - before))
"""


def _held(*args: str) -> int:
    # glibc's MALLOC_* variables fix its thresholds as the setting does (starting a Dask
    # LocalCluster exports MALLOC_TRIM_THRESHOLD_, for the same reason): not in the child.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _HELD_AFTER_FREEING, *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_arrays_go_back_to_the_system_in_processes_circuitql_owns() -> None:
    # Without the setting, the heap keeps the nineteen freed arrays below the last one.
    assert _held("default") >= 60
    assert _held("set") <= 10

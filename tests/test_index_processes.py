"""A killed indexer leaves no process behind: its workers, the fork server and the resource
tracker all end with it, however it was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuitql.export import save, spec_from_graph
from circuitql.zoo.plant import HostShape, hosted_zoo

HARNESS_S = 60.0  # how long the test waits for processes to start and end, at most


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":  # a zombie has ended; it only waits to be reaped
                kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def _descendants(pid: int) -> set[int]:
    kids, found, todo = _children(), set(), [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.add(kid)
            todo.append(kid)
    return found


def _running(pids: set[int]) -> set[int]:
    alive = {p for ps in _children().values() for p in ps}
    return pids & alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_indexer_leaves_no_process(tmp_path: Path, sig: signal.Signals) -> None:
    folder = tmp_path / "zoo"
    for name, graph, _ in hosted_zoo(200, 3, HostShape()):
        save(spec_from_graph(graph, keep_ids=True), folder / f"{name}.safetensors")
    indexer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "circuitql.cli",
            "index",
            str(folder),
            "--store",
            str(tmp_path / "s.db"),
            "--jobs",
            "2",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    deadline = time.monotonic() + HARNESS_S
    spawned: set[int] = set()
    while time.monotonic() < deadline and len(spawned) < 4:  # tracker, server, 2 workers
        spawned = _descendants(indexer.pid)
        time.sleep(0.05)
    assert len(spawned) >= 4, "the indexer never started its workers"
    indexer.send_signal(sig)
    indexer.wait()
    while time.monotonic() < deadline and _running(spawned):
        time.sleep(0.1)
    left = _running(spawned)
    for pid in left:  # leave the machine clean whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not left


def test_workers_run_at_the_indexers_priority() -> None:
    """Below it, they starved on a busy machine: two workers took 3.4x one process's time."""
    from circuitql.parallel import process_pool

    with process_pool(2) as pool:
        assert pool is not None
        niceness = {pool.submit(os.nice, 0).result() for _ in range(4)}
    assert niceness == {os.nice(0)}


@pytest.mark.parametrize(
    ("cores", "load", "idle"), [(4, 0.3, 4), (4, 1.6, 2), (4, 3.2, 1), (2, 9.0, 1), (8, 0.0, 8)]
)
def test_workers_default_to_the_idle_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, idle: int
) -> None:
    from circuitql import processes

    monkeypatch.setattr(
        processes.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False
    )
    monkeypatch.setattr(processes.os, "getloadavg", lambda: (load, load, load))
    assert processes.idle_cores() == idle


def test_without_a_load_average_every_core_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    from circuitql import processes

    def unknown() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(processes.os, "getloadavg", unknown)
    assert processes.idle_cores() == 3

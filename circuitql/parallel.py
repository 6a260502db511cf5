"""Where indexing's per-model work runs: in the indexing process, in a pool of worker
processes on this machine, or on a Dask cluster.

Loading, canonicalizing and signing a model is a pure function of the model (``_prepare`` in
``circuitql.api``); only writing the store is serial. So the work is mapped over models in
order, at most a few results per worker ahead of the writer, and the writer takes them as
they come: the store is the same whichever runs the work.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from circuitql.errors import CircuitQLError
from circuitql.processes import alive, idle_cores, return_freed_arrays

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

MIN_ITEMS_PER_WORKER = 8  # below this, starting processes costs more than it saves
AHEAD_PER_WORKER = 4  # prepared models that may wait for the writer, per worker
DASK_CONNECT_S = 30  # how long to wait for a Dask scheduler to answer
LOCAL = "local"  # --dask local: a LocalCluster on this machine


class Pending(Protocol[R_co]):
    """Work submitted to a ``Pool``: a concurrent.futures Future or a Dask one."""

    def result(self) -> R_co:
        """Wait for the work; its value, or the exception it raised, raised here."""
        ...

    def done(self) -> bool:
        """Whether the work has ended (``result`` returns at once)."""
        ...


class Pool(Protocol):
    """What ``in_order`` needs of an executor: a process pool's or a Dask client's submit."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Pending[Any]:
        """Start ``fn(*args)`` on a worker without waiting for it."""
        ...


def worker_count(jobs: int | None, n_items: int) -> int:
    """``jobs`` when given (at least 1); else one per idle core, but only as many as get
    ``MIN_ITEMS_PER_WORKER`` items each, so a small batch runs in this process."""
    if jobs is not None:
        return max(1, jobs)
    return max(1, min(idle_cores(), n_items // MIN_ITEMS_PER_WORKER))


@contextmanager
def executor(
    jobs: int | None, n_items: int, dask: str | None = None
) -> Iterator[tuple[Pool | None, int]]:
    """(the pool, how many workers it has), or (None, 1) to work in this process.

    ``dask``: a scheduler's address, or ``"local"`` for a LocalCluster of ``jobs`` (default:
    the idle cores) single-threaded worker processes on this machine.
    """
    if dask is not None:
        with _dask(dask, jobs) as found:
            yield found
        return
    workers = worker_count(jobs, n_items)
    with process_pool(workers) as pool:
        yield pool, workers


@contextmanager
def process_pool(jobs: int) -> Iterator[Pool | None]:
    """Worker processes from a fork server: no fork of a parent that may hold torch's threads.

    An executor rather than ``multiprocessing.Pool``: the pool's worker-handler thread wakes
    whenever a result waits in the pipe, and with results of ~300 KB it spins, taking the
    writing process's CPU and GIL.
    """
    if jobs <= 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor  # 25 ms that only indexing pays
    from multiprocessing import get_context

    context = get_context("forkserver" if sys.platform == "linux" else "spawn")
    if sys.platform == "linux":
        context.set_forkserver_preload(["circuitql.api"])
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _start_worker(writer: int) -> None:
    """Set a worker process up: bound to the life of ``writer``, the indexing process, and on
    one BLAS thread.

    Workers keep the writer's priority. Below it (nice 10, as they once ran), they starved on
    a machine other jobs kept busy: ``--jobs 2`` took 3.4x longer than one process. The
    workers are the parallelism: a BLAS pool per worker on top of them only contends for the
    same cores (the canonical-error check's products ran 5x slower with two workers on two
    cores).
    """
    from threadpoolctl import threadpool_limits

    _exit_with(writer)
    threadpool_limits(1)
    return_freed_arrays()


def _exit_with(pid: int) -> None:
    """End this worker as soon as process ``pid`` ends, however it ends (SIGKILL included).

    Its queue's other end stays open in the other workers, and each worker holds the fork
    server's lifeline, so without this a killed indexer left the fork server, the resource
    tracker and every worker waiting on each other for up to 45 minutes."""

    def wait() -> None:
        try:
            handle = os.pidfd_open(pid)  # Linux 5.3+: readable once pid has ended
        except (AttributeError, OSError):
            while alive(pid):
                time.sleep(1.0)
        else:
            select.select([handle], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="exit-with-indexer", daemon=True).start()


class _DaskPool:
    """A Dask client as a ``Pool``. ``pure=False``: the same model twice is two tasks, and
    Dask never hashes a model (an nn.Module can be large) to find out."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Pending[Any]:
        future: Pending[Any] = self.client.submit(fn, *args, pure=False)
        return future


@contextmanager
def _dask(address: str, jobs: int | None) -> Iterator[tuple[Pool, int]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CircuitQLError(
            "--dask needs Dask's distributed scheduler, which is not installed here",
            fix="pip install 'circuitql[dask]'",
        ) from None
    if address != LOCAL:
        _check_address(address)
    cluster = None
    try:
        if address == LOCAL:
            cluster = LocalCluster(
                n_workers=jobs or idle_cores(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
        else:
            client = Client(address, timeout=DASK_CONNECT_S)
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            cluster.close()
        raise CircuitQLError(
            f"no Dask scheduler answered at {address!r}: {err}",
            fix="start one (dask scheduler, then dask worker ADDRESS on each "
            "machine), check the address (tcp://host:8786), or use --dask "
            "local",
        ) from None
    try:
        workers = sum(client.nthreads().values())
        if not workers:
            raise CircuitQLError(
                f"the Dask scheduler at {address!r} has no workers",
                fix="start workers: dask worker ADDRESS",
            )
        yield _DaskPool(client), workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_address(address: str) -> None:
    """A malformed address is refused here: handed to a Client, one can leave it waiting
    for a connection it will never try."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import backends

    problem = None
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            problem = f"unknown scheme {scheme!r} (known: {', '.join(sorted(backends))})"
        elif scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as err:
        problem = str(err)
    if not address.strip() or problem is not None:
        raise CircuitQLError(
            f"--dask {address!r} is not a scheduler's address"
            + (f": {problem}" if problem else ""),
            fix="give tcp://HOST:PORT (a scheduler listens on 8786), or --dask local",
        )


def in_order(
    pool: Pool,
    workers: int,
    prepare: Callable[[T], R],
    items: Iterable[T],
    on_wait: Callable[[], None],
) -> Iterator[R]:
    """``map(prepare, items)`` run in ``pool``, with at most ``AHEAD_PER_WORKER`` results per
    worker ahead of the consumer: the writer is the slower side, and results it has not taken
    yet would otherwise pile up in memory, and keep the workers busy, competing with it.
    ``on_wait`` is called before waiting for a result that is not ready (the writer then
    commits what it holds rather than keep the store locked while it waits)."""
    limit = AHEAD_PER_WORKER * workers
    pending: deque[Pending[R]] = deque()
    for item in items:
        pending.append(pool.submit(prepare, item))
        if len(pending) >= limit:
            yield _when_done(pending.popleft(), on_wait)
    while pending:
        yield _when_done(pending.popleft(), on_wait)


def _when_done(work: Pending[R], on_wait: Callable[[], None]) -> R:
    if not work.done():
        on_wait()
    return work.result()


def prepared_here(
    prepare: Callable[[T], R], items: Iterable[T], on_wait: Callable[[], None], slow: float
) -> Iterator[R]:
    """``map(prepare, items)`` in this process, ``on_wait`` called before a preparation
    whenever the one before took over ``slow`` seconds: the writer waits for its own work,
    and a big model's preparation should not find the store locked by the writes before."""
    took = 0.0
    for item in items:
        if took > slow:
            on_wait()
        start = time.perf_counter()
        result = prepare(item)
        took = time.perf_counter() - start
        yield result

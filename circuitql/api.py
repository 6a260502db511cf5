"""The Python entry point: ``connect()`` returns a Database that indexes and lists models.

Kept thin on purpose: loading, canonicalization and signing live in ``indexer``, persistence in
``store``; this class only strings them together and picks names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from circuitql.errors import CircuitQLError
from circuitql.indexer.load import discover, load, model_stem, printable_path
from circuitql.indexer.pipeline import IndexConfig, StageTimes, build_records
from circuitql.processes import alive, idle_cores
from circuitql.query import compile_query, engine
from circuitql.query.census import Census
from circuitql.query.census import census as run_census
from circuitql.query.compare import Comparison, compare_models
from circuitql.query.compile import CensusQuery, CompareQuery, CompiledQuery, MatchQuery
from circuitql.query.engine import Explain, Results
from circuitql.store.base import IndexedModel, ModelInfo, Store, WriteOutcome
from circuitql.store.uri import open_store

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor


@dataclass
class IndexReport:
    """What a batch of ``index_paths`` did, file by file."""

    indexed: list[ModelInfo] = field(default_factory=list)
    unchanged: list[ModelInfo] = field(default_factory=list)
    failed: list[tuple[Any, CircuitQLError]] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


class Database:
    """An open store plus the indexing pipeline."""

    def __init__(self, store: Store, config: IndexConfig | None = None) -> None:
        self.store = store
        self.config = config or IndexConfig()

    @property
    def uri(self) -> str:
        return self.store.uri

    def __repr__(self) -> str:
        return f"<circuitql.Database {self.uri}>"

    def index(
        self,
        model: Any,
        name: str | None = None,
        *,
        input_dim: int | None = None,
        times: StageTimes | None = None,
        replace: bool = False,
    ) -> WriteOutcome:
        """Index an nn.Module, a NeuronGraph or a model file under ``name``.

        Indexing the same network again under its name (same weights, whatever the file
        format) changes nothing and reports ``status == "unchanged"``; another network under
        a stored name is refused, or with ``replace`` takes its place.
        """
        times = times or StageTimes()
        loaded = times.timed("load", lambda: load(model, input_dim=input_dim))
        records = build_records(loaded, name or loaded.default_name, self.config, times)
        return times.timed("write", lambda: self.store.write(records, replace))

    def index_many(
        self,
        items: Sequence[tuple[Any, str]],
        *,
        jobs: int | None = None,
        on_done: Callable[[Any], None] | None = None,
        replace: bool = False,
    ) -> IndexReport:
        """Index many (model, name) pairs: a bad model is reported, the rest go on.

        Loading, canonicalizing and signing run in ``jobs`` worker processes (default: one per
        core); the store is written from this process, one model per transaction, in the
        order given, so the result does not depend on ``jobs``.
        """
        from threadpoolctl import threadpool_limits

        report = IndexReport()
        jobs = _worker_count(jobs, len(items))
        prepare = partial(_prepare, config=self.config)
        # One BLAS thread here too: the products indexing runs are small, and a thread pool
        # spinning up for each costs more than it saves (5x on a busy two-core machine).
        with _pool(jobs) as pool, threadpool_limits(1):
            results = _in_order(pool, jobs, prepare, items) if pool else map(prepare, items)
            for (model, _name), (records, times) in zip(items, results, strict=True):
                report.times.add(times)
                if isinstance(records, CircuitQLError):
                    report.failed.append((model, records))
                else:
                    with report.times.timing("write"):
                        outcome = self.store.write(records, replace)
                    target = report.indexed if outcome.status == "indexed" else report.unchanged
                    target.append(outcome.model)
                if on_done:
                    on_done(model)
        return report

    def index_paths(
        self,
        paths: Sequence[str | Path],
        name: str | None = None,
        on_file: Callable[[Path], None] | None = None,
        files: Iterable[Path] | None = None,
        jobs: int | None = None,
        replace: bool = False,
    ) -> IndexReport:
        """Index every model file under ``paths`` (folders searched recursively); with
        ``replace``, a file whose network differs from the one stored under its name takes
        its place."""
        found = list(files) if files is not None else discover(paths)
        if name is not None and len(found) != 1:
            raise CircuitQLError(
                f"--name names one model, but {len(found)} files were given",
                fix="drop --name: models from several files are named after their paths",
            )
        roots = [Path(p) for p in paths]
        items = [(path, name or model_name(path, roots)) for path in found]
        return self.index_many(items, jobs=jobs, on_done=on_file, replace=replace)

    def query(self, text: str | MatchQuery, *, limit: int | None = None,
              explain: Explain | None = None, timeout: float | None = None) -> Results:
        """Verified matches of a MATCH query (a library name alone is short for MATCH name),
        as text or as ``execute`` compiled it.

        An iterator: matches arrive as they are verified, and ``LIMIT`` (or ``limit``) stops
        the search early; ``.to_records()`` and ``.to_pandas()`` give them as a table. Pass
        an ``Explain`` to collect the plan and per-stage counts. The search stops at its
        deadline (``TIMEOUT``, ``timeout`` seconds, else 120 s): the matches so far stand,
        ``explain.partial`` says why, and a ``PartialAnswer`` warning is issued.
        """
        compiled = text if isinstance(text, MatchQuery) else compile_query(_as_query(text))
        if not isinstance(compiled, MatchQuery):
            raise CircuitQLError(
                f"db.query runs MATCH queries; this is a {type(compiled).__name__}",
                fix="use db.compare(a, b) for COMPARE, db.census(...) for COUNT MODELS, "
                "or db.execute(text) for any statement",
            )
        if limit is not None:  # the smaller of the two: neither asks for more than it says
            compiled = dataclasses.replace(compiled, limit=min(limit, compiled.limit or limit))
        if timeout is not None:
            compiled = dataclasses.replace(compiled, timeout=timeout)
        return Results(engine.run(self.store, compiled, explain))

    def execute(self, text: str) -> CompiledQuery:
        """Compile any statement, checking the models it names exist (the CLI's entry)."""
        compiled = compile_query(_as_query(text))
        if isinstance(compiled, CompareQuery):
            self.model(compiled.model_a)
            self.model(compiled.model_b)
        return compiled

    def compare(self, model_a: str, model_b: str, *, tolerance: float | None = None,
                circuits: bool = True) -> Comparison:
        """What two indexed networks share: signatures, sub-layers, library circuits."""
        self.model(model_a)
        self.model(model_b)
        return compare_models(self.store, model_a, model_b, tolerance, circuits)

    def census(self, circuit: str | CensusQuery, by: str | None = None, *,
               models: str | None = None, tolerance: float | None = None,
               exact: bool = False, timeout: float | None = None,
               explain: Explain | None = None) -> Census:
        """Per group of ``by`` (``meta.task``...), how many models contain ``circuit`` and
        which (``exact``: without approximation, as ``MATCH ... EXACT`` finds it).
        ``circuit`` is anything MATCH takes: a library name, ``min(a, b) >> negation``, a
        ``MATCH`` query, or circuit definitions followed by one; or a ``COUNT MODELS``
        statement as ``execute`` compiled it, which says the rest itself (``timeout``
        still applies)."""
        if isinstance(circuit, CensusQuery):
            query = circuit if timeout is None else dataclasses.replace(circuit,
                                                                        timeout=timeout)
            return run_census(self.store, query, explain)
        if by is None:
            raise CircuitQLError("a census groups models by a key, and none was given",
                                 fix="name one, e.g. db.census('abs', by='meta.task')")
        text = circuit if re.match(r"\s*(MATCH|CIRCUIT)\b", circuit, re.IGNORECASE) else (
            f"MATCH {circuit}")
        compiled = compile_query(text)
        if not isinstance(compiled, MatchQuery):
            raise CircuitQLError("census counts models holding a circuit: give its name, an "
                                 "expression such as min >> negation, or a MATCH query",
                                 fix="for COUNT MODELS ... GROUP BY, use `circuitql query`")
        pattern = compiled.pattern
        return run_census(self.store, CensusQuery(pattern, by, models, tolerance,
                                                  exact=exact, timeout=timeout), explain)

    def models(self) -> list[ModelInfo]:
        return self.store.models()

    def model(self, name: str) -> ModelInfo:
        info = self.store.get_model(name)
        if info is None:
            known = [m.name for m in self.store.models()]
            from difflib import get_close_matches

            close = get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run `circuitql models`"
            raise CircuitQLError(f"no model named {name!r} in {self.uri}", fix=hint)
        return info

    def tokens(self, name: str) -> str:
        """The model's network string: its layers' words, in order."""
        return self.model(name).network_string

    def delete(self, name: str) -> bool:
        return self.store.delete(name)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _as_query(text: str) -> str:
    """``"abs"`` is short for ``"MATCH abs"``."""
    stripped = text.strip()
    return f"MATCH {stripped}" if stripped.isidentifier() else text


def _prepare(item: tuple[Any, str], config: IndexConfig
             ) -> tuple[IndexedModel | CircuitQLError, StageTimes]:
    """Load, canonicalize and sign one model (in a worker process when indexing many)."""
    model, name = item
    times = StageTimes()
    try:
        loaded = times.timed("load", lambda: load(model))
        return build_records(loaded, name, config, times), times
    except CircuitQLError as err:
        return err, times


T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS_PER_WORKER = 8  # below this, starting processes costs more than it saves
AHEAD_PER_WORKER = 4  # prepared models that may wait for the writer, per worker


def _worker_count(jobs: int | None, n_items: int) -> int:
    if jobs is not None:
        return max(1, jobs)
    return max(1, min(idle_cores(), n_items // MIN_ITEMS_PER_WORKER))


@contextmanager
def _pool(jobs: int) -> Iterator[ProcessPoolExecutor | None]:
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
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                   initargs=(os.getpid(),))
    try:
        yield executor
    finally:
        executor.shutdown(cancel_futures=True)


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


def _in_order(pool: ProcessPoolExecutor, jobs: int, prepare: Callable[[T], R],
              items: Iterable[T]) -> Iterator[R]:
    """``map(prepare, items)`` run in ``pool``, with at most ``AHEAD_PER_WORKER`` results per
    worker ahead of the consumer: the writer is the slower side, and results it has not taken
    yet would otherwise pile up in memory, and keep the workers busy, competing with it."""
    limit = AHEAD_PER_WORKER * jobs
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(prepare, item))
        if len(pending) >= limit:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def model_name(path: Path, roots: Sequence[Path]) -> str:
    """A file's model name: its path below the folder it was found in, without its final
    extension.

    ``zoo/abs/seed0.safetensors`` found under ``zoo`` is ``abs/seed0``, so models in different
    subfolders with the same file name do not collide. Bytes of a file name that are not
    UTF-8 are kept, escaped: ``b\\xe9b\\xe9`` for Latin-1's "bébé".
    """
    for root in roots:
        if root.is_dir():
            try:
                relative = path.relative_to(root)
            except ValueError:
                continue
            return printable_path(str(relative.parent / model_stem(relative)))
    return printable_path(model_stem(path))


def connect(uri: str | None = None, config: IndexConfig | None = None, *,
            create: bool = True) -> Database:
    """Open a store: ``None`` (``$CIRCUITQL_STORE`` or ``./circuitql.db``), a path,
    ``sqlite:///path``, or ``neo4j://user:pw@host:7687`` / ``bolt://...``. A path with no
    store is a new one, unless ``create`` is False: then it is an error, as for every CLI
    command that only reads."""
    return Database(open_store(uri, create), config)

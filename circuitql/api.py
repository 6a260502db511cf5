"""The Python entry point: ``connect()`` returns a Database that indexes and lists models.

Kept thin on purpose: loading, canonicalization and signing live in ``indexer``, persistence in
``store``; this class only strings them together and picks names.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from circuitql.analysis.census import Census
from circuitql.analysis.census import census as run_census
from circuitql.analysis.compare import Comparison, compare_models
from circuitql.engine.explain import Explain
from circuitql.engine.results import Results
from circuitql.engine.search import run as search
from circuitql.errors import CircuitQLError, NameTaken
from circuitql.graph import NeuronGraph
from circuitql.indexer.files import discover, model_stem, printable_path
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import IndexConfig, StageTimes, build_records
from circuitql.language import compile_query
from circuitql.language.compile import CensusQuery, CompareQuery, CompiledQuery, MatchQuery
from circuitql.parallel import executor, in_order
from circuitql.records import IndexedModel, ModelInfo, WriteOutcome
from circuitql.store.base import Store
from circuitql.store.uri import open_store

if TYPE_CHECKING:
    from circuitql.picture import Svg


@dataclass
class IndexReport:
    """What a batch of ``index_paths`` did, file by file."""

    indexed: list[ModelInfo] = field(default_factory=list)
    unchanged: list[ModelInfo] = field(default_factory=list)
    failed: list[tuple[Any, CircuitQLError]] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    # Models whose pruning was tightened to keep their canonical error under the bound, with
    # the canonical form's log lines that say so.
    tightened: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def add(self, outcome: WriteOutcome, records: IndexedModel) -> None:
        """A model written (or found unchanged), and whether its pruning was tightened."""
        (self.indexed if outcome.status == "indexed" else self.unchanged).append(outcome.model)
        steps = tuple(line for line in records.canonical_log if line.startswith("tighten"))
        if steps and outcome.status == "indexed":
            self.tightened.append((outcome.model.name, steps))


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

    def _repr_html_(self) -> str:
        """In Jupyter: the store and its first models, as ``circuitql models`` lists them."""
        from circuitql.html import MAX_ROWS, table

        models = self.models()
        rows = [
            (m.name, m.n_inputs, m.n_outputs, m.n_neurons, m.n_edges, m.canonical_error, m.source)
            for m in models[:MAX_ROWS]
        ]
        more = f"… and {len(models) - MAX_ROWS} more" if len(models) > MAX_ROWS else ""
        return table(
            ("model", "in", "out", "neurons", "edges", "canonical error", "source"),
            rows,
            caption=f"{self.uri}: {len(models)} model(s)",
            footer=more,
        )

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
        dask: str | None = None,
    ) -> IndexReport:
        """Index many (model, name) pairs: a bad model is reported, the rest go on.

        Loading, canonicalizing and signing run in ``jobs`` worker processes (default: one per
        idle core), or with ``dask`` on a Dask cluster (a scheduler's address, or ``"local"``
        for a LocalCluster here); the store is written from this process, one model per
        transaction, in the order given, so the result does not depend on where the work ran.
        """
        from threadpoolctl import threadpool_limits

        report = IndexReport()
        prepare = partial(_prepare, config=self.config)
        # One BLAS thread here too: the products indexing runs are small, and a thread pool
        # spinning up for each costs more than it saves (5x on a busy two-core machine).
        with executor(jobs, len(items), dask) as (pool, workers), threadpool_limits(1):
            results = in_order(pool, workers, prepare, items) if pool else map(prepare, items)
            for (model, _name), (records, times) in zip(items, results, strict=True):
                report.times.add(times)
                if isinstance(records, CircuitQLError):
                    report.failed.append((model, records))
                else:
                    self._write(model, records, replace, report)
                if on_done:
                    on_done(model)
        return report

    def _write(self, model: Any, records: IndexedModel, replace: bool, report: IndexReport) -> None:
        """One prepared model into the store; a name another network holds fails this model
        only, and the batch goes on."""
        try:
            with report.times.timing("write"):
                report.add(self.store.write(records, replace), records)
        except NameTaken as taken:
            report.failed.append((model, taken))

    def index_paths(
        self,
        paths: Sequence[str | Path],
        name: str | None = None,
        on_file: Callable[[Path], None] | None = None,
        files: Iterable[Path] | None = None,
        jobs: int | None = None,
        replace: bool = False,
        dask: str | None = None,
    ) -> IndexReport:
        """Index every model file under ``paths`` (folders searched recursively); with
        ``replace``, a file whose network differs from the one stored under its name takes
        its place. With ``dask``, the files are read by the cluster's workers: by their
        absolute paths, which every worker must see."""
        found = list(files) if files is not None else discover(paths)
        if name is not None and len(found) != 1:
            raise CircuitQLError(
                f"--name names one model, but {len(found)} files were given",
                fix="drop --name: models from several files are named after their paths",
            )
        roots = [Path(p) for p in paths]
        items = [
            (path.absolute() if dask else path, name or model_name(path, roots)) for path in found
        ]
        return self.index_many(items, jobs=jobs, on_done=on_file, replace=replace, dask=dask)

    def query(
        self,
        text: str | MatchQuery,
        *,
        limit: int | None = None,
        explain: Explain | None = None,
        timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Results:
        """Verified matches of a MATCH query (a library name alone is short for MATCH name),
        as text or as ``execute`` compiled it.

        An iterator: matches arrive as they are verified, and ``LIMIT`` (or ``limit``) stops
        the search early; ``.to_records()`` and ``.to_pandas()`` give them as a table. Pass
        an ``Explain`` to collect the plan and per-stage counts. The search stops at its
        deadline (``TIMEOUT``, ``timeout`` seconds, else 120 s): the matches so far stand,
        ``explain.partial`` says why, and a ``PartialAnswer`` warning is issued.
        ``on_progress(examined, found)`` hears the anchor candidates examined so far and
        those found so far (which grows as each flat pattern is looked up).
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
            compiled = dataclasses.replace(compiled, timeout=_seconds(timeout))
        return Results(search(self.store, compiled, _watched(explain, on_progress)))

    def execute(self, text: str) -> CompiledQuery:
        """Compile any statement, checking the models it names exist (the CLI's entry)."""
        compiled = compile_query(_as_query(text))
        if isinstance(compiled, CompareQuery):
            self.model(compiled.model_a)
            self.model(compiled.model_b)
        return compiled

    def compare(
        self,
        model_a: str,
        model_b: str,
        *,
        tolerance: float | None = None,
        circuits: bool = True,
        on_circuit: Callable[[str], None] | None = None,
    ) -> Comparison:
        """What two indexed networks share: signatures, sub-layers, library circuits
        (``on_circuit`` hears each circuit's name as both are searched for it)."""
        self.model(model_a)
        self.model(model_b)
        return compare_models(self.store, model_a, model_b, tolerance, circuits, on_circuit)

    def census(
        self,
        circuit: str | CensusQuery,
        by: str | None = None,
        *,
        models: str | None = None,
        tolerance: float | None = None,
        exact: bool = False,
        timeout: float | None = None,
        explain: Explain | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Census:
        """Per group of ``by`` (``meta.task``...), how many models contain ``circuit`` and
        which (``exact``: without approximation, as ``MATCH ... EXACT`` finds it).
        ``circuit`` is anything MATCH takes: a library name, ``min(a, b) >> negation``, a
        ``MATCH`` query, or circuit definitions followed by one; or a ``COUNT MODELS``
        statement as ``execute`` compiled it, which says the rest itself (``timeout``
        still applies). ``on_progress`` hears the search's progress as in ``query``."""
        explain = _watched(explain, on_progress)
        timeout = None if timeout is None else _seconds(timeout)
        if isinstance(circuit, CensusQuery):
            query = circuit if timeout is None else dataclasses.replace(circuit, timeout=timeout)
            return run_census(self.store, query, explain)
        if by is None:
            raise CircuitQLError(
                "a census groups models by a key, and none was given",
                fix="name one, e.g. db.census('abs', by='meta.task')",
            )
        text = (
            circuit
            if re.match(r"\s*(MATCH|CIRCUIT)\b", circuit, re.IGNORECASE)
            else (f"MATCH {circuit}")
        )
        compiled = compile_query(text)
        if not isinstance(compiled, MatchQuery):
            raise CircuitQLError(
                "census counts models holding a circuit: give its name, an "
                "expression such as min >> negation, or a MATCH query",
                fix="for COUNT MODELS ... GROUP BY, use `circuitql query`",
            )
        pattern = compiled.pattern
        return run_census(
            self.store,
            CensusQuery(pattern, by, models, tolerance, exact=exact, timeout=timeout),
            explain,
        )

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

    def has_model(self, name: str) -> bool:
        return self.store.get_model(name) is not None

    def draw(self, name: str) -> Svg:
        """The whole model ``name``, canonical form, as an SVG picture (``save`` writes PNG)."""
        from circuitql.render import draw_model

        self.model(name)  # no such model: the error names close ones
        return draw_model(self.store, name)

    def tokens(self, name: str) -> str:
        """The model's network string: its layers' words, in order."""
        return self.model(name).network_string

    def delete(self, name: str) -> bool:
        return self.store.delete(name)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _seconds(timeout: float) -> float:
    """A search's time limit, checked: NaN or infinity would mean no limit at all."""
    if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
        raise CircuitQLError(
            f"timeout={timeout!r}: a search's time limit is a finite number of seconds above 0",
            fix="give e.g. timeout=30",
        )
    return float(timeout)


def _watched(
    explain: Explain | None, on_progress: Callable[[int, int], None] | None
) -> Explain | None:
    """``explain``, or a new one when there is progress to hear, carrying ``on_progress``."""
    if on_progress is None:
        return explain
    explain = explain or Explain()
    explain.on_progress = on_progress
    return explain


def _as_query(text: str) -> str:
    """``"abs"`` is short for ``"MATCH abs"``."""
    stripped = text.strip()
    return f"MATCH {stripped}" if stripped.isidentifier() else text


def _prepare(
    item: tuple[Any, str], config: IndexConfig
) -> tuple[IndexedModel | CircuitQLError, StageTimes]:
    """Load, canonicalize and sign one model (in a worker process when indexing many)."""
    model, name = item
    times = StageTimes()
    try:
        loaded = times.timed("load", lambda: load(model))
        return build_records(loaded, name, config, times), times
    except CircuitQLError as err:
        return err, times


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


def original_network(model: str | Path, uri: str | None = None) -> NeuronGraph:
    """The network ``model`` names as it was written, before any canonical form: a model
    file, else the file the model of that name in the store at ``uri`` was indexed from.

    Analyses of a model's redundancy (degeneracy, sparse bases) need the original; a store
    keeps only the canonical network, so a model indexed from an in-memory module cannot be
    analysed by name. The store is opened only for a name that is no file.
    """
    if Path(model).is_file():
        return load(model).graph
    with connect(uri, create=False) as db:
        source = db.model(str(model)).source
    if not Path(source).is_file():
        raise CircuitQLError(
            f"model {str(model)!r} was indexed from {source}, which is not a "
            "file that can be read again",
            fix="pass the model's file instead of its name",
        )
    return load(source).graph


def connect(
    uri: str | None = None, config: IndexConfig | None = None, *, create: bool = True
) -> Database:
    """Open a store: ``None`` (``$CIRCUITQL_STORE`` or ``./circuitql.db``), a path,
    ``sqlite:///path``, or ``neo4j://user:pw@host:7687`` / ``bolt://...``. A path with no
    store is a new one, unless ``create`` is False: then it is an error, as for every CLI
    command that only reads."""
    return Database(open_store(uri, create), config)

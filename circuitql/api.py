"""The Python entry point: ``connect()`` returns a Database that indexes and lists models.

Kept thin on purpose: loading, canonicalization and signing live in ``indexer``, persistence in
``store``; this class only strings them together and picks names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from circuitql.analysis.census import Census
from circuitql.analysis.census import census as run_census
from circuitql.analysis.compare import Comparison, compare_models
from circuitql.engine.explain import Explain
from circuitql.engine.results import Match, Results
from circuitql.engine.search import run as search
from circuitql.errors import CircuitQLError, NameTaken
from circuitql.graph import NeuronGraph
from circuitql.indexer.files import discover, model_stem, printable_path
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import (
    IndexConfig,
    StageTimes,
    build_records,
    records_unless_stored,
)
from circuitql.language import builtin_library, compile_query
from circuitql.language.compile import (
    CensusQuery,
    CompareQuery,
    CompiledQuery,
    MatchQuery,
    ShowQuery,
)
from circuitql.parallel import executor, in_order, prepared_here
from circuitql.records import IndexedModel, ModelInfo, WriteOutcome
from circuitql.store.base import Store, nothing_to_commit
from circuitql.store.neo4j_server import ServerStatus
from circuitql.store.uri import open_store

if TYPE_CHECKING:
    from circuitql.analysis.basis import BasisReport
    from circuitql.analysis.degeneracy import DegeneracyReport
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


@dataclass(frozen=True)
class BulkLoaded:
    """What ``neo4j_bulk_load`` did: each model's outcome, the server now running on the
    loaded database, and the seconds from the importer's start to a queryable store (the
    schema built)."""

    report: IndexReport
    server: ServerStatus
    import_seconds: float


@dataclass(frozen=True)
class Answer:
    """What any statement answers, as ``Database.run`` gives it.

    ``result`` is by kind: ``Results`` for MATCH (lazy: matches arrive as they are
    verified), a ``Census`` for COUNT MODELS, a ``Comparison`` for COMPARE, and for SHOW
    CIRCUITS the library circuits' docstrings by name. ``explain`` collects a search's plans
    and per-stage counts as it runs (None for SHOW and COMPARE, which search nothing of
    their own); ``plan`` is what ``EXPLAIN`` prints for those two.
    """

    query: CompiledQuery
    result: Results | Census | Comparison | dict[str, str]
    explain: Explain | None = None
    plan: str | None = None


@dataclass(frozen=True)
class Drawn:
    """What ``Database.picture`` drew: the picture, a line saying what it shows, the model,
    and the match (None for a whole model)."""

    picture: Svg
    title: str
    model: str
    match: Match | None = None


class Database:
    """An open store plus the indexing pipeline: the one façade every CLI command calls."""

    def __init__(self, store: Store, config: IndexConfig | None = None) -> None:
        self.store = store
        self.config = config or IndexConfig()

    @property
    def uri(self) -> str:
        """The store's address, a password in it redacted: what messages name."""
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
        records = build_records(lambda: load(model, input_dim=input_dim), name, self.config, times)
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
        for a LocalCluster here); the store is written from this process, each model whole
        or not at all (``Store.write_group``), in the order given, so the result does not
        depend on where the work ran.
        """
        write = partial(self.store.write, replace=replace)
        return index_items(
            items, write, self.config, jobs=jobs, on_done=on_done, dask=dask, stored=self.store
        )

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
        items = path_items(paths, files, name, absolute=dask is not None)
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
        those found so far (which grows as each flat pattern is looked up). The search
        pauses Python's cyclic garbage collector while it works, never while your code runs
        (between two matches, or in ``on_progress``).
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
        timeout: float | None = None,
    ) -> Comparison:
        """What two indexed networks share: signatures, sub-layers, library circuits
        (``on_circuit`` hears each circuit's name as both are searched for it). The circuit
        searches take ``timeout`` seconds in all (else 120); those cut short are listed in
        the comparison's ``unfinished``, their counts lower bounds."""
        self.model(model_a)
        self.model(model_b)
        seconds = None if timeout is None else _seconds(timeout)
        return compare_models(
            self.store, model_a, model_b, tolerance, circuits, on_circuit, seconds
        )

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

    def run(
        self,
        text: str,
        *,
        limit: int | None = None,
        timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        rows: bool = False,
    ) -> Answer:
        """Run any statement: MATCH, COUNT MODELS, COMPARE or SHOW CIRCUITS (what
        ``circuitql query`` runs). ``limit`` and ``timeout`` bound a MATCH as in ``query``
        (``timeout`` a COUNT MODELS too); ``on_progress`` hears a search's progress.
        ``rows`` asks for an answer that is a table (MATCH: a row per match; COUNT MODELS: a
        row per group) and refuses the others before any work."""
        compiled = self.execute(text)
        if rows and isinstance(compiled, ShowQuery | CompareQuery):
            raise CircuitQLError(
                "only MATCH (a row per match) and COUNT MODELS (a row per group) answer "
                "with rows; SHOW and COMPARE do not",
                fix="use --json for SHOW and COMPARE",
            )
        if isinstance(compiled, ShowQuery):
            plan = (
                "plan: the library's circuit names matched against "
                f"{compiled.pattern or '*'!r}; nothing is read from the store"
            )
            return Answer(compiled, library_circuits(compiled.pattern), plan=plan)
        if isinstance(compiled, CompareQuery):
            from circuitql.analysis.compare import plan_text

            compared = self.compare(
                compiled.model_a,
                compiled.model_b,
                tolerance=compiled.tolerance,
                timeout=timeout if timeout is not None else compiled.timeout,
            )
            return Answer(compiled, compared, plan=plan_text())
        explain = _watched(Explain(), on_progress)
        if isinstance(compiled, CensusQuery):
            return Answer(
                compiled, self.census(compiled, timeout=timeout, explain=explain), explain
            )
        found = self.query(compiled, limit=limit, timeout=timeout, explain=explain)
        return Answer(compiled, found, explain)

    def picture(
        self, target: str, *, match: int = 1, read_as: str | None = None, whole: bool = False
    ) -> Drawn:
        """Draw ``target``: a model, or the ``match``-th match of a query (a library name
        alone is short for MATCH name); ``whole`` draws a match inside its whole model.
        ``read_as`` ("model" or "query") settles a name that is both a model and a library
        circuit, which is otherwise asked about rather than guessed."""
        from circuitql.render import match_title

        if match < 1:
            raise CircuitQLError(
                f"match {match}: matches are counted from 1", fix="ask for match 1 first"
            )
        if self._names_model(target, read_as):
            return Drawn(self.draw(target), f"model {target}", target)
        found = self._nth_match(target, match)
        picture = found.draw(self if whole else None)
        return Drawn(picture, match_title(found), found.model, found)

    def _names_model(self, target: str, read_as: str | None) -> bool:
        if read_as is not None:
            if read_as == "model":
                self.model(target)  # no such model: the error says so, with close names
            return read_as == "model"
        if not self.has_model(target):
            return False
        if target in builtin_library().names:
            raise CircuitQLError(
                f"{target!r} is both a model in {self.uri} and a library circuit",
                fix=f"say which: `show {target} --model ...` draws the model, "
                f"`show {target} --query ...` a match of the circuit",
            )
        return True

    def _nth_match(self, target: str, n: int) -> Match:
        """The n-th match of ``target`` read as a query; a single word that is neither a
        model nor a query is most likely a mistyped model name, and the error says so."""
        try:
            found = self.query(target, limit=n)
        except CircuitQLError as err:
            if len(target.split()) > 1:
                raise
            raise CircuitQLError(
                f"{target!r} is neither a model in {self.uri} nor a query "
                f"(as a query: {err.what.splitlines()[0]})",
                fix="run `circuitql models` for the model names and "
                "`circuitql library` for the circuits",
            ) from err
        matches = list(found)
        if len(matches) < n:
            raise CircuitQLError(
                f"{target!r} has {len(matches)} match(es), so no match {n}",
                fix=f"run `circuitql query {json.dumps(target)}` to list them",
            )
        return matches[n - 1]

    def models(self) -> list[ModelInfo]:
        """Every indexed model, by name."""
        return self.store.models()

    def model(self, name: str) -> ModelInfo:
        """The stored model ``name``; an unknown name is an error that names the closest ones."""
        info = self.store.get_model(name)
        if info is None:
            known = [m.name for m in self.store.models()]
            close = get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run `circuitql models`"
            raise CircuitQLError(f"no model named {name!r} in {self.uri}", fix=hint)
        return info

    def has_model(self, name: str) -> bool:
        """Whether ``name`` is indexed, without the error ``model`` raises when it is not."""
        return self.store.get_model(name) is not None

    def draw(self, name: str) -> Svg:
        """The whole model ``name``, canonical form, as an SVG picture (``save`` writes PNG)."""
        from circuitql.render import draw_model

        self.model(name)  # no such model: the error names close ones
        return draw_model(self.store, name)

    def tokens(self, name: str) -> str:
        """The model's network string: its layers' words, in order."""
        return self.model(name).network_string

    def token_layers(self, name: str) -> list[str]:
        """The model's network string cut into one word per layer, input layer first."""
        from circuitql.grammar.token_parser import split_layers

        return split_layers(self.tokens(name))

    def delete(self, name: str) -> bool:
        """Remove the model ``name`` and its neurons; False when there was none."""
        return self.store.delete(name)

    def close(self) -> None:
        """Close the store (a ``with`` block does it on leaving)."""
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


def index_items(
    items: Sequence[tuple[Any, str]],
    write: Callable[[IndexedModel], WriteOutcome],
    config: IndexConfig,
    *,
    jobs: int | None = None,
    on_done: Callable[[Any], None] | None = None,
    dask: str | None = None,
    stored: Store | None = None,
) -> IndexReport:
    """Prepare every (model, name) pair where ``Database.index_many`` says, and hand each
    model's records to ``write`` (a store's, or the Neo4j bulk path's CSV files) in order; a
    model that fails to load, or whose name another network holds, is reported and the rest
    go on.

    ``stored``: the store ``write`` writes to. A model it already holds as the records would
    say it (the same network, settings and metadata) is reported unchanged once its file is
    read and hashed, without a canonical form; one that changed in the store meanwhile (another
    writer) is prepared whole here and written as usual. Each name is looked up as its model
    is handed to a worker (a few adding to a large store read only their own rows). The
    writes are one ``Store.write_group``, which commits what it holds whenever the writer is
    about to wait for a model, so the store is never left locked while models are prepared."""
    from threadpoolctl import threadpool_limits

    report = IndexReport()
    held = stored.get_model if stored is not None else _nothing_stored
    work = ((model, name, held(name)) for model, name in items)
    prepare = partial(_prepare, config=config)
    group = stored.write_group() if stored is not None else nullcontext(nothing_to_commit)
    # One BLAS thread here too: the products indexing runs are small, and a thread pool
    # spinning up for each costs more than it saves (5x on a busy two-core machine).
    with (
        group as commit,
        executor(jobs, len(items), dask) as (pool, workers),
        threadpool_limits(1),
    ):
        results = (
            in_order(pool, workers, prepare, work, on_wait=commit)
            if pool
            else prepared_here(prepare, work, on_wait=commit, slow=SLOW_PREPARATION)
        )
        for (model, name), (records, times) in zip(items, results, strict=True):
            report.times.add(times)
            if isinstance(records, ModelInfo) and held(name) != records:
                records, times = prepare((model, name, None))  # rewritten meanwhile
                report.times.add(times)
            if isinstance(records, ModelInfo):
                report.unchanged.append(records)
            elif isinstance(records, CircuitQLError):
                report.failed.append((model, records))
            else:
                try:
                    with report.times.timing("write"):
                        report.add(write(records), records)
                except NameTaken as taken:
                    report.failed.append((model, taken))
            if on_done:
                on_done(model)
    return report


def _nothing_stored(name: str) -> None:
    """What a target without a store of its own (the bulk path's CSV files) holds."""
    return None


# A preparation in the writing process past this many seconds commits the writes before the
# next one (a 3 x 64 model takes 0.015 s; a GPT-2-sized block, seconds).
SLOW_PREPARATION = 0.05


def _prepare(
    item: tuple[Any, str, ModelInfo | None], config: IndexConfig
) -> tuple[IndexedModel | ModelInfo | CircuitQLError, StageTimes]:
    """Load, canonicalize and sign one model (in a worker process when indexing many): the
    model, its name, and what the store holds under that name (``records_unless_stored``)."""
    model, name, stored = item
    times = StageTimes()
    try:
        return records_unless_stored(lambda: load(model), name, config, times, stored), times
    except CircuitQLError as err:
        return err, times


def path_items(
    paths: Sequence[str | Path],
    files: Iterable[Path] | None = None,
    name: str | None = None,
    absolute: bool = False,
) -> list[tuple[Path, str]]:
    """Each model file under ``paths`` (or ``files``, already found there) with the name it
    is indexed under: ``name`` for a single file, else its path below its folder."""
    found = list(files) if files is not None else discover(paths)
    if name is not None and len(found) != 1:
        raise CircuitQLError(
            f"--name names one model, but {len(found)} files were given",
            fix="drop --name: models from several files are named after their paths",
        )
    roots = [Path(p) for p in paths]
    return [
        (path.absolute() if absolute else path, name or model_name(path, roots)) for path in found
    ]


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


@dataclass(frozen=True)
class CircuitText:
    """A library circuit as ``circuitql library NAME`` shows it: its docstring, and its
    whole definition as query text (docstring included), ready to copy and edit."""

    name: str
    doc: str
    text: str


def library_circuits(glob: str | None = None) -> dict[str, str]:
    """The library circuits whose names match ``glob`` (all without one), in order, each
    with its docstring: what ``SHOW CIRCUITS`` lists. No store is needed."""
    library = builtin_library()
    return {name: library.definition(name).doc or "" for name in library.matching(glob)}


def library_circuit(name: str) -> CircuitText:
    """One library circuit; an unknown name is an error that names the closest ones."""
    library = builtin_library()
    if name not in library.names:
        close = get_close_matches(name, library.names, n=3)
        raise CircuitQLError(
            f"no library circuit named {name!r}",
            fix=f"did you mean {', '.join(close)}?"
            if close
            else "run `circuitql library` for the list",
        )
    return CircuitText(name, library.definition(name).doc or "", library.text(name))


def degeneracy_of(
    model: str | Path, uri: str | None = None, *, probes: int | None = None
) -> DegeneracyReport:
    """``analysis.degeneracy`` of ``model`` (a model file, or the name of a model in the
    store at ``uri``, read again from the file it was indexed from), on ``probes`` inputs."""
    from circuitql.analysis.degeneracy import Probes, degeneracy

    graph = original_network(model, uri)
    return degeneracy(graph, name=str(model), probes=Probes(n=probes) if probes else Probes())


def basis_of(
    model: str | Path,
    uri: str | None = None,
    *,
    probes: int | None = None,
    steps: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BasisReport:
    """``analysis.sparse_basis`` of ``model`` (a file, or a stored model's name, as in
    ``degeneracy_of``), ``steps`` rotation steps at most per layer; ``on_progress`` hears
    (Jacobians done, Jacobians in all) as each is computed."""
    from circuitql.analysis.basis import Search, jacobian_count, sparse_basis
    from circuitql.analysis.degeneracy import Probes

    graph = original_network(model, uri)
    total, done = jacobian_count(graph), 0

    def heard() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    return sparse_basis(
        graph,
        name=str(model),
        probes=Probes(n=probes) if probes else None,
        search=Search(max_steps=steps) if steps else None,
        on_jacobian=heard,
    )


def neo4j_bulk_load(
    paths: Sequence[str | Path],
    data_dir: str | Path = ".neo4j",
    *,
    port: int = 0,
    password: str | None = None,
    config: IndexConfig | None = None,
    jobs: int | None = None,
    on_file: Callable[[Path], None] | None = None,
    dask: str | None = None,
    files: Iterable[Path] | None = None,
) -> BulkLoaded:
    """Index every model file under ``paths`` into a fresh Neo4j database in ``data_dir``
    through Neo4j's offline importer (``store/neo4j_bulk.py``), then start its server there
    (``port`` 0 picks a free one). The models are prepared as ``index_paths`` prepares them
    (``jobs`` worker processes, or a Dask cluster; ``files``, the model files already found
    under ``paths``); the database then answers as one indexed model by model."""
    from circuitql.store.neo4j_bulk import BulkCsv, check_fresh, csv_folder, finish, run_import

    data_dir = Path(data_dir).resolve()
    check_fresh(data_dir, port, password)
    items = path_items(paths, files, absolute=dask is not None)
    if not items:
        raise CircuitQLError(
            f"no model files under {', '.join(str(p) for p in paths)}",
            fix="give model files, or folders holding them",
        )
    with csv_folder(data_dir) as folder:
        sink = BulkCsv(folder)
        report = index_items(
            items, sink.write, config or IndexConfig(), jobs=jobs, on_done=on_file, dask=dask
        )
        csv_files = sink.close()
        if not report.indexed:
            raise CircuitQLError(
                "no model could be indexed, so no database was created",
                fix="see the errors above for each file",
            )
        start = time.perf_counter()
        run_import(data_dir, csv_files, sink.multiline)
    server = finish(data_dir, port, password, sink.logs)
    return BulkLoaded(report, server, time.perf_counter() - start)


def connect(
    uri: str | None = None, config: IndexConfig | None = None, *, create: bool = True
) -> Database:
    """Open a store: ``None`` (``$CIRCUITQL_STORE`` or ``./circuitql.db``), a path,
    ``sqlite:///path``, or ``neo4j://user:pw@host:7687`` / ``bolt://...``. A path with no
    store is a new one, unless ``create`` is False: then it is an error, as for every CLI
    command that only reads."""
    return Database(open_store(uri, create), config)

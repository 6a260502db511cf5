"""The Python entry point: ``connect()`` returns a Database that indexes and lists models.

Kept thin on purpose: loading, canonicalization and signing live in ``indexer``, persistence in
``store``; this class only strings them together and picks names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from circuitql.errors import CircuitQLError, StoreError
from circuitql.indexer.load import discover, load
from circuitql.indexer.pipeline import IndexConfig, StageTimes, build_records
from circuitql.store.base import ModelInfo, Store, WriteOutcome
from circuitql.store.uri import open_store


@dataclass
class IndexReport:
    """What a batch of ``index_paths`` did, file by file."""

    indexed: list[ModelInfo] = field(default_factory=list)
    unchanged: list[ModelInfo] = field(default_factory=list)
    failed: list[tuple[Path, CircuitQLError]] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


class Database:
    """An open store plus the indexing pipeline."""

    def __init__(self, store: Store, config: IndexConfig | None = None) -> None:
        self.store = store
        self.config = config or IndexConfig()

    @property
    def uri(self) -> str:
        return self.store.uri

    def index(
        self,
        model: Any,
        name: str | None = None,
        *,
        input_dim: int | None = None,
        times: StageTimes | None = None,
    ) -> WriteOutcome:
        """Index an nn.Module, a NeuronGraph or a model file under ``name``.

        Indexing the same network again (same weights, whatever the file format) changes
        nothing and reports ``status == "unchanged"``.
        """
        times = times or StageTimes()
        loaded = times.timed("load", lambda: load(model, input_dim=input_dim))
        records = build_records(loaded, name or loaded.default_name, self.config, times)
        return times.timed("write", lambda: self.store.write(records))

    def index_paths(
        self,
        paths: Sequence[str | Path],
        name: str | None = None,
        on_file: Callable[[Path], None] | None = None,
        files: Iterable[Path] | None = None,
    ) -> IndexReport:
        """Index every model file under ``paths``; a bad file is reported, the rest go on."""
        found = list(files) if files is not None else discover(paths)
        if name is not None and len(found) != 1:
            raise CircuitQLError(
                f"--name names one model, but {len(found)} files were given",
                fix="drop --name: models from several files are named after their paths",
            )
        report = IndexReport()
        roots = [Path(p) for p in paths]
        for path in found:
            try:
                outcome = self.index(path, name or model_name(path, roots), times=report.times)
            except StoreError:
                raise  # the store itself is broken: no point trying the next file
            except CircuitQLError as err:
                report.failed.append((path, err))
            else:
                (report.indexed if outcome.status == "indexed" else report.unchanged).append(
                    outcome.model
                )
            if on_file:
                on_file(path)
        return report

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


def model_name(path: Path, roots: Sequence[Path]) -> str:
    """A file's model name: its path below the folder it was found in, without suffixes.

    ``zoo/abs/seed0.safetensors`` found under ``zoo`` is ``abs/seed0``, so models in different
    subfolders with the same file name do not collide.
    """
    for root in roots:
        if root.is_dir():
            try:
                relative = path.relative_to(root)
            except ValueError:
                continue
            return str(relative.parent / relative.name.split(".")[0])
    return path.name.split(".")[0]


def connect(uri: str | None = None, config: IndexConfig | None = None) -> Database:
    """Open a store: ``None`` (``$CIRCUITQL_STORE`` or ``./circuitql.db``), a path,
    ``sqlite:///path``, or ``neo4j://user:pw@host:7687`` / ``bolt://...``."""
    return Database(open_store(uri), config)

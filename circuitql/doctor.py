"""``circuitql doctor``: what this installation is, where its store is, and what it allows.

The first thing to paste into a bug report, and the first thing to run when something does
not work: versions, the optional extras, whether the store opens (its schema version, how
many models), whether the tools a local Neo4j server needs are there, and the defaults of
every resource limit (docs/reliability.md). It never changes anything, and a store that does
not open is reported, not raised.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from circuitql.errors import CircuitQLError

PACKAGES = ("numpy", "torch", "onnx", "safetensors", "lark", "networkx", "tqdm", "threadpoolctl")
EXTRAS = {"neo4j": "the Neo4j store", "cairosvg": "PNG pictures"}


@dataclass(frozen=True)
class Diagnosis:
    """What ``circuitql doctor`` found: section title -> {item: value}, in print order."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The sections as they are, for ``--json``."""
        return self.sections

    def text(self) -> str:
        """Each section under its title, its items indented and their values aligned."""
        lines: list[str] = []
        for title, items in self.sections.items():
            lines.append(f"{title}:")
            width = max(len(k) for k in items)
            lines += [f"  {key:<{width}}  {value}" for key, value in items.items()]
        return "\n".join(lines)


def diagnose(store: str | None) -> Diagnosis:
    """Look the installation over; ``store`` as ``--store`` gives it (None: the environment's
    or the default store). The store is opened without being created, and a store that does
    not open is reported, not raised."""
    return Diagnosis(
        {
            "circuitql": {
                "version": _version("circuitql"),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "packages": {name: _version(name) for name in PACKAGES},
            "optional": {name: f"{_version(name)} ({what})" for name, what in EXTRAS.items()},
            "store": _store(store),
            "neo4j server tools": {
                tool: shutil.which(tool) or "not found" for tool in ("java", "mvn")
            },
            "limits": _limits(),
            "machine": {"cpus": os.cpu_count(), "memory": _memory()},
        }
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _store(uri: str | None) -> dict[str, Any]:
    from circuitql.store.uri import DEFAULT_PATH, ENV_VAR, open_store

    given = uri or os.environ.get(ENV_VAR) or DEFAULT_PATH
    source = "--store" if uri else (f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "default")
    try:
        opened = open_store(given, create=False)
    except CircuitQLError as err:
        return {
            "uri": given if "@" not in given else "(with credentials, not shown)",
            "from": source,
            "opens": f"no: {err.what}",
        }
    try:
        info: dict[str, Any] = {
            "uri": opened.uri,
            "from": source,
            "opens": "yes",
            "models": len(opened.models()),
        }
        path = getattr(opened, "path", None)
        if path is not None:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                info["schema version"] = conn.execute("PRAGMA user_version").fetchone()[0]
        return info
    finally:
        opened.close()


def _limits() -> dict[str, Any]:
    from circuitql.engine.search import DEFAULT_TIMEOUT
    from circuitql.grammar.parser import MAX_TEXT
    from circuitql.indexer.affine import (
        BYTES_PER_LARGE_VALUE,
        BYTES_PER_VALUE,
        LARGE_MODEL_VALUES,
        MAX_TENSOR_VALUES,
        MAX_WIDTH,
        MEMORY_SHARE,
    )
    from circuitql.indexer.canonical import Config
    from circuitql.indexer.nnet_loader import MAX_WEIGHTS
    from circuitql.language.unroll import MAX_FLAT_PATTERNS, MAX_PIECES

    return {
        "query text": f"{MAX_TEXT:,} characters",
        "flat patterns per query": f"{MAX_FLAT_PATTERNS:,}",
        "circuits chained in a pattern": MAX_PIECES,
        "search time": f"{DEFAULT_TIMEOUT:g} s unless TIMEOUT / --timeout",
        "units per layer": f"{MAX_WIDTH:,}",
        "values per tensor": f"{MAX_TENSOR_VALUES:,}",
        "weights per .nnet file": f"{MAX_WEIGHTS:,}",
        "memory to index a model": f"about {BYTES_PER_VALUE} bytes a weight, "
        f"{BYTES_PER_LARGE_VALUE} beyond the first {LARGE_MODEL_VALUES:,}, at most "
        f"{MEMORY_SHARE:.0%} of the memory free",
        "canonical error": f"{Config().max_error:g} (--max-canonical-error)",
    }


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        return "unknown"

"""What circuitql derives from its own files and keeps between runs, so commands start fast.

A cached value is a pure function of a key (a hash of everything it is derived from), kept
as JSON in the user's cache directory: a file that is missing, damaged or written for
another key is built again and replaced, and nothing in it is ever executed or unpickled.
Where no cache directory can be written, values are built every time, as before.

``CIRCUITQL_CACHE`` names the directory; ``off`` turns caching off. Otherwise it is
``$XDG_CACHE_HOME/circuitql``, or ``~/.cache/circuitql``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

CACHE_ENV = "CIRCUITQL_CACHE"

T = TypeVar("T")


def cache_dir() -> Path | None:
    """The cache directory (it may not exist yet), or None when caching is off."""
    named = os.environ.get(CACHE_ENV, "")
    if named.lower() == "off":
        return None
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "circuitql"


def content_key(*parts: str) -> str:
    """A key for a value derived from ``parts`` (file contents, versions, settings)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def cached(name: str, key: str, build: Callable[[], Any], use: Callable[[Any], T]) -> T:
    """``use(build())``, with ``build()``'s JSON kept under ``name`` for the next run.

    A kept value is used when it was written for ``key`` and ``use`` accepts it; anything
    else (no file, another key, bad JSON, a value ``use`` fails on) is built again and
    replaces the file.
    """
    directory = cache_dir()
    path = None if directory is None else directory / f"{name}.json"
    if path is not None:
        kept = _read(path, key)
        if kept is not None:
            try:
                return use(kept)
            except Exception:  # a damaged cache must never fail a command
                pass
    # Through JSON even when just built, so that ``use`` always sees the form it will be
    # given from the file (lists for tuples, integer keys): a value JSON cannot carry fails
    # here, on the first run, not on the next.
    text = json.dumps({"key": key, "value": build()}, separators=(",", ":"))
    if path is not None:
        _write(path, text)
    return use(json.loads(text, object_pairs_hook=_int_keys)["value"])


def _read(path: Path, key: str) -> Any:
    try:
        with path.open(encoding="utf-8") as file:
            kept = json.load(file, object_pairs_hook=_int_keys)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(kept, dict) or kept.get("key") != key:
        return None
    return kept.get("value")


def _int_keys(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    """JSON writes integer keys as strings; every all-digit key is read back as one."""
    return {int(k) if k.isascii() and k.isdigit() else k: v for k, v in pairs}


def _write(path: Path, text: str) -> None:
    """Write atomically (a concurrent reader sees the old file or the new one); a cache
    that cannot be written is skipped."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as file:
            temporary = file.name
            file.write(text)
        os.replace(temporary, path)
        temporary = None
    except OSError:
        pass
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)

"""Serve index and query timings from whichever circuitql is first on PYTHONPATH.

A benchmark compares today's engine with an earlier commit's in the same run: it starts this
script with ``PYTHONPATH`` pointing at a ``git worktree`` of that commit, and once more at
its own checkout, then asks each, one JSON line at a time on stdin, to index files or time a
query, alternating the two. Both engines then see the same files under the same machine
load, each timed in a process that holds only its store. Only the public API that every
release has (``connect``, ``index_paths``, ``query``) is used, so the script runs against old
and new releases alike; ``explain`` asks for what only newer ones have.

Requests and answers, one JSON object per line:

- ``{"op": "index", "store": PATH, "files": [...], "jobs": N}`` -> ``{"wall": seconds}``
- ``{"op": "time", "store": PATH, "query": TEXT, "repeats": N}`` ->
  ``{"times": [seconds, ...], "matches": [[model, {var: unit}], ...]}``; with
  ``"fresh": true`` each run opens its own connection (not timed); with ``"explain": true``
  the answer also has ``"candidates"``, the anchor candidates the last run looked up
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

# The commit on PYTHONPATH only: an editable install's finder would fill in any module it
# lacks from this checkout, and time a mixture of the two.
sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith("__editable")]

from circuitql.api import Database, connect  # noqa: E402


def _index(db: Database, request: dict[str, Any]) -> dict[str, Any]:
    files = [Path(f) for f in request["files"]]
    start = time.perf_counter()
    indexed = db.index_paths([files[0].parent], files=files, jobs=request["jobs"])
    wall = time.perf_counter() - start
    if len(indexed.indexed) != len(files):
        raise SystemExit(
            f"baseline indexed {len(indexed.indexed)} of {len(files)} files: {indexed.failed[:3]}"
        )
    return {"wall": wall}


def _time(db: Database, request: dict[str, Any]) -> dict[str, Any]:
    """The query ``repeats`` times on ``db``, or with ``fresh`` on a new connection each time
    (opening it not timed): what a shell's single query meets."""
    times: list[float] = []
    matches: list[Any] = []
    options: dict[str, Any] = {}
    for _ in range(request["repeats"]):
        fresh = connect(request["store"]) if request.get("fresh") else None
        if request.get("explain"):
            from circuitql.engine.explain import Explain

            options["explain"] = Explain()
        start = time.perf_counter()
        matches = list((fresh or db).query(request["query"], **options))
        times.append(time.perf_counter() - start)
        if fresh is not None:
            fresh.close()
    answer = {"times": times, "matches": [[m.model, dict(m.bindings)] for m in matches]}
    if "explain" in options:
        answer["candidates"] = options["explain"].counts["lookup"]
    return answer


def main() -> None:
    stores: dict[str, Database] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["store"] not in stores:
            stores[request["store"]] = connect(request["store"])
        db = stores[request["store"]]
        answer = _index(db, request) if request["op"] == "index" else _time(db, request)
        print(json.dumps(answer), flush=True)
    for db in stores.values():
        db.close()


if __name__ == "__main__":
    main()

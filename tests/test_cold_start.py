"""A query command loads what a query needs: not torch, onnx or networkx (0.2 s and more of
imports each), and, from the second run on, no grammar analysis or library parsing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from circuitql.api import connect
from circuitql.cache import CACHE_ENV
from circuitql.language.library import reference_network

PROBE = """
import json, sys
import lark
from circuitql.cli import main
built = []
original = lark.Lark.__init__
def counting(self, *args, **kwargs):
    built.append(1)
    original(self, *args, **kwargs)
lark.Lark.__init__ = counting
main(["query", "--store", sys.argv[1], "MATCH abs"])
print(json.dumps({"heavy": sorted(m for m in ("torch", "onnx", "networkx") if m in sys.modules),
                  "grammars_analysed": len(built)}))
"""


def run_probe(store: Path, cache: Path) -> dict[str, object]:
    env = {**os.environ, CACHE_ENV: str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(store)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "1 match(es)" in out
    return dict(json.loads(out.splitlines()[-1]))


def test_a_query_loads_no_heavy_library_and_reuses_its_parser(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with connect(str(store)) as db:
        db.index(reference_network("abs"), name="abs")
    first = run_probe(store, tmp_path / "cache")
    second = run_probe(store, tmp_path / "cache")
    assert first == {"heavy": [], "grammars_analysed": 1}
    assert second == {"heavy": [], "grammars_analysed": 0}

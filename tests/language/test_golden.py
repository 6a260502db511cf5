"""Golden fixtures: query text (golden/*.cql) -> compiled pattern in its stable text form
(golden/*.golden), including every flat pattern a compound one unrolls into.

After an intended change, regenerate with ``CIRCUITQL_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from circuitql.language import MatchQuery, compile_query, expand
from circuitql.language.pattern import CircuitPattern

GOLDEN = Path(__file__).parent / "golden"
MAX_REPEAT = 3
MAX_SHOWN = 6


def render(query_text: str) -> str:
    query = compile_query(query_text)
    assert isinstance(query, MatchQuery)
    sections = [query.pattern.text()]
    if not isinstance(query.pattern, CircuitPattern):
        flats = itertools.islice(expand(query.pattern, MAX_REPEAT), MAX_SHOWN)
        sections += [f"== unrolled {i} ==\n{f.text()}" for i, f in enumerate(flats, 1)]
    return "\n\n".join(sections) + "\n"


@pytest.mark.parametrize("fixture", sorted(GOLDEN.glob("*.cql")), ids=lambda p: p.stem)
def test_compiled_pattern_matches_golden_text(fixture: Path) -> None:
    got = render(fixture.read_text())
    golden = fixture.with_suffix(".golden")
    if os.environ.get("CIRCUITQL_UPDATE_GOLDEN"):
        golden.write_text(got)
    assert golden.exists(), f"no golden file: run with CIRCUITQL_UPDATE_GOLDEN=1 ({golden})"
    assert got == golden.read_text()


def test_every_golden_file_has_a_query() -> None:
    for golden in GOLDEN.glob("*.golden"):
        assert golden.with_suffix(".cql").exists(), golden

"""The examples in docs/query-language.md are real: every query in it compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from circuitql.grammar.parser import parse
from circuitql.language import compile_query

DOC = (Path(__file__).parents[2] / "docs" / "query-language.md").read_text()
BLOCKS = [
    b for b in re.findall(r"```\n(.*?)```", DOC, re.S) if not b.startswith(("<query>", "start "))
]
ACTIONS = ("MATCH ", "EXPLAIN ", "COUNT ", "SHOW ", "COMPARE ")
PROSE = re.sub(r"```.*?```", "", DOC, flags=re.S)
INLINE = sorted(
    {
        c.replace("\\|", "|")
        for c in re.findall(r"`([^`\n]+)`", PROSE)
        if c.startswith(ACTIONS) and "..." not in c
    }
)


@pytest.mark.parametrize("block", BLOCKS)
def test_code_blocks_parse_and_queries_compile(block: str) -> None:
    script = parse(block)
    if script.actions:
        compile_query(block)


@pytest.mark.parametrize("query", INLINE)
def test_inline_queries_compile(query: str) -> None:
    compile_query(query)


def test_the_docs_have_examples() -> None:
    assert len(BLOCKS) >= 8 and len(INLINE) >= 12

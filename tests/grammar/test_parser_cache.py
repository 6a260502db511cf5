"""Parsers and the library loaded from the cache behave as freshly built ones: the same
trees, the same positions, the same syntax errors."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from lark import Lark
from lark.exceptions import UnexpectedInput

from circuitql.cache import CACHE_ENV
from circuitql.grammar import ast
from circuitql.grammar.lalr import lalr_parser
from circuitql.grammar.parser import _ToAst
from circuitql.language import library

QUERY_OPTIONS = {"lexer": "contextual", "maybe_placeholders": True}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


def library_texts() -> dict[str, str]:
    folder = resources.files("circuitql.language").joinpath("library")
    return {e.name: e.read_text("utf-8") for e in folder.iterdir() if e.name.endswith(".cql")}


QUERIES = [
    "MATCH abs",
    "EXPLAIN MATCH min(a, b) -> y IN MODELS 'zoo/*' TOLERANCE 0.05 LIMIT 20 TIMEOUT 2m",
    "COUNT MODELS WITH (abs | negation) >> scale GROUP BY meta.task",
    "CIRCUIT f(x) -> y { h = relu(2*x - 1)\n y = -h }\nMATCH f{2,} WHERE x = 'input:0' EXACT",
    "SHOW CIRCUITS 'min*'; COMPARE 'a' WITH 'b'",
]
BAD = [
    "MATCH",
    "MATCH abs LIMIT",
    "CIRCUIT f(x) -> y { y = }",
    "MATCH abs TIMEOUT 3 parsecs",
    "COUNT MODELS abs",
    "MATCH (abs",
    "@",
    "MATCH abs\n  WHERE x = = 1",
]


def error_of(parser: Lark, text: str) -> tuple[str, int, int, object]:
    with pytest.raises(UnexpectedInput) as caught:
        parser.parse(text)
    err = caught.value
    return type(err).__name__, err.line, err.column, getattr(err, "expected", None)


def parsers(grammar: str, **options: object) -> Iterator[Lark]:
    """The parser built without the cache, then as built for the cache, then as loaded."""
    yield Lark(
        resources.files("circuitql.grammar").joinpath(grammar).read_text("utf-8"),
        parser="lalr",
        **options,
    )
    yield lalr_parser(grammar, **options)  # type: ignore[arg-type]
    yield lalr_parser(grammar, **options)  # type: ignore[arg-type]


def test_the_query_parser_from_the_cache_parses_as_a_fresh_one(cache: Path):
    fresh = Lark(
        resources.files("circuitql.grammar").joinpath("query.lark").read_text("utf-8"),
        parser="lalr",
        transformer=_ToAst(),
        **QUERY_OPTIONS,
    )  # type: ignore[arg-type]
    built = lalr_parser("query.lark", _ToAst(), **QUERY_OPTIONS)
    assert (cache / "query.lark-tables.json").is_file()
    loaded = lalr_parser("query.lark", _ToAst(), **QUERY_OPTIONS)
    for text in [*library_texts().values(), *QUERIES]:
        expected = fresh.parse(text)
        assert built.parse(text) == expected
        assert loaded.parse(text) == expected
    for text in BAD:
        assert error_of(built, text) == error_of(loaded, text) == error_of(fresh, text)


def test_the_token_parser_from_the_cache_parses_as_a_fresh_one(cache: Path):
    fresh, built, loaded = parsers("tokens.lark", start=["network", "item"])
    network = "[x>(+1-1)] [relu(+0-1)b0>(+1-0) relu(+1-0)b0>(+1-0)] [y(+2-0)b0]"
    for parser in (built, loaded):
        for text, start in ((network, "network"), ("relu(+1-0)b0>(+1-0)", "item")):
            assert parser.parse(text, start=start) == fresh.parse(text, start=start)


def test_the_library_from_the_cache_is_the_parsed_library(cache: Path):
    library.builtin_library.cache_clear()
    try:
        built = library.builtin_library()
        assert (cache / "library.json").is_file()
        library.builtin_library.cache_clear()
        loaded = library.builtin_library()
    finally:
        library.builtin_library.cache_clear()
    parsed = library._definitions({f"library/{k}": v for k, v in sorted(library_texts().items())})
    for name in built.names:
        fresh = next(d for d in parsed if d.name == name)
        for lib in (built, loaded):
            kept = lib.definition(name)
            assert kept == fresh
            assert (kept.pos, kept.doc, kept.source) == (fresh.pos, fresh.doc, fresh.source)
            assert isinstance(kept, ast.CircuitDef)
        assert loaded.text(name) == fresh_text(parsed, name)


def fresh_text(parsed: list[ast.CircuitDef], name: str) -> str:
    return library.Library(parsed).text(name)

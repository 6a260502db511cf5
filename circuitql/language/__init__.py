"""The query language's meaning: the library, compilation of query text into patterns, and
their unrolling (the syntax itself is in ``circuitql.grammar``).

``compile_query("MATCH min(a, b) -> y")`` gives a ``MatchQuery`` whose ``pattern`` the engine
runs; ``unrolled(pattern, depth)`` lists the flat patterns it stands for in networks at
most ``depth()`` layers deep.
"""

from __future__ import annotations

from circuitql.language import compile
from circuitql.language.compile import (
    CensusQuery,
    CompareQuery,
    CompiledQuery,
    MatchQuery,
    ReferenceExample,
    ShowQuery,
)
from circuitql.language.library import PUBLIC_NAMES, Library, builtin_library, reference_network
from circuitql.language.pattern import (
    Alternation,
    Chain,
    CircuitPattern,
    Pattern,
    Reference,
    Repeat,
    UnitConstraint,
)
from circuitql.language.unroll import expand, unrolled


def compile_query(text: str, library: Library | None = None) -> CompiledQuery:
    """Parse and compile query text against ``library`` (the built-in one by default)."""
    return compile.compile_query(text, (library or builtin_library()).compiler)


__all__ = [
    "PUBLIC_NAMES",
    "Alternation",
    "CensusQuery",
    "Chain",
    "CircuitPattern",
    "CompareQuery",
    "CompiledQuery",
    "Library",
    "MatchQuery",
    "Pattern",
    "Reference",
    "ReferenceExample",
    "Repeat",
    "ShowQuery",
    "UnitConstraint",
    "builtin_library",
    "compile_query",
    "expand",
    "reference_network",
    "unrolled",
]

"""The query language's meaning: the library, compilation of query text into patterns, and
their unrolling (the syntax itself is in ``circuitql.grammar``).

``compile_query("MATCH min(a, b) -> y")`` gives a ``MatchQuery`` whose ``pattern`` the engine
runs; ``expand(pattern, max_repeat)`` lists the flat patterns it stands for.
"""

from __future__ import annotations

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
from circuitql.language.unroll import expand


def compile_query(text: str, library: Library | None = None) -> CompiledQuery:
    """Parse and compile query text against ``library`` (the built-in one by default)."""
    return (library or builtin_library()).compile(text)


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
]

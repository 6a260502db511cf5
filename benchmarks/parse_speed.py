"""Parse speed of the query language (a benchmark, not a test: it asserts nothing).

Three figures, all with the production parser (Lark LALR, contextual lexer, inline
transformer straight to the AST):

1. library-use queries per second: MATCH / EXPLAIN / COUNT MODELS queries on library circuits,
   the size of what people type (``MATCH min(a, b) -> y IN MODELS 'zoo/*' LIMIT 20``);
2. library definitions per second: every CIRCUIT of circuitql/query/library/*.cql;
3. linearity: one text of k statements for growing k; time per statement should stay flat.

Each text is distinct (names and numbers vary), so nothing is served from a cache. Times are
CPU time of this process (best of ``--repeats``), so a busy shared machine slows the run down
without skewing the figures much.

    PYTHONPATH=. .venv/bin/python benchmarks/parse_speed.py [--queries 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from circuitql.grammar.parser import parse
from circuitql.grammar.printer import definition_text
from circuitql.query import PUBLIC_NAMES, builtin_library

TEMPLATES = (
    "MATCH {name}",
    "MATCH {name} LIMIT {k}",
    "EXPLAIN MATCH {name} IN MODELS 'zoo-{k}/*'",
    "MATCH min(a{k}, b) -> y IN MODELS 'zoo/*' TOLERANCE 0.05 LIMIT 20",
    "MATCH fold WHERE c > {k} LIMIT 5",
    "COUNT MODELS WITH {name} GROUP BY meta.depth",
    "MATCH is_even TOLERANCE 0.{k}",
    "MATCH {name} >> negation LIMIT {k}",
)


def library_use_queries(n: int) -> list[str]:
    return [
        TEMPLATES[i % len(TEMPLATES)].format(name=PUBLIC_NAMES[i % len(PUBLIC_NAMES)], k=i + 1)
        for i in range(n)
    ]


def library_definitions() -> list[str]:
    lib = builtin_library()
    return [definition_text(lib.definition(name)) for name in lib.names]


def rate(texts: Sequence[str], repeats: int) -> float:
    """Texts parsed per CPU second, best of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for text in texts:
            parse(text)
        best = min(best, time.process_time() - start)
    return len(texts) / best


def per_statement(k: int, repeats: int) -> float:
    text = "\n".join(f"MATCH min(a{i}, b) -> y IN MODELS 'm{i}' LIMIT {i + 1}" for i in range(k))
    times = []
    for _ in range(repeats):
        start = time.process_time()
        parse(text)
        times.append(time.process_time() - start)
    return min(times) / k


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--queries", type=int, default=20000)
    args.add_argument("--repeats", type=int, default=3)
    opts = args.parse_args()

    parse("MATCH abs")  # build the parser once, outside the timings
    queries = library_use_queries(opts.queries)
    tokens = statistics.mean(len(q.split()) for q in queries)
    print(f"library-use queries: {rate(queries, opts.repeats):,.0f} per second "
          f"({len(queries)} distinct queries, ~{tokens:.0f} words each)")
    definitions = library_definitions() * 20
    print(f"library definitions: {rate(definitions, opts.repeats):,.0f} per second "
          f"({len(definitions) // 20} CIRCUITs x 20)")
    for k in (1, 10, 100, 1000):
        print(f"  {k:5d} statements in one text: {per_statement(k, opts.repeats) * 1e6:7.1f} us "
              "per statement")


if __name__ == "__main__":
    main()

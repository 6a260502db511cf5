"""Parse speed of the query language (a benchmark, not a test: it asserts nothing).

Three figures, all with the production parser (Lark LALR, contextual lexer, inline
transformer straight to the AST):

1. library-use queries per second: MATCH / EXPLAIN / COUNT MODELS queries on library circuits,
   the size of what people type (``MATCH min(a, b) -> y IN MODELS 'zoo/*' LIMIT 20``);
2. library definitions per second: every CIRCUIT of circuitql/language/library/*.cql;
3. linearity: one text of k statements for growing k; time per statement should stay flat.

Each text is distinct (names and numbers vary), so nothing is served from a cache. Times are
CPU time of this process (best of ``--repeats``), so a busy shared machine slows the run down
without skewing the figures much.

    PYTHONPATH=. .venv/bin/python benchmarks/parse_speed.py [--queries 20000] [--repeats 3] \
        [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from benchmarks.report import Report, add_json_argument
from circuitql.grammar.parser import parse
from circuitql.grammar.printer import definition_text
from circuitql.language import PUBLIC_NAMES, builtin_library

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
DEFINITION_COPIES = 20  # the library alone is too few texts to time reliably
STATEMENT_COUNTS = (1, 10, 100, 1000)
# Per-statement time of the largest text over the cheapest per-statement time of any, up to
# which parsing reads as linear: timing noise stays well below it, while a superlinear parser
# passes it over three decades of text length.
LINEAR_GROWTH = 1.5


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


def statement(i: int) -> str:
    return f"MATCH min(a{i}, b) -> y IN MODELS 'm{i}' LIMIT {i + 1}"


def per_statement(k: int, repeats: int) -> float:
    text = "\n".join(statement(i) for i in range(k))
    times = []
    for _ in range(repeats):
        start = time.process_time()
        parse(text)
        times.append(time.process_time() - start)
    return min(times) / k


def words(texts: Sequence[str]) -> str:
    return f"{statistics.mean(len(t.split()) for t in texts):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("Query parsing")

    parse("MATCH abs")  # build the parser once, outside the timings
    queries = library_use_queries(args.queries)
    print("timing library-use queries", file=sys.stderr, flush=True)
    query_rate = rate(queries, args.repeats)
    definitions = library_definitions()
    print("timing library definitions", file=sys.stderr, flush=True)
    definition_rate = rate(definitions * DEFINITION_COPIES, args.repeats)
    print("timing texts of growing length", file=sys.stderr, flush=True)
    seconds = {k: per_statement(k, args.repeats) for k in STATEMENT_COUNTS}

    report.say(
        "The production parser (Lark LALR, contextual lexer, inline transformer straight to "
        f"the AST). Times are CPU time of this process, best of {args.repeats}, so other jobs "
        "on a shared machine slow the run down without skewing the figures much."
    )
    report.say(
        "Library-use queries are MATCH, EXPLAIN and COUNT MODELS queries on library circuits, "
        f"the size of what people type (the longest: `{max(queries, key=len)}`), each one "
        "distinct (names and numbers vary); library definitions are the CIRCUIT definitions of "
        f"circuitql/language/library/*.cql, each parsed {DEFINITION_COPIES} times."
    )
    report.table(
        ["texts", "distinct texts", "words per text", "parsed per second"],
        [
            ["library-use queries", f"{len(queries):,}", words(queries), f"{query_rate:,.0f}"],
            [
                "library definitions",
                f"{len(definitions):,}",
                words(definitions),
                f"{definition_rate:,.0f}",
            ],
        ],
    )

    largest = STATEMENT_COUNTS[-1]
    report.say(
        f"Linearity: one text of k statements (`{statement(0)}`, ...) for k from "
        f"{STATEMENT_COUNTS[0]:,} to {largest:,}; a linear parser keeps the time per statement "
        "flat once the per-call overhead is spread over a few statements."
    )
    report.table(
        ["statements in one text", "µs per statement"],
        [[f"{k:,}", f"{s * 1e6:.1f}"] for k, s in seconds.items()],
    )
    growth = seconds[largest] / min(seconds.values())
    verdict = (
        "parsing is linear in the text's length"
        if growth <= LINEAR_GROWTH
        else "parsing grows faster than the text"
    )
    report.say(
        f"Per statement, the {largest:,}-statement text takes {growth:.2f}x the cheapest "
        f"time per statement above, so {verdict}."
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

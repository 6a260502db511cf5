"""MATCH abs on the Neo4j store, against the Cypher a Neo4j user would write by hand.

    python benchmarks/bench_neo4j_query.py --uri neo4j://neo4j:PW@127.0.0.1:7687 --models 1000

Indexes a zoo of 3x64 random MLPs (one in ten with abs planted, as in bench_query.py) into a
fresh Neo4j namespace, then times, in the same run: ``MATCH abs`` through circuitql on Neo4j,
the same query on SQLite, and the hand-written Cypher pattern below, which encodes what
circuitql knows about abs in one MATCH: two single-input ReLUs of opposite sign on the same
source, both feeding a two-input unit with equal positive weights. It compares the answers
(the sets of models) and reports the ratio of times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_query import zoo_items
from benchmarks.report import Report, add_json_argument, ms, timed
from circuitql.api import Database, connect
from circuitql.store.neo4j import scratch_store

# What a Neo4j user writes without circuitql: the detector pair and its sum, with the
# significance and ratio checks circuitql applies (5% significance, 5% ratio tolerance).
HAND_WRITTEN_ABS = """
MATCH (p:Neuron {namespace: $ns, kind: 'hidden', activation: 'relu', fan_in: 1, n_pos: 1,
                 bias_class: '0'})
MATCH (x:Neuron {namespace: $ns})-[wp:FEEDS]->(p)
WHERE x.model = p.model
MATCH (x)-[wn:FEEDS]->(n:Neuron {namespace: $ns, kind: 'hidden', activation: 'relu',
                                 fan_in: 1, n_neg: 1, bias_class: '0'})
MATCH (p)-[a:FEEDS]->(y:Neuron {namespace: $ns, fan_in: 2, n_pos: 2, bias_class: '0'})
      <-[b:FEEDS]-(n)
WHERE wp.weight > 0 AND wn.weight < 0 AND a.weight > 0 AND b.weight > 0
  AND abs(a.weight - b.weight) <= 0.05 * CASE WHEN a.weight > b.weight THEN a.weight
                                              ELSE b.weight END
  AND abs(wp.weight) >= 0.05 * COLLECT { MATCH (s)-[r:FEEDS]->(p) RETURN max(abs(r.weight)) }[0]
  AND abs(wn.weight) >= 0.05 * COLLECT { MATCH (s)-[r:FEEDS]->(n) RETURN max(abs(r.weight)) }[0]
RETURN DISTINCT p.model AS model
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    report = Report.of("MATCH abs on Neo4j, on SQLite, and as hand-written Cypher")
    report.say(
        f"The same {args.models:,} graphs (the bench_query zoo: 8-64-64-64-4, abs planted "
        "in one in ten) indexed into both stores in one run, then `MATCH abs` through "
        "circuitql on each, and the hand-written Cypher pattern of this script (the "
        "detector pair, the sum, significance and ratio checks in one MATCH) on Neo4j; "
        f"medians of {args.repeats} runs."
    )
    with (
        scratch_store(args.uri, "bench") as store,
        tempfile.TemporaryDirectory() as tmp,
        connect(str(Path(tmp) / "zoo.db")) as sqlite_db,
    ):
        neo4j_db = Database(store)
        items, planted_names = zoo_items(args.models, args.seed)
        planted = set(planted_names)
        indexing = {}
        for label, db in (("SQLite", sqlite_db), ("Neo4j", neo4j_db)):
            start = time.perf_counter()
            db.index_many(items)
            indexing[label] = time.perf_counter() - start
        lite, lite_found = timed(lambda: {m.model for m in sqlite_db.query("abs")}, args.repeats)
        neo, neo_found = timed(lambda: {m.model for m in neo4j_db.query("abs")}, args.repeats)
        with store.session() as session:
            cypher, cypher_found = timed(
                lambda: {r["model"] for r in session.run(HAND_WRITTEN_ABS, ns=store.namespace)},
                args.repeats,
            )
    rows = [
        [
            label,
            index,
            ms(statistics.median(times)),
            f"{len(found)}",
            f"{len(found & planted) / len(planted):.0%}",
        ]
        for label, index, times, found in (
            ("circuitql, SQLite", f"{indexing['SQLite']:.1f} s", lite, lite_found),
            ("circuitql, Neo4j", f"{indexing['Neo4j']:.1f} s", neo, neo_found),
            ("hand-written Cypher on Neo4j", "(same data)", cypher, cypher_found),
        )
    ]
    report.table(
        ["", f"index {args.models:,} models", "MATCH abs median", "models found", "recall"], rows
    )
    same = neo_found == cypher_found == lite_found
    ratio = statistics.median(neo) / statistics.median(cypher)
    report.say(
        f"Same answers from all three: {'yes' if same else '**no**'}. circuitql on "
        f"Neo4j takes {ratio:.1f}x the time of the hand-written pattern, which "
        "checks abs only structurally (no fit of free parameters, no numeric "
        "verification of the function) and must be written anew for each circuit."
    )
    median = statistics.median(neo)
    report.target(
        f"MATCH abs on Neo4j, {args.models:,} models", "< 2 s median", ms(median), median < 2.0
    )
    report.target(
        "Neo4j, SQLite and hand-written Cypher agree",
        "same answers",
        "same" if same else "different",
        same,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

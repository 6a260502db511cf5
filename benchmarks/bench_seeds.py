"""Circuits as training leaves them, over many seeds: recall and false reports of the default
search on draws the test suite never sees.

    python benchmarks/bench_seeds.py --seeds 1 120

``circuitql.zoo.perturbed`` draws its cases from a seed: small cancelling biases, detectors
split over near-parallel units, linear and dead units beside a pair, inputs read from hidden
units of another scale, compositions, a perturbed is_even chain, and a decoy for each (a
wide dead zone, a wrong-sign split half, mismatched detector directions, a ratio 30% off).
The tests and ``bench_library.py`` use seed 0 and the first few; this benchmark writes every
seed in the range, indexes them all into one fresh embedded store, runs every library
circuit and composition once with the default (approximate) search, and scores each answer
against the ground truth (``GroundTruth.score``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from benchmarks.bench_library import COMPOSITIONS, write_perturbed
from benchmarks.report import Report, add_json_argument
from circuitql.api import Database, connect
from circuitql.language.library import builtin_library
from circuitql.store.base import stored_graph
from circuitql.zoo.plant import Expected, GroundTruth, Score


def _described(db: Database, circuit: str, model: str, bindings: Mapping[str, str]) -> str:
    """A false report as a line: the model, the binding, and each bound hidden or output
    unit's incoming weights and bias."""
    graph = stored_graph(db.store, model)
    units = {u.id: u for u in graph.units}
    parts = []
    for name, uid in bindings.items():
        unit = units[uid]
        if unit.inputs:
            weights = ", ".join(
                f"{src} {w:+.3f}" for src, w in unit.inputs.items() if abs(w) > 1e-3
            )
            parts.append(
                f"{name} = {uid}: {unit.activation.value}({weights}; bias {unit.bias:+.3f})"
            )
        else:
            parts.append(f"{name} = {uid}")
    return f"`{circuit}` in `{model}`: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[1, 120], metavar=("FIRST", "LAST"))
    parser.add_argument("--jobs", type=int, default=2, help="indexing worker processes")
    add_json_argument(parser)
    args = parser.parse_args()
    first, last = args.seeds
    report = Report.of("Circuits as training leaves them, over many seeds")
    report.say(__doc__.split("\n\n", 2)[2].replace("\n", " "))
    rows: list[list[str]] = []
    false_reports: list[str] = []
    total = Score(0, 0, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        folder.mkdir()
        expected: list[Expected] = []
        for seed in range(first, last + 1):
            expected += write_perturbed(folder, seed)[1]
        truth = GroundTruth(first, tuple(expected))
        with connect(str(Path(tmp) / "seeds.db")) as db:
            indexed = db.index_paths([folder], jobs=args.jobs)
            assert not indexed.failed, indexed.failed[:3]
            start = time.perf_counter()
            for circuit in [*builtin_library().names, *COMPOSITIONS]:
                matches = [(m.model, m.bindings) for m in db.query(f"MATCH {circuit}")]
                score = truth.score(circuit, matches)
                false_reports += [
                    _described(db, circuit, model, bindings)
                    for model, bindings in matches
                    if truth.score(circuit, [(model, bindings)]).false
                ]
                total += score
                planted = score.found + score.missed
                decoys = sum(1 for e in truth.expected if e.circuit == circuit and not e.present)
                if planted or decoys or score.false:
                    rows.append(
                        [
                            f"`{circuit}`",
                            f"{planted}",
                            f"{decoys}",
                            f"{score.found}",
                            f"{score.false}",
                            f"{score.nested}",
                        ]
                    )
            seconds = time.perf_counter() - start
    report.say(
        f"Seeds {first} to {last}: {len(indexed.indexed):,} models, {len(truth.expected):,} "
        f"planted cases and decoys; every query together took {seconds:.1f} s."
    )
    report.table(["circuit", "planted", "decoys", "found", "false", "nested"], rows)
    if false_reports:
        report.say(
            "Each false report, with the incoming weights and bias of every unit it binds "
            "(canonical, as stored), to judge whether it is a decoy taken for a circuit or a "
            "circuit the generator made without listing it:\n\n"
            + "\n".join(f"- {line}" for line in false_reports)
        )
    report.target(
        f"perturbed circuits and their decoys, seeds {first} to {last}",
        "100% recall, no false report",
        f"{total.recall:.1%} recall, {total.false} false",
        total.missed == 0 and total.false == 0,
    )
    report.save(args.json)


if __name__ == "__main__":
    main()

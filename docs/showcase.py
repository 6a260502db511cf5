"""The README showcase's tables, from a trained zoo's store.

    circuitql zoo build zoo && circuitql index zoo --store zoo.db
    python docs/showcase.py zoo.db

For every task of ``circuitql zoo build``, each network is asked for its task's library
circuit twice, as ``MATCH <circuit> EXACT`` and as the default (approximate) search, on the
training domain its file records. A network *fits* when its final training loss is under
1e-3. The script prints, in Markdown: per task, how many networks fit, hold the circuit
exactly, or exactly or approximately, and how faithful the matches are; then the
same counts over every task with a circuit, by width (as a multiple of the task's smallest),
depth, optimizer and initialisation. Everything goes through the public API.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import circuitql

FIT = 1e-3  # final training loss under which a network computes its task
FAITHFUL = 0.05  # faithfulness (share of the output from units outside the circuit) counted


@dataclass(frozen=True)
class Network:
    name: str
    task: str
    width: str  # "1x", "2x", "4x": the task's smallest width times this ("0x": no hidden layer)
    depth: int
    optimizer: str
    init: str
    fit: bool
    exact: bool
    found: bool  # exactly or approximately
    faithfulness: float | None  # of its most faithful match, when found


def survey(db: circuitql.Database) -> list[Network]:
    """Every network of the zoo, asked for its task's circuit."""
    infos = [m for m in db.models() if "task" in m.meta]
    widths: dict[str, list[int]] = defaultdict(list)
    for info in infos:
        widths[info.meta["task"]].append(info.meta["width"])
    networks = []
    for task in sorted(widths):
        smallest = min((w for w in widths[task] if w), default=1)  # x < 10 has a 0-wide net
        members = [m for m in infos if m.meta["task"] == task]
        circuit = members[0].meta["circuit"]
        exact = {m.model for m in db.query(f"MATCH {circuit} IN MODELS '{task}/*' EXACT")}
        faithfulness: dict[str, float] = {}
        for match in db.query(f"MATCH {circuit} IN MODELS '{task}/*'"):
            faithfulness[match.model] = min(
                match.faithfulness, faithfulness.get(match.model, float("inf"))
            )
        for m in members:
            meta = m.meta
            networks.append(
                Network(
                    m.name,
                    task,
                    f"{meta['width'] // smallest}x",
                    meta["depth"],
                    meta["optimizer"],
                    meta["init"],
                    meta["final_loss"] < FIT,
                    m.name in exact,
                    m.name in faithfulness,
                    faithfulness.get(m.name),
                )
            )
    return networks


def _row(label: str, group: list[Network]) -> list[str]:
    fit = [n for n in group if n.fit]
    found = [n for n in group if n.found]
    faithful = [n.faithfulness for n in found if n.faithfulness is not None]
    median = f"{statistics.median(faithful):.3f}" if faithful else "-"
    found_fit = sum(n.found for n in fit)
    return [
        label,
        f"{len(group)}",
        f"{len(fit)}",
        f"{sum(n.exact for n in group)}",
        f"{len(found)}",
        f"{found_fit}",
        f"{len(found) - found_fit}",
        median,
        f"{sum(f <= FAITHFUL for f in faithful)}",
    ]


HEADER = [
    "",
    "networks",
    "fit",
    "exact",
    "exact or approx.",
    "... of them fit",
    "... not fit",
    "median faithfulness",
    f"faithfulness <= {FAITHFUL}",
]


def table(rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| --- |" + " ---: |" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def by(networks: list[Network], key: Callable[[Network], object]) -> list[list[str]]:
    groups: dict[str, list[Network]] = defaultdict(list)
    for n in networks:
        groups[str(key(n))].append(n)
    return [_row(label, groups[label]) for label in sorted(groups)]


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with circuitql.connect(sys.argv[1]) as db:
        networks = survey(db)
    print("Per task (its library circuit):\n")
    print(table(by(networks, lambda n: n.task)))
    with_circuit = [n for n in networks if n.task not in ("is_even", "xor", "less_than")]
    for title, key in (
        ("width", lambda n: n.width),
        ("depth", lambda n: n.depth),
        ("optimizer", lambda n: n.optimizer),
        ("initialisation", lambda n: n.init),
    ):
        print(f"\nBy {title}, over identity, negation, abs, add, subtract, min and max:\n")
        print(table(by(with_circuit, key)))


if __name__ == "__main__":
    main()

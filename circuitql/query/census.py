"""The census: how many models of each group contain a circuit.

The question circuitql exists to answer at zoo scale: "did gradient descent find the optimal
min(a, b) circuit, and how often with more width?". Models are grouped by a property from
their indexing metadata (``meta.task``, ``meta.width``, ...); a model counts once however many
instances of the circuit it holds.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass
from typing import Any

from circuitql.errors import CircuitQLError
from circuitql.query.compile import CensusQuery, MatchQuery
from circuitql.query.engine import run
from circuitql.store.base import ModelInfo, Store

MISSING = "(none)"


@dataclass(frozen=True)
class CensusRow:
    group: str
    with_circuit: int
    models: int

    @property
    def fraction(self) -> float:
        return self.with_circuit / self.models if self.models else 0.0


@dataclass(frozen=True)
class Census:
    circuit: str
    group_by: str
    rows: tuple[CensusRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"circuit": self.circuit, "group_by": self.group_by,
                "groups": [{"group": r.group, "with_circuit": r.with_circuit,
                            "models": r.models} for r in self.rows]}

    def text(self) -> str:
        width = max([len(self.group_by), *(len(r.group) for r in self.rows)])
        lines = [f"{self.group_by:<{width}}  with {self.circuit:<8}  models  share"]
        for r in self.rows:
            lines.append(f"{r.group:<{width}}  {r.with_circuit:>{5 + len(self.circuit)}}  "
                         f"{r.models:>6}  {r.fraction:6.1%}")
        return "\n".join(lines)


def group_of(info: ModelInfo, key: str) -> str:
    """``meta.task`` or ``task``: a metadata field; ``name`` and ``source`` also work."""
    field = key.removeprefix("meta.")
    if key in ("name", "source"):
        return str(getattr(info, key))
    value = info.meta.get(field)
    return MISSING if value is None else str(value)


def census(store: Store, query: CensusQuery) -> Census:
    infos = [m for m in store.models()
             if query.models is None or fnmatch.fnmatchcase(m.name, query.models)]
    if not infos:
        raise CircuitQLError("no indexed models to count", fix="index models first, or widen "
                             "IN MODELS")
    totals = Counter(group_of(m, query.group_by) for m in infos)
    match = MatchQuery(query.pattern, models=query.models, tolerance=query.tolerance)
    holders = {m.model for m in run(store, match)}
    with_circuit = Counter(group_of(m, query.group_by) for m in infos if m.name in holders)
    rows = tuple(CensusRow(g, with_circuit[g], totals[g]) for g in sorted(totals, key=_order))
    return Census(query.pattern.name, query.group_by, rows)


def _order(group: str) -> tuple[int, float | str]:
    """Numeric groups (widths, depths) in numeric order, others alphabetically."""
    try:
        return (0, float(group))
    except ValueError:
        return (1, group)

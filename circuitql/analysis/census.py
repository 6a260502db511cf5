"""The census: how many models of each group contain a circuit.

The question circuitql exists to answer at zoo scale: "did gradient descent find the optimal
min(a, b) circuit, and how often with more width?". Models are grouped by a property from
their indexing metadata (``meta.task``, ``meta.width``, ...); a model counts once however many
instances of the circuit it holds.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from html import escape as _escape
from pathlib import Path
from typing import Any

from circuitql.engine.explain import Explain, PartialAnswer
from circuitql.engine.results import Match, data_frame
from circuitql.engine.search import run
from circuitql.errors import CircuitQLError, shown
from circuitql.language.compile import CensusQuery, MatchQuery
from circuitql.records import ModelInfo
from circuitql.store.base import Store

# Text in SVG and HTML: xml.sax's escape, without the 40 ms its import of urllib costs every
# command.
escape = partial(_escape, quote=False)

MISSING = "(none)"
SHOWN_HOLDERS = 5  # model names per group in the text table; JSON has them all


@dataclass(frozen=True)
class CensusRow:
    """One group of a census: how many of its models hold the circuit, and which."""

    group: str
    with_circuit: int
    models: int
    holders: tuple[str, ...] = ()  # the names of the models that hold the circuit, sorted

    @property
    def fraction(self) -> float:
        """The share of the group's models that hold the circuit: ``share`` in the JSON, a
        bar's height in the plot."""
        return self.with_circuit / self.models if self.models else 0.0


@dataclass(frozen=True)
class CensusModel:
    """One model of a census and its best match: exact before approximate, then the
    smallest error (None where the model holds no instance)."""

    model: str
    group: str
    holds: bool
    error: float | None = None
    exact: bool | None = None
    faithfulness: float | None = None
    bindings: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``models`` in the census JSON, and a row of ``Census.to_pandas()``."""
        return {
            "model": self.model,
            "group": self.group,
            "holds": self.holds,
            "error": self.error,
            "exact": self.exact,
            "faithfulness": self.faithfulness,
            "bindings": dict(self.bindings),
        }


@dataclass(frozen=True)
class Census:
    """Per group, how many models hold the circuit and which (``rows``); per model, its best
    match (``per_model``, in name order): a table to count with, and one to analyse."""

    circuit: str
    group_by: str
    rows: tuple[CensusRow, ...]
    exact: bool = False  # only exact matches were counted
    per_model: tuple[CensusModel, ...] = ()

    @property
    def counted(self) -> str:
        """What a model must hold to count, in words."""
        return f"{self.circuit} exactly" if self.exact else self.circuit

    def to_json(self) -> dict[str, Any]:
        """What ``census --json`` and ``COUNT MODELS ... --json`` print: the groups, then one
        row per model."""
        return {
            "circuit": self.circuit,
            "group_by": self.group_by,
            "exact": self.exact,
            "groups": self.to_records(),
            "models": self.model_records(),
        }

    def model_records(self) -> list[dict[str, Any]]:
        """One row per model: its group, whether it holds the circuit, its best match's
        error, exactness, faithfulness and bindings."""
        return [m.to_dict() for m in self.per_model]

    def to_pandas(self) -> Any:
        """``model_records()`` as a pandas DataFrame, one row per model (pandas is an
        optional extra); ``to_records()`` has the groups."""
        return data_frame(self.model_records())

    def to_records(self) -> list[dict[str, Any]]:
        """One row per group, as plain data (what ``--json`` lists and ``--csv`` prints)."""
        return [
            {
                "group": r.group,
                "with_circuit": r.with_circuit,
                "models": r.models,
                "share": r.fraction,
                "holders": list(r.holders),
            }
            for r in self.rows
        ]

    def _repr_html_(self) -> str:
        """The census as a table in Jupyter, the models holding the circuit named."""
        from circuitql.html import table

        return table(
            (self.group_by, f"with {self.counted}", "models", "share", "holders"),
            (
                (r.group, r.with_circuit, r.models, f"{r.fraction:.1%}", ", ".join(r.holders))
                for r in self.rows
            ),
        )

    def plot(self, path: Path) -> Path:
        """Write the census as a bar chart, SVG or PNG by the suffix: the share of each
        group's models that hold the circuit, with the counts on the bars."""
        from circuitql.picture import Svg, check_format

        check_format(path)
        return Svg(bar_chart_svg(self)).save(path)

    def text(self) -> str:
        """The table a terminal shows; group values come from users' metadata, so their
        control characters are escaped (a newline in one would forge a row)."""
        groups = [shown(r.group) for r in self.rows]
        width = max([len(self.group_by), *(len(g) for g in groups)])
        lines = [f"{self.group_by:<{width}}  with {self.counted:<8}  models  share"]
        for r, group in zip(self.rows, groups, strict=True):
            lines.append(
                f"{group:<{width}}  {r.with_circuit:>{5 + len(self.counted)}}  "
                f"{r.models:>6}  {r.fraction:6.1%}"
            )
        for r, group in zip(self.rows, groups, strict=True):
            if r.holders:
                names = ", ".join(r.holders[:SHOWN_HOLDERS])
                more = len(r.holders) - SHOWN_HOLDERS
                lines.append(
                    f"{group}: {names}"
                    + (f" and {more} more (--json lists all)" if more > 0 else "")
                )
        return "\n".join(lines)

    def model_text(self) -> str:
        """A line per model: its group, and its best match or "-"."""
        width = max([5, *(len(m.model) for m in self.per_model)])
        groups = max([len(self.group_by), *(len(shown(m.group)) for m in self.per_model)])
        lines = [
            f"{'model':<{width}}  {self.group_by:<{groups}}  error     kind         faithfulness"
        ]
        for m in self.per_model:
            found = "-"
            if m.error is not None:
                kind = "exact" if m.exact else "approximate"
                faithful = "-" if m.faithfulness is None else f"{m.faithfulness:.3f}"
                found = f"{m.error:.2e}  {kind:<11}  {faithful}"
            lines.append(f"{m.model:<{width}}  {shown(m.group):<{groups}}  {found}")
        return "\n".join(lines)


def group_of(info: ModelInfo, key: str) -> str:
    """``meta.task`` or ``task``: a metadata field; ``name`` and ``source`` also work."""
    field = key.removeprefix("meta.")
    if key in ("name", "source"):
        return str(getattr(info, key))
    value = info.meta.get(field)
    return MISSING if value is None else str(value)


def _check_key(key: str, infos: list[ModelInfo]) -> None:
    """A key no model has would put every model in one "(none)" group: a typo, said so."""
    if key in ("name", "source"):
        return
    field = key.removeprefix("meta.")
    if any(field in m.meta for m in infos):
        return
    keys = sorted({f"meta.{k}" for m in infos for k in m.meta})
    raise CircuitQLError(
        f"no model in the census has the property {key!r}",
        fix="group by one of: name, source" + "".join(f", {k}" for k in keys),
    )


def census(store: Store, query: CensusQuery, explain: Explain | None = None) -> Census:
    """Count, per group, the models holding the circuit; ``explain`` collects the search's
    plan and counts (EXPLAIN COUNT MODELS ...)."""
    infos = [
        m
        for m in store.models()
        if query.models is None or fnmatch.fnmatchcase(m.name, query.models)
    ]
    if not infos:
        raise CircuitQLError(
            "no indexed models to count", fix="index models first, or widen IN MODELS"
        )
    _check_key(query.group_by, infos)
    match = MatchQuery(
        query.pattern,
        models=query.models,
        tolerance=query.tolerance,
        exact=query.exact,
        timeout=query.timeout,
    )
    explain = explain or Explain()
    best: dict[str, Match] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialAnswer)
        for found in run(store, match, explain):
            held = best.get(found.model)
            if held is None or (not found.exact, found.error) < (not held.exact, held.error):
                best[found.model] = found
    if explain.partial is not None:
        # A count over the models searched so far would be a wrong count, not a smaller one.
        raise CircuitQLError(
            f"the census could not finish: {explain.partial}",
            fix="give it longer: TIMEOUT 10m in the query, --timeout 600, or "
            "db.census(..., timeout=600)",
        )
    per_model = tuple(
        _census_model(m, group_of(m, query.group_by), best.get(m.name))
        for m in sorted(infos, key=lambda m: m.name)
    )
    # The groups' counts and holders, from the per-model rows (in name order).
    totals = Counter(m.group for m in per_model)
    names: dict[str, list[str]] = {}
    for m in per_model:
        if m.holds:
            names.setdefault(m.group, []).append(m.model)
    rows = tuple(
        CensusRow(g, len(names.get(g, ())), totals[g], tuple(names.get(g, ())))
        for g in sorted(totals, key=_order)
    )
    return Census(query.pattern.name, query.group_by, rows, query.exact, per_model)


def _census_model(info: ModelInfo, group: str, match: Match | None) -> CensusModel:
    """A model's census row; its best match's faithfulness is measured here, while the store
    it reads is open."""
    if match is None:
        return CensusModel(info.name, group, False)
    return CensusModel(
        info.name, group, True, match.error, match.exact, match.faithfulness, dict(match.bindings)
    )


def _order(group: str) -> tuple[int, float | str]:
    """Numeric groups (widths, depths) in numeric order, others alphabetically."""
    try:
        return (0, float(group))
    except ValueError:
        return (1, group)


BAR, GAP, PLOT_HEIGHT, LEFT, TOP, BOTTOM = 44, 22, 220, 56, 48, 64


def bar_chart_svg(census: Census) -> str:
    """A self-contained SVG: one bar per group, its height the share of models holding the
    circuit, labelled ``with/models``. Hand-written so a census plot needs no plotting
    library."""
    title = f"models containing {census.counted}, by {census.group_by}"
    width = max(LEFT + len(census.rows) * (BAR + GAP) + GAP, 8 * len(title) + 2 * GAP)
    height = TOP + PLOT_HEIGHT + BOTTOM
    base = TOP + PLOT_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for pct in (0, 25, 50, 75, 100):
        y = base - PLOT_HEIGHT * pct / 100
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{width - GAP / 2}" y2="{y}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" fill="#555">{pct}%</text>'
        )
    for i, row in enumerate(census.rows):
        x = LEFT + GAP + i * (BAR + GAP)
        h = PLOT_HEIGHT * row.fraction
        label = f"{row.with_circuit}/{row.models}"
        parts += [
            f'<rect class="bar" x="{x}" y="{base - h:.1f}" width="{BAR}" height="{h:.1f}" '
            f'fill="#3b6ea5"><title>{escape(row.group)}: {label} ({row.fraction:.1%})'
            "</title></rect>",
            f'<text x="{x + BAR / 2}" y="{base - h - 5:.1f}" text-anchor="middle">{label}</text>',
            f'<text x="{x + BAR / 2}" y="{base + 16}" text-anchor="middle">'
            f"{escape(row.group)}</text>",
        ]
    parts += [
        f'<line x1="{LEFT}" y1="{base}" x2="{width - GAP / 2}" y2="{base}" stroke="#333"/>',
        f'<text x="{LEFT + (width - LEFT) / 2}" y="{base + 40}" text-anchor="middle" '
        f'fill="#555">{escape(census.group_by)}</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"

"""What a query answers: ``Match``, one verified circuit instance in the user's
coordinates, and ``Results``, the matches as they stream and as a table once read.

Plain frozen records the engine builds and every layer above reads; what a match can do
beyond its numbers (draw, save, verify, measure its faithfulness) it does through functions
it names lazily, so this module sits below the renderer and the exporter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from circuitql.errors import CircuitQLError
from circuitql.grammar.errors import QueryError
from circuitql.graph import NeuronGraph
from circuitql.language.pattern import CircuitPattern
from circuitql.lazy import cached_property

if TYPE_CHECKING:
    from circuitql.api import Database
    from circuitql.picture import Svg
    from circuitql.store.base import Store


@dataclass(frozen=True)
class Match:
    """One verified circuit instance, in the user's coordinates.

    ``bindings`` maps every pattern variable to the source id of the neuron it matched;
    ``members`` lists, per variable, every original neuron merged into that canonical neuron
    (duplicates the canonical form folded together). ``error`` is the largest deviation from
    the reference over the verification probes, relative to the reference's magnitude, after
    the best positive output scale: ``scales`` has one per output (a hidden output's scale is a
    symmetry of the network, a network output's is 1), ``scale`` is the first.

    ``exact`` says whether the match holds as the pattern is written: every unit's
    signature as the pattern demands, every coefficient within tolerance, nothing but the
    pattern's edges. An approximate match holds only as training leaves circuits: kinks
    near the origin, detectors split over near-parallel units (their neurons are in
    ``members`` too), linear paths beside detector pairs. ``input_scales`` has the fitted
    scale of each circuit input bound to a hidden unit (whose own scale is a symmetry): the
    circuit reads ``scale x`` the unit's canonical value.

    ``faithfulness`` is how much of the circuit's output units the matched units alone leave
    unexplained where the model lives (its domain, else the probe range): every other input
    of each output unit ablated, the largest change relative to the output's range. 0 when
    the circuit is all its output reads; 0.3 when 30% of the output's swing comes from units
    outside the circuit. It is measured on first use (it reads the outputs' whole cone from
    the store, which must still be open), by ``measure``.
    """

    model: str
    circuit: str
    bindings: Mapping[str, str]
    error: float
    params: Mapping[str, float] = field(default_factory=dict)
    scale: float = 1.0
    scales: tuple[float, ...] = ()
    variant: str = ""
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    graph: NeuronGraph | None = field(default=None, compare=False, repr=False)
    pattern: CircuitPattern | None = field(default=None, compare=False, repr=False)
    exact: bool = True
    input_scales: Mapping[str, float] = field(default_factory=dict)
    measure: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def faithfulness(self) -> float:
        """See the class docstring: measured from the store on first use, then kept."""
        if self.measure is None:
            raise ValueError("this match carries nothing to measure its faithfulness on")
        return self.measure()

    def subnetwork(self) -> Any:
        """The circuit alone as an ``nn.Module``: it takes (batch, circuit inputs) and gives
        (batch, circuit outputs), both in the circuit's order, the order of the ``input_ids``
        and ``output_ids`` it carries (the model's units they stand for)."""
        from circuitql.engine.subnetwork import as_module

        return as_module(self._circuit_graph())

    def save(self, path: str | Path) -> Path:
        """Write the circuit alone as a model file, by the suffix: ``.onnx``, or
        ``.safetensors`` / ``.pt`` with its JSON config beside it. It computes what
        ``subnetwork()`` computes, in the model's own coordinates: inputs and outputs in the
        circuit's order, and a hidden output at the scale the model gives it. The config's
        meta names the model, the circuit, the bindings, the model unit behind each unit of
        the file, and ``scales`` and ``input_scales``, which turn it into the circuit as its
        definition writes it."""
        from circuitql.export import save, spec_from_graph

        path = Path(path)
        if path.suffix not in (".onnx", ".safetensors", ".pt"):
            named = path.suffix or "a file without suffix"
            raise CircuitQLError(
                f"cannot write a circuit as {named!r}",
                where=str(path),
                fix="name the file .onnx, .safetensors or .pt",
            )
        try:
            spec = spec_from_graph(
                self._circuit_graph(),
                {
                    "model": self.model,
                    "circuit": self.circuit,
                    "bindings": dict(self.bindings),
                    "scales": list(self.scales or (self.scale,)),
                    "input_scales": dict(self.input_scales),
                },
            )
        except ValueError as err:
            raise CircuitQLError(
                f"this circuit cannot be written as dense layers: {err}",
                fix="use subnetwork() for an nn.Module, which keeps any wiring",
            ) from err
        try:
            return save(spec, path)
        except OSError as err:
            raise CircuitQLError(
                f"cannot write the circuit: {err.strerror or err}",
                where=str(path),
                fix="write to a folder that is writable",
            ) from err

    def _circuit_graph(self) -> NeuronGraph:
        if self.graph is None:
            raise CircuitQLError(
                "this match carries no sub-network",
                fix="take matches from db.query(...), which attach it",
            )
        return self.graph

    def draw(self, context: Database | Store | None = None) -> Svg:
        """The matched sub-network as an SVG picture (shown inline in Jupyter); pass the
        database (or store) to draw the whole model with the match highlighted instead."""
        from circuitql.render import draw_match

        # A Database carries its store; a store is one.
        store = getattr(context, "store", None) or context
        return draw_match(self, cast("Store | None", store))

    def verify(self, inputs: np.ndarray) -> float:
        """Relative error of the matched sub-network against the reference on ``inputs``."""
        from circuitql.engine.verify import compare

        graph = self._circuit_graph()
        assert self.pattern is not None
        if self.pattern.reference is None:
            raise ValueError(f"{self.circuit} has no EXPECT clause to verify against")
        x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        expected = self.pattern.reference(x, self.params)
        fixed = (False,) * expected.shape[1]
        scales = np.asarray(self.scales or (self.scale,))
        return compare(scales * graph.evaluate(x), expected, fixed).error

    def _repr_html_(self) -> str:
        """In Jupyter: what matched where, the numbers, and the matched sub-network drawn."""
        from circuitql.html import table

        numbers = [
            ("error", self.error),
            ("exact", self.exact),
            ("scale", self.scale),
            *((f"param {k}", v) for k, v in self.params.items()),
            *((f"input scale {k}", v) for k, v in self.input_scales.items()),
        ]
        if self.measure is not None:
            numbers.append(("faithfulness", self.faithfulness))
        bound = [
            (name, uid, ", ".join(self.members.get(name, ())[1:]))
            for name, uid in self.bindings.items()
        ]
        picture = self.draw().text if self.graph is not None else ""
        return (
            table(("", ""), numbers, caption=f"{self.circuit} in {self.model}")
            + table(("variable", "unit", "merged with"), bound)
            + picture
        )

    def to_dict(self) -> dict[str, Any]:
        """The match as plain data (what ``--json`` prints per match): names, numbers, lists
        and dicts only, so it goes to JSON, a DataFrame row or a CSV line as it is."""
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        """One match as ``--json`` prints it (schemas/match.schema.json); reading it measures
        the faithfulness, so the store must still be open."""
        return {
            "model": self.model,
            "circuit": self.circuit,
            "bindings": dict(self.bindings),
            "error": self.error,
            "params": dict(self.params),
            "scale": self.scale,
            "variant": self.variant,
            "exact": self.exact,
            "input_scales": dict(self.input_scales),
            "faithfulness": self.faithfulness,
            "members": {k: list(v) for k, v in self.members.items() if len(v) > 1},
        }


class Results(Iterator[Match]):
    """The matches of a query, as they are verified: an iterator (``for m in db.query(...)``
    streams them, and ``LIMIT`` stops the search early), and a table once read:
    ``to_records()`` and ``to_pandas()`` read the rest and give one row per match."""

    def __init__(self, matches: Iterator[Match]) -> None:
        self._matches = matches
        self.read: list[Match] = []

    def __next__(self) -> Match:
        match = next(self._matches)
        self.read.append(match)
        return match

    def _repr_html_(self) -> str:
        """In Jupyter: a row per match, reading (at most) the first ``MAX_ROWS`` of them."""
        from circuitql.html import MAX_ROWS, table

        for _ in zip(range(MAX_ROWS + 1 - len(self.read)), self, strict=False):
            pass
        rows = [
            (
                m.model,
                m.circuit,
                m.error,
                "exact" if m.exact else "approximate",
                ", ".join(f"{k}={v}" for k, v in m.bindings.items()),
            )
            for m in self.read[:MAX_ROWS]
        ]
        cut = len(self.read) > MAX_ROWS
        more = "… and more: iterate on, or to_records() / to_pandas() for them all" if cut else ""
        return table(
            ("model", "circuit", "error", "kind", "bindings"),
            rows,
            caption=f"the first {len(rows)} matches" if cut else f"{len(rows)} match(es)",
            footer=more,
        )

    def to_records(self) -> list[dict[str, Any]]:
        """Every match (those already read, then the rest) as plain data: ``Match.to_dict``,
        with one column per binding."""
        for _ in self:
            pass
        return [
            {
                **{k: v for k, v in m.to_dict().items() if k != "bindings"},
                **{f"bound.{name}": uid for name, uid in m.bindings.items()},
            }
            for m in self.read
        ]

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas is an optional extra)."""
        return data_frame(self.to_records())


def data_frame(records: list[dict[str, Any]]) -> Any:
    """Rows as a pandas DataFrame; pandas is an optional extra, so its absence is an error
    that says how to install it, or how to do without."""
    try:
        import pandas
    except ImportError:
        raise QueryError(
            "pandas is not installed, and to_pandas() needs it",
            fix="pip install 'circuitql[data]' (or pandas), or use to_records() for plain rows",
        ) from None
    return pandas.DataFrame.from_records(records)

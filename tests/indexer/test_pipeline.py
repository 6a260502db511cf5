"""From a loaded model to its records: the stages, and what each lets go of."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import circuitql.indexer.pipeline as pipeline
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.load import LoadedModel, load
from circuitql.indexer.pipeline import StageTimes, build_records
from circuitql.indexer.signature import signatures


def _network() -> NeuronGraph:
    x = Unit("input:0", UnitKind.INPUT)
    units = [x]
    for i, (w, b) in enumerate([(1.5, 0.0), (-0.5, 0.25), (2.0, -0.1)]):
        units.append(Unit(f"fc1:{i}", UnitKind.HIDDEN, Activation.RELU, b, {x.id: w}))
    weights = {u.id: float(w) for u, w in zip(units[1:], np.linspace(-1, 1, 3), strict=True)}
    units.append(Unit("out:0", UnitKind.OUTPUT, bias=0.5, inputs=weights))
    return NeuronGraph(tuple(units))


def test_the_loaded_graph_is_let_go_before_the_canonical_form_is_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big network's loaded edges must not sit beside its canonical form while that is
    signed: build_records reads the model itself, and nothing of it but its provenance
    outlives the canonical form."""
    seen: list[weakref.ref[NeuronGraph]] = []
    alive_at_signing: list[bool] = []

    def read() -> LoadedModel:
        loaded = load(_network())
        seen.append(weakref.ref(loaded.graph))
        return loaded

    def signing(graph: NeuronGraph, significance: float) -> object:
        gc.collect()
        alive_at_signing.append(seen[0]() is not None)
        return signatures(graph, significance)

    monkeypatch.setattr(pipeline, "signatures", signing)
    records = build_records(read, "m")
    assert alive_at_signing == [False]
    assert records.content_hash == _network().content_hash()
    assert records.source == "<NeuronGraph>" and records.name == "m"


def test_a_model_without_a_name_takes_its_default_name_and_every_stage_is_timed() -> None:
    times = StageTimes()
    records = build_records(lambda: load(_network()), None, times=times)
    assert records.name == "graph"
    assert min(times.load, times.canonicalize, times.sign) > 0.0
    assert times.write == 0.0

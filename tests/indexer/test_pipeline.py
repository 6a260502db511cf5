"""From a loaded model to its records: the stages, and what each lets go of."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import circuitql.graph as graph_module
import circuitql.indexer.canonical as canonical
import circuitql.indexer.fidelity as fidelity
import circuitql.indexer.pipeline as pipeline
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.load import LoadedModel, load
from circuitql.indexer.pipeline import StageTimes, build_records
from circuitql.indexer.signature import signature_table
from tests.indexer.random_graphs import layered_graphs


def _network() -> NeuronGraph:
    x = Unit("input:0", UnitKind.INPUT)
    units = [x]
    for i, (w, b) in enumerate([(1.5, 0.0), (-0.5, 0.25), (2.0, -0.1)]):
        units.append(Unit(f"fc1:{i}", UnitKind.HIDDEN, Activation.RELU, b, {x.id: w}))
    weights = {u.id: float(w) for u, w in zip(units[1:], np.linspace(-1, 1, 3), strict=True)}
    units.append(Unit("out:0", UnitKind.OUTPUT, bias=0.5, inputs=weights))
    return NeuronGraph(tuple(units))


class _Watched:
    """A model reader that keeps a weak reference to every graph it reads."""

    def __init__(self, network: Callable[[], NeuronGraph]) -> None:
        self.network = network
        self.graphs: list[weakref.ref[NeuronGraph]] = []

    def __call__(self) -> LoadedModel:
        loaded = load(self.network())
        self.graphs.append(weakref.ref(loaded.graph))
        return loaded

    def alive(self) -> int:
        """How many of the graphs read are still held anywhere."""
        gc.collect()
        return sum(ref() is not None for ref in self.graphs)


def test_the_loaded_graph_is_let_go_before_the_canonical_form_is_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big network's loaded edges must not sit beside its canonical form while that is
    signed: build_records reads the model itself, and nothing of it but its provenance
    outlives the canonical form."""
    read = _Watched(_network)
    alive_at_signing: list[int] = []

    def signing(graph: NeuronGraph, significance: float) -> object:
        alive_at_signing.append(read.alive())
        return signature_table(graph, significance)

    monkeypatch.setattr(pipeline, "signature_table", signing)
    records = build_records(read, "m")
    assert alive_at_signing == [0]
    assert records.content_hash == _network().content_hash()
    assert records.source == "<NeuronGraph>" and records.name == "m"


def test_a_model_without_a_name_takes_its_default_name_and_every_stage_is_timed() -> None:
    times = StageTimes()
    records = build_records(lambda: load(_network()), None, times=times)
    assert records.name == "graph"
    assert min(times.load, times.canonicalize, times.sign) > 0.0
    assert times.write == 0.0


def _tightening() -> NeuronGraph:
    """200 weights each under prune_tol of the largest that add up to 18% of it: the first
    canonical form is over the bound, and a second one is computed (test_fidelity)."""
    inputs = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(201)]
    weights = {"input:0": 1.0, **{f"input:{i}": 9e-4 for i in range(1, 201)}}
    hidden = Unit("fc1:0", UnitKind.HIDDEN, Activation.RELU, 0.0, weights)
    return NeuronGraph((*inputs, hidden, Unit("out:0", UnitKind.OUTPUT, inputs={hidden.id: 1.0})))


@pytest.mark.parametrize("network", [_network, _tightening])
def test_a_big_network_is_let_go_during_its_canonical_form_and_read_again_to_retry(
    monkeypatch: pytest.MonkeyPatch, network: Callable[[], NeuronGraph]
) -> None:
    """From ``RELEASED_EDGES`` edges on, no loaded graph is alive while the canonical form
    is computed: the first is let go, a retry reads the network again. The records are the
    ones a kept graph gives."""
    kept = build_records(lambda: load(network()), "m")
    monkeypatch.setattr(fidelity, "RELEASED_EDGES", 1)
    read = _Watched(network)
    alive: list[int] = []

    def form(state: canonical.State, config: canonical.Config) -> canonical.Canonical:
        alive.append(read.alive())
        return canonical.canonical_form(state, config)

    monkeypatch.setattr(fidelity, "canonical_form", form)
    released = build_records(read, "m")
    retried = any(line.startswith("tighten") for line in released.canonical_log)
    assert retried is (network is _tightening)
    assert len(read.graphs) == 1 + retried  # read again only to retry
    assert alive == [0] * (1 + retried)
    assert released.network_string == kept.network_string
    assert released.canonical_log == kept.canonical_log
    assert released.canonical_error == kept.canonical_error
    assert (released.edges.weight == kept.edges.weight).all()


@settings(max_examples=25, deadline=None)
@given(graph=layered_graphs(), size=st.integers(1, 40))
def test_passes_over_every_edge_in_runs_give_the_records_of_one_pass(
    graph: NeuronGraph, size: int
) -> None:
    """Rescaling, pruning and signing work through the edges a run of whole units at a time
    (``EdgeArrays.runs``), so that a big network needs no array the size of its weights
    beyond its own: the records are bit for bit those of one run over all the edges, for
    runs down to a single unit's inputs."""
    whole = build_records(lambda: load(graph), "m")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graph_module, "RUN_EDGES", size)
        in_runs = build_records(lambda: load(graph), "m")
    assert in_runs.network_string == whole.network_string
    assert in_runs.canonical_log == whole.canonical_log
    assert [(n.uid, n.signature, n.bias) for n in in_runs.neurons] == [
        (n.uid, n.signature, n.bias) for n in whole.neurons
    ]
    assert in_runs.edges.weight.tobytes() == whole.edges.weight.tobytes()

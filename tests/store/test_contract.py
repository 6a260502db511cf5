"""The Store contract: every test runs once per backend through the ``store`` fixture."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from circuitql.errors import NameTaken, StoreError
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import Config as CanonicalConfig
from circuitql.indexer.fidelity import output_error, probes
from circuitql.indexer.load import load
from circuitql.indexer.pipeline import build_records
from circuitql.records import BiasClass, IndexedModel, NeuronColumns, NeuronRecord
from circuitql.store.base import FAN_IN_SEEN, NARROW_SOURCES, Store, stored_graph
from tests.indexer.random_graphs import any_activation_graphs
from tests.store.fakes import edges_of, fake_model


def _by_uid(neurons: list[NeuronRecord]) -> list[NeuronRecord]:
    return sorted(neurons, key=lambda n: n.uid)


def _snapshot(store: Store) -> tuple[object, ...]:
    """Everything a write could change, to compare before and after."""
    infos = store.models()
    return (
        infos,
        {info.name: _by_uid(store.neurons(info.name)) for info in infos},
        {info.name: sorted(edges_of(store, info.name), key=repr) for info in infos},
        store.token_counts(),
    )


def test_write_then_read_back_exactly(store: Store) -> None:
    model = fake_model("m1", meta={"seed": 3, "note": "ünïcode", "nested": {"a": [1, 2.5]}})
    outcome = store.write(model)

    assert outcome.status == "indexed"
    info = outcome.model
    assert (info.name, info.content_hash, info.source) == ("m1", model.content_hash, "fake://m1")
    assert (info.n_inputs, info.n_outputs) == (2, 1)
    assert (info.n_neurons, info.n_edges) == (len(model.neurons), len(model.edges))
    assert info.network_string == model.network_string
    assert dict(info.meta) == {"seed": 3, "note": "ünïcode", "nested": {"a": [1, 2.5]}}
    assert store.models() == [info]
    assert store.get_model("m1") == info

    assert _by_uid(store.neurons("m1")) == _by_uid(list(model.neurons))
    assert sorted(edges_of(store, "m1"), key=repr) == sorted(model.edges, key=repr)


def test_signatures_round_trip_with_their_types(store: Store) -> None:
    model = fake_model("m1")
    store.write(model)

    stored = {n.uid: n for n in store.neurons("m1")}
    for written in model.neurons:
        sig = stored[written.uid].signature
        assert sig == written.signature
        assert isinstance(sig.kind, UnitKind)
        assert isinstance(sig.activation, Activation)
        assert isinstance(sig.bias_class, BiasClass)
        assert all(isinstance(m, float) for m in sig.magnitudes)
        assert stored[written.uid].token == written.token
    # The merged-duplicate membership survives too.
    assert stored["fc1:0"].members == (("fc1:0", 1.0), ("fc1:3", 0.5))


def test_unknown_model_reads_as_absent(store: Store) -> None:
    store.write(fake_model("m1"))

    assert store.get_model("nope") is None
    assert store.neurons("nope") == []
    assert store.inputs("nope") == {}
    assert store.delete("nope") is False


def test_writing_the_same_content_again_changes_nothing(store: Store) -> None:
    first = store.write(fake_model("m1"))
    before = _snapshot(store)

    again = store.write(fake_model("m1"))
    assert again.status == "unchanged"
    assert again.model == first.model
    assert _snapshot(store) == before


def test_the_same_content_under_another_name_is_kept_under_both(store: Store) -> None:
    # Every name given is kept: two runs that trained to the same weights are two models a
    # census counts, and each is found by its own name.
    first = store.write(fake_model("m1"))
    outcome = store.write(fake_model("renamed", meta={"run": 2}))
    assert outcome.status == "indexed" and outcome.model.name == "renamed"
    assert [m.name for m in store.models()] == ["m1", "renamed"]
    assert store.get_model("m1") == first.model
    assert _by_uid(store.neurons("renamed")) == _by_uid(store.neurons("m1"))
    assert store.write(fake_model("renamed", meta={"run": 2})).status == "unchanged"
    assert store.delete("m1") and store.get_model("renamed") is not None


def test_same_content_canonicalized_otherwise_replaces_the_stored_model(store: Store) -> None:
    # The same network indexed again under another domain (or canonical-form version) is
    # another canonical graph: it replaces what that name held.
    store.write(fake_model("m1", normal_form={"version": 2, "domain": None}))
    other = fake_model("m1", normal_form={"version": 2, "domain": [-2.0, 2.0]}, meta={"run": 2})
    outcome = store.write(other)
    assert outcome.status == "indexed"
    assert outcome.model.name == "m1"
    assert [m.name for m in store.models()] == ["m1"]
    info = store.get_model("m1")
    assert info is not None and dict(info.normal_form) == dict(other.normal_form)
    assert dict(info.meta) == {"run": 2}
    assert info.domain is not None and info.domain.box == ((-2.0, 2.0),) * info.n_inputs
    assert store.token_counts() == dict(Counter(n.token for n in other.neurons))
    assert store.write(other).status == "unchanged"


def test_domains_are_read_for_many_models_at_once_as_get_model_gives_them(store: Store) -> None:
    boxed = [[-2.0, 2.0], [0.0, 5.0], [-1.0, 1.0]]
    store.write(fake_model("boxed", n_inputs=3, normal_form={"version": 2, "domain": boxed}))
    store.write(fake_model("free", scale=2.0, normal_form={"version": 2, "domain": None}))
    store.write(fake_model("one box", scale=3.0, normal_form={"domain": [-4.0, 4.0]}))
    names = ["free", "boxed", "missing", "boxed", "one box", "x'); DROP TABLE models; --"]
    domains = store.domains(names)
    assert set(domains) == {"free", "boxed", "one box"}
    for name, domain in domains.items():
        info = store.get_model(name)
        assert info is not None and domain == info.domain
    assert domains["free"] is None
    assert domains["boxed"] is not None and domains["boxed"].box == (
        (-2.0, 2.0),
        (0.0, 5.0),
        (-1.0, 1.0),
    )
    assert domains["one box"] is not None and domains["one box"].box == ((-4.0, 4.0),) * 2
    assert store.domains([]) == {}
    assert [m.name for m in store.models()] == ["boxed", "free", "one box"]


def test_same_content_with_edited_metadata_updates_the_stored_model(store: Store) -> None:
    """A config whose meta was edited (a task relabelled) must update what a census groups
    the model by, though the network is the same."""
    store.write(fake_model("m1", meta={"task": "abs"}))
    assert store.write(fake_model("m1", meta={"task": "abs"})).status == "unchanged"
    outcome = store.write(fake_model("m1", meta={"task": "negation", "seed": (1, 2)}))
    assert outcome.status == "indexed"
    info = store.get_model("m1")
    assert info is not None and dict(info.meta) == {"task": "negation", "seed": [1, 2]}
    assert [m.name for m in store.models()] == ["m1"]
    assert store.write(fake_model("m1", meta={"task": "negation", "seed": (1, 2)})).status == (
        "unchanged"
    )


def test_the_canonical_error_is_kept_and_an_unmeasured_one_reads_back_as_none(store: Store) -> None:
    assert store.write(fake_model("m1", canonical_error=2.5e-5)).model.canonical_error == 2.5e-5
    store.write(fake_model("m2", scale=2.0, canonical_error=None))
    errors = {m.name: m.canonical_error for m in store.models()}
    assert errors == {"m1": 2.5e-5, "m2": None}


def test_different_content_under_a_stored_name_is_refused(store: Store) -> None:
    store.write(fake_model("m1", scale=1.0))
    before = _snapshot(store)

    with pytest.raises(StoreError) as err:
        store.write(fake_model("m1", scale=2.0))
    message = str(err.value)
    assert "'m1'" in message
    fix = err.value.fix or ""
    assert "name" in fix and "--replace" in fix
    assert _snapshot(store) == before


def test_replace_puts_another_network_under_a_stored_name(store: Store) -> None:
    store.write(fake_model("m1", scale=1.0))
    store.write(fake_model("m2", scale=3.0))
    new = fake_model("m1", scale=2.0, hidden=5, meta={"run": 2})
    outcome = store.write(new, replace=True)
    assert outcome.status == "indexed" and outcome.model.content_hash == new.content_hash
    assert [m.name for m in store.models()] == ["m1", "m2"]
    assert _by_uid(store.neurons("m1")) == _by_uid(list(new.neurons))
    kept = fake_model("m2", scale=3.0)
    assert store.token_counts() == dict(Counter(n.token for n in (*new.neurons, *kept.neurons)))
    assert store.write(new, replace=True).status == "unchanged"


def _failing_half_way(model: IndexedModel) -> IndexedModel:
    """The same model with its first neuron repeated at the end: the store has already written
    every other neuron when the duplicate (model, uid) is refused."""
    return dataclasses.replace(
        model,
        content_hash=model.content_hash + "-broken",
        neurons=(*model.neurons, model.neurons[0]),
    )


def test_a_write_that_fails_half_way_leaves_nothing(store: Store) -> None:
    store.write(fake_model("kept", scale=1.0))
    before = _snapshot(store)
    broken = _failing_half_way(fake_model("broken", scale=2.0))

    with pytest.raises(StoreError):
        store.write(broken)

    assert store.get_model("broken") is None
    assert store.neurons("broken") == []
    assert store.inputs("broken") == {}
    assert _snapshot(store) == before
    # Nothing of the failed attempt blocks writing the model correctly afterwards.
    assert store.write(fake_model("broken", scale=2.0)).status == "indexed"


def test_a_write_group_keeps_each_write_whole_and_every_other_write(store: Store) -> None:
    taken = fake_model("taken", scale=1.0)
    store.write(taken)
    a, b = fake_model("a", scale=2.0, hidden=3), fake_model("b", scale=5.0, hidden=4)
    with store.write_group():
        store.write(a)
        with pytest.raises(StoreError):
            store.write(_failing_half_way(fake_model("broken", scale=3.0)))
        with pytest.raises(NameTaken):
            store.write(fake_model("taken", scale=4.0))
        assert store.get_model("a") is not None  # the group's own writes read back in it
        store.write(b)

    assert [m.name for m in store.models()] == ["a", "b", "taken"]
    assert store.get_model("broken") is None and store.neurons("broken") == []
    for model in (a, b, taken):
        assert _by_uid(store.neurons(model.name)) == _by_uid(list(model.neurons))
        assert sorted(edges_of(store, model.name), key=repr) == sorted(model.edges, key=repr)
    tokens = Counter(n.token for model in (a, b, taken) for n in model.neurons)
    assert store.token_counts() == dict(tokens)


def test_a_write_group_left_by_an_exception_keeps_what_was_written_whole(store: Store) -> None:
    with pytest.raises(KeyboardInterrupt), store.write_group():
        store.write(fake_model("a", scale=2.0))
        raise KeyboardInterrupt
    assert [m.name for m in store.models()] == ["a"]
    assert store.write(fake_model("a", scale=2.0)).status == "unchanged"


def test_token_counts_add_up_across_models_and_shrink_on_delete(store: Store) -> None:
    a = fake_model("a", scale=1.0, hidden=3)
    b = fake_model("b", scale=2.0, hidden=4)
    store.write(a)
    store.write(b)

    tokens_a = Counter(n.token for n in a.neurons)
    tokens_b = Counter(n.token for n in b.neurons)
    assert set(tokens_a) & set(tokens_b), "the fakes should share some tokens"
    assert set(tokens_b) - set(tokens_a), "and each should have some of its own"
    assert store.token_counts() == dict(tokens_a + tokens_b)

    assert store.delete("a") is True
    assert store.token_counts() == dict(tokens_b)
    assert store.delete("b") is True
    assert store.token_counts() == {}


def _expected(models: list[IndexedModel], **constraints: object) -> list[tuple[str, str]]:
    """(model, uid) of the written neurons whose signature matches, computed without a store."""

    def matches(neuron: NeuronRecord) -> bool:
        values = {
            "layer": neuron.layer,
            "fan_in": neuron.signature.fan_in,
            **{
                f.name: getattr(neuron.signature, f.name)
                for f in dataclasses.fields(neuron.signature)
            },
        }
        return all(values[key] == value for key, value in constraints.items())

    return sorted((m.name, n.uid) for m in models for n in m.neurons if matches(n))


def _found(
    store: Store,
    constraints: dict[str, object],
    models: list[str] | None = None,
) -> list[tuple[str, str]]:
    return sorted((name, n.uid) for name, n in store.find_neurons(constraints, models))


@pytest.fixture
def two_models(store: Store) -> list[IndexedModel]:
    written = [fake_model("a", scale=1.0), fake_model("b", scale=-1.0, n_inputs=3, hidden=4)]
    for model in written:
        store.write(model)
    return written


def test_find_neurons_returns_the_stored_records(
    store: Store, two_models: list[IndexedModel]
) -> None:
    written = {(m.name, n.uid): n for m in two_models for n in m.neurons}
    sig = two_models[0].neurons[-1].signature
    results = store.find_neurons({"kind": sig.kind, "n_pos": sig.n_pos, "n_neg": sig.n_neg})
    assert results
    for name, neuron in results:
        assert neuron == written[(name, neuron.uid)]


def test_find_neurons_by_detector_columns(store: Store, two_models: list[IndexedModel]) -> None:
    for model in two_models:
        for neuron in model.neurons:
            sig = neuron.signature
            constraints: dict[str, object] = {
                "activation": sig.activation,
                "n_pos": sig.n_pos,
                "n_neg": sig.n_neg,
                "bias_class": sig.bias_class,
            }
            expected = _expected(two_models, **constraints)
            assert (model.name, neuron.uid) in expected
            assert _found(store, constraints) == expected


def test_bounds_on_the_fan_in_are_served_by_every_lookup(
    store: Store, two_models: list[IndexedModel]
) -> None:
    # An approximate search admits a few more inputs than a pattern names, up to a bound; an
    # open fan-in is bounded below by the pattern's sign counts. With no kind, the bounds
    # alone choose among every unit of the store.
    for low, high in ((0, 0), (1, 1), (1, 3), (2, 3), (3, 9)):
        for kind in (UnitKind.HIDDEN, None):
            constraints: dict[str, object] = {"fan_in_min": low, "fan_in_max": high}
            if kind is not None:
                constraints["kind"] = kind
            expected = sorted(
                (m.name, n.uid)
                for m in two_models
                for n in m.neurons
                if kind in (None, n.signature.kind) and low <= n.signature.fan_in <= high
            )
            assert _found(store, constraints) == expected
            assert store.count_neurons(constraints) == len(expected)
            keys = [(m.name, n.uid) for m in two_models for n in m.neurons]
            assert sorted(store.records(keys, constraints)) == expected


def test_bounds_on_depth_and_signs_are_served_by_every_lookup(
    store: Store, two_models: list[IndexedModel]
) -> None:
    # A pattern unit is looked up no shallower than its depth in the pattern, and with at
    # least its signed inputs: with the fan-in given, bounded, or open, and with or without
    # a kind (each picks another index in SQLite).
    units = [(m.name, n) for m in two_models for n in m.neurons]
    for depth in (1, 2, 3):
        for fan_in in ({}, {"fan_in": 3}, {"fan_in_min": 1, "fan_in_max": 3}, {"fan_in_min": 2}):
            for kind in ({}, {"kind": UnitKind.HIDDEN}):
                for signs in ({}, {"n_pos_min": 1}, {"n_neg_min": 1, "n_pos_min": 1}):
                    constraints: dict[str, object] = {
                        "layer_min": depth,
                        **fan_in,
                        **kind,
                        **signs,
                    }
                    expected = sorted(
                        (name, n.uid)
                        for name, n in units
                        if n.layer >= depth
                        and n.signature.fan_in == fan_in.get("fan_in", n.signature.fan_in)
                        and fan_in.get("fan_in_min", 0) <= n.signature.fan_in
                        and n.signature.fan_in <= fan_in.get("fan_in_max", n.signature.fan_in)
                        and n.signature.kind is kind.get("kind", n.signature.kind)
                        and n.signature.n_pos >= signs.get("n_pos_min", 0)
                        and n.signature.n_neg >= signs.get("n_neg_min", 0)
                    )
                    assert _found(store, constraints) == expected, constraints
                    assert store.count_neurons(constraints) == len(expected)
    assert _found(store, {"layer_min": 2, "fan_in": 3, "n_pos_min": 1})  # not only empty


def test_input_groups_round_trip_and_bound_every_lookup(store: Store) -> None:
    # A reader's groups of near-parallel inputs bound an approximate search's lookup, a 0
    # ("not counted", as an older store's neurons read) admitted by every bound; with the
    # fan-in given or bounded and with a kind (each picks another index in SQLite).
    model = fake_model("g")
    neurons = [dataclasses.replace(n, input_groups=i % 3) for i, n in enumerate(model.neurons)]
    store.write(dataclasses.replace(model, neurons=NeuronColumns.of(neurons)))
    assert _by_uid(store.neurons("g")) == _by_uid(neurons)
    views = store.fetch([("g", n.uid) for n in neurons])
    assert {uid: v.record.input_groups for (_, uid), v in views.items()} == {
        n.uid: n.input_groups for n in neurons
    }
    shapes: dict[str, tuple[dict[str, object], Callable[[NeuronRecord], bool]]] = {
        "any": ({}, lambda n: True),
        "hidden": ({"kind": UnitKind.HIDDEN}, lambda n: n.signature.kind is UnitKind.HIDDEN),
        "bounded": (
            {"fan_in_min": 1, "fan_in_max": 3, "layer_min": 1},
            lambda n: 1 <= n.signature.fan_in <= 3 and n.layer >= 1,
        ),
    }
    for bound in (0, 1, 2):
        for columns, admits in shapes.values():
            constraints = {"groups_max": bound, **columns}
            expected = sorted(
                ("g", n.uid) for n in neurons if n.input_groups <= bound and admits(n)
            )
            assert _found(store, constraints) == expected, constraints
            assert store.count_neurons(constraints) == len(expected)
    assert _found(store, {"groups_max": 1, "fan_in_min": 1}) != []  # not only empty


def test_find_neurons_by_shape_and_layer(store: Store, two_models: list[IndexedModel]) -> None:
    constraints: dict[str, object] = {
        "kind": UnitKind.HIDDEN,
        "activation": Activation.RELU,
        "fan_in": 3,
        "layer": 1,
    }
    expected = _expected(two_models, **constraints)
    assert expected and all(name == "b" for name, _ in expected)
    assert _found(store, constraints) == expected
    assert _found(store, {"out_pos": 0, "out_neg": 0}) == _expected(
        two_models, out_pos=0, out_neg=0
    )


def test_find_neurons_restricted_to_models(store: Store, two_models: list[IndexedModel]) -> None:
    constraints: dict[str, object] = {"kind": UnitKind.INPUT}
    assert _found(store, constraints, ["b"]) == _expected(two_models[1:], **constraints)
    assert _found(store, constraints, ["a", "b"]) == _expected(two_models, **constraints)
    assert _found(store, constraints, ["no-such-model"]) == []
    assert _found(store, constraints, []) == []


def test_find_neurons_alongside_keeps_the_models_holding_each_other_unit(
    store: Store, two_models: list[IndexedModel]
) -> None:
    """A pattern's anchor looked up with its other units' columns: only the candidates of
    models that hold a neuron of every one of them, exactly as filtering by hand gives."""
    anchor: dict[str, object] = {"kind": UnitKind.HIDDEN}
    others: list[dict[str, object]] = []
    for model in two_models:
        for neuron in model.neurons:
            sig = neuron.signature
            others.append({"fan_in": sig.fan_in, "n_pos": sig.n_pos, "bias_class": sig.bias_class})
    others.append({"activation": Activation.TANH})  # in no model
    for company in ([], *([o] for o in others), others[:2], [others[0], others[-2]]):
        holding = {
            m.name for m in two_models if all(any(_expected([m], **columns)) for columns in company)
        }
        expected = [key for key in _expected(two_models, **anchor) if key[0] in holding]
        found = sorted((name, n.uid) for name, n in store.find_neurons(anchor, None, company))
        assert found == expected, company
        scoped = store.find_neurons(anchor, ["b"], company)
        assert sorted((name, n.uid) for name, n in scoped) == [e for e in expected if e[0] == "b"]
    assert store.find_neurons(anchor, None, [others[-1]]) == []
    with pytest.raises(ValueError):
        store.find_neurons(anchor, None, [{"kind = kind OR 1=1 --": 1}])


def test_find_neurons_with_no_match_is_empty(store: Store, two_models: list[IndexedModel]) -> None:
    assert _found(store, {"kind": UnitKind.HIDDEN, "n_pos": 9, "n_neg": 9}) == []
    assert _found(store, {"activation": Activation.TANH}) == []


@pytest.mark.parametrize("key", ["weight", "uid", "name", "token", "kind = kind OR 1=1 --", ""])
def test_find_neurons_rejects_keys_outside_the_whitelist(
    store: Store, two_models: list[IndexedModel], key: str
) -> None:
    with pytest.raises(ValueError):
        store.find_neurons({"kind": "hidden", key: 1})


def test_delete_removes_the_model_and_everything_under_it(
    store: Store, two_models: list[IndexedModel]
) -> None:
    a, b = two_models
    assert store.delete("a") is True

    assert store.get_model("a") is None
    assert [info.name for info in store.models()] == ["b"]
    assert store.neurons("a") == []
    assert store.inputs("a") == {}
    assert all(name == "b" for name, _ in store.find_neurons({"kind": UnitKind.INPUT}))
    # The other model is untouched, and the deleted one can be indexed again from scratch.
    assert _by_uid(store.neurons("b")) == _by_uid(list(b.neurons))
    assert store.delete("a") is False
    assert store.write(a).status == "indexed"


def _leaky(slope: float) -> NeuronGraph:
    x = Unit("input:0", UnitKind.INPUT)
    return NeuronGraph(
        (
            x,
            Unit("fc1:0", UnitKind.HIDDEN, Activation.LEAKY_RELU, 0.5, {x.id: 2.0}, slope),
            Unit("fc1:1", UnitKind.HIDDEN, Activation.LEAKY_RELU, -0.3, {x.id: -1.0}, slope),
            Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.1, {"fc1:0": 1.5, "fc1:1": -0.7}),
        )
    )


def test_a_leaky_relu_keeps_its_slope(store: Store) -> None:
    # A network read back from the store computes what the network computes: with its own
    # slope, not PyTorch's default.
    network = _leaky(0.1)
    model = build_records(lambda: load(network), "leaky")
    store.write(model)
    assert {
        n.alpha for n in store.neurons("leaky") if n.signature.activation is Activation.LEAKY_RELU
    } == {0.1}
    views = store.fetch([("leaky", n.uid) for n in model.neurons])
    assert {
        v.record.alpha
        for v in views.values()
        if v.record.signature.activation is Activation.LEAKY_RELU
    } == {0.1}
    x = np.linspace(-3.0, 3.0, 61)[:, None]
    assert np.allclose(stored_graph(store, "leaky").evaluate(x), network.evaluate(x))


# The tests over random networks of every activation: each example indexes a network and
# writes it to the test's store (shared by the examples), so few examples and no deadline.
on_random_networks = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _indexed(network: NeuronGraph) -> IndexedModel:
    """The records of ``network``, under a name its content decides."""
    return build_records(lambda: load(network), network.content_hash()[:16])


@on_random_networks
@given(network=any_activation_graphs())
def test_a_stored_network_computes_its_canonical_function(
    store: Store, network: NeuronGraph
) -> None:
    # What is read back is what was canonicalized, to the last bit that matters: its error
    # against the original on the fidelity probes is the canonical error stored with it.
    model = _indexed(network)
    store.write(model)
    x = probes(network, CanonicalConfig())
    stored = stored_graph(store, model.name)
    assert model.canonical_error is not None
    assert output_error(network.evaluate(x), stored.evaluate(x), x) == pytest.approx(
        model.canonical_error, abs=1e-12
    )


@on_random_networks
@given(network=any_activation_graphs())
def test_a_view_grows_through_the_edges_its_signature_counts(
    store: Store, network: NeuronGraph
) -> None:
    # The engine grows through a view's significant inputs and its readers of a given fan-in;
    # each store decodes them its own way (the embedded one from arrays, on demand), and both
    # must count what the indexer counted when it signed the neuron.
    _check_views(store, _indexed(network))


def test_a_view_leaves_out_the_inputs_too_small_to_count(store: Store) -> None:
    # 6% of the largest weight counts, 4% does not (DEFAULT_SIGNIFICANCE is 5%).
    x = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(3)]
    row = {x[0].id: 1.0, x[1].id: -0.06, x[2].id: 0.04}
    relu = Activation.RELU
    network = NeuronGraph(
        (
            *x,
            Unit("fc1:0", UnitKind.HIDDEN, relu, 0.1, row),
            Unit("fc1:1", UnitKind.HIDDEN, relu, 0.0, {x[0].id: -1.0, x[1].id: 0.5}),
            Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc1:0": 1.0, "fc1:1": 0.03}),
        )
    )
    model = build_records(lambda: load(network), "small-weights")
    fan_ins = {n.uid: n.signature.fan_in for n in model.neurons}
    assert fan_ins["fc1:0"] == 2 and fan_ins["out:0"] == 1
    _check_views(store, model)


def _check_views(store: Store, model: IndexedModel) -> None:
    store.write(model)
    views = store.fetch([(model.name, n.uid) for n in model.neurons])
    assert len(views) == len(model.neurons)
    for view in views.values():
        signature = view.record.signature
        assert len(view.sources) == len(view.significant_inputs) == signature.fan_in
        assert sum(w > 0 for _, w in view.significant_inputs) == signature.n_pos
        assert [e for e in view.inputs if e in view.significant_inputs] == list(
            view.significant_inputs
        )
        assert view.targets == tuple(t for t, _ in view.outputs)
        fan_ins = view.target_fan_ins or ()
        for low, high in ((0, None), (1, 1), (2, 3), (3, None), (FAN_IN_SEEN, None)):
            assert view.targets_with_fan_in(low, high) == tuple(
                t
                for t, f in zip(view.targets, fan_ins, strict=True)
                if f >= min(low, FAN_IN_SEEN) and (high is None or f <= high)
            )


def test_fetch_returns_neurons_with_their_edges(store: Store) -> None:
    model = fake_model("m1")
    store.write(model)
    uids = [n.uid for n in model.neurons]
    views = store.fetch([("m1", uid) for uid in [*uids[1:3], "no-such-neuron"]])
    assert set(views) == {("m1", uid) for uid in uids[1:3]}
    for (_, uid), view in views.items():
        assert view.record == next(n for n in model.neurons if n.uid == uid)
        assert sorted(view.inputs) == sorted((e.src, e.weight) for e in model.edges if e.dst == uid)
        assert sorted(view.outputs) == sorted(
            (e.dst, e.weight) for e in model.edges if e.src == uid
        )
        # Each target's fan-in travels with the edge: the engine weeds out a dense layer's
        # readers by it, without asking for their rows.
        fan_in = {n.uid: n.signature.fan_in for n in model.neurons}
        assert view.target_fan_ins == tuple(min(fan_in[t], FAN_IN_SEEN) for t in view.targets)
        # And each source's: the engine fetches only the quiet inputs that can be quiet.
        assert view.source_fan_ins == tuple(min(fan_in[s], FAN_IN_SEEN) for s, _ in view.inputs)
        for limit in (0, 1, 2, NARROW_SOURCES, NARROW_SOURCES + 1, FAN_IN_SEEN):
            assert view.sources_reading_at_most(limit) == [
                s for s, _ in view.inputs if 1 <= fan_in[s] <= limit
            ]
    assert store.fetch([("no-such-model", uid) for uid in uids]) == {}
    assert store.fetch([]) == {}


def test_one_fetch_spans_models(store: Store) -> None:
    """The engine grows candidates of many models in one call: the same uid in two models is
    two neurons, each with its own weights, and repeated keys come back once."""
    a, b = fake_model("m1"), fake_model("m2", scale=2.0, hidden=5)
    store.write(a)
    store.write(b)
    shared = sorted({n.uid for n in a.neurons} & {n.uid for n in b.neurons})
    keys = [(m, uid) for uid in shared for m in ("m2", "m1")]
    views = store.fetch([*keys, *keys])
    assert set(views) == set(keys)
    for (name, uid), view in views.items():
        model = a if name == "m1" else b
        assert view.record == next(n for n in model.neurons if n.uid == uid)
        assert sorted(view.inputs) == sorted((e.src, e.weight) for e in model.edges if e.dst == uid)
    assert store.records(keys) == {key: view.record for key, view in views.items()}


def test_records_are_fetch_without_edges(store: Store) -> None:
    model = fake_model("m1")
    store.write(model)
    uids = [n.uid for n in model.neurons]
    records = store.records([("m1", uid) for uid in [*uids, "no-such-neuron"]])
    assert records == {("m1", n.uid): n for n in model.neurons}
    assert store.records([("no-such-model", uid) for uid in uids]) == {}


def test_records_filtered_by_signature_leave_the_store_filtered(store: Store) -> None:
    """The engine looks at a dense layer's worth of neighbours through ``records`` with the
    next pattern unit's columns: the store answers with exactly the neurons find_neurons
    would give for those columns among the keys."""
    store.write(fake_model("m1"))
    store.write(fake_model("m2", scale=2.0, hidden=5))
    keys = [(m, n.uid) for m in ("m1", "m2") for n in store.neurons(m)]
    for constraints in (
        {"activation": "relu"},
        {"kind": "output", "fan_in": 3},
        {"n_pos": 1, "n_neg": 0},
        {"activation": "sigmoid"},
    ):
        wanted = {(m, r.uid): r for m, r in store.find_neurons(constraints)}
        assert store.records(keys, constraints) == wanted, constraints
        assert store.records(keys[:3], constraints) == {
            k: r for k, r in wanted.items() if k in keys[:3]
        }


def test_max_layer_is_the_deepest_neuron(store: Store) -> None:
    assert store.max_layer() == 0
    a, b = fake_model("m1"), fake_model("m2", scale=2.0, hidden=5)
    store.write(a)
    store.write(b)
    deepest = {m.name: max(n.layer for n in m.neurons) for m in (a, b)}
    assert store.max_layer() == max(deepest.values())
    assert store.max_layer(["m2"]) == deepest["m2"]
    assert store.max_layer([]) == 0


def test_count_neurons_agrees_with_find_neurons(store: Store) -> None:
    store.write(fake_model("m1"))
    store.write(fake_model("m2", scale=2.0, hidden=5))
    for constraints in ({"activation": "relu"}, {"kind": "output"}, {"n_pos": 1, "n_neg": 0}, {}):
        for models in (None, ["m2"], []):
            assert store.count_neurons(constraints, models) == len(
                store.find_neurons(constraints, models)
            )
    with pytest.raises(ValueError):
        store.count_neurons({"uid); DROP": 1})


def _real_format_files(folder: Path) -> list[Path]:
    """One file of every format circuitql reads, written by the tools that write them."""
    import torch
    from torch import nn

    from circuitql.export import save
    from circuitql.zoo.demo import random_mlp
    from tests.indexer.test_nnet_loader import write_nnet

    rng = np.random.default_rng(5)
    spec = random_mlp(rng, 4, [6, 5], 3)
    files = [save(spec, folder / "plain.safetensors"), save(spec, folder / "onnx_mlp.onnx")]
    checkpoint = save(spec, folder / "state.pt")
    torch.save(
        {"state_dict": torch.load(checkpoint, weights_only=True), "epoch": 3},
        folder / "checkpoint.pth",
    )
    (folder / "checkpoint.json").write_text(checkpoint.with_suffix(".json").read_text())
    files.append(folder / "checkpoint.pth")
    torch.manual_seed(0)
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(8, 6),
        nn.BatchNorm1d(6),
        nn.LeakyReLU(0.2),
        nn.Linear(6, 3),
        nn.Softmax(dim=1),
    ).eval()
    torch.onnx.export(
        classifier, (torch.randn(1, 2, 2, 2),), str(folder / "image.onnx"), dynamo=False
    )
    files.append(folder / "image.onnx")
    convnet = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 2),
    ).eval()
    torch.onnx.export(convnet, (torch.randn(1, 2, 8, 8),), str(folder / "conv.onnx"), dynamo=False)
    files.append(folder / "conv.onnx")
    layers = [
        (rng.normal(size=(5, 3)), rng.normal(size=5)),
        (rng.normal(size=(2, 5)), rng.normal(size=2)),
    ]
    files.append(
        write_nnet(
            folder / "verified.nnet",
            layers,
            np.array([0.0, -1.0, 10.0]),
            np.array([100.0, 1.0, 20.0]),
            np.array([50.0, 0.0, 15.0, 1.0]),
            np.array([100.0, 2.0, 10.0, 3.0]),
        )
    )
    return files


def test_every_format_round_trips_within_its_canonical_error(store: Store, tmp_path: Path) -> None:
    # Read back from the store, each model computes its loaded function on its own domain
    # within the canonical error stored with it.
    from circuitql.indexer.load import load_path
    from circuitql.indexer.pipeline import IndexConfig, model_config

    for path in _real_format_files(tmp_path):
        loaded = load_path(path)
        model = build_records(partial(load_path, path), path.stem)
        # The same network in another format is the same content: stored once, first name.
        name = store.write(model).model.name
        config = model_config(IndexConfig(), loaded).canonical
        x = probes(loaded.graph, config)
        error = output_error(loaded.graph.evaluate(x), stored_graph(store, name).evaluate(x), x)
        assert model.canonical_error is not None and model.canonical_error < 1e-3, path.name
        assert error == pytest.approx(model.canonical_error, abs=1e-12), path.name

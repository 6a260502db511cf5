"""The built-in library: every entry parses, compiles, documents itself, and its hand-wired
reference network computes what its EXPECT says."""

from __future__ import annotations

import numpy as np
import pytest

from circuitql.errors import CircuitQLError
from circuitql.graph import NeuronGraph
from circuitql.indexer.canonical import canonicalize
from circuitql.indexer.signature import signatures
from circuitql.language import (
    PUBLIC_NAMES,
    CircuitPattern,
    Library,
    MatchQuery,
    builtin_library,
    compile_query,
    expand,
    reference_network,
)
from circuitql.language.pattern import CoefKind, Role, constraints_hold

LIBRARY = builtin_library()
PROBES = 256


def test_every_public_name_is_in_the_library() -> None:
    assert set(PUBLIC_NAMES) <= set(LIBRARY.names)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_match_works_with_inputs_left_free(name: str) -> None:
    query = compile_query(f"MATCH {name}")
    assert isinstance(query, MatchQuery)
    assert query.pattern.name == name
    assert list(expand(query.pattern, max_repeat=4))


@pytest.mark.parametrize("name", LIBRARY.names)
def test_entry_is_documented_and_prints_as_its_definition(name: str) -> None:
    doc = LIBRARY.definition(name).doc
    assert doc and len(doc.split()) >= 8, f"{name} needs a docstring saying what and whence"
    text = LIBRARY.text(name)
    assert text.startswith('"""') and f"CIRCUIT {name}" in text


@pytest.mark.parametrize("name", LIBRARY.names)
def test_reference_network_satisfies_expect(name: str) -> None:
    pattern = LIBRARY.pattern(name)
    example = LIBRARY.example(name)
    reference = pattern.reference
    assert reference is not None, f"{name} has no EXPECT"
    rng = np.random.default_rng(sum(map(ord, name)))
    x = reference.probes(rng, PROBES, example.params)
    assert x.shape == (PROBES, len(pattern.inputs))
    np.testing.assert_allclose(
        example.graph.evaluate(x), reference(x, example.params), atol=1e-6, err_msg=name
    )


def test_is_even_is_x_mod_2_on_the_integers_below_16() -> None:
    graph = reference_network("is_even")
    x = np.arange(16.0)[:, None]
    np.testing.assert_array_equal(graph.evaluate(x)[:, 0], np.arange(16) % 2)
    assert LIBRARY.example("is_even").params == {"fold[1].c": 8.0}
    probes = LIBRARY.pattern("is_even").reference.probes(  # type: ignore[union-attr]
        np.random.default_rng(1), 100, {"fold[1].c": 8.0}
    )
    assert probes.min() >= 0 and probes.max() <= 15 and np.all(probes == np.round(probes))


@pytest.mark.parametrize("name", LIBRARY.names)
def test_example_parameters_satisfy_where(name: str) -> None:
    pattern = LIBRARY.pattern(name)
    params = dict(LIBRARY.example(name).params)
    if isinstance(pattern, CircuitPattern) and set(pattern.params) <= set(params):
        assert constraints_hold(pattern.where, params)


def test_reference_networks_are_neuron_graphs_in_source_coordinates() -> None:
    graph = reference_network("min_skip")
    assert isinstance(graph, NeuronGraph)
    assert [u.id for u in graph.inputs] == ["input:0", "input:1"]
    assert [u.id for u in graph.outputs] == ["y"]
    assert graph["y"].inputs == {"input:0": 1.0, "d": -1.0}
    assert [u.id for u in reference_network("detector_pair").outputs] == ["p", "n"]
    # The inner minima are linear, so the reference network has no neurons for them.
    assert {u.id for u in reference_network("min4").hidden} == {"d1", "d2", "d3"}


def _check_against_canonical(
    pattern: CircuitPattern, graph: NeuronGraph, names: dict[str, str]
) -> None:
    """The pattern's units, under ``names``, are the canonical network's: same edges, same
    weight ratios, and signatures the constraints admit."""
    canon = canonicalize(graph).graph
    sigs = signatures(canon)
    ids = {n: f"input:{i}" for i, n in enumerate(pattern.inputs)}
    for unit in pattern.units:
        uid = ids.get(unit.name) or names.get(unit.name, unit.name)
        assert unit.constraint.admits(sigs[uid]), (unit.name, sigs[uid].token)
        if unit.role is Role.INPUT:
            continue
        got = canon[uid].inputs
        want = {ids.get(s) or names.get(s, s): c for s, c in unit.inputs}
        assert set(want) == set(got), unit.name
        exact = [s for s, c in want.items() if c.kind is CoefKind.EXACT]
        if exact:
            a = np.array([want[s].value for s in exact])
            b = np.array([got[s] for s in exact])
            np.testing.assert_allclose(a * (b[0] / a[0]), b, atol=1e-9, err_msg=unit.name)


@pytest.mark.parametrize(
    "name", [n for n in LIBRARY.names if isinstance(LIBRARY.pattern(n), CircuitPattern)]
)
def test_patterns_are_in_the_coordinates_of_the_canonical_form(name: str) -> None:
    pattern = LIBRARY.pattern(name)
    assert isinstance(pattern, CircuitPattern)
    _check_against_canonical(pattern, LIBRARY.example(name).graph, {})


def test_unrolled_is_even_is_the_canonical_parity_network() -> None:
    *_, five_folds = expand(LIBRARY.pattern("is_even"), max_repeat=4)
    names = {f"fold[{i}].{u}": f"{u}{i}" for i in range(1, 6) for u in "pn"}
    _check_against_canonical(five_folds, reference_network("is_even"), names)


def test_show_circuits_filters_by_glob() -> None:
    assert LIBRARY.matching("min*") == ("min", "min4", "min_skip", "min_sym", "min_two_layer")
    assert LIBRARY.matching(None) == LIBRARY.names


def test_library_files_hold_definitions_only() -> None:
    with pytest.raises(CircuitQLError, match="CIRCUIT definitions only"):
        Library.from_texts({"bad.cql": "CIRCUIT f(x) -> y { y = x }\nMATCH f"})


def test_a_circuit_without_example_says_so() -> None:
    lib = Library.from_texts({"x.cql": "CIRCUIT f(x) -> y { y = relu(x) }"})
    with pytest.raises(CircuitQLError, match="has no EXAMPLE"):
        lib.example("f")


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("EXAMPLE { y = relu(x - ?c) }", "EXAMPLE weights are numbers"),
        ("EXAMPLE { h = relu(x) }", "EXAMPLE does not define output y"),
        ("EXAMPLE WITH k = 1 { y = relu(x) }", "EXAMPLE sets k, which is not a parameter"),
        ("EXAMPLE { y = relu(x, ...) }", "written out with their weights"),
        ("EXAMPLE { y = abs(x) }", "written out with their weights"),
    ],
)
def test_bad_examples_are_reported(example: str, message: str) -> None:
    lib = Library.from_texts({"x.cql": f"CIRCUIT f(x) -> y {{ y = relu(x) }} {example}"})
    with pytest.raises(CircuitQLError, match=message):
        lib.example("f")

"""Signatures, tokens and the token language round trip."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql.grammar.token_parser import TokenSyntaxError, parse_network, parse_token
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import canonicalize
from circuitql.indexer.signature import layer_words, network_string, signatures
from circuitql.records import BiasClass, Signature
from tests.indexer.random_graphs import layered_graphs


def _abs_net() -> NeuronGraph:
    return NeuronGraph(
        (
            Unit("input:0", UnitKind.INPUT),
            Unit("fc:0", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": 0.9192}),
            Unit("fc:1", UnitKind.HIDDEN, Activation.RELU, 0.0, {"input:0": -1.0035}),
            Unit(
                "out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {"fc:0": 1.0872, "fc:1": 0.9957}
            ),
        )
    )


def test_abs_network_string() -> None:
    canon = canonicalize(_abs_net()).graph
    assert network_string(canon, signatures(canon)) == (
        "[x>(+1-1)] [relu(+0-1)b0>(+1-0) relu(+1-0)b0>(+1-0)] [y(+2-0)b0]"
    )


def test_insignificant_weights_do_not_change_tokens() -> None:
    noisy = NeuronGraph(
        (
            *_abs_net().units[:3],
            Unit(
                "out:0",
                UnitKind.OUTPUT,
                Activation.IDENTITY,
                0.001,
                {"fc:0": 1.0, "fc:1": 1.0, "input:0": -0.02},
            ),
        )
    )
    assert signatures(noisy)["out:0"].token == "y(+2-0)b0"
    assert signatures(noisy, significance=0.01)["out:0"].token == "y(+2-1)b0"


def test_magnitudes_are_sorted_ratios() -> None:
    x = Unit("input:0", UnitKind.INPUT)
    x1 = Unit("input:1", UnitKind.INPUT)
    y = Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, -0.5, {"input:0": 0.5, "input:1": -2.0})
    sig = signatures(NeuronGraph((x, x1, y)))["out:0"]
    assert sig == Signature(
        UnitKind.OUTPUT, Activation.IDENTITY, 1, 1, BiasClass.NEGATIVE, 0, 0, (1.0, 0.25)
    )


def test_tokens_are_short() -> None:
    sig = Signature(UnitKind.HIDDEN, Activation.LEAKY_RELU, 64, 64, BiasClass.NEGATIVE, 64, 64)
    assert len(sig.token) < 40


@settings(max_examples=80, deadline=None)
@given(graph=layered_graphs())
def test_every_network_string_parses_back_to_its_signatures(graph: NeuronGraph) -> None:
    canon = canonicalize(graph).graph
    sigs = signatures(canon)
    parsed = parse_network(network_string(canon, sigs))
    by_layer: dict[int, Counter[Signature]] = {}
    for unit in canon.units:
        by_layer.setdefault(canon.layers[unit.id], Counter())[sigs[unit.id].coarse] += 1
    assert [Counter({s: n for n, s in layer}) for layer in parsed] == [
        by_layer.get(i, Counter()) for i in range(len(layer_words(canon, sigs)))
    ]


@given(
    kind=st.sampled_from(list(UnitKind)),
    activation=st.sampled_from(list(Activation)),
    counts=st.tuples(*[st.integers(0, 500)] * 4),
    bias=st.sampled_from(list(BiasClass)),
)
def test_every_token_parses_back(
    kind: UnitKind, activation: Activation, counts: tuple[int, int, int, int], bias: BiasClass
) -> None:
    n_pos, n_neg, out_pos, out_neg = counts
    if kind is UnitKind.INPUT:
        sig = Signature(kind, Activation.IDENTITY, 0, 0, BiasClass.ZERO, out_pos, out_neg)
    elif kind is UnitKind.OUTPUT:
        sig = Signature(kind, Activation.IDENTITY, n_pos, n_neg, bias, 0, 0)
    else:
        sig = Signature(kind, activation, n_pos, n_neg, bias, out_pos, out_neg)
    assert parse_token(sig.token) == sig


def test_bad_token_is_a_user_error() -> None:
    for text in ["relu(+1-1)b>(+1-0)", "conv(+1-1)b0>(+1-0)", "[x>(+1-0)"]:
        try:
            parse_network(text) if text.startswith("[") else parse_token(text)
        except TokenSyntaxError as err:
            assert "token language" in str(err)
        else:
            raise AssertionError(f"{text!r} parsed")


def test_random_layer_words_are_sorted() -> None:
    rng = np.random.default_rng(0)
    units = [Unit(f"input:{i}", UnitKind.INPUT) for i in range(3)]
    units += [
        Unit(
            f"fc:{j}",
            UnitKind.HIDDEN,
            Activation.RELU,
            float(rng.normal()),
            {f"input:{i}": float(rng.normal()) for i in range(3)},
        )
        for j in range(8)
    ]
    units.append(
        Unit("out:0", UnitKind.OUTPUT, Activation.IDENTITY, 0.0, {f"fc:{j}": 1.0 for j in range(8)})
    )
    graph = NeuronGraph(tuple(units))
    for word in layer_words(graph, signatures(graph)):
        assert word == sorted(word)

"""Hand-built indexed models for the store tests.

They are written out directly rather than produced by the indexer, so a store test fails only
for a store reason. Each model is a small dense input -> ReLU -> output network whose weights
scale with ``scale``: different scales give different contents (and hashes), and the weight
signs give the hidden neurons a mix of tokens, some shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from circuitql.graph import Activation, UnitKind
from circuitql.indexer.signature import format_layer
from circuitql.records import BiasClass, EdgeRecord, IndexedModel, NeuronRecord, Signature
from circuitql.store.base import Store


def _sign_class(value: float) -> BiasClass:
    if value == 0.0:
        return BiasClass.ZERO
    return BiasClass.POSITIVE if value > 0 else BiasClass.NEGATIVE


def _signature(
    kind: UnitKind,
    activation: Activation,
    incoming: list[float],
    bias: float,
    outgoing: list[float],
) -> Signature:
    top = max((abs(w) for w in incoming), default=0.0)
    return Signature(
        kind=kind,
        activation=activation,
        n_pos=sum(w > 0 for w in incoming),
        n_neg=sum(w < 0 for w in incoming),
        bias_class=_sign_class(bias),
        out_pos=sum(w > 0 for w in outgoing),
        out_neg=sum(w < 0 for w in outgoing),
        magnitudes=tuple(sorted((round(abs(w) / top, 2) for w in incoming), reverse=True)),
    )


def fake_model(
    name: str = "m",
    *,
    scale: float = 1.0,
    n_inputs: int = 2,
    hidden: int = 3,
    meta: Mapping[str, Any] | None = None,
    normal_form: Mapping[str, Any] | None = None,
    canonical_error: float | None = 1e-7,
) -> IndexedModel:
    """A three-layer model; its content (and hash) depends on everything but ``name``."""
    first = [
        [
            scale * (1 + 0.25 * i + 0.1 * j) * (-1 if (i + j) % 3 == 0 else 1)
            for i in range(n_inputs)
        ]
        for j in range(hidden)
    ]
    hidden_bias = [scale * 0.5 * (j - 1) for j in range(hidden)]
    second = [scale * (1.0 - 0.7 * j) for j in range(hidden)]

    inputs = [
        NeuronRecord(
            uid=f"input:{i}",
            layer=0,
            signature=_signature(
                UnitKind.INPUT, Activation.IDENTITY, [], 0.0, [row[i] for row in first]
            ),
            bias=0.0,
            members=((f"input:{i}", 1.0),),
        )
        for i in range(n_inputs)
    ]
    hiddens = [
        NeuronRecord(
            uid=f"fc1:{j}",
            layer=1,
            signature=_signature(
                UnitKind.HIDDEN, Activation.RELU, first[j], hidden_bias[j], [second[j]]
            ),
            bias=hidden_bias[j],
            # The first hidden neuron stands for a merged duplicate, as canonicalisation makes.
            members=((f"fc1:{j}", 1.0), (f"fc1:{hidden}", 0.5)) if j == 0 else ((f"fc1:{j}", 1.0),),
        )
        for j in range(hidden)
    ]
    output = NeuronRecord(
        uid="fc2:0",
        layer=2,
        signature=_signature(UnitKind.OUTPUT, Activation.IDENTITY, second, 0.0, []),
        bias=0.0,
        members=(("fc2:0", 1.0),),
    )
    edges = [
        EdgeRecord(f"input:{i}", f"fc1:{j}", first[j][i])
        for j in range(hidden)
        for i in range(n_inputs)
    ] + [EdgeRecord(f"fc1:{j}", "fc2:0", second[j]) for j in range(hidden)]
    layers = [inputs, hiddens, [output]]
    content = repr((scale, n_inputs, hidden)).encode()
    return IndexedModel(
        name=name,
        content_hash=hashlib.sha256(content).hexdigest(),
        source=f"fake://{name}",
        n_inputs=n_inputs,
        n_outputs=1,
        network_string=" ".join(format_layer(sorted(n.token for n in layer)) for layer in layers),
        neurons=(*inputs, *hiddens, output),
        edges=tuple(edges),
        canonical_log=(f"merged fc1:{hidden} into fc1:0 (scale 0.5)",),
        meta=dict(meta) if meta is not None else {"seed": 7, "tags": ["fake", "small"]},
        normal_form=dict(normal_form) if normal_form is not None else {},
        canonical_error=canonical_error,
    )


def edges_of(store: Store, model: str) -> list[EdgeRecord]:
    """A stored model's edges as records, in stored order (neuron by neuron)."""
    return [
        EdgeRecord(src, dst, weight)
        for dst, incoming in store.inputs(model).items()
        for src, weight in incoming.items()
    ]

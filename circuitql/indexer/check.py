"""``circuitql check FILE``: does circuitql read this file as the network it is?

Three functions are compared on the same random inputs over the model's domain: the file as
its own format defines it (ONNX's reference evaluator running the file, or a .nnet file's
semantics from its raw numbers), the graph circuitql loaded, and the canonical graph it would
index. Each pair gets its error (the largest output difference over the largest output) and
how often the decision agrees (the argmax of the outputs, and the argmin, which is what
ACAS Xu's advisories are). Nothing is written anywhere.

A weights file with a JSON config is run by torch as its config describes it, layer by
layer (``torch.nn.functional``: the weight matrices read as the loader reads them, the
inputs concatenated, the residuals added, torch's own activations), apart from the affine
algebra that builds the loaded graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import Activation
from circuitql.indexer.canonical import Config
from circuitql.indexer.fidelity import faithful_canonical, output_error, probes
from circuitql.indexer.files import WEIGHTS_SUFFIXES
from circuitql.indexer.load import LoadedModel, load_path
from circuitql.indexer.pipeline import IndexConfig, model_config

PROBES = 10_000


@dataclass(frozen=True)
class Comparison:
    """One function against another on the probes."""

    compared: str
    error: float
    argmax_agreement: float | None  # None with a single output: no decision to agree on
    argmin_agreement: float | None

    def to_json(self) -> dict[str, Any]:
        """One entry of the report's ``comparisons`` under ``--json``."""
        return {
            "compared": self.compared,
            "error": self.error,
            "argmax_agreement": self.argmax_agreement,
            "argmin_agreement": self.argmin_agreement,
        }


@dataclass(frozen=True)
class CheckReport:
    """What ``circuitql check`` found. ``loaded_units`` and ``canonical_units`` count hidden
    units only; ``canonical_log`` is every canonicalization step, of which only the
    tightenings of ``prune_tol`` are shown."""

    source: str
    inputs: int
    outputs: int
    loaded_units: int
    canonical_units: int
    domain: Domain | None
    probes: int
    comparisons: tuple[Comparison, ...]
    canonical_log: tuple[str, ...]
    remarks: tuple[str, ...] = ()  # how to read the comparisons (a channel graph's)

    def to_json(self) -> dict[str, Any]:
        """The report for ``--json``, the log cut down to its tightenings (``tightened``)."""
        return {
            "source": self.source,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "loaded_units": self.loaded_units,
            "canonical_units": self.canonical_units,
            "domain": None if self.domain is None else self.domain.to_json(),
            "probes": self.probes,
            "comparisons": [c.to_json() for c in self.comparisons],
            "tightened": [line for line in self.canonical_log if line.startswith("tighten")],
            "remarks": list(self.remarks),
        }

    def text(self) -> str:
        """The report for people: one line per comparison, then each tightening; without a
        domain it suggests ``--domain``."""
        where = (
            "[-1, 1] for every input (no domain: give --domain for the inputs' real range)"
            if self.domain is None
            else self.domain.text()
        )
        lines = [
            f"{self.source}: {self.inputs} inputs, {self.outputs} outputs; "
            f"{self.loaded_units} units loaded, {self.canonical_units} canonical",
            *self.remarks,
            f"{self.probes:,} random inputs over {where}:",
        ]
        width = max(len(c.compared) for c in self.comparisons)
        for c in self.comparisons:
            decisions = (
                ""
                if c.argmax_agreement is None
                else (f"  argmax agrees {c.argmax_agreement:.2%}, argmin {c.argmin_agreement:.2%}")
            )
            lines.append(f"  {c.compared.ljust(width)}  error {c.error:.1e}{decisions}")
        lines += [f"  {line}" for line in self.canonical_log if line.startswith("tighten")]
        return "\n".join(lines)


def check_file(
    path: str | Path, config: Config | None = None, n_probes: int = PROBES
) -> CheckReport:
    """Load ``path``, canonicalize it as indexing would, and compare the three functions."""
    path = Path(path)
    loaded = load_path(path)
    config = model_config(IndexConfig(config or Config()), loaded).canonical
    canon, _error = faithful_canonical(loaded.graph, config, loaded.source)
    x = probes(loaded.graph, config, n_probes)
    with np.errstate(over="ignore", invalid="ignore"):
        graph_out = loaded.graph.evaluate(x)
        canonical_out = canon.graph.evaluate(x)
        comparisons = [
            _compare(f"loaded graph vs {label}", expected, actual, x)
            for label, expected, actual in _against_reference(path, loaded, x, graph_out)
        ]
    comparisons.append(_compare("canonical graph vs loaded graph", graph_out, canonical_out, x))
    return CheckReport(
        loaded.source,
        len(loaded.graph.inputs),
        len(loaded.graph.outputs),
        len(loaded.graph.hidden),
        len(canon.graph.hidden),
        config.domain,
        len(x),
        tuple(comparisons),
        tuple(str(s) for s in canon.steps),
        _channel_remarks(loaded.meta),
    )


def _channel_remarks(meta: Any) -> tuple[str, ...]:
    """What a convolutional network's comparisons mean: its graph is the network on uniform
    images (channels.py), and zero padding makes the real borders differ from it."""
    channels = next((m["channels"] for m in meta.values() if "channels" in m), None)
    if channels is None:
        return ()
    remarks = [
        "read as a channel graph: one unit per channel, the network on uniform images (each "
        "input channel constant), which the reference is run on"
    ]
    if channels["border_effects"]:
        remarks.append(
            f"zero padding in {', '.join(channels['border_effects'])} makes the borders of "
            "those images differ from the uniform maps the graph stands for: the reference's "
            "error includes them"
        )
    return tuple(remarks)


def _compare(
    compared: str, expected: np.ndarray, actual: np.ndarray, inputs: np.ndarray
) -> Comparison:
    if expected.shape[1] < 2:
        return Comparison(compared, output_error(expected, actual, inputs), None, None)
    return Comparison(
        compared,
        output_error(expected, actual, inputs),
        float(np.mean(expected.argmax(1) == actual.argmax(1))),
        float(np.mean(expected.argmin(1) == actual.argmin(1))),
    )


def _against_reference(
    path: Path, loaded: LoadedModel, x: np.ndarray, graph_out: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The file's own outputs beside the loaded graph's, where its format defines them apart
    from circuitql's graph."""
    suffix = path.suffix.lower()
    if suffix in WEIGHTS_SUFFIXES:
        return [("torch running the config", torch_outputs(path, x), graph_out)]
    if suffix == ".nnet":
        from circuitql.indexer.nnet_loader import read_nnet

        return [(".nnet semantics", read_nnet(path).evaluate(x), graph_out)]
    if suffix != ".onnx":
        return []
    blocks = loaded.meta.get("onnx", {}).get("inputs", [])
    reference = onnx_outputs(path, x, {b["name"] for b in blocks if b.get("channels")})
    if reference is None:
        return []
    final = loaded.meta.get("onnx", {}).get("output_activation")
    if final is None:
        return [("ONNX reference evaluator", reference, graph_out)]
    # After a final Softmax the file gives probabilities, the graph the scores before them:
    # both as log-probabilities, which fix the scores up to a constant per input.
    if final == "softmax":
        reference = np.log(np.maximum(reference, 1e-300))
    return [
        (
            "ONNX reference evaluator (log-probabilities)",
            _log_softmax(reference),
            _log_softmax(graph_out),
        )
    ]


def onnx_outputs(
    path: Path, x: np.ndarray, channel_inputs: set[str] | None = None
) -> np.ndarray | None:
    """The file run by onnx's reference evaluator, each graph input fed its block of the
    probes (float32, as the file's weights are), all outputs side by side; None when an
    input has no batch dimension to run the probes in at once. An input in
    ``channel_inputs`` is images read as channels (channels.py): each probe is the uniform
    image whose channels take its values."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(path))
    constants = {tensor.name for tensor in model.graph.initializer}
    blocks, first, batch = {}, 0, len(x)
    for graph_input in [i for i in model.graph.input if i.name not in constants]:
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) < 2:
            return None
        features = [d.dim_value for d in dims][1:]
        if dims[0].dim_value > 1:
            # A fixed batch may be baked into the graph (a Reshape to (25, -1)): run the
            # probes in batches of that size, the last one padded.
            batch = dims[0].dim_value
        else:
            dims[0].dim_param = "N"  # every probe in one run
        uniform = graph_input.name in (channel_inputs or set())
        width = features[0] if uniform else int(np.prod(features))
        blocks[graph_input.name] = (x[:, first : first + width], features, uniform)
        first += width
    evaluator = ReferenceEvaluator(model)
    parts = []
    for start in range(0, len(x), batch):
        rows = min(batch, len(x) - start)
        feeds = {}
        for name, (block, features, uniform) in blocks.items():
            chunk = block[start : start + rows]
            chunk = np.concatenate([chunk, np.zeros((batch - rows, chunk.shape[1]))])
            if uniform:
                spread = (batch, features[0]) + (1,) * (len(features) - 1)
                chunk = np.broadcast_to(chunk.reshape(spread), (batch, *features))
            feeds[name] = chunk.reshape(batch, *features).astype(np.float32)
        outputs = evaluator.run(None, feeds)
        parts.append(
            np.concatenate(
                [np.asarray(o, dtype=np.float64).reshape(batch, -1)[:rows] for o in outputs], axis=1
            )
        )
    return np.concatenate(parts)


def torch_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """A weights file run by torch as its JSON config describes it: each layer
    ``activation(W @ concat(reads) + b + sum(adds))`` in float64, the outputs side by side.
    Only the choice of tensors (names, slices, orientation) is shared with the loader."""
    import torch
    from torch.nn import functional

    from circuitql.indexer.config_loader import (
        NETWORK_INPUT,
        find_sidecar,
        layer_bias,
        layer_weight,
        parse_config,
        read_weights,
    )

    tensors = read_weights(path)
    sidecar = find_sidecar(path)
    assert sidecar is not None  # the file loaded, so its config was found
    config = parse_config(sidecar)
    values = {NETWORK_INPUT: torch.from_numpy(np.asarray(x, dtype=np.float64))}
    where = str(path)
    for layer in config.layers:
        inputs = torch.cat([values[name] for name in layer.reads], dim=1)
        weight = layer_weight(layer, tensors, inputs.shape[1], where, [])
        bias = layer_bias(layer, tensors, where)
        pre = functional.linear(
            inputs,
            torch.from_numpy(np.array(weight, dtype=np.float64)),
            None if bias is None else torch.from_numpy(np.array(bias, dtype=np.float64)),
        )
        for name in layer.adds:
            pre = pre + values[name]
        values[layer.name] = _torch_activation(layer.activation, pre, layer.alpha)
    outputs = torch.cat([values[name] for name in config.outputs], dim=1)
    return np.asarray(outputs.numpy(), dtype=np.float64)


def _torch_activation(activation: Activation, z: Any, alpha: float) -> Any:
    """torch's own implementation of each activation, not the graph's."""
    import torch
    from torch.nn import functional

    return {
        Activation.RELU: functional.relu,
        Activation.LEAKY_RELU: lambda t: functional.leaky_relu(t, alpha),
        Activation.SIGMOID: torch.sigmoid,
        Activation.TANH: torch.tanh,
        Activation.GELU: functional.gelu,
        Activation.IDENTITY: lambda t: t,
    }[activation](z)


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))

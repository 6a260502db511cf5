"""Write networks to every format circuitql reads, from one description: the way back from a
neuron graph to a file.

A matched circuit saved by ``Match.save``, the demo zoo, the zoo builder and the loader tests
all need a network as a state_dict + config, a safetensors file + config and an ONNX file.
Describing it once (``MLPSpec``) and writing it with each format's own library keeps those
files real: a loader test that reads them reads what torch, safetensors and onnx wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.config_loader import CONFIG_FORMAT, NETWORK_INPUT
from circuitql.indexer.files import model_stem

DEFAULT_NEGATIVE_SLOPE = 0.01  # the config loader's leaky_relu slope when a layer names none

PREVIOUS = "<previous>"


@dataclass(frozen=True)
class DenseLayer:
    """``activation(weight @ concat(reads) + bias)``; ``reads`` names earlier layers or
    ``"input"``; by default a layer reads the one before it."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    activation: str = "relu"
    reads: tuple[str, ...] = (PREVIOUS,)


@dataclass(frozen=True)
class MLPSpec:
    """A network as dense layers, the last one its outputs: the one description ``save``
    writes in every format."""

    n_inputs: int
    layers: tuple[DenseLayer, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)
    domain: Domain | None = None  # where the inputs live (the training data's box)

    def resolved_reads(self) -> list[tuple[str, ...]]:
        """Each layer's ``reads``, ``PREVIOUS`` replaced by the layer before it (the network
        input for the first)."""
        previous, out = NETWORK_INPUT, []
        for layer in self.layers:
            out.append(tuple(previous if r == PREVIOUS else r for r in layer.reads))
            previous = layer.name
        return out

    def config(self) -> dict[str, Any]:
        """The JSON config the config loader reads beside a weights-only file: layer order,
        activations and reads, which a state_dict or safetensors file does not hold."""
        layers = [
            {"name": layer.name, "activation": layer.activation, "input": list(reads)}
            for layer, reads in zip(self.layers, self.resolved_reads(), strict=True)
        ]
        config = {
            "format": CONFIG_FORMAT,
            "inputs": self.n_inputs,
            "layers": layers,
            "meta": dict(self.meta),
        }
        if self.domain is not None:
            config["domain"] = self.domain.to_json()
        return config

    def tensors(self) -> dict[str, np.ndarray]:
        """``<layer>.weight`` and ``<layer>.bias`` as float32, as a state_dict or a safetensors
        file holds them."""
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            out[f"{layer.name}.weight"] = np.asarray(layer.weight, dtype=np.float32)
            out[f"{layer.name}.bias"] = np.asarray(layer.bias, dtype=np.float32)
        return out

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Reference forward pass in plain numpy, independent of every loader."""
        from circuitql.graph import Activation

        values = {NETWORK_INPUT: np.asarray(x, dtype=np.float64)}
        for layer, reads in zip(self.layers, self.resolved_reads(), strict=True):
            inp = np.concatenate([values[r] for r in reads], axis=1)
            pre = inp @ np.asarray(layer.weight, dtype=np.float64).T + layer.bias
            act = "identity" if layer.activation == "linear" else layer.activation
            values[layer.name] = Activation(act).apply(pre)
        return values[self.layers[-1].name]


def spec_from_graph(
    graph: NeuronGraph, meta: Mapping[str, Any] | None = None, keep_ids: bool = False
) -> MLPSpec:
    """A neuron graph as dense layers, so that it can be written to a file.

    Files describe a network layer by layer, a ``NeuronGraph`` unit by unit. Hidden units
    become layers by depth (split by activation where one depth mixes them), outputs form the
    last layer, and every layer reads each earlier layer it has an edge from: skip
    connections become extra ``reads``. ``meta["units"]`` records which graph unit each new
    source id (``"fc1:0"``) stands for. With ``keep_ids`` the graph's ids already name layers
    and rows (``"fc1:0"``, as in a planted host whose ground truth uses them): they are kept.
    """
    position: dict[str, tuple[str, int]] = {
        u.id: (NETWORK_INPUT, i) for i, u in enumerate(graph.inputs)
    }
    widths: dict[str, int] = {NETWORK_INPUT: len(graph.inputs)}
    layers = _layers_by_id(graph) if keep_ids else _layers_by_depth(graph)
    layer_names = [NETWORK_INPUT] + [name for name, _ in layers]
    dense = []
    for name, units in layers:
        _check_writable(graph, name, units)
        reads = sorted(
            {position[src][0] for u in units for src in u.inputs} or {NETWORK_INPUT},
            key=layer_names.index,
        )
        offsets = dict(zip(reads, np.cumsum([0] + [widths[r] for r in reads]), strict=False))
        weight = np.zeros((len(units), sum(widths[r] for r in reads)))
        for row, unit in enumerate(units):
            for src, w in unit.inputs.items():
                layer, col = position[src]
                weight[row, offsets[layer] + col] = w
            position[unit.id] = (name, row)
        widths[name] = len(units)
        dense.append(
            DenseLayer(
                name,
                weight,
                np.array([u.bias for u in units], dtype=float),
                units[0].activation.value,
                tuple(reads),
            )
        )
    units_meta = (
        {}
        if keep_ids
        else {
            "units": {
                f"{position[u.id][0]}:{position[u.id][1]}": u.id
                for u in graph.units
                if u.kind is not UnitKind.INPUT
            }
        }
    )
    return MLPSpec(len(graph.inputs), tuple(dense), {**(meta or {}), **units_meta})


Layers = list[tuple[str, list[Unit]]]


def _layers_by_depth(graph: NeuronGraph) -> Layers:
    groups: dict[tuple[int, Activation, float], list[Unit]] = {}
    for unit in sorted(graph.hidden, key=lambda u: graph.layers[u.id]):
        groups.setdefault((graph.layers[unit.id], unit.activation, unit.alpha), []).append(unit)
    layers = [(f"fc{i + 1}", units) for i, units in enumerate(groups.values())]
    return [*layers, ("out", list(graph.outputs))]


def _layers_by_id(graph: NeuronGraph) -> Layers:
    """Layers named by the ids' module part, rows in id order; ids must number each layer's
    rows 0..n-1 (the rows a file gives them back under)."""
    layers: dict[str, list[Unit]] = {}
    for unit in graph.units:
        if unit.kind is not UnitKind.INPUT:
            layers.setdefault(unit.id.rsplit(":", 1)[0], []).append(unit)
    for name, units in layers.items():
        units.sort(key=lambda u: int(u.id.rsplit(":", 1)[1]))
        if [u.id for u in units] != [f"{name}:{row}" for row in range(len(units))]:
            raise ValueError(f"the ids of layer {name!r} do not number rows 0..{len(units) - 1}")
    if [u.id for u in graph.inputs] != [f"{NETWORK_INPUT}:{i}" for i in range(len(graph.inputs))]:
        raise ValueError(f"input ids are not {NETWORK_INPUT}:0..{len(graph.inputs) - 1}")
    return list(layers.items())


def _check_writable(graph: NeuronGraph, layer: str, units: Sequence[Unit]) -> None:
    """What a dense layer of a config file cannot say: one activation per layer, the loader's
    default leaky slope, outputs that feed nothing."""
    if not units:
        raise ValueError("the graph has no output units")
    if len({(u.activation, u.alpha) for u in units}) > 1:
        raise ValueError(
            f"the outputs mix activations ({', '.join(u.id for u in units)}); a "
            "file's output layer has one"
        )
    for unit in units:
        if unit.activation is Activation.LEAKY_RELU and unit.alpha != DEFAULT_NEGATIVE_SLOPE:
            raise ValueError(
                f"unit {unit.id!r} has leaky slope {unit.alpha}; files written "
                f"here use {DEFAULT_NEGATIVE_SLOPE}"
            )
        if layer == "out" and graph.successors[unit.id]:
            raise ValueError(
                f"output {unit.id!r} feeds other units; only the last layer of "
                "a file is read as output"
            )


def save(spec: MLPSpec, path: Path) -> Path:
    """Write ``spec`` in the format named by ``path``'s suffix (plus a JSON config beside
    weights-only files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".onnx":
        _save_onnx(spec, path)
        return path
    tensors = spec.tensors()
    if suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(tensors, str(path))
    elif suffix in (".pt", ".pth"):
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, str(path))
    else:
        raise ValueError(f"unknown format {suffix!r}")
    path.with_name(model_stem(path) + ".json").write_text(json.dumps(spec.config(), indent=2))
    return path


ONNX_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "leaky_relu": "LeakyRelu"}


def _save_onnx(spec: MLPSpec, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    for layer, reads in zip(spec.layers, spec.resolved_reads(), strict=True):
        source = _onnx_concat(nodes, layer.name, reads)
        for part, value in (("weight", layer.weight), ("bias", layer.bias)):
            inits.append(
                numpy_helper.from_array(np.asarray(value, np.float32), f"{layer.name}.{part}")
            )
        pre = layer.name if layer.activation in ("identity", "linear") else f"{layer.name}.pre"
        nodes.append(
            helper.make_node(
                "Gemm",
                [source, f"{layer.name}.weight", f"{layer.name}.bias"],
                [pre],
                name=layer.name,
                transB=1,
            )
        )
        if pre != layer.name:
            nodes.append(
                helper.make_node(
                    ONNX_ACTIVATIONS[layer.activation],
                    [pre],
                    [layer.name],
                    name=f"{layer.name}.act",
                )
            )
    graph = helper.make_graph(
        nodes,
        "circuitql",
        [helper.make_tensor_value_info(NETWORK_INPUT, TensorProto.FLOAT, ["N", spec.n_inputs])],
        [
            helper.make_tensor_value_info(
                spec.layers[-1].name, TensorProto.FLOAT, ["N", len(spec.layers[-1].bias)]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _onnx_concat(nodes: list[Any], name: str, reads: Sequence[str]) -> str:
    if len(reads) == 1:
        return reads[0]
    from onnx import helper

    out = f"{name}.in"
    nodes.append(helper.make_node("Concat", list(reads), [out], name=f"{name}.cat", axis=1))
    return out

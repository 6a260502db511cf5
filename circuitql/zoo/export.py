"""Write small networks to every format circuitql reads, from one description.

The demo zoo, the zoo builder and the loader tests all need the same network as a torch
module, a state_dict + config, a safetensors file + config and an ONNX file. Describing it once
(``MLPSpec``) and writing it with each format's own library keeps those files real: a loader
test that reads them reads what torch, safetensors and onnx wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.indexer.config_loader import CONFIG_FORMAT, NETWORK_INPUT

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
    n_inputs: int
    layers: tuple[DenseLayer, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def resolved_reads(self) -> list[tuple[str, ...]]:
        previous, out = NETWORK_INPUT, []
        for layer in self.layers:
            out.append(tuple(previous if r == PREVIOUS else r for r in layer.reads))
            previous = layer.name
        return out

    def config(self) -> dict[str, Any]:
        layers = [
            {"name": layer.name, "activation": layer.activation, "input": list(reads)}
            for layer, reads in zip(self.layers, self.resolved_reads(), strict=True)
        ]
        return {"format": CONFIG_FORMAT, "inputs": self.n_inputs, "layers": layers,
                "meta": dict(self.meta)}

    def tensors(self) -> dict[str, np.ndarray]:
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
    path.with_name(path.name.split(".")[0] + ".json").write_text(
        json.dumps(spec.config(), indent=2)
    )
    return path


ONNX_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                    "leaky_relu": "LeakyRelu"}


def _save_onnx(spec: MLPSpec, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    for layer, reads in zip(spec.layers, spec.resolved_reads(), strict=True):
        source = _onnx_concat(nodes, layer.name, reads)
        for part, value in (("weight", layer.weight), ("bias", layer.bias)):
            inits.append(numpy_helper.from_array(np.asarray(value, np.float32),
                                                 f"{layer.name}.{part}"))
        pre = layer.name if layer.activation in ("identity", "linear") else f"{layer.name}.pre"
        nodes.append(helper.make_node("Gemm", [source, f"{layer.name}.weight",
                                               f"{layer.name}.bias"], [pre], name=layer.name,
                                      transB=1))
        if pre != layer.name:
            nodes.append(helper.make_node(ONNX_ACTIVATIONS[layer.activation], [pre],
                                          [layer.name], name=f"{layer.name}.act"))
    graph = helper.make_graph(
        nodes, "circuitql",
        [helper.make_tensor_value_info(NETWORK_INPUT, TensorProto.FLOAT, ["N", spec.n_inputs])],
        [helper.make_tensor_value_info(spec.layers[-1].name, TensorProto.FLOAT,
                                       ["N", len(spec.layers[-1].bias)])],
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

"""Load weights-only files (a torch state_dict or safetensors) with a small JSON config.

A weights file says nothing about how its tensors connect, so a sidecar names the layer order,
what each layer reads and which activation follows it. Keeping the architecture in plain JSON
(instead of a pickled module) is what lets circuitql load zoos from strangers without running
their code. The format is documented in ``docs/model-config.md``.

Sidecar lookup, first match wins: ``<stem>.json``, ``<stem>.config.json``, ``config.json`` in
the same folder.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain, DomainError
from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.affine import AffineVec, GraphBuilder, ShapeError

CONFIG_FORMAT = "circuitql-mlp"
NETWORK_INPUT = "input"
ACTIVATION_NAMES: dict[str, Activation] = {
    "relu": Activation.RELU,
    "leaky_relu": Activation.LEAKY_RELU,
    "sigmoid": Activation.SIGMOID,
    "tanh": Activation.TANH,
    "gelu": Activation.GELU,
    "identity": Activation.IDENTITY,
    "linear": Activation.IDENTITY,
    "none": Activation.IDENTITY,
}


@dataclass(frozen=True)
class LayerSpec:
    name: str
    activation: Activation
    reads: tuple[str, ...]
    adds: tuple[str, ...]
    alpha: float


@dataclass(frozen=True)
class ModelConfig:
    n_inputs: int
    layers: tuple[LayerSpec, ...]
    outputs: tuple[str, ...]
    meta: Mapping[str, Any]
    domain: Domain | None = None


def find_sidecar(weights: Path) -> Path:
    stem = weights.name.split(".")[0]
    candidates = [
        weights.with_name(f"{stem}.json"),
        weights.with_name(f"{stem}.config.json"),
        weights.with_name("config.json"),
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        "a weights-only file needs a JSON config naming its layers and activations",
        where=str(weights),
        fix=f"write {candidates[0].name} beside it, e.g. "
        '{"format": "circuitql-mlp", "inputs": 2, "layers": [{"name": "fc1", "activation": '
        '"relu"}, {"name": "fc2", "activation": "identity"}]} (see docs/model-config.md)',
    )


def parse_config(path: Path) -> ModelConfig:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read the config: {exc}", where=str(path),
                             fix="make it valid JSON (see docs/model-config.md)") from exc
    bad = _config_problem(raw)
    if bad:
        raise ModelLoadError(bad, where=str(path), fix="see docs/model-config.md for the format")
    layers: list[LayerSpec] = []
    previous = NETWORK_INPUT
    for entry in raw["layers"]:
        act_name = str(entry.get("activation", "identity")).lower()
        if act_name not in ACTIVATION_NAMES:
            raise ModelLoadError(
                f"layer {entry['name']!r} has unknown activation {act_name!r}",
                where=str(path),
                fix=f"use one of {', '.join(sorted(ACTIVATION_NAMES))}",
            )
        reads = entry.get("input", previous)
        reads = (reads,) if isinstance(reads, str) else tuple(reads)
        adds = entry.get("add", ())
        adds = (adds,) if isinstance(adds, str) else tuple(adds)
        layers.append(LayerSpec(entry["name"], ACTIVATION_NAMES[act_name], reads, adds,
                                float(entry.get("negative_slope", 0.01))))
        previous = entry["name"]
    known = {NETWORK_INPUT}
    for layer in layers:
        for ref in layer.reads + layer.adds:
            if ref not in known:
                raise ModelLoadError(
                    f"layer {layer.name!r} reads {ref!r}, which is not an earlier layer",
                    where=str(path),
                    fix=f"list layers in order; names so far: {', '.join(sorted(known))}",
                )
        known.add(layer.name)
    outputs = raw.get("outputs", [layers[-1].name])
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    for out in outputs:
        if out not in known:
            raise ModelLoadError(f"output {out!r} is not a layer", where=str(path),
                                 fix="name layers from the 'layers' list in 'outputs'")
    domain = None
    if raw.get("domain") is not None:
        try:
            domain = Domain.from_json(raw["domain"]).for_inputs(int(raw["inputs"]))
        except DomainError as exc:
            raise ModelLoadError(f"'domain': {exc.what}", where=str(path), fix=exc.fix) from None
    return ModelConfig(int(raw["inputs"]), tuple(layers), outputs, dict(raw.get("meta", {})),
                       domain)


def _config_problem(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return "the config must be a JSON object"
    if raw.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        return f"unknown format {raw.get('format')!r}, expected {CONFIG_FORMAT!r}"
    if not isinstance(raw.get("inputs"), int) or raw["inputs"] < 1:
        return "'inputs' must be the number of network inputs (a positive integer)"
    layers = raw.get("layers")
    if not isinstance(layers, list) or not layers:
        return "'layers' must be a non-empty list"
    if not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in layers):
        return "every layer needs a 'name' (the prefix of its weight and bias tensors)"
    return None


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Tensors by name, from safetensors or from a torch file loaded with weights_only=True."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
        return _read_torch_state_dict(path)
    except ModelLoadError:
        raise
    except FileNotFoundError as exc:
        raise ModelLoadError("file not found", where=str(path),
                             fix="check the path") from exc
    except Exception as exc:  # safetensors and torch raise many types for corrupt files
        raise ModelLoadError(
            f"cannot read the weights ({type(exc).__name__}: {exc})".rstrip(),
            where=str(path),
            fix="the file is truncated or not a weights file: re-save it with "
            "torch.save(model.state_dict(), path) or safetensors' save_file",
        ) from exc


def _read_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            "the file holds pickled objects beyond plain tensors, and circuitql never "
            "unpickles code from model files",
            where=str(path),
            fix="save only the weights: torch.save(model.state_dict(), path) with a JSON "
            "config, or export ONNX, or pass the nn.Module itself to db.index()",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(
            f"cannot read the file ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="the file is truncated or not a torch file: re-save it with "
            "torch.save(model.state_dict(), path)",
        ) from exc
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(
            "expected a state_dict (a mapping of names to tensors)",
            where=str(path),
            fix="save it with torch.save(model.state_dict(), path)",
        )
    return {k: v.detach().double().numpy() for k, v in obj.items()}


def load_weights_file(path: Path, config_path: Path | None = None) -> tuple[NeuronGraph,
                                                                             ModelConfig]:
    config = parse_config(config_path or find_sidecar(path))
    tensors = read_weights(path)
    for name, array in tensors.items():
        if not np.all(np.isfinite(array)):
            raise ModelLoadError(f"tensor {name!r} contains NaN or Inf", where=str(path),
                                 fix="the weights are corrupt or diverged: retrain or re-export")
    try:
        return build_graph(config, tensors, str(path)), config
    except ShapeError as exc:
        raise ModelLoadError(str(exc), where=str(path),
                             fix="make the config's layers match the tensors' shapes") from exc


def build_graph(config: ModelConfig, tensors: Mapping[str, np.ndarray], where: str) -> NeuronGraph:
    builder = GraphBuilder()
    values: dict[str, AffineVec] = {NETWORK_INPUT: builder.inputs(config.n_inputs)}
    for layer in config.layers:
        weight_key = f"{layer.name}.weight"
        if weight_key not in tensors:
            raise ModelLoadError(
                f"layer {layer.name!r} has no tensor {weight_key!r}",
                where=where,
                fix=f"name layers after the file's tensors: {', '.join(sorted(tensors))}",
            )
        x = AffineVec.concat([values[ref] for ref in layer.reads])
        pre = x.linear(tensors[weight_key], tensors.get(f"{layer.name}.bias"), layer.name)
        for ref in layer.adds:
            pre = pre + values[ref]
        values[layer.name] = builder.activate(pre, layer.activation, layer.name, layer.alpha)
    return builder.finish(AffineVec.concat([values[name] for name in config.outputs]))

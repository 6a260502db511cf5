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
from circuitql.indexer.load import model_stem

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


def find_sidecar(weights: Path) -> Path | None:
    stem = model_stem(weights)
    for candidate in (weights.with_name(f"{stem}.json"), weights.with_name(f"{stem}.config.json"),
                      weights.with_name("config.json")):
        if candidate.is_file():
            return candidate
    return None


def suggested_config(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A config for the file's own tensors, read as a chain of layers in the order they were
    saved (ReLU between them): the start a user edits, in the error that asks for one."""
    layers = [name[: -len(".weight")] for name, t in tensors.items()
              if name.endswith(".weight") and t.ndim == 2]
    inputs = int(tensors[f"{layers[0]}.weight"].shape[1]) if layers else 1
    return {"format": CONFIG_FORMAT, "inputs": inputs, "layers": [
        {"name": name, "activation": "relu" if i < len(layers) - 1 else "identity"}
        for i, name in enumerate(layers)]}


def _missing_config(weights: Path, tensors: Mapping[str, np.ndarray]) -> ModelLoadError:
    shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in list(tensors.items())[:12])
    more = "" if len(tensors) <= 12 else f" and {len(tensors) - 12} more"
    return ModelLoadError(
        f"a weights-only file needs a JSON config naming its layers and activations; its "
        f"tensors are {shapes}{more}", where=str(weights),
        fix=f"write {model_stem(weights)}.json beside it; for a chain of these layers with "
        f"ReLU between them: {json.dumps(suggested_config(tensors))} (check the order and "
        "the activations; see docs/model-config.md)")


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
        if is_safetensors(path):
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


def is_safetensors(path: Path) -> bool:
    """Whether the file is safetensors, by its content (8 bytes of header length, then a JSON
    object), whatever its extension: such files are published as .pt and .bin too."""
    with path.open("rb") as file:
        head = file.read(9)
    return (len(head) == 9 and head[8:9] == b"{"
            and int.from_bytes(head[:8], "little") < path.stat().st_size)


# Where training scripts keep the weights inside a checkpoint, most common first.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")


def state_dict_of(checkpoint: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The state dict in ``checkpoint``: the file itself when all its values are tensors,
    else the one entry that is a state dict (beside an optimizer's state, an epoch, an
    accuracy), or of several the one under the first usual name (``CHECKPOINT_KEYS``)."""
    import torch

    def tensors_only(value: Any) -> bool:
        return (isinstance(value, Mapping) and bool(value)
                and all(isinstance(v, torch.Tensor) for v in value.values()))

    if tensors_only(checkpoint):
        return checkpoint
    found = [key for key, value in checkpoint.items() if tensors_only(value)]
    named = [key for key in CHECKPOINT_KEYS if key in found]
    if len(found) == 1 or named:
        return checkpoint[named[0] if named else found[0]]
    if found:
        raise ModelLoadError(
            f"the checkpoint holds {len(found)} state dicts ({', '.join(map(repr, found))}) "
            "and none is under a usual name", where=where,
            fix=f"re-save the one to index: torch.save(checkpoint[{found[0]!r}], path)")
    keys = ", ".join(repr(k) for k in list(checkpoint)[:8])
    raise ModelLoadError(
        f"expected a state_dict (a mapping of names to tensors), or a checkpoint holding one; "
        f"found the keys {keys or '(none)'}", where=where,
        fix="save it with torch.save(model.state_dict(), path)")


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
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"expected a state_dict (a mapping of names to tensors), found a "
            f"{type(obj).__name__}", where=str(path),
            fix="save it with torch.save(model.state_dict(), path)")
    weights = state_dict_of(obj, str(path))
    return {str(k): v.detach().double().numpy() for k, v in weights.items()}


def load_weights_file(path: Path, config_path: Path | None = None) -> tuple[NeuronGraph,
                                                                             ModelConfig]:
    tensors = read_weights(path)
    config_path = config_path or find_sidecar(path)
    if config_path is None:
        raise _missing_config(path, tensors)
    config = parse_config(config_path)
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

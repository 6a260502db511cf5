"""One entry point for every kind of model: an nn.Module, a weights file + config, or ONNX.

The formats differ only in how they are read; each ends as a ``NeuronGraph``. Nothing here
executes code from a file: torch files are opened with ``weights_only=True``, and the
architecture of a weights-only file comes from a JSON config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitql.domain import Domain
from circuitql.errors import ModelLoadError
from circuitql.graph import NeuronGraph

WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
MODEL_SUFFIXES = (*WEIGHTS_SUFFIXES, ".onnx", ".nnet")


@dataclass(frozen=True)
class LoadedModel:
    graph: NeuronGraph
    source: str
    default_name: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    domain: Domain | None = None  # the model's own input domain, when its file gives one


def load(model: Any, *, input_dim: int | None = None) -> LoadedModel:
    """Read ``model`` (an ``nn.Module``, a ``NeuronGraph`` or a path) into a neuron graph."""
    if isinstance(model, NeuronGraph):
        return LoadedModel(model, "<NeuronGraph>", "graph")
    if isinstance(model, str | Path):
        return load_path(Path(model))
    from torch import nn

    if isinstance(model, nn.Module):
        from circuitql.indexer.torch_loader import load_module

        name = type(model).__name__
        return LoadedModel(load_module(model, input_dim), f"<nn.Module {name}>", name)
    raise ModelLoadError(
        f"cannot index a {type(model).__name__}",
        fix="pass an nn.Module, or the path of a .pt/.pth/.bin/.safetensors (with a JSON "
        "config), .nnet or .onnx file",
    )


def printable_path(text: str) -> str:
    """A path as text a store and a terminal can carry: bytes of a file name that are not
    UTF-8 (which Python keeps as lone surrogates) are kept, escaped (``b\\xe9b\\xe9``)."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def model_stem(path: Path) -> str:
    """A model file's name without its final extension: ``mlp_s0.9.safetensors`` is
    ``mlp_s0.9``. Its JSON config is looked up by this stem, and the model named after it."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def load_path(path: Path) -> LoadedModel:
    shown = printable_path(str(path))
    if not path.exists():
        raise ModelLoadError("no such file", where=shown, fix="check the path")
    suffix = path.suffix.lower()
    name = printable_path(model_stem(path))
    if suffix == ".onnx":
        from circuitql.indexer.onnx_loader import load_onnx

        graph, notes = load_onnx(path)
        return LoadedModel(graph, shown, name, notes)
    if suffix == ".nnet":
        from circuitql.indexer.nnet_loader import load_nnet

        graph, domain, notes = load_nnet(path)
        return LoadedModel(graph, shown, name, notes, domain)
    if suffix in WEIGHTS_SUFFIXES:
        from circuitql.indexer.config_loader import load_weights_file

        graph, config, notes = load_weights_file(path)
        return LoadedModel(graph, shown, name, {**config.meta, **notes}, config.domain)
    raise ModelLoadError(
        f"unknown model file type {suffix or '(none)'!r}",
        where=shown,
        fix=f"circuitql reads {', '.join(MODEL_SUFFIXES)} files",
    )


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Model files under the given paths, folders searched recursively, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and _is_model_file(p))
            )
        else:
            found.append(path)
    return found


def _is_model_file(path: Path) -> bool:
    return path.suffix.lower() in MODEL_SUFFIXES

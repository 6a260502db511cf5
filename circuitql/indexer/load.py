"""One entry point for every kind of model: an nn.Module, a weights file + config, or ONNX.

The formats differ only in how they are read; each ends as a ``NeuronGraph``. Nothing here
executes code from a file: torch files are opened with ``weights_only=True``, and the
architecture of a weights-only file comes from a JSON config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitql.domain import Domain
from circuitql.errors import ModelLoadError
from circuitql.graph import NeuronGraph
from circuitql.indexer.files import MODEL_SUFFIXES, WEIGHTS_SUFFIXES, model_stem, printable_path


@dataclass(frozen=True)
class LoadedModel:
    """A model as read, before canonicalization. ``source`` is what messages and the store
    show (a printable path, ``<nn.Module Name>`` or ``<NeuronGraph>``); ``default_name`` is
    the name it is indexed under when none is given (a file's stem, a module's class name)."""

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
        graph, notes = load_module(model, input_dim)
        return LoadedModel(graph, f"<nn.Module {name}>", name, notes)
    raise ModelLoadError(
        f"cannot index a {type(model).__name__}",
        fix="pass an nn.Module, or the path of a .pt/.pth/.bin/.safetensors (with a JSON "
        "config), .nnet or .onnx file",
    )


def load_path(path: Path) -> LoadedModel:
    """Read a model file, by its suffix; a weights-only file's meta and domain come from its
    JSON config, a .nnet file's domain from the file itself."""
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

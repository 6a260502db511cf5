"""Which files are models, and what they are named: one rule for the loader, the config
lookup, the CLI's folder walk and the exporter.

A model file's suffix says how it is read; its name without the final extension names the
model and finds its JSON config (``mlp_s0.9.safetensors`` is ``mlp_s0.9``, config
``mlp_s0.9.json``). File names are kept as given, bytes that are not UTF-8 escaped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
MODEL_SUFFIXES = (*WEIGHTS_SUFFIXES, ".onnx", ".nnet")


def printable_path(text: str) -> str:
    """A path as text a store and a terminal can carry: bytes of a file name that are not
    UTF-8 (which Python keeps as lone surrogates) are kept, escaped (``b\\xe9b\\xe9``)."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def model_stem(path: Path) -> str:
    """A model file's name without its final extension: ``mlp_s0.9.safetensors`` is
    ``mlp_s0.9``. Its JSON config is looked up by this stem, and the model named after it."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Model files under the given paths, folders searched recursively, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and _is_model_file(p)))
        else:
            found.append(path)
    return found


def _is_model_file(path: Path) -> bool:
    return path.suffix.lower() in MODEL_SUFFIXES

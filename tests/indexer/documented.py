"""The nn.Module classes docs/model-config.md shows, so tests can check the docs run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MODEL_CONFIG = Path(__file__).resolve().parents[2] / "docs" / "model-config.md"


def documented_module(name: str) -> Any:
    """The class ``name`` from its Python example in docs/model-config.md (the code up to
    the ``db.index(`` line that uses it)."""
    text = MODEL_CONFIG.read_text()
    code = text[text.index(f"```python\nclass {name}(") + len("```python\n") :]
    code = code[: code.index("db.index(")]
    namespace: dict[str, Any] = {"torch": torch, "nn": nn, "F": F}
    exec(code, namespace)  # our own documentation, not a user's file
    return namespace[name]

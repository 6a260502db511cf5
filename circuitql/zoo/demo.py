"""A small demo zoo: a few known circuits and some random MLPs, in every file format.

It exists so a fresh install has something real to index and query in seconds (the README's
first command), and so the CLI can be tried without training anything.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from circuitql.export import DenseLayer, MLPSpec, save

FORMATS = (".safetensors", ".pt", ".onnx")


def _w(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def known_circuits() -> dict[str, MLPSpec]:
    """Hand-wired networks whose circuit is known, named after it."""
    pair = _w([1.0], [-1.0])
    zero2 = np.zeros(2)
    return {
        "identity": MLPSpec(
            1,
            (
                DenseLayer("fc1", pair, zero2),
                DenseLayer("out", _w([1.0, -1.0]), np.zeros(1), "identity"),
            ),
        ),
        "negation": MLPSpec(
            1,
            (
                DenseLayer("fc1", pair, zero2),
                DenseLayer("out", _w([-1.0, 1.0]), np.zeros(1), "identity"),
            ),
        ),
        "abs": MLPSpec(
            1,
            (
                DenseLayer("fc1", pair, zero2),
                DenseLayer("out", _w([1.0, 1.0]), np.zeros(1), "identity"),
            ),
        ),
        "min_skip": MLPSpec(
            2,
            (
                DenseLayer("fc1", _w([1.0, -1.0]), np.zeros(1), reads=("input",)),
                DenseLayer(
                    "out", _w([1.0, 0.0, -1.0]), np.zeros(1), "identity", reads=("input", "fc1")
                ),
            ),
        ),
    }


def random_mlp(
    rng: np.random.Generator,
    n_inputs: int,
    widths: list[int],
    n_outputs: int,
    meta: dict[str, object] | None = None,
) -> MLPSpec:
    """A dense ReLU MLP with an identity output layer, weights and biases uniform in
    ±1/sqrt(fan_in) (torch's ``nn.Linear`` default); ``meta`` goes into its config."""
    sizes = [n_inputs, *widths, n_outputs]
    layers = []
    for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        last = i == len(sizes) - 2
        bound = 1.0 / np.sqrt(fan_in)
        layers.append(
            DenseLayer(
                "out" if last else f"fc{i + 1}",
                rng.uniform(-bound, bound, (fan_out, fan_in)),
                rng.uniform(-bound, bound, fan_out),
                "identity" if last else "relu",
            )
        )
    return MLPSpec(n_inputs, tuple(layers), meta or {})


def build_demo_zoo(directory: Path, n_random: int = 6, seed: int = 0) -> list[Path]:
    """Write the demo zoo under ``directory``; returns the model files written."""
    rng = np.random.default_rng(seed)
    written = []
    for i, (name, spec) in enumerate(sorted(known_circuits().items())):
        written.append(save(spec, directory / "circuits" / f"{name}{FORMATS[i % 3]}"))
    for i in range(n_random):
        spec = random_mlp(rng, 8, [16, 16], 4, {"kind": "random", "seed": seed + i})
        written.append(save(spec, directory / "random" / f"mlp{i}{FORMATS[i % 3]}"))
    return written

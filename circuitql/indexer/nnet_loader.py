"""Read Julian's .nnet text format, the verification community's format for ReLU MLPs
(ACAS Xu and most of Marabou's and Reluplex's benchmarks).

A .nnet file is a header, then every layer's weights and biases as comma-separated rows:

    // comment lines
    numLayers, numInputs, numOutputs, maxLayerSize,
    size of every layer, the inputs first,
    0,                                  (an unused "symmetric" flag)
    minimum of every input,
    maximum of every input,
    mean of every input, then the output's,
    range of every input, then the output's,
    weight rows of layer 1, one per unit; bias rows of layer 1, one value each; layer 2 ...

Hidden layers are ReLU and the last is linear. The network reads normalized inputs, (x -
mean) / range, after clipping them to [minimum, maximum], and its outputs are scaled back,
y * range + mean. The normalizations are affine, so they fold into the first and last layers
and the graph reads the raw inputs; the clipping is the identity on the box, which becomes the
model's domain. Both are recorded in the model's metadata under ``"nnet"``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain
from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.affine import GraphBuilder, check_model_size

MAX_WEIGHTS = 50_000_000  # more than any MLP in a verification benchmark, by far
_FIX = (
    "check that the file is a complete .nnet file (header, sizes, min, max, means, "
    "ranges, then every layer's weight rows and bias rows)"
)


@dataclass(frozen=True)
class NNet:
    """A .nnet file as written: raw layers, input box, normalization."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray  # every input's, then the output's
    spread: np.ndarray  # the same, for the ranges

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """What a .nnet evaluator computes (clip, normalize, ReLU layers, scale back): the
        reference ``circuitql check`` compares the loaded graph with."""
        h = (np.clip(x, self.low, self.high) - self.mean[:-1]) / self.spread[:-1]
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h * self.spread[-1] + self.mean[-1]


def read_nnet(path: Path) -> NNet:
    """The file's numbers, checked against its header."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(
            f"cannot read the file as .nnet text ({exc})", where=str(path), fix=_FIX
        ) from exc
    rows = _Rows(text, str(path))
    n_layers, n_inputs, n_outputs, _largest = (int(v) for v in rows.ints(4))
    if not 1 <= n_layers <= 10_000:
        raise rows.error(f"the header declares {n_layers} layers")
    sizes = rows.ints(n_layers + 1)
    if sizes[0] != n_inputs or sizes[-1] != n_outputs or min(sizes) < 1:
        raise rows.error(
            f"the layer sizes {sizes} do not start with the {n_inputs} inputs and "
            f"end with the {n_outputs} outputs"
        )
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    if weights > MAX_WEIGHTS:
        raise rows.error(f"the layer sizes {sizes} declare more than {MAX_WEIGHTS:,} weights")
    check_model_size(weights, str(path))
    rows.floats(None)  # the unused "symmetric" flag
    low, high = rows.floats(n_inputs), rows.floats(n_inputs)
    mean, spread = rows.floats(n_inputs + 1), rows.floats(n_inputs + 1)
    if not (spread > 0).all():
        raise rows.error("a range of the input or output normalization is not positive")
    if (low > high).any():
        raise rows.error("an input's minimum is above its maximum")
    layers = []
    for fan_in, width in itertools.pairwise(sizes):
        weight = np.stack([rows.floats(fan_in) for _ in range(width)])
        bias = np.array([rows.floats(1)[0] for _ in range(width)])
        layers.append((weight, bias))
    rows.finish()
    return NNet(tuple(layers), low, high, mean, spread)


def load_nnet(path: Path) -> tuple[NeuronGraph, Domain, dict[str, Any]]:
    """The network with its normalization folded in, its input box, and what was folded."""
    net = read_nnet(path)
    n_inputs = len(net.low)
    layers = list(net.layers)
    # Normalized input (x - mean) / range into the first layer; output y * range + mean out of
    # the last.
    scale, mean, spread = net.spread[:n_inputs], net.mean, net.spread
    weight, bias = layers[0]
    layers[0] = (weight / scale, bias - weight @ (mean[:n_inputs] / scale))
    weight, bias = layers[-1]
    layers[-1] = (weight * spread[-1], bias * spread[-1] + mean[-1])
    builder = GraphBuilder()
    value = builder.inputs(n_inputs)
    for i, (weight, bias) in enumerate(layers, start=1):
        value = builder.linear(value, weight, bias, f"layer{i}")
        if i < len(layers):
            value = builder.activate(value, Activation.RELU, f"layer{i}")
    domain = Domain(tuple(zip(net.low.tolist(), net.high.tolist(), strict=True)))
    meta = {
        "nnet": {
            "normalization": "folded into the first and last layers",
            "input_mean": mean[:-1].tolist(),
            "input_range": spread[:-1].tolist(),
            "output_mean": float(mean[-1]),
            "output_range": float(spread[-1]),
        }
    }
    return builder.finish(value), domain, meta


class _Rows:
    """The file's data lines in order, comments skipped, each read as numbers."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.lines: Iterator[tuple[int, str]] = (
            (number, line)
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("//")
        )
        self.line = 0

    def floats(self, count: int | None) -> np.ndarray:
        """The next line's numbers (``count`` of them, or at least one when None)."""
        self.line, line = next(self.lines, (self.line, ""))
        try:
            values = np.array([float(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise self.error(f"line {self.line} holds something that is not a number") from None
        if not values.size:
            raise self.error(
                f"the file ends after line {self.line}, before all the numbers its header declares"
            )
        if count is not None and len(values) != count:
            raise self.error(f"line {self.line} has {len(values)} numbers, expected {count}")
        if not np.isfinite(values).all():
            raise self.error(f"line {self.line} holds NaN or Inf")
        return values

    def ints(self, count: int) -> list[int]:
        values = self.floats(count)
        if any(v != math.floor(v) or abs(v) > 2**31 for v in values):
            raise self.error(f"line {self.line} should hold whole numbers")
        return [int(v) for v in values]

    def finish(self) -> None:
        extra = next(self.lines, None)
        if extra is not None:
            raise self.error(f"line {extra[0]} is more than the layers declared")

    def error(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"not a valid .nnet file: {what}", where=self.where, fix=_FIX)

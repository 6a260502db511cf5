""".nnet files load as the networks they describe: normalization folded in, box as domain."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from circuitql.errors import ModelLoadError
from circuitql.indexer.load import load_path

Layers = list[tuple[np.ndarray, np.ndarray]]


def write_nnet(
    path: Path,
    layers: Layers,
    low: np.ndarray,
    high: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray,
) -> Path:
    """The text Julian's writeNNet produces (trailing commas included)."""
    sizes = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]

    def row(values: np.ndarray) -> str:
        return ",".join(f"{v:.17g}" for v in values) + ",\n"

    lines = [
        "// a network written for circuitql's tests\n",
        "// second comment line\n",
        row(np.array([len(layers), sizes[0], sizes[-1], max(sizes)])),
        row(np.array(sizes)),
        "0,\n",
        row(low),
        row(high),
        row(mean),
        row(spread),
    ]
    for weight, bias in layers:
        lines += [row(r) for r in weight] + [row(np.array([b])) for b in bias]
    path.write_text("".join(lines))
    return path


def nnet_semantics(
    layers: Layers,
    low: np.ndarray,
    high: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray,
    x: np.ndarray,
) -> np.ndarray:
    """What a .nnet evaluator computes: clip, normalize, ReLU layers, linear last, scale back."""
    h = (np.clip(x, low, high) - mean[:-1]) / spread[:-1]
    for i, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h * spread[-1] + mean[-1]


@pytest.fixture
def acas_like(
    tmp_path: Path,
) -> tuple[Path, tuple[Layers, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """ACAS Xu's shape in small: raw inputs of very different ranges, scores scaled back."""
    rng = np.random.default_rng(0)
    sizes = [5, 12, 12, 5]
    layers = [
        (rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1)
        for a, b in itertools.pairwise(sizes)
    ]
    low = np.array([0.0, -3.141593, -3.141593, 100.0, 0.0])
    high = np.array([60760.0, 3.141593, 3.141593, 1200.0, 1200.0])
    mean = np.array([19791.0, 0.0, 0.0, 650.0, 600.0, 7.5188840201005975])
    spread = np.array([60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0, 373.94992])
    spec = (layers, low, high, mean, spread)
    return write_nnet(tmp_path / "acas_like.nnet", *spec), spec


def test_a_nnet_file_computes_what_it_describes_on_its_box(acas_like: tuple[Path, tuple]) -> None:
    path, (layers, low, high, mean, spread) = acas_like
    loaded = load_path(path)
    x = np.random.default_rng(1).uniform(low, high, size=(2000, 5))
    expected = nnet_semantics(layers, low, high, mean, spread, x)
    np.testing.assert_allclose(loaded.graph.evaluate(x), expected, rtol=1e-9, atol=1e-9)
    assert loaded.domain is not None
    assert loaded.domain.box == tuple(zip(low.tolist(), high.tolist(), strict=True))
    assert loaded.meta["nnet"]["output_range"] == spread[-1]
    assert loaded.default_name == "acas_like"
    assert [u.id for u in loaded.graph.outputs] == [f"layer3:{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines[:-3], "the file ends"),
        (lambda lines: [*lines, "1,\n"], "more than the layers declared"),
        (lambda lines: [*lines[:9], "0.5,abc,\n", *lines[10:]], "not a number"),
        (lambda lines: [*lines[:9], "nan," * 5 + "\n", *lines[10:]], "NaN or Inf"),
        (
            lambda lines: [
                lines[0],
                "3,5,5,100000000,\n",
                "5,100000000,100000000,5,\n",
                *lines[4:],
            ],
            "more than 50,000,000 weights",
        ),
        (
            lambda lines: [lines[0], lines[1], lines[2], "5,12,11,5,\n", *lines[4:]],
            "has 12 numbers, expected 1",
        ),
        (lambda lines: [*lines[:8], "1,2,3,4,5,0,\n", *lines[9:]], "range"),
    ],
)
def test_a_broken_nnet_file_is_refused_with_its_line(
    acas_like: tuple[Path, tuple], edit, message: str
) -> None:
    path, _ = acas_like
    path.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    with pytest.raises(ModelLoadError, match=message) as err:
        load_path(path)
    assert str(path) in str(err.value) and "fix:" in str(err.value)

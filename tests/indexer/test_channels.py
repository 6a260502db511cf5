"""Convolutional networks as channel graphs, read from torch modules and from ONNX exports.

The graph of a convolutional network is its function on uniform images (channels.py): every
numeric check here runs the real network, in torch or in ONNX's reference evaluator, on
images whose channels are each constant, and compares it with the graph evaluated on the
channels' values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import circuitql
from circuitql.errors import ModelLoadError
from circuitql.graph import NeuronGraph
from circuitql.indexer.check import check_file, onnx_outputs
from circuitql.indexer.load import load
from circuitql.indexer.onnx_loader import load_onnx
from tests.indexer.documented import documented_module


def _uniform(x: np.ndarray, size: tuple[int, ...]) -> torch.Tensor:
    """The images whose channels take the values of ``x``'s rows, everywhere."""
    spread = x.reshape(*x.shape, *(1,) * len(size))
    return torch.tensor(np.broadcast_to(spread, (*x.shape, *size)).copy(), dtype=torch.float64)


def _torch_on_uniform(model: nn.Module, x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(model.double()(_uniform(x, size)).numpy(), dtype=np.float64)


def _probes(graph: NeuronGraph, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(32, len(graph.inputs)))


def _convnet() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, groups=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 3),
    )
    with torch.no_grad():
        model[4].running_mean.uniform_(-1, 1)
        model[4].running_var.uniform_(0.5, 2)
    return model.eval()


def test_a_conv_net_is_one_unit_per_channel_computing_it_on_uniform_images() -> None:
    model = _convnet()
    loaded = load(model)
    graph = loaded.graph
    assert [u.id for u in graph.inputs] == ["input:0", "input:1"]
    assert [u.id for u in graph.hidden] == [f"0:{c}" for c in range(4)] + [
        f"3:{c}" for c in range(6)
    ]
    # groups=2: channels 0-2 of the second convolution read channels 0-1 of the first.
    assert set(graph["3:1"].inputs) == {"0:0", "0:1"}
    assert set(graph["3:4"].inputs) == {"0:2", "0:3"}
    x = _probes(graph)
    np.testing.assert_allclose(graph.evaluate(x), _torch_on_uniform(model, x, (14, 14)), atol=1e-9)
    channels = loaded.meta["torch"]["channels"]
    assert [layer["layer"] for layer in channels["layers"]] == ["0", "2", "3"]
    assert channels["border_effects"] == []


def test_the_onnx_export_reads_as_the_module_does(tmp_path: Path) -> None:
    model = _convnet()
    path = tmp_path / "conv.onnx"
    torch.onnx.export(model, (torch.zeros(1, 2, 14, 14),), str(path), dynamo=False)
    graph, notes = load_onnx(path)
    assert notes["onnx"]["inputs"][0] == {
        "name": "input.1",
        "shape": [2, 14, 14],
        "channels": True,
        "first": 0,
        "count": 2,
    }
    x = _probes(graph, 1)
    want = _torch_on_uniform(model, x, (14, 14))
    np.testing.assert_allclose(graph.evaluate(x), want, atol=1e-5)
    reference = onnx_outputs(path, x, {"input.1"})
    assert reference is not None
    np.testing.assert_allclose(reference, want, atol=1e-5)
    report = check_file(path, n_probes=200)
    assert report.comparisons[0].error < 1e-5
    assert report.comparisons[0].argmax_agreement == 1.0
    assert "channel graph" in report.text()


def test_the_documented_mnist_example_with_functional_pooling_and_view() -> None:
    """The classic PyTorch MNIST network, as docs/model-config.md shows it."""
    model = documented_module("ConvNet")().eval()
    loaded = load(model)
    assert len(loaded.graph.inputs) == 1 and len(loaded.graph.hidden) == 80
    x = _probes(loaded.graph)
    scores = loaded.graph.evaluate(x)
    got = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, _torch_on_uniform(model, x, (28, 28)), atol=1e-9)


def test_zero_padding_is_recorded_as_a_border_effect_and_repeating_padding_is_not(
    tmp_path: Path,
) -> None:
    padded = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 2, 3, padding=1, padding_mode="replicate"),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()
    channels = load(padded).meta["torch"]["channels"]
    assert channels["border_effects"] == ["0"]
    path = tmp_path / "padded.onnx"
    torch.onnx.export(padded, (torch.zeros(1, 1, 6, 6),), str(path), dynamo=False)
    report = check_file(path, n_probes=100)
    assert any("zero padding in" in remark for remark in report.remarks)
    # Replicated padding keeps a uniform map uniform: the graph is exact there.
    x = np.random.default_rng(2).normal(size=(16, 3))
    graph = load(nn.Sequential(*list(padded)[2:])).graph
    np.testing.assert_allclose(
        graph.evaluate(x), _torch_on_uniform(nn.Sequential(*list(padded)[2:]), x, (5, 5)), atol=1e-9
    )


def _abs_net(second_sign: float = -1.0, zero_sum: bool = False) -> nn.Sequential:
    """|x| over channels: two 3 x 3 kernels of opposite sums, rescaled, then summed to give
    |x| on a uniform image of value x."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()
    kernel = torch.tensor([[0.1, 0.3, 0.0], [0.2, 0.5, 0.1], [0.0, 0.2, 0.1]])
    if zero_sum:  # edge detectors: no response to a uniform image
        kernel = kernel - kernel.mean()
    with torch.no_grad():
        model[0].weight[0, 0] = 0.7 * kernel
        model[0].weight[1, 0] = second_sign * 1.3 * kernel
        model[0].bias.zero_()
        # A uniform image of value x reaches the channels as 0.7 * sum(kernel) * x, ...
        gain = float(kernel.sum())
        model[2].weight[:] = torch.tensor([1 / (0.7 * gain), 1 / (1.3 * gain)]).reshape(1, 2, 1, 1)
        model[2].bias.zero_()
    return model


def test_abs_over_channels_is_found_and_its_decoys_are_not(tmp_path: Path) -> None:
    with circuitql.connect(f"sqlite:///{tmp_path / 'conv.db'}") as db:
        db.index(_abs_net(), name="abs")
        db.index(_abs_net(second_sign=1.0), name="same_sign")
        db.index(_abs_net(zero_sum=True), name="edge_detectors")
        found = {(m.model, tuple(sorted(m.bindings.items()))) for m in db.query("MATCH abs")}
    assert found == {("abs", (("n", "0:1"), ("p", "0:0"), ("x", "input:0"), ("y", "2:0")))}


def test_permuting_and_rescaling_channels_is_a_symmetry(tmp_path: Path) -> None:
    model = _convnet()
    twin = _convnet()
    # Channels swap within each of the second convolution's groups ({0, 1} and {2, 3}),
    # each scaled by its own positive factor, which the channels reading it divide out.
    order, scale = torch.tensor([1, 0, 3, 2]), torch.tensor([0.5, 3.0, 1.0, 2.0])
    with torch.no_grad():
        twin[0].weight[:] = model[0].weight[order] * scale[:, None, None, None]
        twin[0].bias[:] = model[0].bias[order] * scale
        per_read = scale.reshape(2, 2).repeat_interleave(3, 0).reshape(6, 2, 1, 1)
        twin[3].weight[:] = model[3].weight[:, torch.tensor([1, 0])] / per_read
    x = np.random.default_rng(3).normal(size=(8, 2))
    np.testing.assert_allclose(
        _torch_on_uniform(twin, x, (14, 14)), _torch_on_uniform(model, x, (14, 14)), atol=1e-9
    )
    with circuitql.connect(f"sqlite:///{tmp_path / 'twins.db'}") as db:
        db.index(model, name="a")
        db.index(twin, name="b")
        assert db.compare("a", "b").equivalent


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (nn.Sequential(nn.Conv3d(1, 2, 3), nn.ReLU()), "Conv3d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(4, 2)), "after they are flat"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(7, 2)), "cannot read 2"),
    ],
)
def test_what_a_channel_graph_cannot_read_is_refused_with_the_reason(
    model: nn.Module, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(model.eval(), input_dim=1)


# --- hand-written ONNX files: the ops' attributes as the specification gives them ----------


def _onnx_net(
    tmp_path: Path, nodes: list[onnx.NodeProto], weights: dict[str, np.ndarray], shape: list[int]
) -> Path:
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()],
    )
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def _kernels(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    ("window", "border_effects"),
    [
        (helper.make_node("Conv", ["h", "k2"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]), 1),
        (helper.make_node("Conv", ["h", "k2"], ["c"], pads=[1, 0, 1, 0], dilations=[2, 1]), 1),
        (helper.make_node("MaxPool", ["h"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 0),
        (
            helper.make_node(
                "AveragePool", ["h"], ["c"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1
            ),
            0,
        ),
        (
            helper.make_node(
                "AveragePool",
                ["h"],
                ["c"],
                kernel_shape=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            ),
            1,
        ),
        (helper.make_node("Pad", ["h", "pads"], ["c"], mode="edge"), 0),
        (helper.make_node("Pad", ["h", "pads"], ["c"], mode="constant"), 1),
    ],
    ids=["same-upper", "dilated", "maxpool", "avgpool", "avgpool-zeros", "pad-edge", "pad-zeros"],
)
def test_windows_and_padding_on_uniform_images_with_their_border_effects(
    tmp_path: Path, window: onnx.NodeProto, border_effects: int
) -> None:
    weights = {
        "k1": _kernels(3, 2, 3, 3),
        "b1": _kernels(3),
        "k2": _kernels(3, 3, 3, 3),
        "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64),
        "w": _kernels(3, 4),
    }
    nodes = [
        helper.make_node("Conv", ["x", "k1", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["h"]),
        window,
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    path = _onnx_net(tmp_path, nodes, weights, [2, 9, 9])
    graph, notes = load_onnx(path)
    channels = notes["onnx"]["channels"]
    assert len(channels["border_effects"]) == border_effects
    x = np.random.default_rng(4).normal(size=(16, 2))
    reference = onnx_outputs(path, x, {"x"})
    assert reference is not None
    error = np.abs(graph.evaluate(x) - reference).max() / np.abs(reference).max()
    if border_effects:
        assert error > 1e-3  # the borders the graph does not see
    else:
        assert error < 1e-5


@pytest.mark.parametrize(
    ("nodes", "weights", "expected"),
    [
        (
            [helper.make_node("Transpose", ["m"], ["y"], perm=[0, 1, 3, 2])],
            {},
            "rearranges feature maps",
        ),
        (
            [helper.make_node("Add", ["m", "position"], ["y"])],
            {"position": _kernels(1, 2, 4, 4)},
            "varies across positions",
        ),
        (
            [
                helper.make_node("Flatten", ["m"], ["f"]),
                helper.make_node("Conv", ["f", "k"], ["y"]),
            ],
            {"k": _kernels(1, 2, 3, 3)},
            "needs feature maps",
        ),
        (
            [helper.make_node("Conv", ["m", "k"], ["y"])],
            {"k": _kernels(1, 2, 3)},
            "1-D window over 2-D maps",
        ),
    ],
    ids=["transpose", "positional-constant", "conv-of-flat", "window-rank"],
)
def test_what_a_channel_graph_cannot_read_from_onnx_is_refused(
    tmp_path: Path, nodes: list[onnx.NodeProto], weights: dict[str, np.ndarray], expected: str
) -> None:
    conv = helper.make_node("Conv", ["x", "k0"], ["m"])
    path = _onnx_net(tmp_path, [conv, *nodes], {"k0": _kernels(2, 1, 1, 1), **weights}, [1, 4, 4])
    with pytest.raises(ModelLoadError, match=expected):
        load_onnx(path)


def test_a_per_channel_normalization_before_the_first_convolution_folds_into_it() -> None:
    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.4, 0.5]).reshape(1, 2, 1, 1))
            self.conv = nn.Conv2d(2, 3, 3)
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv((x - self.mean) / 0.25))
            return self.head(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    model = Normalized().eval()
    graph = load(model).graph  # the width is read through the normalization
    assert [u.id for u in graph.inputs] == ["input:0", "input:1"]
    x = _probes(graph)
    np.testing.assert_allclose(graph.evaluate(x), _torch_on_uniform(model, x, (7, 7)), atol=1e-9)


@pytest.mark.parametrize("pooling", ["mean", "mean_keepdim", "squeeze"])
def test_global_average_pooling_written_as_a_mean_or_a_squeeze(pooling: str) -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))
            if pooling == "mean":
                return self.fc(h.mean(dim=(2, 3)))
            if pooling == "mean_keepdim":
                return self.fc(torch.flatten(torch.mean(h, dim=(2, -1), keepdim=True), 1))
            return self.fc(self.pool(h).squeeze(-1).squeeze(-1))

    model = Head().eval()
    graph = load(model).graph
    x = _probes(graph)
    np.testing.assert_allclose(graph.evaluate(x), _torch_on_uniform(model, x, (6, 6)), atol=1e-9)


def test_a_mean_over_the_channels_is_refused() -> None:
    class ChannelMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=1)

    with pytest.raises(ModelLoadError, match="a mean other than over feature maps' positions"):
        load(ChannelMean().eval())


@pytest.mark.parametrize("keepdim", [False, True])
def test_an_exported_mean_over_positions_is_a_global_average_pooling(
    tmp_path: Path, keepdim: bool
) -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = torch.relu(self.conv(x)).mean(dim=(2, 3), keepdim=keepdim)
            return self.fc(torch.flatten(pooled, 1))

    model = Head().eval()
    path = tmp_path / "mean.onnx"
    torch.onnx.export(model, (torch.zeros(1, 2, 6, 6),), str(path), dynamo=False)
    graph, notes = load_onnx(path)
    assert "ReduceMean" in {layer["op"] for layer in notes["onnx"]["channels"]["layers"]}
    x = _probes(graph)
    np.testing.assert_allclose(graph.evaluate(x), _torch_on_uniform(model, x, (6, 6)), atol=1e-5)

"""The ONNX loader against the ONNX reference implementation, on real and hand-built files.

Every numeric check runs the file through ``onnx.reference.ReferenceEvaluator`` (the numpy
implementation shipped with onnx) in float64, so a mismatch can only come from the loader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.load import load
from circuitql.indexer.onnx_loader import load_onnx

ACASXU = Path(__file__).resolve().parents[2].parent / "shared" / "zoo" / "acasxu"
ACASXU_FILES = sorted(ACASXU.glob("*.onnx"))
needs_acasxu = pytest.mark.skipif(
    not ACASXU.is_dir(), reason=f"the ACAS Xu zoo is not at {ACASXU} in this checkout"
)
SOURCE_ID = re.compile(r"^[A-Za-z0-9_]+:\d+$")


def _in_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network with float64 weights and tensors, for an exact reference."""
    double = onnx.ModelProto()
    double.CopyFrom(model)
    graph = double.graph
    constants = [a.t for node in graph.node for a in node.attribute if a.name == "value"]
    for tensor in (*graph.initializer, *constants):
        if tensor.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor).astype(np.float64)
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    for info in (*graph.input, *graph.output, *graph.value_info):
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.DOUBLE
    return double


def _reference(path: Path, x: np.ndarray) -> np.ndarray:
    """The file's outputs on the batch ``x``, all outputs side by side."""
    model = _in_float64(onnx.load(path))
    weights = {t.name for t in model.graph.initializer}
    feed, first = {}, 0
    for graph_input in [i for i in model.graph.input if i.name not in weights]:
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) > 1:
            dims[0].dim_param = "N"  # a fixed batch size too: the reference runs them all
        features = [d.dim_value for d in dims][1:] if len(dims) > 1 else []
        width = int(np.prod(features)) if features else 1
        feed[graph_input.name] = x[:, first : first + width].reshape(len(x), *features)
        first += width
    outputs = ReferenceEvaluator(model).run(None, feed)
    return np.concatenate([np.asarray(o).reshape(len(x), -1) for o in outputs], axis=1)


def _assert_matches_reference(path: Path, graph: NeuronGraph, seed: int = 0) -> None:
    x = np.random.default_rng(seed).normal(size=(64, len(graph.inputs)))
    want = _reference(path, x)
    np.testing.assert_allclose(
        graph.evaluate(x), want, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(want).max()))
    )


def _save(
    tmp_path: Path,
    nodes: Sequence[onnx.NodeProto],
    weights: dict[str, np.ndarray],
    input_shape: Sequence[int | str],
    outputs: Sequence[str] = ("y",),
    opset: int = 17,
) -> Path:
    """Write a one-input network to an ONNX file, as an exporter would."""
    graph = helper.make_graph(
        list(nodes),
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializer=[
            numpy_helper.from_array(np.asarray(value), name) for name, value in weights.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "net.onnx"
    onnx.save(model, path)
    return path


def _rand(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).normal(size=shape).astype(np.float32)


# --- the ACAS Xu zoo: real third-party files ---------------------------------------------------


@needs_acasxu
def test_acasxu_zoo_has_all_45_networks() -> None:
    assert len(ACASXU_FILES) == 45


@needs_acasxu
@pytest.mark.parametrize("path", ACASXU_FILES, ids=lambda p: p.stem)
def test_acasxu_network_loads_with_its_shape_and_function(path: Path) -> None:
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.inputs] == [f"input:{i}" for i in range(5)]
    assert len(graph.outputs) == 5
    assert all(u.activation is Activation.RELU for u in graph.hidden)
    depth = graph.layers
    widths = [sum(depth[u.id] == layer for u in graph.hidden) for layer in range(1, 7)]
    assert widths == [50] * 6  # the input normalisation made no units of its own
    assert all(SOURCE_ID.match(u.id) for u in graph.units)
    assert graph.hidden[0].id == "Operation_1_MatMul:0"
    assert graph.outputs[-1].id == "linear_7_MatMul:4"
    _assert_matches_reference(path, graph)


# --- hand-built files, one construct each ------------------------------------------------------


def test_gemm_with_transposed_weight_alpha_and_beta(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node(
                "Gemm", ["x", "w1", "b1"], ["z"], name="fc1", transB=1, alpha=0.5, beta=2.0
            ),
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], name="fc2"),
        ],
        {"w1": _rand(6, 3), "b1": _rand(6), "w2": _rand(6, 2), "b2": _rand(1, 2)},
        ["N", 3],
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.hidden] == [f"fc1:{i}" for i in range(6)]
    assert [u.id for u in graph.outputs] == ["fc2:0", "fc2:1"]
    _assert_matches_reference(path, graph)


def test_matmul_then_bias_add_is_one_layer_named_after_the_matmul(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("MatMul", ["x", "w1"], ["m"], name="dense/MatMul"),
            helper.make_node("Add", ["m", "b1"], ["z"], name="dense/Add"),
            helper.make_node("Relu", ["z"], ["h"]),
            helper.make_node("MatMul", ["h", "w2"], ["m2"]),
            helper.make_node("Add", ["b2", "m2"], ["y"]),
        ],
        {"w1": _rand(4, 5), "b1": _rand(5), "w2": _rand(5, 3), "b2": _rand(3)},
        ["N", 4],
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.hidden] == [f"dense/MatMul:{i}" for i in range(5)]
    assert [u.id for u in graph.outputs] == ["w2:0", "w2:1", "w2:2"]  # unnamed: its weight
    assert graph["dense/MatMul:2"].bias == pytest.approx(float(_rand(5)[2]))
    _assert_matches_reference(path, graph)


def test_unnamed_node_without_weight_is_named_by_op_and_position(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Sub", ["h", "x"], ["y"])],
        {},
        ["N", 2],
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.hidden] == ["Relu_0:0", "Relu_0:1"]
    _assert_matches_reference(path, graph)  # relu(x) - x == relu(-x)


@pytest.mark.parametrize(
    ("op", "attrs", "activation", "opset"),
    [
        ("Sigmoid", {}, Activation.SIGMOID, 17),
        ("Tanh", {}, Activation.TANH, 17),
        ("LeakyRelu", {"alpha": 0.2}, Activation.LEAKY_RELU, 17),
        ("Gelu", {}, Activation.GELU, 20),
    ],
)
def test_activation(
    tmp_path: Path, op: str, attrs: dict[str, Any], activation: Activation, opset: int
) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], name="fc1", transB=1),
            helper.make_node(op, ["z"], ["h"], name="act", **attrs),
            helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1),
        ],
        {"w1": _rand(4, 3), "b1": _rand(4), "w2": _rand(2, 4)},
        ["N", 3],
        opset=opset,
    )
    graph, _ = load_onnx(path)

    assert {u.activation for u in graph.hidden} == {activation}
    assert all(u.alpha == pytest.approx(attrs.get("alpha", 0.01)) for u in graph.hidden)
    _assert_matches_reference(path, graph)


def test_min_via_skip_connection_concat(tmp_path: Path) -> None:
    """min(a, b) = a - relu(a - b): the input rejoins the hidden unit through a Concat."""
    path = _save(
        tmp_path,
        [
            helper.make_node("MatMul", ["x", "diff"], ["d"], name="diff"),
            helper.make_node("Relu", ["d"], ["h"], name="relu"),
            helper.make_node("Concat", ["x", "h"], ["cat"], name="skip", axis=-1),
            helper.make_node("MatMul", ["cat", "combine"], ["y"], name="out"),
        ],
        {
            "diff": np.array([[1.0], [-1.0]], dtype=np.float32),
            "combine": np.array([[1.0], [0.0], [-1.0]], dtype=np.float32),
        },
        ["N", 2],
    )
    graph, _ = load_onnx(path)

    (hidden,) = graph.hidden
    assert hidden.id == "diff:0"
    assert dict(hidden.inputs) == {"input:0": 1.0, "input:1": -1.0}
    assert dict(graph["out:0"].inputs) == {"input:0": 1.0, "diff:0": -1.0}
    x = np.random.default_rng(3).normal(size=(32, 2))
    np.testing.assert_allclose(graph.evaluate(x)[:, 0], x.min(axis=1), atol=1e-12)
    _assert_matches_reference(path, graph)


def test_residual_add_of_two_vectors(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], name="fc1", transB=1),
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("Gemm", ["h", "w2", "b2"], ["f"], name="fc2", transB=1),
            helper.make_node("Add", ["x", "f"], ["y"], name="residual"),
        ],
        {"w1": _rand(5, 4), "b1": _rand(5), "w2": _rand(4, 5), "b2": _rand(4)},
        ["N", 4],
    )
    graph, _ = load_onnx(path)

    assert graph["fc2:1"].inputs["input:1"] == 1.0
    _assert_matches_reference(path, graph)


def test_multiple_outputs_are_concatenated_in_order(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
            helper.make_node("Tanh", ["h"], ["t"], name="act"),
            helper.make_node("Gemm", ["t", "w2"], ["second"], name="head_b", transB=1),
            helper.make_node("Gemm", ["t", "w3"], ["first"], name="head_a", transB=1),
        ],
        {"w1": _rand(3, 2), "w2": _rand(1, 3), "w3": _rand(2, 3)},
        ["N", 2],
        outputs=("first", "second"),
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.outputs] == ["head_a:0", "head_a:1", "head_b:0"]
    _assert_matches_reference(path, graph)


def test_shape_ops_that_keep_a_feature_vector_are_no_ops(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1),
            helper.make_node("Gemm", ["flat", "w1", "b1"], ["z"], name="fc1", transB=1),
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("Constant", [], ["keep"], value_ints=[0]),
            helper.make_node("Constant", [], ["rest"], value_ints=[-1]),
            helper.make_node("Concat", ["keep", "rest"], ["row"], axis=0),
            helper.make_node("Reshape", ["h", "row"], ["r"], name="reshape"),
            helper.make_node("Unsqueeze", ["r", "axis1"], ["u"], name="unsqueeze"),
            helper.make_node("Squeeze", ["u", "axis1"], ["s"], name="squeeze"),
            helper.make_node("Identity", ["s"], ["i"], name="identity"),
            helper.make_node("Dropout", ["i"], ["o"], name="dropout"),
            helper.make_node("MatMul", ["o", "w2"], ["y"], name="fc2"),
        ],
        {
            "w1": _rand(5, 4),
            "b1": _rand(5),
            "w2": _rand(5, 2),
            "axis1": np.array([1], dtype=np.int64),
        },
        [1, 1, 4],
    )
    graph, _ = load_onnx(path)

    assert len(graph.hidden) == 5 and len(graph.inputs) == 4
    _assert_matches_reference(path, graph)


def test_input_normalisation_folds_into_the_first_layer(tmp_path: Path) -> None:
    mean = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    std = np.array([2.0, 0.5, 4.0], dtype=np.float32)
    w1, b1 = _rand(4, 3), _rand(4)
    path = _save(
        tmp_path,
        [
            helper.make_node("Constant", [], ["mean"], value=numpy_helper.from_array(mean)),
            helper.make_node("Mul", ["half_std", "two"], ["std"]),  # folds to a constant
            helper.make_node("Sub", ["x", "mean"], ["centred"], name="center"),
            helper.make_node("Div", ["centred", "std"], ["scaled"], name="scale"),
            helper.make_node("Gemm", ["scaled", "w1", "b1"], ["z"], name="fc1", transB=1),
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1),
        ],
        {
            "half_std": std / 2,
            "two": np.array(2.0, dtype=np.float32),
            "w1": w1,
            "b1": b1,
            "w2": _rand(2, 4),
        },
        ["N", 3],
    )
    graph, _ = load_onnx(path)

    assert len(graph.hidden) == 4
    weight = w1.astype(np.float64) / std
    bias = b1 - weight @ mean
    for row, unit in enumerate(graph.hidden):
        assert unit.id == f"fc1:{row}"
        got = [unit.inputs[f"input:{j}"] for j in range(3)]
        np.testing.assert_allclose(got, weight[row], rtol=1e-12)
        assert unit.bias == pytest.approx(bias[row], rel=1e-12)
    _assert_matches_reference(path, graph)


def test_constant_minus_vector_and_a_one_dimensional_weight(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Sub", ["c", "x"], ["d"], name="flip"),
            helper.make_node("MatMul", ["d", "w1"], ["z"], name="fc1"),
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),  # (N, 4) @ (4,)
        ],
        {"c": _rand(3), "w1": _rand(3, 4), "w2": _rand(4)},
        ["N", 3],
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.outputs] == ["fc2:0"]
    _assert_matches_reference(path, graph)


def test_constant_matrix_times_an_unbatched_vector(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("MatMul", ["w1", "x"], ["z"], name="fc1"),  # (4, 3) @ (3,)
            helper.make_node("Relu", ["z"], ["h"], name="act"),
            helper.make_node("MatMul", ["w2", "h"], ["y"], name="fc2"),
        ],
        {"w1": _rand(4, 3), "w2": _rand(2, 4)},
        [3],
    )
    graph, _ = load_onnx(path)

    assert [u.id for u in graph.hidden] == [f"fc1:{i}" for i in range(4)]
    reference = ReferenceEvaluator(_in_float64(onnx.load(path)))
    x = np.random.default_rng(5).normal(size=(8, 3))
    want = np.stack([reference.run(None, {"x": row})[0] for row in x])
    np.testing.assert_allclose(graph.evaluate(x), want, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter announces itself
def test_torch_export_of_an_mlp(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2))
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(model, torch.zeros(1, 3), path, dynamo=False)
    graph, _ = load_onnx(path)

    # Units are named by module path, as indexing the module itself names them.
    assert [u.id for u in graph.hidden][:2] == ["0:0", "0:1"]
    assert [u.id for u in load(model).graph.units] == [u.id for u in graph.units]
    assert len(graph.hidden) == 14 and len(graph.outputs) == 2
    x = np.random.default_rng(4).normal(size=(64, 3))
    with torch.no_grad():
        want = model.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(graph.evaluate(x), want, rtol=1e-9, atol=1e-12)


def test_torch_exports_of_the_exact_gelu_read_back_as_gelu_units(tmp_path: Path) -> None:
    """Before opset 20 an exact GELU is exported as Div, Erf, Add and two Muls: nn.GELU, and
    the x * 0.5 * (1 + erf(x / sqrt(2))) that model libraries write out by hand."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class ErfGelu(nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    torch.manual_seed(0)
    for i, gelu in enumerate((nn.GELU(), ErfGelu())):
        model = nn.Sequential(nn.Linear(3, 8), gelu, nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
        path = tmp_path / f"gelu{i}.onnx"
        torch.onnx.export(model, torch.zeros(1, 3), path, dynamo=False, opset_version=17)
        assert "Erf" in {n.op_type for n in onnx.load(path).graph.node}
        graph, meta = load_onnx(path)

        assert [u.activation for u in graph.hidden[:8]] == [Activation.GELU] * 8
        if isinstance(gelu, nn.GELU):  # named as indexing the module itself names them
            assert [u.id for u in load(model).graph.units] == [u.id for u in graph.units]
        assert len(meta["onnx"]["gelu_from_erf"]) == 1
        x = np.random.default_rng(4).normal(size=(64, 3)) * 3
        with torch.no_grad():
            want = model.double()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(graph.evaluate(x), want, rtol=1e-9, atol=1e-12)


def _erf_gelu(
    tmp_path: Path,
    scale: tuple[str, float] = ("Div", math.sqrt(2.0)),
    half_first: bool = False,
    outputs: Sequence[str] = ("y",),
) -> Path:
    """fc -> a GELU written out in five nodes -> fc, the constants as Constant nodes."""
    op, value = scale
    constants = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.float32(v)))
        for name, v in (("c", value), ("one", 1.0), ("half", 0.5))
    ]
    if half_first:  # (0.5 * x) * (1 + erf(x / sqrt(2)))
        ends = [
            helper.make_node("Mul", ["half", "z"], ["hz"]),
            helper.make_node("Mul", ["hz", "p"], ["h"]),
        ]
    else:  # (x * (1 + erf(x / sqrt(2)))) * 0.5
        ends = [
            helper.make_node("Mul", ["z", "p"], ["zp"]),
            helper.make_node("Mul", ["zp", "half"], ["h"]),
        ]
    return _save(
        tmp_path,
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], name="fc1", transB=1),
            *constants,
            helper.make_node(op, ["z", "c"], ["s"]),
            helper.make_node("Erf", ["s"], ["e"], name="act/Erf"),
            helper.make_node("Add", ["one", "e"], ["p"]),
            *ends,
            helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1),
        ],
        {"w1": _rand(4, 3), "b1": _rand(4), "w2": _rand(2, 4)},
        ["N", 3],
        outputs=outputs,
    )


@pytest.mark.parametrize("half_first", [False, True])
@pytest.mark.parametrize("scale", [("Div", math.sqrt(2.0)), ("Mul", 1.0 / math.sqrt(2.0))])
def test_a_gelu_written_out_in_five_nodes_is_one_gelu_unit_each(
    tmp_path: Path, scale: tuple[str, float], half_first: bool
) -> None:
    path = _erf_gelu(tmp_path, scale, half_first)
    graph, meta = load_onnx(path)
    assert [u.activation for u in graph.hidden] == [Activation.GELU] * 4
    assert meta["onnx"]["gelu_from_erf"] == ["act/Erf"]
    _assert_matches_reference(path, graph)


@pytest.mark.parametrize(
    ("scale", "outputs"),
    [(("Div", 2.0), ("y",)), (("Div", math.sqrt(2.0)), ("y", "e"))],
    ids=["another-constant", "an-intermediate-read-elsewhere"],
)
def test_an_erf_that_is_not_an_exact_gelu_is_still_refused(
    tmp_path: Path, scale: tuple[str, float], outputs: Sequence[str]
) -> None:
    with pytest.raises(ModelLoadError, match="Erf node 'act/Erf' is not supported"):
        load_onnx(_erf_gelu(tmp_path, scale, outputs=outputs))


# --- what it refuses -----------------------------------------------------------------------------


def test_unsupported_op_names_the_op_the_node_and_the_supported_ops(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [helper.make_node("ConvTranspose", ["x", "k"], ["y"], name="deconv1")],
        {"k": _rand(1, 1, 3)},
        ["N", 1, 8],
    )
    with pytest.raises(ModelLoadError) as err:
        load_onnx(path)

    message = str(err.value)
    assert "ConvTranspose" in message and "'deconv1'" in message
    assert str(path) in message and "Gemm" in message and "MatMul" in message


@pytest.mark.parametrize(
    ("node", "weights", "expected"),
    [
        (helper.make_node("Mul", ["x", "x"], ["y"], name="square"), {}, "Mul"),
        (helper.make_node("MatMul", ["x", "x"], ["y"], name="gram"), {}, "MatMul"),
        (helper.make_node("Concat", ["x", "x"], ["y"], name="stack", axis=0), {}, "axis 0"),
        (
            helper.make_node("Reshape", ["x", "shape"], ["y"], name="to_batch"),
            {"shape": np.array([-1, 1], dtype=np.int64)},
            "Reshape",
        ),
        (
            helper.make_node("Div", ["one", "x"], ["y"], name="inverse"),
            {"one": np.ones(3, dtype=np.float32)},
            "Div",
        ),
    ],
    ids=[
        "mul-of-vectors",
        "matmul-of-vectors",
        "concat-along-batch",
        "reshape-into-batch",
        "constant-over-vector",
    ],
)
def test_non_affine_or_non_vector_use_is_refused(
    tmp_path: Path, node: onnx.NodeProto, weights: dict[str, np.ndarray], expected: str
) -> None:
    path = _save(tmp_path, [node], weights, ["N", 3])
    with pytest.raises(ModelLoadError, match=expected) as err:
        load_onnx(path)
    assert node.name in str(err.value)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (helper.make_node("Relu", ["x"], [], name="mute"), "'mute' has no output"),
        (helper.make_node("Add", ["x"], ["y"], name="lone"), "'lone' lacks an operand"),
        (helper.make_node("Gemm", ["x"], ["y"], name="bare"), "'bare' lacks an operand"),
        (helper.make_node("Reshape", ["x"], ["y"], name="shapeless"), "'shapeless' lacks an"),
    ],
    ids=["no-output", "add-of-one", "gemm-without-weight", "reshape-without-shape"],
)
def test_a_node_without_its_output_or_an_operand_is_refused(
    tmp_path: Path, node: onnx.NodeProto, expected: str
) -> None:
    path = _save(tmp_path, [node], {}, ["N", 3])
    with pytest.raises(ModelLoadError, match=expected):
        load_onnx(path)


def _one_gemm(tmp_path: Path, outputs: int, inputs: int) -> Path:
    """A network of one Gemm layer, named fc, with weight w."""
    return _save(
        tmp_path,
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
        {"w": _rand(outputs, inputs)},
        ["N", inputs],
    )


def test_a_tensor_of_no_element_type_is_refused(tmp_path: Path) -> None:
    path = _one_gemm(tmp_path, 2, 3)
    model = onnx.load(path)
    model.graph.initializer[0].data_type = TensorProto.UNDEFINED
    onnx.save(model, path)
    with pytest.raises(ModelLoadError, match="tensor 'w' of shape \\[2, 3\\] cannot be read"):
        load_onnx(path)


def test_truncated_file(tmp_path: Path) -> None:
    whole = _one_gemm(tmp_path, 16, 16)
    truncated = tmp_path / "truncated.onnx"
    data = whole.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(ModelLoadError) as err:
        load_onnx(truncated)
    assert err.value.where == str(truncated) and err.value.fix


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_onnx(tmp_path / "absent.onnx")


def test_nan_weight_is_named(tmp_path: Path) -> None:
    weight = _rand(2, 3)
    weight[1, 2] = np.nan
    path = _save(
        tmp_path,
        [helper.make_node("Gemm", ["x", "fc.weight"], ["y"], name="fc", transB=1)],
        {"fc.weight": weight},
        ["N", 3],
    )
    with pytest.raises(ModelLoadError, match=r"'fc\.weight'.*NaN"):
        load_onnx(path)


def test_several_inputs_are_consecutive_blocks_of_network_inputs(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
            helper.make_node("Gemm", ["ab", "w"], ["h"], transB=1, name="fc1"),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(_rand(4, 5), "w")],
    )
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    graph_, notes = load_onnx(path)
    assert [u.id for u in graph_.inputs] == [f"input:{i}" for i in range(5)]
    assert notes["onnx"]["inputs"] == [
        {"name": "a", "shape": [2], "first": 0, "count": 2},
        {"name": "b", "shape": [3], "first": 2, "count": 3},
    ]
    _assert_matches_reference(path, graph_)


def test_an_image_shaped_input_is_flattened_in_row_major_order(tmp_path: Path) -> None:
    # (N, 1, 4, 4) normalized per pixel, then flattened into the first layer: input:i is the
    # i-th pixel in row-major order of (1, 4, 4).
    path = _save(
        tmp_path,
        [
            helper.make_node("Sub", ["x", "mean"], ["centered"]),
            helper.make_node("Flatten", ["centered"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"], transB=1, name="fc1"),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2"),
        ],
        {"mean": _rand(1, 1, 4, 4), "w1": _rand(6, 16), "b1": _rand(6), "w2": _rand(2, 6)},
        ["N", 1, 4, 4],
    )
    graph, notes = load_onnx(path)
    assert len(graph.inputs) == 16
    assert notes["onnx"]["inputs"][0]["shape"] == [1, 4, 4]
    _assert_matches_reference(path, graph)


def test_a_fixed_batch_size_is_read_as_the_batch(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
        {"w": _rand(3, 5)},
        [25, 5],
    )
    graph, _ = load_onnx(path)
    assert len(graph.inputs) == 5
    _assert_matches_reference(path, graph)


@pytest.mark.parametrize(
    ("batch", "dynamic", "folded"),
    [
        (2, True, True),  # x.view(x.size(0), -1) with a symbolic batch: Shape, Gather, Concat
        (25, False, False),  # a fixed batch written into the shape arithmetic: (25, -1)
        (25, False, True),  # ... folded by the exporter into one Reshape to (25, -1)
    ],
)
def test_exported_views_of_the_batch_read_one_sample(
    tmp_path: Path, batch: int, dynamic: bool, folded: bool
) -> None:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.out = nn.Linear(16, 5), nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.fc1(x.view(x.size(0), -1))))

    model, path = Net().eval(), tmp_path / "view.onnx"
    torch.onnx.export(
        model,
        (torch.randn(batch, 1, 4, 4),),
        str(path),
        input_names=["x"],
        dynamic_axes={"x": {0: "N"}} if dynamic else None,
        do_constant_folding=folded,
        dynamo=False,
    )
    graph, _ = load_onnx(path)
    x = np.random.default_rng(3).normal(size=(10, 16))
    with torch.no_grad():
        expected = model(torch.tensor(x, dtype=torch.float32).view(10, 1, 4, 4)).numpy()
    np.testing.assert_allclose(graph.evaluate(x), expected, atol=1e-5)
    assert [u.id for u in graph.hidden] == [f"fc1:{i}" for i in range(5)]


def test_batch_normalization_folds_into_the_affine_maps(tmp_path: Path) -> None:
    bn = {"s": _rand(6) + 2, "b": _rand(6), "m": _rand(6), "v": np.abs(_rand(6)) + 0.5}
    image_bn = {f"c{k}": np.abs(v[:2]) + 0.1 for k, v in bn.items()}
    path = _save(
        tmp_path,
        [
            helper.make_node(
                "BatchNormalization", ["x", "cs", "cb", "cm", "cv"], ["xn"], epsilon=1e-3
            ),
            helper.make_node("Transpose", ["xn"], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Flatten", ["nhwc"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w1"], ["h"], transB=1, name="fc1"),
            helper.make_node("BatchNormalization", ["h", "s", "b", "m", "v"], ["hn"]),
            helper.make_node("Relu", ["hn"], ["r"]),
            helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2"),
        ],
        {**bn, **image_bn, "w1": _rand(6, 8), "w2": _rand(2, 6)},
        ["N", 2, 2, 2],
    )
    graph, notes = load_onnx(path)
    assert len(graph.hidden) == 6 and len(notes["onnx"]["folded"]) == 2
    _assert_matches_reference(path, graph)


def softmax_classifier(tmp_path: Path) -> Path:
    """3 inputs, 4 ReLUs, 3 scores, then a Softmax: an exported classifier's last step."""
    return _save(
        tmp_path,
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2"], ["logits"], transB=1, name="fc2"),
            helper.make_node("Softmax", ["logits"], ["y"], axis=1),
        ],
        {"w1": _rand(4, 3), "w2": _rand(3, 4)},
        ["N", 3],
    )


def test_a_softmax_at_the_end_is_recorded_and_its_scores_kept(tmp_path: Path) -> None:
    path = softmax_classifier(tmp_path)
    graph, notes = load_onnx(path)
    assert notes["onnx"]["output_activation"] == "softmax"
    x = np.random.default_rng(0).normal(size=(32, 3))
    scores = graph.evaluate(x)
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, _reference(path, x), rtol=1e-6, atol=1e-9)


def test_a_softmax_before_the_end_is_refused(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Softmax", ["x"], ["p"], axis=1, name="attention"),
            helper.make_node("Gemm", ["p", "w"], ["y"], transB=1, name="fc"),
        ],
        {"w": _rand(2, 3)},
        ["N", 3],
    )
    with pytest.raises(ModelLoadError, match="Softmax") as err:
        load_onnx(path)
    assert "'fc'" in str(err.value)


def test_constant_feature_ranges_are_sliced_and_gathered(tmp_path: Path) -> None:
    path = _save(
        tmp_path,
        [
            helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["tail"], name="tail"),
            helper.make_node("Gather", ["x", "picked"], ["some"], axis=1, name="pick"),
            helper.make_node("Concat", ["tail", "some"], ["joined"], axis=1),
            helper.make_node("Gemm", ["joined", "w"], ["y"], transB=1, name="fc"),
        ],
        {
            "starts": np.array([2], dtype=np.int64),
            "ends": np.array([6], dtype=np.int64),
            "axes": np.array([1], dtype=np.int64),
            "picked": np.array([5, 0], dtype=np.int64),
            "w": _rand(2, 6),
        },
        ["N", 6],
    )
    graph, _ = load_onnx(path)
    assert set(graph["fc:0"].inputs) == {f"input:{i}" for i in (0, 2, 3, 4, 5)}
    _assert_matches_reference(path, graph)


def test_torch_export_of_an_image_classifier_with_batch_norm(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(12, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(8, 3),
        torch.nn.LogSoftmax(dim=1),
    )
    with torch.no_grad():
        model[2].running_mean.uniform_(-1, 1)
        model[2].running_var.uniform_(0.5, 2)
    model.eval()
    path = tmp_path / "classifier.onnx"
    torch.onnx.export(
        model, (torch.randn(1, 3, 2, 2),), str(path), input_names=["image"], dynamo=False
    )
    graph, notes = load_onnx(path)
    assert notes["onnx"]["output_activation"] == "logsoftmax"
    x = np.random.default_rng(1).normal(size=(16, 12))
    with torch.no_grad():
        want = model(torch.tensor(x.reshape(16, 3, 2, 2), dtype=torch.float32)).numpy()
    scores = graph.evaluate(x)
    got = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_huge_declared_input_is_refused_before_any_memory_is_spent(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], {}, [1, 50_000_000])
    assert path.stat().st_size < 200
    with pytest.raises(ModelLoadError, match="50,000,000 units, more than the 8,192"):
        load_onnx(path)


def test_a_tensor_declaring_more_values_than_any_layer_is_refused_unread(tmp_path: Path) -> None:
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[100_000, 100_000])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[tensor],
    )
    onnx.save(helper.make_model(graph), tmp_path / "huge.onnx")
    with pytest.raises(ModelLoadError, match="10,000,000,000 values"):
        load_onnx(tmp_path / "huge.onnx")


def test_external_data_claiming_more_than_its_file_is_refused(tmp_path: Path) -> None:
    tensor = numpy_helper.from_array(np.zeros((4, 3), dtype=np.float32), "w")
    onnx.external_data_helper.set_external_data(tensor, location="w.bin", offset=0, length=10**12)
    tensor.ClearField("raw_data")
    (tmp_path / "w.bin").write_bytes(np.ones(12, np.float32).tobytes())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[tensor],
    )
    onnx.save(helper.make_model(graph), tmp_path / "external.onnx")
    with pytest.raises(ModelLoadError, match=r"exceeds available data|cannot be read"):
        load_onnx(tmp_path / "external.onnx")

"""Load a feed-forward ONNX network into a ``NeuronGraph`` without running it.

The file is only parsed (``onnx.load``); nothing in it is executed, and no runtime is needed.
Walking the nodes in order, every tensor is either a constant (initializers, ``Constant``
nodes, and anything computed only from constants, such as shape arithmetic) or a symbolic
feature vector. Constants fold in numpy; nodes that touch the feature vector recompose affine
functions, so an input normalisation (``Sub`` of a mean, ``Div`` by a scale) lands in the
first layer's weights and biases, and only activations create neurons.

A feature vector keeps the tensor shape ONNX sees for it, with the batch taken as 1: every
dimension but the last is 1. Tracking that shape is what tells a no-op ``Reshape`` from one
that would fold features into the batch, and the feature axis of a ``Concat`` from another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import Error as ProtobufError
from onnx import numpy_helper

from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.affine import (
    AffineVec,
    GraphBuilder,
    ShapeError,
    check_model_size,
    check_tensor_size,
)
from circuitql.indexer.channels import (
    ChannelMap,
    ChannelNotes,
    conv_matrix,
    dense_on_channels,
    expanded,
    per_channel,
    window_output,
)
from circuitql.indexer.gelu_pattern import TANH_APPROXIMATION
from circuitql.indexer.onnx_patterns import fuse_erf_gelus


@dataclass(frozen=True)
class Features:
    """A symbolic feature vector and its ONNX tensor shape (batch taken as 1)."""

    vec: AffineVec
    shape: tuple[int, ...]


Value = np.ndarray | Features | ChannelMap


@dataclass(frozen=True)
class _Node:
    proto: onnx.NodeProto
    index: int
    attrs: dict[str, Any]

    @property
    def label(self) -> str:
        name = repr(self.proto.name) if self.proto.name else f"#{self.index} (unnamed)"
        return f"{self.proto.op_type} node {name}"

    def module(self, weight: str = "") -> str:
        """The stable name that prefixes this node's source ids ("<module>:<row>"): the
        module path when the weight is named as PyTorch's exporter names it (``fc1.weight``
        gives ``fc1``, the ids indexing the nn.Module itself gives), else the node's name."""
        if weight.endswith(".weight") and len(weight) > len(".weight"):
            return weight[: -len(".weight")]
        return self.proto.name or weight or f"{self.proto.op_type}_{self.index}"


def load_onnx(path: Path) -> tuple[NeuronGraph, dict[str, Any]]:
    """Read the ONNX file at ``path`` into a neuron graph (inputs are "input:<i>"), with
    notes on what was read that the graph does not show (``"onnx"`` in the model's meta)."""
    try:
        model = onnx.load(str(path))
    except (OSError, ValueError, ProtobufError, onnx.checker.ValidationError) as exc:
        # ValueError: external data that is missing, or shorter than it claims
        raise ModelLoadError(
            f"cannot read the ONNX file ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="check that the path names a complete, uncorrupted .onnx file; re-export or "
            "download it again",
        ) from exc
    return _Converter(model.graph, str(path)).run()


class _Converter:
    def __init__(self, graph: onnx.GraphProto, where: str) -> None:
        self.graph = graph
        self.where = where
        self.builder = GraphBuilder()
        self.values: dict[str, Value] = {}
        self.notes: dict[str, Any] = {}
        self.final: set[str] = set()  # tensors only a graph output may be (a Softmax's)
        # Batch sizes the inputs declare (25 in [25, 5]): a Reshape to (25, -1) keeps them.
        self.batches: set[int] = set()
        self.channels = ChannelNotes()
        # A network with a convolution reads its image inputs as channels (channels.py).
        self.convolutional = any(n.op_type == "Conv" for n in graph.node)

    def run(self) -> tuple[NeuronGraph, dict[str, Any]]:
        check_model_size(sum(math.prod(t.dims) for t in self.graph.initializer), self.where)
        for tensor in self.graph.initializer:
            self.values[tensor.name] = self._finite(tensor.name, self._array(tensor))
        self._inputs()
        nodes, gelus = fuse_erf_gelus(self.graph)
        if gelus:
            self.notes["gelu_from_erf"] = gelus
        for index, proto in enumerate(nodes):
            node = _Node(
                proto, index, {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}
            )
            if not proto.output:
                raise self._error(
                    f"{node.label} has no output", "check that the file is a valid ONNX model"
                )
            self.values[proto.output[0]] = self._apply(node)
        if not self.graph.output:
            raise self._error("the graph has no outputs", "export the network with its outputs")
        outputs = [self._output(out.name) for out in self.graph.output]
        if self.channels.layers:
            self.notes["channels"] = self.channels.to_json()
        return self.builder.finish(AffineVec.concat(outputs)), (
            {"onnx": self.notes} if self.notes else {}
        )

    # --- the graph's ends ---------------------------------------------------------------

    def _inputs(self) -> None:
        """Every graph input that is not an initializer, as consecutive blocks of network
        inputs. The first dimension of a tensor of rank 2 or more is the batch, whatever its
        size; the others are features, numbered in row-major order."""
        inputs = [i for i in self.graph.input if i.name not in self.values]
        if not inputs:
            raise self._error("the graph has no input", "export the network with its input")
        blocks = []
        for graph_input in inputs:
            name, tensor_type = graph_input.name, graph_input.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
            if len(dims) >= 2:
                if dims[0] is not None and dims[0] > 1:
                    self.batches.add(dims[0])
                dims[0] = 1  # the batch: a neuron graph reads one sample at a time
            known = [d for d in dims if d is not None]
            if (
                not tensor_type.HasField("shape")
                or not dims
                or len(known) != len(dims)
                or math.prod(known) < 1
            ):
                raise self._error(
                    f"input {name!r} has shape {_shape_text(tensor_type)}: every dimension "
                    "but the batch must have a known size",
                    "export the network with fixed feature dimensions (only the first, the "
                    "batch, may be symbolic)",
                )
            shape = tuple(known)
            first = self.builder.n_inputs
            block = {"name": name, "shape": list(shape[1:] if len(shape) > 1 else shape)}
            if self.convolutional and len(shape) >= 3:
                units = self.builder.inputs(shape[1])
                self.values[name] = ChannelMap(units, shape[2:])
                block["channels"] = True
            else:
                units = self.builder.inputs(math.prod(shape))
                self.values[name] = Features(units, shape)
            blocks.append({**block, "first": first, "count": len(units)})
        if len(blocks) > 1 or any(len(b["shape"]) > 1 for b in blocks):
            self.notes["inputs"] = blocks

    def _output(self, name: str) -> AffineVec:
        self.final.discard(name)
        value = self.values.get(name)
        if value is None:
            raise self._error(
                f"graph output {name!r} is produced by no node", "re-export the network"
            )
        if isinstance(value, np.ndarray):
            raise self._error(
                f"graph output {name!r} is a constant",
                "export only outputs that depend on the input",
            )
        if isinstance(value, ChannelMap):
            try:
                return expanded(value)
            except ShapeError as exc:
                raise self._error(str(exc), "index the network up to a pooled layer") from None
        return value.vec

    # --- nodes ----------------------------------------------------------------------------

    def _apply(self, node: _Node) -> Value:
        proto = node.proto
        handler = _HANDLERS.get(proto.op_type)
        if handler is None or proto.domain not in ("", "ai.onnx"):
            why = _ONLY_INSIDE.get(proto.op_type, "")
            raise self._unsupported(node, f"is not supported{why}")
        args = [self._read(node, name) if name else None for name in proto.input]
        try:
            return handler(self, node, args)
        except ValueError as exc:  # numpy or AffineVec shape mismatches: a malformed file
            raise self._error(
                f"{node.label} cannot be applied to its operands: {exc}",
                "check that the file is a valid ONNX model (onnx.checker)",
            ) from exc
        except (IndexError, KeyError) as exc:  # an operand or attribute the op needs is not there
            raise self._error(
                f"{node.label} lacks an operand or attribute it needs ({len(args)} operands, "
                f"attributes {sorted(node.attrs) or 'none'})",
                "check that the file is a valid ONNX model (onnx.checker)",
            ) from exc

    def _read(self, node: _Node, name: str) -> Value:
        if name in self.final:
            raise self._unsupported(
                node,
                f"reads {name!r}, the output of a Softmax; circuitql "
                "reads a Softmax only as the network's last step",
            )
        if name not in self.values:
            raise self._error(
                f"{node.label} reads tensor {name!r}, which no initializer, input or earlier "
                "node provides",
                "re-export the network; its nodes must be in topological order",
            )
        return self.values[name]

    def _constant(self, node: _Node, args: list[Value | None]) -> Value:
        ((key, raw),) = node.attrs.items()
        if key == "value":
            array = self._array(raw)
        elif key in ("value_float", "value_floats"):
            array = np.asarray(raw, dtype=np.float32)
        elif key in ("value_int", "value_ints"):
            array = np.asarray(raw, dtype=np.int64)
        else:
            raise self._unsupported(node, f"holds a {key!r}, not a dense numeric tensor")
        return self._finite(node.proto.output[0], array)

    def _constant_of_shape(self, node: _Node, args: list[Value | None]) -> Value:
        """A constant tensor of a constant shape (shape arithmetic around a Pad)."""
        shape = self._constant_arg(node, _given(args[0]))
        assert shape is not None
        check_tensor_size(node.proto.output[0], math.prod(_ints(shape)), self.where)
        value = node.attrs.get("value")
        fill = self._array(value) if value is not None else np.zeros(1, dtype=np.float32)
        return np.full(_ints(shape), fill.reshape(-1)[0], dtype=fill.dtype)

    def _pad(self, node: _Node, args: list[Value | None]) -> Value:
        """Padding: of a constant, computed; of feature maps, their new size. Padding that
        repeats the map (edge, reflect, wrap) keeps a uniform map uniform; a constant border
        makes the borders differ, which is recorded as zero padding is (channels.py)."""
        x = _given(args[0])
        pads = _ints(self._constant_arg(node, args[1]) if len(args) > 1 else node.attrs["pads"])
        mode = node.attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        rank = len(_shape_of(x)) if not isinstance(x, np.ndarray) else x.ndim
        axes = args[3] if len(args) > 3 and args[3] is not None else None
        listed = _ints(self._constant_arg(node, axes)) if axes is not None else list(range(rank))
        if len(pads) != 2 * len(listed) or min(pads, default=0) < 0:
            raise ShapeError(
                f"Pad needs two non-negative pads for each of {len(listed)} axes, got {pads}"
            )
        full = [0] * (2 * rank)
        for i, axis in enumerate(listed):
            full[axis % rank], full[axis % rank + rank] = pads[i], pads[i + len(listed)]
        if isinstance(x, np.ndarray):
            fill = self._constant_arg(node, args[2]) if len(args) > 2 and args[2] else None
            widths = list(zip(full[:rank], full[rank:], strict=True))
            padded = math.prod(d + lo + hi for d, (lo, hi) in zip(x.shape, widths, strict=True))
            check_tensor_size(node.proto.output[0], padded, self.where)
            numpy_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect"}
            if mode not in numpy_mode and mode != "wrap":
                raise self._unsupported(node, f"pads in mode {mode!r}")
            if mode == "constant":
                value = 0 if fill is None else fill.reshape(-1)[0]
                return np.pad(x, widths, mode="constant", constant_values=value)
            return np.pad(x, widths, mode=numpy_mode.get(mode, "wrap"))  # type: ignore[call-overload]
        if not isinstance(x, ChannelMap) or x.flat or any(full[i] for i in (0, 1, rank, rank + 1)):
            raise self._unsupported(node, "pads something other than feature maps' positions")
        assert x.spatial is not None
        spatial = tuple(size + full[2 + i] + full[2 + i + rank] for i, size in enumerate(x.spatial))
        self.channels.record(
            node.module(),
            "Pad",
            zero_padding=mode == "constant" and any(full),
            pads=full,
            mode=mode,
        )
        return ChannelMap(x.vec, spatial)

    def _passthrough(self, node: _Node, args: list[Value | None]) -> Value:
        training = args[2] if len(args) > 2 else None
        if isinstance(training, np.ndarray) and training.any():
            raise self._unsupported(node, "runs in training mode (random)")
        return _given(args[0])

    def _reshape(self, node: _Node, args: list[Value | None]) -> Value:
        """Flatten/Reshape/Squeeze/Unsqueeze: the same numpy call gives a constant's new value
        and a feature vector's new shape."""
        x = _given(args[0])
        data = x if isinstance(x, np.ndarray) else np.zeros(_shape_of(x))
        extra = [self._constant_arg(node, a) for a in args[1:]]
        if node.proto.op_type == "Reshape" and not isinstance(x, np.ndarray) and extra:
            extra[0] = self._one_sample(extra[0])
        out = _RESHAPES[node.proto.op_type](data, extra, node.attrs)
        if isinstance(x, np.ndarray):
            return out
        if isinstance(x, ChannelMap):
            return self._reshaped_maps(node, x, out.shape)
        return Features(x.vec, self._vector_shape(node, out.shape))

    def _reshaped_maps(self, node: _Node, x: ChannelMap, shape: tuple[int, ...]) -> ChannelMap:
        """Maps flattened into a (batch, features) vector, or reshaped into maps of the same
        channels (a Squeeze of a pooled 1 x 1 map's axes)."""
        if _is_vector(shape) and len(shape) >= 2:
            return ChannelMap(x.vec, x.spatial, flat=True)
        if len(shape) >= 2 and shape[:2] == (1, len(x.vec)) and not x.flat:
            return ChannelMap(x.vec, shape[2:])
        raise self._unsupported(
            node,
            f"reshapes feature maps of shape {_shape_of(x)} into {shape}; maps are read "
            "flattened into a (batch, features) vector, or with their channels kept",
        )

    def _one_sample(self, target: np.ndarray | None) -> np.ndarray | None:
        """A Reshape's target for one sample: an exporter that saw a fixed batch (25) writes
        (25, -1); the graph reads one sample, so the leading 25 is the batch, 1."""
        if (
            target is None
            or target.ndim != 1
            or len(target) < 2
            or int(target[0]) not in (self.batches)
        ):
            return target
        return np.concatenate([[1], target[1:]]).astype(target.dtype)

    def _shape(self, node: _Node, args: list[Value | None]) -> Value:
        """A tensor's shape, for the shape arithmetic exporters write around a Reshape
        (``x.view(x.size(0), -1)``); a feature tensor's batch is one sample, 1."""
        x = _given(args[0])
        shape = _shape_of(x)
        start, end = node.attrs.get("start", 0), node.attrs.get("end")
        return np.asarray(shape[start:end], dtype=np.int64)

    def _cast(self, node: _Node, args: list[Value | None]) -> Value:
        """A constant's new type (shape arithmetic casts its integers); features stay real
        numbers, so casting them to a float type is a no-op and to any other is refused."""
        x = _given(args[0])
        to = onnx.helper.tensor_dtype_to_np_dtype(int(node.attrs["to"]))
        if isinstance(x, np.ndarray):
            return x.astype(to)
        if not np.issubdtype(to, np.floating):
            raise self._unsupported(node, f"casts the features to {to}, which rounds them")
        return x

    def _arith(self, node: _Node, args: list[Value | None]) -> Value:
        op = node.proto.op_type
        a, b = _given(args[0]), _given(args[1])
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return _FOLD[op](a, b).astype(np.result_type(a, b))
        if isinstance(a, ChannelMap) or isinstance(b, ChannelMap):
            return self._arith_maps(node, a, b)
        if isinstance(a, Features) and isinstance(b, Features):
            if op not in ("Add", "Sub"):
                raise self._unsupported(
                    node,
                    f"applies {op} to two variable vectors, which "
                    "is not affine; only Add/Sub of vectors are",
                )
            shape = self._vector_shape(node, np.broadcast_shapes(a.shape, b.shape))
            return Features(a.vec + b.vec if op == "Add" else a.vec - b.vec, shape)
        vector_first = isinstance(a, Features)
        x, c = (a, b) if vector_first else (b, a)
        assert isinstance(x, Features) and isinstance(c, np.ndarray)
        shape = self._vector_shape(node, np.broadcast_shapes(x.shape, c.shape))
        if math.prod(shape) != len(x.vec):
            raise self._unsupported(
                node, f"broadcasts a {len(x.vec)}-feature vector to shape {shape}"
            )
        const = np.broadcast_to(c, shape).reshape(-1).astype(np.float64)
        scale, shift = self._by_constant(node, const, vector_first)
        return Features(x.vec.affine_elementwise(scale, shift), shape)

    def _by_constant(
        self, node: _Node, const: np.ndarray, vector_first: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The elementwise ``scale`` and ``shift`` of Add/Sub/Mul/Div between a variable and
        ``const`` (one value per feature, or per channel of feature maps)."""
        op = node.proto.op_type
        if op == "Div" and not vector_first:
            raise self._unsupported(node, "divides a constant by a variable, which is not affine")
        if op == "Div" and not const.all():
            raise self._unsupported(node, "divides by a constant that contains zeros")
        ones, zeros = np.ones_like(const), np.zeros_like(const)
        if op == "Add":
            return ones, const
        if op == "Sub":
            return (ones, -const) if vector_first else (-ones, const)
        if op == "Mul":
            return const, zeros
        return 1.0 / const, zeros

    def _arith_maps(self, node: _Node, a: Value, b: Value) -> Value:
        """Elementwise arithmetic on feature maps: two maps added or subtracted (a residual),
        or a map and a constant per channel (a normalization)."""
        op = node.proto.op_type
        if isinstance(a, ChannelMap) and isinstance(b, ChannelMap):
            if op not in ("Add", "Sub") or a.spatial != b.spatial or a.flat != b.flat:
                raise self._unsupported(
                    node, f"applies {op} to two feature maps; only Add/Sub of maps alike are"
                )
            return a.with_vec(a.vec + b.vec if op == "Add" else a.vec - b.vec)
        maps_first = isinstance(a, ChannelMap)
        x, c = (a, b) if maps_first else (b, a)
        if not isinstance(x, ChannelMap) or not isinstance(c, np.ndarray):
            raise self._unsupported(node, f"applies {op} to a feature map and a vector")
        const = per_channel(c, x)
        if const is None:
            raise self._unsupported(
                node,
                f"applies {op} by a constant of shape {c.shape} that varies across "
                "positions; a channel graph takes one value per channel",
            )
        scale, shift = self._by_constant(node, const, maps_first)
        return x.with_vec(x.vec.affine_elementwise(scale, shift))

    def _conv(self, node: _Node, args: list[Value | None]) -> Value:
        """A convolution: on uniform maps, a linear map between channels whose weights are
        the kernels' sums (channels.py)."""
        x, weight = _given(args[0]), _given(args[1])
        bias = args[2] if len(args) > 2 else None
        if not isinstance(x, ChannelMap) or x.flat or not isinstance(weight, np.ndarray):
            raise self._unsupported(
                node, "needs feature maps as its input and constant kernels as its weights"
            )
        if isinstance(bias, ChannelMap | Features):
            raise self._unsupported(node, "has a variable bias")
        module = node.module(node.proto.input[1])
        kernel = weight.shape[2:]
        pads = self._pads(node, x, kernel)
        spatial = self._window(node, x, kernel, pads)
        vec = self.builder.linear(
            x.vec, conv_matrix(weight, int(node.attrs.get("group", 1)), module), bias, module
        )
        self.channels.record(
            module,
            "Conv",
            zero_padding=any(pads),
            kernel=list(kernel),
            strides=self._per_axis(node, "strides", x),
            pads=pads,
        )
        return ChannelMap(vec, spatial)

    def _pool(self, node: _Node, args: list[Value | None]) -> Value:
        """Max or average pooling, local or global: a uniform map pools to the same value,
        so each channel passes through; an average counting zero padding changes the
        borders, as a padded convolution does."""
        x = _given(args[0])
        if not isinstance(x, ChannelMap) or x.flat:
            raise self._unsupported(node, "pools something other than feature maps")
        op = node.proto.op_type
        if op.startswith("Global"):
            spatial: tuple[int, ...] | None = (1,) * len(x.spatial or ())
            self.channels.record(node.module(), op)
            return ChannelMap(x.vec, spatial)
        if "kernel_shape" not in node.attrs:
            raise ShapeError(f"{op} needs a kernel_shape")
        kernel = [int(k) for k in node.attrs["kernel_shape"]]
        pads = self._pads(node, x, kernel)
        spatial = self._window(node, x, kernel, pads)
        padded_average = op == "AveragePool" and node.attrs.get("count_include_pad", 0)
        self.channels.record(
            node.module(),
            op,
            zero_padding=bool(padded_average and any(pads)),
            kernel=kernel,
            strides=self._per_axis(node, "strides", x),
            pads=pads,
        )
        return ChannelMap(x.vec, spatial)

    def _reduce_mean(self, node: _Node, args: list[Value | None]) -> Value:
        """ReduceMean: of a constant, computed; of feature maps over their positions, a
        global average pooling (exporters write ``x.mean((2, 3))`` so)."""
        x = _given(args[0])
        given = self._constant_arg(node, args[1]) if len(args) > 1 and args[1] is not None else None
        raw = given if given is not None else node.attrs.get("axes")
        keepdims = bool(node.attrs.get("keepdims", 1))
        if isinstance(x, np.ndarray):
            over = None if raw is None else tuple(_ints(raw))
            return np.mean(x, axis=over, keepdims=keepdims).astype(x.dtype)
        rank = len(_shape_of(x))
        axes = sorted({a % rank for a in _ints(raw)}) if raw is not None else []
        if not isinstance(x, ChannelMap) or x.flat or not axes or min(axes) < 2:
            raise self._unsupported(
                node, "averages something other than feature maps over their positions"
            )
        assert x.spatial is not None
        kept = [
            (1 if 2 + i in axes else size)
            for i, size in enumerate(x.spatial)
            if keepdims or 2 + i not in axes
        ]
        self.channels.record(node.module(), "ReduceMean", axes=axes)
        return ChannelMap(x.vec, tuple(kept), flat=not kept and not keepdims)

    def _window(
        self, node: _Node, x: ChannelMap, kernel: Sequence[int], pads: Sequence[int]
    ) -> tuple[int, ...]:
        """The output size of a convolution's or pooling window over ``x``'s maps, padded
        by ``pads`` (``_pads``)."""
        assert x.spatial is not None  # ONNX maps come from inputs of declared size
        return window_output(
            x.spatial,
            kernel,
            self._per_axis(node, "strides", x),
            pads,
            self._per_axis(node, "dilations", x),
            ceil=bool(node.attrs.get("ceil_mode", 0)),
        )

    def _per_axis(self, node: _Node, attr: str, x: ChannelMap) -> list[int]:
        rank = len(x.spatial or ())
        return [int(v) for v in node.attrs.get(attr, [1] * rank)]

    def _pads(self, node: _Node, x: ChannelMap, kernel: Sequence[int]) -> list[int]:
        """Every axis's padding at its beginning, then at its end, from ``pads`` or from
        ``auto_pad`` (SAME_UPPER/SAME_LOWER pad so that the output is the input over the
        stride, rounded up)."""
        assert x.spatial is not None  # ONNX maps come from inputs of declared size
        if len(kernel) != len(x.spatial):
            raise self._unsupported(
                node, f"has a {len(kernel)}-D window over {len(x.spatial)}-D maps"
            )
        rank = len(x.spatial)
        auto = node.attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("NOTSET", "VALID"):
            pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * rank))]
            return pads if auto == "NOTSET" else [0] * (2 * rank)
        strides, dilations = (
            self._per_axis(node, "strides", x),
            self._per_axis(node, "dilations", x),
        )
        if min((*strides, *dilations), default=1) < 1 or len(strides) != len(x.spatial):
            raise ShapeError(f"strides {strides} and dilations {dilations} must be positive")
        begin, end = [], []
        for size, k, s, d in zip(x.spatial, kernel, strides, dilations, strict=True):
            total = max(0, (math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size)
            low = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begin.append(low)
            end.append(total - low)
        return begin + end

    def _matmul(self, node: _Node, args: list[Value | None]) -> Value:
        a, b = _given(args[0]), _given(args[1])
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return np.matmul(a, b)
        if isinstance(a, Features) and isinstance(b, Features):
            raise self._unsupported(
                node,
                "multiplies two variable tensors; only a feature "
                "vector times a constant matrix is linear",
            )
        if isinstance(a, ChannelMap):
            assert isinstance(b, np.ndarray)
            module = node.module(node.proto.input[1])
            weight = dense_on_channels(self._matrix(node, b).T, a, module)
            return Features(self.builder.linear(a.vec, weight, None, module), (1, len(weight)))
        if isinstance(a, Features):
            assert isinstance(b, np.ndarray)
            a = self._flat(node, a)
            matrix, weight_name = self._matrix(node, b), node.proto.input[1]
            weight = matrix[None, :] if matrix.ndim == 1 else matrix.T
            x, rank = a, _matmul_rank(len(a.shape), b.ndim)
        else:
            assert isinstance(a, np.ndarray) and isinstance(b, Features)
            if len(b.shape) != 1:
                raise self._unsupported(
                    node,
                    f"multiplies a constant by a vector of shape "
                    f"{b.shape}; only a 1-D vector can be on the right",
                )
            matrix, weight_name = self._matrix(node, a), node.proto.input[0]
            weight = matrix[None, :] if matrix.ndim == 1 else matrix
            x, rank = b, _matmul_rank(a.ndim, 1)
        vec = self.builder.linear(x.vec, weight, None, node.module(weight_name))
        return Features(vec, ((1,) * (rank - 1) + (len(vec),)) if rank else ())

    def _gemm(self, node: _Node, args: list[Value | None]) -> Value:
        a, b = _given(args[0]), _given(args[1])
        c = args[2] if len(args) > 2 else None
        alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
        trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
        if not isinstance(b, np.ndarray):
            raise self._unsupported(
                node,
                "has a variable second operand; only a feature "
                "vector times a constant matrix is linear",
            )
        if b.ndim != 2:
            raise ValueError(f"Gemm needs a 2-D matrix, got shape {b.shape}")
        right = b.T if trans_b else b
        if isinstance(c, ChannelMap):
            raise self._unsupported(node, "adds feature maps to a dense layer's output")
        if isinstance(a, np.ndarray) and not isinstance(c, Features):
            product = alpha * ((a.T if trans_a else a) @ right)
            return product if c is None else product + beta * c
        if not isinstance(a, Features | ChannelMap) or trans_a:
            raise self._unsupported(
                node, "needs the feature vector as its first operand, untransposed (transA=0)"
            )
        bias = None
        if isinstance(c, np.ndarray):
            bias = beta * np.broadcast_to(c, (1, right.shape[1])).reshape(-1)
        module, weight = node.module(node.proto.input[1]), alpha * right.T
        if isinstance(a, ChannelMap):
            weight = dense_on_channels(weight, a, module)
        else:
            a = self._flat(node, a)
        vec = self.builder.linear(a.vec, weight, bias, module)
        if isinstance(c, Features):
            vec = vec + c.vec.affine_elementwise(np.asarray(beta), np.asarray(0.0))
        return Features(vec, (1, len(vec)))

    def _activation(self, node: _Node, args: list[Value | None]) -> Value:
        activation = _ACTIVATIONS[node.proto.op_type]
        if node.attrs.get("approximate", b"none") != b"none":
            raise self._unsupported(node, TANH_APPROXIMATION)
        alpha = float(node.attrs.get("alpha", 0.01))
        x = _given(args[0])
        if isinstance(x, np.ndarray):
            return activation.apply(x, alpha).astype(x.dtype)
        vec = self.builder.activate(x.vec, activation, node.module(), alpha)
        if isinstance(x, ChannelMap):
            return x.with_vec(vec)
        return Features(vec, x.shape)

    def _concat(self, node: _Node, args: list[Value | None]) -> Value:
        parts = [_given(a) for a in args]
        axis = int(node.attrs.get("axis", 1))
        constants = [p for p in parts if isinstance(p, np.ndarray)]
        if len(constants) == len(parts):
            return np.concatenate(constants, axis=axis)
        maps = [p for p in parts if isinstance(p, ChannelMap)]
        if maps:
            if len(maps) != len(parts) or axis != 1 or len({(m.spatial, m.flat) for m in maps}) > 1:
                raise self._unsupported(
                    node, "joins feature maps other than along the channel axis, alike"
                )
            return ChannelMap(AffineVec.concat([m.vec for m in maps]), maps[0].spatial)
        vectors = [self._flat(node, p) for p in parts if isinstance(p, Features)]
        if constants:
            raise self._unsupported(
                node,
                "joins a constant to the feature vector; only feature vectors can be concatenated",
            )
        shapes = [p.shape for p in vectors]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or axis % max(rank, 1) != rank - 1:
            raise self._unsupported(
                node,
                f"concatenates shapes {shapes} along axis {axis}; "
                "only feature vectors along the feature axis join",
            )
        vec = AffineVec.concat([p.vec for p in vectors])
        return Features(vec, (*shapes[0][:-1], len(vec)))

    def _batch_norm(self, node: _Node, args: list[Value | None]) -> Value:
        """Inference-mode batch normalization: per channel (axis 1) ``scale * (x - mean) /
        sqrt(var + epsilon) + bias``, an affine map that folds into the next layer."""
        x = _given(args[0])
        if node.attrs.get("training_mode", 0) or len(node.proto.output) > 1:
            raise self._unsupported(node, "runs in training mode (batch statistics)")
        scale, bias, mean, var = (self._constant_arg(node, _given(a)) for a in args[1:5])
        assert scale is not None and bias is not None and mean is not None and var is not None
        factor = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        shift = bias - mean * factor
        if isinstance(x, np.ndarray):
            channel = (1, -1) + (1,) * (x.ndim - 2)
            return (x * factor.reshape(channel) + shift.reshape(channel)).astype(x.dtype)
        self.notes.setdefault("folded", []).append(node.label)
        if isinstance(x, ChannelMap):
            return x.with_vec(x.vec.affine_elementwise(factor, shift))
        channel_shape = (1, -1) + (1,) * (len(x.shape) - 2) if len(x.shape) > 1 else (-1,)
        full = np.broadcast_to(factor.reshape(channel_shape), x.shape).reshape(-1)
        offset = np.broadcast_to(shift.reshape(channel_shape), x.shape).reshape(-1)
        return Features(x.vec.affine_elementwise(full, offset), x.shape)

    def _softmax(self, node: _Node, args: list[Value | None]) -> Value:
        """A Softmax or LogSoftmax as the network's last step: the graph keeps the scores it
        reads (the same decisions), and the notes say which function the outputs go
        through."""
        x = _given(args[0])
        if isinstance(x, np.ndarray):
            raise self._unsupported(node, "normalizes a constant")
        self.final.add(node.proto.output[0])
        self.notes["output_activation"] = node.proto.op_type.lower()
        return x

    def _select(self, node: _Node, x: Features, picked: np.ndarray) -> Features:
        """The features of ``x`` at positions ``picked`` (an array of flat indices in the
        shape the result has)."""
        return Features(
            x.vec.select(picked.reshape(-1).tolist()), self._vector_shape(node, picked.shape)
        )

    def _transpose(self, node: _Node, args: list[Value | None]) -> Value:
        x = self._not_maps(node, _given(args[0]))
        perm = node.attrs.get("perm")
        if isinstance(x, np.ndarray):
            return np.transpose(x, perm)
        order = np.arange(len(x.vec)).reshape(x.shape)
        return self._select(node, x, np.transpose(order, perm))

    def _slice(self, node: _Node, args: list[Value | None]) -> Value:
        x = self._not_maps(node, _given(args[0]))
        given = [self._constant_arg(node, a) for a in args[1:5]]
        if len(given) >= 2:
            starts, ends = _ints(given[0]), _ints(given[1])
            axes = _ints(given[2]) if len(given) > 2 and given[2] is not None else None
            steps = _ints(given[3]) if len(given) > 3 and given[3] is not None else None
        else:  # before opset 10 they were attributes
            starts, ends = _ints(node.attrs.get("starts")), _ints(node.attrs.get("ends"))
            axes, steps = _ints(node.attrs.get("axes")), None
        data = x if isinstance(x, np.ndarray) else np.arange(len(x.vec)).reshape(x.shape)
        index = [slice(None)] * data.ndim
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            axis = i if axes is None else axes[i]
            index[axis % data.ndim] = slice(start, end, 1 if steps is None else steps[i])
        picked = data[tuple(index)]
        return picked if isinstance(x, np.ndarray) else self._select(node, x, picked)

    def _gather(self, node: _Node, args: list[Value | None]) -> Value:
        x = self._not_maps(node, _given(args[0]))
        indices = self._constant_arg(node, _given(args[1]))
        assert indices is not None
        axis = int(node.attrs.get("axis", 0))
        data = x if isinstance(x, np.ndarray) else np.arange(len(x.vec)).reshape(x.shape)
        picked = np.asarray(np.take(data, indices.astype(np.int64), axis=axis))
        return picked if isinstance(x, np.ndarray) else self._select(node, x, picked)

    # --- helpers --------------------------------------------------------------------------

    def _not_maps(self, node: _Node, value: Value) -> np.ndarray | Features:
        if isinstance(value, ChannelMap):
            raise self._unsupported(
                node, "rearranges feature maps; a channel graph has no positions to move"
            )
        return value

    def _constant_arg(self, node: _Node, value: Value | None) -> np.ndarray | None:
        if isinstance(value, Features | ChannelMap):
            raise self._unsupported(
                node,
                "takes its shape or axes from the variable; only constant shapes are supported",
            )
        return value

    def _matrix(self, node: _Node, weight: np.ndarray) -> np.ndarray:
        """The weight without leading size-1 dimensions (a batch of one matrix)."""
        if weight.ndim > 2 and all(d == 1 for d in weight.shape[:-2]):
            weight = weight.reshape(weight.shape[-2:])
        if weight.ndim > 2:
            raise self._unsupported(node, f"multiplies by a stack of matrices {weight.shape}")
        return weight

    def _vector_shape(self, node: _Node, shape: Sequence[int]) -> tuple[int, ...]:
        """A feature tensor's new shape, which must keep the batch of one in front."""
        if len(shape) > 1 and shape[0] != 1:
            raise self._unsupported(
                node,
                f"turns the features into a tensor of shape "
                f"{tuple(shape)}, which moves them into the batch",
            )
        return tuple(shape)

    def _flat(self, node: _Node, x: Features) -> Features:
        """``x``, which a matrix product or a join needs as a (batch, features) vector."""
        if not _is_vector(x.shape):
            raise self._unsupported(
                node,
                f"reads features of shape {x.shape}; only a flat "
                "(batch, features) vector can be multiplied or "
                "joined: flatten it first",
            )
        return x

    def _array(self, tensor: onnx.TensorProto) -> np.ndarray:
        """A tensor's values, its declared size checked first, its data against it."""
        check_tensor_size(tensor.name, math.prod(tensor.dims), self.where)
        try:
            return numpy_helper.to_array(tensor)
        except (ValueError, TypeError, KeyError) as exc:  # too few values, an unknown type
            raise self._error(
                f"tensor {tensor.name!r} of shape {list(tensor.dims)} cannot be read: {exc}",
                "re-export the network; the file is truncated or was edited",
            ) from None

    def _finite(self, name: str, array: np.ndarray) -> np.ndarray:
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            raise self._error(
                f"tensor {name!r} contains NaN or Inf values",
                "retrain or repair the network; its weights must be finite",
            )
        return array

    def _unsupported(self, node: _Node, why: str) -> ModelLoadError:
        return self._error(
            f"{node.label} {why}",
            f"circuitql reads feed-forward networks built from these ONNX ops: "
            f"{', '.join(SUPPORTED_OPS)}. Re-export the network using only these, or index "
            "the PyTorch module directly",
        )

    def _error(self, what: str, fix: str) -> ModelLoadError:
        return ModelLoadError(what, where=self.where, fix=fix)


def _ints(value: Any) -> list[int]:
    """An ONNX list of integers (a constant tensor or an attribute) as Python ints."""
    if value is None:
        raise ValueError("a required list of integers is missing")
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _given(value: Value | None) -> Value:
    if value is None:
        raise ValueError("a required input is missing")
    return value


def _shape_of(value: Value) -> tuple[int, ...]:
    """The tensor shape ONNX sees for a value (batch 1; maps of unknown size as 1 x 1)."""
    if isinstance(value, ChannelMap):
        spatial = value.spatial if value.spatial is not None else ()
        if value.flat:
            return (1, len(value.vec) * math.prod(spatial))
        return (1, len(value.vec), *spatial)
    return tuple(value.shape)


def _is_vector(shape: tuple[int, ...]) -> bool:
    return all(d == 1 for d in shape[:-1]) and math.prod(shape) >= 1


def _matmul_rank(left: int, right: int) -> int:
    """The rank of ``np.matmul``'s result: a 1-D operand loses its one dimension."""
    if left == 1 or right == 1:
        return left + right - 2
    return max(left, right)


def _shape_text(tensor_type: onnx.TypeProto.Tensor) -> str:
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]
    return f"[{', '.join(dims)}]" if tensor_type.HasField("shape") else "(unknown)"


def _axes(extra: list[np.ndarray | None], attrs: dict[str, Any]) -> tuple[int, ...] | None:
    """Squeeze/Unsqueeze axes: an input from opset 13 on, an attribute before."""
    axes = extra[0] if extra and extra[0] is not None else attrs.get("axes")
    return None if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))


def _flatten(data: np.ndarray, extra: list[np.ndarray | None], attrs: dict[str, Any]) -> np.ndarray:
    axis = int(attrs.get("axis", 1)) % (data.ndim + 1)
    return data.reshape(math.prod(data.shape[:axis]), math.prod(data.shape[axis:]))


def _reshape_to(
    data: np.ndarray, extra: list[np.ndarray | None], attrs: dict[str, Any]
) -> np.ndarray:
    target = [int(d) for d in np.asarray(extra[0] if extra else attrs["shape"]).reshape(-1)]
    if not attrs.get("allowzero", 0):
        target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return data.reshape(target)


def _squeeze(data: np.ndarray, extra: list[np.ndarray | None], attrs: dict[str, Any]) -> np.ndarray:
    return np.squeeze(data, axis=_axes(extra, attrs))


def _unsqueeze(
    data: np.ndarray, extra: list[np.ndarray | None], attrs: dict[str, Any]
) -> np.ndarray:
    axes = _axes(extra, attrs)
    if axes is None:
        raise ValueError("Unsqueeze needs axes")
    return np.expand_dims(data, axes)


_RESHAPES: dict[
    str, Callable[[np.ndarray, list[np.ndarray | None], dict[str, Any]], np.ndarray]
] = {
    "Flatten": _flatten,
    "Reshape": _reshape_to,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
}

_FOLD: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
}

# Ops read only as part of a subgraph that stands for another op (onnx_patterns).
_ONLY_INSIDE = {
    "Erf": " (an Erf is read only inside an exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))))"
}

_ACTIVATIONS: dict[str, Activation] = {
    "Relu": Activation.RELU,
    "LeakyRelu": Activation.LEAKY_RELU,
    "Sigmoid": Activation.SIGMOID,
    "Tanh": Activation.TANH,
    "Gelu": Activation.GELU,
}

_Handler = Callable[[_Converter, _Node, list[Value | None]], Value]
_HANDLERS: dict[str, _Handler] = {
    "Constant": _Converter._constant,
    "ConstantOfShape": _Converter._constant_of_shape,
    "Pad": _Converter._pad,
    "Identity": _Converter._passthrough,
    "Dropout": _Converter._passthrough,
    **dict.fromkeys(_RESHAPES, _Converter._reshape),
    **dict.fromkeys(_FOLD, _Converter._arith),
    "MatMul": _Converter._matmul,
    "Gemm": _Converter._gemm,
    **dict.fromkeys(_ACTIVATIONS, _Converter._activation),
    "Concat": _Converter._concat,
    "Conv": _Converter._conv,
    "ReduceMean": _Converter._reduce_mean,
    **dict.fromkeys(
        ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"), _Converter._pool
    ),
    "BatchNormalization": _Converter._batch_norm,
    "Softmax": _Converter._softmax,
    "LogSoftmax": _Converter._softmax,
    "Transpose": _Converter._transpose,
    "Slice": _Converter._slice,
    "Gather": _Converter._gather,
    "Shape": _Converter._shape,
    "Cast": _Converter._cast,
}

SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(_HANDLERS))

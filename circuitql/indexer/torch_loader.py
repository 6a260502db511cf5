"""Load an in-memory ``nn.Module`` by tracing it with torch.fx.

Tracing (instead of walking ``model.children()``) is what lets circuitql read models whose
forward pass is more than a chain: the min(a, b) net that concatenates its input with two ReLU
outputs, residual ``x + f(x)``, functional activations. Every traced value is either a constant
tensor or a symbolic ``AffineVec``; only activations create neurons.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.affine import AffineVec, GraphBuilder, ShapeError, check_model_size
from circuitql.indexer.channels import (
    ChannelMap,
    ChannelNotes,
    conv_matrix,
    dense_on_channels,
    expanded,
    per_channel,
)
from circuitql.indexer.gelu_pattern import TANH_APPROXIMATION, Op, exact_gelus

Value = AffineVec | ChannelMap | np.ndarray | float | int

ACTIVATION_MODULES: dict[type[nn.Module], Activation] = {
    nn.ReLU: Activation.RELU,
    nn.LeakyReLU: Activation.LEAKY_RELU,
    nn.Sigmoid: Activation.SIGMOID,
    nn.Tanh: Activation.TANH,
    nn.GELU: Activation.GELU,
}
NO_OP_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout2d,
    nn.Dropout1d,
    nn.AlphaDropout,
    nn.Identity,
)
ACTIVATION_FUNCTIONS: dict[Any, Activation] = {
    torch.relu: Activation.RELU,
    F.relu: Activation.RELU,
    F.leaky_relu: Activation.LEAKY_RELU,
    torch.sigmoid: Activation.SIGMOID,
    F.sigmoid: Activation.SIGMOID,
    torch.tanh: Activation.TANH,
    F.tanh: Activation.TANH,
    F.gelu: Activation.GELU,
}
ACTIVATION_METHODS = {
    "relu": Activation.RELU,
    "sigmoid": Activation.SIGMOID,
    "tanh": Activation.TANH,
}
NO_OP_FUNCTIONS: tuple[Any, ...] = (F.dropout,)
NO_OP_METHODS = {"contiguous", "float", "double"}
# Ops that flatten feature maps for a dense layer (on a vector they change nothing): a
# squeeze of pooled 1 x 1 maps leaves (batch, channels) too.
FLATTEN_FUNCTIONS: tuple[Any, ...] = (torch.flatten, torch.squeeze)
FLATTEN_METHODS = {"flatten", "view", "reshape", "squeeze"}
# A mean over the maps' positions is a global average pooling.
MEAN_FUNCTIONS: tuple[Any, ...] = (torch.mean,)
CONV_MODULES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d)
CONV_FUNCTIONS: tuple[Any, ...] = (F.conv1d, F.conv2d)
# Pooling passes a uniform map's value through (channels.py); an average that counts zero
# padding is what changes the borders.
POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
POOL_FUNCTIONS: tuple[Any, ...] = (
    F.max_pool1d,
    F.max_pool2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
)
CAT_FUNCTIONS: tuple[Any, ...] = (torch.cat, torch.concat)
# A softmax is read only as the network's last step: the graph keeps the scores it reads
# (the same decisions), and the model's notes say which function the outputs go through.
SOFTMAX_MODULES: dict[type[nn.Module], str] = {nn.Softmax: "softmax", nn.LogSoftmax: "logsoftmax"}
SOFTMAX_FUNCTIONS: dict[Any, str] = {
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.log_softmax: "logsoftmax",
    torch.log_softmax: "logsoftmax",
}
SOFTMAX_METHODS = {"softmax": "softmax", "log_softmax": "logsoftmax"}

SUPPORTED = (
    "nn.Linear, F.linear; Conv1d, Conv2d, their max, average and adaptive pooling (as "
    "channel graphs); activations ReLU, LeakyReLU, Sigmoid, Tanh, exact GELU (modules, "
    "functions or tensor methods); BatchNorm1d and BatchNorm2d in eval mode; torch.cat along "
    "the feature or channel axis; + and - of vectors (residuals); * and / by constants; "
    "Flatten, Dropout, Identity, view/reshape; Softmax or LogSoftmax as the last step"
)


def load_module(
    model: nn.Module, input_dim: int | None = None
) -> tuple[NeuronGraph, dict[str, Any]]:
    """Trace ``model`` and build its neuron graph, with notes on what was read that the graph
    does not show (``"torch"`` in the model's meta: a softmax at the end).

    ``input_dim`` is needed only when the input width cannot be read off the first Linear
    that consumes the network input.
    """
    check_model_size(
        sum(t.numel() for t in (*model.parameters(), *model.buffers())), type(model).__name__
    )
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable control flow
        raise ModelLoadError(
            f"torch.fx could not trace this module ({type(exc).__name__}: {exc})",
            where=type(model).__name__,
            fix="make forward() free of data-dependent control flow, or export the model "
            "to ONNX and index the .onnx file",
        ) from exc
    return _Tracer(traced, input_dim).run()


class _Tracer:
    def __init__(self, traced: torch.fx.GraphModule, input_dim: int | None) -> None:
        self.traced = traced
        self.modules = dict(traced.named_modules())
        self.input_dim = input_dim
        self.builder = GraphBuilder()
        self.values: dict[str, Value] = {}
        self.final: dict[str, str] = {}  # nodes only the output may read: softmax -> kind
        self.notes: dict[str, Any] = {}
        self.channels = ChannelNotes()

    def run(self) -> tuple[NeuronGraph, dict[str, Any]]:
        outputs: AffineVec | None = None
        gelus = fuse_erf_gelus(self.traced.graph)
        if gelus:
            self.traced.recompile()
            self.notes["gelu_from_erf"] = gelus
        for node in self.traced.graph.nodes:
            try:
                if node.op == "output":
                    returned = (
                        node.args[0] if isinstance(node.args[0], tuple | list) else (node.args[0],)
                    )
                    for arg in returned:
                        if isinstance(arg, torch.fx.Node) and arg.name in self.final:
                            self.notes["output_activation"] = self.final.pop(arg.name)
                    outputs = self._as_vector(node.args[0], node)
                else:
                    self.values[node.name] = self._eval(node)
            except ShapeError as exc:
                raise ModelLoadError(
                    str(exc), where=self._where(node), fix="check the layer sizes"
                ) from exc
        if outputs is None:
            raise ModelLoadError("the module returns nothing", where="forward()")
        if self.channels.layers:
            self.notes["channels"] = self.channels.to_json()
        return self.builder.finish(outputs), ({"torch": self.notes} if self.notes else {})

    def _softmax(self, node: torch.fx.Node, kind: str) -> Value:
        """A softmax over the features, which only the output may read."""
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        if node.op == "call_module":
            dim = self.modules[str(node.target)].dim
        if dim not in (None, 1, -1):
            raise self._unsupported(node, f"a softmax along dim={dim}, not the features")
        self.final[node.name] = kind
        return self._arg_values(node)

    def _where(self, node: torch.fx.Node) -> str:
        model = type(self.traced).__name__
        if node.op == "call_module":
            return f"{model} module {str(node.target)!r}"
        return f"{model} forward() step {node.name!r}"

    def _eval(self, node: torch.fx.Node) -> Value:
        if node.op == "placeholder":
            if self.values:
                raise self._unsupported(node, "a second forward() argument")
            width, maps = self._input_width(node)
            units = self.builder.inputs(width)
            return ChannelMap(units) if maps else units
        if node.op == "get_attr":
            return _constant(_get_attr(self.traced, str(node.target)), node.name)
        if node.op == "call_module":
            return self._call_module(node)
        if node.op == "call_function":
            return self._call_function(node)
        if node.op == "call_method":
            return self._call_method(node)
        raise self._unsupported(node, node.op)

    def _call_module(self, node: torch.fx.Node) -> Value:
        module = self.modules[str(node.target)]
        x = self._arg(node, 0)
        name = str(node.target)
        if isinstance(module, nn.Linear):
            return self._linear(
                node,
                x,
                _constant(module.weight, f"{name}.weight"),
                None if module.bias is None else _constant(module.bias, f"{name}.bias"),
                name,
            )
        if type(module) in ACTIVATION_MODULES:
            if getattr(module, "approximate", "none") != "none":
                raise self._unsupported(node, TANH_APPROXIMATION)
            alpha = float(getattr(module, "negative_slope", 0.01))
            activation = ACTIVATION_MODULES[type(module)]
            return self._activate(node, x, activation, name, alpha)
        if isinstance(module, NO_OP_MODULES):
            return x
        if isinstance(module, nn.Flatten):
            return self._flatten(x)
        if isinstance(module, CONV_MODULES):
            return self._conv_module(node, module, x)
        if isinstance(module, POOL_MODULES):
            padded_average = getattr(module, "count_include_pad", False) and _pads_with_zeros(
                getattr(module, "padding", 0)
            )
            return self._pool(node, x, type(module).__name__, name, padded_average)
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            return self._batch_norm(module, x, node)
        if type(module) in SOFTMAX_MODULES:
            return self._softmax(node, SOFTMAX_MODULES[type(module)])
        raise self._unsupported(node, f"module {type(module).__name__}")

    def _batch_norm(
        self, module: nn.BatchNorm1d | nn.BatchNorm2d, x: Value, node: torch.fx.Node
    ) -> Value:
        """Batch normalization as inference computes it, from the running statistics: an
        affine map per feature (or per channel of feature maps), folded into the layers
        around it."""
        if module.training or module.running_mean is None or module.running_var is None:
            raise ModelLoadError(
                "a BatchNorm1d normalizes by the batch's own statistics (training mode, or "
                "no running statistics), so a single input has no fixed function",
                where=self._where(node),
                fix="call model.eval() before indexing it",
            )
        name = str(node.target)
        factor = 1.0 / np.sqrt(_constant(module.running_var, f"{name}.running_var") + module.eps)
        if module.weight is not None:
            factor = factor * _constant(module.weight, f"{name}.weight")
        shift = -_constant(module.running_mean, f"{name}.running_mean") * factor
        if module.bias is not None:
            shift = shift + _constant(module.bias, f"{name}.bias")
        if isinstance(module, nn.BatchNorm2d) and not isinstance(x, ChannelMap):
            raise self._unsupported(node, "BatchNorm2d of something other than feature maps")
        return self._elementwise(node, x, lambda v: v.affine_elementwise(factor, shift))

    # --- feature maps (channels.py) -------------------------------------------------------

    def _conv_module(self, node: torch.fx.Node, module: nn.Module, x: Value) -> ChannelMap:
        assert isinstance(module, nn.Conv1d | nn.Conv2d)
        name = str(node.target)
        padding = module.padding
        self.channels.record(
            name,
            type(module).__name__,
            zero_padding=module.padding_mode == "zeros" and _pads_with_zeros(padding),
            kernel=list(module.kernel_size),
            strides=list(module.stride),
            padding=padding if isinstance(padding, str) else list(padding),
            padding_mode=module.padding_mode,
        )
        return self._conv(
            node,
            x,
            _constant(module.weight, f"{name}.weight"),
            None if module.bias is None else _constant(module.bias, f"{name}.bias"),
            module.groups,
            name,
        )

    def _conv_function(self, node: torch.fx.Node) -> ChannelMap:
        """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``."""
        options = _conv_options(node, self._resolve)
        weight, bias = options.get("weight"), options.get("bias")
        self.channels.record(
            node.name, "conv", zero_padding=_pads_with_zeros(options.get("padding", 0))
        )
        return self._conv(
            node,
            options.get("input"),
            np.asarray(weight),
            None if bias is None else np.asarray(bias),
            int(options.get("groups", 1)),
            node.name,
        )

    def _conv(
        self,
        node: torch.fx.Node,
        x: Any,
        weight: np.ndarray,
        bias: np.ndarray | None,
        groups: int,
        module: str,
    ) -> ChannelMap:
        if not isinstance(x, ChannelMap) or x.flat:
            raise self._unsupported(node, "a convolution of something other than feature maps")
        return ChannelMap(
            self.builder.linear(x.vec, conv_matrix(weight, groups, module), bias, module)
        )

    def _pool(
        self, node: torch.fx.Node, x: Value, op: str, name: str, zero_padding: bool = False
    ) -> ChannelMap:
        if not isinstance(x, ChannelMap) or x.flat:
            raise self._unsupported(node, f"{op} of something other than feature maps")
        self.channels.record(name, op, zero_padding=zero_padding)
        return x

    def _spatial_mean(self, node: torch.fx.Node) -> ChannelMap:
        """``x.mean(dim=(2, 3))``: feature maps averaged over their positions, a global
        average pooling (a uniform map's mean is its value); without ``keepdim`` the result
        is (batch, channels), flat."""
        x = self._arg(node, 0)
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        keepdim = bool(node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False))
        listed = dims if isinstance(dims, tuple | list) else [dims]
        if (
            not isinstance(x, ChannelMap)
            or x.flat
            or not all(isinstance(d, int) and (d >= 2 or d == -1) for d in listed)
        ):
            raise self._unsupported(
                node,
                "a mean other than over feature maps' positions (name them by their "
                "position from 2, as in x.mean(dim=(2, 3)))",
            )
        self.channels.record(node.name, "mean")
        return ChannelMap(x.vec, x.spatial, flat=not keepdim)

    def _flatten(self, x: Value) -> Value:
        return ChannelMap(x.vec, x.spatial, flat=True) if isinstance(x, ChannelMap) else x

    def _linear(
        self,
        node: torch.fx.Node,
        x: Value,
        weight: np.ndarray,
        bias: np.ndarray | None,
        module: str,
    ) -> AffineVec:
        """A dense layer, reading a vector or flattened feature maps."""
        if isinstance(x, ChannelMap):
            return self.builder.linear(x.vec, dense_on_channels(weight, x, module), bias, module)
        return self.builder.linear(self._vector(x, node), weight, bias, module)

    def _activate(
        self,
        node: torch.fx.Node,
        x: Value,
        activation: Activation,
        module: str,
        alpha: float = 0.01,
    ) -> Value:
        return self._elementwise(
            node, x, lambda v: self.builder.activate(v, activation, module, alpha)
        )

    def _elementwise(
        self, node: torch.fx.Node, x: Value, apply: Callable[[AffineVec], AffineVec]
    ) -> Value:
        """``apply`` to a vector, or to feature maps' channels (keeping their layout)."""
        if isinstance(x, ChannelMap):
            return x.with_vec(apply(x.vec))
        return apply(self._vector(x, node))

    def _call_function(self, node: torch.fx.Node) -> Value:
        fn = node.target
        if fn in ACTIVATION_FUNCTIONS:
            approximate = node.kwargs.get(
                "approximate", node.args[1] if len(node.args) > 1 else "none"
            )
            if fn is F.gelu and approximate != "none":
                raise self._unsupported(node, TANH_APPROXIMATION)
            alpha = 0.01
            if fn is F.leaky_relu:
                slope: Any = node.kwargs.get(
                    "negative_slope", node.args[1] if len(node.args) > 1 else 0.01
                )
                alpha = float(slope)
            return self._activate(
                node, self._arg(node, 0), ACTIVATION_FUNCTIONS[fn], node.name, alpha
            )
        if fn is F.linear:
            weight = self._arg(node, 1)
            bias = node.kwargs.get("bias", node.args[2] if len(node.args) > 2 else None)
            return self._linear(
                node,
                self._arg(node, 0),
                np.asarray(weight),
                None if bias is None else np.asarray(self._resolve(bias)),
                node.name,
            )
        if fn in CAT_FUNCTIONS:
            return self._cat(node)
        if fn in NO_OP_FUNCTIONS:
            return self._arg(node, 0)
        if fn in FLATTEN_FUNCTIONS:
            return self._flatten(self._arg(node, 0))
        if fn in CONV_FUNCTIONS:
            return self._conv_function(node)
        if fn in MEAN_FUNCTIONS:
            return self._spatial_mean(node)
        if fn in POOL_FUNCTIONS:
            return self._pool(node, self._arg(node, 0), getattr(fn, "__name__", "pool"), node.name)
        if fn in ARITHMETIC:
            return ARITHMETIC[fn](self, node)
        if fn in SOFTMAX_FUNCTIONS:
            return self._softmax(node, SOFTMAX_FUNCTIONS[fn])
        raise self._unsupported(node, f"function {getattr(fn, '__name__', fn)}")

    def _cat(self, node: torch.fx.Node) -> Value:
        """Vectors joined along the feature axis, or feature maps along the channel axis."""
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        parts = node.args[0]
        if not isinstance(parts, tuple | list):
            raise self._unsupported(node, "torch.cat of a single tensor")
        values = [self._resolve(a) for a in parts]
        maps = [v for v in values if isinstance(v, ChannelMap)]
        if maps:
            if dim != 1 or len(maps) != len(values) or any(m.flat for m in maps):
                raise self._unsupported(node, f"torch.cat of feature maps along dim={dim}")
            return ChannelMap(AffineVec.concat([m.vec for m in maps]))
        if dim not in (-1, 1):
            raise self._unsupported(node, f"torch.cat along dim={dim}")
        return AffineVec.concat([self._vector(v, node) for v in values])

    def _call_method(self, node: torch.fx.Node) -> Value:
        method = str(node.target)
        if method in ACTIVATION_METHODS:
            return self._activate(node, self._arg(node, 0), ACTIVATION_METHODS[method], node.name)
        if method in NO_OP_METHODS:
            return self._arg(node, 0)
        if method in FLATTEN_METHODS:
            return self._flatten(self._arg(node, 0))
        if method == "mean":
            return self._spatial_mean(node)
        if method == "size":  # the batch size of x.view(x.size(0), -1): view ignores it
            return 1
        if method in SOFTMAX_METHODS:
            return self._softmax(node, SOFTMAX_METHODS[method])
        raise self._unsupported(node, f"method .{method}()")

    # --- arithmetic on vectors and constants -------------------------------------------

    def _add(self, node: torch.fx.Node, sign: float = 1.0) -> Value:
        a, b = self._arg(node, 0), self._arg(node, 1)
        if isinstance(a, ChannelMap) or isinstance(b, ChannelMap):
            return self._add_maps(node, a, b, sign)
        if isinstance(a, AffineVec) and isinstance(b, AffineVec):
            return a + b if sign > 0 else a - b
        if isinstance(a, AffineVec):
            return a.affine_elementwise(np.ones(1), sign * np.asarray(b, dtype=np.float64))
        if isinstance(b, AffineVec):
            return b.affine_elementwise(np.full(1, sign), np.asarray(a, dtype=np.float64))
        return a + sign * b

    def _add_maps(self, node: torch.fx.Node, a: Value, b: Value, sign: float) -> Value:
        """Feature maps plus maps (a residual), or plus a constant per channel."""
        if isinstance(a, ChannelMap) and isinstance(b, ChannelMap):
            if a.flat != b.flat:
                raise self._unsupported(node, "a sum of flattened and unflattened feature maps")
            return a.with_vec(a.vec + b.vec if sign > 0 else a.vec - b.vec)
        maps, constant = (a, b) if isinstance(a, ChannelMap) else (b, a)
        assert isinstance(maps, ChannelMap)
        shift = self._per_channel(node, constant, maps)
        if maps is a:
            return maps.with_vec(maps.vec.affine_elementwise(np.ones(1), sign * shift))
        return maps.with_vec(maps.vec.affine_elementwise(np.full(1, sign), shift))

    def _per_channel(self, node: torch.fx.Node, constant: Value, maps: ChannelMap) -> np.ndarray:
        value = per_channel(np.asarray(constant, dtype=np.float64), maps)
        if value is None or isinstance(constant, AffineVec | ChannelMap):
            raise self._unsupported(
                node, "feature maps combined with a value that varies across positions"
            )
        return value

    def _mul(self, node: torch.fx.Node, invert: bool = False) -> Value:
        a, b = self._arg(node, 0), self._arg(node, 1)
        if isinstance(a, ChannelMap) or isinstance(b, ChannelMap):
            if isinstance(a, ChannelMap) and isinstance(b, ChannelMap):
                raise self._unsupported(node, "product of two network values")
            if isinstance(b, ChannelMap) and invert:
                raise self._unsupported(node, "division by a network value")
            maps, constant = (a, b) if isinstance(a, ChannelMap) else (b, a)
            assert isinstance(maps, ChannelMap)
            factor = self._per_channel(node, constant, maps)
            factor = 1.0 / factor if invert else factor
            return maps.with_vec(maps.vec.affine_elementwise(factor, np.zeros(1)))
        if isinstance(a, AffineVec) and isinstance(b, AffineVec):
            raise self._unsupported(node, "product of two network values")
        if isinstance(b, AffineVec):
            if invert:
                raise self._unsupported(node, "division by a network value")
            a, b = b, a
        factor = np.asarray(b, dtype=np.float64)
        factor = 1.0 / factor if invert else factor
        if isinstance(a, AffineVec):
            return a.affine_elementwise(factor, np.zeros(1))
        return np.asarray(a) * factor

    def _neg(self, node: torch.fx.Node) -> Value:
        x = self._arg(node, 0)
        if isinstance(x, AffineVec | ChannelMap):
            return self._elementwise(
                node, x, lambda v: v.affine_elementwise(np.full(1, -1.0), np.zeros(1))
            )
        return -np.asarray(x)

    # --- helpers ------------------------------------------------------------------------

    def _resolve(self, arg: Any) -> Value:
        if isinstance(arg, torch.fx.Node):
            if arg.name in self.final:
                raise ModelLoadError(
                    "a later step reads this softmax's output; circuitql "
                    "reads a softmax only as the network's last step",
                    where=f"forward() step {arg.name!r}",
                    fix="index the network without the softmax, or with it as the last step",
                )
            return self.values[arg.name]
        if isinstance(arg, int | float):
            return float(arg)
        raise ModelLoadError(
            f"unsupported argument {arg!r}", where="forward()", fix=f"circuitql reads {SUPPORTED}"
        )

    def _arg(self, node: torch.fx.Node, i: int) -> Value:
        return self._resolve(node.args[i])

    def _vector(self, value: Any, node: torch.fx.Node) -> AffineVec:
        if not isinstance(value, AffineVec):
            raise self._unsupported(
                node, "an operation on constants only where a layer input was expected"
            )
        return value

    def _as_vector(self, arg: Any, node: torch.fx.Node) -> AffineVec:
        if isinstance(arg, tuple | list):
            return AffineVec.concat([self._as_vector(a, node) for a in arg])
        value = self._resolve(arg)
        if isinstance(value, ChannelMap):
            return expanded(value)
        return self._vector(value, node)

    def _arg_values(self, node: torch.fx.Node) -> AffineVec | ChannelMap:
        value = self._arg(node, 0)
        return value if isinstance(value, ChannelMap) else self._vector(value, node)

    def _input_width(self, placeholder: torch.fx.Node) -> tuple[int, bool]:
        """The width of the network input and whether it is feature maps, read off the first
        Linear, BatchNorm1d or convolution that consumes it (then its width counts
        channels); ``input_dim``, when given, is the width."""
        reader = self._first_reader(placeholder)
        if self.input_dim is not None:
            return self.input_dim, reader is not None and reader[1]
        if reader is None:
            raise ModelLoadError(
                "cannot tell how many inputs the network has: no Linear or convolution reads "
                "the input directly",
                where=type(self.traced).__name__,
                fix="pass the width explicitly: db.index(model, input_dim=N)",
            )
        return reader

    def _first_reader(self, placeholder: torch.fx.Node) -> tuple[int, bool] | None:
        """The width the first layer with weights reads, and whether it is a convolution,
        following the input through the steps that keep its width: flattening, dropout,
        arithmetic with constants (a normalization), activations."""
        frontier, seen = [placeholder], set()
        while frontier:
            node = frontier.pop(0)
            for user in node.users:
                if user.name in seen:
                    continue
                seen.add(user.name)
                if user.op == "call_module":
                    module = self.modules[str(user.target)]
                    if isinstance(module, nn.Conv1d | nn.Conv2d):
                        return module.in_channels, True
                    if isinstance(module, nn.Linear):
                        return int(module.in_features), False
                    if isinstance(module, nn.BatchNorm1d):
                        return int(module.num_features), False
                    if isinstance(module, (*NO_OP_MODULES, nn.Flatten, *ACTIVATION_MODULES)):
                        frontier.append(user)
                elif user.target in CONV_FUNCTIONS:
                    options = _conv_options(user, lambda a: _get_attr(self.traced, str(a.target)))
                    weight = np.asarray(options.get("weight"))
                    if weight.ndim >= 3:
                        return int(weight.shape[1]) * int(options.get("groups", 1)), True
                elif _passes_input(user):
                    frontier.append(user)
        return None

    def _unsupported(self, node: torch.fx.Node, what: str) -> ModelLoadError:
        return ModelLoadError(
            f"unsupported operation: {what}",
            where=self._where(node),
            fix=f"circuitql reads {SUPPORTED}",
        )


# The operations an exact GELU written out in forward() is made of (gelu_pattern).
GELU_PARTS: dict[Any, str] = {
    operator.truediv: "div",
    torch.div: "div",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.add: "add",
    torch.add: "add",
    torch.erf: "erf",
    torch.special.erf: "erf",
}
GELU_PART_METHODS = frozenset({"div", "mul", "add", "erf"})  # x.mul(...): the kind's name


def fuse_erf_gelus(graph: torch.fx.Graph) -> list[str]:
    """Every exact GELU ``forward()`` writes out (``x * 0.5 * (1 + erf(x / sqrt(2)))``, as
    model libraries define it) made one ``F.gelu`` node, in place; the names of the ``erf``
    nodes fused."""
    nodes = list(graph.nodes)
    scalars: dict[str, float] = {}
    ops = []
    for node in nodes:
        kind = ""
        if node.op == "call_function" and not node.kwargs:
            kind = GELU_PARTS.get(node.target, "")
        elif node.op == "call_method" and not node.kwargs:
            kind = str(node.target) if str(node.target) in GELU_PART_METHODS else ""
        if not kind:  # read as a whole: every node it reads, wherever it holds it
            ops.append(Op("", tuple(n.name for n in node.all_input_nodes), node.name))
            continue
        inputs = []
        for i, arg in enumerate(node.args):
            name = arg.name if isinstance(arg, torch.fx.Node) else f"{node.name}#{i}"
            if isinstance(arg, int | float) and not isinstance(arg, bool):
                scalars[name] = float(arg)
            inputs.append(name)
        ops.append(Op(kind, tuple(inputs), node.name))
    by_name = {node.name: node for node in nodes}
    fused = []
    for gelu in exact_gelus(ops, scalars):
        x = by_name.get(gelu.x)
        if x is None:  # the GELU of a constant: computed as the rest of the walk goes
            continue
        last = nodes[max(gelu.parts)]
        with graph.inserting_before(last):
            replacement = graph.call_function(F.gelu, (x,))
        last.replace_all_uses_with(replacement)
        fused.append(nodes[gelu.erf].name)
        for i in sorted(gelu.parts, reverse=True):
            graph.erase_node(nodes[i])
    return fused


ARITHMETIC: dict[Any, Callable[[_Tracer, torch.fx.Node], Value]] = {
    operator.add: _Tracer._add,
    torch.add: _Tracer._add,
    operator.sub: lambda t, n: t._add(n, -1.0),
    torch.sub: lambda t, n: t._add(n, -1.0),
    operator.mul: _Tracer._mul,
    torch.mul: _Tracer._mul,
    operator.truediv: lambda t, n: t._mul(n, invert=True),
    torch.div: lambda t, n: t._mul(n, invert=True),
    operator.neg: _Tracer._neg,
    torch.neg: _Tracer._neg,
}


CONV_ARGUMENTS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _conv_options(node: torch.fx.Node, resolve: Callable[[torch.fx.Node], Any]) -> dict[str, Any]:
    """An ``F.conv2d`` call's arguments by name, whether given by position or keyword, each
    node among them resolved."""
    given = dict(zip(CONV_ARGUMENTS, node.args, strict=False)) | dict(node.kwargs)
    return {k: resolve(v) if isinstance(v, torch.fx.Node) else v for k, v in given.items()}


def _pads_with_zeros(padding: Any) -> bool:
    """Whether a convolution's or pooling's ``padding`` (a number, a tuple, ``"same"`` or
    ``"valid"``) adds positions: with zeros, they make a uniform map's borders differ."""
    if isinstance(padding, str):
        return padding == "same"
    return any(int(p) for p in np.atleast_1d(padding))


def _passes_input(node: torch.fx.Node) -> bool:
    """A node the input flows through unchanged in width (a flatten, a dropout, arithmetic,
    an activation)."""
    passing = (*NO_OP_FUNCTIONS, *FLATTEN_FUNCTIONS, *ARITHMETIC, *ACTIVATION_FUNCTIONS)
    return node.target in passing or (
        node.op == "call_method"
        and str(node.target) in NO_OP_METHODS | FLATTEN_METHODS | set(ACTIVATION_METHODS)
    )


def _get_attr(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _constant(value: Any, name: str) -> np.ndarray:
    """A parameter or buffer as float64, refusing NaN and Inf (they poison every comparison)."""
    array = (
        value.detach().cpu().double().numpy()
        if isinstance(value, torch.Tensor)
        else np.asarray(value, dtype=np.float64)
    )
    if not np.all(np.isfinite(array)):
        raise ModelLoadError(
            f"tensor {name!r} contains NaN or Inf",
            where=name,
            fix="the model's weights are corrupt or diverged: retrain or re-export it",
        )
    return array

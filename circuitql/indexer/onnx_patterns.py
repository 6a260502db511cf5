"""ONNX subgraphs that stand for one operation, read back as that operation: the exact GELU
exporters write out before opset 20 (``gelu_pattern``), made one ``Gelu`` node before the
loader walks the graph."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from circuitql.indexer.gelu_pattern import Op, exact_gelus

_KINDS = {"Div": "div", "Mul": "mul", "Add": "add", "Erf": "erf"}
_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def fuse_erf_gelus(graph: onnx.GraphProto) -> tuple[list[onnx.NodeProto], list[str]]:
    """The graph's nodes with every exact-GELU subgraph made one ``Gelu`` node (at the
    place of its last node, so that every input is still read after it is made), and the
    names of the ``Erf`` nodes that were fused."""
    nodes = list(graph.node)
    ops = [
        Op(
            _KINDS.get(node.op_type, "") if node.domain in ("", "ai.onnx") else "",
            tuple(node.input),
            node.output[0] if len(node.output) == 1 else None,
        )
        for node in nodes
    ]
    gelus = exact_gelus(ops, _scalars(graph), frozenset(out.name for out in graph.output))
    fused: dict[int, onnx.NodeProto] = {}
    removed: set[int] = set()
    for gelu in gelus:
        erf = nodes[gelu.erf].name
        name = erf[: -len("Erf")] + "Gelu" if erf.endswith("Erf") else erf
        fused[max(gelu.parts)] = helper.make_node("Gelu", [gelu.x], [gelu.y], name=name or None)
        removed |= gelu.parts
    kept = [fused.get(i, node) for i, node in enumerate(nodes) if i in fused or i not in removed]
    return kept, [nodes[gelu.erf].name or f"#{gelu.erf}" for gelu in gelus]


def _scalars(graph: onnx.GraphProto) -> dict[str, float]:
    """Every one-value constant tensor of the graph (an initializer or a ``Constant``
    node's output), by name."""
    tensors = [*graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
                    tensor = onnx.TensorProto()
                    tensor.CopyFrom(attribute.t)
                    tensor.name = node.output[0]
                    tensors.append(tensor)
    scalars = {}
    for tensor in tensors:
        if math.prod(tensor.dims) != 1 or tensor.data_type not in _FLOATS:
            continue
        try:
            value = numpy_helper.to_array(tensor).reshape(-1)[0]
        except (ValueError, TypeError, IndexError, KeyError):
            continue  # a malformed tensor: the loader names it when it reads it
        if np.isfinite(value):
            scalars[tensor.name] = float(value)
    return scalars

"""Subgraphs that exporters write for one operation, read back as that operation.

ONNX had no GELU before opset 20, so PyTorch's exporter (and a hand-written
``x * 0.5 * (1 + erf(x / sqrt(2)))``, as many model libraries define it) writes the exact GELU
as five nodes: ``Div`` by sqrt(2) (or ``Mul`` by its inverse), ``Erf``, ``Add`` of 1, and two
``Mul``s, by x and by 0.5, in either order. The loader reads features as affine maps and only
activations as neurons, so it cannot apply ``Erf`` to a feature vector; the five nodes are
replaced here, before the walk, by the one ``Gelu`` node they compute. Anything else around an
``Erf`` (another constant, an intermediate read elsewhere or given as a graph output) is left
as it is, and the loader refuses the ``Erf`` as before.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

# How far a float32 constant may be from the value it stands for (sqrt(2) is stored as
# 1.4142135381698608, 1.6e-8 away relatively).
RELATIVE_TOLERANCE = 1e-6


def fuse_erf_gelus(graph: onnx.GraphProto) -> tuple[list[onnx.NodeProto], list[str]]:
    """The graph's nodes with every exact-GELU subgraph made one ``Gelu`` node (at the
    place of its last node, so that every input is still read after it is made), and the
    names of the ``Erf`` nodes that were fused."""
    nodes = list(graph.node)
    scalars = _scalars(graph)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(i)
    kept_outputs = {out.name for out in graph.output}
    fused: dict[int, onnx.NodeProto] = {}  # the position of each new node
    removed: set[int] = set()
    names = []
    for i, node in enumerate(nodes):
        if node.op_type != "Erf" or node.domain not in ("", "ai.onnx"):
            continue
        found = _gelu_around(i, nodes, producer, consumers, scalars, kept_outputs)
        if found is None or found[1] & removed:
            continue
        x, parts, y = found
        name = node.name[: -len("Erf")] + "Gelu" if node.name.endswith("Erf") else node.name
        fused[max(parts)] = helper.make_node("Gelu", [x], [y], name=name or None)
        removed |= parts
        names.append(node.name or f"#{i}")
    out = [fused.get(i, node) for i, node in enumerate(nodes) if i in fused or i not in removed]
    return out, names


def _gelu_around(
    erf: int,
    nodes: Sequence[onnx.NodeProto],
    producer: dict[str, int],
    consumers: dict[str, list[int]],
    scalars: dict[str, float],
    kept_outputs: set[str],
) -> tuple[str, set[int], str] | None:
    """(x, the positions of the subgraph's nodes, its output y) when the ``Erf`` at
    ``erf`` is the middle of an exact GELU of x; None otherwise."""

    def output(i: int | None) -> str | None:
        """Node ``i``'s one output (None for a node with none or several: not a part)."""
        return nodes[i].output[0] if i is not None and len(nodes[i].output) == 1 else None

    def only_reader(tensor: str | None) -> int | None:
        """The one node reading ``tensor``, where nothing else (no graph output) does."""
        readers = consumers.get(tensor, []) if tensor is not None else []
        return readers[0] if len(readers) == 1 and tensor not in kept_outputs else None

    def by_constant(i: int | None, op: str, value: float) -> str | None:
        """The variable operand of node ``i`` when it is ``op`` with the constant ``value``
        (the constant second, for a ``Div``)."""
        if i is None or nodes[i].op_type != op or len(nodes[i].input) != 2:
            return None
        a, b = nodes[i].input
        for variable, constant in ((a, b), (b, a)) if op in ("Mul", "Add") else ((a, b),):
            if constant in scalars and _near(scalars[constant], value):
                return variable
        return None

    if len(nodes[erf].input) != 1:
        return None
    scaled = nodes[erf].input[0]
    position = producer.get(scaled)
    if position is None or only_reader(scaled) != erf:
        return None
    x = by_constant(position, "Div", math.sqrt(2.0)) or by_constant(
        position, "Mul", 1.0 / math.sqrt(2.0)
    )
    plus_one = only_reader(output(erf))
    if x is None or by_constant(plus_one, "Add", 1.0) is None:
        return None
    times = only_reader(output(plus_one))
    if times is None or nodes[times].op_type != "Mul" or len(nodes[times].input) != 2:
        return None
    others = [t for t in nodes[times].input if t != output(plus_one)]
    assert plus_one is not None
    parts = {position, erf, plus_one, times}
    if others == [x]:  # x * (1 + erf), then * 0.5
        half = only_reader(output(times))
        y = output(half)
        if y is None or by_constant(half, "Mul", 0.5) != output(times):
            return None
        assert half is not None
        return x, parts | {half}, y
    halved = producer.get(others[0]) if len(others) == 1 else None
    y = output(times)
    if halved is None or y is None or only_reader(output(halved)) != times:
        return None
    if by_constant(halved, "Mul", 0.5) != x:  # (0.5 * x) * (1 + erf)
        return None
    return x, parts | {halved}, y


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
        except (ValueError, TypeError, IndexError):
            continue  # a malformed tensor: the loader names it when it reads it
        if np.isfinite(value):
            scalars[tensor.name] = float(value)
    return scalars


_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def _near(value: float, wanted: float) -> bool:
    return abs(value - wanted) <= RELATIVE_TOLERANCE * abs(wanted)

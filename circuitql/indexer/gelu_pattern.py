"""The exact GELU written out in elementary operations, found in any loader's graph.

ONNX had no GELU before opset 20, so PyTorch's exporter writes the exact GELU as five nodes,
and model libraries write the same ``x * 0.5 * (1 + erf(x / sqrt(2)))`` by hand in their
``forward``: a division by sqrt(2) (or a product with its inverse), ``erf``, an addition of 1,
and the products by x and by 0.5, in either order. The loaders read features as affine maps
and only activations as neurons, so neither can apply ``erf`` to a feature vector; each hands
its graph here in a neutral form (``Op``), and reads every subgraph found as one GELU. An
``erf`` anywhere else (another constant, an intermediate read elsewhere) is not matched, and
the loader refuses it as before.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# What both loaders say of a GELU in its tanh approximation, which differs from the exact
# GELU by up to 5e-4 and has no activation of its own here.
TANH_APPROXIMATION = "uses the tanh approximation of GELU; only the exact (erf) GELU is read"

# How far a float32 constant may be from the value it stands for (sqrt(2) is stored as
# 1.4142135381698608, 1.6e-8 away relatively).
RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Op:
    """One operation of a loader's graph as the matcher reads it: its kind (``"div"``,
    ``"mul"``, ``"add"``, ``"erf"``, or anything else), its operands by name in order, and its
    one output (None: none, or several)."""

    kind: str
    inputs: tuple[str, ...]
    output: str | None


@dataclass(frozen=True)
class Gelu:
    """An exact GELU of the operand ``x``, computing ``y``, made of the ops at ``parts``
    (positions in the list handed in; the last of them computes ``y``), around the ``erf``
    at ``erf``."""

    x: str
    y: str
    parts: frozenset[int]
    erf: int


def exact_gelus(
    ops: Sequence[Op], scalars: Mapping[str, float], kept: frozenset[str] = frozenset()
) -> list[Gelu]:
    """Every exact GELU among ``ops`` (in topological order), no two sharing an op.
    ``scalars`` are the one-value constants by name; ``kept`` the names something other
    than an op reads (a graph's outputs), which no part may compute but the last."""
    producer = {op.output: i for i, op in enumerate(ops) if op.output is not None}
    readers: dict[str, list[int]] = defaultdict(list)
    for i, op in enumerate(ops):
        for name in op.inputs:
            readers[name].append(i)
    match = _Matcher(ops, scalars, kept, producer, readers)
    found: list[Gelu] = []
    taken: set[int] = set()
    for i, op in enumerate(ops):
        gelu = match.around(i) if op.kind == "erf" else None
        if gelu is not None and not gelu.parts & taken:
            found.append(gelu)
            taken |= gelu.parts
    return found


@dataclass(frozen=True)
class _Matcher:
    ops: Sequence[Op]
    scalars: Mapping[str, float]
    kept: frozenset[str]
    producer: Mapping[str, int]
    readers: Mapping[str, list[int]]

    def around(self, erf: int) -> Gelu | None:
        """The exact GELU whose ``erf`` is at ``erf``; None when it is not the middle of one."""
        if len(self.ops[erf].inputs) != 1:
            return None
        scaled = self.ops[erf].inputs[0]
        position = self.producer.get(scaled)
        if position is None or self._only_reader(scaled) != erf:
            return None
        x = self._by_constant(position, "div", math.sqrt(2.0)) or self._by_constant(
            position, "mul", 1.0 / math.sqrt(2.0)
        )
        plus_one = self._only_reader(self.ops[erf].output)
        if x is None or plus_one is None or self._by_constant(plus_one, "add", 1.0) is None:
            return None
        one_plus = self.ops[plus_one].output
        times = self._only_reader(one_plus)
        if times is None or self.ops[times].kind != "mul" or len(self.ops[times].inputs) != 2:
            return None
        others = [name for name in self.ops[times].inputs if name != one_plus]
        parts = {position, erf, plus_one, times}
        if others == [x]:  # x * (1 + erf), then * 0.5
            half = self._only_reader(self.ops[times].output)
            y = self.ops[half].output if half is not None else None
            if y is None or self._by_constant(half, "mul", 0.5) != self.ops[times].output:
                return None
            assert half is not None
            return Gelu(x, y, frozenset(parts | {half}), erf)
        halved = self.producer.get(others[0]) if len(others) == 1 else None
        y = self.ops[times].output
        if halved is None or y is None:
            return None
        if self._only_reader(self.ops[halved].output) != times:
            return None
        if self._by_constant(halved, "mul", 0.5) != x:  # (0.5 * x) * (1 + erf)
            return None
        return Gelu(x, y, frozenset(parts | {halved}), erf)

    def _only_reader(self, name: str | None) -> int | None:
        """The one op reading ``name``, where nothing else (a graph output) does."""
        if name is None or name in self.kept:
            return None
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 else None

    def _by_constant(self, i: int | None, kind: str, value: float) -> str | None:
        """The variable operand of the op at ``i`` when it is ``kind`` with the constant
        ``value`` (the constant second, for a division)."""
        if i is None or self.ops[i].kind != kind or len(self.ops[i].inputs) != 2:
            return None
        a, b = self.ops[i].inputs
        for variable, constant in ((a, b), (b, a)) if kind in ("mul", "add") else ((a, b),):
            wanted = self.scalars.get(constant)
            if wanted is not None and abs(wanted - value) <= RELATIVE_TOLERANCE * abs(value):
                return variable
        return None

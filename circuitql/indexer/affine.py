"""Symbolic feature vectors: the common core of every loader.

Each loader (torch.fx, state_dict + config, ONNX) walks its own kind of program, but they all
do the same arithmetic: a value flowing through the network is a vector whose elements are
*affine functions of units already created*. Linear layers, concatenation, residual sums and
constant normalisation only recompose those functions; only an activation creates new units.
This is why consecutive linear maps fold into one layer, and why the neuron graph has exactly
one unit per nonlinearity, whatever the file format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuitql.errors import ModelLoadError
from circuitql.graph import (
    Activation,
    EdgeArrays,
    NeuronGraph,
    Unit,
    UnitKind,
    input_id,
    position_type,
)


@dataclass(frozen=True)
class AffineVec:
    """``value[i] = const[i] + sum_j coef[i, j] * unit(basis[j])``.

    ``coef`` None stands for the identity: element i is unit ``basis[i]`` itself, as every
    activation leaves a layer. A GPT-2-sized layer's identity is 3072 x 3072 (75 MB), and the
    next linear map multiplied by it is 7 GFLOP for a copy of its weight.

    ``origin[i]`` is the source id ("<module>:<row>") of the linear map that last produced
    element i, or "" when no linear map has touched it since its unit was created. It names the
    neuron an activation creates from this element.
    """

    basis: tuple[str, ...]
    coef: np.ndarray | None
    const: np.ndarray
    origin: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.const.shape[0])

    @staticmethod
    def of_units(unit_ids: Sequence[str]) -> AffineVec:
        """The units' own outputs, one element each, with no linear map behind them yet."""
        n = len(unit_ids)
        return AffineVec(tuple(unit_ids), None, np.zeros(n), ("",) * n)

    def dense(self) -> np.ndarray:
        """``coef`` as a matrix, the identity written out."""
        return np.eye(len(self.basis)) if self.coef is None else self.coef

    def nonzeros(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The nonzero coefficients as (rows, columns, values), row by row in basis order."""
        if self.coef is None:
            rows = np.arange(len(self.basis))
            return rows, rows.copy(), np.ones(len(rows))
        rows, columns = np.nonzero(self.coef)
        return rows, columns, self.coef[rows, columns]

    def linear(self, weight: np.ndarray, bias: np.ndarray | None, module: str) -> AffineVec:
        """Apply ``weight @ value + bias`` (weight has shape (out, in), as torch stores it)."""
        weight = np.asarray(weight, dtype=np.float64)
        if weight.ndim != 2 or weight.shape[1] != len(self):
            raise ShapeError(
                f"{module}: weight of shape {tuple(weight.shape)} cannot read a vector of "
                f"{len(self)} features"
            )
        const = weight @ self.const
        if bias is not None:
            bias = np.asarray(bias, dtype=np.float64).reshape(-1)
            if bias.shape[0] != weight.shape[0]:
                raise ShapeError(
                    f"{module}: bias has {bias.shape[0]} entries but the weight has "
                    f"{weight.shape[0]} rows"
                )
            const = const + bias
        origin = tuple(f"{module}:{row}" for row in range(weight.shape[0]))
        coef = weight if self.coef is None else weight @ self.coef
        return AffineVec(self.basis, coef, const, origin)

    def affine_elementwise(self, scale: np.ndarray, shift: np.ndarray) -> AffineVec:
        """``value * scale + shift`` with broadcastable constants (input normalisation)."""
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (len(self),))
        shift = np.broadcast_to(np.asarray(shift, dtype=np.float64).reshape(-1), (len(self),))
        return AffineVec(
            self.basis, self.dense() * scale[:, None], self.const * scale + shift, self.origin
        )

    def select(self, indices: Sequence[int]) -> AffineVec:
        """The elements at ``indices``, in that order (repeats allowed): a gather or slice."""
        idx = list(indices)
        return AffineVec(
            self.basis, self._rows(idx), self.const[idx], tuple(self.origin[i] for i in idx)
        )

    def _rows(self, idx: list[int]) -> np.ndarray:
        if self.coef is not None:
            return self.coef[idx]
        rows = np.zeros((len(idx), len(self.basis)))
        rows[np.arange(len(idx)), idx] = 1.0
        return rows

    def _on_basis(self, basis: tuple[str, ...]) -> np.ndarray:
        position = {b: j for j, b in enumerate(basis)}
        coef = np.zeros((len(self), len(basis)))
        if self.coef is None:
            coef[np.arange(len(self)), [position[b] for b in self.basis]] = 1.0
            return coef
        for j, b in enumerate(self.basis):
            coef[:, position[b]] = self.coef[:, j]
        return coef

    @staticmethod
    def concat(parts: Sequence[AffineVec]) -> AffineVec:
        """The parts' elements one after another, over the union of their bases."""
        basis = _union_basis(parts)
        return AffineVec(
            basis,
            np.concatenate([p._on_basis(basis) for p in parts], axis=0),
            np.concatenate([p.const for p in parts]),
            tuple(o for p in parts for o in p.origin),
        )

    def __add__(self, other: AffineVec) -> AffineVec:
        return self._combine(other, 1.0)

    def __sub__(self, other: AffineVec) -> AffineVec:
        return self._combine(other, -1.0)

    def _combine(self, other: AffineVec, sign: float) -> AffineVec:
        if len(self) != len(other):
            raise ShapeError(f"cannot add vectors of {len(self)} and {len(other)} features")
        basis = _union_basis([self, other])
        origin = tuple(a or b for a, b in zip(self.origin, other.origin, strict=True))
        return AffineVec(
            basis,
            self._on_basis(basis) + sign * other._on_basis(basis),
            self.const + sign * other.const,
            origin,
        )


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces end to end; ``pieces`` is emptied, so that each may be freed once copied."""
    out = np.empty(sum(len(piece) for piece in pieces), dtype=np.result_type(*pieces))
    end = 0
    while pieces:
        piece = pieces.pop(0)
        out[end : end + len(piece)] = piece
        end += len(piece)
    return out


def _nonzero_count(value: AffineVec) -> int:
    return len(value.basis) if value.coef is None else int(np.count_nonzero(value.coef))


def _union_basis(parts: Sequence[AffineVec]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for part in parts:
        seen.update(dict.fromkeys(part.basis))
    return tuple(seen)


class ShapeError(ValueError):
    """Two parts of a network disagree about a vector's length."""


# The widest layer (or input) read: a layer's values are affine in its units, one row and one
# column each, so a layer of n units costs 8 n^2 bytes while it is read (512 MiB here).
MAX_WIDTH = 8192
# The largest tensor read: a weight between two of the widest layers.
MAX_TENSOR_VALUES = MAX_WIDTH * MAX_WIDTH


# All the values of one model's tensors: two of the largest tensors (1 GiB as float64). The
# twelve blocks of GPT-2 small's MLPs hold 57 million.
MAX_MODEL_VALUES = 2 * MAX_TENSOR_VALUES


# What indexing holds per weight at its peak, with a margin: the edges as arrays at every
# stage, and the graph's unit objects. Per weight it falls as models grow, units and fixed
# costs spread over more weights (benchmarks/bench_big.py, whole processes, on e5090b4: a
# 784-1024-1024-1024-10 MLP of 2.9 million weights peaks at 223 MiB, 80 bytes a weight; a
# GPT-2-small MLP block of 4.7 million at 391 MiB, 87 bytes; twelve blocks, 57 million, at
# 1,728 MiB, 32 bytes; the highest peaks measured before were 396, 995 and 4,611 MiB). So
# the first ``LARGE_MODEL_VALUES`` weights count ``BYTES_PER_VALUE`` each and the rest
# ``BYTES_PER_LARGE_VALUE``, which covers every peak measured so far: at the old flat 300,
# the twelve blocks asked for 16 GiB free, and a 16 GB machine refused a model it indexes in
# under 2.
BYTES_PER_VALUE = 300
LARGE_MODEL_VALUES = 5_000_000
BYTES_PER_LARGE_VALUE = 120
# The share of the memory the machine has free that one model may take.
MEMORY_SHARE = 0.8
MEMORY_CHECK = "CIRCUITQL_MEMORY_CHECK"  # "0" turns the check off


def check_model_size(values: int, where: str) -> None:
    """Refuse a model whose tensors together hold more values than circuitql reads, or
    more than indexing them would find memory for on this machine, before they are
    materialized (many stride-0 or deflated tensors, each under the tensor limit): a clear
    refusal rather than a machine driven into swap or the out-of-memory killer."""
    if values > MAX_MODEL_VALUES:
        raise ModelLoadError(
            f"the model's tensors hold {values:,} values, more than the {MAX_MODEL_VALUES:,} "
            "circuitql reads in one model",
            where=where,
            fix="index a smaller network, or the part of it a circuit lives in",
        )
    available = available_memory()
    needed = memory_needed(values)
    if (
        available is not None
        and needed > MEMORY_SHARE * available
        and os.environ.get(MEMORY_CHECK) != "0"
    ):
        raise ModelLoadError(
            f"the model's tensors hold {values:,} values; indexing them takes about "
            f"{needed / 2**30:.1f} GiB, and this machine has {available / 2**30:.1f} GiB free",
            where=where,
            fix="index the part of the network a circuit lives in (fewer layers or blocks), "
            f"or a machine with more memory; {MEMORY_CHECK}=0 skips this check",
        )


def memory_needed(values: int) -> int:
    """Bytes indexing a model of ``values`` weights is expected to take at its peak."""
    large = max(0, values - LARGE_MODEL_VALUES)
    return (values - large) * BYTES_PER_VALUE + large * BYTES_PER_LARGE_VALUE


def available_memory() -> int | None:
    """Bytes of memory the machine has free (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def check_tensor_size(name: str, values: int, where: str) -> None:
    """Refuse a tensor larger than any layer circuitql reads, before it is materialized (a
    stride-0 tensor or a file's declared shape can ask for gigabytes from a few bytes)."""
    if values > MAX_TENSOR_VALUES:
        raise ModelLoadError(
            f"tensor {name!r} holds {values:,} values, more than the {MAX_TENSOR_VALUES:,} of "
            f"a weight between two layers of {MAX_WIDTH:,} units, the widest circuitql reads",
            where=where,
            fix="index a smaller network, or the part of it a circuit lives in",
        )


def _check_width(n: int, what: str) -> None:
    if n > MAX_WIDTH:
        raise ModelLoadError(
            f"{what} has {n:,} units, more than the {MAX_WIDTH:,} circuitql reads in one layer",
            fix="index a narrower network, or the part of it a circuit can live in",
        )


class GraphBuilder:
    """Collects units in creation order, which is a topological order by construction, and
    their incoming edges as arrays, from which the graph is built in one piece (its edge
    arrays and layers ready for the canonical form, rather than rebuilt from per-unit
    mappings: 0.6 s of a 784-1024-1024-1024-10 MLP's load)."""

    def __init__(self) -> None:
        self._units: list[Unit] = []
        self._position: dict[str, int] = {}
        self._edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_inputs = 0

    def inputs(self, n: int) -> AffineVec:
        """``n`` more network inputs, numbered after those already made (a graph with
        several input tensors reads them as consecutive blocks)."""
        _check_width(n, "an input")
        ids = [input_id(self.n_inputs + i) for i in range(n)]
        self.n_inputs += n
        for uid in ids:
            self._add(Unit(uid, UnitKind.INPUT))
        return AffineVec.of_units(ids)

    def linear(
        self, value: AffineVec, weight: np.ndarray, bias: np.ndarray | None, module: str
    ) -> AffineVec:
        """``weight @ value + bias``, multiplied out into the units ``value`` reads where that
        adds no edges (two consecutive Linears are one map); where it would (a bottleneck: a
        20 -> 5 map read by a 5 -> 20 one), ``value`` first becomes units of its own with the
        identity activation, so the graph keeps the layer a network was built around."""
        folded = value.linear(weight, bias, module)
        if not len(value) or _nonzero_count(folded) <= (
            np.count_nonzero(weight) + _nonzero_count(value)
        ):
            return folded
        return self._new_units(value, Activation.IDENTITY, module, 0.01).linear(
            weight, bias, module
        )

    def activate(
        self,
        value: AffineVec,
        activation: Activation,
        module: str,
        alpha: float = 0.01,
        keep: bool = False,
    ) -> AffineVec:
        """Create one unit per element; the result is those units' outputs. An identity
        layer is folded into its readers (``linear`` decides where) unless ``keep`` says it
        is a layer of its own the user wants to see."""
        if activation is Activation.IDENTITY and not keep:
            return value
        return self._new_units(value, activation, module, alpha)

    def _new_units(
        self, value: AffineVec, activation: Activation, module: str, alpha: float
    ) -> AffineVec:
        _check_width(len(value), f"layer {module!r}")
        self._read_by_next(value)
        ids = []
        for i in range(len(value)):
            uid = self._fresh_id(value.origin[i] or f"{module}:{i}", module)
            self._add(Unit(uid, UnitKind.HIDDEN, activation, float(value.const[i]), alpha=alpha))
            ids.append(uid)
        return AffineVec.of_units(ids)

    def finish(self, outputs: AffineVec) -> NeuronGraph:
        """The graph, with one identity output unit per element of ``outputs``, each named
        after the linear map that produced it (``output:<i>`` when none did)."""
        self._read_by_next(outputs)
        for i in range(len(outputs)):
            uid = self._fresh_id(outputs.origin[i] or f"output:{i}", "output")
            self._add(Unit(uid, UnitKind.OUTPUT, Activation.IDENTITY, float(outputs.const[i])))
        # Every unit was made after the units it reads, so the edges come grouped by target.
        # One column at a time, each layer's piece of it let go once copied: a GPT-2-sized
        # stack's 57 million edges are 1.4 GB a copy.
        pieces = [list(column) for column in zip(*self._edges, strict=True)]
        self._edges = []
        src, dst, weight = (_joined(column) for column in pieces)
        edges = EdgeArrays.grouped(src, dst, weight, len(self._units))
        bias = np.array([unit.bias for unit in self._units])
        return NeuronGraph.from_arrays(self._units, bias, edges)

    def _read_by_next(self, value: AffineVec) -> None:
        """The edges of the units about to be made, one per element of ``value``: each
        row's nonzero coefficients, in basis order (the order a unit lists its inputs)."""
        rows, columns, weights = value.nonzeros()
        first = len(self._units)
        position = position_type(first + len(value))
        positions = np.array([self._position[b] for b in value.basis], dtype=position)
        self._edges.append((positions[columns], (first + rows).astype(position), weights))

    def _fresh_id(self, wanted: str, module: str) -> str:
        if wanted not in self._position:
            return wanted
        candidate, n = f"{wanted}/{module}", 2
        while candidate in self._position:
            candidate, n = f"{wanted}/{module}#{n}", n + 1
        return candidate

    def _add(self, unit: Unit) -> None:
        self._position[unit.id] = len(self._units)
        self._units.append(unit)

"""Convolutional layers as channel graphs: the rules both the torch and the ONNX loader use.

A convolutional network becomes a neuron graph with one unit per *channel*: a channel stands
for its whole feature map. The graph is the network's function on spatially uniform inputs
(every input channel constant over the image): there, every feature map is uniform too, a
convolution is exactly a linear map between channels whose weights are the kernels' sums, a
pooling layer passes each channel through unchanged, and a dense layer reading the flattened
maps weighs each channel by the sum of its weights over that channel's positions. Permuting
channels and rescaling one by a positive factor (its kernels and bias times k, the kernels
reading it divided by k) are symmetries of that graph exactly as they are of neurons, so the
canonical form, signatures and queries apply unchanged, and a match reads ``conv1:7``
(channel 7 of ``conv1``).

What the graph does not see: a kernel whose weights sum to zero (an edge detector) responds
to no uniform input, so its edge is zero. So is one whose sum is under ``UNIFORM_FLOOR`` of
its weights' absolute sum (its strongest response to an input of the same amplitude): that
sum is rounding, or a trace of the edge detector's imbalance, and the canonical form's
rescaling would otherwise blow it up into a full-strength edge. Zero padding makes a map
non-uniform at its borders, which is why each layer that pads with zeros is recorded
(``border_effects``): there the graph is the network's response away from the borders.
Padding that repeats the map (replicate, reflect, circular) and max pooling's padding keep
uniform maps uniform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from circuitql.indexer.affine import MAX_WIDTH, AffineVec, ShapeError

# A kernel's response to uniform inputs counts as none below this fraction of its strongest
# response (the absolute sum of its weights): the canonical form's own prune_tol.
UNIFORM_FLOOR = 1e-3


@dataclass(frozen=True)
class ChannelMap:
    """Feature maps, one element of ``vec`` per channel: the value the channel's map takes
    everywhere on a uniform input. ``spatial`` is the maps' size where the loader tracks it
    (ONNX declares its input's), None where it does not (torch.fx sees no sizes); ``flat``
    says the maps were flattened, so only a dense layer may read them next."""

    vec: AffineVec
    spatial: tuple[int, ...] | None = None
    flat: bool = False

    def with_vec(self, vec: AffineVec) -> ChannelMap:
        """The same maps' layout over new channel values (an activation, a batch norm)."""
        if len(vec) != len(self.vec):
            raise ShapeError(f"cannot turn {len(self.vec)} channels into {len(vec)}")
        return replace(self, vec=vec)

    @property
    def positions(self) -> int | None:
        """How many positions each channel's map has, where the size is known."""
        return None if self.spatial is None else math.prod(self.spatial)


@dataclass
class ChannelNotes:
    """What the channel graph stands for, kept in the model's metadata under ``channels``:
    every convolution and pooling layer read, and those whose zero padding makes the graph the
    network's response away from the borders only."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    border_effects: list[str] = field(default_factory=list)

    def record(self, layer: str, op: str, zero_padding: bool = False, **shape: Any) -> None:
        """One convolution or pooling layer, with its kernel, stride and padding."""
        self.layers.append({"layer": layer, "op": op, **shape})
        if zero_padding:
            self.border_effects.append(layer)

    def to_json(self) -> dict[str, Any]:
        """The metadata entry (loaders add it when a layer was recorded)."""
        return {"layers": self.layers, "border_effects": self.border_effects}


def conv_matrix(weight: np.ndarray, groups: int, module: str) -> np.ndarray:
    """The (out channels, in channels) matrix of kernel sums of a convolution's weight,
    shaped (out, in / groups, *kernel) as torch and ONNX store it: with ``groups`` > 1, each
    group of outputs reads its own group of inputs (a block-diagonal matrix)."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim < 3:
        raise ShapeError(f"{module}: a convolution's weight needs (out, in, *kernel) dimensions")
    out, per_group = weight.shape[0], weight.shape[1]
    if groups < 1 or out % groups:
        raise ShapeError(f"{module}: {out} output channels do not split into {groups} groups")
    sums = uniform_response(weight.reshape(out, per_group, -1))
    matrix = np.zeros((out, per_group * groups))
    rows = out // groups
    for g in range(groups):
        block = slice(g * rows, (g + 1) * rows)
        matrix[block, g * per_group : (g + 1) * per_group] = sums[block]
    return matrix


def dense_on_channels(weight: np.ndarray, maps: ChannelMap, module: str) -> np.ndarray:
    """A dense layer's (out, channels x positions) weight reading flattened maps, as the
    (out, channels) weight it is on uniform maps: each channel's columns summed (maps flatten
    channel-major, as NCHW tensors do)."""
    weight = np.asarray(weight, dtype=np.float64)
    channels = len(maps.vec)
    if not maps.flat:
        raise ShapeError(
            f"{module}: a dense layer reads feature maps only after they are flattened"
        )
    if weight.ndim != 2 or not channels or weight.shape[1] % channels:
        raise ShapeError(
            f"{module}: weight of shape {tuple(weight.shape)} cannot read {channels} "
            "flattened channels"
        )
    positions = weight.shape[1] // channels
    if maps.positions is not None and maps.positions != positions:
        raise ShapeError(
            f"{module}: weight of shape {tuple(weight.shape)} cannot read {channels} "
            f"channels of {maps.positions} positions each"
        )
    return uniform_response(weight.reshape(weight.shape[0], channels, positions))


def uniform_response(weights: np.ndarray) -> np.ndarray:
    """Each row of the last axis summed: its response to a uniform input of 1, zero where
    that is under ``UNIFORM_FLOOR`` of the row's absolute sum."""
    sums = weights.sum(axis=-1)
    return np.where(np.abs(sums) < UNIFORM_FLOOR * np.abs(weights).sum(axis=-1), 0.0, sums)


def expanded(maps: ChannelMap) -> AffineVec:
    """Maps as the flat vector the network outputs: each channel repeated over its known
    positions (a fully convolutional network's output, one value per channel after a global
    pooling)."""
    positions = maps.positions or 1
    if len(maps.vec) * positions > MAX_WIDTH:
        raise ShapeError(
            f"the network outputs {len(maps.vec):,} feature maps of {positions:,} positions: "
            f"more than the {MAX_WIDTH:,} outputs circuitql reads (pool or flatten them into a "
            "dense layer first)"
        )
    return maps.vec.select(np.repeat(np.arange(len(maps.vec)), positions).tolist())


def per_channel(constant: np.ndarray, maps: ChannelMap) -> np.ndarray | None:
    """A constant that broadcasts over the maps, as one value per channel; None when it
    varies across positions (the graph has no positions to give it)."""
    constant = np.asarray(constant, dtype=np.float64)
    channels = len(maps.vec)
    if constant.size == 1:
        return np.full(channels, float(constant.reshape(-1)[0]))
    rank = 2 + (len(maps.spatial) if maps.spatial is not None else 2)
    shape = (1,) * (rank - constant.ndim) + constant.shape
    if len(shape) != rank or shape[0] != 1 or any(d != 1 for d in shape[2:]):
        return None
    if shape[1] not in (1, channels):
        return None
    return np.broadcast_to(constant.reshape(-1), (channels,)).astype(np.float64)


def window_output(
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    ceil: bool = False,
) -> tuple[int, ...]:
    """A convolution's or pooling window's output size per axis (ONNX's formula; ``pads``
    lists every axis's beginning, then every axis's end)."""
    rank = len(spatial)
    if not (len(kernel) == len(strides) == len(dilations) == rank and len(pads) == 2 * rank):
        raise ShapeError(f"a window over {rank}-D maps needs {rank} sizes per attribute")
    if min((*kernel, *strides, *dilations), default=1) < 1 or min(pads, default=0) < 0:
        raise ShapeError(
            "a window's sizes, strides and dilations must be positive, its pads not negative"
        )
    out = []
    for i in range(rank):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = spatial[i] + pads[i] + pads[i + rank] - span
        if room < 0:
            raise ShapeError(f"a window of {span} does not fit a map of {spatial[i]}")
        steps = math.ceil(room / strides[i]) if ceil else room // strides[i]
        out.append(steps + 1)
    return tuple(out)

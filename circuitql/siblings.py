"""Near-parallel units: when two units of a network act as one.

Gradient descent splits a detector over two or three ReLUs whose hyperplanes nearly coincide
(kinks a few hundredths apart, directions a few degrees apart). An approximate search takes
such a split as one pattern unit (``engine.wiring``); the index counts, for each neuron that
reads few units, how many groups of such units its inputs form (``input_groups``), so that
the search's lookup can leave out the readers whose extra inputs no split explains. Both
sides judge "near-parallel" by the rule here, and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from circuitql.graph import Activation
from circuitql.lazy import cached_property

# Near-parallel: two rows count as one direction when sin(angle) <= this x tolerance (8.6
# degrees at the default 5%), and their kinks as one when their offsets along the rows lie
# within twice that; a linear path is along a pair's direction within the same.
PARALLEL = 3.0

# The tolerance the index counts groups at: a search at this tolerance or below may bound a
# reader's groups by the stored count (a larger tolerance joins more units into a group, so
# the count at a smaller one is never lower). The slack covers float noise between the
# index's sums and a store view's, over the same weights.
GROUPS_TOLERANCE = 0.1
_GROUPS_SLACK = 1 + 1e-9
# Readers of more units than this are not counted (their stored count is 0, "unknown"): a
# search bounds the groups of readers of a few units only, and a dense layer's unit reads 64.
GROUPS_FAN_IN = 8


def sine(
    a: Mapping[str, float], a_norm: float, b: Mapping[str, float], b_norm: float, flip: bool = False
) -> float | None:
    """sin of the angle between two rows of weights (source -> weight), the second negated
    when ``flip``; None when either is zero or they point apart by more than 90 degrees. The
    dot product runs over the shorter row: a circuit's unit reads a few units, a host's a
    whole layer."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    dot = sum(w * long.get(s, 0.0) for s, w in short.items())
    dot = -dot if flip else dot
    if a_norm == 0 or b_norm == 0 or dot <= 0:
        return None
    cosine = min(1.0, dot / (a_norm * b_norm))
    return math.sqrt(max(0.0, 1.0 - cosine * cosine))


def offset(bias: float, norm: float) -> float:
    """Where a unit's kink sits along its row: its bias over the row's norm."""
    return bias / (norm or 1.0)


def near(angle_sine: float | None, gap: float, tolerance: float) -> bool:
    """Whether two units with the same activation, rows ``angle_sine`` apart and offsets
    ``gap`` apart, act as one at ``tolerance``."""
    return (
        angle_sine is not None
        and angle_sine <= PARALLEL * tolerance
        and gap <= 2 * PARALLEL * tolerance
    )


@dataclass(frozen=True)
class Source:
    """One input of a reader, as the groups count sees it. ``free``: a ReLU reading network
    inputs only, which an approximate search may find dead or linear where the circuit lives
    (on the domain, or the probe range): such a unit is explained without a pattern unit, so
    it joins a group but never makes one."""

    row: Mapping[str, float]
    bias: float
    activation: Activation
    free: bool

    @cached_property
    def norm(self) -> float:
        """The Euclidean norm of the row, as a store's view computes it."""
        return math.sqrt(sum(w * w for w in self.row.values()))


def input_groups(sources: Sequence[Source]) -> int:
    """How many groups of near-parallel units (at ``GROUPS_TOLERANCE``) a reader's
    significant inputs form, not counting groups of free units alone.

    A match of a pattern unit that reads one hidden unit explains the reader's other
    significant inputs only as halves of a split of the unit bound (near-parallel to it) or as
    free units: its inputs then form one group. Near-parallel is not transitive, so groups are
    the components of the relation; a larger tolerance only joins them, and the count at the
    search's tolerance is never below the stored one."""
    tolerance = GROUPS_TOLERANCE * _GROUPS_SLACK
    lone = sum(1 for s in sources if s.norm == 0)  # network inputs: near nothing
    rows = [s for s in sources if s.norm > 0]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    offsets = [offset(s.bias, s.norm) for s in rows]
    for i, a in enumerate(rows):
        for j in range(i + 1, len(rows)):
            b = rows[j]
            if a.activation is not b.activation or root(i) == root(j):
                continue
            if near(sine(a.row, a.norm, b.row, b.norm), abs(offsets[i] - offsets[j]), tolerance):
                parent[root(i)] = root(j)
    counted = {root(i) for i, s in enumerate(rows) if not s.free}
    return lone + len(counted)

"""Are two canonical networks one network, up to the order of their hidden units?

Inputs and outputs are the interface and keep their positions; hidden units may stand in any
order; weights, biases and slopes agree within a relative tolerance. That is graph
isomorphism, which networkx's VF2 decides in time that grows steeply with width (minutes for
a 768-unit layer). Canonical networks make it nearly a sort instead. Matched level by level
from the inputs, a unit is known by its activation and its incoming weights from units
already matched, and two units of one canonical network never agree on those (the canonical
form merges duplicates). So a level is matched in two exact steps and one numeric one: units
are grouped by kind, activation, output position and set of sources (an isomorphism keeps
each of these exactly), and in each group a unit's partner is looked up in a window of the
other network's units sorted by the weight that spreads them most. Only where some unit has
two partners within tolerance, near-duplicates the merge left apart, does VF2 decide.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from circuitql.graph import NeuronGraph, Unit, UnitKind

if TYPE_CHECKING:
    import networkx as nx

# A group whose windows hold more candidates than this per unit is left to VF2: its units
# are too alike for a sort to tell apart.
MAX_WINDOW = 8

_Key = tuple[UnitKind, str, int | None, frozenset[str]]


def isomorphic(a: NeuronGraph, b: NeuronGraph, tol: float) -> bool:
    """Same canonical network up to hidden-unit order, every weight, bias and slope of ``b``
    within ``tol`` of ``a``'s, relatively (``|x - y| <= tol * max(1, |x|)``)."""
    if (len(a), a.n_edges, len(a.inputs), len(a.outputs)) != (
        len(b),
        b.n_edges,
        len(b.inputs),
        len(b.outputs),
    ):
        return False
    try:
        return _by_levels(a, b, tol)
    except _Ambiguous:
        return _vf2(a, b, tol)


class _Ambiguous(Exception):
    """Some unit has several partners within tolerance: the sort cannot decide."""


def _by_levels(a: NeuronGraph, b: NeuronGraph, tol: float) -> bool:
    """The answer; ``_Ambiguous`` where near-duplicate units leave it to VF2."""
    mapping = {ua.id: ub.id for ua, ub in zip(a.inputs, b.inputs, strict=True)}
    inverse = {ub: ua for ua, ub in mapping.items()}
    levels_a, levels_b = _levels(a), _levels(b)
    if {k: len(v) for k, v in levels_a.items()} != {k: len(v) for k, v in levels_b.items()}:
        return False
    out_a = {u.id: i for i, u in enumerate(a.outputs)}
    out_b = {u.id: i for i, u in enumerate(b.outputs)}
    for level in sorted(levels_a):
        groups_a = _groups(levels_a[level], out_a, mapping)
        groups_b = _groups(levels_b[level], out_b, None)
        if {k: len(v) for k, v in groups_a.items()} != {k: len(v) for k, v in groups_b.items()}:
            return False
        for key, units_a in groups_a.items():
            paired = _pair(units_a, groups_b[key], sorted(key[3]), inverse, tol)
            if paired is None:
                return False
            mapping.update(paired)
            inverse.update((ub, ua) for ua, ub in paired.items())
    return True


def _levels(graph: NeuronGraph) -> dict[int, list[Unit]]:
    by_level: dict[int, list[Unit]] = defaultdict(list)
    for unit in graph.units:
        if unit.kind is not UnitKind.INPUT:
            by_level[graph.layers[unit.id]].append(unit)
    return by_level


def _groups(
    units: Sequence[Unit], outputs: Mapping[str, int], mapping: Mapping[str, str] | None
) -> dict[_Key, list[Unit]]:
    """Units by what an isomorphism keeps exactly, sources named as in the second network
    (through ``mapping``, for the first)."""
    groups: dict[_Key, list[Unit]] = defaultdict(list)
    for unit in units:
        sources = frozenset(unit.inputs if mapping is None else (mapping[s] for s in unit.inputs))
        groups[unit.kind, unit.activation.value, outputs.get(unit.id), sources].append(unit)
    return groups


def _pair(
    units_a: list[Unit],
    units_b: list[Unit],
    sources: list[str],
    inverse: Mapping[str, str],
    tol: float,
) -> dict[str, str] | None:
    """Each unit of ``units_a`` with its one partner in ``units_b``; None when some unit has
    none (or two share one); ``_Ambiguous`` when some unit has several. ``sources`` are named
    as in the second network, ``inverse`` names them in the first."""
    x = np.array([[u.inputs[inverse[s]] for s in sources] + [u.bias, u.alpha] for u in units_a])
    y = np.array([[u.inputs[s] for s in sources] + [u.bias, u.alpha] for u in units_b])
    slack = tol * np.maximum(1.0, np.abs(x))
    # Partners differ by at most the slack in every coordinate, so in the one that spreads
    # the units most. A single coordinate, not a weighted sum: a sum's slack grows with the
    # number of sources faster than its spread (166 sources left 965 units ten to a window).
    column = int(np.argmax(x.std(axis=0))) if len(x) > 1 else 0
    px, py = x[:, column], y[:, column]
    reach = slack[:, column] * (1 + 1e-9) + 1e-12
    order = np.argsort(py, kind="stable")
    low = np.searchsorted(py[order], px - reach, side="left")
    high = np.searchsorted(py[order], px + reach, side="right")
    if np.sum(high - low) > MAX_WINDOW * len(units_a):
        raise _Ambiguous
    pairs: dict[str, str] = {}
    taken: set[int] = set()
    for i, unit in enumerate(units_a):
        window = order[low[i] : high[i]]
        partners = window[np.all(np.abs(x[i] - y[window]) <= slack[i], axis=1)]
        if len(partners) > 1:
            raise _Ambiguous
        if not len(partners) or int(partners[0]) in taken:
            return None
        taken.add(int(partners[0]))
        pairs[unit.id] = units_b[int(partners[0])].id
    return pairs


def _vf2(a: NeuronGraph, b: NeuronGraph, tol: float) -> bool:
    import networkx as nx  # 0.2 s, paid only where near-duplicate units leave the sort unsure

    def node_match(x: dict[str, Any], y: dict[str, Any]) -> bool:
        return (
            x["fixed"] == y["fixed"]
            and x["activation"] == y["activation"]
            and all(abs(x[k] - y[k]) <= tol * max(1.0, abs(x[k])) for k in ("bias", "alpha"))
        )

    def edge_match(x: dict[str, float], y: dict[str, float]) -> bool:
        return abs(x["weight"] - y["weight"]) <= tol * max(1.0, abs(x["weight"]))

    return bool(
        nx.is_isomorphic(
            as_networkx(a), as_networkx(b), node_match=node_match, edge_match=edge_match
        )
    )


def as_networkx(graph: NeuronGraph) -> nx.DiGraph:
    """Inputs and outputs keep their position (they are the interface); hidden units are
    interchangeable."""
    import networkx as nx

    g = nx.DiGraph()
    inputs = {u.id: f"in{i}" for i, u in enumerate(graph.inputs)}
    outputs = {u.id: f"out{i}" for i, u in enumerate(graph.outputs)}
    for unit in graph.units:
        g.add_node(
            unit.id,
            fixed=inputs.get(unit.id) or outputs.get(unit.id),
            activation=unit.activation,
            bias=unit.bias,
            alpha=unit.alpha,
        )
        for src, w in unit.inputs.items():
            g.add_edge(src, unit.id, weight=w)
    return g

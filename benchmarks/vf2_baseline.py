"""The no-index baseline: per-model networkx VF2 subgraph monomorphism with sign predicates.

What someone without circuitql would write: take each model's whole (canonical) graph, match
the circuit's pattern graph into it with VF2, nodes compared by activation and edges by sign,
then keep the monomorphisms that pass the same closed-fan-in, weight and numeric checks as the
engine, so both report the same answers. Its cost grows with the number of monomorphisms of
the bare sign pattern, which is exponential in the width of the network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import networkx as nx
from networkx.algorithms.isomorphism import DiGraphMatcher

from circuitql.engine.fit import fit
from circuitql.engine.match import Neighbourhood
from circuitql.engine.search import DEFAULT_TOLERANCE
from circuitql.engine.verify import Probing, subnetwork, verify
from circuitql.language.pattern import CircuitPattern, CoefKind, Role
from circuitql.store.base import Store


def baseline_matches(
    store: Store, model: str, pattern: CircuitPattern, deadline: float | None = None
) -> Iterator[frozenset[str]]:
    """The unit sets of verified matches in one model, found without any index."""
    neurons = store.neurons(model)
    views = {uid: view for (_, uid), view in store.fetch([(model, n.uid) for n in neurons]).items()}
    host = nx.DiGraph()
    for uid, view in views.items():
        signature = view.record.signature
        host.add_node(uid, activation=signature.activation, kind=signature.kind)
        for src, w in view.inputs:
            host.add_edge(src, uid, sign=1 if w > 0 else -1)
    wanted = nx.DiGraph()
    for unit in pattern.units:
        wanted.add_node(unit.name, activation=unit.activation, role=unit.role)
        for src, coef in unit.inputs:
            sign = None if coef.kind is CoefKind.FREE else (1 if coef.value > 0 else -1)
            wanted.add_edge(src, unit.name, sign=sign)

    def node_match(h: dict[str, object], p: dict[str, object]) -> bool:
        return (
            p["role"] is Role.INPUT or p["activation"] is None or p["activation"] == h["activation"]
        )

    def edge_match(h: dict[str, object], p: dict[str, object]) -> bool:
        return p["sign"] is None or p["sign"] == h["sign"]

    everything = Neighbourhood({u.name: frozenset(views) for u in pattern.units}, views)
    matcher = DiGraphMatcher(host, wanted, node_match=node_match, edge_match=edge_match)
    seen: set[frozenset[str]] = set()
    for raw in matcher.subgraph_monomorphisms_iter():
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError
        mapping = {p: h for h, p in raw.items()}
        key = frozenset(mapping.values())
        if key in seen or not _closed_fan_in(pattern, mapping, everything):
            continue
        fitted = fit(pattern, mapping, everything, DEFAULT_TOLERANCE)
        if fitted is None:
            continue
        graph = subnetwork(pattern, mapping, views)
        free = tuple(
            views[mapping[o]].record.signature.kind.value != "output" for o in pattern.outputs
        )
        probing = Probing(free)
        if verify(pattern, mapping, graph, fitted.params, probing).error <= DEFAULT_TOLERANCE:
            seen.add(key)
            yield key


def _closed_fan_in(pattern: CircuitPattern, mapping: dict[str, str], hood: Neighbourhood) -> bool:
    """A matched unit of a closed pattern unit has no significant input besides the pattern's."""
    for unit in pattern.units:
        if unit.role is Role.INPUT or unit.open_fan_in:
            continue
        signature = hood.views[mapping[unit.name]].record.signature
        if signature.fan_in != len(unit.inputs):
            return False
    return True

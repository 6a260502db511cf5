"""The one place circuitql calls networkx: subgraph monomorphism of a pattern into a
candidate neighbourhood.

Monomorphism, not induced isomorphism: a network may have edges between matched units that
the pattern does not name (a skip connection the circuit does not use). Whether such extra
inputs are allowed is the pattern's closed / open fan-in, which the candidate sets already
enforce through the units' exact significant fan-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import networkx as nx
from networkx.algorithms.isomorphism import DiGraphMatcher


def monomorphisms(
    allowed: Mapping[str, frozenset[str]],
    edges: Iterable[tuple[str, str, float]],
    pattern_edges: Mapping[tuple[str, str], int | None],
) -> Iterator[dict[str, str]]:
    """Every injective map pattern unit -> network unit that keeps pattern edges and signs.

    ``allowed`` maps a network unit to the pattern units it may stand for; ``edges`` are the
    significant network edges among those units; ``pattern_edges`` maps each pattern edge to
    the sign its weight must have (None: any sign).
    """
    host = nx.DiGraph()
    for uid, names in allowed.items():
        host.add_node(uid, allowed=names)
    for src, dst, weight in edges:
        if src in allowed and dst in allowed:
            host.add_edge(src, dst, sign=1 if weight > 0 else -1)
    pattern = nx.DiGraph()
    for (src, dst), sign in pattern_edges.items():
        pattern.add_node(src, name=src)
        pattern.add_node(dst, name=dst)
        pattern.add_edge(src, dst, sign=sign)

    def node_match(host_attrs: dict[str, object], pattern_attrs: dict[str, object]) -> bool:
        return pattern_attrs["name"] in host_attrs["allowed"]  # type: ignore[operator]

    def edge_match(host_attrs: dict[str, object], pattern_attrs: dict[str, object]) -> bool:
        return pattern_attrs["sign"] is None or pattern_attrs["sign"] == host_attrs["sign"]

    matcher = DiGraphMatcher(host, pattern, node_match=node_match, edge_match=edge_match)
    for mapping in matcher.subgraph_monomorphisms_iter():
        yield {p: h for h, p in mapping.items()}

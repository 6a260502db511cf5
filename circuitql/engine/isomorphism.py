"""Subgraph monomorphism of a pattern into a candidate neighbourhood: the one place circuitql
calls networkx.

Monomorphism, not induced isomorphism: a network may have edges between matched units that
the pattern does not name (a skip connection the circuit does not use). Whether such extra
inputs are allowed is the pattern's closed / open fan-in, which the candidate sets already
enforce through the units' exact significant fan-in.

Almost every neighbourhood leaves each pattern unit a candidate or two, after growth has
pruned by signature. There, trying every assignment in turn costs microseconds, where
building two networkx graphs and a VF2 matcher costs a millisecond (a third of an
approximate query's time on a planted zoo); the search space's size decides which runs.
Both give the same maps, in a fixed order: by pattern unit with the fewest candidates first,
then by network unit id, whatever the process's hash seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

# Searched by trying assignments when the candidate sets allow at most this many.
SMALL_SEARCH = 4096

Signs = Mapping[tuple[str, str], int | None]


def monomorphisms(
    allowed: Mapping[str, frozenset[str]],
    edges: Iterable[tuple[str, str, float]],
    pattern_edges: Signs,
    expired: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, str]]:
    """Every injective map pattern unit -> network unit that keeps pattern edges and signs.

    ``allowed`` maps a network unit to the pattern units it may stand for; ``edges`` are the
    significant network edges among those units; ``pattern_edges`` maps each pattern edge to
    the sign its weight must have (None: any sign). A large search stops once ``expired``
    says the query's time is up (twelve interchangeable units have 479 million maps).
    """
    host = {
        (src, dst): 1 if weight > 0 else -1
        for src, dst, weight in edges
        if src in allowed and dst in allowed
    }
    candidates = _candidates(allowed, pattern_edges)
    if math.prod(len(c) for c in candidates.values()) <= SMALL_SEARCH:
        yield from assignments(candidates, host, pattern_edges)
    else:
        yield from vf2(allowed, host, pattern_edges, _order(candidates), expired)


def _candidates(
    allowed: Mapping[str, frozenset[str]], pattern_edges: Signs
) -> dict[str, list[str]]:
    """Per pattern unit with an edge, the network units that may stand for it, sorted."""
    names = sorted({name for edge in pattern_edges for name in edge})
    return {
        name: sorted(uid for uid, options in allowed.items() if name in options) for name in names
    }


def _order(candidates: Mapping[str, list[str]]) -> list[str]:
    """Pattern units by their number of candidates, then name: the order maps come in."""
    return sorted(candidates, key=lambda name: (len(candidates[name]), name))


def assignments(
    candidates: Mapping[str, list[str]], host: Mapping[tuple[str, str], int], pattern_edges: Signs
) -> Iterator[dict[str, str]]:
    """The maps, by trying each candidate of each pattern unit in turn, the unit with the
    fewest candidates first, and checking every pattern edge to units already placed."""
    order = _order(candidates)
    position = {name: i for i, name in enumerate(order)}
    # Per pattern unit, the edges it closes: those whose other end is placed before it.
    closes: dict[str, list[tuple[str, str, int | None]]] = {name: [] for name in order}
    for (src, dst), sign in pattern_edges.items():
        last = src if position[src] > position[dst] else dst
        closes[last].append((src, dst, sign))
    yield from _place(0, order, candidates, closes, host, {}, set())


def _place(
    i: int,
    order: list[str],
    candidates: Mapping[str, list[str]],
    closes: Mapping[str, list[tuple[str, str, int | None]]],
    host: Mapping[tuple[str, str], int],
    mapping: dict[str, str],
    used: set[str],
) -> Iterator[dict[str, str]]:
    """The maps that extend ``mapping`` (the first ``i`` units of ``order`` placed, on the
    network units ``used``). A function of its arguments rather than a closure: a closure
    that calls itself is a reference cycle, left for the garbage collector at every search."""
    if i == len(order):
        yield dict(mapping)
        return
    name = order[i]
    for uid in candidates[name]:
        if uid in used:
            continue
        mapping[name] = uid
        if all(_kept(host, mapping[src], mapping[dst], sign) for src, dst, sign in closes[name]):
            used.add(uid)
            yield from _place(i + 1, order, candidates, closes, host, mapping, used)
            used.discard(uid)
        del mapping[name]


def _kept(host: Mapping[tuple[str, str], int], src: str, dst: str, sign: int | None) -> bool:
    found = host.get((src, dst))
    return found is not None and (sign is None or found == sign)


def vf2(
    allowed: Mapping[str, frozenset[str]],
    host_edges: Mapping[tuple[str, str], int],
    pattern_edges: Signs,
    order: list[str],
    expired: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, str]]:
    """The maps, by networkx's VF2, for neighbourhoods too large to try assignment by
    assignment; sorted by their units in ``order``, as ``assignments`` gives them.

    networkx is imported here, on first use: its import takes 0.2 s, which a command that
    never meets so large a neighbourhood (most of them) should not pay."""
    import networkx as nx
    from networkx.algorithms.isomorphism import DiGraphMatcher

    host = nx.DiGraph()
    for uid, names in allowed.items():
        host.add_node(uid, allowed=names)
    for (src, dst), found in host_edges.items():
        host.add_edge(src, dst, sign=found)
    pattern = nx.DiGraph()
    for (src, dst), sign in pattern_edges.items():
        pattern.add_node(src, name=src)
        pattern.add_node(dst, name=dst)
        pattern.add_edge(src, dst, sign=sign)

    def node_match(host_attrs: dict[str, object], pattern_attrs: dict[str, object]) -> bool:
        # VF2 may search long between two maps (or find none): asked at every step, this is
        # where a search past the query's deadline is stopped.
        if expired():
            raise _Expired
        return pattern_attrs["name"] in host_attrs["allowed"]  # type: ignore[operator]

    def edge_match(host_attrs: dict[str, object], pattern_attrs: dict[str, object]) -> bool:
        return pattern_attrs["sign"] is None or pattern_attrs["sign"] == host_attrs["sign"]

    matcher = DiGraphMatcher(host, pattern, node_match=node_match, edge_match=edge_match)
    maps = []
    try:
        for mapping in matcher.subgraph_monomorphisms_iter():
            maps.append({p: h for h, p in mapping.items()})
    except _Expired:  # the maps so far; the query's answer says it is partial
        pass
    yield from sorted(maps, key=lambda m: [m[name] for name in order])


class _Expired(Exception):
    """Raised inside networkx's matcher to stop it at the query's deadline."""

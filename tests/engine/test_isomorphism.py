"""Monomorphisms by assignment and by networkx's VF2: the same maps, in the same order."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from circuitql.engine.isomorphism import (
    SMALL_SEARCH,
    _candidates,
    _order,
    assignments,
    monomorphisms,
    vf2,
)

HOST = [f"h{i}" for i in range(6)]
PATTERN = ["x", "p", "n", "y"]


@st.composite
def instances(
    draw: st.DrawFn,
) -> tuple[
    dict[str, frozenset[str]], dict[tuple[str, str], int], dict[tuple[str, str], int | None]
]:
    """A small host with signed edges, the pattern units each host unit may stand for, and a
    signed pattern: as a grown neighbourhood hands them over."""
    pairs = [(a, b) for a, b in itertools.permutations(HOST, 2)]
    host = draw(st.dictionaries(st.sampled_from(pairs), st.sampled_from([1, -1]), max_size=14))
    allowed = {uid: frozenset(draw(st.sets(st.sampled_from(PATTERN), max_size=3))) for uid in HOST}
    edges = [(a, b) for a, b in itertools.permutations(PATTERN, 2)]
    pattern = draw(
        st.dictionaries(
            st.sampled_from(edges), st.sampled_from([1, -1, None]), min_size=1, max_size=5
        )
    )
    return allowed, host, pattern


@settings(max_examples=400, deadline=None)
@given(instances())
def test_assignments_and_vf2_agree(
    instance: tuple[
        dict[str, frozenset[str]], dict[tuple[str, str], int], dict[tuple[str, str], int | None]
    ],
) -> None:
    allowed, host, pattern = instance
    candidates = _candidates(allowed, pattern)
    tried = list(assignments(candidates, host, pattern))
    assert tried == list(vf2(allowed, host, pattern, _order(candidates)))
    for found in tried:
        assert len(set(found.values())) == len(found)  # injective
        assert all(name in allowed[uid] for name, uid in found.items())
        assert all(
            (found[a], found[b]) in host and sign in (None, host[found[a], found[b]])
            for (a, b), sign in pattern.items()
        )


def test_a_large_neighbourhood_goes_to_vf2_with_the_same_answer() -> None:
    # A path of 6 pattern units over 6 fully connected hosts: 6^6 candidate assignments,
    # past SMALL_SEARCH, so networkx searches it; every ordering of the hosts is a map.
    hosts = [f"h{i}" for i in range(6)]
    names = [f"u{i}" for i in range(6)]
    assert len(hosts) ** len(names) > SMALL_SEARCH
    allowed = {uid: frozenset(names) for uid in hosts}
    pattern: dict[tuple[str, str], int | None] = {
        (names[i], names[i + 1]): 1 for i in range(len(names) - 1)
    }
    host = {(a, b): 1 for a, b in itertools.permutations(hosts, 2)}
    found = list(monomorphisms(allowed, [(a, b, 1.0) for a, b in host], pattern))
    assert len(found) == 720
    assert found == list(assignments(_candidates(allowed, pattern), host, pattern))
    flipped = {edge: -1 for edge in pattern}
    assert list(monomorphisms(allowed, [(a, b, 1.0) for a, b in host], flipped)) == []


def test_a_search_past_its_deadline_stops_inside_vf2() -> None:
    """Twelve interchangeable units among 40 candidates, and an output the hosts do not
    wire: VF2 would search for hours without finding a map. Told the time is up, it stops
    within a few steps, with the maps it had (none)."""
    names = [f"h{i}" for i in range(12)]
    allowed = {f"u{j}": frozenset(names) for j in range(40)} | {"out": frozenset({"y"})}
    edges = [(f"u{j}", "out", 1.0) for j in range(11)]  # one reader short of twelve
    asked = itertools.count()
    maps = list(
        monomorphisms(
            allowed, edges, {(name, "y"): 1 for name in names}, expired=lambda: next(asked) > 1000
        )
    )
    assert maps == [] and next(asked) < 1100

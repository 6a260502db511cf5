"""Property tests: a circuit planted in a random host with training-like perturbations inside
the stated tolerances is found; one a perturbation outside them is not.

Each example draws a host, a one-input circuit (identity, negation or abs), a perturbation and
its size, plants it on network inputs of the domain [-2, 2] and asks the embedded store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitql.api import connect
from circuitql.engine.results import Match
from circuitql.graph import NeuronGraph
from circuitql.indexer.canonical import Config
from circuitql.indexer.pipeline import IndexConfig
from circuitql.zoo.perturbed import (
    DOMAIN,
    NOISE,
    WIDTH,
    Rows,
    X,
    abs_offset,
    network,
    pair_weights,
)
from circuitql.zoo.plant import plant_in_host

CIRCUITS = ("identity", "negation", "abs")
examples = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _query(
    tmp_path: Path, example: NeuronGraph, circuit: str, seed: int
) -> tuple[list[Match], dict[str, str]]:
    rng = np.random.default_rng(seed)
    graph, where = plant_in_host(
        example, NOISE, rng, int(rng.integers(3, 6)), [int(rng.integers(12, 21))] * 2, 2
    )
    path = tmp_path / f"{seed}-{circuit}.db"
    with connect(str(path), IndexConfig(Config(domain=DOMAIN))) as db:
        db.index(graph, name="m")
        found = list(db.query(f"MATCH {circuit}"))
    path.unlink()
    return found, where


def _at(found: list[Match], where: dict[str, str], *units: str) -> bool:
    return any(
        m.bindings["x"] == where[X]
        and m.bindings["y"] == where["y"]
        and m.bindings["p"] in {where[u] for u in units}
        for m in found
    )


@examples
@given(
    circuit=st.sampled_from(CIRCUITS),
    seed=st.integers(0, 2**16),
    shift=st.floats(0.0, 0.025),
    parts=st.integers(1, 3),
    kink=st.floats(0.0, 0.01),
    tilt=st.floats(-0.2, 0.2),
)
def test_a_circuit_perturbed_within_tolerance_is_found(
    tmp_path: Path, circuit: str, seed: int, shift: float, parts: int, kink: float, tilt: float
) -> None:
    """Kinks moved by up to 2.5% of the domain (an output bias cancelling what it can), the
    positive detector split over 1 to 3 near-parallel units, and a linear path of up to a
    fifth of the output beside the pair through a unit active on the whole domain."""
    wp, wn = pair_weights(circuit)
    rng = np.random.default_rng(seed)
    c = shift * WIDTH * (1.0 if circuit != "abs" else float(rng.choice([-1.0, 1.0])))
    shares = rng.dirichlet(np.full(parts, 4.0))
    rows: Rows = []
    out: dict[str, float] = {}
    for i, share in enumerate(shares.tolist()):
        uid = f"p{i}" if i else "p"
        w = float(rng.uniform(0.7, 1.4))
        offset = c + float(rng.uniform(-kink, kink))
        rows.append((uid, -w * offset, {X: w}))
        out[uid] = (wp - tilt) * share / w
    n_bias = c if circuit != "abs" else -c
    rows += [("n", n_bias, {X: -1.0}), ("lin", 3.0, {X: 0.5})]
    out.update({"n": wn + tilt, "lin": 2 * tilt})
    bias = (wp * c if circuit != "abs" else abs_offset(c)) - 6 * tilt
    rows.append(("y", bias, out))
    found, where = _query(tmp_path, network(1, rows), circuit, seed)
    halves = [uid for uid, _, _ in rows if uid.startswith("p")]
    assert _at(found, where, *halves), [dict(m.bindings) for m in found]


@examples
@given(
    circuit=st.sampled_from(CIRCUITS),
    seed=st.integers(0, 2**16),
    case=st.sampled_from(["zone", "ratio", "wrong-sign"]),
    size=st.floats(0.0, 1.0),
)
def test_a_circuit_perturbed_beyond_tolerance_is_not_found(
    tmp_path: Path, circuit: str, seed: int, case: str, size: float
) -> None:
    """A dead zone of at least 30% of the domain, a detector's weight 30% to 60% off, or a
    split half of the wrong sign weighing 30% to 60% of its host."""
    wp, wn = pair_weights(circuit)
    if case == "zone":
        k = (0.15 + 0.2 * size) * WIDTH
        rows: Rows = [
            ("p", -k, {X: 1.0}),
            ("n", -k, {X: -1.0}),
            ("y", k / 2 if circuit == "abs" else 0.0, {"p": wp, "n": wn}),
        ]
    elif case == "ratio":
        rows = [
            ("p", 0.0, {X: 1.0}),
            ("n", 0.0, {X: -1.0}),
            ("y", 0.0, {"p": wp, "n": wn * (0.7 - 0.3 * size)}),
        ]
    else:
        against = 0.3 + 0.3 * size
        rows = [
            ("p", 0.0, {X: 1.0}),
            ("p1", -0.005, {X: 1.0}),
            ("n", 0.0, {X: -1.0}),
            ("y", 0.0, {"p": wp * (1 + against), "p1": -wp * against, "n": wn}),
        ]
    found, where = _query(tmp_path, network(1, rows), circuit, seed)
    assert (
        not _at(found, where, "p", "p1") if case == "wrong-sign" else not _at(found, where, "p")
    ), [dict(m.bindings) for m in found]


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_the_decoy_sizes_are_far_from_the_circuit(circuit: str) -> None:
    """The decoys above are not the circuit numerically either: 10% and more off."""
    wp, wn = pair_weights(circuit)
    x = np.linspace(-2, 2, 401)[:, None]
    target = {"identity": x, "negation": -x, "abs": np.abs(x)}[circuit][:, 0]
    ratio = network(
        1, [("p", 0.0, {X: 1.0}), ("n", 0.0, {X: -1.0}), ("y", 0.0, {"p": wp, "n": wn * 0.7})]
    ).evaluate(x)[:, 0]
    assert np.max(np.abs(ratio - target)) / np.max(np.abs(target)) >= 0.1

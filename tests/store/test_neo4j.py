"""Neo4j-only behaviour: connection errors, the server-side schema, the vector index, a server
stopped in the middle of a write, and the local server's lifecycle.

Tests that need a live server run when ``CIRCUITQL_TEST_NEO4J_URI`` names one (as for the
contract suite); the crash test starts and stops its own server on a fresh directory and port.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import neo4j
import pytest

from circuitql.errors import StoreError
from circuitql.store import neo4j as neo4j_store
from circuitql.store import neo4j_server
from circuitql.store.neo4j import (
    EMBEDDING_DIMENSIONS,
    VECTOR_INDEX,
    Neo4jStore,
    scratch_store,
    signature_embedding,
)
from tests.store.fakes import edges_of, fake_model

LIVE_URI = os.environ.get("CIRCUITQL_TEST_NEO4J_URI")
needs_server = pytest.mark.skipif(
    not LIVE_URI, reason="CIRCUITQL_TEST_NEO4J_URI is not set: no live Neo4j server for this run"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raw_driver(uri: str) -> neo4j.Driver:
    parts = urlsplit(uri)
    return neo4j.GraphDatabase.driver(
        f"{parts.scheme}://{parts.hostname}:{parts.port}",
        auth=(parts.username or "neo4j", parts.password or ""),
    )


@pytest.fixture
def live() -> Iterator[Neo4jStore]:
    assert LIVE_URI
    with scratch_store(LIVE_URI, "test") as store:
        yield store


# --- connection errors ---------------------------------------------------------------------


def test_unreachable_server_names_the_uri_and_how_to_start_one() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(StoreError) as err:
        Neo4jStore.from_uri(f"neo4j://neo4j:s3cret-pw@127.0.0.1:{port}")
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message
    assert "circuitql neo4j start" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:7474", "neo4j://127.0.0.1:99999", "neo4j://[::1"]
)
def test_malformed_uri_is_a_store_error(uri: str) -> None:
    with pytest.raises(StoreError):
        Neo4jStore.from_uri(uri)


@needs_server
def test_wrong_password_says_so() -> None:
    assert LIVE_URI
    parts = urlsplit(LIVE_URI)
    wrong = f"{parts.scheme}://neo4j:not-the-password@{parts.hostname}:{parts.port}"
    with pytest.raises(StoreError) as err:
        Neo4jStore.from_uri(wrong)
    message = str(err.value)
    assert "rejected the credentials" in message
    assert "not-the-password" not in message


# --- schema --------------------------------------------------------------------------------


@needs_server
def test_constraints_and_indexes_exist_on_the_server(live: Neo4jStore) -> None:
    assert LIVE_URI
    with _raw_driver(LIVE_URI) as driver:
        constraints = {
            r["name"]: (r["type"], r["labelsOrTypes"], r["properties"])
            for r in driver.execute_query("SHOW CONSTRAINTS").records
        }
        indexes = {
            r["name"]: (r["type"], r["labelsOrTypes"], r["properties"], r["state"])
            for r in driver.execute_query("SHOW INDEXES").records
        }
    assert "model_content" not in constraints  # several names may hold one network
    assert indexes["model_content_hash"] == (
        "RANGE",
        ["Model"],
        ["namespace", "content_hash"],
        "ONLINE",
    )
    assert constraints["model_name"] == ("UNIQUENESS", ["Model"], ["namespace", "name"])
    assert constraints["neuron_uid"] == ("UNIQUENESS", ["Neuron"], ["namespace", "model", "uid"])
    expected = {
        "neuron_token": ("RANGE", ["token"]),
        "neuron_activation_fan": ("RANGE", ["activation", "n_pos", "n_neg", "bias_class"]),
        "neuron_kind_fan_in": ("RANGE", ["kind", "activation", "fan_in"]),
        "neuron_layer": ("RANGE", ["layer"]),
        VECTOR_INDEX: ("VECTOR", ["embedding"]),
    }
    for name, (kind, properties) in expected.items():
        assert indexes[name] == (kind, ["Neuron"], properties, "ONLINE")


@needs_server
def test_opening_a_second_store_keeps_the_schema(live: Neo4jStore) -> None:
    assert LIVE_URI
    Neo4jStore.from_uri(LIVE_URI, namespace=live.namespace).close()  # IF NOT EXISTS: no error


# --- writes split over several statements --------------------------------------------------


@needs_server
def test_a_model_written_in_many_batches_reads_back_in_order(
    live: Neo4jStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 4 split both the 9 neurons and the 20 edges, so edge positions and ordinals
    # must be right across statements, not just within the first one.
    monkeypatch.setattr(neo4j_store, "BATCH_ROWS", 4)
    model = fake_model("batched", n_inputs=3, hidden=5)
    assert live.write(model).status == "indexed"
    assert live.neurons("batched") == list(model.neurons)
    assert edges_of(live, "batched") == list(model.edges)
    views = live.fetch([("batched", n.uid) for n in model.neurons])
    for neuron in model.neurons:
        view = views["batched", neuron.uid]
        assert view.inputs == tuple((e.src, e.weight) for e in model.edges if e.dst == neuron.uid)
        assert view.outputs == tuple((e.dst, e.weight) for e in model.edges if e.src == neuron.uid)


# --- vector index --------------------------------------------------------------------------


def _score(a: list[float], b: list[float]) -> float:
    """Neo4j's euclidean similarity: 1 / (1 + squared distance)."""
    return 1.0 / (1.0 + sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


@needs_server
def test_vector_index_returns_the_nearest_neurons(live: Neo4jStore) -> None:
    models = [fake_model("a", scale=1.0), fake_model("b", scale=-1.0, n_inputs=3, hidden=4)]
    for model in models:
        live.write(model)
    query = models[1].neurons[-2]  # a hidden ReLU neuron of b
    target = signature_embedding(query.signature)
    assert len(target) == EMBEDDING_DIMENSIONS
    scores = sorted(
        (_score(target, signature_embedding(n.signature)) for m in models for n in m.neurons),
        reverse=True,
    )

    k = 4
    found = live.similar_neurons(query.signature, k=k)

    assert len(found) == k
    assert (found[0][0], found[0][1].signature) == ("b", query.signature)
    assert found[0][2] == pytest.approx(1.0)
    assert [score for _, _, score in found] == pytest.approx(scores[:k], rel=1e-5)
    written = {(m.name, n.uid): n for m in models for n in m.neurons}
    for name, neuron, score in found:
        assert written[(name, neuron.uid)] == neuron
        assert score == pytest.approx(_score(target, signature_embedding(neuron.signature)))


@needs_server
def test_vector_search_stays_in_its_namespace(live: Neo4jStore) -> None:
    assert LIVE_URI
    other = Neo4jStore.from_uri(LIVE_URI, namespace=f"{live.namespace}-other")
    try:
        twin = fake_model("twin", scale=1.0)
        other.write(twin)
        live.write(fake_model("mine", scale=3.0))
        found = live.similar_neurons(twin.neurons[0].signature, k=50)
        assert found and all(name == "mine" for name, _, _ in found)
        assert len(found) == len(live.neurons("mine"))
    finally:
        other.delete("twin")
        other.close()


# --- a server stopped in the middle of a write ---------------------------------------------


def _wait_blocked(driver: neo4j.Driver) -> None:
    """Until some transaction waits on a lock (the write, held by the blocker)."""
    for _ in range(600):
        statuses = [r["status"] for r in driver.execute_query("SHOW TRANSACTIONS").records]
        if any(s.startswith("Blocked") for s in statuses):
            return
        time.sleep(0.1)
    raise AssertionError(f"the write never blocked; transactions: {statuses}")


@needs_server
def test_server_stopped_mid_write_leaves_nothing_and_a_retry_succeeds(tmp_path: Path) -> None:
    data_dir = tmp_path / "neo4j"
    password = "crash-test-pw"
    server = neo4j_server.start(data_dir, port=0, password=password)
    uri = f"neo4j://neo4j:{password}@127.0.0.1:{server.port}"
    try:
        store = Neo4jStore.from_uri(uri, namespace="crash", retry_seconds=1.0)
        model = fake_model("victim", hidden=40)
        blocker_driver = _raw_driver(uri)
        blocker = blocker_driver.session().begin_transaction()
        # An uncommitted model of the same name: the write creates every neuron and edge,
        # then waits on the name's uniqueness lock when it creates its Model node.
        blocker.run(
            "CREATE (:Model {namespace: 'crash', name: 'victim', content_hash: 'blocker'})"
        ).consume()
        failure: list[Exception] = []

        def write() -> None:
            try:
                store.write(model)
            except Exception as err:  # handed over to the test's thread
                failure.append(err)

        writer = threading.Thread(target=write)
        writer.start()
        with _raw_driver(uri) as watcher:
            _wait_blocked(watcher)
        neo4j_server.stop(data_dir)
        writer.join(timeout=120)
        assert not writer.is_alive()
        assert len(failure) == 1 and isinstance(failure[0], StoreError), failure
        store.close()
        blocker_driver.close()

        server = neo4j_server.start(data_dir, port=server.port, password=password)
        store = Neo4jStore.from_uri(uri, namespace="crash")
        assert store.models() == []
        assert store.find_neurons({}) == []
        outcome = store.write(model)
        assert outcome.status == "indexed"
        assert len(store.neurons("victim")) == len(model.neurons)
        assert len(edges_of(store, "victim")) == len(model.edges)
        store.close()
    finally:
        neo4j_server.stop(data_dir)


# --- the local server's lifecycle, without starting Java -----------------------------------


def test_status_and_stop_of_a_directory_without_a_server(tmp_path: Path) -> None:
    status = neo4j_server.status(tmp_path)
    assert not status.running and status.uri is None
    (tmp_path / neo4j_server.PID_FILE).write_text(f"{os.getpid()}\n")  # alive, but not Neo4j
    assert not neo4j_server.status(tmp_path).running
    assert not neo4j_server.stop(tmp_path).running
    assert not (tmp_path / neo4j_server.PID_FILE).exists()


def test_start_refuses_a_short_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="at least 8 characters"):
        neo4j_server.start(tmp_path, port=0, password="short")


def test_start_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StoreError, match=f"port {port}"):
            neo4j_server.start(tmp_path, port=port)


def test_embedding_has_a_fixed_length() -> None:
    model = fake_model("m", hidden=5)
    lengths = {len(signature_embedding(n.signature)) for n in model.neurons}
    assert lengths == {EMBEDDING_DIMENSIONS}
    assert all(math.isfinite(x) for n in model.neurons for x in signature_embedding(n.signature))


def test_start_prints_a_store_uri_to_paste_with_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server itself is started by the other lifecycle tests; this is what it prints.
    started = neo4j_server.ServerStatus(True, tmp_path, tmp_path / "launcher.log", 4242, 7999)
    monkeypatch.setattr(neo4j_server, "start", lambda *args: started)
    parser = argparse.ArgumentParser()
    neo4j_server.add_arguments(parser)
    neo4j_server.run(parser.parse_args(["start", "--password", "p@ss w/rd!"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == (
        "to use it: export CIRCUITQL_STORE=neo4j://neo4j:p%40ss%20w%2Frd%21@127.0.0.1:7999"
    )
    assert lines[-1] == "neo4j://127.0.0.1:7999"  # what .ci/neo4j-start reads
    target = neo4j_store._parse_uri("neo4j://neo4j:p%40ss%20w%2Frd%21@127.0.0.1:7999")
    assert (target.user, target.password) == ("neo4j", "p@ss w/rd!")

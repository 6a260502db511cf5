"""One contract suite, every backend: the ``store`` fixture runs each test once per store.

SQLite always runs. Neo4j runs when ``CIRCUITQL_TEST_NEO4J_URI`` names a live server (CI starts
one and checks that these tests ran rather than skipped).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from circuitql.store.base import Store


def _sqlite_store(tmp_path: Path) -> Store:
    from circuitql.store.sqlite import SQLiteStore

    return SQLiteStore(tmp_path / "contract.db")


def _neo4j_store(tmp_path: Path) -> Store:
    uri = os.environ.get("CIRCUITQL_TEST_NEO4J_URI")
    if not uri:
        pytest.skip("CIRCUITQL_TEST_NEO4J_URI is not set: no live Neo4j server for this run")
    from circuitql.store.neo4j import Neo4jStore

    # Each test gets its own namespace so tests never see each other's models.
    return Neo4jStore.from_uri(uri, namespace=f"test-{uuid.uuid4().hex[:12]}")


BACKENDS = {"sqlite": _sqlite_store, "neo4j": _neo4j_store}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    try:
        yield backend
    finally:
        if request.param == "neo4j":
            for info in backend.models():
                backend.delete(info.name)
        backend.close()

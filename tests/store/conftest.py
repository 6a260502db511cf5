"""One contract suite, every backend: the ``store`` fixture runs each test once per store.

SQLite always runs. Neo4j runs when ``CIRCUITQL_TEST_NEO4J_URI`` names a live server (CI starts
one and checks that these tests ran rather than skipped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing
from pathlib import Path

import pytest

from circuitql.store.base import Store


def _sqlite_store(tmp_path: Path) -> AbstractContextManager[Store]:
    from circuitql.store.sqlite import SQLiteStore

    return closing(SQLiteStore(tmp_path / "contract.db"))


def _neo4j_store(tmp_path: Path) -> AbstractContextManager[Store]:
    uri = os.environ.get("CIRCUITQL_TEST_NEO4J_URI")
    if not uri:
        pytest.skip("CIRCUITQL_TEST_NEO4J_URI is not set: no live Neo4j server for this run")
    from circuitql.store.neo4j import scratch_store

    # Each test gets its own namespace so tests never see each other's models.
    return scratch_store(uri, "test")


# Each opens a fresh store and closes it (a Neo4j one emptied first) when the block ends.
BACKENDS = {"sqlite": _sqlite_store, "neo4j": _neo4j_store}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as backend:
        yield backend

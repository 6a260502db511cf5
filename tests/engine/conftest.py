"""Engine tests run once per store: ``db`` is each backend of the store contract suite
(tests/store/conftest.py) wrapped in a ``Database``, so every known answer is checked against
SQLite and, when ``CIRCUITQL_TEST_NEO4J_URI`` names a live server, Neo4j.

``module_db`` is the same per module, for tests that share one indexed zoo.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from circuitql.api import Database
from tests.store.conftest import BACKENDS


@contextmanager
def open_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    with BACKENDS[backend](tmp_path) as store:
        yield Database(store)


@pytest.fixture(params=sorted(BACKENDS))
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with open_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def module_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with open_database(request.param, tmp_path_factory.mktemp(request.param)) as database:
        yield database

"""One rule for turning a store URI into a store, shared by the library and the CLI.

The Neo4j backend is imported only when a Neo4j URI is given, so the embedded default works
without the optional ``neo4j`` driver installed.
"""

from __future__ import annotations

import importlib
import os
import re

from circuitql.errors import StoreError
from circuitql.store.base import Store, redacted
from circuitql.store.sqlite import SQLiteStore

ENV_VAR = "CIRCUITQL_STORE"
DEFAULT_PATH = "circuitql.db"
SQLITE_PREFIX = "sqlite:///"
NEO4J_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_ACCEPTED = (
    "a file path (circuitql.db), sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "or a Neo4j server: neo4j://, neo4j+s://, neo4j+ssc://, bolt://, bolt+s:// or "
    "bolt+ssc://user:password@host:7687"
)


def open_store(uri: str | None = None, create: bool = True) -> Store:
    """Open the store ``uri`` names; without one, ``$CIRCUITQL_STORE`` or ./circuitql.db.
    ``create`` False: an embedded store that does not exist is an error, not a new one (a
    server's store is the server's, and always exists)."""
    if uri is None:
        uri = os.environ.get(ENV_VAR) or DEFAULT_PATH
    scheme_match = _SCHEME.match(uri)
    if scheme_match is None:
        return SQLiteStore(uri, create)
    scheme = scheme_match.group(1).lower()
    if scheme in NEO4J_SCHEMES:
        return _open_neo4j(uri)
    if scheme == "sqlite" and uri.startswith(SQLITE_PREFIX) and len(uri) > len(SQLITE_PREFIX):
        return SQLiteStore(uri[len(SQLITE_PREFIX) :], create)
    raise StoreError(
        f"unsupported store URI {redacted(uri)!r}",
        fix=f"use {_ACCEPTED}",
    )


def _open_neo4j(uri: str) -> Store:
    try:
        module = importlib.import_module("circuitql.store.neo4j")
    except ModuleNotFoundError as exc:
        if exc.name not in ("circuitql.store.neo4j", "neo4j"):
            raise
        raise StoreError(
            "the Neo4j backend is not available in this installation",
            where=redacted(uri),
            fix="install it with: pip install 'circuitql[neo4j]'",
        ) from exc
    store: Store = module.Neo4jStore.from_uri(uri)
    return store

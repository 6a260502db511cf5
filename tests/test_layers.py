"""Every import arrow points down: no module of circuitql reaches, even lazily, a module that
reaches back to it, and the records floor imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "circuitql"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The module an import names (``circuitql.graph.Unit`` is in ``circuitql.graph``)."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> set[str]:
    """Modules of circuitql that ``module`` imports anywhere (lazily too), except under
    ``if TYPE_CHECKING:``, which runs for the type checker only."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {
            m
            for n in names
            if n.startswith("circuitql") and (m := _resolve(n)) is not None and m != module
        }
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = nx.DiGraph([(m, dep) for m in MODULES for dep in _imports(m)])
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_the_records_floor_imports_only_the_graph_and_the_domain() -> None:
    reached = nx.descendants(
        nx.DiGraph([(m, d) for m in MODULES for d in _imports(m)]), "circuitql.records"
    )
    assert reached <= {"circuitql.graph", "circuitql.domain", "circuitql.errors"}


def test_stores_and_the_indexer_do_not_import_each_other() -> None:
    for low, other in (
        ("circuitql.store", "circuitql.indexer"),
        ("circuitql.indexer", "circuitql.store"),
    ):
        for module in MODULES:
            if module.startswith(low):
                assert not {d for d in _imports(module) if d.startswith(other)}, module

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
    assert reached <= {"circuitql.graph", "circuitql.domain", "circuitql.errors", "circuitql.lazy"}


def test_stores_and_the_indexer_do_not_import_each_other() -> None:
    for low, other in (
        ("circuitql.store", "circuitql.indexer"),
        ("circuitql.indexer", "circuitql.store"),
    ):
        for module in MODULES:
            if module.startswith(low):
                assert not {d for d in _imports(module) if d.startswith(other)}, module


# The floors, lowest first: a module imports only modules of its own package or of a lower
# floor. docs/architecture.md says what each floor is for; a new package must be placed here.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "processes", "lazy"),
    ("domain", "graph", "cache", "picture", "html", "schemas"),
    ("records", "parallel", "siblings"),
    ("grammar", "indexer", "store"),
    ("export", "render"),
    ("language",),
    ("engine",),
    ("analysis",),
    ("api", "doctor", "zoo"),
    ("cli",),
)
FLOOR_OF = {f"circuitql.{name}": level for level, names in enumerate(FLOORS) for name in names}


def _package(module: str) -> str:
    """``circuitql.engine.search`` is in ``circuitql.engine``; ``circuitql.api`` is its own."""
    return ".".join(module.split(".")[:2])


def test_every_package_has_a_floor() -> None:
    unplaced = {_package(m) for m in MODULES if m != "circuitql"} - set(FLOOR_OF)
    assert unplaced == set(), "place these in FLOORS (and docs/architecture.md)"


def test_every_import_points_to_a_lower_floor() -> None:
    upward = [
        f"{module} -> {dep}"
        for module in MODULES
        if module != "circuitql"
        for dep in _imports(module)
        if _package(dep) != _package(module)
        and FLOOR_OF[_package(dep)] >= FLOOR_OF[_package(module)]
    ]
    assert upward == []


def test_the_public_api_names_only_modules_that_exist() -> None:
    """``circuitql/__init__.py`` imports its names lazily, by string: a module moved without
    its entry there would only fail when a user asks for the name."""
    import circuitql

    for name in circuitql.__all__:
        assert getattr(circuitql, name) is not None

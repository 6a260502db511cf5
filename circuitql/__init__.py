"""circuitql: find circuits inside neural networks.

    import circuitql
    db = circuitql.connect()            # ./circuitql.db, or "neo4j://user:pw@host:7687"
    db.index(model, name="m1")          # an nn.Module or a .pt/.safetensors/.onnx file
    print(db.tokens("m1"))

This module is the whole public API; everything else is internal and free to change. Names
are imported on first use (PEP 562): a command that only queries never loads the indexer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitql.api import (
        Answer,
        CircuitText,
        Database,
        Drawn,
        IndexReport,
        basis_of,
        connect,
        degeneracy_of,
        library_circuit,
        library_circuits,
    )
    from circuitql.domain import Domain
    from circuitql.engine.explain import PartialAnswer
    from circuitql.engine.results import Match, Results
    from circuitql.errors import CircuitQLError, ModelLoadError, StoreError
    from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
    from circuitql.indexer.canonical import Canonical, canonicalize
    from circuitql.indexer.canonical import Config as CanonicalConfig
    from circuitql.indexer.check import CheckReport, check_file
    from circuitql.indexer.pipeline import IndexConfig
    from circuitql.indexer.signature import signatures
    from circuitql.records import ModelInfo, Signature, WriteOutcome

# Public name -> (module, name there).
_EXPORTS: dict[str, tuple[str, str]] = {
    "Activation": ("circuitql.graph", "Activation"),
    "Answer": ("circuitql.api", "Answer"),
    "Canonical": ("circuitql.indexer.canonical", "Canonical"),
    "CanonicalConfig": ("circuitql.indexer.canonical", "Config"),
    "CheckReport": ("circuitql.indexer.check", "CheckReport"),
    "CircuitQLError": ("circuitql.errors", "CircuitQLError"),
    "CircuitText": ("circuitql.api", "CircuitText"),
    "Database": ("circuitql.api", "Database"),
    "Domain": ("circuitql.domain", "Domain"),
    "Drawn": ("circuitql.api", "Drawn"),
    "IndexConfig": ("circuitql.indexer.pipeline", "IndexConfig"),
    "IndexReport": ("circuitql.api", "IndexReport"),
    "Match": ("circuitql.engine.results", "Match"),
    "ModelInfo": ("circuitql.records", "ModelInfo"),
    "ModelLoadError": ("circuitql.errors", "ModelLoadError"),
    "NeuronGraph": ("circuitql.graph", "NeuronGraph"),
    "PartialAnswer": ("circuitql.engine.explain", "PartialAnswer"),
    "Results": ("circuitql.engine.results", "Results"),
    "Signature": ("circuitql.records", "Signature"),
    "StoreError": ("circuitql.errors", "StoreError"),
    "Unit": ("circuitql.graph", "Unit"),
    "UnitKind": ("circuitql.graph", "UnitKind"),
    "WriteOutcome": ("circuitql.records", "WriteOutcome"),
    "basis_of": ("circuitql.api", "basis_of"),
    "canonicalize": ("circuitql.indexer.canonical", "canonicalize"),
    "check_file": ("circuitql.indexer.check", "check_file"),
    "connect": ("circuitql.api", "connect"),
    "degeneracy_of": ("circuitql.api", "degeneracy_of"),
    "library_circuit": ("circuitql.api", "library_circuit"),
    "library_circuits": ("circuitql.api", "library_circuits"),
    "neo4j_bulk_load": ("circuitql.api", "neo4j_bulk_load"),
    "signatures": ("circuitql.indexer.signature", "signatures"),
}

__all__ = [
    "Activation",
    "Answer",
    "Canonical",
    "CanonicalConfig",
    "CheckReport",
    "CircuitQLError",
    "CircuitText",
    "Database",
    "Domain",
    "Drawn",
    "IndexConfig",
    "IndexReport",
    "Match",
    "ModelInfo",
    "ModelLoadError",
    "NeuronGraph",
    "PartialAnswer",
    "Results",
    "Signature",
    "StoreError",
    "Unit",
    "UnitKind",
    "WriteOutcome",
    "basis_of",
    "canonicalize",
    "check_file",
    "connect",
    "degeneracy_of",
    "library_circuit",
    "library_circuits",
    "neo4j_bulk_load",
    "signatures",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'circuitql' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # once: later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""circuitql: find circuits inside neural networks.

    import circuitql
    db = circuitql.connect()            # ./circuitql.db, or "neo4j://user:pw@host:7687"
    db.index(model, name="m1")          # an nn.Module or a .pt/.safetensors/.onnx file
    print(db.tokens("m1"))

This module is the whole public API; everything else is internal and free to change.
"""

from circuitql.api import Database, IndexReport, connect
from circuitql.domain import Domain
from circuitql.errors import CircuitQLError, ModelLoadError, StoreError
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import Canonical, canonicalize
from circuitql.indexer.canonical import Config as CanonicalConfig
from circuitql.indexer.check import CheckReport, check_file
from circuitql.indexer.pipeline import IndexConfig
from circuitql.indexer.signature import Signature, signatures
from circuitql.query.engine import Match, PartialAnswer, Results
from circuitql.store.base import ModelInfo, WriteOutcome

__all__ = [
    "Activation",
    "Canonical",
    "CanonicalConfig",
    "CheckReport",
    "CircuitQLError",
    "Database",
    "Domain",
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
    "canonicalize",
    "check_file",
    "connect",
    "signatures",
]
__version__ = "0.1.0"

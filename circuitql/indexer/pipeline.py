"""From a loaded model to the records a store writes: canonicalize, then sign.

Kept apart from loading and writing so each stage can be timed on its own (the benchmark reports
load / canonicalize / sign / write separately) and so the same records go to any store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from circuitql.errors import ModelLoadError
from circuitql.indexer.canonical import Canonical, Config
from circuitql.indexer.fidelity import faithful_canonical
from circuitql.indexer.load import LoadedModel
from circuitql.indexer.signature import groups_column, network_string, signature_table
from circuitql.records import (
    DEFAULT_SIGNIFICANCE,
    EdgeColumns,
    IndexedModel,
    ModelInfo,
    NeuronColumns,
    NeuronRecord,
)
from circuitql.siblings import GROUPS_TOLERANCE

T = TypeVar("T")


@dataclass(frozen=True)
class IndexConfig:
    """The settings a run indexes under: what canonicalization does and which weights count
    for a signature. Both are stored with every model (its ``normal_form``)."""

    canonical: Config = field(default_factory=Config)
    significance: float = DEFAULT_SIGNIFICANCE


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over every model of a run."""

    load: float = 0.0
    canonicalize: float = 0.0
    sign: float = 0.0
    write: float = 0.0

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to ``stage``, even when it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, stage, getattr(self, stage) + time.perf_counter() - start)

    def add(self, other: StageTimes) -> None:
        """Sum in another run's times: a worker process's, when indexing many models."""
        for stage in ("load", "canonicalize", "sign", "write"):
            setattr(self, stage, getattr(self, stage) + getattr(other, stage))

    def timed(self, stage: str, fn: Callable[[], T]) -> T:
        """``fn()``, its time added to ``stage``."""
        with self.timing(stage):
            return fn()


def build_records(
    load: Callable[[], LoadedModel],
    name: str | None = None,
    config: IndexConfig | None = None,
    times: StageTimes | None = None,
) -> IndexedModel:
    """The records a store writes for the model ``load()`` reads (under ``name``, else its
    default name): its canonical form (within ``max_error`` of the original, else
    ModelLoadError) and every neuron's signature, each stage timed into ``times``. Nothing
    here touches a store, so it can run in a worker."""
    records = records_unless_stored(load, name, config, times, stored=None)
    assert isinstance(records, IndexedModel)  # with nothing stored, always made
    return records


def records_unless_stored(
    load: Callable[[], LoadedModel],
    name: str | None,
    config: IndexConfig | None,
    times: StageTimes | None,
    stored: ModelInfo | None,
) -> IndexedModel | ModelInfo:
    """``build_records``, or ``stored`` (the model the store holds under the name) when it
    already says everything the records would (``ModelInfo.says_all_of``): whether it does
    is known once the file is read and hashed, and indexing a zoo again then costs reading
    its files, not a canonical form of each.

    The loaded model is read here, not handed in, so that nothing else holds it: its graph
    is let go once the canonical form is found, before that is signed. A GPT-2-sized stack's
    loaded edges are 1.4 GB that signing then does without."""
    times = times or StageTimes()
    loaded = times.timed("load", load)
    name = name or loaded.default_name
    check_names(name, loaded)
    config = model_config(config or IndexConfig(), loaded)
    with times.timing("sign"):
        about = _Provenance(loaded.source, dict(loaded.meta), loaded.graph.content_hash())
    if stored is not None and stored.says_all_of(
        about.content_hash, normal_form(config), about.meta
    ):
        return stored
    held = [loaded.graph]
    del loaded
    with times.timing("canonicalize"):
        # held.pop(): the call holds the only reference, so a big network can be let go
        # during its canonical form (and is read again if the form must be computed again).
        canon, error = faithful_canonical(
            held.pop(), config.canonical, about.source, reread=lambda: load().graph
        )
    with times.timing("sign"):
        return _records(about, name, canon, error, config)


def normal_form(config: IndexConfig) -> dict[str, object]:
    """What a model is stored with of the settings it was indexed under: a model stored
    under others is canonicalized again when it is indexed again."""
    return {
        **config.canonical.fingerprint(),
        "significance": config.significance,
        "groups_tolerance": GROUPS_TOLERANCE,
    }


@dataclass(frozen=True)
class _Provenance:
    """What the records keep of the loaded model, besides its canonical form."""

    source: str
    meta: dict[str, object]
    content_hash: str


# Control characters (NUL included) and lone surrogates: a NUL cuts a name short inside
# SQLite's JSON functions, so the model is never found again, and the others rewrite a
# terminal's screen when a name is printed.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_names(name: str, loaded: LoadedModel) -> None:
    """Refuse a model whose name, or a unit's id, holds a character that names cannot
    carry safely; a folder's other models are indexed as usual."""
    if not name.strip():
        raise ModelLoadError(
            "the model's name is empty",
            where=loaded.source,
            fix="give it a name (--name, or index(model, name=...))",
        )
    bad = [(f"model name {name!r}", name)] if _UNPRINTABLE.search(name) else []
    bad += [(f"unit {u.id!r}", u.id) for u in loaded.graph.units if _UNPRINTABLE.search(u.id)]
    if bad:
        what, text = bad[0]
        char = _UNPRINTABLE.search(text)
        assert char is not None
        raise ModelLoadError(
            f"the {what} holds {char.group()!r}, which a name cannot carry (a control "
            "character, or a byte that is not UTF-8)",
            where=loaded.source,
            fix="rename the file, layer or node: names may hold any printable character",
        )


def model_config(config: IndexConfig, loaded: LoadedModel) -> IndexConfig:
    """The settings one model is indexed under: a domain given for the run
    (``IndexConfig``, ``--domain``) wins over the model's own (its JSON config's), and
    either is checked against the model's inputs here, before any work is done."""
    domain = config.canonical.domain or loaded.domain
    if domain is not None:
        domain = domain.for_inputs(len(loaded.graph.inputs))
    return replace(config, canonical=replace(config.canonical, domain=domain))


def _records(
    about: _Provenance, name: str, canon: Canonical, error: float, config: IndexConfig
) -> IndexedModel:
    graph = canon.graph
    table = signature_table(graph, config.significance)
    sigs = {u.id: table.coarse(i) for i, u in enumerate(graph.units)}
    layers = graph.layers
    groups = groups_column(graph, table.fan_in, config.significance)
    neurons = NeuronColumns.of(
        [
            NeuronRecord(
                u.id, layers[u.id], sigs[u.id], u.bias, canon.members[u.id], u.alpha, count
            )
            for u, count in zip(graph.units, groups, strict=True)
        ],
        (table.steps, table.ends),
    )
    arrays = graph.edge_arrays
    edges = EdgeColumns(neurons.uid, arrays.src, arrays.dst, arrays.weight)
    return IndexedModel(
        name=name,
        content_hash=about.content_hash,
        source=about.source,
        n_inputs=len(graph.inputs),
        n_outputs=len(graph.outputs),
        network_string=network_string(graph, sigs),
        neurons=neurons,
        edges=edges,
        canonical_log=tuple(str(s) for s in canon.steps if s.action != "rescale"),
        meta=about.meta,
        normal_form=normal_form(config),
        canonical_error=error,
    )

"""The Neo4j store: indexed models as a property graph a user can also explore in Neo4j Browser.

Schema (every node carries ``namespace``, and every read filters by it, so independent stores,
such as parallel test runs, can share one database without seeing each other)::

    (:Model {namespace, name, content_hash, source, n_inputs, n_outputs, n_neurons, n_edges,
             network_string, canonical_log, meta})
    (:Model)-[:HAS]->(:Neuron {namespace, model, uid, ordinal, layer, kind, activation, n_pos,
                               n_neg, fan_in, bias_class, out_pos, out_neg, magnitudes, bias,
                               token, members, alpha, input_groups, embedding})
    (:Neuron)-[:FEEDS {weight, ordinal}]->(:Neuron)

``meta`` and ``members`` are JSON strings; ``ordinal`` keeps the indexer's order so reads give
back exactly what was written. ``embedding`` is a short numeric vector of the signature
(:func:`signature_embedding`) behind a vector index, for "neurons like this one" look-ups.

Labels, relationship types and property names are fixed strings in this module; every value
reaches Cypher as a query parameter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString
from urllib.parse import unquote, urlsplit

import neo4j
import numpy as np
from neo4j import exceptions as neo4j_errors

from circuitql.domain import Domain
from circuitql.errors import NameTaken, StoreError
from circuitql.graph import LEAKY_SLOPE, Activation, UnitKind
from circuitql.records import (
    BiasClass,
    EdgeColumns,
    IndexedModel,
    ModelInfo,
    NeuronKey,
    NeuronRecord,
    Signature,
    WriteOutcome,
    domain_of,
)
from circuitql.store.base import (
    FAN_IN_SEEN,
    NeuronView,
    lookup_values,
    model_columns,
    nothing_to_commit,
    redacted,
    unchanged,
)

SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")
DEFAULT_URI = "neo4j://localhost:7687"
DEFAULT_USER = "neo4j"
START_FIX = (
    "start a local server with `circuitql neo4j start` (or "
    "`docker compose -f docker/docker-compose.yml up -d neo4j`), or point the URI at a running one"
)
BATCH_ROWS = 5000  # rows per UNWIND statement: bounded statement size, one transaction
# A model with at most BATCH_ROWS neurons and this many edges is written in one statement.
EDGES_IN_ONE = 50_000

# The signature columns find_neurons may constrain; each maps to a Neuron property of that name.
EMBEDDING_MAGNITUDES = 4
EMBEDDING_DIMENSIONS = len(UnitKind) + len(Activation) + 5 + EMBEDDING_MAGNITUDES
VECTOR_INDEX = "neuron_signature_embedding"
_KINDS = tuple(UnitKind)  # iterating an Enum class is slow, and embeddings are made per neuron
_ACTIVATIONS = tuple(Activation)

SCHEMA: tuple[LiteralString, ...] = (
    # Several names may hold the same network: the content is looked up, not unique.
    "DROP CONSTRAINT model_content IF EXISTS",
    "CREATE INDEX model_content_hash IF NOT EXISTS FOR (m:Model) ON (m.namespace, m.content_hash)",
    "CREATE CONSTRAINT model_name IF NOT EXISTS "
    "FOR (m:Model) REQUIRE (m.namespace, m.name) IS UNIQUE",
    "CREATE CONSTRAINT neuron_uid IF NOT EXISTS "
    "FOR (n:Neuron) REQUIRE (n.namespace, n.model, n.uid) IS UNIQUE",
    "CREATE INDEX neuron_token IF NOT EXISTS FOR (n:Neuron) ON (n.token)",
    "CREATE CONSTRAINT token_stat IF NOT EXISTS "
    "FOR (t:TokenStat) REQUIRE (t.namespace, t.token) IS UNIQUE",
    "CREATE INDEX neuron_activation_fan IF NOT EXISTS "
    "FOR (n:Neuron) ON (n.activation, n.n_pos, n.n_neg, n.bias_class)",
    "CREATE INDEX neuron_kind_fan_in IF NOT EXISTS "
    "FOR (n:Neuron) ON (n.kind, n.activation, n.fan_in)",
    "CREATE INDEX neuron_layer IF NOT EXISTS FOR (n:Neuron) ON (n.layer)",
    "CREATE INDEX neuron_fan_in IF NOT EXISTS "
    "FOR (n:Neuron) ON (n.fan_in, n.n_pos, n.n_neg, n.bias_class)",
    "CREATE VECTOR INDEX neuron_signature_embedding IF NOT EXISTS "
    "FOR (n:Neuron) ON (n.embedding) OPTIONS {indexConfig: {"
    f"`vector.dimensions`: {EMBEDDING_DIMENSIONS}, `vector.similarity_function`: 'euclidean', "
    # 5.26 quantizes vectors by default; at this size that saves nothing and skews scores.
    "`vector.quantization.enabled`: false}}",
)


def _signature_filter(
    constraints: Mapping[str, object],
    models: Sequence[str] | None,
    node: str = "n",
    prefix: str = "p",
) -> tuple[str, dict[str, object]]:
    """WHERE clause and parameters for a signature lookup of the Neuron ``node``: property
    names come from the whitelist, values only as parameters (named ``prefix`` and a
    number, so that several lookups can share a statement)."""
    triples = lookup_values(constraints)
    params: dict[str, object] = {f"{prefix}{i}": value for i, (_, _, value) in enumerate(triples)}
    # A depth bound is never the index the planner starts from: every unit past the first
    # layers has it (``+ 0`` keeps it off the layer index, as "+" does in SQLite). Neurons
    # written before input groups were counted have none: 0, "not counted", as in SQLite.
    conditions = [
        f"{_property(node, column)}{' + 0' if column == 'layer' and comparison != '=' else ''} "
        f"{comparison} ${prefix}{i}"
        for i, (column, comparison, _) in enumerate(triples)
    ]
    if models is not None:
        conditions.append(f"{node}.model IN $models")
        params["models"] = list(models)
    return " AND ".join([f"{node}.namespace = $namespace", *conditions]), params


def _property(node: str, column: str) -> str:
    return f"coalesce({node}.{column}, 0)" if column == "input_groups" else f"{node}.{column}"


def _alongside(alongside: Sequence[Mapping[str, object]]) -> tuple[str, str, dict[str, object]]:
    """``find_neurons``' models that hold a neuron of each of ``alongside``: a subquery per
    column set collecting its models, once, and the condition that keeps ``n`` to them."""
    calls, conditions, params = [], [], {}
    for i, columns in enumerate(alongside):
        where, more = _signature_filter(columns, None, node=f"o{i}", prefix=f"a{i}_")
        calls.append(
            f"CALL {{ MATCH (o{i}:Neuron) WHERE {where} "
            f"RETURN collect(DISTINCT o{i}.model) AS along{i} }} "
        )
        conditions.append(f" AND n.model IN along{i}")
        params.update(more)
    return "".join(calls), "".join(conditions), params


def signature_embedding(signature: Signature) -> list[float]:
    """A fixed-length vector of a signature; near vectors mean alike neurons.

    One-hot kind and activation (a different activation is far away), the four edge counts,
    the bias sign, and the largest few relative input magnitudes.
    """
    kind = [1.0 if signature.kind is k else 0.0 for k in _KINDS]
    activation = [1.0 if signature.activation is a else 0.0 for a in _ACTIVATIONS]
    bias = {BiasClass.POSITIVE: 1.0, BiasClass.ZERO: 0.0, BiasClass.NEGATIVE: -1.0}
    magnitudes = list(signature.magnitudes[:EMBEDDING_MAGNITUDES])
    magnitudes += [0.0] * (EMBEDDING_MAGNITUDES - len(magnitudes))
    counts = [signature.n_pos, signature.n_neg, signature.out_pos, signature.out_neg]
    return [
        *kind,
        *activation,
        *(float(c) for c in counts),
        bias[signature.bias_class],
        *magnitudes,
    ]


@dataclass(frozen=True)
class _Target:
    """A parsed store URI: what the driver connects to, and who as."""

    scheme: str
    hostport: str
    user: str
    password: str | None

    @property
    def address(self) -> str:
        return f"{self.scheme}://{self.hostport}"

    @property
    def shown(self) -> str:
        """The URI as messages and ``Store.uri`` show it: with the user, never the password."""
        return f"{self.scheme}://{self.user}@{self.hostport}"


def _parse_uri(uri: str) -> _Target:
    """Credentials come from the URI, else NEO4J_USER / NEO4J_PASSWORD; a URI without a host
    (``neo4j://``) means $NEO4J_URI, else localhost:7687."""
    try:
        parts = urlsplit(uri)
    except ValueError as err:
        raise StoreError(
            f"malformed Neo4j URI ({err})", where=redacted(uri), fix=f"write it like {DEFAULT_URI}"
        ) from None
    if parts.scheme not in SCHEMES:
        raise StoreError(
            f"unsupported Neo4j URI scheme {parts.scheme!r}",
            where=redacted(uri),
            fix=f"use one of {', '.join(s + '://' for s in SCHEMES)}, e.g. {DEFAULT_URI}",
        )
    if not parts.hostname:
        default = os.environ.get("NEO4J_URI") or DEFAULT_URI
        if urlsplit(default).hostname:
            return _parse_uri(default)
        raise StoreError("NEO4J_URI names no host", where=redacted(default), fix=START_FIX)
    try:
        port = parts.port or 7687
    except ValueError:
        raise StoreError(
            "the port in the Neo4j URI is not a number in 1..65535",
            where=redacted(uri),
            fix=f"write it like {DEFAULT_URI}",
        ) from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    user = unquote(parts.username) if parts.username else os.environ.get("NEO4J_USER")
    password = unquote(parts.password) if parts.password else os.environ.get("NEO4J_PASSWORD")
    return _Target(parts.scheme, f"{host}:{port}", user or DEFAULT_USER, password)


class Neo4jStore:
    """A :class:`~circuitql.store.base.Store` on a Neo4j 5 server, scoped to one namespace."""

    def __init__(self, driver: neo4j.Driver, uri: str, namespace: str) -> None:
        self._driver = driver
        self.uri = uri
        self.namespace = namespace

    def session(self) -> neo4j.Session:
        """A driver session on this store's database, for your own Cypher over circuitql's
        schema (docs/neo4j.md); filter on ``namespace`` to stay inside this store."""
        return self._driver.session()

    @classmethod
    def from_uri(
        cls, uri: str, namespace: str = "default", *, retry_seconds: float = 30.0
    ) -> Neo4jStore:
        """Connect, check the credentials, and create the schema if it is not there yet.

        ``retry_seconds`` bounds how long a write retries transient failures (a leader
        switch, a dropped connection) before it gives up.
        """
        target = _parse_uri(uri)
        if not namespace:
            raise StoreError(
                "the namespace must not be empty",
                where=target.shown,
                fix="pass a name, or leave the default",
            )
        auth = (target.user, target.password) if target.password is not None else None
        try:
            driver = neo4j.GraphDatabase.driver(
                target.address,
                auth=auth,
                connection_timeout=10.0,
                max_transaction_retry_time=retry_seconds,
            )
        except (neo4j_errors.ConfigurationError, ValueError) as err:
            raise StoreError(
                f"invalid Neo4j URI: {err}", where=redacted(uri), fix=f"write it like {DEFAULT_URI}"
            ) from None
        store = cls(driver, target.shown, namespace)
        try:
            store._connect()
        except BaseException:
            driver.close()
            raise
        return store

    def _connect(self) -> None:
        with self._errors():
            self._driver.verify_connectivity()
            for statement in SCHEMA:
                try:
                    self._driver.execute_query(statement)
                except neo4j_errors.ClientError as err:
                    # Another client created the same rule between our check and our create.
                    if err.code != "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists":
                        raise
            self._driver.execute_query("CALL db.awaitIndexes(300)")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver failures become StoreErrors that name the server; ours pass through."""
        try:
            yield
        except neo4j_errors.AuthError as err:
            raise StoreError(
                f"Neo4j rejected the credentials ({err.message})",
                where=self.uri,
                fix="give the right user and password in the URI "
                "(neo4j://USER:PASSWORD@HOST:PORT) or in NEO4J_USER / NEO4J_PASSWORD; a server "
                "started by `circuitql neo4j start` has user neo4j, password circuitql-dev "
                "unless another was chosen",
            ) from None
        except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as err:
            raise StoreError(
                f"cannot reach the Neo4j server ({err})", where=self.uri, fix=START_FIX
            ) from None
        except neo4j_errors.Neo4jError as err:
            raise StoreError(
                f"Neo4j refused the operation: {err.code}: {err.message}",
                where=self.uri,
                fix="see the server's log for details",
            ) from None
        except neo4j_errors.DriverError as err:
            raise StoreError(f"Neo4j driver error: {err}", where=self.uri, fix=START_FIX) from None

    def _read(self, query: LiteralString, **params: Any) -> list[neo4j.Record]:
        with self._errors():
            records, _, _ = self._driver.execute_query(
                query, namespace=self.namespace, routing_=neo4j.RoutingControl.READ, **params
            )
        return records

    # --- writes -------------------------------------------------------------------------

    def write_group(self) -> contextlib.nullcontext[Callable[[], None]]:
        """Each write stays a transaction of its own, so there is never anything to commit:
        the server's work is per relationship and per index entry, and ten models to a
        transaction measured no faster (docs/scale-out.md)."""
        return contextlib.nullcontext(nothing_to_commit)

    def write(self, model: IndexedModel, replace: bool = False) -> WriteOutcome:
        """One managed transaction per model: it commits whole or not at all, and the driver
        retries it on transient failures. The Model node is created last, after its neurons
        and edges, so the uniqueness constraints are the final check before commit."""
        # Checked before any statement: an edge to a neuron the model lacks would silently
        # vanish in a MATCH.
        neurons, edges = model_columns(model)
        model = dataclasses.replace(model, neurons=neurons, edges=edges)
        with self._errors(), self._driver.session() as session:
            try:
                return session.execute_write(self._write_tx, model, replace)
            except neo4j_errors.ConstraintError:
                pass  # most likely a concurrent writer committed this name first
            try:
                # This run finds that model and answers as for any stored one.
                return session.execute_write(self._write_tx, model, replace)
            except neo4j_errors.ConstraintError as err:
                raise StoreError(
                    f"model {model.name!r} breaks a uniqueness rule of the store: {err.message}",
                    where=self.uri,
                    fix="every neuron of a model needs its own uid; this is a bug in the "
                    "indexer, please report it with the model file",
                ) from None

    def _write_tx(
        self, tx: neo4j.ManagedTransaction, model: IndexedModel, replace: bool
    ) -> WriteOutcome:
        existing = tx.run(
            "MATCH (m:Model {namespace: $namespace, name: $name}) RETURN m",
            namespace=self.namespace,
            name=model.name,
        ).single()
        if existing is not None:
            info = model_info(existing["m"])
            if unchanged(info, model):
                return WriteOutcome("unchanged", info)
            if info.content_hash == model.content_hash:  # canonicalized or described otherwise
                return self._replace_tx(tx, info.name, model)
            if replace:
                return self._replace_tx(tx, info.name, model)
            raise NameTaken(
                f"a different model is already stored under the name {model.name!r} (stored "
                f"content {info.content_hash[:12]} from {info.source}, new content "
                f"{model.content_hash[:12]} from {model.source})",
                where=self.uri,
                fix="give the new model another name (--name NAME), or replace the stored "
                "one (--replace)",
            )
        return self._create_tx(tx, model)

    def _replace_tx(
        self, tx: neo4j.ManagedTransaction, stored: str, model: IndexedModel
    ) -> WriteOutcome:
        """The stored model ``stored`` gives way to ``model`` (the same network canonicalized
        under other settings, or another network with ``replace``) inside the caller's
        transaction."""
        self._delete_tx(tx, stored)
        return self._create_tx(tx, model)

    def _create_tx(self, tx: neo4j.ManagedTransaction, model: IndexedModel) -> WriteOutcome:
        ns = self.namespace
        neurons, edges = model_columns(model)
        neuron_rows = [neuron_row(ns, model.name, i, n) for i, n in enumerate(neurons)]
        if len(neuron_rows) <= BATCH_ROWS and len(edges) <= EDGES_IN_ONE:
            # Most models: the neurons and their edges in one statement, each edge's ends
            # taken from the nodes just created by position, no index lookup per neuron.
            tx.run(
                "UNWIND $rows AS row CREATE (n:Neuron) SET n = row "
                "WITH n ORDER BY n.ordinal "
                "WITH collect(n) AS nodes "
                "UNWIND range(0, size($weight) - 1) AS j "
                "WITH nodes[$src[j]] AS a, nodes[$dst[j]] AS b, j "
                "CREATE (a)-[:FEEDS {weight: $weight[j], ordinal: j}]->(b)",
                rows=neuron_rows,
                src=edges.src.tolist(),
                dst=edges.dst.tolist(),
                weight=edges.weight.tolist(),
            ).consume()
        else:
            self._create_in_batches(tx, model.name, neuron_rows, edges)
        counts = Counter(neurons.token)
        tx.run(
            "UNWIND $counts AS c "
            "MERGE (t:TokenStat {namespace: $namespace, token: c[0]}) "
            "ON CREATE SET t.count = c[1] ON MATCH SET t.count = t.count + c[1]",
            namespace=ns,
            counts=[[token, n] for token, n in counts.items()],
        ).consume()
        props = model_props(ns, model)
        tx.run(
            "CREATE (m:Model) SET m = $props "
            "WITH m "
            "MATCH (n:Neuron {namespace: $namespace, model: $model}) "
            "WHERE n.uid IS NOT NULL "  # lets the planner seek the (namespace, model, uid) index
            "CREATE (m)-[:HAS]->(n)",
            props=props,
            namespace=ns,
            model=model.name,
        ).consume()
        return WriteOutcome("indexed", model_info(props))

    def _create_in_batches(
        self,
        tx: neo4j.ManagedTransaction,
        model: str,
        neuron_rows: list[dict[str, Any]],
        edges: EdgeColumns,
    ) -> None:
        """A model too big for one statement: its neurons in batches of ``BATCH_ROWS``, then
        its edges, each batch looking up the neurons it touches once."""
        for batch in _batches(neuron_rows):
            tx.run("UNWIND $rows AS row CREATE (n:Neuron) SET n = row", rows=batch).consume()
        for columns in _edge_columns(edges):
            # Each neuron a batch touches is looked up once, not once per edge end: the
            # nodes are listed in the order of $uids, and $src / $dst are positions in it.
            tx.run(
                "UNWIND range(0, size($uids) - 1) AS i "
                "MATCH (n:Neuron {namespace: $namespace, model: $model, uid: $uids[i]}) "
                "WITH i, n ORDER BY i "
                "WITH collect(n) AS nodes "
                "UNWIND range(0, size($weight) - 1) AS j "
                "WITH nodes[$src[j]] AS a, nodes[$dst[j]] AS b, j "
                "CREATE (a)-[:FEEDS {weight: $weight[j], ordinal: $first + j}]->(b)",
                namespace=self.namespace,
                model=model,
                **columns,
            ).consume()

    def delete(self, model: str) -> bool:
        """One managed transaction, retried on transient failures; the TokenStat counts go
        down in it."""
        with self._errors(), self._driver.session() as session:
            return bool(session.execute_write(self._delete_tx, model))

    def _delete_tx(self, tx: neo4j.ManagedTransaction, model: str) -> bool:
        """Token statistics go down in the same transaction the neurons go in."""
        tx.run(
            "MATCH (:Model {namespace: $namespace, name: $model})-[:HAS]->(n:Neuron) "
            "WITH n.token AS token, count(*) AS c "
            "MATCH (t:TokenStat {namespace: $namespace, token: token}) "
            "SET t.count = t.count - c",
            namespace=self.namespace,
            model=model,
        ).consume()
        tx.run(
            "MATCH (t:TokenStat {namespace: $namespace}) WHERE t.count <= 0 DELETE t",
            namespace=self.namespace,
        ).consume()
        record = tx.run(
            "MATCH (m:Model {namespace: $namespace, name: $model}) "
            "OPTIONAL MATCH (m)-[:HAS]->(n:Neuron) "
            "WITH m, collect(n) AS neurons "
            "FOREACH (n IN neurons | DETACH DELETE n) "
            "DETACH DELETE m RETURN count(*) AS deleted",
            namespace=self.namespace,
            model=model,
        ).single()
        return record is not None and record["deleted"] > 0

    # --- reads --------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """The Model nodes of this namespace only, by name."""
        records = self._read("MATCH (m:Model {namespace: $namespace}) RETURN m ORDER BY m.name")
        return [model_info(r["m"]) for r in records]

    def get_model(self, name: str) -> ModelInfo | None:
        """A seek on the (namespace, name) uniqueness constraint."""
        records = self._read(
            "MATCH (m:Model {namespace: $namespace, name: $name}) RETURN m", name=name
        )
        return model_info(records[0]["m"]) if records else None

    def domains(self, models: Sequence[str]) -> dict[str, Domain | None]:
        """One statement, a seek on the (namespace, name) uniqueness constraint per name;
        only the two properties a domain needs come back."""
        records = self._read(
            "UNWIND $names AS name "
            "MATCH (m:Model {namespace: $namespace, name: name}) "
            "RETURN m.name AS name, m.n_inputs AS n_inputs, m.normal_form AS normal_form",
            names=list(dict.fromkeys(models)),
        )
        return {
            r["name"]: domain_of(json.loads(r["normal_form"] or "{}"), r["n_inputs"])
            for r in records
        }

    def neurons(self, model: str) -> list[NeuronRecord]:
        """The Model node's HAS neighbours, by ``ordinal`` (the indexer's order)."""
        records = self._read(
            "MATCH (:Model {namespace: $namespace, name: $model})-[:HAS]->(n:Neuron) "
            "RETURN n ORDER BY n.ordinal",
            model=model,
        )
        return [_neuron_record(r["n"]) for r in records]

    def inputs(self, model: str) -> dict[str, dict[str, float]]:
        """One result row per FEEDS relationship, folded into mappings here, by ``ordinal``."""
        records = self._read(
            "MATCH (:Model {namespace: $namespace, name: $model})-[:HAS]->(a:Neuron)"
            "-[r:FEEDS]->(b:Neuron) "
            "RETURN a.uid AS src, b.uid AS dst, r.weight AS weight ORDER BY r.ordinal",
            model=model,
        )
        incoming: dict[str, dict[str, float]] = {}
        for r in records:
            incoming.setdefault(r["dst"], {})[r["src"]] = r["weight"]
        return incoming

    def max_layer(self, models: Sequence[str] | None = None) -> int:
        """Walks the layer index from the top down to the first neuron of this namespace
        (and of ``models``), instead of aggregating every neuron."""
        where, params = _signature_filter({}, models)
        records = self._read(
            f"MATCH (n:Neuron) WHERE n.layer >= 0 AND {where} "
            "RETURN n.layer AS layer ORDER BY n.layer DESC LIMIT 1",
            **params,
        )
        return int(records[0]["layer"]) if records else 0

    def records(
        self, keys: Sequence[NeuronKey], constraints: Mapping[str, object] | None = None
    ) -> dict[NeuronKey, NeuronRecord]:
        """One statement: each key a seek on the (namespace, model, uid) uniqueness index,
        the constraints checked on the server, no relationship read."""
        where, params = _signature_filter(constraints or {}, None)
        records = self._read(
            "UNWIND $keys AS key "
            "MATCH (n:Neuron {namespace: $namespace, model: key[0], uid: key[1]}) "
            f"WHERE {where} RETURN n",
            keys=_unique_keys(keys),
            **params,
        )
        return {(r["n"]["model"], r["n"]["uid"]): _neuron_record(r["n"]) for r in records}

    def fetch(self, keys: Sequence[NeuronKey]) -> dict[NeuronKey, NeuronView]:
        """One statement: each key is a seek on the (namespace, model, uid) uniqueness index,
        and both edge lists come back with it, so a whole expansion step of every candidate
        neighbourhood costs one round trip."""
        records = self._read(
            "UNWIND $keys AS key "
            "MATCH (n:Neuron {namespace: $namespace, model: key[0], uid: key[1]}) "
            "RETURN n, "
            "COLLECT { MATCH (a)-[r:FEEDS]->(n) RETURN [a.uid, r.weight, a.fan_in] "
            "ORDER BY r.ordinal } AS inputs, "
            "COLLECT { MATCH (n)-[r:FEEDS]->(b) RETURN [b.uid, r.weight, b.fan_in] "
            "ORDER BY r.ordinal } AS outputs",
            keys=_unique_keys(keys),
        )
        return {
            (r["n"]["model"], r["n"]["uid"]): NeuronView(
                _neuron_record(r["n"]),
                tuple((uid, weight) for uid, weight, _ in r["inputs"]),
                tuple((uid, weight) for uid, weight, _ in r["outputs"]),
                tuple(min(fan_in, FAN_IN_SEEN) for _, _, fan_in in r["outputs"]),
                tuple(min(fan_in, FAN_IN_SEEN) for _, _, fan_in in r["inputs"]),
            )
            for r in records
        }

    def token_counts(self) -> dict[str, int]:
        """Read from the TokenStat nodes each write and delete keeps current in its own
        transaction: aggregating every neuron on each query would cost seconds at zoo size."""
        records = self._read(
            "MATCH (t:TokenStat {namespace: $namespace}) WHERE t.count > 0 "
            "RETURN t.token AS token, t.count AS count"
        )
        return {r["token"]: r["count"] for r in records}

    def find_neurons(
        self,
        constraints: Mapping[str, object],
        models: Sequence[str] | None = None,
        alongside: Sequence[Mapping[str, object]] = (),
    ) -> list[tuple[str, NeuronRecord]]:
        """Matched on the Neuron property indexes (``SCHEMA``) within this namespace, ordered
        by model, then ``ordinal``; each of ``alongside`` a subquery on the indexes too."""
        where, params = _signature_filter(constraints, models)
        calls, kept, more = _alongside(alongside)
        records = self._read(
            f"{calls}MATCH (n:Neuron) WHERE {where}{kept} RETURN n ORDER BY n.model, n.ordinal",
            **params,
            **more,
        )
        return [(r["n"]["model"], _neuron_record(r["n"])) for r in records]

    def count_neurons(
        self, constraints: Mapping[str, object], models: Sequence[str] | None = None
    ) -> int:
        """The match of ``find_neurons``, counted on the server: no node comes back."""
        where, params = _signature_filter(constraints, models)
        records = self._read(f"MATCH (n:Neuron) WHERE {where} RETURN count(n) AS n", **params)
        return int(records[0]["n"])

    def similar_neurons(
        self, signature: Signature, k: int = 10
    ) -> list[tuple[str, NeuronRecord, float]]:
        """The ``k`` stored neurons whose signatures are nearest to ``signature`` (vector index),
        as (model, neuron, score) with score 1 for an identical embedding.

        The index spans every namespace, so it is asked for more neighbours until ``k`` of
        this namespace are found or the index has no more.
        """
        found: list[tuple[str, NeuronRecord, float]] = []
        ask = k
        while True:
            records = self._read(
                "CALL db.index.vector.queryNodes($index, $ask, $vector) YIELD node, score "
                "RETURN node, score, node.namespace = $namespace AS ours ORDER BY score DESC",
                index=VECTOR_INDEX,
                ask=ask,
                vector=signature_embedding(signature),
            )
            found = [
                (r["node"]["model"], _neuron_record(r["node"]), r["score"])
                for r in records
                if r["ours"]
            ]
            if len(found) >= k or len(records) < ask:
                return found[:k]
            ask *= 4

    def close(self) -> None:
        """Closes the driver and its connection pool."""
        self._driver.close()


@contextlib.contextmanager
def scratch_store(uri: str, prefix: str = "scratch") -> Iterator[Neo4jStore]:
    """A store in a fresh namespace of its own, emptied and closed on exit: for tests,
    benchmarks and experiments on a shared server, which must neither see its other data nor
    leave any behind, whatever happens inside."""
    store = Neo4jStore.from_uri(uri, namespace=f"{prefix}-{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        for info in store.models():
            store.delete(info.name)
        store.close()


def _unique_keys(keys: Sequence[NeuronKey]) -> list[list[str]]:
    return [list(key) for key in dict.fromkeys(keys)]


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def _edge_columns(edges: EdgeColumns) -> Iterator[dict[str, Any]]:
    """The parameters of one edge statement per batch: ``uids``, the distinct neurons the batch
    touches; per edge, ``src`` and ``dst`` (positions in ``uids``) and ``weight``; ``first``,
    the ordinal of the batch's first edge.

    Columns rather than one map per edge: flat lists of numbers cost the driver a fraction as
    much to encode, and the server looks each neuron up once per batch, not once per edge end.
    """
    for first in range(0, len(edges), BATCH_ROWS):
        src = edges.src[first : first + BATCH_ROWS]
        dst = edges.dst[first : first + BATCH_ROWS]
        touched, position = np.unique(np.concatenate([src, dst]), return_inverse=True)
        yield {
            "uids": [edges.uids[i] for i in touched.tolist()],
            "src": position[: len(src)].tolist(),
            "dst": position[len(src) :].tolist(),
            "weight": edges.weight[first : first + BATCH_ROWS].tolist(),
            "first": first,
        }


def model_props(namespace: str, model: IndexedModel) -> dict[str, Any]:
    """A Model node's properties, as the store writes them (the bulk path's CSV too)."""
    return {
        "namespace": namespace,
        "name": model.name,
        "content_hash": model.content_hash,
        "source": model.source,
        "n_inputs": model.n_inputs,
        "n_outputs": model.n_outputs,
        "n_neurons": len(model.neurons),
        "n_edges": len(model.edges),
        "network_string": model.network_string,
        "canonical_log": list(model.canonical_log),
        "meta": json.dumps(dict(model.meta), sort_keys=True),
        "normal_form": json.dumps(dict(model.normal_form), sort_keys=True),
        "canonical_error": model.canonical_error,
    }


def neuron_row(namespace: str, model: str, ordinal: int, neuron: NeuronRecord) -> dict[str, Any]:
    """A Neuron node's properties, as the store writes them (the bulk path's CSV too)."""
    sig = neuron.signature
    return {
        "namespace": namespace,
        "model": model,
        "uid": neuron.uid,
        "ordinal": ordinal,
        "layer": neuron.layer,
        "kind": sig.kind.value,
        "activation": sig.activation.value,
        "n_pos": sig.n_pos,
        "n_neg": sig.n_neg,
        "fan_in": sig.fan_in,
        "bias_class": sig.bias_class.value,
        "out_pos": sig.out_pos,
        "out_neg": sig.out_neg,
        "magnitudes": [float(m) for m in sig.magnitudes],
        "bias": float(neuron.bias),
        "token": sig.token,
        "members": json.dumps([[uid, float(scale)] for uid, scale in neuron.members]),
        "alpha": float(neuron.alpha),
        "input_groups": neuron.input_groups,
        "embedding": signature_embedding(sig),
    }


def _neuron_record(node: Mapping[str, Any]) -> NeuronRecord:
    signature = Signature.from_values(
        node["kind"],
        node["activation"],
        node["n_pos"],
        node["n_neg"],
        node["bias_class"],
        node["out_pos"],
        node["out_neg"],
        node["magnitudes"],
    )
    members = tuple((uid, float(scale)) for uid, scale in json.loads(node["members"]))
    # Neurons written before the slope was kept read as PyTorch's default.
    return NeuronRecord(
        node["uid"],
        node["layer"],
        signature,
        node["bias"],
        members,
        node.get("alpha", LEAKY_SLOPE),
        node.get("input_groups", 0),
    )


def model_info(props: Mapping[str, Any]) -> ModelInfo:
    """From a Model node or the properties about to become one."""
    return ModelInfo(
        name=props["name"],
        content_hash=props["content_hash"],
        source=props["source"],
        n_inputs=props["n_inputs"],
        n_outputs=props["n_outputs"],
        n_neurons=props["n_neurons"],
        n_edges=props["n_edges"],
        network_string=props["network_string"],
        meta=json.loads(props["meta"]),
        normal_form=json.loads(props.get("normal_form") or "{}"),
        canonical_error=props.get("canonical_error"),
    )

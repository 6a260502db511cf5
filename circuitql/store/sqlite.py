"""The embedded default store: one SQLite file, nothing to install or run.

Signature fields live in plain columns (not one serialized blob) so that candidate lookup is
an index lookup: the query engine asks for neurons by a few signature columns and SQLite
answers from the indexes below without scanning a zoo of millions of neurons. A token is not
a column: it spells the coarse signature, so a neuron's token is written from its columns
when read. A token column, its index and a table of per-token counts, which no query read,
were a sixth of a planted zoo's store.

Edges are stored once per model, as arrays in the ``graphs`` table (``store.adjacency``):
every edge once, its source as a position in the model's unit list, its weight as float32
(the canonical form's precision). One row per neuron and one per model make a write a few
inserts, and a neuron's edges come with it when the query engine expands a candidate
neighbourhood. Signature magnitudes are one byte each; a model's network string (a few
kilobytes of tokens, read only to show or compare whole models) is zlib-compressed.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import sqlite3
import struct
import sys
import time
import urllib.parse
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from operator import add
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain
from circuitql.errors import NameTaken, StoreError
from circuitql.graph import LEAKY_SLOPE
from circuitql.records import (
    IndexedModel,
    ModelInfo,
    NeuronColumns,
    NeuronKey,
    NeuronRecord,
    Signature,
    WriteOutcome,
    domain_of,
    magnitude_steps,
)
from circuitql.store.adjacency import COLUMNS as ADJACENCY_COLUMNS
from circuitql.store.adjacency import (
    Adjacency,
    AdjacencyCache,
    magnitudes_of,
)
from circuitql.store.base import FAN_IN_SEEN, NeuronView, lookup_values, model_columns, unchanged

SCHEMA_VERSION = 13

# Both signature indexes hold the layer, so that a pattern unit's depth (``layer_min``) is
# checked inside the index, and the input groups (``groups_max``) likewise: a count still
# reads no row.
_SHAPE_INDEX = (
    "CREATE INDEX neurons_by_shape "
    "ON neurons(kind, activation, fan_in, n_pos, n_neg, bias_class, layer, input_groups)"
)
# Output units of a pattern constrain fan-in and signs but not the activation. The layer
# comes second: an approximate search bounds an output's fan-in (a few values, asked as a
# list) and its depth, and a dense host's first layer, as many units as the zoo has inputs
# times its width, reads just as few inputs; each fan-in is then a seek past that layer.
_FAN_IN_INDEX = (
    "CREATE INDEX neurons_by_fan_in "
    "ON neurons(fan_in, layer, n_pos, n_neg, bias_class, input_groups)"
)

# From each older version to the next, in place: (version, statements). Version 3's shape
# index had (kind, activation, fan_in) only, so counting a common hidden unit read its rows
# (27 ms for 10,914 of 2 million neurons; 1 ms covered).
# Version 4 had no normal_form: its models count as canonicalized under other settings.
# Version 5 kept no targets' fan-ins: they are read from the targets' rows, once.
# Version 6 kept no negative slope, so leaky ReLUs read back at 0.01 whatever the network's:
# the models holding one count as canonicalized under unknown settings, and indexing them
# again writes them with their slope.
# Version 7 kept no canonical error: its models read back as not measured.
# Version 8 kept one name per network (content_hash was unique): the table is rebuilt
# without that rule, with foreign keys off so the neurons stay (see _prepare).
# Version 9 kept each neuron's edges on its row, in both directions, neighbours named in
# JSON, and magnitudes as float64: 2.6 KB a neuron. They move to one ``graphs`` row per model.
# Version 10's signature indexes did not hold the layer: a lookup bounded by depth read rows.
# Version 11 kept graphs rows and network strings uncompressed and weights as float64, a
# token column with its index and counts, enum columns as text and every slope: 4.2 times
# the model files.
# Version 12 counted no input groups: its neurons read 0 ("not counted", which every lookup
# admits) until their models are indexed again, as their normal form says they must be.

# The enum columns hold small integers: SQLite writes 0 and 1 in no byte and the rest in one,
# where the values' text took up to 10 (and as much again in each index holding them). The
# codes are fixed here, never an enum's declaration order: a stored code means one value
# forever.
ENUM_CODES: dict[str, dict[str, int]] = {
    "kind": {"input": 0, "hidden": 1, "output": 2},
    "activation": {
        "identity": 0,
        "relu": 1,
        "leaky_relu": 2,
        "sigmoid": 3,
        "tanh": 4,
        "gelu": 5,
    },
    "bias_class": {"0": 0, "+": 1, "-": 2},
}
_VALUES = {column: {c: value for value, c in codes.items()} for column, codes in ENUM_CODES.items()}
_NO_CODE = -1  # what a lookup by a value no column holds asks for: no row has it


_NEURONS_TABLE = """
    CREATE TABLE neurons (
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        uid TEXT NOT NULL,
        layer INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        activation INTEGER NOT NULL,
        n_pos INTEGER NOT NULL,
        n_neg INTEGER NOT NULL,
        fan_in INTEGER NOT NULL,
        bias_class INTEGER NOT NULL,
        out_pos INTEGER NOT NULL,
        out_neg INTEGER NOT NULL,
        magnitudes BLOB NOT NULL,
        bias REAL NOT NULL,
        members BLOB NOT NULL,
        alpha REAL,
        input_groups INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (model_id, uid)
    )
    """
_NEURON_INDEXES = (
    "CREATE INDEX neurons_by_detector ON neurons(activation, n_pos, n_neg, bias_class)",
    # Covers every column a hidden pattern unit is looked up by: the planner's count of each
    # unit's candidates never reads a row.
    _SHAPE_INDEX,
    _FAN_IN_INDEX,
)

_MODELS_TABLE = """
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL,
        source TEXT NOT NULL,
        n_inputs INTEGER NOT NULL,
        n_outputs INTEGER NOT NULL,
        n_neurons INTEGER NOT NULL,
        n_edges INTEGER NOT NULL,
        network_string BLOB NOT NULL,
        canonical_log TEXT NOT NULL,
        meta TEXT NOT NULL,
        created_at TEXT NOT NULL,
        normal_form TEXT NOT NULL DEFAULT '{}',
        canonical_error REAL,
        depth INTEGER NOT NULL DEFAULT 0
    )
    """
_MODELS_BY_CONTENT = "CREATE INDEX models_by_content ON models(content_hash)"
# A model's depth is its deepest neuron's layer: the deepest of a zoo is one seek here, where
# an index of every neuron's layer took 3% of the store.
_MODELS_BY_DEPTH = "CREATE INDEX IF NOT EXISTS models_by_depth ON models(depth)"


_GRAPHS_TABLE = f"""
    CREATE TABLE graphs (
        model_id INTEGER PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
        {", ".join(f"{column} BLOB NOT NULL" for column in ADJACENCY_COLUMNS)}
    )
    """
_COMPACT_VERSION = 10  # the first version with one ``graphs`` row per model
# Migrating from a version before this one frees most of the file's pages.
_SHRUNK_VERSION = 12
# The weights go in as a blob of zeros written over in pieces (``_insert_graph``).
assert ADJACENCY_COLUMNS == ("uids", "in_ends", "in_sources", "in_weights", "fan_ins")
_INSERT_GRAPH = (
    f"INSERT INTO graphs (model_id, {', '.join(ADJACENCY_COLUMNS)}) "
    "VALUES (?, ?, ?, ?, zeroblob(?), ?)"
)


def _insert_graph(conn: sqlite3.Connection, model_id: int, adjacency: Adjacency) -> None:
    """A model's ``graphs`` row, its weights written a piece at a time through SQLite's
    blob I/O: bound as one value, they would be copied whole (230 MB for a GPT-2-sized
    stack) beside the copy made to narrow them."""
    conn.execute(
        _INSERT_GRAPH,
        (model_id, *adjacency.compressed(), adjacency.weight_bytes, adjacency.fan_ins),
    )
    if adjacency.weight_bytes:
        with conn.blobopen("graphs", "in_weights", model_id) as blob:
            for piece in adjacency.weight_pieces():
                blob.write(piece)


def _compact_adjacency(conn: sqlite3.Connection) -> None:
    """Version 9's rows to version 10's: each model's edges into its ``graphs`` row, then
    the neurons table rebuilt once without the adjacency columns, each magnitude a byte and
    a neuron that is its own only member its scale (one pass over the rows, not one per
    changed column: 2 million neurons take minutes either way)."""
    rows = conn.execute(
        "SELECT model_id, uid, fan_in, input_ids, input_weights FROM neurons "
        "ORDER BY model_id, rowid"
    )
    for model_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        neurons = list(group)
        adjacency = Adjacency.of_inputs(
            [uid for _, uid, *_ in neurons],
            [
                list(zip(json.loads(ids), _floats(weights), strict=True))
                for *_, ids, weights in neurons
            ],
            [fan_in for _, _, fan_in, *_ in neurons],
        )
        _insert_graph(conn, model_id, adjacency)
    conn.create_function(
        "circuitql_magnitude_bytes",
        1,
        lambda blob: magnitude_steps(np.frombuffer(blob, dtype=np.float64)).tobytes(),
        deterministic=True,
    )
    conn.create_function(
        "circuitql_members",
        2,
        lambda uid, members: _members_value(uid, _members_of(uid, members)),
        deterministic=True,
    )
    _rebuild_neurons(
        conn,
        {
            "magnitudes": "circuitql_magnitude_bytes(magnitudes)",
            "members": "circuitql_members(uid, members)",
        },
    )


def _code_of(column: str) -> str:
    """SQL for ``column``'s code: its text's, or the code already stored. The values are
    this module's constants, never a user's."""
    cases = " ".join(f"WHEN '{value}' THEN {code}" for value, code in ENUM_CODES[column].items())
    return f"CASE {column} {cases} ELSE {column} END"


def _rebuild_neurons(conn: sqlite3.Connection, converted: Mapping[str, str]) -> None:
    """The neurons table rebuilt as today's, once, its rows in their order: each column of
    ``converted`` through its SQL, the enum columns as their codes and the default slope as
    NULL; then its indexes made again. Columns today's table lacks are left behind."""
    converted = {
        **{column: _code_of(column) for column in ENUM_CODES},
        "alpha": f"NULLIF(alpha, {LEAKY_SLOPE!r})",
        **({} if "input_groups" in _columns(conn, "neurons") else {"input_groups": "0"}),
        **converted,
    }
    conn.execute(_NEURONS_TABLE.replace("CREATE TABLE neurons", "CREATE TABLE neurons_new"))
    conn.execute(
        f"INSERT INTO neurons_new (model_id, {_NEURON_COLUMNS}) SELECT model_id, "
        + ", ".join(converted.get(field, field) for field in _NEURON_FIELDS)
        + " FROM neurons ORDER BY rowid"
    )
    conn.execute("DROP TABLE neurons")
    conn.execute("ALTER TABLE neurons_new RENAME TO neurons")
    for index in _NEURON_INDEXES:
        conn.execute(index)


def _fill_target_fan_ins(conn: sqlite3.Connection) -> None:
    for (model_id,) in conn.execute("SELECT id FROM models").fetchall():
        rows = conn.execute(
            "SELECT uid, fan_in, output_ids FROM neurons WHERE model_id = ?", (model_id,)
        ).fetchall()
        fan_in = {uid: min(count, FAN_IN_SEEN) for uid, count, _ in rows}
        conn.executemany(
            "UPDATE neurons SET output_fan_ins = ? WHERE model_id = ? AND uid = ?",
            [
                (bytes(fan_in[target] for target in json.loads(targets)), model_id, uid)
                for uid, _, targets in rows
            ],
        )


def _every_name_kept(conn: sqlite3.Connection) -> None:
    columns = (
        "id, name, content_hash, source, n_inputs, n_outputs, n_neurons, n_edges, "
        "network_string, canonical_log, meta, created_at, normal_form, canonical_error"
    )
    conn.execute(_MODELS_TABLE.replace("CREATE TABLE models", "CREATE TABLE models_v9"))
    conn.execute(f"INSERT INTO models_v9 ({columns}) SELECT {columns} FROM models")
    conn.execute("DROP TABLE models")
    conn.execute("ALTER TABLE models_v9 RENAME TO models")
    conn.execute(_MODELS_BY_CONTENT)
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise sqlite3.IntegrityError("rebuilding the models table broke a neuron's reference")


def _compressed_text(text: str) -> bytes:
    return zlib.compress(text.encode())


# What a row that does not decode raises: a damaged file, or rows written by something else.
_UNDECODABLE = (zlib.error, ValueError, UnicodeDecodeError)
_DAMAGED_FIX = (
    "index the model again (circuitql index FILE --replace), or delete it (circuitql delete "
    "NAME); if many are damaged, index the zoo into a new store"
)


def _text_of(blob: bytes, model: str) -> str:
    try:
        return zlib.decompress(blob).decode()
    except _UNDECODABLE as exc:
        raise StoreError(
            f"the stored network string of model {model!r} is damaged ({exc})", fix=_DAMAGED_FIX
        ) from exc


def _edges_of(model: str, columns: Sequence[Any]) -> Adjacency:
    """The model's ``graphs`` row decoded; a row that does not decode is a StoreError naming
    the model, never a traceback from zlib or numpy."""
    try:
        return Adjacency.from_row(*columns)
    except _UNDECODABLE as exc:
        raise StoreError(
            f"the stored edges of model {model!r} are damaged ({exc})", fix=_DAMAGED_FIX
        ) from exc


def _compress_rows(conn: sqlite3.Connection) -> None:
    """Version 11's rows to version 12's: network strings and the ``graphs`` rows' unit
    lists, ends and sources zlib-compressed, in place. A row already in the new layout (a
    version 9 store's, which ``_compact_adjacency`` writes with today's ``Adjacency``) has a
    blob, not text, in the compressed column and is left alone. The weights stay float64:
    they were canonicalized before the form ended at float32, and the model's normal form
    says so, so indexing it again rewrites it."""
    conn.create_function("circuitql_compressed_text", 1, _compressed_text, deterministic=True)
    conn.execute(
        "UPDATE models SET network_string = circuitql_compressed_text(network_string) "
        "WHERE typeof(network_string) = 'text'"
    )
    columns = ", ".join(ADJACENCY_COLUMNS)
    for (model_id,) in conn.execute(
        "SELECT model_id FROM graphs WHERE typeof(uids) = 'text'"
    ).fetchall():
        row = conn.execute(
            f"SELECT {columns} FROM graphs WHERE model_id = ?", (model_id,)
        ).fetchone()
        conn.execute(
            f"UPDATE graphs SET {', '.join(f'{c} = ?' for c in ADJACENCY_COLUMNS)} "
            "WHERE model_id = ?",
            (*Adjacency.from_uncompressed_row(*row).row(), model_id),
        )


def _groups_column(conn: sqlite3.Connection) -> None:
    """The input groups column, 0 for every neuron, unless the table has it: an older
    version's step makes today's signature indexes, which hold it, and a version 9 store's
    neurons table was rebuilt as today's."""
    if "input_groups" not in _columns(conn, "neurons"):
        conn.execute("ALTER TABLE neurons ADD COLUMN input_groups INTEGER NOT NULL DEFAULT 0")


def _compact_neurons(conn: sqlite3.Connection) -> None:
    """Version 11's neurons to version 12's: each model's depth on its row (a version 8
    store's models table, rebuilt as today's, has the column already), so that the layer
    index can go with the token column, its index and the per-token counts (a token is the
    columns it spells); enum columns become codes, the default slope NULL. A version 9
    store's neurons table was rebuilt as today's already (``_compact_adjacency``): it has
    no token column, and is not rebuilt twice."""
    if "depth" not in _columns(conn, "models"):
        conn.execute("ALTER TABLE models ADD COLUMN depth INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "UPDATE models SET depth = "
        "coalesce((SELECT max(layer) FROM neurons WHERE model_id = models.id), 0)"
    )
    conn.execute(_MODELS_BY_DEPTH)
    conn.execute("DROP TABLE token_stats")
    if "token" in _columns(conn, "neurons"):
        _rebuild_neurons(conn, {})


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


_MIGRATIONS: tuple[tuple[int, tuple[str | Callable[[sqlite3.Connection], None], ...]], ...] = (
    (3, (_groups_column, "DROP INDEX neurons_by_shape", _SHAPE_INDEX)),
    (4, ("ALTER TABLE models ADD COLUMN normal_form TEXT NOT NULL DEFAULT '{}'",)),
    (5, ("ALTER TABLE neurons ADD COLUMN output_fan_ins BLOB", _fill_target_fan_ins)),
    (
        6,
        (
            f"ALTER TABLE neurons ADD COLUMN alpha REAL NOT NULL DEFAULT {LEAKY_SLOPE!r}",
            "UPDATE models SET normal_form = '{}' WHERE id IN "
            "(SELECT model_id FROM neurons WHERE activation = 'leaky_relu')",
        ),
    ),
    (7, ("ALTER TABLE models ADD COLUMN canonical_error REAL",)),
    (8, (_every_name_kept,)),
    (9, (_GRAPHS_TABLE, _compact_adjacency)),
    (
        10,
        (
            _groups_column,
            "DROP INDEX neurons_by_shape",
            _SHAPE_INDEX,
            "DROP INDEX neurons_by_fan_in",
            _FAN_IN_INDEX,
        ),
    ),
    (11, (_compress_rows, _compact_neurons)),
    (
        12,
        (
            _groups_column,
            "DROP INDEX neurons_by_shape",
            _SHAPE_INDEX,
            "DROP INDEX neurons_by_fan_in",
            _FAN_IN_INDEX,
        ),
    ),
)

# Executed one statement at a time: executescript() would commit the transaction that guards
# schema creation.
_SCHEMA = (
    _MODELS_TABLE,
    _NEURONS_TABLE,
    _GRAPHS_TABLE,
    _MODELS_BY_CONTENT,
    _MODELS_BY_DEPTH,
    *_NEURON_INDEXES,
)

_NEURON_FIELDS = (
    "uid",
    "layer",
    "kind",
    "activation",
    "n_pos",
    "n_neg",
    "fan_in",
    "bias_class",
    "out_pos",
    "out_neg",
    "magnitudes",
    "bias",
    "members",
    "alpha",
    "input_groups",
)
_NEURON_COLUMNS = ", ".join(_NEURON_FIELDS)
_TOKEN_FIELDS = "kind, activation, n_pos, n_neg, bias_class, out_pos, out_neg"
_WRITE_COLUMNS = f"model_id, {_NEURON_COLUMNS}"
_WRITE_PLACEHOLDERS = ", ".join("?" * (1 + len(_NEURON_FIELDS)))
_MODEL_COLUMNS = (
    "name, content_hash, source, n_inputs, n_outputs, n_neurons, n_edges, network_string, meta, "
    "normal_form, canonical_error"
)
_MODEL_ID = "(SELECT id FROM models WHERE name = ?)"
# Decoded models' edges a store holds between the steps of a query (about 500 models of
# 3 x 64 units).
ADJACENCY_CACHE_BYTES = 64 << 20


# A write group commits after this many writes, or this long after its transaction began.
GROUP_MODELS = 64
GROUP_SECONDS = 0.5


class _Group:
    """The writes of a ``write_group`` since its transaction began."""

    def __init__(self) -> None:
        self.began = 0.0
        self.writes = 0

    def begin(self) -> None:
        self.began, self.writes = time.monotonic(), 0

    def full(self) -> bool:
        """Count one write more; whether the group should commit now."""
        self.writes += 1
        return self.writes >= GROUP_MODELS or time.monotonic() - self.began >= GROUP_SECONDS


class SQLiteStore:
    """A store in one SQLite file (created on first use), safe for concurrent readers."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        """Open the store at ``path``; a missing file is a new store, or with ``create``
        False an error (a read command never leaves an empty store behind a typo). A store
        a read command cannot write (its permissions, read-only media) is opened read-only:
        it can be queried, not written."""
        self.path = Path(path).expanduser()
        self.uri = f"sqlite:///{self.path}"
        if not create and not self.path.is_file():
            raise _missing(self.path)
        self.read_only = not create and not os.access(self.path, os.W_OK)
        if not self.read_only:
            _check_location(self.path)
        created = not self.path.exists()
        self._adjacencies = AdjacencyCache(ADJACENCY_CACHE_BYTES)
        self._data_version: int | None = None
        self._group: _Group | None = None
        try:
            self._conn = sqlite3.connect(self._address(), isolation_level=None, uri=True)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the SQLite store ({exc})",
                where=str(self.path),
                fix="check the path and its permissions, or pick another store path",
            ) from exc
        try:
            self._prepare()
        except BaseException:
            self._conn.close()
            if created:
                _remove_db_files(self.path)
            raise

    def _address(self) -> str:
        """The file as an SQLite URI: read-only when it cannot be written, and immutable
        too when its folder cannot be (no shared-memory file can be made beside it)."""
        address = "file:" + urllib.parse.quote(str(self.path.resolve()))
        if not self.read_only:
            return address
        immutable = "" if os.access(self.path.parent, os.W_OK) else "&immutable=1"
        return f"{address}?mode=ro{immutable}"

    def _prepare(self) -> None:
        """Check the file is a circuitql store of a known version, creating the schema if new."""
        with self._db_errors("opening the store"):
            try:
                self._conn.execute("PRAGMA synchronous=NORMAL")
                # A zoo's indexes outgrow SQLite's 2 MiB default cache, and every WAL
                # checkpoint (default: each 1,000 pages, about every model) is an fsync:
                # 64 MiB and 10,000 pages took writing 1,000 models from 32 to 25 ms each.
                self._conn.execute("PRAGMA cache_size=-65536")
                self._conn.execute("PRAGMA wal_autocheckpoint=10000")
                # Off while the schema is checked, so a migration that rebuilds the models
                # table does not cascade its DROP to the neurons (SQLite's own recipe).
                self._conn.execute("PRAGMA foreign_keys=OFF")
                if self.read_only:
                    self._check_read_only_schema()
                else:
                    self._check_schema()
                self._conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_NOTADB:
                    raise
                raise StoreError(
                    "this file is not a circuitql store: it is not an SQLite database",
                    where=str(self.path),
                    fix="point --store at a circuitql database, or at a new file path to "
                    "create one",
                ) from exc
            # Only once the file is known to be ours: the journal mode is stored in the file.
            if not self.read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")

    def _check_read_only_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"this store is read-only and has schema version {version}, but this "
                f"circuitql reads version {SCHEMA_VERSION} (an older store is updated in "
                "place when it is first opened for writing)",
                where=str(self.path),
                fix="open it once where it can be written (copy it, or give write "
                "permission), or read it with the circuitql release that wrote it",
            )

    def _check_schema(self) -> None:
        # Checked and created under one write lock so two processes opening a fresh file at the
        # same moment cannot both create the schema.
        self._conn.execute("BEGIN IMMEDIATE")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(
                    "this SQLite database belongs to something else: it has tables but no "
                    "circuitql schema",
                    where=str(self.path),
                    fix="pick a new file path for the circuitql store",
                )
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
            version = SCHEMA_VERSION
        found = version
        if found < SCHEMA_VERSION:
            # Minutes for a zoo of millions of neurons: say why the command waits.
            cost = (
                "about 3 s per 100 models"
                if found < _COMPACT_VERSION
                else "about 4 s per 1,000 models"
                if found < _SHRUNK_VERSION
                else "about 1 s per 1,000 models"
            )
            print(
                f"circuitql: upgrading the store {self.path} from schema version {found} to "
                f"{SCHEMA_VERSION}, once ({cost})",
                file=sys.stderr,
                flush=True,
            )
        for old, statements in _MIGRATIONS:
            if version == old:
                for step in statements:
                    if isinstance(step, str):
                        self._conn.execute(step)
                    else:
                        step(self._conn)
                version = old + 1
                self._conn.execute(f"PRAGMA user_version = {version:d}")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"this store has schema version {version}, but this circuitql reads version "
                f"{SCHEMA_VERSION}",
                where=str(self.path),
                fix="open it with the circuitql release that wrote it, or index into a new "
                "store path",
            )
        self._conn.execute("COMMIT")
        if found < _SHRUNK_VERSION:
            # The migration freed most of the file's pages; give them back to the disk. A
            # failure (too little room for the copy VACUUM makes) leaves a valid store whose
            # free pages the next writes reuse.
            with suppress(sqlite3.OperationalError):
                self._conn.execute("VACUUM")

    @contextmanager
    def _db_errors(self, doing: str) -> Iterator[None]:
        """Turn a database failure (locked, disk full, corrupt file) into a user error."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(
                f"{doing} failed: {exc}",
                where=str(self.path),
                fix="if another process holds the store, wait for it and retry; otherwise check "
                "the disk and the file's permissions",
            ) from exc

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction around several statements, so they see the same committed
        state (in WAL mode a reader keeps its snapshot while writers commit)."""
        if self._conn.in_transaction:
            yield
            return
        with self._db_errors("reading the store"):
            self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    @contextmanager
    def write_group(self) -> Iterator[Callable[[], None]]:
        """Writes inside share transactions: each write is a savepoint, whole or not at all,
        and the group commits every ``GROUP_MODELS`` writes or ``GROUP_SECONDS``, when the
        function it gives is called (the writer is about to wait), and on leaving (even by
        an exception: what was written whole stays). A commit costs a 3 x 64 model's write a
        third of its time, 1.5 to 2 ms; another process that writes to the store waits at
        most ``GROUP_SECONDS`` more for the lock. Nested groups are the outer one."""
        if self._group is not None:
            yield self._commit_group
            return
        group = self._group = _Group()
        try:
            yield self._commit_group
        finally:
            if self._group is group:  # not committed by close() already
                self._group = None
                self._commit_group()

    def _commit_group(self) -> None:
        """Commit a group's open transaction; one that cannot commit is rolled back."""
        if not self._conn.in_transaction:
            return
        with self._db_errors("committing the models written"):
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """One write transaction, committed whole or rolled back whole on any exception; in
        a ``write_group``, a savepoint in the group's transaction instead.

        IMMEDIATE takes the write lock up front, so the existence checks a write starts with
        still hold when it commits. Decoded edges are forgotten: this connection's own
        commits do not move ``PRAGMA data_version``.
        """
        self._adjacencies.clear()
        if self._group is not None:
            with self._db_errors(doing), self._in_group(self._group):
                yield
            return
        with self._db_errors(doing):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _in_group(self, group: _Group) -> Iterator[None]:
        """A savepoint in the group's transaction (begun IMMEDIATE here if none is open),
        rolled back alone on any exception; the group commits when it is full."""
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
            group.begin()
        self._conn.execute("SAVEPOINT circuitql_write")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO circuitql_write")
            self._conn.execute("RELEASE circuitql_write")
            raise
        self._conn.execute("RELEASE circuitql_write")
        if group.full():
            self._conn.execute("COMMIT")

    def write(self, model: IndexedModel, replace: bool = False) -> WriteOutcome:
        """One IMMEDIATE transaction: the check for a stored model under the name still holds
        when the rows commit, and a replaced model is deleted inside it."""
        with self._transaction(f"writing model {model.name!r}"):
            return self._write_new(model, replace)

    def _write_new(self, model: IndexedModel, replace: bool) -> WriteOutcome:
        """The body of ``write``; runs inside its transaction."""
        neurons, edges = model_columns(model)
        adjacency = Adjacency.of_columns(neurons, edges)  # checked before any insert
        rows = _neuron_rows(neurons)
        existing = self._conn.execute(
            f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = ?", (model.name,)
        ).fetchone()
        if existing is not None:
            stored = _model_info(existing)
            if unchanged(stored, model):
                return WriteOutcome("unchanged", stored)
            if stored.content_hash == model.content_hash:
                self._delete(stored.name)  # the same network, canonicalized or described otherwise
            elif replace:
                self._delete(stored.name)
            else:
                raise NameTaken(
                    f"a different model is already stored under the name {model.name!r} "
                    f"(stored content {stored.content_hash[:12]}, new content "
                    f"{model.content_hash[:12]})",
                    where=str(self.path),
                    fix="give the new model another name (--name NAME), or replace the "
                    "stored one (--replace)",
                )
        model_id = self._conn.execute(
            "INSERT INTO models (name, content_hash, source, n_inputs, n_outputs, n_neurons, "
            "n_edges, network_string, canonical_log, meta, created_at, normal_form, "
            "canonical_error, depth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                model.name,
                model.content_hash,
                model.source,
                model.n_inputs,
                model.n_outputs,
                len(neurons),
                len(edges),
                _compressed_text(model.network_string),
                json.dumps(list(model.canonical_log)),
                json.dumps(dict(model.meta)),
                datetime.now(UTC).isoformat(timespec="seconds"),
                json.dumps(dict(model.normal_form), sort_keys=True),
                model.canonical_error,
                max(neurons.layer, default=0),
            ),
        ).lastrowid
        assert model_id is not None  # the row just inserted
        self._conn.executemany(
            f"INSERT INTO neurons ({_WRITE_COLUMNS}) VALUES ({_WRITE_PLACEHOLDERS})",
            [(model_id, *row) for row in rows],
        )
        _insert_graph(self._conn, model_id, adjacency)
        info = self._conn.execute(
            f"SELECT {_MODEL_COLUMNS} FROM models WHERE id = ?", (model_id,)
        ).fetchone()
        return WriteOutcome("indexed", _model_info(info))

    def models(self) -> list[ModelInfo]:
        """The models table alone, by name: no neuron row is read."""
        with self._db_errors("listing models"):
            rows = self._conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY name")
            return [_model_info(row) for row in rows]

    def get_model(self, name: str) -> ModelInfo | None:
        """A seek on the unique ``models.name``."""
        with self._db_errors(f"reading model {name!r}"):
            row = self._conn.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _model_info(row)

    def domains(self, models: Sequence[str]) -> dict[str, Domain | None]:
        """One statement, a seek on the unique ``models.name`` per name; the network string,
        the widest column of the row, is neither read nor decompressed."""
        with self._db_errors("reading domains"):
            rows = self._conn.execute(
                "SELECT m.name, m.n_inputs, m.normal_form FROM json_each(?) AS k "
                "CROSS JOIN models AS m ON m.name = k.value",
                (json.dumps(list(dict.fromkeys(models))),),
            ).fetchall()
        return {name: domain_of(json.loads(form), n_inputs) for name, n_inputs, form in rows}

    def neurons(self, model: str) -> list[NeuronRecord]:
        """In rowid order, which is the order they were inserted; the adjacency columns are
        not read."""
        with self._db_errors(f"reading the neurons of {model!r}"):
            rows = self._conn.execute(
                f"SELECT {_NEURON_COLUMNS} FROM neurons WHERE model_id = {_MODEL_ID} "
                "ORDER BY rowid",
                (model,),
            )
            return [_neuron_record(row) for row in rows]

    def inputs(self, model: str) -> dict[str, dict[str, float]]:
        """Decoded from the model's ``graphs`` row: one row read, whatever the model's size."""
        with self._db_errors(f"reading the edges of {model!r}"):
            row = self._conn.execute(
                f"SELECT {', '.join(ADJACENCY_COLUMNS)} FROM graphs WHERE model_id = {_MODEL_ID}",
                (model,),
            ).fetchone()
        return {} if row is None else _edges_of(model, row).inputs()

    def max_layer(self, models: Sequence[str] | None = None) -> int:
        """The deepest of the models' depths: zoo-wide, one seek of ``models_by_depth``."""
        where, params = "", []
        if models is not None:
            where, params = (
                "WHERE name IN (SELECT value FROM json_each(?))",
                [json.dumps(list(models))],
            )
        with self._db_errors("reading the deepest layer"):
            row = self._conn.execute(f"SELECT max(depth) FROM models {where}", params).fetchone()
        return int(row[0] or 0)

    def records(
        self, keys: Sequence[NeuronKey], constraints: Mapping[str, object] | None = None
    ) -> dict[NeuronKey, NeuronRecord]:
        """One statement for every key (``_rows_by_key``), the adjacency columns left out."""
        rows = self._rows_by_key(
            keys, ", ".join(f"n.{field}" for field in _NEURON_FIELDS), constraints or {}
        )
        return {(row[0], row[1]): _neuron_record(row[1:]) for row in rows}

    def fetch(self, keys: Sequence[NeuronKey]) -> dict[NeuronKey, NeuronView]:
        """Two statements for every key: the neurons (``_rows_by_key``), then their models'
        ``graphs`` rows, each decoded once for all of its neurons' edges. Both read one
        snapshot: a model another process replaces or deletes in between is seen whole, as
        it was, never as neurons without edges."""
        with self._snapshot():
            rows = self._rows_by_key(keys, ", ".join(f"n.{field}" for field in _NEURON_FIELDS), {})
            graphs = self._adjacency_of(list(dict.fromkeys(row[0] for row in rows)))
        views: dict[NeuronKey, NeuronView] = {}
        for row in rows:
            record = _neuron_record(row[1:])
            views[row[0], record.uid] = graphs[row[0]].view(record)
        return views

    def _adjacency_of(self, models: Sequence[str]) -> dict[str, Adjacency]:
        """The named models' edges: those decoded since the stored models last changed
        from the cache, the others from their ``graphs`` rows in one statement.
        ``PRAGMA data_version`` tells when another connection has committed a change; this
        one's own writes clear the cache themselves."""
        with self._db_errors("reading edges"):
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._adjacencies.clear()
                self._data_version = version
            found = {name: self._adjacencies.get(name) for name in models}
            missing = [name for name, adjacency in found.items() if adjacency is None]
            rows = (
                self._conn.execute(
                    f"SELECT m.name, {', '.join(f'g.{c}' for c in ADJACENCY_COLUMNS)} "
                    "FROM json_each(?) AS k CROSS JOIN models AS m ON m.name = k.value "
                    "CROSS JOIN graphs AS g ON g.model_id = m.id",
                    (json.dumps(missing),),
                ).fetchall()
                if missing
                else []
            )
        for name, *columns in rows:
            adjacency = _edges_of(name, columns)
            self._adjacencies.put(name, adjacency)
            found[name] = adjacency
        return {name: adjacency for name, adjacency in found.items() if adjacency is not None}

    def _rows_by_key(
        self, keys: Sequence[NeuronKey], columns: str, constraints: Mapping[str, object]
    ) -> list[Any]:
        """(model name, *columns) rows of the neurons named by ``keys`` whose signature
        matches ``constraints``: one statement whose keys travel as one JSON parameter, each
        a seek on the models.name and (model_id, uid) indexes. CROSS JOIN fixes that order:
        left to itself, SQLite drives a selective-looking signature filter from a signature
        index and scans every stored neuron that matches it, zoo-wide."""
        clause, params = _signature_filter(constraints, None)
        with self._db_errors("reading neurons"):
            return self._conn.execute(
                f"SELECT m.name, {columns} FROM json_each(?) AS k "
                "CROSS JOIN models AS m ON m.name = json_extract(k.value, '$[0]') "
                "CROSS JOIN neurons AS n ON n.model_id = m.id "
                f"AND n.uid = json_extract(k.value, '$[1]') WHERE {clause}",
                (json.dumps(list(dict.fromkeys(keys))), *params),
            ).fetchall()

    def delete(self, model: str) -> bool:
        """One IMMEDIATE transaction; the neuron and graph rows go with the model row (ON
        DELETE CASCADE)."""
        with self._transaction(f"deleting model {model!r}"):
            return self._delete(model)

    def _delete(self, model: str) -> bool:
        """The body of ``delete``; runs inside its transaction."""
        row = self._conn.execute("SELECT id FROM models WHERE name = ?", (model,)).fetchone()
        if row is None:
            return False
        self._conn.execute("DELETE FROM models WHERE id = ?", row)
        return True

    def token_counts(self) -> dict[str, int]:
        """The neurons counted by the columns a token spells, then by token (an output's
        activation is not in its token): one scan of the neurons table, for statistics
        over a whole store, which no query asks for."""
        with self._db_errors("reading token statistics"):
            rows = self._conn.execute(
                f"SELECT {_TOKEN_FIELDS}, count(*) FROM neurons GROUP BY {_TOKEN_FIELDS}"
            ).fetchall()
        counts: Counter[str] = Counter()
        for *fields, count in rows:
            counts[stored_signature(*fields).token] += count
        return dict(counts)

    def find_neurons(
        self,
        constraints: Mapping[str, object],
        models: Sequence[str] | None = None,
        alongside: Sequence[Mapping[str, object]] = (),
    ) -> list[tuple[str, NeuronRecord]]:
        """One statement over the signature indexes, ordered by model, then by insertion;
        each of ``alongside`` a subquery over the indexes too, for the models it leaves."""
        clause, params = _signature_filter(constraints, models)
        for other in alongside:
            inner, more = _signature_filter(other, None)
            clause += f" AND n.model_id IN (SELECT n.model_id FROM neurons AS n WHERE {inner})"
            params += more
        columns = ", ".join(f"n.{field}" for field in _NEURON_FIELDS)
        with self._db_errors("searching neurons"):
            # "+ 0": ordering by the key would let the planner scan the whole table in key
            # order rather than search the signature index and sort what it finds.
            rows = self._conn.execute(
                f"SELECT m.name, {columns} FROM neurons AS n JOIN models AS m "
                f"ON m.id = n.model_id WHERE {clause} ORDER BY n.model_id + 0, n.rowid",
                params,
            )
            return [(row[0], _neuron_record(row[1:])) for row in rows]

    def count_neurons(
        self, constraints: Mapping[str, object], models: Sequence[str] | None = None
    ) -> int:
        """count(*) over the signature indexes; zoo-wide the models table stays out, so a
        count the indexes cover reads no row (``_scoped``)."""
        clause, params = _signature_filter(constraints, models)
        with self._db_errors("counting neurons"):
            row = self._conn.execute(
                f"SELECT count(*) FROM {_scoped(models)} WHERE {clause}",
                params,
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Closes the one connection every call goes through, a write group's writes
        committed first."""
        if self._group is not None:
            self._group = None
            self._commit_group()
        self._conn.close()


def _scoped(models: Sequence[str] | None) -> str:
    """The neurons to aggregate over. Zoo-wide, the models table stays out of the statement:
    a count then reads one signature index and never a row (40 ms to 1 ms for 10,914 neurons
    of a 2-million-neuron zoo)."""
    return "neurons AS n" + ("" if models is None else " JOIN models AS m ON m.id = n.model_id")


def _code(column: str, value: object) -> object:
    """What ``column`` stores for ``value``: an enum column's code (``_NO_CODE`` for a
    value it never holds), any other column's value itself."""
    codes = ENUM_CODES.get(column)
    if codes is None:
        return value
    return codes.get(value, _NO_CODE) if isinstance(value, str) else _NO_CODE


def _signature_filter(
    constraints: Mapping[str, object], models: Sequence[str] | None
) -> tuple[str, list[Any]]:
    """WHERE clause and parameters for a signature lookup. Column names come from the
    whitelist; every value is a parameter, an enum column's as its code."""
    triples = [
        (column, comparison, _code(column, value))
        for column, comparison, value in lookup_values(constraints)
    ]
    fan_ins = _fan_in_list(triples)
    if fan_ins is not None:
        triples = [t for t in triples if t[0] != "fan_in"]
    # SQLite has no statistics to choose an index by, so "+" (which keeps a term off the
    # indexes) chooses for it. A lookup by depth (``layer_min``) with the fan-in given, as a
    # value or a few, seeks each fan-in and then the layer in the fan-in index: a dense
    # host's first layer, as many units as the zoo has inputs times its width, reads as few
    # inputs as a circuit's deeper unit and is never read. Otherwise the layer never leads
    # (every unit past the first layers has it); and without a kind, the planner prefers an
    # equality on the activation (a detector index holding every ReLU of the zoo) to a bound
    # on the fan-in, so the bound leads (880 ms to 11 ms on 196,000 neurons).
    columns = {column for column, _, _ in triples}
    by_depth = "layer" in columns and (fan_ins is not None or "fan_in" in constraints)
    bounded = fan_ins is not None or any(
        column == "fan_in" and comparison != "=" for column, comparison, _ in triples
    )

    def off_index(column: str, comparison: str) -> bool:
        if column == "fan_in":
            return False
        if by_depth:
            return column != "layer"
        return column == "layer" or (comparison == "=" and bounded and "kind" not in columns)

    where = [
        f"{'+' if off_index(column, comparison) else ''}n.{column} {comparison} ?"
        for column, comparison, _ in triples
    ]
    params: list[Any] = [value for _, _, value in triples]
    if fan_ins is not None:
        where.insert(0, f"n.fan_in IN ({', '.join('?' * len(fan_ins))})")
        params[:0] = fan_ins
    if models is not None:
        where.append("m.name IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(models)))
    return " AND ".join(where) or "1", params


# A bounded fan-in spanning at most this many values is looked up as a list of them: SQLite
# seeks each one (and then its layer bound) instead of scanning the range.
FAN_IN_LIST = 32


def _fan_in_list(triples: Sequence[tuple[str, str, object]]) -> list[int] | None:
    """The fan-ins a lookup's bounds admit, when there are few; else None."""
    bounds = {
        comparison: value
        for column, comparison, value in triples
        if column == "fan_in" and isinstance(value, int)
    }
    if "=" in bounds or "<=" not in bounds:
        return None
    low, high = bounds.get(">=", 0), bounds["<="]
    return list(range(low, high + 1)) if high - low < FAN_IN_LIST else None


def _check_location(path: Path) -> None:
    """Refuse a path SQLite could only fail on, before anything is created there."""
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(
            "the directory for the store does not exist",
            where=str(path),
            fix=f"create it first (mkdir -p {parent}) or pick another store path",
        )
    if path.is_dir():
        raise StoreError(
            "the store path is a directory, not a database file",
            where=str(path),
            fix=f"name a file inside it, e.g. {path / 'circuitql.db'}",
        )
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(
            "the store location is not writable",
            where=str(path),
            fix="fix the permissions or pick another store path you can write to",
        )


def _missing(path: Path) -> StoreError:
    near = difflib.get_close_matches(
        path.name,
        [p.name for p in path.parent.glob("*.db")] if path.parent.is_dir() else [],
        n=3,
        cutoff=0.6,
    )
    hint = f"did you mean {', '.join(str(path.parent / n) for n in near)}? " if near else ""
    return StoreError(
        "there is no store here",
        where=str(path),
        fix=f"{hint}index models into it first: circuitql index DIR --store {path}",
    )


def _remove_db_files(path: Path) -> None:
    """Undo a failed first open: SQLite may already have created the file and its WAL files."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with suppress(OSError):
            leftover.unlink(missing_ok=True)


def _neuron_rows(neurons: NeuronColumns) -> list[tuple[Any, ...]]:
    """The rows of ``neurons`` but their model_id, column by column: a model's edges are
    its ``graphs`` row, not these."""
    magnitudes = neurons.magnitude_steps.tobytes()
    return list(
        zip(
            neurons.uid,
            neurons.layer,
            map(ENUM_CODES["kind"].__getitem__, neurons.kind),
            map(ENUM_CODES["activation"].__getitem__, neurons.activation),
            neurons.n_pos,
            neurons.n_neg,
            map(add, neurons.n_pos, neurons.n_neg),
            map(ENUM_CODES["bias_class"].__getitem__, neurons.bias_class),
            neurons.out_pos,
            neurons.out_neg,
            [
                magnitudes[start:end]
                for start, end in itertools.pairwise([0, *neurons.magnitude_ends])
            ],
            neurons.bias,
            map(_members_value, neurons.uid, neurons.members),
            [None if alpha == LEAKY_SLOPE else alpha for alpha in neurons.alpha],
            neurons.input_groups,
            strict=True,
        )
    )


# Most canonical neurons stand for one original neuron, themselves, at some scale: that scale
# alone, as 8 bytes, rather than JSON naming the neuron again (31 bytes, and a JSON decode for
# every neuron a query reads).
_SCALE = struct.Struct("<d")


def _members_value(uid: str, members: Sequence[tuple[str, float]]) -> str | bytes:
    """The ``members`` column: the scale alone for a neuron that is its only member, else
    JSON (as every store before version 10 wrote it)."""
    if len(members) == 1 and members[0][0] == uid:
        return _SCALE.pack(members[0][1])
    return json.dumps(members)


def _members_of(uid: str, value: str | bytes) -> tuple[tuple[str, float], ...]:
    """What ``_members_value`` wrote."""
    if isinstance(value, bytes):
        return ((uid, _SCALE.unpack(value)[0]),)
    return tuple((source, float(scale)) for source, scale in json.loads(value))


def _floats(blob: bytes) -> list[float]:
    """A float64 blob of version 9 (edge weights, magnitudes) as floats."""
    return array("d", blob).tolist()


# Signatures decoded and kept, one object per distinct row: a query reads each signature
# about four times over (6,782 records, 1,724 signatures in MATCH scale at 10,000 models).
SIGNATURES_KEPT = 1 << 14


@lru_cache(maxsize=SIGNATURES_KEPT)
def stored_signature(
    kind: int,
    activation: int,
    n_pos: int,
    n_neg: int,
    bias_class: int,
    out_pos: int,
    out_neg: int,
    magnitudes: bytes = b"",
) -> Signature:
    """The signature of a row's columns, the enum columns as their codes and the magnitudes
    as their steps. Signatures are immutable, so records with the same columns share one."""
    return Signature.from_values(
        _VALUES["kind"][kind],
        _VALUES["activation"][activation],
        n_pos,
        n_neg,
        _VALUES["bias_class"][bias_class],
        out_pos,
        out_neg,
        magnitudes_of(magnitudes),
    )


def _neuron_record(row: Sequence[Any]) -> NeuronRecord:
    (
        uid,
        layer,
        kind,
        activation,
        n_pos,
        n_neg,
        _fan_in,
        bias_class,
        out_pos,
        out_neg,
        magnitudes,
        bias,
        members,
        alpha,
        input_groups,
    ) = row
    signature = stored_signature(
        kind, activation, n_pos, n_neg, bias_class, out_pos, out_neg, magnitudes
    )
    return NeuronRecord(
        uid=uid,
        layer=layer,
        signature=signature,
        bias=bias,
        members=_members_of(uid, members),
        alpha=LEAKY_SLOPE if alpha is None else alpha,
        input_groups=input_groups,
    )


def _model_info(row: Sequence[Any]) -> ModelInfo:
    (
        name,
        content_hash,
        source,
        n_inputs,
        n_outputs,
        n_neurons,
        n_edges,
        network,
        meta,
        normal_form,
        canonical_error,
    ) = row
    return ModelInfo(
        name=name,
        content_hash=content_hash,
        source=source,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        n_neurons=n_neurons,
        n_edges=n_edges,
        network_string=_text_of(network, name),
        meta=json.loads(meta),
        normal_form=json.loads(normal_form),
        canonical_error=canonical_error,
    )

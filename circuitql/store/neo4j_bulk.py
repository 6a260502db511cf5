"""The offline bulk path into a fresh Neo4j database: CSV files, Neo4j's own importer.

Writing a zoo through Bolt costs a transaction and an index update per model. For a first
load, circuitql instead writes every model as CSV rows (the same properties ``Neo4jStore``
writes, built by the same functions), runs Neo4j's importer (``neo4j-admin database import
full``, here from the launcher's class path) into the data directory's empty ``neo4j``
database, then starts the server and builds the schema on the loaded data, as any store
connection does. The database is usable by every circuitql command afterwards, exactly as if
each model had been indexed through the store.

The importer writes the store files directly: it needs the server stopped and the database
absent, so the path is only for a fresh database.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from circuitql.errors import NameTaken, StoreError
from circuitql.records import IndexedModel, ModelInfo, WriteOutcome
from circuitql.store.base import model_columns, unchanged
from circuitql.store.neo4j import Neo4jStore, model_info, model_props, neuron_row
from circuitql.store.neo4j_server import (
    ServerStatus,
    build_launcher,
    check_port_free,
    checked_password,
    local_uri,
    require_tool,
    start,
    status,
)

DATABASE = "neo4j"
# The database's store files, present once anything was written to it.
STORE_FILE = Path("data") / "databases" / DATABASE / "neostore"
IMPORT_LOG = "import.log"
IMPORT_REPORT = "import.report"  # the importer's list of rows it skipped (none, here)
# Arrays in the CSV files hold numbers only (the magnitudes, the embedding), so any other
# character separates their elements; the canonical log, a list of text, is set afterwards.
ARRAY_DELIMITER = ";"
# The importer's memory for its own caches (it takes 90% of free memory by default).
IMPORT_MEMORY = "512m"
LOG_ROWS = 5000  # models per statement when the canonical logs are set
HAS_HEADER = ":START_ID(Model),:END_ID(Neuron)\n"
FEEDS_HEADER = ":START_ID(Neuron),:END_ID(Neuron),weight:double,ordinal:long\n"


class BulkCsv:
    """Models as CSV rows for Neo4j's importer, written as they come (``write`` has a
    store's contract: a name holds one network, the same one again is unchanged)."""

    def __init__(self, folder: Path, namespace: str = "default") -> None:
        self.folder = folder
        self.namespace = namespace
        self._files: dict[str, IO[str]] = {}
        self._writers: dict[str, Any] = {}
        self._infos: dict[str, ModelInfo] = {}
        self._tokens: Counter[str] = Counter()
        self._neurons = 0
        self.logs: list[tuple[str, list[str]]] = []
        # Whether a text holds a line break: the importer then reads fields across lines,
        # which it cannot do in parallel, so only then.
        self.multiline = False

    def write(self, model: IndexedModel, replace: bool = False) -> WriteOutcome:
        """Rows for one model: its Model node, its neurons, their FEEDS and HAS edges."""
        neurons, edges = model_columns(model)
        stored = self._infos.get(model.name)
        if stored is not None:
            if unchanged(stored, model):
                return WriteOutcome("unchanged", stored)
            raise NameTaken(
                f"two files of the zoo are named {model.name!r} and hold different networks",
                where=str(self.folder),
                fix="give the files distinct paths below the folder, or load one of them later "
                "through the running server (circuitql index --store neo4j://...)",
            )
        props = model_props(self.namespace, model)
        model_id = len(self._infos)
        log = props.pop("canonical_log")
        if log:
            self.logs.append((model.name, log))
        self._row("Model", {":ID(Model)": model_id, **props})
        first = self._neurons
        for ordinal, neuron in enumerate(neurons):
            row = neuron_row(self.namespace, model.name, ordinal, neuron)
            self._row("Neuron", {":ID(Neuron)": first + ordinal, **row})
        self._neurons += len(neurons)
        # The two relationship files hold numbers only: written as text in one piece per
        # model (a CSV writer's call per edge would cost more than preparing the model).
        self._lines(
            "HAS",
            HAS_HEADER,
            "".join(f"{model_id},{n}\n" for n in range(first, first + len(neurons))),
        )
        self._lines(
            "FEEDS",
            FEEDS_HEADER,
            "".join(
                f"{src},{dst},{weight!r},{j}\n"
                for j, (src, dst, weight) in enumerate(
                    zip(
                        [first + src for src in edges.src.tolist()],
                        [first + dst for dst in edges.dst.tolist()],
                        edges.weight.tolist(),
                        strict=True,
                    )
                )
            ),
        )
        self._tokens.update(neurons.token)
        info = model_info({**props, "canonical_log": log})
        self._infos[model.name] = info
        return WriteOutcome("indexed", info)

    def close(self) -> dict[str, Path]:
        """Finish the files; what each is, for the importer (``Label=path``)."""
        for token, count in sorted(self._tokens.items()):
            self._row(
                "TokenStat",
                {
                    ":ID(TokenStat)": token,
                    "namespace": self.namespace,
                    "token": token,
                    "count": count,
                },
            )
        for handle in self._files.values():
            handle.close()
        return {kind: self.folder / f"{kind}.csv" for kind in self._files}

    def _row(self, kind: str, row: Mapping[str, Any]) -> None:
        writer = self._writers.get(kind)
        if writer is None:
            writer = csv.writer(self._open(kind), quoting=csv.QUOTE_NONNUMERIC)
            writer.writerow([_header(name, value) for name, value in row.items()])
            self._writers[kind] = writer
        cells = [_cell(value) for value in row.values()]
        self.multiline = self.multiline or any(
            isinstance(c, str) and ("\n" in c or "\r" in c) for c in cells
        )
        writer.writerow(cells)

    def _lines(self, kind: str, header: str, text: str) -> None:
        handle = self._files.get(kind)
        if handle is None:
            handle = self._open(kind)
            handle.write(header)
        handle.write(text)

    def _open(self, kind: str) -> IO[str]:
        handle = (self.folder / f"{kind}.csv").open("w", newline="", encoding="utf-8")
        self._files[kind] = handle
        return handle


def _header(name: str, value: Any) -> str:
    """A column's name with its type, as the importer reads it (IDs carry their own)."""
    if name.startswith(":"):
        return name
    if isinstance(value, bool):
        return f"{name}:boolean"
    if isinstance(value, int):
        return f"{name}:long"
    if isinstance(value, float) or value is None:
        return f"{name}:double"  # the one nullable column, canonical_error, is a number
    if isinstance(value, list):
        return f"{name}:double[]"
    return name


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ARRAY_DELIMITER.join(repr(float(v)) for v in value)
    return value


def check_fresh(data_dir: Path, port: int = 0, password: str | None = None) -> None:
    """Refuse a data directory whose server runs or whose database holds anything (the
    importer writes store files directly, into an empty database only), a ``port`` in use
    and a ``password`` the server would refuse, before anything is prepared or written (a
    server that cannot start would leave a database behind that the next attempt refuses)."""
    checked_password(password)
    if status(data_dir).running:
        raise StoreError(
            "a Neo4j server runs on this data directory",
            where=str(data_dir),
            fix="the bulk path loads a fresh database: give a new --data-dir, or index into "
            "the running server with circuitql index --store neo4j://...",
        )
    if (data_dir / STORE_FILE).exists():
        raise StoreError(
            "this data directory already holds a database",
            where=str(data_dir),
            fix="the bulk path loads a fresh database: give a new --data-dir, or start this "
            "one (circuitql neo4j start) and index into it with circuitql index --store "
            "neo4j://...",
        )
    if port:
        check_port_free(port)


@contextmanager
def csv_folder(data_dir: Path) -> Iterator[Path]:
    """A scratch folder for the CSV files inside the data directory, removed afterwards."""
    folder = data_dir / "bulk-import"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_import(data_dir: Path, files: Mapping[str, Path], multiline: bool = False) -> Path:
    """Neo4j's importer on the CSV files, into the data directory's ``neo4j`` database
    (``multiline``: a text field holds a line break)."""
    java = require_tool("java", "install a Java 17 runtime (e.g. apt-get install openjdk-17-jre)")
    jar = build_launcher()
    classpath = f"{jar.parent / 'lib'}/*{os.pathsep}{jar}"
    nodes = [f"--nodes={k}={files[k]}" for k in ("Model", "Neuron", "TokenStat") if k in files]
    relationships = [f"--relationships={k}={files[k]}" for k in ("HAS", "FEEDS") if k in files]
    command = [
        java,
        "-cp",
        classpath,
        "-Xmx1g",  # the importer keeps its caches off the heap (IMPORT_MEMORY)
        "org.neo4j.cli.AdminTool",
        "database",
        "import",
        "full",
        DATABASE,
        *nodes,
        *relationships,
        f"--array-delimiter={ARRAY_DELIMITER}",
        f"--multiline-fields={str(multiline).lower()}",
        f"--max-off-heap-memory={IMPORT_MEMORY}",
        # In the data directory, not wherever circuitql was run from.
        f"--report-file={data_dir / IMPORT_REPORT}",
        "--verbose=false",
    ]
    log = data_dir / IMPORT_LOG
    with log.open("w") as out:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NEO4J_HOME": str(data_dir)},
            check=False,
        )
    if done.returncode != 0:
        # What the importer left of the database it could not finish: the directory was
        # checked fresh, so this is all the importer's.
        for part in ("databases", "transactions"):
            shutil.rmtree(data_dir / "data" / part / DATABASE, ignore_errors=True)
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise StoreError(
            "Neo4j's importer failed: " + " / ".join(tail),
            where=str(log),
            fix="see the importer's log; the data directory's database was not created",
        )
    return log


def finish(
    data_dir: Path, port: int, password: str | None, logs: list[tuple[str, list[str]]]
) -> ServerStatus:
    """Start the server on the imported database, build the schema (a store connection
    does), and set what CSV cannot carry: each model's canonical log (a list of text), and
    the empty magnitudes of neurons without inputs (an empty array field is no property)."""
    server = start(data_dir, port, password)
    assert server.port is not None
    store = Neo4jStore.from_uri(local_uri(server.port, password))
    try:
        with store.session() as session:
            session.run(
                "MATCH (n:Neuron {namespace: $namespace}) WHERE n.magnitudes IS NULL "
                "CALL (n) { SET n.magnitudes = [] } IN TRANSACTIONS OF 10000 ROWS",
                namespace=store.namespace,
            ).consume()
            for first in range(0, len(logs), LOG_ROWS):
                session.run(
                    "UNWIND $rows AS row "
                    "MATCH (m:Model {namespace: $namespace, name: row[0]}) "
                    "SET m.canonical_log = row[1]",
                    rows=[list(entry) for entry in logs[first : first + LOG_ROWS]],
                    namespace=store.namespace,
                ).consume()
    finally:
        store.close()
    return server

"""The ``circuitql`` command.

Every user error (a bad file, an unknown model, an unreachable store) is a ``CircuitQLError``:
its message goes to stderr and the exit code is 2. A traceback means a bug in circuitql.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitql.analysis.census import Census
from circuitql.analysis.compare import Comparison
from circuitql.api import (
    Answer,
    Database,
    IndexReport,
    basis_of,
    connect,
    degeneracy_of,
    library_circuit,
    library_circuits,
    neo4j_bulk_load,
)
from circuitql.domain import Domain
from circuitql.engine.results import Match, Results
from circuitql.errors import CircuitQLError, shown
from circuitql.indexer.canonical import Config as CanonicalConfig
from circuitql.indexer.files import MODEL_SUFFIXES, discover, printable_path
from circuitql.indexer.pipeline import IndexConfig
from circuitql.processes import return_freed_arrays
from circuitql.records import ModelInfo

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_USER_ERROR = 2
PROGRESS_THRESHOLD = 5  # a progress bar only when there is enough work to watch


def main(argv: Sequence[str] | None = None) -> int:
    """The ``circuitql`` command: its exit status, 2 for a user's error, told in one message
    with no traceback."""
    return_freed_arrays()
    parser = _parser()
    # Bytes of an argument that are not UTF-8 (a Latin-1 file name typed in a shell) arrive
    # as lone surrogates; stored names keep such bytes escaped, and so do arguments.
    raw = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(_negative_values([printable_path(arg) for arg in raw]))
    try:
        return int(args.run(args))
    except CircuitQLError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `circuitql library | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _negative_values(argv: list[str]) -> list[str]:
    """``--domain -2:2`` as ``--domain=-2:2``: argparse takes a value that starts with a dash
    and is not a plain number for an option, and a domain's first end is often negative."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--domain" and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"--domain={arg}"
        else:
            out.append(arg)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circuitql",
        description="Find circuits inside neural networks: index a model zoo, then query it.",
    )
    parser.set_defaults(run=_help_of(parser))
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(run=run)
        return p

    _add_indexing(command)
    _add_querying(command)
    _add_analyses(command)
    _add_zoo(command)
    return parser


# Adds one subcommand: its name, the function that runs it, and its help line.
_Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _add_indexing(command: _Command) -> None:
    """index, check, doctor, models, tokens: putting models in and reading them back."""
    p = _with_store(
        command(
            "index",
            _index,
            "index model files (folders are searched "
            "recursively for " + " ".join(MODEL_SUFFIXES) + ")",
        )
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--name",
        help="model name (one file only; default: the path below the "
        "folder given, without its extension)",
    )
    _quiet(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the models indexed, unchanged and failed",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="a file whose network differs from the one stored under its name "
        "takes its place (without it, that is refused)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for loading and canonicalizing (default: one per "
        "idle core, the cores less the load average, when there are many files)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="load and canonicalize on a Dask cluster: its scheduler's address "
        "(tcp://host:8786; every worker must see the files at their absolute "
        "paths), or 'local' for a LocalCluster of --jobs workers here; the store is "
        "written from this process (see docs/scale-out.md)",
    )
    p.add_argument(
        "--domain",
        metavar="LO:HI[,LO:HI...]",
        default=None,
        help="the box the inputs live in: one LO:HI for every input, or one per "
        "input (default: the model's own from its JSON config, else unbounded)",
    )
    p.add_argument(
        "--max-canonical-error",
        type=_bound,
        default=CanonicalConfig.max_error,
        metavar="E",
        help="the most the canonical network's outputs may differ "
        "from the model's, relative to their reach (default: %(default)g); over "
        "it, pruning is tightened",
    )

    p = command(
        "check",
        _check,
        "load a model file and compare its own function, the graph "
        "circuitql reads and the canonical graph it would index (writes nothing)",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument(
        "--domain",
        metavar="LO:HI[,LO:HI...]",
        default=None,
        help="the box the inputs live in (default: the file's own, else [-1, 1])",
    )
    p.add_argument(
        "--probes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="random inputs to compare on (default 10,000)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = _with_store(
        command(
            "doctor",
            _doctor,
            "versions, the optional extras, the store and "
            "whether it opens, and every resource limit (changes nothing)",
        )
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = _with_store(command("models", _models, "list the indexed models"))
    _as_table(p)

    p = _with_store(
        command(
            "tokens",
            _tokens,
            "print a model's network string: its layers' words of neuron tokens, in order",
        )
    )
    p.add_argument("model")
    p.add_argument("--by-layer", action="store_true", help="one layer per line, numbered")
    p.add_argument("--json", action="store_true", help="print JSON: the string and its layers")


def _add_querying(command: _Command) -> None:
    """query, library, compare, census, delete, show: asking the store."""
    p = _with_store(
        command(
            "query",
            _query,
            "run a circuit query (MATCH, COMPARE, COUNT MODELS, "
            "SHOW CIRCUITS; EXPLAIN in front shows the plan)",
        )
    )
    p.add_argument("text", metavar="QUERY", help='e.g. "MATCH abs" or just abs')
    _as_table(p, "print one JSON object")
    _quiet(p)
    p.add_argument("--limit", type=int, default=None, help="stop after N matches")
    p.add_argument(
        "--timeout",
        type=_bound,
        default=None,
        metavar="SECONDS",
        help="stop the search after this long, keeping the matches found "
        "(default: the query's TIMEOUT, else 120)",
    )

    p = command("library", _library, "list the built-in circuits, or print one's definition")
    p.add_argument("name", nargs="?", help="a circuit to print in full")
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON: each circuit's documentation (with a name: its text too)",
    )

    p = _with_store(command("compare", _compare, "what two indexed networks share"))
    p.add_argument("model_a")
    p.add_argument("model_b")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--no-circuits",
        action="store_true",
        help="skip the (slower) search for library circuits in both",
    )
    p.add_argument(
        "--timeout",
        type=_bound,
        default=None,
        metavar="SECONDS",
        help="the library circuit searches stop after this long in all, and the circuits "
        "they did not finish are listed (default 120)",
    )
    _quiet(p)

    p = _with_store(
        command("census", _census, "per group of models, how many contain a circuit, and which")
    )
    p.add_argument(
        "circuit",
        help="what MATCH takes: a library circuit (min), an expression "
        '("min >> negation"), or a MATCH query with CIRCUIT definitions',
    )
    p.add_argument(
        "--by",
        required=True,
        metavar="KEY",
        help="model property to group by, e.g. meta.task or meta.width",
    )
    p.add_argument("--models", metavar="GLOB", help="only models whose name matches")
    p.add_argument(
        "--exact",
        action="store_true",
        help="count only exact matches (as MATCH ... EXACT finds them)",
    )
    p.add_argument(
        "--timeout",
        type=_bound,
        default=None,
        metavar="SECONDS",
        help="give up (with an error) after this long (default 120)",
    )
    _as_table(p)
    p.add_argument(
        "--per-model",
        action="store_true",
        help="a row per model (its group, whether it holds the circuit, its best "
        "match's error, exactness and faithfulness) instead of one per group; "
        "--json has both",
    )
    _quiet(p)
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw the census as a bar chart: FILE.svg, or FILE.png (the render extra)",
    )

    p = _with_store(command("delete", _delete, "remove a model from the store"))
    p.add_argument("model")

    p = _with_store(
        command("show", _show, "draw a model, or a match of a query, as an SVG or PNG picture")
    )
    p.add_argument(
        "target",
        metavar="TARGET",
        help='a model name (drawn whole) or a query, e.g. "MATCH abs" or abs',
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE",
        help="the picture to write: FILE.svg or FILE.png",
    )
    p.add_argument(
        "--match",
        type=_positive_int,
        default=1,
        metavar="N",
        help="draw the query's N-th match (default: the first)",
    )
    p.add_argument(
        "--model-context",
        action="store_true",
        help="draw the whole model the match is in, with the match highlighted",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON: the file written, the model, and the match drawn",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        dest="read_as",
        action="store_const",
        const="model",
        help="TARGET is a model name",
    )
    which.add_argument(
        "--query",
        dest="read_as",
        action="store_const",
        const="query",
        help="TARGET is a query or a circuit",
    )


def _add_analyses(command: _Command) -> None:
    """degeneracy, basis, neo4j: analyses of one model, and the server."""
    p = _on_model(
        _with_store(
            command(
                "degeneracy",
                _degeneracy,
                "per layer: units removed as "
                "dead, unused or duplicate, weights pruned, activation "
                "rank and identically firing ReLUs on probe inputs",
            )
        )
    )
    p.add_argument(
        "--probes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="probe inputs, half Gaussian and half uniform (default 1024)",
    )

    p = _on_model(
        _with_store(
            command(
                "basis",
                _basis,
                "rotate each hidden layer's basis so "
                "the layer-to-layer Jacobians are sparse over probe "
                "inputs",
            )
        )
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write heatmaps of each Jacobian before and after (SVG) into DIR",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        metavar="N",
        help="at most N optimiser steps per Jacobian (default 1000; the search "
        "stops earlier once it converges)",
    )
    p.add_argument(
        "--probes", type=_positive_int, default=None, metavar="N", help="probe inputs (default 512)"
    )
    _quiet(p)

    p = command(
        "neo4j",
        _neo4j,
        "start, stop or check a local Neo4j server for the Neo4j "
        "store (no Docker needed: Java 17 and Maven build a small launcher once), or load a "
        "zoo into a fresh one with Neo4j's offline importer (import PATH...)",
    )
    from circuitql.store.neo4j_server import add_arguments

    add_arguments(p, actions=("import",))
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="import: model files or folders to load into a fresh database in --data-dir",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="import: worker processes preparing models (default: one per idle core)",
    )
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="import: prepare the models on a Dask cluster (an address, or 'local')",
    )
    _quiet(p)


def _add_zoo(command: _Command) -> None:
    """zoo demo, build, reference, planted: writing model zoos."""
    zoo = command("zoo", lambda _args: 0, "build model zoos")
    zoo.set_defaults(run=_help_of(zoo))
    zoo_sub = zoo.add_subparsers(title="zoo commands", metavar="COMMAND")
    demo = zoo_sub.add_parser(
        "demo",
        help="write the small demo zoo (known circuits and random MLPs, in every file format)",
    )
    demo.add_argument("directory", type=Path)
    demo.set_defaults(run=_zoo_demo)
    build = zoo_sub.add_parser(
        "build",
        help="train small MLPs on the circuits literature's "
        "tasks (identity ... xor) over widths, depths, "
        "seeds, optimizers and initialisations",
    )
    build.add_argument("directory", type=Path)
    build.add_argument(
        "--size",
        default="default",
        help="small, default (minutes on 2 cores), large, or an integer k: "
        "k times the default seeds",
    )
    build.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    build.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: one per core)",
    )
    _quiet(build)
    build.set_defaults(run=_zoo_build)
    reference = zoo_sub.add_parser(
        "reference", help="write the hand-wired network of every library circuit"
    )
    reference.add_argument("directory", type=Path)
    reference.set_defaults(run=_zoo_reference)
    planted = zoo_sub.add_parser(
        "planted",
        help="write networks with library circuits planted at known places, "
        "decoys, and their ground_truth.json",
    )
    planted.add_argument("directory", type=Path)
    planted.add_argument(
        "--size",
        type=int,
        default=None,
        metavar="N",
        help="N dense 8-64-64-64-4 hosts, one in ten planted (default: each "
        "plant and decoy once, in small hosts)",
    )
    planted.add_argument("--seed", type=int, default=0)
    planted.add_argument(
        "--format",
        choices=("safetensors", "onnx", "pt"),
        default="safetensors",
        help="file format (default safetensors)",
    )
    _quiet(planted)
    planted.set_defaults(run=_zoo_planted)


def _with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--store",
        metavar="URI",
        default=None,
        help="store to use: a path, sqlite:///path or neo4j://user:pw@host:7687 "
        "(default: $CIRCUITQL_STORE, else ./circuitql.db)",
    )
    return p


def _as_table(p: argparse.ArgumentParser, json_help: str = "print JSON") -> None:
    """--json, or --csv: a table's rows as CSV, nested values as JSON."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help=json_help)
    group.add_argument(
        "--csv", action="store_true", help="print the table as CSV (nested values as JSON text)"
    )


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (there is none with --json or --csv, or when "
        "stderr is not a terminal)",
    )


def _on_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A command about one model, given as a file or as an indexed name."""
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a model file, or the name of a model indexed from a file",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command without a subcommand prints its help."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def _open(args: argparse.Namespace) -> Database:
    """The store of a command that reads it (or deletes from it): never a new, empty one."""
    return connect(args.store, create=False)


def _index(args: argparse.Namespace) -> int:
    files = discover(args.paths)
    if not files:
        raise CircuitQLError(
            f"no model files under {', '.join(args.paths)}",
            fix=f"give {', '.join(MODEL_SUFFIXES)} files, or folders holding them",
        )
    start = time.perf_counter()
    config = IndexConfig(
        CanonicalConfig(
            domain=None if args.domain is None else Domain.parse(args.domain),
            max_error=args.max_canonical_error,
        )
    )
    with (
        connect(args.store, config) as db,
        _progress(len(files), args.quiet or args.json or len(files) < PROGRESS_THRESHOLD) as step,
    ):
        report = db.index_paths(
            args.paths,
            args.name,
            None if step is None else lambda _path: step(1),
            files=files,
            jobs=args.jobs,
            replace=args.replace,
            dask=args.dask,
        )
        seconds = time.perf_counter() - start
        if args.json:
            print(
                _json(
                    {
                        "store": db.uri,
                        "seconds": round(seconds, 3),
                        "indexed": [_model_json(m) for m in report.indexed],
                        "unchanged": [_model_json(m) for m in report.unchanged],
                        "failed": [
                            {"path": printable_path(str(path)), "error": str(err)}
                            for path, err in report.failed
                        ],
                        "tightened": [
                            {"name": name, "log": list(steps)} for name, steps in report.tightened
                        ],
                    }
                )
            )
        else:
            _print_index_summary(report, db.uri, seconds)
    return EXIT_USER_ERROR if report.failed else 0


@contextmanager
def _progress(
    total: int | None, quiet: bool, unit: str = "model"
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for ``total`` steps (unknown: None), as the function that
    advances it by a number of steps; None when ``quiet``."""
    with _bar(total, quiet, unit) as bar:
        yield None if bar is None else bar.update


@contextmanager
def _running_total(quiet: bool, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar whose end moves: the function it yields hears (done, total so far),
    as a search reports candidates examined against candidates found; None when ``quiet``."""
    with _bar(None, quiet, unit) as bar:
        if bar is None:
            yield None
            return

        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield show


@contextmanager
def _bar(total: int | None, quiet: bool, unit: str) -> Iterator[tqdm[Any] | None]:
    """tqdm on stderr, only when a person watches it: not with ``quiet`` (--quiet, --json,
    --csv) and not when stderr is a file or a pipe."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, file=sys.stderr, leave=False) as bar:
        yield bar


def _print_index_summary(report: IndexReport, uri: str, seconds: float) -> None:
    for name, steps in report.tightened:
        print(
            f"note: {name}: pruning tightened to keep its canonical error under the bound "
            f"({'; '.join(steps)})",
            file=sys.stderr,
        )
    for path, err in report.failed:
        # Most errors say which file they are about; the others get its path in front.
        named = err.where is not None and printable_path(str(path)) in err.where
        print(
            f"error: {err}" if named else f"error: {printable_path(str(path))}: {err}",
            file=sys.stderr,
        )
    neurons = sum(m.n_neurons for m in report.indexed)
    print(
        f"indexed {len(report.indexed)} model(s) ({neurons} canonical neurons), "
        f"{len(report.unchanged)} already indexed, {len(report.failed)} failed "
        f"in {seconds:.1f}s into {uri}"
    )
    if len(report.indexed) + len(report.unchanged) == 1:
        info = (report.indexed or report.unchanged)[0]
        print(f"{info.name}: {_shortened(info.network_string, info.name)}")


# Characters of a network string the index summary shows: a few layers of a small network,
# not 100 KB of a wide one's tokens flooding the terminal.
SHOWN_TOKENS = 400


def _shortened(network_string: str, name: str) -> str:
    if len(network_string) <= SHOWN_TOKENS:
        return network_string
    cut = network_string[:SHOWN_TOKENS].rsplit(" ", 1)[0]
    return f"{cut} ... (`circuitql tokens {name} --by-layer` prints it all)"


def _doctor(args: argparse.Namespace) -> int:
    from circuitql.doctor import diagnose

    report = diagnose(args.store)
    print(_json(report.to_json()) if args.json else report.text())
    return 0


def _check(args: argparse.Namespace) -> int:
    from circuitql.indexer.check import PROBES, check_file

    report = check_file(
        args.file,
        CanonicalConfig(domain=None if args.domain is None else Domain.parse(args.domain)),
        args.probes or PROBES,
    )
    print(_json(report.to_json()) if args.json else report.text())
    return 0


def _models(args: argparse.Namespace) -> int:
    with _open(args) as db:
        models = db.models()
    if args.json:
        print(_json([_model_json(m) for m in models]))
        return 0
    if args.csv:
        _print_csv([_model_json(m) for m in models])
        return 0
    if not models:
        print("no models indexed yet: run `circuitql index PATH`")
        return 0
    rows = [("name", "in", "out", "neurons", "edges", "domain", "canon. error", "source")] + [
        (
            m.name,
            str(m.n_inputs),
            str(m.n_outputs),
            str(m.n_neurons),
            str(m.n_edges),
            "-" if m.domain is None else m.domain.text(),
            "-" if m.canonical_error is None else f"{m.canonical_error:.1e}",
            m.source,
        )
        for m in models
    ]
    cells = [[shown(cell) for cell in row] for row in rows]  # names and paths from files
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]) - 1)]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _print_csv(rows: list[dict[str, Any]]) -> None:
    """Rows as CSV on stdout: a column per key (in the order first seen), nested values as
    JSON text, None as an empty cell."""
    import csv

    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                ""
                if row.get(c) is None
                else json.dumps(row[c])
                if isinstance(row[c], dict | list | tuple)
                else row[c]
                for c in columns
            ]
        )


def _model_json(m: ModelInfo) -> dict[str, Any]:
    """A stored model as ``models --json`` and ``index --json`` print it."""
    return {
        "name": m.name,
        "source": m.source,
        "inputs": m.n_inputs,
        "outputs": m.n_outputs,
        "neurons": m.n_neurons,
        "edges": m.n_edges,
        "hash": m.content_hash,
        "meta": dict(m.meta),
        "normal_form": dict(m.normal_form),
        "canonical_error": m.canonical_error,
    }


def _tokens(args: argparse.Namespace) -> int:
    with _open(args) as db:
        layers = db.token_layers(args.model)
    text = " ".join(layers)  # as the indexer joined them
    if args.json:
        print(_json({"model": args.model, "network_string": text, "layers": layers}))
    elif args.by_layer:
        for i, word in enumerate(layers):
            print(f"L{i} {word}")
    else:
        print(text)
    return 0


def _query(args: argparse.Namespace) -> int:
    from circuitql.engine.explain import PartialAnswer

    quiet = args.quiet or args.json or args.csv
    with _open(args) as db, _running_total(quiet, "candidate") as heard, warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialAnswer)  # said below, in the answer
        answer = db.run(
            args.text, limit=args.limit, timeout=args.timeout, on_progress=heard, rows=args.csv
        )
        found = answer.result
        if isinstance(found, Results):
            for match in found:  # kept in found.read
                if not (args.json or args.csv):
                    _write(_match_line(match), over_bar=heard is not None)
            # A match's faithfulness is measured on first use, from the store: while it
            # is open, and only when printed.
            records = (
                found.to_records()
                if args.csv
                else [m.to_json() for m in found.read]
                if args.json
                else []
            )
    explained = answer.query.explain
    if isinstance(found, Results):
        _print_matches(args, answer, records)
    elif isinstance(found, Census):
        if args.csv:
            _print_csv(found.to_records())
        elif args.json:
            print(_json({**found.to_json(), "explain": _explain_json(answer)}))
        else:
            print(found.text())
    elif isinstance(found, Comparison):
        explain = {"explain": answer.plan} if explained else {}
        print(_json({**found.to_json(), **explain}) if args.json else found.text())
    elif args.json:  # SHOW CIRCUITS: the list, or the list and its plan
        print(_json({"circuits": found, "explain": answer.plan} if explained else found))
    else:
        _print_library(found)
    if explained and not (args.json or args.csv):
        print(answer.plan if answer.explain is None else answer.explain.text())
    return 0


def _print_matches(args: argparse.Namespace, answer: Answer, records: list[dict[str, Any]]) -> None:
    assert answer.explain is not None and isinstance(answer.result, Results)
    if answer.explain.partial is not None:
        print(
            f"partial answer: {answer.explain.partial}; give it longer with --timeout SECONDS "
            "or TIMEOUT in the query",
            file=sys.stderr,
        )
    if args.json:
        print(_json({"query": args.text, "explain": _explain_json(answer), "matches": records}))
    elif args.csv:
        _print_csv(records)
    else:
        print(f"{len(answer.result.read)} match(es)")


def _explain_json(answer: Answer) -> dict[str, Any]:
    assert answer.explain is not None
    return answer.explain.to_json()


def _json(document: Any) -> str:
    """What --json prints: strict JSON, so every parser reads it. JSON has no infinity or
    NaN; a number that is not finite (an error that overflowed) is written as null."""
    return json.dumps(_finite(document), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write(line: str, over_bar: bool) -> None:
    """Print ``line``; over a progress bar, through tqdm, so the bar is redrawn below it."""
    if not over_bar:
        print(line)
        return
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)


def _match_line(match: Match) -> str:
    bindings = ", ".join(f"{k}={v}" for k, v in match.bindings.items())
    extra = ""
    if match.params:
        extra += " " + ", ".join(f"{k}={v:.4g}" for k, v in match.params.items())
    if abs(match.scale - 1.0) > 1e-9:
        extra += f" scale={match.scale:.4g}"
    if not match.exact:
        extra += f" approximate faithfulness={match.faithfulness:.2f}"
    return f"{match.model}  {match.circuit}  error={match.error:.2e}{extra}  {bindings}"


def _library(args: argparse.Namespace) -> int:
    if args.name:
        circuit = library_circuit(args.name)
        document = {"name": circuit.name, "doc": circuit.doc, "text": circuit.text}
        print(_json(document) if args.json else circuit.text)
    elif args.json:
        print(_json(library_circuits()))
    else:
        _print_library(library_circuits())
    return 0


def _print_library(docs: dict[str, str]) -> None:
    """Each circuit's name and the first line of its docstring, in columns."""
    width = max((len(n) for n in docs), default=0)
    for name in docs:
        first = docs[name].strip().splitlines()[0] if docs[name].strip() else ""
        print(f"{name:<{width}}  {first}")


def _compare(args: argparse.Namespace) -> int:
    from circuitql.language.library import PUBLIC_NAMES

    quiet = args.quiet or args.json or args.no_circuits
    with _open(args) as db, _progress(len(PUBLIC_NAMES), quiet, "circuit") as step:
        result = db.compare(
            args.model_a,
            args.model_b,
            circuits=not args.no_circuits,
            on_circuit=None if step is None else lambda _name: step(1),
            timeout=args.timeout,
        )
    print(_json(result.to_json()) if args.json else result.text())
    return 0


def _census(args: argparse.Namespace) -> int:
    with (
        _open(args) as db,
        _running_total(args.quiet or args.json or args.csv, "candidate") as heard,
    ):
        counted = db.census(
            args.circuit,
            args.by,
            models=args.models,
            exact=args.exact,
            timeout=args.timeout,
            on_progress=heard,
        )
    if args.csv:
        _print_csv(counted.model_records() if args.per_model else counted.to_records())
    elif args.json:
        print(_json(counted.to_json()))
    else:
        print(counted.model_text() if args.per_model else counted.text())
    if args.plot:
        print(f"wrote {counted.plot(args.plot)}", file=sys.stderr)
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _open(args) as db:
        if not db.delete(args.model):
            db.model(args.model)  # raises the "no such model, did you mean" error
    print(f"deleted {args.model}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from circuitql.picture import check_format

    check_format(args.out)
    with _open(args) as db:
        drawn = db.picture(
            args.target, match=args.match, read_as=args.read_as, whole=args.model_context
        )
        match = None if drawn.match is None else drawn.match.to_json()  # while the store is open
    drawn.picture.save(args.out)
    document = {"out": str(args.out), "model": drawn.model, "match": match}
    print(_json(document) if args.json else f"wrote {args.out}: {drawn.title}")
    return 0


def _bound(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is not a finite number > 0")
    return value


def _writable_folder(folder: Path) -> Path:
    """``folder``, created if needed, once a file can be written in it: a command that
    writes there is refused before its work, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CircuitQLError(
            f"cannot write into this folder: {exc.strerror or exc}",
            where=str(folder),
            fix="choose a folder you can write to",
        ) from None
    return folder


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _degeneracy(args: argparse.Namespace) -> int:
    report = degeneracy_of(args.model, args.store, probes=args.probes)
    print(_json(report.to_json()) if args.json else report.text())
    return 0


def _basis(args: argparse.Namespace) -> int:
    if args.out:
        _writable_folder(args.out)  # before the search, not after it
    with _running_total(args.quiet or args.json, "Jacobian") as heard:
        report = basis_of(
            args.model, args.store, probes=args.probes, steps=args.steps, on_progress=heard
        )
    heatmaps = report.write_heatmaps(args.out) if args.out else []
    if args.json:
        print(_json({**report.to_json(), "heatmaps": [str(p) for p in heatmaps]}))
        return 0
    print(report.text())
    for path in heatmaps:
        print(f"wrote {path}")
    if not args.out:
        print("(heatmaps of the Jacobians before and after: add --out DIR)")
    return 0


def _neo4j(args: argparse.Namespace) -> int:
    from circuitql.store.neo4j_server import run

    if args.action != "import":
        if args.paths:
            raise CircuitQLError(
                f"neo4j {args.action} takes no paths", fix="give paths to neo4j import only"
            )
        return run(args)
    if not args.paths:
        raise CircuitQLError(
            "neo4j import needs the model files or folders to load",
            fix="circuitql neo4j import ZOO_FOLDER [--data-dir DIR]",
        )
    files = discover(args.paths)
    start = time.perf_counter()
    with _progress(len(files), args.quiet or len(files) < PROGRESS_THRESHOLD) as step:
        loaded = neo4j_bulk_load(
            args.paths,
            args.data_dir,
            port=args.port,
            password=args.password,
            jobs=args.jobs,
            on_file=None if step is None else lambda _path: step(1),
            dask=args.dask,
            files=files,
        )
    server = loaded.server
    _print_index_summary(loaded.report, server.uri or "", time.perf_counter() - start)
    print(
        f"Neo4j's importer and the schema took {loaded.import_seconds:.1f}s; "
        f"server running (pid {server.pid}); data {server.data_dir}"
    )
    return run(argparse.Namespace(**{**vars(args), "action": "status"}))


def _zoo_demo(args: argparse.Namespace) -> int:
    from circuitql.zoo.demo import build_demo_zoo

    files = build_demo_zoo(_writable_folder(args.directory))
    print(f"wrote {len(files)} models under {args.directory}")
    return 0


def _zoo_build(args: argparse.Namespace) -> int:
    from circuitql.zoo.build import build_zoo, plan_for

    plan = plan_for(args.size, args.seed)
    _writable_folder(args.directory)
    with _progress(len(plan), args.quiet) as step:
        report = build_zoo(args.directory, plan, args.jobs, step)
    for path in report.diverged:
        print(f"diverged, not saved: {path}", file=sys.stderr)
    print(
        f"wrote {len(report.written)} models under {args.directory} in "
        f"{report.seconds:.0f}s ({len(report.diverged)} diverged)"
    )
    return 0


def _zoo_reference(args: argparse.Namespace) -> int:
    from circuitql.zoo.build import build_references

    files = build_references(_writable_folder(args.directory))
    print(f"wrote {len(files)} reference networks under {args.directory}")
    return 0


def _zoo_planted(args: argparse.Namespace) -> int:
    from circuitql.zoo.plant import write_zoo

    if args.size is not None and args.size < 1:
        raise CircuitQLError(
            f"--size must be at least 1, not {args.size}",
            fix="give the number of models, e.g. --size 1000",
        )
    _writable_folder(args.directory)
    with _progress(args.size, args.quiet) as step:
        truth = write_zoo(
            args.directory,
            args.seed,
            f".{args.format}",
            args.size,
            on_model=None if step is None else lambda _name: step(1),
        )
    models = len({e.model for e in truth.expected})
    print(
        f"wrote {args.size or models} models under {args.directory} ({models} with a planted "
        f"circuit or decoy; {len(truth.present())} planted instances); ground truth in "
        f"{args.directory / 'ground_truth.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

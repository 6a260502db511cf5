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

from circuitql.api import Database, IndexReport, connect, original_network
from circuitql.domain import Domain
from circuitql.engine.results import Match
from circuitql.errors import CircuitQLError, shown
from circuitql.indexer.canonical import Config as CanonicalConfig
from circuitql.indexer.files import MODEL_SUFFIXES, discover, printable_path
from circuitql.indexer.pipeline import IndexConfig
from circuitql.records import ModelInfo

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_USER_ERROR = 2
PROGRESS_THRESHOLD = 5  # a progress bar only when there is enough work to watch


def main(argv: Sequence[str] | None = None) -> int:
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

    def with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--store",
            metavar="URI",
            default=None,
            help="store to use: a path, sqlite:///path or neo4j://user:pw@host:7687 "
            "(default: $CIRCUITQL_STORE, else ./circuitql.db)",
        )
        return p

    def as_table(p: argparse.ArgumentParser, json_help: str = "print JSON") -> None:
        """--json, or --csv: a table's rows as CSV, nested values as JSON."""
        group = p.add_mutually_exclusive_group()
        group.add_argument("--json", action="store_true", help=json_help)
        group.add_argument(
            "--csv", action="store_true", help="print the table as CSV (nested values as JSON text)"
        )

    def quiet(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--quiet",
            action="store_true",
            help="no progress bar (there is none with --json or --csv, or when "
            "stderr is not a terminal)",
        )

    def on_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """A command about one model, given as a file or as an indexed name."""
        p.add_argument(
            "model",
            metavar="MODEL",
            help="a model file, or the name of a model indexed from a file",
        )
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = with_store(
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
    quiet(p)
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

    p = with_store(
        command(
            "doctor",
            _doctor,
            "versions, the optional extras, the store and "
            "whether it opens, and every resource limit (changes nothing)",
        )
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = with_store(command("models", _models, "list the indexed models"))
    as_table(p)

    p = with_store(
        command(
            "tokens",
            _tokens,
            "print a model's network string: its layers' words of neuron tokens, in order",
        )
    )
    p.add_argument("model")
    p.add_argument("--by-layer", action="store_true", help="one layer per line, numbered")
    p.add_argument("--json", action="store_true", help="print JSON: the string and its layers")

    p = with_store(
        command(
            "query",
            _query,
            "run a circuit query (MATCH, COMPARE, COUNT MODELS, "
            "SHOW CIRCUITS; EXPLAIN in front shows the plan)",
        )
    )
    p.add_argument("text", metavar="QUERY", help='e.g. "MATCH abs" or just abs')
    as_table(p, "print one JSON object")
    quiet(p)
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

    p = with_store(command("compare", _compare, "what two indexed networks share"))
    p.add_argument("model_a")
    p.add_argument("model_b")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--no-circuits",
        action="store_true",
        help="skip the (slower) search for library circuits in both",
    )
    quiet(p)

    p = with_store(
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
    as_table(p)
    p.add_argument(
        "--per-model",
        action="store_true",
        help="a row per model (its group, whether it holds the circuit, its best "
        "match's error, exactness and faithfulness) instead of one per group; "
        "--json has both",
    )
    quiet(p)
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw the census as a bar chart: FILE.svg, or FILE.png (the render extra)",
    )

    p = with_store(command("delete", _delete, "remove a model from the store"))
    p.add_argument("model")

    p = with_store(
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
        type=int,
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

    p = on_model(
        with_store(
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

    p = on_model(
        with_store(
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
    quiet(p)

    p = command(
        "neo4j",
        _neo4j,
        "start, stop or check a local Neo4j server for the Neo4j "
        "store (no Docker needed: Java 17 and Maven build a small launcher once)",
    )
    from circuitql.store.neo4j_server import add_arguments

    add_arguments(p)

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
    quiet(build)
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
    quiet(planted)
    planted.set_defaults(run=_zoo_planted)
    return parser


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
        print(f"{info.name}: {info.network_string}")


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
        text = db.tokens(args.model)
    if args.json:
        from circuitql.grammar.token_parser import split_layers

        print(_json({"model": args.model, "network_string": text, "layers": split_layers(text)}))
        return 0
    if not args.by_layer:
        print(text)
        return 0
    from circuitql.grammar.token_parser import split_layers

    for i, word in enumerate(split_layers(text)):
        print(f"L{i} {word}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from circuitql.engine.explain import Explain, PartialAnswer
    from circuitql.language.compile import CensusQuery, CompareQuery, MatchQuery, ShowQuery

    with _open(args) as db:
        compiled = db.execute(args.text)
        if args.csv and isinstance(compiled, ShowQuery | CompareQuery):
            raise CircuitQLError(
                "--csv prints the rows of MATCH (one per match) and of COUNT "
                "MODELS (one per group); SHOW and COMPARE have none",
                fix="use --json for SHOW and COMPARE",
            )
        if isinstance(compiled, ShowQuery):
            plan = (
                "plan: the library's circuit names matched against "
                f"{compiled.pattern or '*'!r}; nothing is read from the store"
            )
            if compiled.explain and args.json:
                print(_json({"circuits": _library_docs(compiled.pattern), "explain": plan}))
                return 0
            code = _print_library(compiled.pattern, args.json)
            if compiled.explain:
                print(plan)
            return code
        if isinstance(compiled, CompareQuery):
            from circuitql.analysis.compare import plan_text

            result = db.compare(compiled.model_a, compiled.model_b, tolerance=compiled.tolerance)
            if args.json:
                explained = {"explain": plan_text()} if compiled.explain else {}
                print(_json({**result.to_json(), **explained}))
                return 0
            print(result.text())
            if compiled.explain:
                print(plan_text())
            return 0
        quiet = args.quiet or args.json or args.csv
        if isinstance(compiled, CensusQuery):
            explain = Explain()
            with _running_total(quiet, "candidate") as heard:
                counted = db.census(
                    compiled, timeout=args.timeout, explain=explain, on_progress=heard
                )
            if args.csv:
                _print_csv(counted.to_records())
            elif args.json:
                print(_json({**counted.to_json(), "explain": explain.to_json()}))
            else:
                print(counted.text())
                if compiled.explain:
                    print(explain.text())
            return 0
        assert isinstance(compiled, MatchQuery)
        explain = Explain()
        with warnings.catch_warnings(), _running_total(quiet, "candidate") as heard:
            warnings.simplefilter("ignore", PartialAnswer)  # said below, in the answer
            results = db.query(
                compiled, limit=args.limit, explain=explain, timeout=args.timeout, on_progress=heard
            )
            for match in results:  # kept in results.read
                if not (args.json or args.csv):
                    _write(_match_line(match), over_bar=heard is not None)
        # A match's faithfulness is measured on first use, from the store: while it is open.
        records = (
            results.to_records()
            if args.csv
            else [m.to_json() for m in results.read]
            if args.json
            else []
        )
    if explain.partial is not None:
        print(
            f"partial answer: {explain.partial}; give it longer with --timeout SECONDS or "
            "TIMEOUT in the query",
            file=sys.stderr,
        )
    if args.json:
        print(_json({"query": args.text, "explain": explain.to_json(), "matches": records}))
        return 0
    if args.csv:
        _print_csv(records)
        return 0
    print(f"{len(results.read)} match(es)")
    if compiled.explain:
        print(explain.text())
    return 0


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
    from circuitql.language.library import builtin_library

    if args.name:
        library = builtin_library()
        if args.name not in library.names:
            from difflib import get_close_matches

            close = get_close_matches(args.name, library.names, n=3)
            raise CircuitQLError(
                f"no library circuit named {args.name!r}",
                fix=f"did you mean {', '.join(close)}?"
                if close
                else "run `circuitql library` for the list",
            )
        if args.json:
            print(
                _json(
                    {
                        "name": args.name,
                        "doc": library.definition(args.name).doc or "",
                        "text": library.text(args.name),
                    }
                )
            )
        else:
            print(library.text(args.name))
        return 0
    return _print_library(None, args.json)


def _library_docs(glob: str | None) -> dict[str, str]:
    """The library circuits whose names match ``glob``, in order, each with its docstring."""
    from circuitql.language.library import builtin_library

    library = builtin_library()
    return {n: library.definition(n).doc or "" for n in library.matching(glob)}


def _print_library(glob: str | None, as_json: bool) -> int:
    docs = _library_docs(glob)
    if as_json:
        print(_json(docs))
        return 0
    width = max((len(n) for n in docs), default=0)
    for name in docs:
        first = docs[name].strip().splitlines()[0] if docs[name].strip() else ""
        print(f"{name:<{width}}  {first}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from circuitql.language.library import PUBLIC_NAMES

    quiet = args.quiet or args.json or args.no_circuits
    with _open(args) as db, _progress(len(PUBLIC_NAMES), quiet, "circuit") as step:
        result = db.compare(
            args.model_a,
            args.model_b,
            circuits=not args.no_circuits,
            on_circuit=None if step is None else lambda _name: step(1),
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
    from circuitql.render import match_title

    check_format(args.out)
    if args.match < 1:
        raise CircuitQLError(
            f"--match {args.match}: matches are counted from 1",
            fix="give --match 1 for the first match",
        )
    with _open(args) as db:
        drawn: dict[str, Any] = {"out": str(args.out), "model": args.target, "match": None}
        if _shows_model(db, args.target, args.read_as):
            picture, what = db.draw(args.target), f"model {args.target}"
        else:
            match = _nth_match(db, args.target, args.match)
            picture = match.draw(db if args.model_context else None)
            what = match_title(match)
            drawn.update(model=match.model, match=match.to_json())  # while the store is open
    picture.save(args.out)
    print(_json(drawn) if args.json else f"wrote {args.out}: {what}")
    return 0


def _shows_model(db: Database, target: str, read_as: str | None) -> bool:
    """Whether ``show TARGET`` draws a model; a name that is both a model and a library
    circuit (a model named abs) is asked about rather than guessed."""
    if read_as is not None:
        if read_as == "model":
            db.model(target)  # no such model: the error says so, with close names
        return read_as == "model"
    if not db.has_model(target):
        return False
    from circuitql.language.library import builtin_library

    if target in builtin_library().names:
        raise CircuitQLError(
            f"{target!r} is both a model in {db.uri} and a library circuit",
            fix=f"say which: `show {target} --model ...` draws the model, "
            f"`show {target} --query ...` a match of the circuit",
        )
    return True


def _nth_match(db: Database, target: str, n: int) -> Match:
    """The n-th match of ``target`` read as a query; a single word that is neither a model
    nor a query is most likely a mistyped model name, and the error says so."""
    try:
        found = db.query(target, limit=n)
    except CircuitQLError as err:
        if len(target.split()) > 1:
            raise
        raise CircuitQLError(
            f"{target!r} is neither a model in {db.uri} nor a query "
            f"(as a query: {err.what.splitlines()[0]})",
            fix="run `circuitql models` for the model names and "
            "`circuitql library` for the circuits",
        ) from err
    matches = list(found)
    if len(matches) < n:
        raise CircuitQLError(
            f"{target!r} has {len(matches)} match(es), so no match {n}",
            fix=f"run `circuitql query {json.dumps(target)}` to list them",
        )
    return matches[n - 1]


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
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _degeneracy(args: argparse.Namespace) -> int:
    from circuitql.analysis.degeneracy import Probes, degeneracy

    probes = Probes(n=args.probes) if args.probes else Probes()
    report = degeneracy(original_network(args.model, args.store), name=args.model, probes=probes)
    print(_json(report.to_json()) if args.json else report.text())
    return 0


def _basis(args: argparse.Namespace) -> int:
    from circuitql.analysis.basis import Search, jacobian_count, sparse_basis
    from circuitql.analysis.degeneracy import Probes

    if args.out:
        _writable_folder(args.out)  # before the search, not after it
    graph = original_network(args.model, args.store)
    with _progress(jacobian_count(graph), args.quiet or args.json, "Jacobian") as step:
        report = sparse_basis(
            graph,
            name=args.model,
            probes=Probes(n=args.probes) if args.probes else None,
            search=Search(max_steps=args.steps) if args.steps else None,
            on_jacobian=None if step is None else lambda: step(1),
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

    return run(args)


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

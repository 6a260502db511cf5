"""The ``circuitql`` command.

Every user error (a bad file, an unknown model, an unreachable store) is a ``CircuitQLError``:
its message goes to stderr and the exit code is 2. A traceback means a bug in circuitql.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from circuitql.api import Database, IndexReport, connect
from circuitql.errors import CircuitQLError
from circuitql.indexer.load import discover

EXIT_USER_ERROR = 2
PROGRESS_THRESHOLD = 5  # a progress bar only when there is enough work to watch


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CircuitQLError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circuitql",
        description="Find circuits inside neural networks: index a model zoo, then query it.",
    )
    parser.set_defaults(run=_help_of(parser))
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help_: str
                ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(run=run)
        return p

    def with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--store", metavar="URI", default=None,
                       help="store to use: a path, sqlite:///path or neo4j://user:pw@host:7687 "
                       "(default: $CIRCUITQL_STORE, else ./circuitql.db)")
        return p

    p = with_store(command("index", _index, "index model files (folders are searched "
                                            "recursively for .pt .pth .safetensors .onnx)"))
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--name", help="model name (one file only; default: the path below the "
                                  "folder given, without suffix)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes for loading and canonicalizing (default: one per "
                   "core when there are many files)")

    p = with_store(command("models", _models, "list the indexed models"))
    p.add_argument("--json", action="store_true", help="print JSON")

    p = with_store(command("tokens", _tokens, "print a model's network string: its layers' "
                                              "words of neuron tokens, in order"))
    p.add_argument("model")
    p.add_argument("--by-layer", action="store_true", help="one layer per line, numbered")

    p = with_store(command("delete", _delete, "remove a model from the store"))
    p.add_argument("model")

    p = command("neo4j", _neo4j, "start, stop or check a local Neo4j server for the Neo4j "
                "store (no Docker needed: Java 17 and Maven build a small launcher once)")
    from circuitql.store.neo4j_server import add_arguments

    add_arguments(p)

    zoo = command("zoo", lambda _args: 0, "build model zoos")
    zoo.set_defaults(run=_help_of(zoo))
    zoo_sub = zoo.add_subparsers(title="zoo commands", metavar="COMMAND")
    demo = zoo_sub.add_parser("demo", help="write the small demo zoo (known circuits and "
                                           "random MLPs, in every file format)")
    demo.add_argument("directory", type=Path)
    demo.set_defaults(run=_zoo_demo)
    return parser


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command without a subcommand prints its help."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def _open(args: argparse.Namespace) -> Database:
    return connect(args.store)


def _index(args: argparse.Namespace) -> int:
    files = discover(args.paths)
    if not files:
        raise CircuitQLError(f"no model files under {', '.join(args.paths)}",
                             fix="give .pt, .pth, .safetensors or .onnx files, or folders "
                             "holding them")
    start = time.perf_counter()
    with _open(args) as db:
        bar = None
        if not args.quiet and len(files) >= PROGRESS_THRESHOLD:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="model", file=sys.stderr)
        try:
            report = db.index_paths(args.paths, args.name,
                                    (lambda _path: bar.update(1)) if bar else None, files=files,
                                    jobs=args.jobs)
        finally:
            if bar:
                bar.close()
        _print_index_summary(report, db.uri, time.perf_counter() - start)
    return EXIT_USER_ERROR if report.failed else 0


def _print_index_summary(report: IndexReport, uri: str, seconds: float) -> None:
    for path, err in report.failed:
        print(f"error: {path}: {err}", file=sys.stderr)
    neurons = sum(m.n_neurons for m in report.indexed)
    print(
        f"indexed {len(report.indexed)} model(s) ({neurons} canonical neurons), "
        f"{len(report.unchanged)} already indexed, {len(report.failed)} failed "
        f"in {seconds:.1f}s into {uri}"
    )
    if len(report.indexed) + len(report.unchanged) == 1:
        info = (report.indexed or report.unchanged)[0]
        print(f"{info.name}: {info.network_string}")


def _models(args: argparse.Namespace) -> int:
    with _open(args) as db:
        models = db.models()
    if args.json:
        print(json.dumps([{
            "name": m.name, "source": m.source, "inputs": m.n_inputs, "outputs": m.n_outputs,
            "neurons": m.n_neurons, "edges": m.n_edges, "hash": m.content_hash,
            "meta": dict(m.meta),
        } for m in models], indent=2))
        return 0
    if not models:
        print("no models indexed yet: run `circuitql index PATH`")
        return 0
    rows = [("name", "in", "out", "neurons", "edges", "source")] + [
        (m.name, str(m.n_inputs), str(m.n_outputs), str(m.n_neurons), str(m.n_edges), m.source)
        for m in models
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _tokens(args: argparse.Namespace) -> int:
    with _open(args) as db:
        text = db.tokens(args.model)
    if not args.by_layer:
        print(text)
        return 0
    from circuitql.grammar.token_parser import split_layers

    for i, word in enumerate(split_layers(text)):
        print(f"L{i} {word}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _open(args) as db:
        if not db.delete(args.model):
            db.model(args.model)  # raises the "no such model, did you mean" error
    print(f"deleted {args.model}")
    return 0


def _neo4j(args: argparse.Namespace) -> int:
    from circuitql.store.neo4j_server import run

    return run(args)


def _zoo_demo(args: argparse.Namespace) -> int:
    from circuitql.zoo.demo import build_demo_zoo

    files = build_demo_zoo(args.directory)
    print(f"wrote {len(files)} models under {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

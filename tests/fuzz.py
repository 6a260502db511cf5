"""A long fuzz run: mutated queries against a real store, and hostile model files.

    scripts/fuzz [--queries 100000] [--files 1000] [--seed 0] [--budget 30]

Every input must end in the project's own error (``CircuitQLError``) or a normal answer,
within ``--budget`` seconds (enforced here with an alarm, not asserted on speed), and leave
the store as it was unless it was a valid model. The run prints what it tried and what it
found, and exits 1 if any input broke a rule; docs/reliability.md records a run.

Queries are the query fuzz tests' samples and every library definition, mutated by deleting,
inserting and swapping fragments of the language; each one that compiles is run (MATCH,
COUNT, COMPARE, SHOW) with a short TIMEOUT. Files are valid models of every format, then cut
short, bit-flipped, given hostile configs (wrong types, huge or deep values), huge declared
shapes, NaN and overflowing weights, and names holding control characters.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from circuitql import CircuitQLError, PartialAnswer, connect
from circuitql.analysis.census import census
from circuitql.export import save
from circuitql.language.compile import CensusQuery, CompareQuery, MatchQuery
from circuitql.zoo.demo import build_demo_zoo, random_mlp
from tests.grammar.test_query_fuzz import LIBRARY_TEXTS, SAMPLES

FRAGMENTS = [
    *"abcxy019 _.,;:()[]{}<>=+-*/?|'\"\n\t$^",
    "MATCH ",
    "CIRCUIT ",
    "->",
    ">>",
    "...",
    "WHERE ",
    "EXPECT ",
    "IN ",
    "relu(",
    '"""',
    "//",
    "FOR ",
    "INTEGERS ",
    "TIMEOUT 1s ",
    "LIMIT 3 ",
    "EXACT ",
    "{2,}",
    "+",
    "|",
    "abs",
    "min",
    "fold",
    "is_even",
    "1e308",
    "-1e308",
    "\x00",
    "caf\udce9",
    "{100}",
    "COUNT MODELS WITH ",
    " GROUP BY meta.kind",
]


class OverBudget(Exception):
    """An input ran past the harness's budget."""


@contextlib.contextmanager
def budget(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def composed_query(rng: random.Random) -> str:
    """A query that parses: library circuits under random operators and options."""
    from circuitql.language import PUBLIC_NAMES

    def expression(depth: int) -> str:
        if depth == 0 or rng.random() < 0.4:
            return rng.choice([*PUBLIC_NAMES, "fold", "min_skip", "detector_pair"])
        left, right = expression(depth - 1), expression(depth - 1)
        return rng.choice(
            (
                f"({left} | {right})",
                f"{left} >> {right}",
                f"({left})+",
                f"({left}){{{rng.randint(1, 3)},{rng.randint(3, 5)}}}",
                f"({left}){{{rng.randint(1, 4)}}}",
            )
        )

    options = "".join(
        option
        for option, p in (
            (f" IN MODELS '{rng.choice(('*', 'circuits/*', 'random/*', 'none'))}'", 0.3),
            (f" TOLERANCE {rng.choice((0.01, 0.1, 0.5))}", 0.3),
            (" EXACT", 0.3),
            (f" LIMIT {rng.randint(1, 20)}", 0.3),
        )
        if rng.random() < p
    )
    head = rng.choice(("MATCH", "MATCH", "EXPLAIN MATCH", "COUNT MODELS WITH"))
    tail = " GROUP BY meta.kind" if head.startswith("COUNT") else ""
    if head.startswith("COUNT"):
        options = options.split(" LIMIT")[0]
    return f"{head} {expression(rng.randint(0, 3))}{options}{tail}"


def mutated_query(rng: random.Random) -> str:
    text = rng.choice(
        SAMPLES
        + LIBRARY_TEXTS
        + ["MATCH abs", "COUNT MODELS WITH min GROUP BY meta.kind", "MATCH fold+ >> abs"]
    )
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        kind = rng.choice(("delete", "insert", "swap"))
        if kind == "delete":
            text = text[:at] + text[at + rng.randint(1, 8) :]
        elif kind == "insert":
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        else:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at + 1 :]
    return text


def run_query(db: Any, text: str) -> None:
    """Compile ``text`` and run it as the CLI would, with a short deadline."""
    compiled = db.execute(text)
    if isinstance(compiled, MatchQuery):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialAnswer)
            for _ in db.query(text, timeout=2.0, limit=50):
                pass
    elif isinstance(compiled, CensusQuery):
        census(db.store, dataclasses.replace(compiled, timeout=2.0))
    elif isinstance(compiled, CompareQuery):
        db.compare(compiled.model_a, compiled.model_b, circuits=False)


# ---- hostile files ------------------------------------------------------------------------


def _valid(folder: Path, rng: random.Random, suffix: str) -> Path:
    spec = random_mlp(
        np.random.default_rng(rng.randrange(2**32)),
        rng.randint(1, 6),
        [rng.randint(1, 8) for _ in range(rng.randint(1, 3))],
        rng.randint(1, 3),
    )
    return save(spec, folder / f"m{rng.randrange(10**9)}{suffix}")


def _truncated(folder: Path, rng: random.Random) -> Path:
    path = _valid(folder, rng, rng.choice((".pt", ".safetensors", ".onnx")))
    data = path.read_bytes()
    path.write_bytes(data[: rng.randint(0, len(data) - 1)])
    return path


def _flipped(folder: Path, rng: random.Random) -> Path:
    path = _valid(folder, rng, rng.choice((".pt", ".safetensors", ".onnx")))
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return path


HOSTILE_VALUES: list[Any] = [
    5,
    -1,
    0,
    1.5,
    "abc",
    None,
    [],
    {},
    [["input"]],
    True,
    10**100,
    30_000_000,
    1e308,
    "x" * 10_000,
    {"tensor": 3},
    [1, 2],
    "\x00",
    "caf\udce9"[:3],
]


def _hostile_config(folder: Path, rng: random.Random) -> Path:
    path = _valid(folder, rng, rng.choice((".pt", ".safetensors")))
    config_path = path.with_suffix(".json")
    config = json.loads(config_path.read_text())
    targets: list[tuple[dict[str, Any], str]] = [
        (config, k) for k in ("inputs", "outputs", "meta", "domain", "format", "layers")
    ]
    for layer in config["layers"]:
        targets += [
            (layer, k)
            for k in (
                "name",
                "activation",
                "input",
                "add",
                "weight",
                "bias",
                "transpose",
                "negative_slope",
            )
        ]
    for _ in range(rng.randint(1, 3)):
        where, key = rng.choice(targets)
        where[key] = rng.choice(HOSTILE_VALUES)
    text = json.dumps(config)
    if rng.random() < 0.1:  # nested far deeper than any parser's stack
        text = text[:-1] + ', "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    config_path.write_text(text)
    return path


def _hostile_weights(folder: Path, rng: random.Random) -> Path:
    import torch

    path = _valid(folder, rng, ".pt")
    weights = torch.load(path, weights_only=True)
    name = rng.choice(sorted(weights))
    kind = rng.choice(("nan", "inf", "huge", "expanded", "wrong-shape", "checkpoint"))
    if kind == "nan":
        weights[name] = weights[name] * float("nan")
    elif kind == "inf":
        weights[name] = weights[name] * float("inf")
    elif kind == "huge":
        weights[name] = weights[name].double() * 1e300
    elif kind == "expanded":
        weights[name] = torch.zeros(1, 1).expand(30_000, 30_000)
    elif kind == "wrong-shape":
        weights[name] = torch.zeros(rng.randint(1, 9), rng.randint(1, 9))
    else:
        weights = {"state_dict": weights, "other": dict(weights), "epoch": 3}  # type: ignore
    torch.save(weights, path)
    return path


def _hostile_onnx(folder: Path, rng: random.Random) -> Path:
    import onnx
    from onnx import TensorProto, helper

    dims = rng.choice(([1, 50_000_000], [25, 5], ["N", 0], [], ["N", 3, 100_000], [1, -4]))
    tensor = onnx.TensorProto(
        name="w", data_type=TensorProto.FLOAT, dims=rng.choice(([100_000, 100_000], [4, 3], [0]))
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                rng.choice(("MatMul", "Relu", "Conv", "Softmax", "Gemm")), ["x", "w"], ["y"]
            )
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[tensor],
    )
    path = folder / f"h{rng.randrange(10**9)}.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


REWIRED_OPS = ("Erf", "Mul", "Add", "Div", "Constant", "Relu", "Gemm", "Concat", "Reshape")


def _rewired_onnx(folder: Path, rng: random.Random) -> Path:
    """A valid ONNX model whose nodes lost or gained operands and outputs, read others'
    tensors, or became other ops: what a hand-edited or half-written graph looks like."""
    import onnx

    path = _valid(folder, rng, ".onnx")
    model = onnx.load(path)
    nodes = model.graph.node
    tensors = ["x", "missing", *(out for node in nodes for out in node.output)]
    for _ in range(rng.randint(1, 3)):
        node = nodes[rng.randrange(len(nodes))]
        change = rng.randrange(5)
        if change == 0 and node.input:
            del node.input[rng.randrange(len(node.input))]
        elif change == 1:
            del node.output[:]
        elif change == 2:
            node.input.append(rng.choice(tensors))
        elif change == 3 and node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(tensors)
        else:
            node.op_type = rng.choice(REWIRED_OPS)
    onnx.save(model, path)
    return path


def _hostile_convnet(folder: Path, rng: random.Random) -> Path:
    """A convolution, pooling or padding with attributes a file may claim: zero strides,
    negative or huge pads, groups that do not divide, kernels larger than the map."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def ints(n: int) -> list[int]:
        return [rng.choice((-1, 0, 1, 2, 3, 10**9)) for _ in range(n)]

    attrs: dict[str, Any] = {
        "Conv": {"strides": ints(2), "pads": ints(4), "dilations": ints(2), "group": ints(1)[0]},
        "MaxPool": {"kernel_shape": ints(2), "pads": ints(4), "ceil_mode": 1},
        "AveragePool": {"kernel_shape": ints(rng.choice((1, 2, 3))), "auto_pad": "SAME_LOWER"},
        "Pad": {"mode": rng.choice(("constant", "edge", "wrap", "bogus"))},
        "ReduceMean": {"axes": ints(rng.choice((1, 2, 3))), "keepdims": rng.choice((0, 1))},
    }
    op = rng.choice(sorted(attrs))
    kernel = np.ones(rng.choice(([2, 1, 3, 3], [2, 1, 3], [0, 1, 3, 3], [3, 2, 40, 40])))
    pads = np.array(ints(rng.choice((4, 8))), dtype=np.int64)
    inputs = {"Conv": ["m", "k"], "Pad": ["m", "pads"]}.get(op, ["m"])
    nodes = [helper.make_node("Conv", ["x", "k0"], ["m"]), helper.make_node(op, inputs, ["y"])]
    options = {k: v for k, v in attrs[op].items() if rng.random() < 0.7}
    nodes[1].attribute.extend(helper.make_attribute(k, v) for k, v in options.items())
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, *ints(2)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(np.ones((2, 1, 1, 1), dtype=np.float32), "k0"),
            numpy_helper.from_array(kernel.astype(np.float32), "k"),
            numpy_helper.from_array(pads, "pads"),
        ],
    )
    path = folder / f"c{rng.randrange(10**9)}.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


def _hostile_nnet(folder: Path, rng: random.Random) -> Path:
    lines = [
        "// nnet\n",
        "2,2,1,3,\n",
        "2,3,1,\n",
        "0,\n",
        "0,0,\n",
        "1,1,\n",
        "0,0,0,\n",
        "1,1,1,\n",
        *["0.5,-0.5,\n"] * 3,
        *["0.1,\n"] * 3,
        "1,1,1,\n",
        "0,\n",
    ]
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(lines))
        lines[at] = rng.choice(
            (
                "",
                "nan,\n",
                "1e999,\n",
                "abc\n",
                "100000000,1,1,1,\n",
                "-5,\n",
                lines[at] * 2,
                "1,2,3,4,5,6,7,8,\n",
            )
        )
    path = folder / f"n{rng.randrange(10**9)}.nnet"
    path.write_text("".join(lines))
    return path


def _named(folder: Path, rng: random.Random) -> Path:
    path = _valid(folder, rng, ".safetensors")
    name = rng.choice(("bad\nname", "tab\tname", "esc\x1b[31m", "caf\udce9", "dots.in.name"))
    target = folder / f"{name}.safetensors"
    try:
        path.rename(target)
        path.with_suffix(".json").rename(target.with_suffix(".json"))
    except (OSError, UnicodeEncodeError):
        return path
    return target


FILE_KINDS: dict[str, Callable[[Path, random.Random], Path]] = {
    "truncated": _truncated,
    "bit-flipped": _flipped,
    "hostile config": _hostile_config,
    "hostile weights": _hostile_weights,
    "hostile onnx": _hostile_onnx,
    "rewired onnx": _rewired_onnx,
    "hostile convnet": _hostile_convnet,
    "hostile nnet": _hostile_nnet,
    "odd name": _named,
}


# ---- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=30, help="seconds per input")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    broken: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="circuitql-fuzz-") as tmp:
        root = Path(tmp)
        build_demo_zoo(root / "zoo", n_random=4)
        with connect(str(root / "q.db")) as db:
            db.index_paths([root / "zoo"])
            before = [m.content_hash for m in db.models()]
            for i in range(args.queries):
                text = (composed_query if i % 2 else mutated_query)(rng)
                outcomes[
                    "query: "
                    + _attempt(partial(run_query, db, text), args.budget, broken, f"query {text!r}")
                ] += 1
                if i % 10_000 == 9_999:
                    print(f"{i + 1:,} queries, {time.perf_counter() - start:.0f}s", flush=True)
            if [m.content_hash for m in db.models()] != before:
                broken.append("a query changed the store")
        with connect(str(root / "f.db")) as db:
            for i in range(args.files):
                folder = root / "files" / str(i)
                folder.mkdir(parents=True)
                kind = rng.choice(sorted(FILE_KINDS))
                path = FILE_KINDS[kind](folder, rng)
                count = len(db.models())
                result = _attempt(
                    partial(db.index, path), args.budget, broken, f"{kind} file {path.name!r}"
                )
                outcomes[f"file, {kind}: {result}"] += 1
                if result != "answered" and len(db.models()) != count:
                    broken.append(f"a failed {kind} file left a model behind")
                shutil.rmtree(folder)
    for outcome, n in sorted(outcomes.items()):
        print(f"{n:>8,}  {outcome}")
    print(
        f"{args.queries:,} queries and {args.files:,} files in "
        f"{time.perf_counter() - start:.0f}s; {len(broken)} broke a rule"
    )
    for problem in broken[:20]:
        print("  " + problem.replace("\n", "\n  "))
    return 1 if broken else 0


def _attempt(work: Callable[[], object], seconds: int, broken: list[str], what: str) -> str:
    """``answered``, ``refused`` (the project's error), or a broken rule, recorded."""
    try:
        with budget(seconds):
            work()
        return "answered"
    except CircuitQLError:
        return "refused"
    except OverBudget:
        broken.append(f"{what}: ran past {seconds}s")
        return "over budget"
    except Exception:  # anything else is a bug: kept with its traceback
        broken.append(f"{what}: {traceback.format_exc(limit=3)}")
        return "crashed"


if __name__ == "__main__":
    sys.exit(main())

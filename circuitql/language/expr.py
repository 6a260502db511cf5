"""The safe expression evaluator: EXPECT, WHERE and probe-range expressions over numpy arrays.

Expressions arrive as parsed AST (``circuitql.grammar.ast``), never as text, and are compiled
into nested closures over a fixed table of numpy functions; nothing is ever handed to ``eval``.
A name evaluates to the array (or number) bound to it in the environment; comparisons give 1.0
for true and 0.0 for false, so ``y == (x < c)`` is a valid reference function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import reduce

import numpy as np

from circuitql.grammar import ast
from circuitql.graph import Activation

Value = np.ndarray | float
Env = Mapping[str, Value]
Compiled = Callable[[Env], np.ndarray]


def _step(z: np.ndarray) -> np.ndarray:
    """Heaviside with step(0) = 0: ``step(c - x)`` is 1 exactly where x < c."""
    return (z > 0).astype(np.float64)


_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "abs": np.abs,
    "min": lambda *xs: reduce(np.minimum, xs),
    "max": lambda *xs: reduce(np.maximum, xs),
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": Activation.SIGMOID.apply,
    "tanh": np.tanh,
    "step": _step,
    "mod": np.mod,
}
assert set(_FUNCTIONS) == set(ast.FUNCTIONS), "grammar and evaluator disagree on functions"

_ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
}
_COMPARISONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class UnboundName(KeyError):
    """A name the environment does not bind (a bug in the caller: compile checks names)."""


def key(expr: ast.Ref | ast.Param) -> str:
    """The environment key of a name: ``?c`` and ``c`` are the same parameter."""
    return expr.name if isinstance(expr, ast.Param) else expr.qualified


def compile_expr(expr: ast.Expr) -> Compiled:
    """A function of an environment that evaluates ``expr`` elementwise (float64 arrays)."""
    if isinstance(expr, ast.Num):
        value = np.float64(expr.value)
        return lambda env: np.asarray(value)
    if isinstance(expr, ast.Ref | ast.Param):
        name = key(expr)

        def lookup(env: Env) -> np.ndarray:
            try:
                return np.asarray(env[name], dtype=np.float64)
            except KeyError:
                raise UnboundName(name) from None

        return lookup
    if isinstance(expr, ast.Unary):
        inner = compile_expr(expr.operand)
        return inner if expr.op == "+" else (lambda env: np.negative(inner(env)))
    if isinstance(expr, ast.Binary | ast.Compare):
        left, right = compile_expr(expr.left), compile_expr(expr.right)
        if isinstance(expr, ast.Compare):
            test = _COMPARISONS[expr.op]
            return lambda env: test(left(env), right(env)).astype(np.float64)
        op = _ARITHMETIC[expr.op]

        def arithmetic(env: Env) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return np.asarray(op(left(env), right(env)), dtype=np.float64)

        return arithmetic
    func = _FUNCTIONS[expr.func]
    args = [compile_expr(a) for a in expr.args]
    return lambda env: np.asarray(func(*(a(env) for a in args)), dtype=np.float64)


def evaluate(expr: ast.Expr, env: Env) -> np.ndarray:
    """Compile and run at once, for a value needed once; to evaluate an expression repeatedly,
    keep ``compile_expr``'s function."""
    return compile_expr(expr)(env)


def names(expr: ast.Expr) -> Iterator[ast.Ref | ast.Param]:
    """Every name an expression reads, in order of appearance."""
    if isinstance(expr, ast.Ref | ast.Param):
        yield expr
    elif isinstance(expr, ast.Unary):
        yield from names(expr.operand)
    elif isinstance(expr, ast.Binary | ast.Compare):
        yield from names(expr.left)
        yield from names(expr.right)
    elif isinstance(expr, ast.Call):
        for arg in expr.args:
            yield from names(arg)


def substitute(expr: ast.Expr, values: Mapping[str, ast.Expr]) -> ast.Expr:
    """Replace names by expressions (keys as ``key`` spells them); others are left alone.

    Renaming is substitution by a ``Ref``; composing reference functions is substitution of
    one circuit's output expressions for the next circuit's inputs.
    """
    if isinstance(expr, ast.Ref | ast.Param):
        return values.get(key(expr), expr)
    if isinstance(expr, ast.Unary):
        return replace(expr, operand=substitute(expr.operand, values))
    if isinstance(expr, ast.Binary | ast.Compare):
        return replace(
            expr, left=substitute(expr.left, values), right=substitute(expr.right, values)
        )
    if isinstance(expr, ast.Call):
        return replace(expr, args=tuple(substitute(a, values) for a in expr.args))
    return expr


def ref(qualified: str) -> ast.Ref:
    """A Ref for a name spelled as ``key`` spells it (``fold[1].c`` included)."""
    head, *attrs = qualified.split(".")
    if head.endswith("]"):
        name, index = head[:-1].split("[")
        return ast.Ref(name, int(index), tuple(attrs))
    return ast.Ref(head, None, tuple(attrs))


def rename(expr: ast.Expr, mapping: Mapping[str, str]) -> ast.Expr:
    """Names replaced by other names, both spelled as ``key`` spells them."""
    return substitute(expr, {old: ref(new) for old, new in mapping.items()})


def rename_conditions(
    conditions: Iterable[ast.Compare], mapping: Mapping[str, str]
) -> tuple[ast.Compare, ...]:
    """WHERE conditions with names replaced (a renamed comparison is still a comparison)."""
    subs = {old: ref(new) for old, new in mapping.items()}
    out = []
    for c in conditions:
        renamed = substitute(c, subs)
        assert isinstance(renamed, ast.Compare)
        out.append(renamed)
    return tuple(out)

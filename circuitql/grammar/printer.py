"""AST -> query text. The output parses back to an equal AST (positions aside), which is what
lets ``circuitql library`` show definitions and lets tests check the parser by round trips.

Parentheses are written only where precedence needs them, so printing is also normalising:
``((a)) + (b * c)`` comes back as ``a + b * c``.
"""

from __future__ import annotations

import re

from circuitql.grammar import ast

_INDENT = "    "
_PLAIN_PROPERTY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

# Binding strength of expression and circuit-expression nodes (higher binds tighter).
_SUM, _PRODUCT, _UNARY, _ATOM = 2, 3, 4, 5
_OP_LEVEL = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}
_ALT, _CHAIN, _REPEAT, _CATOM = 1, 2, 3, 4


def number(value: float) -> str:
    """Text that parses back to ``value``; whole numbers without a trailing ``.0``."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def string(value: str) -> str:
    """A single-quoted literal, backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _level(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Compare):
        return 1
    if isinstance(expr, ast.Binary):
        return _OP_LEVEL[expr.op]
    if isinstance(expr, ast.Unary):
        return _UNARY
    return _ATOM


def _wrap(expr: ast.Expr, least: int) -> str:
    text = expr_text(expr)
    return f"({text})" if _level(expr) < least else text


def expr_text(expr: ast.Expr) -> str:
    """An expression, parenthesised only where precedence needs it."""
    if isinstance(expr, ast.Num):
        return number(expr.value)
    if isinstance(expr, ast.Ref):
        return expr.qualified
    if isinstance(expr, ast.Param):
        return f"?{expr.name}"
    if isinstance(expr, ast.Unary):
        return expr.op + _wrap(expr.operand, _UNARY)
    if isinstance(expr, ast.Binary):
        level = _OP_LEVEL[expr.op]
        # Left-associative: the right operand needs parentheses at its own level already.
        return f"{_wrap(expr.left, level)} {expr.op} {_wrap(expr.right, level + 1)}"
    if isinstance(expr, ast.Compare):
        return f"{_wrap(expr.left, _SUM)} {expr.op} {_wrap(expr.right, _SUM)}"
    args = [expr_text(a) for a in expr.args] + (["..."] if expr.open else [])
    return f"{expr.func}({', '.join(args)})"


def _clevel(expr: ast.CExpr) -> int:
    if isinstance(expr, ast.Alternation):
        return _ALT
    if isinstance(expr, ast.Chain):
        return _CHAIN
    if isinstance(expr, ast.Repeat):
        return _REPEAT
    return _CATOM


def _cwrap(expr: ast.CExpr, least: int) -> str:
    text = cexpr_text(expr)
    return f"({text})" if _clevel(expr) < least else text


def cexpr_text(expr: ast.CExpr) -> str:
    """A circuit expression, parenthesised only where precedence needs it."""
    if isinstance(expr, ast.CircuitRef):
        return expr.name
    if isinstance(expr, ast.Alternation):
        return " | ".join(_cwrap(o, _CHAIN) for o in expr.options)
    if isinstance(expr, ast.Chain):
        return " >> ".join(_cwrap(p, _REPEAT) for p in expr.parts)
    if isinstance(expr, ast.Repeat):
        return _cwrap(expr.body, _CATOM) + _count(expr.min, expr.max)
    return f"({cexpr_text(expr.body)} {_where(expr.where)})"


def _count(low: int, high: int | None) -> str:
    if (low, high) == (1, None):
        return "+"
    if low == high:
        return f"{{{low}}}"
    return f"{{{low},{'' if high is None else high}}}"


def _where(conditions: tuple[ast.Compare, ...]) -> str:
    return "WHERE " + " AND ".join(expr_text(c) for c in conditions)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names)


def _outs(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"({_names(names)})"


def unit_text(item: ast.BodyItem) -> str:
    """One line of a circuit body or EXAMPLE: a unit, or a call of another circuit."""
    if isinstance(item, ast.CallDef):
        return f"{_names(item.targets)} = {item.circuit}({_names(item.args)})"
    if item.activation is None:
        return f"{item.name} = {expr_text(item.expr)}"
    spelling = ast.ACTIVATION_SPELLING[item.activation]
    tail = ", ..." if item.open else ""
    return f"{item.name} = {spelling}({expr_text(item.expr)}{tail})"


def _block(items: tuple[ast.BodyItem, ...]) -> str:
    lines = "".join(f"{_INDENT}{unit_text(i)}\n" for i in items)
    return "{\n" + lines + "}"


def range_text(r: ast.Range) -> str:
    """A probe range as written after ``IN``: ``[lo, hi]``, ``{v, ...}``, ``INTEGERS [lo, hi)``."""
    bounds = ", ".join(expr_text(b) for b in r.bounds)
    if r.kind == "interval":
        return f"[{bounds}]"
    if r.kind == "values":
        return f"{{{bounds}}}"
    return f"INTEGERS [{bounds})"


def expect_text(expect: ast.Expect) -> str:
    """An EXPECT clause with its FOR domains."""
    text = "EXPECT " + ", ".join(expr_text(e) for e in expect.equations)
    if expect.domains:
        doms = [
            f"{_names(d.names)} IN {' | '.join(range_text(r) for r in d.ranges)}"
            for d in expect.domains
        ]
        text += " FOR " + ", ".join(doms)
    return text


def definition_text(d: ast.CircuitDef) -> str:
    """A CIRCUIT statement: its docstring, the definition, then each clause on a line of its own."""
    head = f"CIRCUIT {d.name}"
    if d.inputs is not None and d.outputs is not None:
        head += f"({_names(d.inputs)}) -> {_outs(d.outputs)}"
    lines = [f'"""{d.doc}"""'] if d.doc is not None else []
    if d.body is not None:
        lines.append(f"{head} {_block(d.body)}")
    elif d.expr is not None:
        lines.append(f"{head} = {cexpr_text(d.expr)}")
    if d.where:
        lines.append(_where(d.where))
    if d.expect is not None:
        lines.append(expect_text(d.expect))
    if d.example is not None:
        settings = ", ".join(f"{r.qualified} = {expr_text(v)}" for r, v in d.example.settings)
        with_part = f" WITH {settings}" if settings else ""
        lines.append(f"EXAMPLE{with_part} {_block(d.example.units)}")
    return "\n".join(lines)


def _target(t: ast.Target) -> str:
    compound = t.inputs is not None or t.outputs is not None
    text = _cwrap(t.expr, _CATOM) if compound else cexpr_text(t.expr)
    if t.inputs is not None:
        text += f"({_names(t.inputs)})"
    if t.outputs is not None:
        text += f" -> {_outs(t.outputs)}"
    return text


def _options(where: tuple[ast.Compare, ...], models: str | None, tolerance: float | None) -> str:
    text = f" {_where(where)}" if where else ""
    if models is not None:
        text += f" IN MODELS {string(models)}"
    if tolerance is not None:
        text += f" TOLERANCE {number(tolerance)}"
    return text


def statement_text(s: ast.Statement) -> str:
    """Any statement. A MATCH's pins go back into its WHERE, ahead of the other conditions."""
    if isinstance(s, ast.CircuitDef):
        return definition_text(s)
    prefix = "EXPLAIN " if s.explain else ""
    if isinstance(s, ast.Match):
        limit = (
            (" EXACT" if s.exact else "")
            + (f" LIMIT {s.limit}" if s.limit is not None else "")
            + _timeout(s.timeout)
        )
        pins = " AND ".join(f"{p.name} = {string(p.neuron)}" for p in s.pins)
        options = _options(s.where, s.models, s.tolerance)
        if pins:
            options = (
                options.replace(" WHERE ", f" WHERE {pins} AND ", 1)
                if s.where
                else f" WHERE {pins}{options}"
            )
        return f"{prefix}MATCH {_target(s.target)}{options}{limit}"
    if isinstance(s, ast.Census):
        prop = s.group_by if _PLAIN_PROPERTY.match(s.group_by) else string(s.group_by)
        options = (
            _options(s.where, s.models, s.tolerance)
            + (" EXACT" if s.exact else "")
            + _timeout(s.timeout)
        )
        return f"{prefix}COUNT MODELS WITH {_target(s.target)}{options} GROUP BY {prop}"
    if isinstance(s, ast.ShowCircuits):
        pattern = f" {string(s.pattern)}" if s.pattern is not None else ""
        return f"{prefix}SHOW CIRCUITS{pattern}"
    tolerance = f" TOLERANCE {number(s.tolerance)}" if s.tolerance is not None else ""
    compared = f"{prefix}COMPARE {string(s.model_a)} WITH {string(s.model_b)}"
    return compared + tolerance + _timeout(s.timeout)


def _timeout(seconds: float | None) -> str:
    return "" if seconds is None else f" TIMEOUT {number(seconds)}s"


def script_text(script: ast.Script) -> str:
    """A whole script: statements separated by blank lines, ending in a newline."""
    return "\n\n".join(statement_text(s) for s in script.statements) + "\n"

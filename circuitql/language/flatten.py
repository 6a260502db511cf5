"""Draft units -> a flat ``CircuitPattern`` in the coordinates of the canonical form.

A pattern is compared with canonical networks, so it is put through the same normalisation
the indexer applies to networks:

- linear units that are not outputs are folded into their readers (in a network a linear
  layer never makes a neuron of its own), which is also what makes a composed circuit look
  like the network that computes it;
- hidden ReLU/leaky/identity units are rescaled so their incoming weights have unit L2 norm,
  their outgoing weights multiplied to compensate;
- weights below the significance threshold are dropped;
- what is left is summarised per unit as a ``UnitConstraint`` on signatures.

A unit whose scale cannot be known (open fan-in, free-parameter weights, several sign-only
weights) is left unscaled and makes the weights leaving it sign-only: their magnitude in the
network depends on that unknown scale. Exact weights stay ratios among themselves either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from circuitql.grammar import ast
from circuitql.grammar.errors import CircuitDefinitionError
from circuitql.graph import Activation, UnitKind
from circuitql.indexer.canonical import rectifier_fates
from circuitql.language import expr as ev
from circuitql.language.pattern import (
    ZERO,
    CircuitPattern,
    Coef,
    CoefKind,
    PatternUnit,
    Poly,
    Reference,
    Role,
    UnitConstraint,
    bias_class_of,
)
from circuitql.records import DEFAULT_SIGNIFICANCE, BiasClass


@dataclass(frozen=True)
class Draft:
    """A unit before normalisation: ``activation(bias + sum(coef * source))``.

    ``activation`` None is a bare sum: folded away inside a circuit, "any activation" as an
    output.
    """

    name: str
    activation: Activation | None
    sources: tuple[tuple[str, Coef], ...]
    bias: Coef
    open: bool = False
    pos: ast.Pos | None = None

    @property
    def linear(self) -> bool:
        """Identity or bare sum: folded into its readers unless it is an output."""
        return self.activation in (None, Activation.IDENTITY)


def param_signs(where: Iterable[ast.Compare]) -> dict[str, int]:
    """Signs of parameters that WHERE pins with a bound such as ``c > 0`` or ``M >= 10``."""
    signs: dict[str, int] = {}
    for c in where:
        left, right, op = c.left, c.right, c.op
        if isinstance(left, ast.Num):  # 0 < c reads as c > 0
            left, right = right, left
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if not (isinstance(left, ast.Ref | ast.Param) and isinstance(right, ast.Num)):
            continue
        bound = right.value
        if (op == ">" and bound >= 0) or (op == ">=" and bound > 0):
            signs[ev.key(left)] = 1
        elif (op == "<" and bound <= 0) or (op == "<=" and bound < 0):
            signs[ev.key(left)] = -1
        elif op == "==" and bound != 0:
            signs[ev.key(left)] = 1 if bound > 0 else -1
    return signs


class Context:
    """Where errors point: the definition's source text and the pattern's name."""

    def __init__(self, name: str, source: ast.SourceText | None, signs: Mapping[str, int]):
        self.name = name
        self.source = source
        self.signs = signs

    def error(self, what: str, pos: ast.Pos | None, fix: str | None = None) -> Exception:
        """A ``CircuitDefinitionError`` naming the circuit, for the caller to raise."""
        return CircuitDefinitionError(
            f"circuit {self.name}: {what}", source=self.source, pos=pos, fix=fix
        )

    def sign(self, c: Coef) -> int | None:
        """The sign of ``c`` under the parameter signs WHERE pins, or None when it is unknown."""
        return c.sign(self.signs)


def _sign_only(c: Coef, ctx: Context, where: Draft) -> Coef:
    sign = ctx.sign(c)
    if sign is None:
        raise ctx.error(
            f"unit {where.name} combines a weight of unknown sign with one of unknown size",
            where.pos,
            "pin the parameter's sign in WHERE (c > 0)",
        )
    return ZERO if sign == 0 else Coef(Poly.const(sign), sign_only=True)


def _mul(a: Coef, b: Coef, ctx: Context, where: Draft) -> Coef:
    if a.sign_only or b.sign_only:
        sa, sb = _sign_only(a, ctx, where), _sign_only(b, ctx, where)
        return ZERO if sa.is_zero or sb.is_zero else Coef(Poly.const(sa.value * sb.value), True)
    return Coef(a.poly * b.poly)


def _add(a: Coef, b: Coef, ctx: Context, where: Draft) -> Coef:
    if a.is_zero:
        return b
    if b.is_zero:
        return a
    if a.sign_only or b.sign_only:
        sa, sb = _sign_only(a, ctx, where), _sign_only(b, ctx, where)
        if sa != sb:
            raise ctx.error(
                f"unit {where.name} adds weights of unknown size and opposite signs",
                where.pos,
            )
        return sa
    return Coef(a.poly + b.poly)


def topological(drafts: Sequence[Draft], ctx: Context) -> list[Draft]:
    """Drafts in dependency order (definition order where free); cycles are errors."""
    by_name = {d.name: d for d in drafts}
    order: list[Draft] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(d: Draft, path: list[str]) -> None:
        if state.get(d.name) == 2:
            return
        if state.get(d.name) == 1:
            loop = " -> ".join([*path[path.index(d.name) :], d.name])
            raise ctx.error(
                f"units form a cycle: {loop}",
                d.pos,
                "a circuit is a feed-forward graph; break the loop",
            )
        state[d.name] = 1
        for src, _ in d.sources:
            if src in by_name:
                visit(by_name[src], [*path, d.name])
        state[d.name] = 2
        order.append(d)

    for d in drafts:
        visit(d, [])
    return order


def check_reach(
    drafts: Sequence[Draft],
    inputs: Sequence[str],
    outputs: Sequence[str],
    ctx: Context,
    def_pos: ast.Pos | None,
) -> None:
    """Every unit feeds an output and every input is read: a pattern has no loose ends."""
    by_name = {d.name: d for d in drafts}
    needed: set[str] = set()
    stack = [o for o in outputs if o in by_name]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(src for src, _ in by_name[name].sources if src in by_name)
    for d in drafts:
        if d.name not in needed:
            raise ctx.error(
                f"unit {d.name} does not feed any output",
                d.pos,
                "remove it, or use it in an output",
            )
    read = {src for d in drafts for src, _ in d.sources}
    for name in inputs:
        if name not in read:
            raise ctx.error(
                f"input {name} is not read by any unit",
                def_pos,
                f"remove {name} from the inputs, or use it",
            )


def fold(drafts: Sequence[Draft], outputs: set[str], ctx: Context) -> list[Draft]:
    """Substitute linear non-output units into their readers."""
    expansion: dict[str, Draft] = {}
    kept: list[Draft] = []
    for d in drafts:
        sources: dict[str, Coef] = {}
        bias, is_open = d.bias, d.open
        for src, c in d.sources:
            inner = expansion.get(src)
            if inner is None:
                sources[src] = _add(sources.get(src, ZERO), c, ctx, d)
                continue
            for src2, c2 in inner.sources:
                sources[src2] = _add(sources.get(src2, ZERO), _mul(c, c2, ctx, d), ctx, d)
            bias = _add(bias, _mul(c, inner.bias, ctx, d), ctx, d)
            is_open = is_open or inner.open
        folded = replace(
            d,
            sources=tuple((s, c) for s, c in sources.items() if not c.is_zero),
            bias=bias,
            open=is_open,
        )
        if not folded.sources and not folded.open:
            raise ctx.error(f"unit {d.name} reads nothing: its terms cancel", d.pos)
        if d.linear and d.name not in outputs:
            expansion[d.name] = folded
        else:
            kept.append(folded)
    return kept


def settle(
    drafts: Sequence[Draft],
    inputs: Sequence[str],
    outputs: set[str],
    ctx: Context,
    touching: bool = False,
) -> list[Draft]:
    """Remove the units the canonical form removes from a network computing the pattern,
    and fold those it linearizes (``rectifier_fates``, the rule networks are normalized by):
    a ReLU whose pre-activation can never be positive is dead, one that can never reach its
    kink is linear. Bounds come from the pattern's own numbers, with unbounded inputs: a
    composition such as ``abs >> negation`` feeds |x| >= 0 into relu(-y), which is then
    dead, as the canonical form finds it in a network computing the same. ``touching`` also
    folds the units whose range touches the kink (relu(|x|) there), which a network may
    write as neurons or not. Repeats until nothing changes."""
    kept = list(drafts)
    while True:
        hidden = [d for d in kept if d.name not in outputs]
        lo, hi = _bounds(hidden + [d for d in kept if d.name in outputs], inputs, ctx)
        dead, slope = rectifier_fates(
            [d.activation for d in hidden],
            [0.01] * len(hidden),
            np.array([lo[d.name] for d in hidden]),
            np.array([hi[d.name] for d in hidden]),
            touching,
        )
        gone = {d.name for d, is_dead in zip(hidden, dead.tolist(), strict=True) if is_dead}
        linear = {
            d.name
            for d, k in zip(hidden, slope.tolist(), strict=True)
            if not math.isnan(k) and d.name not in gone
        }
        if not gone and not linear:
            return kept
        settled = []
        for d in kept:
            if d.name in gone:
                continue
            sources = tuple((src, c) for src, c in d.sources if src not in gone)
            if not sources and not d.open:
                raise ctx.error(
                    f"unit {d.name} reads only units that can never fire",
                    d.pos,
                    "a network computing this circuit would be constant there",
                )
            settled.append(
                replace(d, sources=sources, activation=None if d.name in linear else d.activation)
            )
        kept = fold(settled, outputs, ctx)
        read = {src for d in kept for src, _ in d.sources}
        for name in inputs:
            if name not in read:
                raise ctx.error(
                    f"input {name} is read only by units that can never fire",
                    None,
                    f"remove {name} from the inputs",
                )


def _bounds(
    drafts: Sequence[Draft], inputs: Sequence[str], ctx: Context
) -> tuple[dict[str, float], dict[str, float]]:
    """Bounds of every unit's pre-activation over unbounded inputs, in topological order.

    A coefficient of known sign but unknown size (``+any``, ``?c`` with ``c > 0``) spans a
    half-line; a product of a zero bound with an infinite one is 0, the limit of the finite
    numbers it bounds."""
    post: dict[str, tuple[float, float]] = {name: (-math.inf, math.inf) for name in inputs}
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    order = {d.name: d for d in drafts}
    for d in topological(list(order.values()), ctx):
        total = _coef_range(d.bias, ctx)
        for src, c in d.sources:
            total = _plus(total, _times(_coef_range(c, ctx), post[src]))
        if d.open:
            total = (-math.inf, math.inf)
        lo[d.name], hi[d.name] = total
        act = Activation.IDENTITY if d.activation is None else d.activation
        post[d.name] = act.bounds(*total)
    return lo, hi


def _coef_range(c: Coef, ctx: Context) -> tuple[float, float]:
    if c.kind is CoefKind.EXACT:
        return c.value, c.value
    sign = ctx.sign(c)
    if sign is None:
        return -math.inf, math.inf
    return (0.0, math.inf) if sign > 0 else (-math.inf, 0.0) if sign < 0 else (0.0, 0.0)


def _times(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    corners = [0.0 if x == 0.0 or y == 0.0 else x * y for x in a for y in b]
    return min(corners), max(corners)


def _plus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] + b[0], a[1] + b[1]


def _canonical(
    drafts: Sequence[Draft], inputs: Sequence[str], consumed: set[str], ctx: Context
) -> list[Draft]:
    """Unit-norm rescaling of homogeneous units that others read; see the module docstring."""
    scale: dict[str, float | None] = dict.fromkeys(inputs, 1.0)
    out: list[Draft] = []
    for d in drafts:
        sources: list[tuple[str, Coef]] = []
        for src, c in d.sources:
            s = scale[src]
            if s is None and c.kind is CoefKind.EXACT:
                c = _sign_only(c, ctx, d)
            elif s is not None and not c.sign_only:
                c = Coef(c.poly.scaled(s))
            sources.append((src, c))
        bias = d.bias
        kinds = {c.kind for _, c in sources}
        rescaled = d.name in consumed and (
            d.activation is None or d.activation.positively_homogeneous
        )
        if not rescaled:
            scale[d.name] = 1.0
        elif d.activation is None or d.open or kinds != {CoefKind.EXACT}:
            single_sign = not d.open and len(sources) == 1 and kinds == {CoefKind.SIGN}
            scale[d.name] = 1.0 if single_sign and d.activation is not None else None
        else:
            norm = math.sqrt(sum(c.value**2 for _, c in sources))
            sources = [(s, Coef(c.poly.scaled(1 / norm))) for s, c in sources]
            bias = Coef(bias.poly.scaled(1 / norm), bias.sign_only)
            scale[d.name] = norm
        if kinds == {CoefKind.EXACT}:
            top = max(abs(c.value) for _, c in sources)
            sources = [(s, c) for s, c in sources if abs(c.value) >= DEFAULT_SIGNIFICANCE * top]
        out.append(replace(d, sources=tuple(sources), bias=bias))
    return out


def _bias_class(d: Draft) -> BiasClass | None:
    if d.open:
        return None
    if d.bias.is_zero:
        return BiasClass.ZERO
    weights = [c for _, c in d.sources]
    if d.bias.kind is CoefKind.EXACT and all(c.kind is CoefKind.EXACT for c in weights):
        return bias_class_of(d.bias.value, (c.value for c in weights))
    return None


def build(
    name: str,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    drafts: Sequence[Draft],
    *,
    where: tuple[ast.Compare, ...] = (),
    reference: Reference | None = None,
    doc: str = "",
    variant: str = "",
    source: ast.SourceText | None = None,
    pos: ast.Pos | None = None,
    touching: bool = False,
) -> CircuitPattern:
    """Check, fold, canonicalise and constrain drafts into a flat pattern; ``touching``
    builds its other form, with the units ``settle`` may fold either way folded."""
    ctx = Context(name, source, param_signs(where))
    ordered = topological(drafts, ctx)
    check_reach(ordered, inputs, outputs, ctx, pos)
    folded = fold(ordered, set(outputs), ctx)
    kept = settle(folded, inputs, set(outputs), ctx, touching)
    touches = not touching and len(settle(kept, inputs, set(outputs), ctx, True)) < len(kept)
    consumed = {src for d in kept for src, _ in d.sources}
    kept = _canonical(kept, inputs, consumed, ctx)
    out_signs: dict[str, list[int]] = {n: [0, 0] for n in (*inputs, *(d.name for d in kept))}
    for d in kept:
        for src, c in d.sources:
            sign = ctx.sign(c)
            if sign:
                out_signs[src][0 if sign > 0 else 1] += 1
    depth = dict.fromkeys(inputs, 0)
    for d in kept:
        depth[d.name] = 1 + max((depth[src] for src, _ in d.sources), default=0)
    units = [
        PatternUnit(
            i,
            Role.INPUT,
            None,
            (),
            ZERO,
            True,
            UnitConstraint(None, None, None, out_pos=out_signs[i][0], out_neg=out_signs[i][1]),
        )
        for i in inputs
    ]
    for d in kept:
        signs = [ctx.sign(c) for _, c in d.sources]
        is_output = d.name in outputs
        units.append(
            PatternUnit(
                d.name,
                Role.OUTPUT if is_output else Role.HIDDEN,
                d.activation,
                d.sources,
                d.bias,
                d.open,
                UnitConstraint(
                    kind=None if is_output else UnitKind.HIDDEN,
                    activation=d.activation,
                    fan_in=None if d.open else len(d.sources),
                    n_pos=signs.count(1),
                    n_neg=signs.count(-1),
                    bias_class=_bias_class(d),
                    out_pos=out_signs[d.name][0],
                    out_neg=out_signs[d.name][1],
                    layer_min=depth[d.name],
                ),
            )
        )
    params = sorted(
        {p for d in kept for c in (d.bias, *(c for _, c in d.sources)) for p in c.poly.params}
    )
    return CircuitPattern(
        name=name,
        inputs=inputs,
        outputs=outputs,
        where=where,
        reference=reference,
        doc=doc,
        units=tuple(units),
        params=tuple(params),
        variant=variant,
        touches=touches,
    )


def drafts_of(pattern: CircuitPattern, rename: Mapping[str, str]) -> list[Draft]:
    """A flat pattern's units as drafts again (to inline or compose it), names mapped."""
    params = {p: rename[p] for p in pattern.params if p in rename}

    def coef(c: Coef) -> Coef:
        return Coef(c.poly.renamed(params), c.sign_only)

    return [
        Draft(
            rename.get(u.name, u.name),
            u.activation,
            tuple((rename.get(s, s), coef(c)) for s, c in u.inputs),
            coef(u.bias),
            u.open_fan_in,
        )
        for u in pattern.units
        if u.role is not Role.INPUT
    ]

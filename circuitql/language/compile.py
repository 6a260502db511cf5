"""AST -> Pattern: name resolution, checks with positions, and the compiled query.

``Compiler`` holds the circuit definitions a query can use (the library's, plus any the query
defines) and compiles each on first use. Everything a user can get wrong that the grammar
cannot see is caught here and reported at its place in the text: unknown circuits (with the
closest names), undefined units, cycles, EXPECT or WHERE over undeclared names, circuits whose
inputs and outputs do not line up in a composition.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from circuitql.grammar import ast
from circuitql.grammar.errors import CircuitDefinitionError, UnknownCircuitError
from circuitql.grammar.parser import parse
from circuitql.grammar.printer import cexpr_text
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.language import expr as ev
from circuitql.language.flatten import (
    Context,
    Draft,
    build,
    check_reach,
    drafts_of,
    fold,
    topological,
)
from circuitql.language.pattern import (
    Alternation,
    Chain,
    Coef,
    Pattern,
    Poly,
    Reference,
    Repeat,
    range_problem,
)
from circuitql.language.unroll import BUDGET_FIX, bounded, expand, over_budget, rename_io, scope

# A body that calls circuits with several implementations has one variant per combination.
MAX_VARIANTS = 4096

# ---- compiled queries ----------------------------------------------------------------------


@dataclass(frozen=True)
class MatchQuery:
    """A compiled MATCH: the pattern, and the clauses that bound its search (``models`` a
    glob over names, ``pins`` variables bound to stored neuron ids); None means the default."""

    pattern: Pattern
    models: str | None = None
    tolerance: float | None = None
    limit: int | None = None
    explain: bool = False
    pins: Mapping[str, str] = field(default_factory=dict)  # variable -> stored neuron id
    exact: bool = False  # only matches that hold without approximation (MATCH ... EXACT)
    timeout: float | None = None  # seconds the search may run (None: DEFAULT_TIMEOUT)


@dataclass(frozen=True)
class CensusQuery:
    """A compiled COUNT MODELS: the pattern, and the key (``name``, ``meta.task``...) the
    models are grouped by."""

    pattern: Pattern
    group_by: str
    models: str | None = None
    tolerance: float | None = None
    explain: bool = False
    exact: bool = False  # count only exact matches (COUNT MODELS WITH ... EXACT)
    timeout: float | None = None


@dataclass(frozen=True)
class ShowQuery:
    """A compiled SHOW CIRCUITS: a glob over library names (None: all of them)."""

    pattern: str | None = None
    explain: bool = False


@dataclass(frozen=True)
class CompareQuery:
    """A compiled COMPARE of two stored models by name."""

    model_a: str
    model_b: str
    tolerance: float | None = None
    explain: bool = False
    timeout: float | None = None  # seconds for all its circuit searches (None: the default)


CompiledQuery = MatchQuery | CensusQuery | ShowQuery | CompareQuery


@dataclass(frozen=True)
class ReferenceExample:
    """A circuit's hand-wired network (its EXAMPLE) and the parameter values it realises."""

    graph: NeuronGraph
    params: Mapping[str, float]


# ---- helpers -------------------------------------------------------------------------------


def _error(
    what: str, source: ast.SourceText | None, pos: ast.Pos | None, fix: str | None = None
) -> CircuitDefinitionError:
    return CircuitDefinitionError(what, source=source, pos=pos, fix=fix)


def _check_range(r: ast.Range, src: ast.SourceText | None) -> None:
    """A FOR range of constants is checked here; one of parameters when it is sampled (a
    range that fitted parameters leave empty verifies nothing, and matches nothing)."""
    if any(True for b in r.bounds for _ in ev.names(b)):
        return
    problem = range_problem(r.kind, [float(ev.evaluate(b, {})) for b in r.bounds])
    if problem is not None:
        raise _error(
            f"FOR range: {problem}",
            src,
            r.pos,
            "give a range the circuit's inputs can be probed on, e.g. [-4, 4]",
        )


def _unit_names(pattern: Pattern) -> tuple[str, ...]:
    """Every unit name of every flat variant (hidden units can be pinned too)."""
    return tuple({u.name for flat in expand(pattern, 1) for u in flat.units})


def _closest(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    return tuple(difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.5))


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _io(p: Pattern) -> str:
    return f"{_n(len(p.inputs), 'input')} and {_n(len(p.outputs), 'output')}"


def _did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = _closest(name, candidates)
    return f"did you mean {' or '.join(close)}?" if close else None


def _linear(
    e: ast.Expr, known: set[str], source: ast.SourceText | None
) -> tuple[dict[str, Poly], Poly]:
    """A unit's sum as (weight polynomial per source, bias polynomial)."""
    if isinstance(e, ast.Num):
        return {}, Poly.const(e.value)
    if isinstance(e, ast.Param):
        return {}, Poly.param(e.name)
    if isinstance(e, ast.Ref):
        if e.name not in known:
            raise _error(
                f"{e.name} is not an input or a unit of this circuit",
                source,
                e.pos,
                _did_you_mean(e.name, known) or f"define it: {e.name} = relu(...)",
            )
        return {e.name: Poly.const(1.0)}, Poly()
    if isinstance(e, ast.Unary):
        weights, bias = _linear(e.operand, known, source)
        if e.op == "-":
            return {k: -v for k, v in weights.items()}, -bias
        return weights, bias
    assert isinstance(e, ast.Binary), f"the parser lets no {type(e).__name__} into a unit"
    lw, lb = _linear(e.left, known, source)
    rw, rb = _linear(e.right, known, source)
    if e.op in "+-":
        sign = 1.0 if e.op == "+" else -1.0
        weights = dict(lw)
        for k, v in rw.items():
            weights[k] = weights.get(k, Poly()) + v.scaled(sign)
        return weights, lb + rb.scaled(sign)
    if e.op == "*":
        if lw and rw:
            raise _error(
                "a unit's input is a weighted sum; this multiplies two units",
                source,
                e.pos,
                "weights are numbers or parameters: 2*x, ?k*x",
            )
        factor, (weights, bias) = (rb, (lw, lb)) if lw else (lb, (rw, rb))
        return {k: v * factor for k, v in weights.items()}, bias * factor
    if rw or not rb.is_constant or rb.is_zero:
        raise _error("a unit's sum can only be divided by a nonzero number", source, e.pos)
    return {k: v.scaled(1 / rb.constant) for k, v in lw.items()}, lb.scaled(1 / rb.constant)


def _params_of(e: ast.Expr) -> list[ast.Param]:
    return [n for n in ev.names(e) if isinstance(n, ast.Param)]


def _check_names(
    exprs: Iterable[ast.Expr],
    allowed: Iterable[str],
    clause: str,
    source: ast.SourceText | None,
    fix: str,
) -> None:
    allowed = set(allowed)
    for e in exprs:
        for n in ev.names(e):
            if ev.key(n) not in allowed:
                hint = _did_you_mean(ev.key(n), allowed) or fix
                raise _error(
                    f"{clause} uses {ev.key(n)}, which is not declared here", source, n.pos, hint
                )


# ---- the compiler --------------------------------------------------------------------------


class Compiler:
    """Circuit definitions by name, compiled to patterns on first use."""

    def __init__(self, definitions: Iterable[ast.CircuitDef]) -> None:
        self._defs: dict[str, ast.CircuitDef] = {}
        self._cache: dict[str, Pattern] = {}
        self._active: list[str] = []
        for d in definitions:
            if d.name in self._defs:
                raise _error(
                    f"circuit {d.name} is defined twice",
                    d.source,
                    d.pos,
                    "rename one of the definitions",
                )
            self._defs[d.name] = d

    @property
    def names(self) -> tuple[str, ...]:
        """Every circuit this compiler knows, sorted."""
        return tuple(sorted(self._defs))

    def extended(self, definitions: Iterable[ast.CircuitDef]) -> Compiler:
        """A compiler that also knows ``definitions`` (a query's own circuits)."""
        extra = list(definitions)
        for d in extra:
            if d.name in self._defs:
                raise _error(
                    f"circuit {d.name} is already in the library",
                    d.source,
                    d.pos,
                    "choose another name for your circuit",
                )
        child = Compiler([*self._defs.values(), *extra])
        child._cache.update(self._cache)
        return child

    def definition(
        self, name: str, pos: ast.Pos | None = None, source: ast.SourceText | None = None
    ) -> ast.CircuitDef:
        """The parsed definition of ``name``; an unknown name is an error at ``pos`` in
        ``source`` with the closest names."""
        found = self._defs.get(name)
        if found is None:
            raise UnknownCircuitError(name, _closest(name, self._defs), source=source, pos=pos)
        return found

    def pattern(
        self, name: str, pos: ast.Pos | None = None, source: ast.SourceText | None = None
    ) -> Pattern:
        """``name`` compiled, once: later calls share the pattern (patterns are immutable)."""
        if name in self._cache:
            return self._cache[name]
        d = self.definition(name, pos, source)
        if name in self._active:
            loop = " -> ".join([*self._active[self._active.index(name) :], name])
            raise _error(
                f"circuit {name} is defined in terms of itself: {loop}",
                source,
                pos,
                "a circuit cannot contain itself; use repetition (fold+) instead",
            )
        self._active.append(name)
        try:
            compiled = self._body(d) if d.body is not None else self._alias(d)
        finally:
            self._active.pop()
        self._cache[name] = compiled
        return compiled

    # ---- circuits with a body of units ----

    def _body(self, d: ast.CircuitDef) -> Pattern:
        assert d.body is not None and d.inputs is not None and d.outputs is not None
        src = d.source
        defined: dict[str, ast.Pos | None] = {}
        for item in d.body:
            for target in item.targets if isinstance(item, ast.CallDef) else (item.name,):
                if target in d.inputs or target in defined:
                    what = "an input" if target in d.inputs else "defined twice"
                    raise _error(
                        f"{target} is {what}", src, item.pos, "give every unit its own name"
                    )
                defined[target] = item.pos
        for out in d.outputs:
            if out not in defined:
                raise _error(f"output {out} is not defined", src, d.pos, f"add a unit: {out} = ...")
        known = set(d.inputs) | set(defined)
        for item in d.body:
            if isinstance(item, ast.UnitDef):
                for p in _params_of(item.expr):
                    if p.name in known:
                        raise _error(
                            f"parameter ?{p.name} has the name of a unit or input",
                            src,
                            p.pos,
                            "rename the parameter",
                        )

        parts: list[list[tuple[list[Draft], tuple[ast.Compare, ...], str]]] = []
        for item in d.body:
            if isinstance(item, ast.UnitDef):
                weights, bias = _linear(item.expr, known, src)
                draft = Draft(
                    item.name,
                    item.activation,
                    tuple((k, Coef(v)) for k, v in weights.items()),
                    Coef(bias),
                    item.open,
                    item.pos,
                )
                parts.append([([draft], (), "")])
            else:
                parts.append(self._inlined(item, known, src))

        own = {
            p.name
            for item in d.body
            if isinstance(item, ast.UnitDef)
            for p in _params_of(item.expr)
        }
        count = math.prod(len(options) for options in parts)
        if count > MAX_VARIANTS:
            raise _error(
                f"circuit {d.name} has {count} variants (its parts' implementations "
                f"multiply); the limit is {MAX_VARIANTS}",
                src,
                d.pos,
                "call specific implementations (min_skip rather than min)",
            )
        variants = []
        for combo in itertools.product(*parts):
            drafts = [dr for ds, _, _ in combo for dr in ds]
            inherited = tuple(c for _, where, _ in combo for c in where)
            label = ", ".join(v for _, _, v in combo if v)
            params = {
                p for dr in drafts for _, c in (*dr.sources, ("", dr.bias)) for p in c.poly.params
            }
            variants.append((drafts, inherited, label, params))
        shared = set.intersection(*(v[3] for v in variants)) | own
        _check_names(
            d.where,
            shared,
            "WHERE",
            src,
            "WHERE constrains free parameters, written ?name in a unit",
        )
        reference = self._reference(d, d.inputs, d.outputs, shared)
        patterns = [
            build(
                d.name,
                d.inputs,
                d.outputs,
                drafts,
                where=(*d.where, *inherited),
                reference=reference,
                doc=d.doc or "",
                variant=label,
                source=src,
                pos=d.pos,
            )
            for drafts, inherited, label, _ in variants
        ]
        if len(patterns) == 1:
            return patterns[0]
        return Alternation(
            name=d.name,
            inputs=d.inputs,
            outputs=d.outputs,
            reference=reference,
            doc=d.doc or "",
            options=tuple(patterns),
        )

    def _inlined(
        self, call: ast.CallDef, known: set[str], src: ast.SourceText | None
    ) -> list[tuple[list[Draft], tuple[ast.Compare, ...], str]]:
        """A called circuit's flat variants as drafts named for this call site."""
        callee = self.pattern(call.circuit, call.pos, src)
        if len(call.args) != len(callee.inputs) or len(call.targets) != len(callee.outputs):
            raise _error(
                f"{call.circuit} has {_io(callee)}; this call gives it "
                f"{_n(len(call.args), 'input')} and takes {_n(len(call.targets), 'output')}",
                src,
                call.pos,
                f"{call.circuit} is ({', '.join(callee.inputs)}) -> ({', '.join(callee.outputs)})",
            )
        for arg in call.args:
            if arg not in known:
                raise _error(
                    f"{arg} is not an input or a unit of this circuit",
                    src,
                    call.pos,
                    _did_you_mean(arg, known),
                )
        if not bounded(callee):
            raise _error(
                f"{call.circuit} repeats without bound, so it cannot be a unit",
                src,
                call.pos,
                "compose it instead: CIRCUIT c = a >> fold+",
            )
        prefix = call.targets[0]
        options = []
        for flat in expand(callee):
            mapping = {u.name: f"{prefix}.{u.name}" for u in flat.units}
            mapping |= {p: f"{prefix}.{p}" for p in flat.params}
            mapping |= dict(zip(flat.inputs, call.args, strict=True))
            mapping |= dict(zip(flat.outputs, call.targets, strict=True))
            drafts = [replace(dr, pos=call.pos) for dr in drafts_of(flat, mapping)]
            params = {p: f"{prefix}.{p}" for p in flat.params}
            where = ev.rename_conditions(flat.where, params)
            label = flat.variant or flat.name
            options.append((drafts, where, f"{prefix}={label}" if flat.variant else ""))
        return options

    # ---- circuits defined by a circuit expression ----

    def _alias(self, d: ast.CircuitDef) -> Pattern:
        assert d.expr is not None
        src = d.source
        p = self._cexpr(d.expr, src)
        if d.inputs is not None and d.outputs is not None:
            if (len(d.inputs), len(d.outputs)) != (len(p.inputs), len(p.outputs)):
                raise _error(
                    f"{cexpr_text(d.expr)} has {_io(p)}, but {d.name} declares "
                    f"{_n(len(d.inputs), 'input')} and {_n(len(d.outputs), 'output')}",
                    src,
                    d.pos,
                )
            p = self._renamed(p, d.inputs, d.outputs, src, d.pos)
        names = scope(p)
        _check_names(
            d.where,
            names,
            "WHERE",
            src,
            "name parameters of composed circuits by instance: fold[1].c",
        )
        reference = self._reference(d, p.inputs, p.outputs, names) or p.reference
        return replace(
            p, name=d.name, where=(*p.where, *d.where), reference=reference, doc=d.doc or p.doc
        )

    def _renamed(
        self,
        p: Pattern,
        inputs: tuple[str, ...],
        outputs: tuple[str, ...],
        src: ast.SourceText | None,
        pos: ast.Pos | None,
    ) -> Pattern:
        clash = (set(inputs) | set(outputs)) & scope(p)
        if clash:
            raise _error(
                f"{sorted(clash)[0]} is already a parameter of {p.name}",
                src,
                pos,
                "choose other names for the inputs and outputs",
            )
        return rename_io(p, inputs, outputs)

    def _cexpr(self, e: ast.CExpr, src: ast.SourceText | None) -> Pattern:
        if isinstance(e, ast.CircuitRef):
            return self.pattern(e.name, e.pos, src)
        if isinstance(e, ast.Group):
            inner = self._cexpr(e.body, src)
            _check_names(
                e.where,
                scope(inner),
                "WHERE",
                src,
                "a group's WHERE constrains the parameters of its circuits",
            )
            return replace(inner, where=(*inner.where, *e.where))
        name = cexpr_text(e)
        if isinstance(e, ast.Alternation):
            options = [self._cexpr(o, src) for o in e.options]
            first = options[0]
            for o, node in zip(options[1:], e.options[1:], strict=True):
                if (len(o.inputs), len(o.outputs)) != (len(first.inputs), len(first.outputs)):
                    raise _error(
                        f"alternatives differ: {first.name} is {len(first.inputs)} -> "
                        f"{len(first.outputs)}, {o.name} is {len(o.inputs)} -> {len(o.outputs)}",
                        src,
                        node.pos,
                        "alternatives need the same numbers of inputs and outputs",
                    )
            return self._bounded(
                Alternation(
                    name=name, inputs=first.inputs, outputs=first.outputs, options=tuple(options)
                ),
                src,
                e.pos,
            )
        if isinstance(e, ast.Chain):
            parts = [self._cexpr(q, src) for q in e.parts]
            for a, b, node in zip(parts, parts[1:], e.parts[1:], strict=False):
                if len(a.outputs) != len(b.inputs):
                    raise _error(
                        f"{a.name} gives {_n(len(a.outputs), 'output')} but {b.name} takes "
                        f"{_n(len(b.inputs), 'input')}",
                        src,
                        node.pos,
                        "in a >> b, a's outputs feed b's inputs in order",
                    )
            return self._bounded(
                Chain(
                    name=name, inputs=parts[0].inputs, outputs=parts[-1].outputs, parts=tuple(parts)
                ),
                src,
                e.pos,
            )
        body, step = (e.body.body, e.body.where) if isinstance(e.body, ast.Group) else (e.body, ())
        block = self._cexpr(body, src)
        if len(block.inputs) != len(block.outputs):
            raise _error(
                f"{block.name} is repeated, so its outputs feed its inputs, but it has "
                f"{_io(block)}",
                src,
                e.pos,
            )
        repeat = self._bounded(
            Repeat(
                name=name,
                inputs=block.inputs,
                outputs=block.outputs,
                block=block,
                min=e.min,
                max=e.max,
                step=step,
            ),
            src,
            e.pos,
        )
        names = scope(block)
        _check_names(
            step,
            names | {f"next.{n}" for n in names},
            "WHERE",
            src,
            "in a repeated group, c is a block's parameter and next.c the next one's",
        )
        return repeat

    @staticmethod
    def _bounded(p: Pattern, src: ast.SourceText | None, pos: ast.Pos | None) -> Pattern:
        """``p``, if it stays within a query's budget as far as it is known before a store
        says how deep its networks are (repetitions at their minimum); else an error here,
        before anything is unrolled."""
        problem = over_budget(p, None, at_min=True)
        if problem is None and bounded(p):
            problem = over_budget(p, None)
        if problem is not None:
            raise _error(problem, src, pos, BUDGET_FIX)
        return p

    # ---- clauses ----

    def _reference(
        self,
        d: ast.CircuitDef,
        inputs: tuple[str, ...],
        outputs: tuple[str, ...],
        params: set[str] | frozenset[str],
    ) -> Reference | None:
        if d.expect is None:
            return None
        src = d.source
        equations: dict[str, ast.Expr] = {}
        for eq in d.expect.equations:
            assert isinstance(eq.left, ast.Ref)
            out = eq.left.name
            if out not in outputs or out in equations:
                what = "is given twice" if out in equations else "is not an output"
                raise _error(
                    f"EXPECT: {out} {what}",
                    src,
                    eq.pos,
                    f"give one equation per output: {', '.join(outputs)}",
                )
            equations[out] = eq.right
        missing = [o for o in outputs if o not in equations]
        if missing:
            raise _error(
                f"EXPECT says nothing about output {missing[0]}",
                src,
                d.expect.pos,
                f"add {missing[0]} == ... to EXPECT",
            )
        fix = "EXPECT reads the inputs and the free parameters (?name in a unit)"
        _check_names(equations.values(), {*inputs, *params}, "EXPECT", src, fix)
        for dom in d.expect.domains:
            for name in dom.names:
                if name not in inputs:
                    raise _error(
                        f"FOR gives a range to {name}, which is not an input",
                        src,
                        dom.pos,
                        _did_you_mean(name, inputs),
                    )
            _check_names(
                (b for r in dom.ranges for b in r.bounds),
                params,
                "FOR",
                src,
                "ranges are numbers or expressions of the free parameters",
            )
            for r in dom.ranges:
                _check_range(r, src)
        ordered = tuple((o, equations[o]) for o in outputs)
        return Reference(inputs, outputs, ordered, d.expect.domains)

    # ---- queries ----

    def query(self, script: ast.Script) -> CompiledQuery:
        """Compile a query: its own CIRCUIT definitions, then its one action."""
        compiler = self.extended(script.definitions) if script.definitions else self
        for d in script.definitions:
            compiler.pattern(d.name)
        actions = script.actions
        if len(actions) != 1:
            source = next((getattr(s, "source", None) for s in script.statements), None)
            pos = actions[1].pos if len(actions) > 1 else None
            what = "one query asks one thing" if actions else "the query asks nothing"
            raise _error(
                what, source, pos, "end with one MATCH, COUNT MODELS, SHOW CIRCUITS or COMPARE"
            )
        return compiler.action(actions[0])

    def action(self, a: ast.Action) -> CompiledQuery:
        """One statement compiled, its circuit and WHERE resolved against this compiler."""
        if isinstance(a, ast.ShowCircuits):
            return ShowQuery(a.pattern, a.explain)
        if isinstance(a, ast.CompareModels):
            return CompareQuery(a.model_a, a.model_b, a.tolerance, a.explain, a.timeout)
        pattern = self._target(a.target, a.where, a.source)
        if isinstance(a, ast.Match):
            for pin in a.pins:
                if pin.name not in (*pattern.inputs, *pattern.outputs, *_unit_names(pattern)):
                    raise _error(
                        f"{pattern.name} has no variable {pin.name!r} to pin",
                        a.source,
                        pin.pos,
                        f"pin one of {', '.join(pattern.inputs + pattern.outputs)}",
                    )
            return MatchQuery(
                pattern,
                a.models,
                a.tolerance,
                a.limit,
                a.explain,
                {p.name: p.neuron for p in a.pins},
                a.exact,
                a.timeout,
            )
        return CensusQuery(
            pattern, a.group_by, a.models, a.tolerance, a.explain, a.exact, a.timeout
        )

    def _target(
        self, t: ast.Target, where: tuple[ast.Compare, ...], src: ast.SourceText | None
    ) -> Pattern:
        p = self._cexpr(t.expr, src)
        inputs = t.inputs if t.inputs is not None else p.inputs
        outputs = t.outputs if t.outputs is not None else p.outputs
        if (len(inputs), len(outputs)) != (len(p.inputs), len(p.outputs)):
            raise _error(
                f"{p.name} is ({', '.join(p.inputs)}) -> ({', '.join(p.outputs)}): {_io(p)}",
                src,
                t.pos,
                f"name each of them: MATCH {p.name}({', '.join(p.inputs)})",
            )
        if (inputs, outputs) != (p.inputs, p.outputs):
            p = self._renamed(p, inputs, outputs, src, t.pos)
        _check_names(
            where, scope(p), "WHERE", src, "WHERE constrains the circuit's free parameters"
        )
        return replace(p, where=(*p.where, *where)) if where else p

    # ---- reference networks ----

    def example(self, name: str) -> ReferenceExample:
        """The hand-wired network of a circuit's EXAMPLE clause, as a NeuronGraph.

        Network inputs are ``input:<i>`` in the circuit's input order; every other unit keeps
        its EXAMPLE name; linear units that are not outputs are folded into their readers.
        """
        d = self.definition(name)
        p = self.pattern(name)
        src = d.source
        if d.example is None:
            raise _error(
                f"circuit {name} has no EXAMPLE",
                src,
                d.pos,
                "add EXAMPLE { unit = relu(...) ... } with concrete weights",
            )
        ctx = Context(name, src, {})
        known = set(p.inputs) | {u.name for u in d.example.units if isinstance(u, ast.UnitDef)}
        drafts = []
        for item in d.example.units:
            if not isinstance(item, ast.UnitDef) or item.open:
                raise _error(
                    "EXAMPLE units are written out with their weights",
                    src,
                    item.pos,
                    "write p = relu(0.5*x - 1), not a call or `...`",
                )
            weights, bias = _linear(item.expr, known, src)
            if any(not w.is_constant for w in weights.values()) or not bias.is_constant:
                raise _error(
                    "EXAMPLE weights are numbers",
                    src,
                    item.pos,
                    "put parameter values in EXAMPLE WITH c = 1",
                )
            drafts.append(
                Draft(
                    item.name,
                    item.activation,
                    tuple((k, Coef(v)) for k, v in weights.items()),
                    Coef(bias),
                    False,
                    item.pos,
                )
            )
        for out in p.outputs:
            if out not in known:
                raise _error(f"EXAMPLE does not define output {out}", src, d.pos)
        ordered = topological(drafts, ctx)
        check_reach(ordered, p.inputs, p.outputs, ctx, d.pos)
        kept = fold(ordered, set(p.outputs), ctx)
        outputs = set(p.outputs)
        ids = {n: f"input:{i}" for i, n in enumerate(p.inputs)}
        units = [Unit(ids[n], UnitKind.INPUT) for n in p.inputs]
        hidden = [dr for dr in kept if dr.name not in outputs]
        finals = sorted(
            (dr for dr in kept if dr.name in outputs), key=lambda dr: p.outputs.index(dr.name)
        )
        reads_output = any(s in outputs for dr in kept for s, _ in dr.sources)
        for dr in kept if reads_output else [*hidden, *finals]:
            units.append(
                Unit(
                    dr.name,
                    UnitKind.OUTPUT if dr.name in outputs else UnitKind.HIDDEN,
                    dr.activation or Activation.IDENTITY,
                    dr.bias.value,
                    {ids.get(s, s): c.value for s, c in dr.sources},
                )
            )
        names = scope(p)
        params: dict[str, float] = {}
        for r, value in d.example.settings:
            if r.qualified not in names:
                raise _error(
                    f"EXAMPLE sets {r.qualified}, which is not a parameter",
                    src,
                    r.pos,
                    _did_you_mean(r.qualified, names),
                )
            _check_names((value,), (), "EXAMPLE WITH", src, "parameter values are numbers")
            params[r.qualified] = float(ev.evaluate(value, {}))
        return ReferenceExample(NeuronGraph(tuple(units)), params)


def compile_query(query: str | ast.Script, definitions: Compiler) -> CompiledQuery:
    """Where compiling starts: parse ``query`` (unless it is parsed already) and compile it
    against ``definitions`` (a library's, which the query's own CIRCUITs extend). A pattern
    with unbounded repetition is finished by ``unroll.unrolled`` once the store's depth is
    known."""
    script = parse(query) if isinstance(query, str) else query
    return definitions.query(script)

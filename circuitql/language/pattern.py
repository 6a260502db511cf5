"""Compiled patterns: what the engine runs. Built by ``circuitql.language.compile``.

A flat ``CircuitPattern`` is a small graph in the coordinates of the canonical form: every unit
with its activation, its weighted inputs and bias, whether its fan-in is open, and the
signature constraint a store can look up by index. ``Alternation``, ``Chain`` and ``Repeat``
keep the regular-language structure; ``circuitql.language.compile.expand`` unrolls them into flat
patterns, which is all the matcher ever needs to see.

Weights are *coefficients*: an exact number (compared as a ratio with the other weights of the
same unit), a sign whose magnitude is unknown, or a polynomial in free parameters that the
matcher fits. Every pattern prints to a stable text form (``text()``), the golden-file format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from circuitql.grammar import ast
from circuitql.grammar.printer import expr_text, number, range_text
from circuitql.graph import Activation, UnitKind
from circuitql.indexer.signature import bias_class_for
from circuitql.language import expr as ev
from circuitql.lazy import cached_property
from circuitql.records import ACTIVATION_CODES, DEFAULT_SIGNIFICANCE, BiasClass, Signature

Monomial = tuple[str, ...]  # sorted parameter names; a repeated name is a power

DEFAULT_INTERVAL = (-4.0, 4.0)  # probe range of an input no FOR clause mentions


# ---- coefficients --------------------------------------------------------------------------


@dataclass(frozen=True)
class Poly:
    """A polynomial in free parameters: ``sum(factor * prod(params))``, terms sorted."""

    terms: tuple[tuple[Monomial, float], ...] = ()

    @staticmethod
    def const(value: float) -> Poly:
        """A constant; zero is the empty sum, like every zero."""
        return Poly((((), float(value)),)) if value != 0 else Poly()

    @staticmethod
    def param(name: str) -> Poly:
        """One free parameter, with factor 1."""
        return Poly((((name,), 1.0),))

    @staticmethod
    def _of(items: Mapping[Monomial, float]) -> Poly:
        return Poly(tuple(sorted((m, f) for m, f in items.items() if f != 0)))

    def __add__(self, other: Poly) -> Poly:
        acc = dict(self.terms)
        for mono, factor in other.terms:
            acc[mono] = acc.get(mono, 0.0) + factor
        return Poly._of(acc)

    def __neg__(self) -> Poly:
        return self.scaled(-1.0)

    def __mul__(self, other: Poly) -> Poly:
        acc: dict[Monomial, float] = {}
        for m1, f1 in self.terms:
            for m2, f2 in other.terms:
                mono = tuple(sorted(m1 + m2))
                acc[mono] = acc.get(mono, 0.0) + f1 * f2
        return Poly._of(acc)

    def scaled(self, k: float) -> Poly:
        """Every factor multiplied by ``k``. The terms keep their order (sorted by monomial,
        each monomial once), so none is sorted again: a search scales a pattern's
        coefficients for every candidate it fits."""
        return Poly(tuple((m, f * k) for m, f in self.terms if f * k != 0))

    @property
    def is_zero(self) -> bool:
        """No terms: terms with a zero factor are never kept."""
        return not self.terms

    @cached_property
    def is_constant(self) -> bool:
        """No term mentions a parameter (zero included)."""
        return all(not m for m, _ in self.terms)

    @cached_property
    def constant(self) -> float:
        """The term without parameters (0.0 when there is none)."""
        return sum(f for m, f in self.terms if not m)

    @property
    def params(self) -> frozenset[str]:
        """The free parameters any term mentions."""
        return frozenset(p for m, _ in self.terms for p in m)

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The value at ``values``, which must bind every parameter."""
        return sum(f * math.prod(values[p] for p in m) for m, f in self.terms)

    def sign(self, param_signs: Mapping[str, int]) -> int | None:
        """The sign every parameter value allowed by ``param_signs`` gives, when there is one."""
        if self.is_zero:
            return 0
        if len(self.terms) != 1:
            return None
        mono, factor = self.terms[0]
        sign = 1 if factor > 0 else -1
        for p in mono:
            if p not in param_signs:
                return None
            sign *= param_signs[p]
        return sign

    def renamed(self, mapping: Mapping[str, str]) -> Poly:
        """Parameters renamed (unmapped ones kept); terms that become alike are merged."""
        return Poly._of({tuple(sorted(mapping.get(p, p) for p in m)): f for m, f in self.terms})

    def text(self) -> str:
        """Golden-file form: ``?a*?b`` per monomial, factors to six significant digits."""
        if not self.terms:
            return "0"
        parts = []
        for mono, factor in self.terms:
            names = "*".join(f"?{p}" for p in mono)
            if not mono:
                parts.append(_num(factor))
            elif factor == 1:
                parts.append(names)
            elif factor == -1:
                parts.append(f"-{names}")
            else:
                parts.append(f"{_num(factor)}*{names}")
        return " + ".join(parts).replace("+ -", "- ")


def _num(value: float) -> str:
    """Six significant digits: stable across platforms, enough to read a ratio."""
    return number(float(f"{value:.6g}"))


class CoefKind(StrEnum):
    """How much of a coefficient a pattern states, and so how the matcher compares it."""

    EXACT = "exact"  # a number; compared as a ratio within the unit
    SIGN = "sign"  # only the sign is known
    FREE = "free"  # a polynomial in free parameters


@dataclass(frozen=True)
class Coef:
    """One weight or bias of a pattern unit, in canonical coordinates."""

    poly: Poly
    sign_only: bool = False

    @cached_property
    def kind(self) -> CoefKind:
        """Asked for every weight of every candidate the search fits: computed once."""
        if self.sign_only:
            return CoefKind.SIGN
        return CoefKind.EXACT if self.poly.is_constant else CoefKind.FREE

    @property
    def value(self) -> float:
        """The number of an exact coefficient (the nominal +-1 of a sign-only one)."""
        return self.poly.constant

    @property
    def is_zero(self) -> bool:
        """Zero as a polynomial: no terms."""
        return self.poly.is_zero

    def sign(self, param_signs: Mapping[str, int]) -> int | None:
        """The sign under the parameter signs WHERE pins, or None when it is unknown."""
        return self.poly.sign(param_signs)

    def text(self) -> str:
        """``+any``/``-any`` for a sign-only coefficient, else the polynomial's text."""
        if self.sign_only:
            return "+any" if self.value > 0 else "-any"
        return self.poly.text()


ZERO = Coef(Poly())


# ---- per-unit signature constraints --------------------------------------------------------


def _at_least(k: int) -> str:
    """Regex for a decimal count >= k (exact for k < 10, necessary-only above)."""
    if k <= 0 or k >= 10:
        return r"\d+"
    return rf"(?:[{k}-9]|[1-9]\d+)"


@dataclass(frozen=True)
class UnitConstraint:
    """What a canonical neuron's signature must satisfy to stand for a pattern unit.

    Every field is a field of the coarse signature, i.e. of the token, so candidate lookup is
    an index lookup (``columns``) or a token match (``token_regex``). ``n_pos``/``n_neg`` and
    ``out_pos``/``out_neg`` are lower bounds; ``fan_in`` is exact when the fan-in is closed,
    which makes the sign counts exact when every pattern weight has a known sign.
    """

    kind: UnitKind | None
    activation: Activation | None
    fan_in: int | None
    n_pos: int = 0
    n_neg: int = 0
    bias_class: BiasClass | None = None
    out_pos: int = 0
    out_neg: int = 0
    # An upper bound on an open fan-in (an approximate search's room for split halves and
    # linear paths): the lookup key ``fan_in_max``, a bound the stores' indexes serve. An
    # open fan-in is also bounded below by the sign counts (``fan_in_min``): a network input
    # or a dense layer's unit then never leaves the index.
    fan_in_max: int | None = None
    # The unit's depth in its pattern (pattern inputs are 0, a unit is one more than its
    # deepest source): a pattern edge is a network edge, and a network unit's layer is its
    # longest-path depth, so no unit of a lower layer can stand for it. The lookup key
    # ``layer_min``: an approximate search's open fan-ins then still tell a circuit's output
    # apart from a first-layer unit of a dense host, which reads as few inputs.
    layer_min: int = 0
    # At most this many groups of near-parallel units among the significant inputs (the
    # lookup key ``groups_max``; a neuron whose groups were not counted stores 0, and is
    # admitted): an approximate search's reader of one hidden unit, whose extra inputs may
    # only be halves of that unit's split.
    groups_max: int | None = None

    @property
    def fan_in_range(self) -> tuple[int, int | None]:
        """The fan-ins admitted, as (lowest, highest or None)."""
        if self.fan_in is not None:
            return self.fan_in, self.fan_in
        return self.n_pos + self.n_neg, self.fan_in_max

    @property
    def signs_exact(self) -> bool:
        """A closed fan-in with every weight's sign known: ``n_pos``/``n_neg`` are exact counts, not
        lower bounds."""
        return self.fan_in is not None and self.n_pos + self.n_neg == self.fan_in

    def columns(self) -> dict[str, object]:
        """The exact-match signature columns a store's index can serve."""
        cols: dict[str, object] = {}
        if self.kind is not None:
            cols["kind"] = self.kind.value
        if self.activation is not None:
            cols["activation"] = self.activation.value
        if self.fan_in is not None:
            cols["fan_in"] = self.fan_in
        if self.signs_exact:
            cols["n_pos"] = self.n_pos
            cols["n_neg"] = self.n_neg
        else:
            cols.update(
                (key, count)
                for key, count in (("n_pos_min", self.n_pos), ("n_neg_min", self.n_neg))
                if count
            )
        if self.bias_class is not None:
            cols["bias_class"] = self.bias_class.value
        if self.fan_in_max is not None:
            cols["fan_in_max"] = self.fan_in_max
        if self.fan_in is None and self.n_pos + self.n_neg:
            cols["fan_in_min"] = self.n_pos + self.n_neg
        if self.layer_min > 1:
            cols["layer_min"] = self.layer_min
        if self.groups_max is not None:
            cols["groups_max"] = self.groups_max
        return cols

    def admits(self, sig: Signature) -> bool:
        """Whether a signature satisfies every field, including those ``columns`` cannot serve."""
        if self.kind is not None and sig.kind is not self.kind:
            return False
        if self.activation is not None and sig.activation is not self.activation:
            return False
        if self.fan_in is not None and sig.fan_in != self.fan_in:
            return False
        if self.fan_in_max is not None and sig.fan_in > self.fan_in_max:
            return False
        if self.bias_class is not None and sig.bias_class is not self.bias_class:
            return False
        return (
            sig.n_pos >= self.n_pos
            and sig.n_neg >= self.n_neg
            and sig.out_pos >= self.out_pos
            and sig.out_neg >= self.out_neg
        )

    def _fan_in_regex(self) -> str:
        if self.fan_in is None:
            return rf"\(\+{_at_least(self.n_pos)}-{_at_least(self.n_neg)}\)"
        pairs = [
            rf"\(\+{p}-{self.fan_in - p}\)" for p in range(self.n_pos, self.fan_in - self.n_neg + 1)
        ]
        return "(?:" + "|".join(pairs) + ")" if pairs else "(?!)"

    @cached_property
    def token_regex(self) -> re.Pattern[str]:
        """Tokens (``circuitql.indexer.signature``) of every admitted signature.

        Exact for hidden units; for a unit whose kind is open it also admits output tokens of
        any activation, since an output's token does not spell its activation.
        """
        bias = "[-+0]" if self.bias_class is None else re.escape(self.bias_class.value)
        fan_out = rf">\(\+{_at_least(self.out_pos)}-{_at_least(self.out_neg)}\)"
        fan_in = self._fan_in_regex() + "b" + bias
        if self.activation is None:
            codes = "|".join(re.escape(c) for c in sorted(ACTIVATION_CODES.values()))
        else:
            codes = re.escape(ACTIVATION_CODES[self.activation])
        forms = []
        if self.kind in (None, UnitKind.HIDDEN):
            forms.append(f"(?:{codes}){fan_in}{fan_out}")
        if self.kind in (None, UnitKind.OUTPUT):
            forms.append(f"y{fan_in}")
        input_ok = (
            self.kind in (None, UnitKind.INPUT)
            and self.fan_in in (None, 0)
            and self.n_pos == self.n_neg == 0
            and self.bias_class in (None, BiasClass.ZERO)
            and self.activation in (None, Activation.IDENTITY)
        )
        if input_ok:
            forms.append(f"x{fan_out}")
        return re.compile("|".join(f"(?:{f})" for f in forms))

    def admits_token(self, token: str) -> bool:
        """Whether the whole of ``token`` matches ``token_regex``."""
        return self.token_regex.fullmatch(token) is not None

    @property
    def token_prefix(self) -> str:
        """The longest prefix every admitted token starts with ("" when kinds differ)."""
        if self.kind is UnitKind.OUTPUT:
            head = "y"
        elif self.kind is UnitKind.HIDDEN and self.activation is not None:
            head = ACTIVATION_CODES[self.activation]
        else:
            return ""
        if not self.signs_exact:
            return head + "(+"
        head += f"(+{self.n_pos}-{self.n_neg})b"
        if self.bias_class is None:
            return head
        head += self.bias_class.value
        return head + ">(+" if self.kind is UnitKind.HIDDEN else head

    def text(self) -> str:
        """Golden-file form, one line; ``any`` for a field left open."""
        parts = [f"kind={self.kind.value if self.kind else 'any'}"]
        parts.append(f"activation={self.activation.value if self.activation else 'any'}")
        if self.fan_in is None:
            parts.append(f"fan-in>=(+{self.n_pos}-{self.n_neg})")
        elif self.signs_exact:
            parts.append(f"fan-in=(+{self.n_pos}-{self.n_neg})")
        else:
            parts.append(f"fan-in={self.fan_in} with>=(+{self.n_pos}-{self.n_neg})")
        parts.append(f"bias={self.bias_class.value if self.bias_class else 'any'}")
        parts.append(f"fan-out>=(+{self.out_pos}-{self.out_neg})")
        return " ".join(parts)


# ---- units and circuits --------------------------------------------------------------------


class Role(StrEnum):
    """A pattern unit's place in its circuit. Unlike a network's ``UnitKind``, a pattern input may
    bind to any unit of a network."""

    INPUT = "input"
    HIDDEN = "hidden"
    OUTPUT = "output"


@dataclass(frozen=True)
class PatternUnit:
    """One pattern unit. ``activation`` None: any activation (an output written as a bare sum,
    whose value is its pre-activation). Inputs bind to any unit of a network."""

    name: str
    role: Role
    activation: Activation | None
    inputs: tuple[tuple[str, Coef], ...]
    bias: Coef
    open_fan_in: bool
    constraint: UnitConstraint

    def formula(self) -> str:
        """``act(coef*source, ..., bias b)``, with a trailing ``...`` for an open fan-in."""
        terms = [f"{c.text()}*{src}" for src, c in self.inputs]
        if not self.bias.is_zero:
            terms.append(f"bias {self.bias.text()}")
        if self.open_fan_in:
            terms.append("...")
        act = self.activation.value if self.activation else "any"
        return f"{act}({', '.join(terms)})"


@dataclass(frozen=True)
class Reference:
    """The reference function of a circuit: its EXPECT clause, evaluated over numpy arrays.

    ``equations`` maps each output to an expression of the inputs and free parameters;
    ``domains`` says where to probe. Built from the parsed AST; renaming and composition are
    AST substitutions, so a composed circuit's reference is again an expression.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    equations: tuple[tuple[str, ast.Expr], ...]
    domains: tuple[ast.Domain, ...] = ()

    @cached_property
    def _compiled(self) -> tuple[ev.Compiled, ...]:
        exprs = dict(self.equations)
        return tuple(ev.compile_expr(exprs[o]) for o in self.outputs)

    @cached_property
    def ranged(self) -> frozenset[str]:
        """The inputs a FOR clause gives a range of their own (the others are probed where
        the model lives)."""
        return frozenset(name for dom in self.domains for name in dom.names)

    @property
    def params(self) -> frozenset[str]:
        """The free parameters the equations and probe ranges read: every name not an input."""
        found = {ev.key(n) for _, e in self.equations for n in ev.names(e)}
        for dom in self.domains:
            for r in dom.ranges:
                found |= {ev.key(n) for b in r.bounds for n in ev.names(b)}
        return frozenset(found - set(self.inputs))

    def __call__(
        self, x: np.ndarray | Mapping[str, np.ndarray], params: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """Outputs, shape (batch, n_outputs), for inputs given as (batch, n_inputs) columns in
        ``inputs`` order or as a mapping from input name to values."""
        env: dict[str, ev.Value] = dict(params or {})
        if isinstance(x, Mapping):
            env.update(x)
            batch = len(next(iter(x.values()))) if x else 1
        else:
            x = np.atleast_2d(np.asarray(x, dtype=np.float64))
            env.update({name: x[:, i] for i, name in enumerate(self.inputs)})
            batch = x.shape[0]
        cols = [np.broadcast_to(f(env), (batch,)) for f in self._compiled]
        return np.stack(cols, axis=1)

    def probes(
        self,
        rng: np.random.Generator,
        n: int,
        params: Mapping[str, float] | None = None,
        intervals: Mapping[str, tuple[float, float]] | None = None,
    ) -> np.ndarray:
        """``n`` random input rows drawn from the FOR ranges; an input no FOR clause mentions
        is drawn from ``intervals`` (a model's domain), else from ``DEFAULT_INTERVAL``."""
        env = dict(params or {})
        ranges: dict[str, tuple[ast.Range, ...]] = {}
        for dom in self.domains:
            for name in dom.names:
                ranges[name] = dom.ranges
        cols = []
        for name in self.inputs:
            options = ranges.get(name)
            if options is None:
                cols.append(rng.uniform(*(intervals or {}).get(name, DEFAULT_INTERVAL), size=n))
                continue
            pick = rng.integers(len(options), size=n)
            col = np.empty(n)
            for i, r in enumerate(options):
                mask = pick == i
                col[mask] = _sample(r, rng, int(mask.sum()), env)
            cols.append(col)
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    def renamed(self, mapping: Mapping[str, str]) -> Reference:
        """Inputs, outputs and parameters renamed everywhere, probe ranges included."""

        def name(n: str) -> str:
            return mapping.get(n, n)

        def domain(d: ast.Domain) -> ast.Domain:
            ranges = tuple(
                ast.Range(r.kind, tuple(ev.rename(b, mapping) for b in r.bounds)) for r in d.ranges
            )
            return ast.Domain(tuple(name(n) for n in d.names), ranges)

        return Reference(
            tuple(name(n) for n in self.inputs),
            tuple(name(n) for n in self.outputs),
            tuple((name(o), ev.rename(e, mapping)) for o, e in self.equations),
            tuple(domain(d) for d in self.domains),
        )

    def text(self) -> str:
        """Golden-file form: an ``expect`` line per output, a ``probe`` line per FOR domain."""
        lines = [f"expect {o} == {expr_text(e)}" for o, e in self.equations]
        for dom in self.domains:
            ranges = " | ".join(range_text(r) for r in dom.ranges)
            lines.append(f"probe {', '.join(dom.names)} in {ranges}")
        return "\n".join(lines)


# Probe values a range may reach: beyond, a network's sums overflow or lose every digit.
PROBE_LIMIT = 1e12


class ProbeRangeError(ValueError):
    """A FOR range that cannot be sampled (empty, reversed, infinite or too far out)."""


def range_problem(kind: str, bounds: Sequence[float]) -> str | None:
    """What is wrong with a FOR range whose endpoints are ``bounds``, or None: one rule for
    the compiler (constant ranges) and the verifier (ranges of fitted parameters)."""
    if not all(math.isfinite(b) and abs(b) <= PROBE_LIMIT for b in bounds):
        return f"its endpoints must be finite numbers within +-{PROBE_LIMIT:g}"
    if kind == "interval" and bounds[0] > bounds[1]:
        return f"[{bounds[0]:g}, {bounds[1]:g}] is reversed: write [low, high]"
    if kind == "integers" and math.ceil(bounds[0]) >= math.ceil(bounds[1]):
        return f"INTEGERS [{bounds[0]:g}, {bounds[1]:g}) holds no integer"
    return None


def _sample(r: ast.Range, rng: np.random.Generator, n: int, env: Mapping[str, float]) -> np.ndarray:
    bounds = [float(ev.evaluate(b, env)) for b in r.bounds]
    problem = range_problem(r.kind, bounds)
    if problem is not None:
        raise ProbeRangeError(problem)
    if r.kind == "interval":
        return rng.uniform(bounds[0], bounds[1], size=n)
    if r.kind == "values":
        return rng.choice(np.asarray(bounds), size=n)
    return rng.integers(math.ceil(bounds[0]), math.ceil(bounds[1]), size=n).astype(np.float64)


def _io(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> str:
    outs = outputs[0] if len(outputs) == 1 else f"({', '.join(outputs)})"
    return f"({', '.join(inputs)}) -> {outs}"


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


@dataclass(frozen=True, kw_only=True)
class _Node:
    """Fields every pattern node has: the name it was defined under, its inputs and outputs,
    WHERE constraints over its free parameters, its reference function and its docstring."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    where: tuple[ast.Compare, ...] = ()
    reference: Reference | None = None
    doc: str = field(default="", compare=False)

    @cached_property
    def where_sides(self) -> tuple[tuple[ev.Compiled, str, ev.Compiled], ...]:
        """Each WHERE constraint as (left side, comparison, right side), the sides compiled
        once: a search checks them on every candidate it fits (is_even's 4,500 times)."""
        return tuple((ev.compile_expr(c.left), c.op, ev.compile_expr(c.right)) for c in self.where)

    def _header(self, kind: str) -> list[str]:
        lines = [f"{kind} {self.name}{_io(self.inputs, self.outputs)}"]
        lines += [f"  where {expr_text(c)}" for c in self.where]
        if self.reference is not None:
            lines += ["  " + line for line in self.reference.text().splitlines()]
        return lines


@dataclass(frozen=True, kw_only=True)
class CircuitPattern(_Node):
    """A flat pattern: units in topological order, inputs first."""

    units: tuple[PatternUnit, ...] = ()
    params: tuple[str, ...] = ()
    variant: str = ""
    # A unit is linear with its range touching its kink (relu(|x|)): a network may write it
    # as a neuron or fold it into its readers, and the pattern has a form for each.
    touches: bool = field(default=False, compare=False)

    @cached_property
    def by_name(self) -> dict[str, PatternUnit]:
        """Units keyed by name, built once."""
        return {u.name: u for u in self.units}

    def unit(self, name: str) -> PatternUnit:
        """The unit named ``name``; KeyError if none is."""
        return self.by_name[name]

    @property
    def hidden(self) -> tuple[PatternUnit, ...]:
        """The hidden units, in topological order."""
        return tuple(u for u in self.units if u.role is Role.HIDDEN)

    @cached_property
    def bare_sums(self) -> frozenset[str]:
        """Computed units with a zero bias and no activation but the identity: sums whose
        bias an approximate match lets move, to cancel what the units before it moved."""
        return frozenset(
            u.name
            for u in self.units
            if u.role is not Role.INPUT
            and u.bias.is_zero
            and u.activation in (None, Activation.IDENTITY)
        )

    @cached_property
    def input_kinks(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Rectifiers with a zero bias that read circuit inputs alone, each with those
        inputs: kinks an approximate match may measure against the inputs' range, where the
        inputs are bound to network inputs."""
        return tuple(
            (u.name, tuple(src for src, _ in u.inputs))
            for u in self.units
            if u.role is not Role.INPUT
            and u.bias.is_zero
            and u.inputs
            and u.activation in (Activation.RELU, Activation.LEAKY_RELU)
            and all(self.unit(src).role is Role.INPUT for src, _ in u.inputs)
        )

    def text(self) -> str:
        """Golden-file form: the header, then each unit's formula, constraint and token prefix."""
        lines = self._header("circuit")
        if self.variant:
            lines.insert(1, f"  variant {self.variant}")
        if self.params:
            lines.insert(1, f"  params {', '.join(self.params)}")
        for u in self.units:
            head = f"  {u.role.value} {u.name}"
            if u.role is not Role.INPUT:
                head += f" = {u.formula()}"
            lines.append(head)
            lines.append(f"    {u.constraint.text()}")
            if u.constraint.token_prefix:
                lines.append(f"    token {u.constraint.token_prefix}...")
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Alternation(_Node):
    """Any one of ``options``: a match of one option matches the whole."""

    options: tuple[Pattern, ...]

    def text(self) -> str:
        """Golden-file form: the header, then each option indented."""
        lines = self._header("alternation")
        lines += [_indent(o.text()) for o in self.options]
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Chain(_Node):
    """Composition: part i's outputs are part i+1's inputs, in order."""

    parts: tuple[Pattern, ...]

    def text(self) -> str:
        """Golden-file form: the header, then each part indented, in order."""
        lines = self._header("chain")
        lines += [_indent(p.text()) for p in self.parts]
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Repeat(_Node):
    """``block`` repeated ``min``..``max`` times (``max`` None: unbounded), each block's
    outputs feeding the next one's inputs. ``step`` constrains consecutive blocks: in it, a
    plain name is a parameter of one block and ``next.<name>`` the same parameter of the next.
    """

    block: Pattern
    min: int
    max: int | None
    step: tuple[ast.Compare, ...] = ()

    @property
    def links(self) -> tuple[tuple[str, str], ...]:
        """(output of block i, input of block i+1) pairs: the units linking the blocks."""
        return tuple(zip(self.block.outputs, self.block.inputs, strict=True))

    def text(self) -> str:
        """Golden-file form: the header with the count, links and steps, then the block indented."""
        count = f"{{{self.min},{'' if self.max is None else self.max}}}"
        lines = self._header(f"repeat{count}")
        lines += [f"  link {o} -> {i}" for o, i in self.links]
        lines += [f"  step {expr_text(c)}" for c in self.step]
        lines.append(_indent(self.block.text()))
        return "\n".join(lines)


Pattern = CircuitPattern | Alternation | Chain | Repeat


def bias_class_of(bias: float, weights: Iterable[float]) -> BiasClass:
    """The signature's own bias rule, applied to a pattern unit's canonical numbers."""
    return bias_class_for(bias, max((abs(w) for w in weights), default=0.0), DEFAULT_SIGNIFICANCE)


def constraints_hold(where: Iterable[ast.Compare], values: Mapping[str, float]) -> bool:
    """Whether fitted parameter values satisfy WHERE constraints (names as ``expr.key``)."""
    return all(bool(ev.evaluate(c, values)) for c in where)

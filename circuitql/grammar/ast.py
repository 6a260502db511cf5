"""The query AST: frozen dataclasses, the only form of a query that leaves the grammar package.

Positions (``pos``) and source text ride along for error messages but are excluded from
equality, so a query printed by ``printer.py`` and parsed again compares equal to the original
even though every token moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from circuitql.graph import Activation


@dataclass(frozen=True)
class Pos:
    """A place in query text: line and column, counted from 1 as lark counts them."""

    line: int
    column: int


@dataclass(frozen=True)
class SourceText:
    """Where a statement came from: a file name or ``<query>``, and the whole text."""

    origin: str
    text: str


# ---- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A number literal, always a float: ``2`` and ``2.0`` parse alike."""

    value: float
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Ref:
    """A name: ``x``, ``next.c``, ``fold[1].c``. ``qualified`` is the spelling used as a key."""

    name: str
    index: int | None = None
    attrs: tuple[str, ...] = ()
    pos: Pos | None = field(default=None, compare=False, repr=False)

    @property
    def qualified(self) -> str:
        """The name as written, index and attributes included: ``fold[1].c``."""
        head = self.name if self.index is None else f"{self.name}[{self.index}]"
        return ".".join((head, *self.attrs))


@dataclass(frozen=True)
class Param:
    """A free parameter, ``?c``: a number the matcher fits to each candidate."""

    name: str
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Unary:
    """A sign applied to an operand: ``-x``, ``+x``."""

    op: str  # "+" or "-"
    operand: Expr
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Binary:
    """Arithmetic, left-associative: ``a - b - c`` is ``(a - b) - c``."""

    op: str  # "+", "-", "*", "/"
    left: Expr
    right: Expr
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Compare:
    """An equation in EXPECT, a constraint in WHERE; evaluated, it gives 1.0 or 0.0."""

    op: str  # "==", "!=", "<", "<=", ">", ">="
    left: Expr
    right: Expr
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    """``f(args)``; ``open`` marks a trailing ``...`` (open fan-in, only on activations)."""

    func: str
    args: tuple[Expr, ...]
    open: bool = False
    pos: Pos | None = field(default=None, compare=False, repr=False)


Expr = Num | Ref | Param | Unary | Binary | Compare | Call

# Functions of the EXPECT/WHERE expression language: name -> (min args, max args or None).
# The grammar checks names and arity; circuitql/language/expr.py supplies the implementations.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
    "relu": (1, 1),
    "sigmoid": (1, 1),
    "tanh": (1, 1),
    "step": (1, 1),
    "mod": (2, 2),
}

# Activation spellings accepted in unit definitions; the printer writes the first of each.
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation.RELU,
    "leaky_relu": Activation.LEAKY_RELU,
    "sigmoid": Activation.SIGMOID,
    "tanh": Activation.TANH,
    "gelu": Activation.GELU,
    "linear": Activation.IDENTITY,
    "identity": Activation.IDENTITY,
}
ACTIVATION_SPELLING: dict[Activation, str] = {}
for _spelling, _activation in ACTIVATIONS.items():
    ACTIVATION_SPELLING.setdefault(_activation, _spelling)


# ---- circuit bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitDef:
    """``p = relu(x - ?c)``. ``activation`` is None for a bare sum (``y = a - d``): a linear
    unit whose activation, when it is an output, is left to the network."""

    name: str
    activation: Activation | None
    expr: Expr
    open: bool = False
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CallDef:
    """``m = min(a, b)`` or ``p, n = detector_pair(x)``: another circuit used as a part."""

    targets: tuple[str, ...]
    circuit: str
    args: tuple[str, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


BodyItem = UnitDef | CallDef


# ---- circuit expressions -------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitRef:
    """A circuit used by name; whether the name is defined is decided at compile time."""

    name: str
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Alternation:
    """``a | b``: any one of the options."""

    options: tuple[CExpr, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Chain:
    """Composition: each part's outputs feed the next part's inputs, in order."""

    parts: tuple[CExpr, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Repeat:
    """``body{min,max}`` (``body+`` is ``{1,}``): the body chained with itself that many times."""

    body: CExpr
    min: int
    max: int | None  # None: unbounded
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Group:
    """``(body WHERE ...)``; under a repetition, ``next.p`` names the next block's ``p``."""

    body: CExpr
    where: tuple[Compare, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


CExpr = CircuitRef | Alternation | Chain | Repeat | Group


# ---- clauses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """One probe range: ``[lo, hi]`` (interval), ``{v, ...}`` (values) or
    ``INTEGERS [lo, hi)`` (integers)."""

    kind: str
    bounds: tuple[Expr, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Domain:
    """``FOR a, b IN {0, 1}``: the probe values of some inputs; ranges joined by ``|``."""

    names: tuple[str, ...]
    ranges: tuple[Range, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Expect:
    """``EXPECT y == ... FOR ...``: the reference function a circuit must compute, and where
    to probe it."""

    equations: tuple[Compare, ...]  # each ``output == expression``
    domains: tuple[Domain, ...] = ()
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Example:
    """A hand-wired network with concrete weights, and the parameter values it realises."""

    settings: tuple[tuple[Ref, Expr], ...]
    units: tuple[BodyItem, ...]
    pos: Pos | None = field(default=None, compare=False, repr=False)


# ---- statements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitDef:
    """``CIRCUIT name(inputs) -> outputs`` with either a body of units or ``= expression``."""

    name: str
    inputs: tuple[str, ...] | None
    outputs: tuple[str, ...] | None
    body: tuple[BodyItem, ...] | None
    expr: CExpr | None
    where: tuple[Compare, ...] = ()
    expect: Expect | None = None
    example: Example | None = None
    doc: str | None = None
    pos: Pos | None = field(default=None, compare=False, repr=False)
    source: SourceText | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Target:
    """What a MATCH looks for, with optional names for the circuit's inputs and outputs."""

    expr: CExpr
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Pin:
    """``x = 'input:3'`` in a MATCH's WHERE: variable ``name`` must bind that stored neuron."""

    name: str
    neuron: str
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Match:
    """``MATCH target``: where stored models compute a circuit. ``models`` is a glob over model
    names; ``pins`` hold the WHERE conditions that bind variables to stored neurons."""

    target: Target
    where: tuple[Compare, ...] = ()
    models: str | None = None
    tolerance: float | None = None
    limit: int | None = None
    explain: bool = False
    pins: tuple[Pin, ...] = ()
    exact: bool = False  # EXACT: only matches that hold without approximation
    timeout: float | None = None  # TIMEOUT: seconds the search may run
    pos: Pos | None = field(default=None, compare=False, repr=False)
    source: SourceText | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Census:
    """``COUNT MODELS WITH target GROUP BY property``."""

    target: Target
    group_by: str
    where: tuple[Compare, ...] = ()
    models: str | None = None
    tolerance: float | None = None
    explain: bool = False
    exact: bool = False  # EXACT: count only models holding the circuit without approximation
    timeout: float | None = None
    pos: Pos | None = field(default=None, compare=False, repr=False)
    source: SourceText | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ShowCircuits:
    """``SHOW CIRCUITS ['pattern']``: the library's circuits whose names match ``pattern``."""

    pattern: str | None = None
    explain: bool = False
    pos: Pos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CompareModels:
    """``COMPARE 'a' WITH 'b'``: two stored models compared."""

    model_a: str
    model_b: str
    tolerance: float | None = None
    explain: bool = False
    timeout: float | None = None  # seconds the library circuit searches may take in all
    pos: Pos | None = field(default=None, compare=False, repr=False)


Action = Match | Census | ShowCircuits | CompareModels
Statement = CircuitDef | Action


@dataclass(frozen=True)
class Script:
    """A parsed query or library file: its statements in source order."""

    statements: tuple[Statement, ...]

    @property
    def definitions(self) -> tuple[CircuitDef, ...]:
        """The CIRCUIT statements, in order."""
        return tuple(s for s in self.statements if isinstance(s, CircuitDef))

    @property
    def actions(self) -> tuple[Action, ...]:
        """Every statement but the definitions: a query has exactly one, a library file none."""
        return tuple(s for s in self.statements if not isinstance(s, CircuitDef))

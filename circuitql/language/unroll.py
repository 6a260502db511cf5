"""Alternation, composition and repetition unrolled into flat patterns.

``expand`` turns any pattern into the flat ``CircuitPattern``s it stands for: one per
alternative, one per repetition count (up to a bound the engine picks from the network's
depth), with composed parts joined output-to-input and normalised again, so a chain of folds
reads exactly like the layered network that computes it.

Inside a composed pattern every part is an *instance* named after its circuit and its position
among instances of that circuit: ``fold[1].p`` is unit ``p`` of the first fold, ``fold[2].c``
the parameter ``c`` of the second. WHERE and EXPECT clauses of composed circuits use those
names; ``next.c`` in a repeated block's WHERE is ``c`` of the following block.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from circuitql.grammar import ast
from circuitql.grammar.errors import QueryError
from circuitql.language import expr as ev
from circuitql.language.flatten import Draft, build, drafts_of
from circuitql.language.pattern import (
    Alternation,
    Chain,
    CircuitPattern,
    Pattern,
    Reference,
    Repeat,
)

_SCOPE_SAMPLES = 256  # alternatives looked at when deciding which names every one of them has


@dataclass(frozen=True)
class _Seq:
    """One way to unroll a pattern: flat pieces in chain order, before they are joined.

    ``where`` and ``reference`` use this sequence's own instance numbering; ``chained`` says
    whether pieces are named as instances (``fold[1].p``) or, for a single piece reached
    without composition, keep their own names.
    """

    pieces: tuple[CircuitPattern, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    where: tuple[ast.Compare, ...]
    reference: Reference | None
    chained: bool


def _leaf(p: CircuitPattern) -> _Seq:
    return _Seq((p,), p.inputs, p.outputs, (), p.reference, False)


def _param_names(s: _Seq) -> set[str]:
    io = set(s.inputs) | set(s.outputs)
    names = {ev.key(n) for c in s.where for n in ev.names(c)}
    if s.reference is not None:
        names |= s.reference.params
    return names - io


def _qualifier(s: _Seq, counts: Counter[str]) -> Callable[[str], str]:
    """Maps a name local to ``s`` to the name it has once ``s`` follows ``counts`` instances."""
    if not s.chained:
        piece = s.pieces[0].name
        label = f"{piece}[{counts[piece] + 1}]"
        return lambda name: f"{label}.{name}"

    def shifted(name: str) -> str:
        r = ev.ref(name)
        assert r.index is not None, f"{name} is not an instance name"
        return ast.Ref(r.name, r.index + counts[r.name], r.attrs).qualified

    return shifted


def _compose(
    refs: Sequence[Reference | None], inputs: tuple[str, ...], outputs: tuple[str, ...]
) -> Reference | None:
    """The reference of a chain: each part's equations substituted into the next part's."""
    if not refs or any(r is None for r in refs):
        return None
    first = refs[0]
    assert first is not None
    start = dict(zip(first.inputs, inputs, strict=True))
    first = first.renamed(start)
    exprs = dict(first.equations)
    outs = first.outputs
    for r in refs[1:]:
        assert r is not None
        feed = {name: exprs[o] for name, o in zip(r.inputs, outs, strict=True)}
        exprs = {o: ev.substitute(e, feed) for o, e in r.equations}
        outs = r.outputs
    equations = tuple((new, exprs[old]) for old, new in zip(outs, outputs, strict=True))
    return Reference(inputs, outputs, equations, first.domains)


def _concat(seqs: Sequence[_Seq], node: Chain | Repeat, step: tuple[ast.Compare, ...] = ()) -> _Seq:
    counts: Counter[str] = Counter()
    pieces: list[CircuitPattern] = []
    where: list[ast.Compare] = []
    refs: list[Reference | None] = []
    quals: list[Callable[[str], str]] = []
    for s in seqs:
        q = _qualifier(s, counts)
        quals.append(q)
        mapping = {n: q(n) for n in _param_names(s)}
        where += ev.rename_conditions(s.where, mapping)
        refs.append(s.reference.renamed(mapping) if s.reference is not None else None)
        pieces += s.pieces
        counts.update(p.name for p in s.pieces)
    for j in range(len(seqs) - 1):
        for c in step:
            mapping = {}
            for n in ev.names(c):
                name = ev.key(n)
                nxt = name.removeprefix("next.")
                mapping[name] = quals[j + 1](nxt) if nxt != name else quals[j](name)
            where += ev.rename_conditions((c,), mapping)
    reference = node.reference or _compose(refs, node.inputs, node.outputs)
    return _Seq(tuple(pieces), node.inputs, node.outputs, (*where, *node.where), reference, True)


def _counts(node: Repeat, max_repeat: int | None, at_min: bool) -> range:
    if at_min:
        return range(node.min, node.min + 1)
    high = node.max
    if max_repeat is not None:
        high = max_repeat if high is None else min(high, max_repeat)
    if high is None:
        raise ValueError(f"{node.name}: unbounded repetition needs max_repeat")
    return range(node.min, high + 1)


def _seqs(p: Pattern, max_repeat: int | None, at_min: bool = False) -> Iterator[_Seq]:
    if isinstance(p, CircuitPattern):
        yield _leaf(p)
    elif isinstance(p, Alternation):
        for option in p.options:
            for s in _seqs(option, max_repeat, at_min):
                mapping = dict(zip(s.inputs, p.inputs, strict=True))
                mapping |= dict(zip(s.outputs, p.outputs, strict=True))
                ref = p.reference
                if ref is None and s.reference is not None:
                    ref = s.reference.renamed(mapping)
                yield _Seq(s.pieces, p.inputs, p.outputs, (*s.where, *p.where), ref, s.chained)
    elif isinstance(p, Chain):
        parts = [list(_seqs(part, max_repeat, at_min)) for part in p.parts]
        for combo in itertools.product(*parts):
            yield _concat(combo, p)
    else:
        blocks = list(_seqs(p.block, max_repeat, at_min))
        for k in _counts(p, max_repeat, at_min):
            for combo in itertools.product(blocks, repeat=k):
                yield _concat(combo, p, p.step)


def scope(p: Pattern) -> frozenset[str]:
    """Parameter names that WHERE/EXPECT at ``p`` may use: those every unrolling of ``p`` has
    (an alternation: the names its options share; a chain: instance names such as
    ``fold[1].c``). Repetitions count at their minimum, since more blocks only add names."""
    common: set[str] | None = None
    for s in itertools.islice(_seqs(p, None, at_min=True), _SCOPE_SAMPLES):
        if s.chained:
            counts: Counter[str] = Counter()
            names = set()
            for piece in s.pieces:
                counts[piece.name] += 1
                names |= {f"{piece.name}[{counts[piece.name]}].{q}" for q in piece.params}
        else:
            names = set(s.pieces[0].params)
        common = names if common is None else common & names
    return frozenset(common or ())


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "'"
    return name


def _single(name: str, s: _Seq, touching: bool = False) -> CircuitPattern:
    piece = s.pieces[0]
    variant = ": ".join(v for v in (piece.name if piece.name != name else "", piece.variant) if v)
    io = dict(zip(piece.inputs, s.inputs, strict=True))
    io |= dict(zip(piece.outputs, s.outputs, strict=True))
    taken = set(s.inputs) | set(s.outputs)
    mapping = {u.name: io.get(u.name) or _fresh(u.name, taken) for u in piece.units}
    return build(
        name,
        s.inputs,
        s.outputs,
        drafts_of(piece, mapping),
        where=(*piece.where, *s.where),
        reference=s.reference,
        doc=piece.doc,
        variant=variant,
        touching=touching,
    )


def _joined(name: str, s: _Seq, touching: bool = False) -> CircuitPattern:
    counts: Counter[str] = Counter()
    drafts: list[Draft] = []
    where: list[ast.Compare] = []
    feeding = s.inputs
    for j, piece in enumerate(s.pieces):
        counts[piece.name] += 1
        label = f"{piece.name}[{counts[piece.name]}]"
        mapping = {u.name: f"{label}.{u.name}" for u in piece.units}
        mapping |= {p: f"{label}.{p}" for p in piece.params}
        mapping |= dict(zip(piece.inputs, feeding, strict=True))
        if j == len(s.pieces) - 1:
            mapping |= dict(zip(piece.outputs, s.outputs, strict=True))
        feeding = tuple(mapping[o] for o in piece.outputs)
        drafts += drafts_of(piece, mapping)
        params = {p: f"{label}.{p}" for p in piece.params}
        where += ev.rename_conditions(piece.where, params)
    return build(
        name,
        s.inputs,
        s.outputs,
        drafts,
        where=(*where, *s.where),
        reference=s.reference,
        variant=" >> ".join(p.name for p in s.pieces),
        touching=touching,
    )


def rename_io(p: Pattern, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Pattern:
    """``p`` with its inputs and outputs called by other names (positionally)."""
    mapping = dict(zip(p.inputs, inputs, strict=True)) | dict(zip(p.outputs, outputs, strict=True))
    reference = p.reference.renamed(mapping) if p.reference is not None else None
    if isinstance(p, CircuitPattern):
        return _single(p.name, _Seq((p,), inputs, outputs, (), reference, False))
    return replace(p, inputs=inputs, outputs=outputs, reference=reference)


def bounded(p: Pattern) -> bool:
    """Whether ``p`` unrolls into finitely many flat patterns."""
    if isinstance(p, CircuitPattern):
        return True
    if isinstance(p, Alternation):
        return all(bounded(o) for o in p.options)
    if isinstance(p, Chain):
        return all(bounded(q) for q in p.parts)
    return p.max is not None and bounded(p.block)


# What one query may stand for. Each flat pattern is planned, looked up and grown on its
# own (is_even is 8 of them, min4 27), and a chain's reference composes every piece's
# equations into one expression.
MAX_FLAT_PATTERNS = 1_000
MAX_PIECES = 48  # circuits chained in one flat pattern (is_even runs to 33 at most)


@dataclass(frozen=True)
class Size:
    """How much a pattern unrolls to: flat patterns, and the most pieces chained in one."""

    patterns: int
    pieces: int


def size(p: Pattern, max_repeat: int | None, at_min: bool = False) -> Size:
    """What ``expand`` would build, counted without building it (repetitions at their
    minimum with ``at_min``, as ``scope`` reads them)."""
    if isinstance(p, CircuitPattern):
        return Size(1, 1)
    if isinstance(p, Alternation):
        options = [size(o, max_repeat, at_min) for o in p.options]
        return Size(sum(o.patterns for o in options), max(o.pieces for o in options))
    if isinstance(p, Chain):
        parts = [size(q, max_repeat, at_min) for q in p.parts]
        return Size(math.prod(q.patterns for q in parts), sum(q.pieces for q in parts))
    block = size(p.block, max_repeat, at_min)
    counts = _counts(p, max_repeat, at_min)
    return Size(sum(block.patterns**k for k in counts), max(counts, default=0) * block.pieces)


def over_budget(p: Pattern, max_repeat: int | None, at_min: bool = False) -> str | None:
    """Why ``p`` unrolls to more than a query may run, or None."""
    found = size(p, max_repeat, at_min)
    if found.pieces > MAX_PIECES:
        return (
            f"{p.name} chains {found.pieces:,} circuits in one pattern; a query may chain "
            f"{MAX_PIECES}"
        )
    if found.patterns > MAX_FLAT_PATTERNS:
        return (
            f"{p.name} stands for {found.patterns:,} flat patterns; a query may stand for "
            f"{MAX_FLAT_PATTERNS:,}"
        )
    return None


BUDGET_FIX = (
    "bound each repetition ({2,4} rather than {2,} or +) and keep alternatives "
    "inside repetitions few; ask several smaller queries for the rest"
)

# Repetitions an unbounded pattern is unrolled to, however deep the networks searched: a
# chain of 32 blocks already asks for 33 layers between an input and an output.
MAX_REPEAT_CAP = 32


def unrolled(pattern: Pattern, depth: Callable[[], int]) -> Iterator[CircuitPattern]:
    """The flat patterns ``pattern`` stands for in networks at most ``depth()`` layers deep.

    The last step of compiling, and the only one that needs the store: an unbounded
    repetition (``fold+``) runs to as many blocks as the deepest network searched has room
    for, so ``depth`` is asked only for such a pattern. A pattern that would then unroll to
    more than a query may run is refused here, before any search.
    """
    if bounded(pattern):
        return expand(pattern)
    # A chain of k blocks needs at least k + 1 layers between input and output.
    max_repeat = max(1, min(MAX_REPEAT_CAP, depth() - 1))
    problem = over_budget(pattern, max_repeat)
    if problem is not None:
        raise QueryError(
            f"{problem}, once its repetitions run to {max_repeat} (the deepest network "
            "searched allows that many)",
            fix=BUDGET_FIX,
        )
    return expand(pattern, max_repeat)


EXPANSIONS_KEPT = 64  # whole expansions remembered, most recent first out


_expansions: dict[tuple[Pattern, int | None], tuple[CircuitPattern, ...]] = {}


def expand(pattern: Pattern, max_repeat: int | None = None) -> Iterator[CircuitPattern]:
    """Every flat pattern ``pattern`` stands for, repetitions counted up to ``max_repeat``.

    Flat patterns carry the name of ``pattern``; ``variant`` says which alternative or which
    sequence of parts each one is. Unbounded repetition needs ``max_repeat``.

    Lazy, so that a LIMIT stops the work early; an expansion read to its end is remembered
    (patterns are immutable), since building min4's 27 flat patterns costs more than
    matching them, and a library circuit is asked for again and again.
    """
    key = (pattern, max_repeat)
    known = _expansions.get(key)
    if known is not None:
        yield from known
        return
    flats = []
    for flat in _flat_patterns(pattern, max_repeat):
        flats.append(flat)
        yield flat
    if len(_expansions) >= EXPANSIONS_KEPT:
        _expansions.pop(next(iter(_expansions)))
    _expansions[key] = tuple(flats)


def _flat_patterns(pattern: Pattern, max_repeat: int | None) -> Iterator[CircuitPattern]:
    for s in _seqs(pattern, max_repeat):
        flat = _joined(pattern.name, s) if s.chained else _single(pattern.name, s)
        yield flat
        if flat.touches:
            folded = (
                _joined(pattern.name, s, touching=True)
                if s.chained
                else _single(pattern.name, s, touching=True)
            )
            yield replace(folded, variant=f"{flat.variant}, folded".lstrip(", "))

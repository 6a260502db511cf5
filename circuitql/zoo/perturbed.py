"""Circuits as training leaves them, planted with known answers: the approximate engine's
ground truth.

Gradient descent rarely writes a circuit the way the library does. It leaves kinks a little
off the origin with an output bias that cancels them, splits a detector over near-parallel
units, keeps units that are active (linear) or dead on the whole training domain beside the
circuit, and reads hidden units at whatever scale they happen to have. Each case below writes
one library circuit with one such perturbation, and each has decoys a perturbation away that
must never be reported: a dead zone too wide, a split half of the wrong sign, two detectors
on different directions, a ratio 30% off.

Cases are planted into dense random hosts with the machinery of ``circuitql.zoo.plant``
(permuted, rescaled, noised), reading either network inputs on the domain [-2, 2] or hidden
units of the host whose kinks lie well inside their range on it (a unit that never fires
there is a constant, and max(a, b) of it is no max). Every model carries the domain, as a
trained network carries its training range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from circuitql.domain import Domain
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind, input_id
from circuitql.zoo.plant import Expected, GroundTruth, plant_in_host

DOMAIN = Domain(((-2.0, 2.0),))
PARITY = Domain(((0.0, 15.0),))  # is_even's integers [0, 16)
PARITY_NOISE = 0.0005  # ten folds in a row add up what each is off by
WIDTH = 4.0  # of the domain
NOISE = 0.002  # relative noise on every weight, on top of the perturbation
X, A, B = input_id(0), input_id(0), input_id(1)

Rows = list[tuple[str, float, dict[str, float]]]  # (unit, bias, inputs); the last is the output


def network(n_inputs: int, rows: Rows) -> NeuronGraph:
    """ReLU units from ``rows``, in order, the last an identity output."""
    units = [Unit(input_id(i), UnitKind.INPUT) for i in range(n_inputs)]
    for uid, bias, inputs in rows[:-1]:
        units.append(Unit(uid, UnitKind.HIDDEN, Activation.RELU, bias, inputs))
    uid, bias, inputs = rows[-1]
    units.append(Unit(uid, UnitKind.OUTPUT, Activation.IDENTITY, bias, inputs))
    return NeuronGraph(tuple(units))


def pair_weights(circuit: str) -> tuple[float, float]:
    """Output weights of the positive and negative detector of a one-input circuit."""
    return {"identity": (1.0, -1.0), "negation": (-1.0, 1.0), "abs": (1.0, 1.0)}[circuit]


# ---- one-input circuits: a detector pair on x ----------------------------------------------


def abs_offset(k: float) -> float:
    """The output bias that best cancels kinks at +-k of relu(x - k) + relu(-x - k): a dead
    zone (k > 0) reads 0 where |x| < k and |x| - k beyond, a live zone (k < 0) reads 2|k|
    at 0 and |x| + |k| beyond; either is then |x| to within |k| / 2."""
    return k / 2 if k > 0 else 1.5 * k


def kinks(circuit: str, rng: np.random.Generator) -> NeuronGraph:
    """Kinks moved off the origin by up to 3% of the domain's width, an output bias that
    cancels what it can: a shifted pair for identity and negation (exact again), a dead or
    live zone for abs (error half the shift)."""
    wp, wn = pair_weights(circuit)
    if circuit == "abs":
        k = float(rng.uniform(0.01, 0.03)) * WIDTH * float(rng.choice([-1.0, 1.0]))
        return network(
            1, [("p", -k, {X: 1.0}), ("n", -k, {X: -1.0}), ("y", abs_offset(k), {"p": wp, "n": wn})]
        )
    c = float(rng.uniform(-0.03, 0.03)) * WIDTH
    return network(1, [("p", -c, {X: 1.0}), ("n", c, {X: -1.0}), ("y", wp * c, {"p": wp, "n": wn})])


def shifted(
    circuit: str, rng: np.random.Generator, low: float = 0.06, high: float = 0.2
) -> NeuronGraph:
    """identity or negation with both kinks at one point c, ``low`` to ``high`` of the
    domain's width off the origin, and the output bias that cancels the shift: relu(x - c) -
    relu(c - x) is x - c, so the function is exact whatever c. Training leaves this often:
    the loss does not change along c. Past a quarter of the width (a decoy) one detector is
    on, or off, on over three quarters of the domain: no longer a pair that detects a sign."""
    wp, wn = pair_weights(circuit)
    c = float(rng.uniform(low, high)) * WIDTH * float(rng.choice([-1.0, 1.0]))
    return network(1, [("p", -c, {X: 1.0}), ("n", c, {X: -1.0}), ("y", wp * c, {"p": wp, "n": wn})])


def edges(circuit: str, rng: np.random.Generator) -> NeuronGraph:
    """Decoy: identity or negation from two units whose kinks sit near the domain's ends
    (+-1.9 on [-2, 2]): each is linear on 97% of the domain, and their sum is x to within
    2.5% there, but neither detects a sign: a linear path, not the detector pair."""
    wp, wn = pair_weights(circuit)
    k = float(rng.uniform(1.85, 1.95))
    return network(
        1, [("p", k, {X: 1.0}), ("n", k, {X: -1.0}), ("y", 0.0, {"p": wp / 2, "n": wn / 2})]
    )


def split(
    circuit: str, rng: np.random.Generator, parts: int = 2, wrong_sign: bool = False
) -> NeuronGraph:
    """The positive detector split over ``parts`` near-parallel ReLUs (kinks up to 0.02
    apart), its outgoing weight shared among them; ``wrong_sign``: one half weighs against
    the others (a decoy, whatever the sum)."""
    wp, wn = pair_weights(circuit)
    shares = rng.dirichlet(np.full(parts, 4.0)).tolist()
    if wrong_sign:
        shares = [1.6, -0.6] + [0.0] * (parts - 2)
    rows: Rows = []
    out: dict[str, float] = {}
    for i, share in enumerate(shares):
        uid = f"p{i}" if i else "p"
        w, kink = float(rng.uniform(0.7, 1.4)), float(rng.uniform(-0.01, 0.01))
        rows.append((uid, -w * kink, {X: w}))  # relu(w (x - kink))
        out[uid] = wp * share / w
    rows.append(("n", 0.0, {X: -1.0}))
    rows.append(("y", 0.0, {**out, "n": wn}))
    return network(1, rows)


def beside(
    circuit: str, rng: np.random.Generator, linear: bool = True, dead: bool = True
) -> NeuronGraph:
    """The pair with a unit always active on the domain (a linear path t*x to the output,
    which the pair's weights make up for: 1 - t and 1 + t) and a unit dead on it."""
    wp, wn = pair_weights(circuit)
    t = float(rng.uniform(0.1, 0.3)) * float(rng.choice([-1.0, 1.0]))
    rows: Rows = [("p", 0.0, {X: 1.0}), ("n", 0.0, {X: -1.0})]
    out = {"p": wp - t, "n": wn + t}
    bias = 0.0
    if linear:  # relu(0.5 x + 3) = 0.5 x + 3 on [-2, 2]
        rows.append(("lin", 3.0, {X: 0.5}))
        out["lin"] = 2 * t
        bias -= 6 * t
    if dead:  # relu(0.4 x - 3) = 0 on [-2, 2]
        rows.append(("dead", -3.0, {X: 0.4}))
        out["dead"] = float(rng.uniform(0.5, 2.0))
    rows.append(("y", bias, out))
    return network(1, rows)


def dead_zone(circuit: str, rng: np.random.Generator) -> NeuronGraph:
    """Decoy: kinks at +-1.5, with the output bias that fits best: far from the circuit."""
    wp, wn = pair_weights(circuit)
    return network(
        1,
        [
            ("p", -1.5, {X: 1.0}),
            ("n", -1.5, {X: -1.0}),
            ("y", 0.75 if circuit == "abs" else 0.0, {"p": wp, "n": wn}),
        ],
    )


def ratio_off(circuit: str, rng: np.random.Generator) -> NeuronGraph:
    """Decoy: the negative detector's outgoing weight 30% off."""
    wp, wn = pair_weights(circuit)
    return network(
        1, [("p", 0.0, {X: 1.0}), ("n", 0.0, {X: -1.0}), ("y", 0.0, {"p": wp, "n": 0.7 * wn})]
    )


# ---- two-input circuits on hidden units of different scales ----------------------------------


def _gauge(rng: np.random.Generator) -> tuple[float, float]:
    """Weights on a and b, one 1.5x to 3x the other: a and b are hidden units, and
    each is read at a scale of its own."""
    ratio = float(rng.uniform(1.5, 3.0))
    return (ratio, 1.0) if rng.random() < 0.5 else (1.0, ratio)


def subtract(rng: np.random.Generator, mismatch: float = 1.0) -> NeuronGraph:
    """a - b read as ka*a - kb*b; ``mismatch`` != 1: the negative detector reads another
    direction (a decoy)."""
    ka, kb = _gauge(rng)
    return network(
        2,
        [
            ("p", 0.0, {A: ka, B: -kb}),
            ("n", 0.0, {A: -ka * mismatch, B: kb}),
            ("y", 0.0, {"p": 1.0, "n": -1.0}),
        ],
    )


def min_skip(rng: np.random.Generator, skip: float = 1.0, maximum: bool = False) -> NeuronGraph:
    """min(ka a, kb b) = ka a - relu(ka a - kb b) (max: ka a + relu(kb b - ka a)) through a
    skip connection; ``skip`` != 1: the skip weight off by that factor (a decoy)."""
    ka, kb = _gauge(rng)
    sign = 1.0 if maximum else -1.0
    row = {A: -ka, B: kb} if maximum else {A: ka, B: -kb}
    return network(2, [("d", 0.0, row), ("y", 0.0, {A: ka * skip, "d": sign})])


# ---- compositions ---------------------------------------------------------------------------


def negated_abs(rng: np.random.Generator, literal: bool) -> NeuronGraph:
    """-|x| for ``abs >> negation``: as compactly as a network writes it, or ``literal``ly
    as the composition is written (relu(-(p + n)) can never fire, relu(p + n) is |x|)."""
    pair: Rows = [("p", 0.0, {X: 1.0}), ("n", 0.0, {X: -1.0})]
    if not literal:
        return network(1, [*pair, ("y", 0.0, {"p": -1.0, "n": -1.0})])
    return network(
        1,
        [
            *pair,
            ("q", 0.0, {"p": 1.0, "n": 1.0}),
            ("r", 0.0, {"p": -1.0, "n": -1.0}),
            ("y", 0.0, {"q": -1.0, "r": 1.0}),
        ],
    )


def scaled_abs(rng: np.random.Generator) -> NeuronGraph:
    """k |x| for ``(abs | negation) >> scale``."""
    k = float(rng.uniform(0.5, 3.0)) * float(rng.choice([-1.0, 1.0]))
    return network(1, [("p", 0.0, {X: 1.0}), ("n", 0.0, {X: -1.0}), ("y", 0.0, {"p": k, "n": k})])


def parity_chain(rng: np.random.Generator, split_fold: int = 2, off: float = 1.0) -> NeuronGraph:
    """is_even on [0, 16) as training would leave its chain of folds: every weight and
    threshold jittered by up to 0.1% (folds add up absolute errors: more is not parity
    within 5%), fold ``split_fold``'s positive detector split over two
    units 0.01 apart sharing its outgoing weights 60/40; ``off`` != 1 moves fold 3's threshold
    by that factor (a decoy: the thresholds no longer halve)."""

    def jitter(value: float) -> float:
        return value * (1.0 + float(rng.uniform(-0.001, 0.001)))

    rows: Rows = []
    source: dict[str, float] = {X: 1.0}
    for i, c in enumerate((8.0, 4.0, 2.0, 1.0, 1.0), start=1):
        c *= off if i == 3 else 1.0
        p = {s: jitter(w) for s, w in source.items()}
        n = {s: -jitter(w) for s, w in source.items()}
        rows += [(f"p{i}", jitter(-c), p), (f"n{i}", jitter(c), n)]
        source = {f"p{i}": 1.0, f"n{i}": 1.0}
        if i == split_fold:
            rows.append((f"p{i}b", jitter(-c) - 0.01, dict(p)))
            source = {f"p{i}": 0.6, f"p{i}b": 0.4, f"n{i}": 1.0}
    rows.append(("y", 0.0, {s: jitter(w) for s, w in source.items()}))
    return network(1, rows)


# ---- the zoo ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One perturbed circuit (``present``) or decoy, as planted; ``bindings`` are the ways
    a match may bind the pattern's variables to units of ``build``'s graph (a split
    detector is bound through any of its halves)."""

    name: str
    circuit: str
    present: bool
    build: Callable[[np.random.Generator], NeuronGraph]
    bindings: tuple[dict[str, str], ...]
    hidden_inputs: bool = False
    also: tuple[tuple[str, dict[str, str]], ...] = ()  # other circuits the network holds
    domain: Domain = DOMAIN
    noise: float = NOISE  # of the host's disguise


def _halves(parts: int) -> tuple[dict[str, str], ...]:
    return tuple({"x": X, "p": f"p{i}" if i else "p", "n": "n", "y": "y"} for i in range(parts))


def _one_input(circuit: str) -> list[Case]:
    pair = _halves(1)
    out = [
        Case(f"kinks-{circuit}", circuit, True, lambda r: kinks(circuit, r), pair),
        Case(f"split2-{circuit}", circuit, True, lambda r: split(circuit, r, 2), _halves(2)),
        Case(f"split3-{circuit}", circuit, True, lambda r: split(circuit, r, 3), _halves(3)),
        Case(f"beside-{circuit}", circuit, True, lambda r: beside(circuit, r), pair),
        Case(f"decoy-zone-{circuit}", circuit, False, lambda r: dead_zone(circuit, r), pair),
        Case(
            f"decoy-wrongsplit-{circuit}",
            circuit,
            False,
            lambda r: split(circuit, r, 2, wrong_sign=True),
            _halves(2),
        ),
        Case(f"decoy-ratio-{circuit}", circuit, False, lambda r: ratio_off(circuit, r), pair),
    ]
    if circuit != "abs":  # a shared shift of abs's kinks changes its function
        out += [
            Case(f"shifted-{circuit}", circuit, True, lambda r: shifted(circuit, r), pair),
            Case(f"decoy-edges-{circuit}", circuit, False, lambda r: edges(circuit, r), pair),
            Case(
                f"decoy-farshift-{circuit}",
                circuit,
                False,
                lambda r: shifted(circuit, r, 0.3, 0.4),
                pair,
            ),
        ]
    return out


def cases() -> list[Case]:
    """Every case, in a fixed order."""
    two = ({"a": A, "b": B, "p": "p", "n": "n", "y": "y"},)
    skip = ({"a": A, "b": B, "d": "d", "y": "y"},)
    negated = {"x": X, "abs[1].p": "p", "abs[1].n": "n", "y": "y"}
    # Written literally, -|x| keeps relu(-(p + n)) when the host's leftover weights keep it
    # from being provably dead: its pre-activation is -|x| too.
    literal = ({**negated, "negation[1].p": "q"}, {**negated, "y": "r"})
    scaled = {"x": X, "abs[1].p": "p", "abs[1].n": "n", "y": "y"}
    folds = {"x": X, "y": "y"} | {f"fold[{i}].{s}": f"{s}{i}" for i in range(1, 6) for s in "pn"}
    chain = (folds, {**folds, "fold[2].p": "p2b"})
    out = [c for circuit in ("abs", "identity", "negation") for c in _one_input(circuit)]
    out += [
        Case("gauge-subtract", "subtract", True, subtract, two, True),
        Case(
            "decoy-directions-subtract",
            "subtract",
            False,
            lambda r: subtract(r, mismatch=0.7),
            two,
            True,
        ),
        Case("gauge-min", "min", True, min_skip, skip, True),
        Case("decoy-ratio-min", "min", False, lambda r: min_skip(r, skip=0.7), skip, True),
        Case("gauge-max", "max", True, lambda r: min_skip(r, maximum=True), skip, True),
        Case("decoy-ratio-max", "max", False, lambda r: min_skip(r, 0.7, maximum=True), skip, True),
        Case(
            "compact-abs>>negation",
            "abs >> negation",
            True,
            lambda r: negated_abs(r, literal=False),
            (negated,),
        ),
        Case(
            "literal-abs>>negation",
            "abs >> negation",
            True,
            lambda r: negated_abs(r, literal=True),
            literal,
            also=(("abs", {"x": X, "p": "p", "n": "n", "y": "q"}),),
        ),
        Case(
            "scaled-(abs|negation)>>scale", "(abs | negation) >> scale", True, scaled_abs, (scaled,)
        ),
        Case(
            "split-is_even", "is_even", True, parity_chain, chain, domain=PARITY, noise=PARITY_NOISE
        ),
        Case(
            "decoy-thresholds-is_even",
            "is_even",
            False,
            lambda r: parity_chain(r, off=0.7),
            chain,
            domain=PARITY,
            noise=PARITY_NOISE,
        ),
    ]
    return out


def perturbed_zoo(seed: int = 0) -> Iterator[tuple[str, NeuronGraph, Domain, tuple[Expected, ...]]]:
    """Every case planted in a dense random host of its own: (model name, network, domain,
    ground truth). Deterministic in ``seed``."""
    for i, case in enumerate(cases()):
        rng = np.random.default_rng([seed, 7, i])
        example = case.build(rng)
        depth = max(example.layers[u.id] for u in example.hidden)  # the output goes out
        widths = [int(rng.integers(12, 21)) for _ in range(max(2, depth) + case.hidden_inputs)]
        graph, where = plant_in_host(
            example,
            case.noise,
            rng,
            int(rng.integers(3, 6)),
            widths,
            int(rng.integers(2, 4)),
            2 if case.hidden_inputs else 1,
            domain=case.domain,
        )
        bindings = tuple({var: where[uid] for var, uid in b.items()} for b in case.bindings)
        name = f"perturbed/{case.name}"
        expected = [
            Expected(
                name,
                case.circuit,
                case.present,
                bindings[0],
                bindings,
                case.name,
                "" if case.present else case.name,
            )
        ]
        for circuit, b in case.also:
            binding = {var: where[uid] for var, uid in b.items()}
            expected.append(Expected(name, circuit, True, binding, (binding,), case.name))
        yield name, graph, case.domain, tuple(expected)


def ground_truth(seed: int = 0) -> GroundTruth:
    """Every case's expectations from ``perturbed_zoo(seed)``, as one ``GroundTruth`` to
    score a search against."""
    return GroundTruth(seed, tuple(e for *_, found in perturbed_zoo(seed) for e in found))

"""Planted circuits: random ReLU MLPs with library circuits wired in at known places.

A query engine is only as trustworthy as its known-answer tests, and this module writes them:
dense random hosts, each with one library circuit's EXAMPLE network planted into consecutive
hidden layers so that its units read nothing but the circuit (closed fan-in), then disguised
by every rewrite the canonical form must see through: hidden-neuron permutations (source ids
renamed, as a reordered file would), positive rescalings, 1% noise on every weight, and
leftovers under 1% of the row's largest weight where the planted rows had zeros. Decoys plant
the same wiring with one output weight's sign flipped (a flipped negation is abs) or one
weight ratio 40% off (relu(a - 0.6 b) where min needs a - b), and must not be reported as the
original circuit. The ground truth names every planted unit by its final source id.

Coordinates. A hidden unit's value is only defined up to a positive factor (rescaling it and
its outgoing weights changes nothing), so a circuit that reads hidden units reads their
*canonical*, unit-norm values. Hosts are built with unit-norm rows and the circuit is planted
before anything is rescaled: its weights from host units are then canonical weights, and the
leftover noise is sized in canonical terms, where the signature judges significance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from networkx.algorithms.isomorphism import DiGraphMatcher

from circuitql.domain import Domain
from circuitql.export import save, spec_from_graph
from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.indexer.canonical import Config, State, bounds, canonicalize
from circuitql.language.library import builtin_library, reference_network

NOISE = 0.01  # relative weight noise, and the leftovers' bound relative to a row's largest
RESCALE = (0.2, 5.0)  # range of the random positive rescaling factors
NEAR_MISS = 0.6  # a near miss multiplies one weight by this: a ratio 40% off
WIDTHS = (12, 20)  # host hidden layer widths, inclusive
HIDDEN = "fc"  # host hidden layers are fc1, fc2, ...; outputs are "out"
OUTPUT = "out"
INPUT = "input"


@dataclass(frozen=True)
class Plant:
    """One circuit to plant, and its decoys.

    ``example`` is the library entry whose EXAMPLE network is planted (``min`` has three
    implementations); ``rename`` maps its unit names to the pattern variables a match binds,
    where they differ. ``near_miss`` names the weight (unit, source or ``"bias"``) a near-miss
    decoy scales by 0.6; ``flip`` the source whose weight into the output a sign-flip decoy
    negates, and ``flipped_is`` the circuit that decoy computes instead, if any. ``noise`` is
    the relative noise on every weight and bias, and the bound on the planted rows' leftovers.
    """

    circuit: str
    example: str
    rename: Mapping[str, str] = field(default_factory=dict)
    near_miss: tuple[str, str] | None = None
    flip: str | None = None
    flipped_is: str | None = None
    noise: float = NOISE


_FOLDS = {f"{side}{i}": f"fold[{i}].{side}" for i in range(1, 6) for side in "pn"}

PLANTS: tuple[Plant, ...] = (
    Plant("identity", "identity", near_miss=("y", "p"), flip="n", flipped_is="abs"),
    Plant("negation", "negation", near_miss=("y", "n"), flip="p", flipped_is="abs"),
    Plant("abs", "abs", near_miss=("y", "p"), flip="n", flipped_is="identity"),
    Plant("detector_pair", "detector_pair"),
    Plant("add", "add", near_miss=("p", "input:1"), flip="n"),
    Plant("subtract", "subtract", near_miss=("p", "input:1"), flip="n"),
    Plant("min", "min_skip", near_miss=("d", "input:1"), flip="d"),
    Plant("min", "min_sym", near_miss=("p", "input:1"), flip="p"),
    Plant("min", "min_two_layer", near_miss=("d", "bp"), flip="d"),
    Plant("max", "max", near_miss=("d", "input:0"), flip="d"),
    # min of four in two layers of min_skip: the outer detector reads a, c and the inner
    # detectors directly, since the inner minima are linear and never neurons of their own.
    # Two layers of noisy weights add up: at 1%, 1 plant in 200 missed the 5% tolerance.
    Plant(
        "min4",
        "min4",
        rename={"d1": "m1.d", "d2": "m2.d", "d3": "y.d"},
        near_miss=("d3", "input:2"),
        flip="d3",
        noise=0.004,
    ),
    Plant("less_than", "less_than_relu", flip="h"),
    # Folds add up absolute errors: 1% on the fold at c = 8 is 0.08, and ten noisy units in a
    # row miss x mod 2 by about 15%, which is not parity within the engine's 5% tolerance;
    # at 0.2%, 2 of 27 chains in a 10,000-model zoo still missed it by 5.3% and 5.5%.
    Plant("is_even", "is_even", rename=_FOLDS, near_miss=("p3", "bias"), flip="n5", noise=0.001),
    # y = h - 2g cancels two terms of size 2 at a = b = 1: 1% noise on each weight can leave
    # 0.06 where xor is 0, over the 5% tolerance, so the plant would not be xor any more.
    Plant("xor", "xor", near_miss=("g", "input:1"), flip="g", noise=0.004),
)


@dataclass(frozen=True)
class Expected:
    """One ground-truth statement: ``circuit`` is (or, for a decoy, is not) at ``binding``.

    ``binding`` maps every pattern variable to a source id of ``model``. ``equivalent`` lists
    every binding the same instance may be reported under: a symmetric circuit (add in a and
    b) has several. ``example`` names the library network whose function the planted units
    compute (present) or fail to compute (a decoy).
    """

    model: str
    circuit: str
    present: bool
    binding: Mapping[str, str]
    equivalent: tuple[Mapping[str, str], ...]
    example: str
    decoy: str = ""

    def accepts(self, bindings: Mapping[str, str]) -> bool:
        """Whether reported bindings are this instance, under any of its ``equivalent`` ones."""
        return dict(bindings) in [dict(b) for b in self.equivalent]

    @property
    def units(self) -> frozenset[str]:
        """Every unit of the planted instance: those of all its bindings (a detector split
        in two is bound through either half, and both are the circuit's)."""
        return frozenset(uid for b in (self.binding, *self.equivalent) for uid in b.values())

    def to_json(self) -> dict[str, Any]:
        """One entry of ``expected`` in ``ground_truth.json``."""
        return {
            "model": self.model,
            "circuit": self.circuit,
            "present": self.present,
            "binding": dict(self.binding),
            "equivalent": [dict(b) for b in self.equivalent],
            "example": self.example,
            "decoy": self.decoy,
        }

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Expected:
        """Reads ``to_json``'s output back; an entry without ``decoy`` is no decoy."""
        return Expected(
            raw["model"],
            raw["circuit"],
            raw["present"],
            dict(raw["binding"]),
            tuple(dict(b) for b in raw["equivalent"]),
            raw["example"],
            raw.get("decoy", ""),
        )


@dataclass(frozen=True)
class Score:
    """How one circuit's reports compare with the ground truth (``GroundTruth.score``)."""

    found: int
    missed: int
    false: int
    nested: int

    def __add__(self, other: Score) -> Score:
        return Score(
            self.found + other.found,
            self.missed + other.missed,
            self.false + other.false,
            self.nested + other.nested,
        )

    @property
    def recall(self) -> float:
        """Share of the planted instances reported; 1 when nothing was planted."""
        planted = self.found + self.missed
        return self.found / planted if planted else 1.0

    @property
    def precision(self) -> float:
        """Share of reports that are planted instances; nested reports count neither way,
        and 1 when nothing was reported."""
        reported = self.found + self.false
        return self.found / reported if reported else 1.0


@dataclass(frozen=True)
class GroundTruth:
    """A planted zoo's known answers, saved beside it as ``ground_truth.json``: every
    planted instance and decoy, and the seed the zoo was built from."""

    seed: int
    expected: tuple[Expected, ...]

    def present(self) -> tuple[Expected, ...]:
        """The planted instances: what a search must find."""
        return tuple(e for e in self.expected if e.present)

    def absent(self) -> tuple[Expected, ...]:
        """The decoys: circuits a search must not report at their bindings."""
        return tuple(e for e in self.expected if not e.present)

    def score(self, circuit: str, matches: Iterable[tuple[str, Mapping[str, str]]]) -> Score:
        """Judge reported (model, bindings) matches of ``circuit`` against the truth.

        A report is *found* when it is a planted instance at one of its bindings; *nested*
        when its units all lie inside a planted network of another circuit (abs holds a
        detector pair: a true circuit the truth does not list); *false* otherwise: a decoy
        reported as what it imitates, a wrong binding, or a circuit in a random host.
        """
        present = [e for e in self.expected if e.present and e.circuit == circuit]
        found: set[int] = set()
        false = nested = 0
        for model, bindings in matches:
            hit = next(
                (i for i, e in enumerate(present) if e.model == model and e.accepts(bindings)), None
            )
            units = set(bindings.values())
            if hit is not None:
                found.add(hit)
            elif any(
                e.model == model
                and e.circuit != circuit
                and units <= e.units
                and not self._decoy_of(circuit, model, units)
                for e in self.expected
            ):
                nested += 1
            else:
                false += 1
        return Score(len(found), len(present) - len(found), false, nested)

    def _decoy_of(self, circuit: str, model: str, units: set[str]) -> bool:
        """Whether ``units`` lie in a decoy of ``circuit`` (which may be another circuit's
        true instance: a flipped abs is identity, but never abs)."""
        return any(
            not e.present and e.model == model and e.circuit == circuit and units <= e.units
            for e in self.expected
        )

    def to_json(self) -> dict[str, Any]:
        """The content of ``ground_truth.json``."""
        return {"seed": self.seed, "expected": [e.to_json() for e in self.expected]}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> GroundTruth:
        """Reads ``ground_truth.json`` (``to_json``'s output) back."""
        return GroundTruth(raw["seed"], tuple(Expected.from_json(e) for e in raw["expected"]))


# ---- the host under construction ----------------------------------------------------------


@dataclass
class _Net:
    """A layered network being built and disguised: layer 0 holds the inputs, the last the
    outputs. Planted units may read earlier layers than the one before (skip edges)."""

    layers: list[list[str]]
    rows: dict[str, dict[str, float]]
    bias: dict[str, float]
    activation: dict[str, Activation]

    @property
    def hidden(self) -> list[str]:
        return [uid for layer in self.layers[1:-1] for uid in layer]

    def graph(self) -> NeuronGraph:
        order = {uid: i for i, uid in enumerate(u for layer in self.layers for u in layer)}
        units: list[Unit] = []
        for depth, layer in enumerate(self.layers):
            kind = (
                UnitKind.INPUT
                if depth == 0
                else UnitKind.OUTPUT
                if depth == len(self.layers) - 1
                else UnitKind.HIDDEN
            )
            for uid in layer:
                row = sorted(self.rows.get(uid, {}).items(), key=lambda item: order[item[0]])
                units.append(
                    Unit(
                        uid,
                        kind,
                        self.activation.get(uid, Activation.IDENTITY),
                        self.bias.get(uid, 0.0),
                        dict(row),
                    )
                )
        return NeuronGraph(tuple(units))


def _dense(rng: np.random.Generator, n_inputs: int, widths: Sequence[int], n_outputs: int) -> _Net:
    """Dense random layers; hidden rows have unit L2 norm, i.e. are already canonical."""
    layers = [[f"{INPUT}:{i}" for i in range(n_inputs)]]
    layers += [[f"{HIDDEN}{d}:{r}" for r in range(w)] for d, w in enumerate(widths, start=1)]
    layers.append([f"{OUTPUT}:{r}" for r in range(n_outputs)])
    net = _Net(layers, {}, {}, {})
    for depth in range(1, len(layers)):
        sources = layers[depth - 1]
        hidden = depth < len(layers) - 1
        for uid in layers[depth]:
            weights = rng.normal(size=len(sources))
            if depth == 1:
                weights = _off_axis(weights)
            bias = rng.normal(scale=0.5)
            norm = float(np.linalg.norm(weights)) if hidden else math.sqrt(len(sources))
            net.rows[uid] = dict(zip(sources, (weights / norm).tolist(), strict=True))
            net.bias[uid] = bias / norm
            net.activation[uid] = Activation.RELU if hidden else Activation.IDENTITY
    return net


# A random first-layer row at most this close to one input's axis (the cosine) is turned
# away from it: closer, with a small bias, it is relu(x) or relu(-x) within an approximate
# search's tolerance, and beside a planted detector of x the host holds a detector pair the
# ground truth does not list (a host of 3 inputs drew one at 2.6 degrees from an axis).
AXIS_COSINE = 0.98


def _off_axis(weights: np.ndarray) -> np.ndarray:
    """``weights`` with its largest component shrunk so that the row is at least
    ``AXIS_COSINE`` away from that input's axis; a row already as far is returned as is
    (no random draw is made, so every other row of a host stays the same)."""
    top = int(np.argmax(np.abs(weights)))
    rest = float(np.linalg.norm(np.delete(weights, top)))
    norm = float(np.linalg.norm(weights))
    if norm == 0.0 or abs(weights[top]) <= AXIS_COSINE * norm or rest == 0.0:
        return weights
    turned = weights.copy()
    turned[top] = math.copysign(rest * AXIS_COSINE / math.sqrt(1 - AXIS_COSINE**2), weights[top])
    return turned


def _read_canonically(net: _Net, planted: frozenset[str]) -> dict[str, float]:
    """Make every host row read its sources' canonical values; returns each unit's canonical
    norm (its output scale relative to its canonical form; inputs and outputs: 1).

    Without this a planted unit with a large norm (less_than's relu(100 x - 50)) would drown
    every other input of the host units that read it, turning them into fan-in-1 units: the
    host would grow detector pairs of its own.
    """
    norms: dict[str, float] = {}
    last = len(net.layers) - 1
    for depth, layer in enumerate(net.layers):
        for uid in layer:
            if depth == 0:
                norms[uid] = 1.0
                continue
            if uid not in planted:
                net.rows[uid] = {s: w / norms[s] for s, w in net.rows[uid].items()}
            canonical = (w * norms[s] for s, w in net.rows[uid].items())
            norms[uid] = 1.0 if depth == last else math.hypot(*canonical)
    return norms


# ---- planting -----------------------------------------------------------------------------


def _plant(
    net: _Net,
    example: NeuronGraph,
    start: int,
    to_output: bool,
    rng: np.random.Generator,
    domain: Domain | None = None,
) -> dict[str, str]:
    """Overwrite host rows with the example's units; returns example unit -> host unit.

    Example unit at depth d goes to hidden layer ``start + d - 1``; an identity output goes to
    a network output (``to_output``) or, as a ReLU unit, to the hidden layer after its
    sources. Inputs bind to network inputs (``start == 1``) or to hidden units of the layer
    before ``start``: on a ``domain``, only to those ``_live`` there.
    """
    depth = example.layers
    where: dict[str, str] = {}
    sources = net.layers[start - 1]
    if domain is not None and len(live := _live(net, start - 1, domain)) >= len(example.inputs):
        sources = live
    for unit, pick in zip(
        example.inputs, rng.choice(len(sources), len(example.inputs), replace=False), strict=True
    ):
        where[unit.id] = sources[pick]
    by_layer: dict[int, list[Unit]] = {}
    for unit in example.units:
        if unit.kind is UnitKind.INPUT:
            continue
        if to_output and unit.kind is UnitKind.OUTPUT and unit.activation is Activation.IDENTITY:
            by_layer.setdefault(len(net.layers) - 1, []).append(unit)
        else:
            by_layer.setdefault(start + depth[unit.id] - 1, []).append(unit)
    for layer, units in sorted(by_layer.items()):
        rows = rng.choice(len(net.layers[layer]), len(units), replace=False)
        for unit, row in zip(units, rows, strict=True):
            uid = net.layers[layer][row]
            where[unit.id] = uid
            net.rows[uid] = {where[s]: w for s, w in unit.inputs.items()}
            net.bias[uid] = unit.bias
            hidden = layer < len(net.layers) - 1
            net.activation[uid] = Activation.RELU if hidden else unit.activation
    return where


# Where a host unit an example input binds to must have its kink on a domain, as a fraction
# of its pre-activation's range there: nearer an end, the unit is dead or linear on most of
# the domain, and the circuit reading it computes something else there (max(a, b) of a unit
# that never fires is relu(b)); at an end, the canonical form folds it away.
LIVE_KINK = (0.2, 0.8)


def _live(net: _Net, layer: int, domain: Domain) -> list[str]:
    """The units of ``layer`` whose kink on ``domain`` lies inside ``LIVE_KINK`` of their
    pre-activation's range there, as the canonical form bounds it (``canonical.bounds``);
    a network input always qualifies."""
    if layer == 0:
        return list(net.layers[0])
    graph = net.graph()
    lo, hi = bounds(State.of(graph, Config(domain=domain)))
    position = {unit.id: i for i, unit in enumerate(graph.units)}
    return [
        uid
        for uid in net.layers[layer]
        if _kink_inside(float(lo[position[uid]]), float(hi[position[uid]]))
    ]


def _kink_inside(lo: float, hi: float) -> bool:
    return hi > lo and LIVE_KINK[0] <= -lo / (hi - lo) <= LIVE_KINK[1]


def _leftovers(
    net: _Net,
    planted: frozenset[str],
    norms: Mapping[str, float],
    noise: float,
    rng: np.random.Generator,
) -> None:
    """Small nonzero weights where the planted rows read nothing: at most ``noise`` times the
    row's largest weight, both measured in canonical coordinates, and at most ``noise`` times
    its bias when that is smaller: a saturating step (less_than's relu(1 - 100 h)) keeps its
    meaning in a bias a hundred times smaller than its weight."""
    place = {uid: (d, i) for d, layer in enumerate(net.layers) for i, uid in enumerate(layer)}
    # In the layers' order: a set's order changes from one process to the next, and each
    # row draws its leftovers from the one generator.
    for uid in sorted(planted, key=place.__getitem__):
        row = net.rows[uid]
        top = max(abs(w) * norms[s] for s, w in row.items())
        if net.bias[uid]:
            top = min(top, abs(net.bias[uid]))
        for src in net.layers[place[uid][0] - 1]:
            if src not in row:
                row[src] = float(rng.uniform(-noise, noise)) * top / norms[src]


def _disguise(net: _Net, rng: np.random.Generator, noise: float = NOISE) -> dict[str, str]:
    """Multiplicative noise, positive rescaling and hidden permutations, in place.

    Returns old id -> new id: the permutation renames each hidden layer's rows, as writing the
    layer's neurons in another order would.
    """
    for uid, row in net.rows.items():
        *factors, bias_factor = (1.0 + rng.uniform(-noise, noise, len(row) + 1)).tolist()
        for src, factor in zip(list(row), factors, strict=True):
            row[src] *= factor
        net.bias[uid] *= bias_factor
    readers: dict[str, list[str]] = {}
    for uid, row in net.rows.items():
        for src in row:
            readers.setdefault(src, []).append(uid)
    low, high = np.log(RESCALE)
    for uid in net.hidden:
        k = float(np.exp(rng.uniform(low, high)))
        net.rows[uid] = {s: w * k for s, w in net.rows[uid].items()}
        net.bias[uid] *= k
        for reader in readers.get(uid, []):
            net.rows[reader][uid] /= k
    renamed: dict[str, str] = {}
    for depth in range(1, len(net.layers) - 1):
        layer = net.layers[depth]
        for position, new in enumerate(rng.permutation(len(layer)).tolist()):
            renamed[layer[position]] = f"{HIDDEN}{depth}:{new}"
        net.layers[depth] = sorted(
            (renamed[u] for u in layer), key=lambda u: int(u.rsplit(":", 1)[1])
        )
    net.rows = {
        renamed.get(u, u): {renamed.get(s, s): w for s, w in row.items()}
        for u, row in net.rows.items()
    }
    net.bias = {renamed.get(u, u): b for u, b in net.bias.items()}
    net.activation = {renamed.get(u, u): a for u, a in net.activation.items()}
    return renamed


def _placement(
    example: NeuronGraph, rng: np.random.Generator, on_inputs: bool = False
) -> tuple[int, bool, int]:
    """Where the circuit starts, whether its output is a network output, and how many
    hidden layers the host needs at least. ``on_inputs``: the circuit reads network inputs,
    whose scale is part of the function (a near miss off by a ratio on a hidden unit's
    weight is no miss: the hidden unit's own scale can make it up)."""
    depth = example.layers
    has_linear_output = any(u.activation is Activation.IDENTITY for u in example.outputs)
    to_output = has_linear_output and bool(rng.random() < 0.5)
    span = max(
        depth[u.id]
        for u in example.units
        if u.kind is not UnitKind.INPUT and not (to_output and u.kind is UnitKind.OUTPUT)
    )
    start = 2 if rng.random() < 0.5 and not on_inputs else 1
    after = 0 if to_output else int(rng.integers(0, 2))
    return start, to_output, start - 1 + span + after


def random_host(
    rng: np.random.Generator, n_inputs: int, widths: Sequence[int], n_outputs: int
) -> NeuronGraph:
    """A dense random ReLU MLP, rescaled, noised and permuted like the planted hosts."""
    net = _dense(rng, n_inputs, widths, n_outputs)
    _disguise(net, rng)
    return net.graph()


def _with_weight(example: NeuronGraph, unit_id: str, source: str, factor: float) -> NeuronGraph:
    """The example with one weight (or ``source == "bias"``, the bias) multiplied."""
    units = []
    for unit in example.units:
        if unit.id == unit_id:
            if source == "bias":
                unit = unit.with_inputs(unit.inputs, unit.bias * factor)
            else:
                unit = unit.with_inputs(
                    {s: w * factor if s == source else w for s, w in unit.inputs.items()}
                )
        units.append(unit)
    return example.with_units(units)


def _symmetries(example: NeuronGraph) -> list[dict[str, str]]:
    """Automorphisms of the example's canonical form that fix every output: the ways one
    instance of the circuit can be bound (add's a and b swap)."""
    canon = canonicalize(example).graph
    outputs = {u.id: i for i, u in enumerate(canon.outputs)}
    graph = nx.DiGraph()
    for unit in canon.units:
        graph.add_node(
            unit.id, label=(unit.kind, unit.activation, outputs.get(unit.id)), bias=unit.bias
        )
        for src, w in unit.inputs.items():
            graph.add_edge(src, unit.id, weight=w)

    def same_node(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return bool(a["label"] == b["label"] and math.isclose(a["bias"], b["bias"], abs_tol=1e-9))

    def same_edge(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return math.isclose(a["weight"], b["weight"], abs_tol=1e-9)

    matcher = DiGraphMatcher(graph, graph, node_match=same_node, edge_match=same_edge)
    return [dict(m) for m in matcher.isomorphisms_iter()]


def reference_binding(circuit: str, example: str) -> dict[str, str]:
    """Pattern variable -> unit of ``reference_network(example)``, as ``circuit`` binds it:
    inputs by position, other units by name (renamed as ``PLANTS`` says)."""
    graph = reference_network(example)
    rename = next((p.rename for p in PLANTS if p.example == example), {})
    names = builtin_library().pattern(circuit).inputs
    binding = {name: u.id for u, name in zip(graph.inputs, names, strict=True)}
    for unit in graph.units:
        if unit.kind is not UnitKind.INPUT:
            binding[rename.get(unit.id, unit.id)] = unit.id
    return binding


def _expected(
    model: str,
    circuit: str,
    present: bool,
    example: NeuronGraph,
    where: Mapping[str, str],
    plant: Plant,
    decoy: str,
    reference: str,
) -> Expected:
    units = reference_binding(circuit, plant.example)
    bindings = [
        {var: where[sigma.get(u, u)] for var, u in units.items()} for sigma in _symmetries(example)
    ]
    binding = {var: where[u] for var, u in units.items()}
    return Expected(model, circuit, present, binding, tuple(bindings), reference, decoy)


def _build(
    example: NeuronGraph, noise: float, rng: np.random.Generator, on_inputs: bool
) -> tuple[NeuronGraph, dict[str, str]]:
    """A host of random shape with ``example`` planted; returns it and example unit -> final
    source id."""
    start, to_output, n_layers = _placement(example, rng, on_inputs)
    widths = [int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)) for _ in range(n_layers)]
    n_inputs = int(rng.integers(max(3, len(example.inputs)), 7))
    n_outputs = int(rng.integers(2, 5))
    return _planted_in(
        example, noise, _dense(rng, n_inputs, widths, n_outputs), start, to_output, rng
    )


def planted_host(
    example: str, n_inputs: int, widths: Sequence[int], n_outputs: int, rng: np.random.Generator
) -> tuple[NeuronGraph, dict[str, str]]:
    """A dense host of the given shape with a library circuit's EXAMPLE planted from the
    first hidden layer on (its output a hidden unit), disguised like every planted host: for
    benchmarks that need zoo-sized networks. Returns the host and example unit -> source id."""
    plant = next(p for p in PLANTS if p.example == example)
    return plant_in_host(
        reference_network(example), plant.noise, rng, n_inputs, widths, n_outputs, to_output=False
    )


def plant_in_host(
    example: NeuronGraph,
    noise: float,
    rng: np.random.Generator,
    n_inputs: int,
    widths: Sequence[int],
    n_outputs: int,
    start: int = 1,
    to_output: bool = True,
    domain: Domain | None = None,
) -> tuple[NeuronGraph, dict[str, str]]:
    """``example`` (any network) planted in a dense random host of the given shape from
    hidden layer ``start`` on, disguised like every planted host; returns the host and
    example unit -> source id. On a ``domain``, the example's inputs bind only to host units
    whose kink lies inside their range there (``_live``)."""
    return _planted_in(
        example, noise, _dense(rng, n_inputs, widths, n_outputs), start, to_output, rng, domain
    )


def _planted_in(
    example: NeuronGraph,
    noise: float,
    net: _Net,
    start: int,
    to_output: bool,
    rng: np.random.Generator,
    domain: Domain | None = None,
) -> tuple[NeuronGraph, dict[str, str]]:
    where = _plant(net, example, start, to_output, rng, domain)
    planted = frozenset(where[u.id] for u in example.units if u.kind is not UnitKind.INPUT)
    _leftovers(net, planted, _read_canonically(net, planted), noise, rng)
    renamed = _disguise(net, rng, noise)
    return net.graph(), {u: renamed.get(h, h) for u, h in where.items()}


@dataclass(frozen=True)
class _Case:
    """One network to plant: a plant's example, or one of its decoys."""

    name: str  # "planted/abs", "decoy/flip-abs", "decoy/near-abs"
    example: NeuronGraph
    plant: Plant
    decoy: str = ""

    @property
    def on_inputs(self) -> bool:
        return self.decoy == "near_miss"

    def expected(self, model: str, where: Mapping[str, str]) -> list[Expected]:
        """The ground truth of this case planted at ``where`` in ``model``."""
        plant = self.plant
        out = [
            _expected(
                model,
                plant.circuit,
                not self.decoy,
                self.example,
                where,
                plant,
                self.decoy,
                plant.example,
            )
        ]
        if self.decoy == "sign_flip" and plant.flipped_is is not None:
            out.append(
                _expected(
                    model,
                    plant.flipped_is,
                    True,
                    self.example,
                    where,
                    plant,
                    self.decoy,
                    plant.flipped_is,
                )
            )
        return out


def _cases() -> list[_Case]:
    cases = []
    for plant in PLANTS:
        example = reference_network(plant.example)
        cases.append(_Case(f"planted/{plant.example}", example, plant))
        if plant.flip is not None:
            flipped = _with_weight(example, example.outputs[0].id, plant.flip, -1.0)
            cases.append(_Case(f"decoy/flip-{plant.example}", flipped, plant, "sign_flip"))
        if plant.near_miss is not None:
            near = _with_weight(example, *plant.near_miss, NEAR_MISS)
            cases.append(_Case(f"decoy/near-{plant.example}", near, plant, "near_miss"))
    return cases


Hosted = tuple[str, NeuronGraph, list[Expected]]  # model name, network, its ground truth


def _small_hosts(seed: int) -> Iterator[Hosted]:
    for i, case in enumerate(_cases()):
        graph, where = _build(
            case.example, case.plant.noise, np.random.default_rng([seed, i]), case.on_inputs
        )
        yield case.name, graph, case.expected(case.name, where)


def planted_zoo(seed: int = 0) -> tuple[dict[str, NeuronGraph], GroundTruth]:
    """Every plant of ``PLANTS`` in its own small host of random shape, and its decoys in
    theirs; deterministic.

    Models are named ``planted/<example>``, ``decoy/flip-<example>`` and
    ``decoy/near-<example>``.
    """
    graphs: dict[str, NeuronGraph] = {}
    expected: list[Expected] = []
    for name, graph, found in _small_hosts(seed):
        graphs[name] = graph
        expected += found
    return graphs, GroundTruth(seed, tuple(expected))


@dataclass(frozen=True)
class HostShape:
    """The dense hosts of a zoo-sized planted zoo, and how often one carries a plant."""

    n_inputs: int = 8
    widths: tuple[int, ...] = (64, 64, 64)
    n_outputs: int = 4
    every: int = 10


def hosted_zoo(
    size: int, seed: int = 0, shape: HostShape | None = None, first: int = 0
) -> Iterator[Hosted]:
    """Known answers at zoo scale: ``size`` dense hosts of one shape, one in ``shape.every``
    carrying a case of ``planted_zoo`` (each plant and decoy in turn), the rest random.

    A case deeper than the host gets the extra hidden layers it needs (is_even's chain).
    Lazy, so that a 10,000-model zoo is never in memory at once; each model depends only on
    the seed and its index, so ``first`` lets workers build slices of one zoo, and a smaller
    zoo is a prefix of a larger one.
    """
    shape = shape or HostShape()
    cases = _cases()
    for i in range(first, size):
        rng = np.random.default_rng([seed, i])
        name = f"host{i:05d}"
        if i % shape.every:
            yield name, random_host(rng, shape.n_inputs, shape.widths, shape.n_outputs), []
            continue
        case = cases[(i // shape.every) % len(cases)]
        name = f"{name}-{case.name.replace('/', '-')}"
        start, to_output, n_layers = _placement(case.example, rng, case.on_inputs)
        widths = [*shape.widths, *[shape.widths[-1]] * (n_layers - len(shape.widths))]
        host = _dense(rng, shape.n_inputs, widths, shape.n_outputs)
        graph, where = _planted_in(case.example, case.plant.noise, host, start, to_output, rng)
        yield name, graph, case.expected(name, where)


# ---- files --------------------------------------------------------------------------------


def write_zoo(
    folder: Path,
    seed: int = 0,
    suffix: str = ".safetensors",
    size: int | None = None,
    shape: HostShape | None = None,
    on_model: Callable[[str], None] | None = None,
) -> GroundTruth:
    """Write a planted zoo under ``folder`` (one weights file + JSON config per model, named
    so that ``circuitql index folder`` gives the same model names) and
    ``ground_truth.json``: ``planted_zoo(seed)``, or ``hosted_zoo(size, seed, shape)`` when a
    size is given."""
    models = _small_hosts(seed) if size is None else hosted_zoo(size, seed, shape)
    expected: list[Expected] = []
    for name, graph, found in models:
        save(spec_from_graph(graph, keep_ids=True), folder / f"{name}{suffix}")
        expected += found
        if on_model:
            on_model(name)
    truth = GroundTruth(seed, tuple(expected))
    (folder / "ground_truth.json").write_text(json.dumps(truth.to_json(), indent=2))
    return truth

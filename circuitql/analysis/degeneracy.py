"""How much of a network is really there: the degeneracy report, layer by layer.

The canonical form removes the exact degeneracies (dead, constant, unused and duplicated
neurons, negligible weights) and logs what it did; this report counts those per layer of the
*raw* network and adds two measurements the canonical form cannot make because they are only
true on the inputs a network actually sees:

* the numerical rank of a layer's activations on probe inputs: a neuron whose output is an
  affine combination of its neighbours' adds nothing the next layer could not get from them;
* groups of ReLUs that fire on exactly the same probe inputs: candidates for one feature
  split over several neurons.

A layer's *effective* unit count is the rank of the activations of the units the canonical
form keeps: what is left once dead, unused and duplicated units are gone and linearly dependent
ones no longer count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuitql.graph import Activation, NeuronGraph, UnitKind
from circuitql.indexer.canonical import Canonical, Config, canonicalize

# Why a raw unit is missing from the canonical graph, by the canonical step that removed it.
REMOVALS = {
    "remove_dead": "dead",
    "fold_constant": "dead",
    "remove_unused": "unused",
    "linearize": "linear",
}
DEFAULT_RANK_RTOL = 1e-6
CONSTANT_RTOL = 1e-9  # a unit whose spread is below this fraction of its size is constant
FIRING = (Activation.RELU, Activation.LEAKY_RELU)


@dataclass(frozen=True)
class Probes:
    """Inputs to measure a network on: half Gaussian N(0, std^2), half uniform on a box.

    Both because they fail differently: Gaussian probes reach far out along every direction
    (where ReLUs switch on that a box never wakes), the box is where bounded inputs (pixels,
    normalised sensors) actually live.
    """

    n: int = 1024
    std: float = 1.0
    box: tuple[float, float] = (-1.0, 1.0)
    seed: int = 0

    def sample(self, n_inputs: int) -> np.ndarray:
        """``n`` rows of ``n_inputs`` values, the same rows for the same settings."""
        rng = np.random.default_rng(self.seed)
        n_gauss = self.n // 2
        gauss = rng.normal(0.0, self.std, (n_gauss, n_inputs))
        uniform = rng.uniform(*self.box, (self.n - n_gauss, n_inputs))
        return np.concatenate([gauss, uniform])

    def describe(self) -> str:
        """The probe settings in words, for a report's footnote (degeneracy, basis)."""
        n_gauss = self.n // 2
        lo, hi = self.box
        return (
            f"{self.n} probes ({n_gauss} Gaussian with sd {self.std:g}, "
            f"{self.n - n_gauss} uniform on [{lo:g}, {hi:g}], seed {self.seed})"
        )


@dataclass(frozen=True)
class FiringGroup:
    """Units with the same on/off pattern over the probes, and on how many probes they fire."""

    units: tuple[str, ...]
    fires_on: int


@dataclass(frozen=True)
class LayerDegeneracy:
    """One layer of the raw network, by longest-path depth: the units the canonical form
    removes from it, and the ranks and firing groups measured on the probes."""

    layer: int
    raw: int
    dead: tuple[str, ...]
    unused: tuple[str, ...]
    merged: tuple[tuple[str, str], ...]  # (duplicate, the unit it was merged into)
    linear: tuple[str, ...]  # never reach their kink: folded into their readers
    pruned: tuple[str, ...]  # canonical log lines of the weights pruned into this layer
    rank: int  # of all the layer's units
    effective: int  # rank of the units the canonical form keeps
    firing_groups: tuple[FiringGroup, ...]

    @property
    def kept(self) -> int:
        """Units left in the canonical graph; pruned weights remove no unit, so do not count."""
        return self.raw - len(self.dead) - len(self.unused) - len(self.merged) - len(self.linear)

    def to_json(self) -> dict[str, Any]:
        """One entry of the report's ``layers``; ``pruned_weights`` counts the ``pruned`` lines."""
        return {
            "layer": self.layer,
            "raw": self.raw,
            "kept": self.kept,
            "rank": self.rank,
            "effective": self.effective,
            "dead": list(self.dead),
            "unused": list(self.unused),
            "linear": list(self.linear),
            "merged": [{"unit": dup, "into": keep} for dup, keep in self.merged],
            "pruned_weights": len(self.pruned),
            "pruned": list(self.pruned),
            "same_firing": [
                {"units": list(g.units), "fires_on": g.fires_on} for g in self.firing_groups
            ],
        }


@dataclass(frozen=True)
class DegeneracyReport:
    """A model's degeneracy report, with the probes and rank tolerance it was measured with:
    the ranks depend on both, so the report states them."""

    model: str
    layers: tuple[LayerDegeneracy, ...]
    probes: Probes
    rank_rtol: float

    @property
    def raw(self) -> int:
        """Non-input units as written, over all layers."""
        return sum(layer.raw for layer in self.layers)

    @property
    def effective(self) -> int:
        """The sum of the layers' effective ranks, not one rank over the whole network."""
        return sum(layer.effective for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        """What ``circuitql degeneracy --json`` prints (``schemas/degeneracy.schema.json``)."""
        return {
            "model": self.model,
            "raw_units": self.raw,
            "effective_units": self.effective,
            "probes": {
                "n": self.probes.n,
                "std": self.probes.std,
                "box": list(self.probes.box),
                "seed": self.probes.seed,
            },
            "rank_rtol": self.rank_rtol,
            "layers": [layer.to_json() for layer in self.layers],
        }

    def text(self) -> str:
        """The per-layer table, the units behind each count, and what rank means, for a terminal."""
        head = (
            "layer",
            "raw",
            "dead",
            "unused",
            "merged",
            "linear",
            "kept",
            "rank",
            "effective",
            "pruned w",
            "same-firing groups",
        )
        rows = [head] + [
            (
                str(d.layer),
                str(d.raw),
                str(len(d.dead)),
                str(len(d.unused)),
                str(len(d.merged)),
                str(len(d.linear)),
                str(d.kept),
                str(d.rank),
                str(d.effective),
                str(len(d.pruned)),
                _group_sizes(d.firing_groups),
            )
            for d in self.layers
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            f"{self.model}: {self.effective} effective of {self.raw} units "
            f"(non-input layers, by longest-path depth)"
        ]
        lines += [
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines += _details(self.layers)
        lines.append(
            f"rank: singular values above {self.rank_rtol:g} x the largest, of the layer's "
            f"activations centred and scaled per unit, on {self.probes.describe()}; "
            "effective: the same rank, of the kept units only"
        )
        return "\n".join(lines)


def _group_sizes(groups: tuple[FiringGroup, ...]) -> str:
    if not groups:
        return "-"
    return f"{len(groups)} (sizes {', '.join(str(len(g.units)) for g in groups)})"


def _details(layers: tuple[LayerDegeneracy, ...]) -> list[str]:
    lines = []
    for d in layers:
        for label, units in (("dead", d.dead), ("unused", d.unused), ("linear", d.linear)):
            if units:
                lines.append(f"layer {d.layer} {label}: {', '.join(units)}")
        if d.merged:
            merged = ", ".join(f"{dup} -> {keep}" for dup, keep in d.merged)
            lines.append(f"layer {d.layer} merged: {merged}")
        for group in d.firing_groups:
            lines.append(
                f"layer {d.layer} same firing ({group.fires_on} probes): {', '.join(group.units)}"
            )
    return lines


def degeneracy(
    graph: NeuronGraph,
    *,
    name: str = "model",
    probes: Probes | None = None,
    config: Config | None = None,
    rank_rtol: float = DEFAULT_RANK_RTOL,
) -> DegeneracyReport:
    """The degeneracy report of a raw (not yet canonical) graph.

    ``config`` is the canonical-form configuration whose removals are counted; use the one the
    model was indexed with so the counts match the store.
    """
    probes = probes or Probes()
    canon = canonicalize(graph, config)
    fate = _fates(graph, canon)
    pruned = _pruned_by_unit(canon)
    values = graph.activations(probes.sample(len(graph.inputs)))
    by_layer: dict[int, list[str]] = defaultdict(list)
    for unit in graph.units:
        if unit.kind is not UnitKind.INPUT:
            by_layer[graph.layers[unit.id]].append(unit.id)
    layers = []
    for depth in sorted(by_layer):
        ids = by_layer[depth]
        kept = [u for u in ids if fate[u][0] == "kept"]
        layers.append(
            LayerDegeneracy(
                layer=depth,
                raw=len(ids),
                dead=tuple(u for u in ids if fate[u][0] == "dead"),
                unused=tuple(u for u in ids if fate[u][0] == "unused"),
                merged=tuple((u, fate[u][1]) for u in ids if fate[u][0] == "merged"),
                linear=tuple(u for u in ids if fate[u][0] == "linear"),
                pruned=tuple(line for u in ids for line in pruned.get(u, ())),
                rank=_rank(values, ids, rank_rtol),
                effective=_rank(values, kept, rank_rtol),
                firing_groups=_firing_groups(graph, ids, values),
            )
        )
    return DegeneracyReport(name, tuple(layers), probes, rank_rtol)


def _fates(graph: NeuronGraph, canon: Canonical) -> dict[str, tuple[str, str]]:
    """Per raw unit: ("kept" | "merged" | "dead" | "unused" | "linear", the canonical unit
    it went to).

    ``members`` keeps an entry for every unit that ever absorbed another, removed or not, so
    each raw unit sits in exactly one entry; a duplicate merged into a unit that was removed
    later shares that unit's fate.
    """
    owner = {src: uid for uid, members in canon.members.items() for src, _ in members}
    removed = {s.unit: REMOVALS[s.action] for s in canon.steps if s.action in REMOVALS}
    fate = {}
    for unit in graph.units:
        keep = owner[unit.id]
        if keep not in canon.graph:
            fate[unit.id] = (removed[keep], keep)
        else:
            fate[unit.id] = ("kept" if keep == unit.id else "merged", keep)
    return fate


def _pruned_by_unit(canon: Canonical) -> Mapping[str, list[str]]:
    pruned: dict[str, list[str]] = defaultdict(list)
    for step in canon.steps:
        if step.action == "prune_edge":
            pruned[step.unit].append(str(step))
    return pruned


def _rank(values: Mapping[str, np.ndarray], ids: list[str], rtol: float) -> int:
    if not ids:
        return 0
    return numerical_rank(np.stack([values[u] for u in ids], axis=1), rtol)


def numerical_rank(values: np.ndarray, rtol: float = DEFAULT_RANK_RTOL) -> int:
    """Rank of (probes x units) activations, as the next layer sees them.

    Each unit is centred (the next layer's bias absorbs a constant, so a constant unit adds no
    direction) and scaled to unit norm (so rank measures linear dependence, not how large a
    unit's values happen to be); singular values above ``rtol`` times the largest count. A
    rank can never exceed the number of probes.
    """
    centred = values - values.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    varying = norms > CONSTANT_RTOL * np.linalg.norm(values, axis=0)
    if not varying.any():
        return 0
    singular = np.linalg.svd(centred[:, varying] / norms[varying], compute_uv=False)
    return int((singular > rtol * singular[0]).sum())


def _firing_groups(
    graph: NeuronGraph, ids: list[str], values: Mapping[str, np.ndarray]
) -> tuple[FiringGroup, ...]:
    """ReLU-like units whose on/off patterns over the probes are identical, largest first.

    A ReLU or leaky ReLU fires exactly when its output is positive, so the pattern is read off
    the post-activations.
    """
    patterns: dict[bytes, list[str]] = defaultdict(list)
    fires: Counter[bytes] = Counter()
    for uid in ids:
        if graph[uid].activation in FIRING:
            on = values[uid] > 0.0
            key = np.packbits(on).tobytes()
            patterns[key].append(uid)
            fires[key] = int(on.sum())
    groups = [
        FiringGroup(tuple(units), fires[key]) for key, units in patterns.items() if len(units) > 1
    ]
    return tuple(sorted(groups, key=lambda g: (-len(g.units), g.units)))

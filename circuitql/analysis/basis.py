"""The basis a layer "thinks in": rotations that make layer-to-layer Jacobians sparse.

What is rotated. For hidden layers X and Y = the layer after X, with post-activations h_X and
h_Y = act(W_Y h_X + b_Y), the Jacobian J(x) = dh_Y/dh_X = diag(act'(z_Y(x))) W_Y depends on the
input through the activation slopes (the Jacobian of the pre-activation, W_Y, would not). A
rotation R_X of X's activation space (R_X = matrix_exp(A - A^T), orthogonal) is a change of
coordinates h'_X = R_X h_X: the network keeps computing the same function when W_Y becomes
W_Y R_X^T, because (W_Y R_X^T)(R_X h_X) = W_Y h_X. R_X cannot be folded into W_X: the
nonlinearity sits between, so the rotated network is the original with one linear map after
X's activation and its inverse folded into the next weights. In rotated coordinates the
Jacobian is R_Y J(x) R_X^T. Network inputs and outputs are the user's coordinates and never
rotate; every hidden layer does, once as the output side of the Jacobian into it and once as
the input side of the Jacobian out of it, which is what lets the two bases be compared.

The measure. Per probe input, the Hoyer sparsity of J(x) with N entries:
(sqrt(N) - |J|_1 / |J|_F) / (sqrt(N) - 1): 0 when every entry has the same magnitude, 1 when
one entry carries it all; reported as the mean over the probes where J(x) is not zero.
Rotations keep |J|_F, so maximising it minimises the mean of |J(x)|_1 / |J(x)|_F, and every
probe counts the same however large its Jacobian.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import torch

from circuitql.analysis.degeneracy import Probes
from circuitql.errors import CircuitQLError
from circuitql.graph import Activation, NeuronGraph, UnitKind

MEASURE = (
    "Hoyer sparsity of the Jacobian dh_Y/dh_X per probe, (sqrt(N) - L1/L2) / "
    "(sqrt(N) - 1): 0 = all entries equal in magnitude, 1 = a single entry; mean over "
    "probes"
)
MATCH_THRESHOLD = 0.9  # mean |cosine| of matched basis vectors above which two bases agree
HEATMAP_CELLS = 96  # larger matrices are shown block-averaged, to keep the SVG small
EVAL_CHUNK = 64  # probes per chunk when measuring the whole pool
DEFAULT_PROBES = 512  # fewer than the degeneracy report's: every probe costs a Jacobian


@dataclass(frozen=True)
class Search:
    """Adam on the rotation generators A, on minibatches of probes, with early stopping.

    Every ``eval_every`` steps the objective is measured on the whole probe pool; the search
    stops once ``patience`` such checks in a row improved it by less than ``rel_tol``
    (relative), and returns the best rotations checked, so it never ends worse than the
    neuron basis it starts from.
    """

    max_steps: int = 1000
    lr: float = 0.01
    batch: int = 64
    eval_every: int = 20
    patience: int = 3
    rel_tol: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class Layered:
    """A strictly layered network as matrices: layer 0 is the inputs, the last the outputs."""

    ids: tuple[tuple[str, ...], ...]
    weights: tuple[np.ndarray, ...]  # weights[l - 1] maps layer l-1 to layer l
    biases: tuple[np.ndarray, ...]
    activations: tuple[tuple[tuple[Activation, float], ...], ...]  # per layer >= 1, per unit

    def hidden(self, layer: int) -> bool:
        """Whether ``layer`` may rotate: network inputs and outputs are the user's coordinates."""
        return 0 < layer < len(self.ids) - 1

    def forward(
        self, x: np.ndarray, rotations: Mapping[int, np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs and per-layer pre-activations, in the rotated network if rotations given.

        The rotated network is built as described at the top of this module: R_l applied
        after layer l's activation, W_{l+1} replaced by W_{l+1} R_l^T.
        """
        rotations = rotations or {}
        h = x
        pre = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True), start=1):
            if layer - 1 in rotations:
                w = w @ rotations[layer - 1].T
            z = h @ w.T + b
            pre.append(z)
            h = _apply(self.activations[layer], z)
            if layer in rotations:
                h = h @ rotations[layer].T
        return h, pre


def layered(graph: NeuronGraph) -> Layered:
    """The matrices of ``graph``, which must read each layer only from the one before it."""
    depth = graph.layers
    n_layers = max(depth.values()) + 1
    ids: list[list[str]] = [[] for _ in range(n_layers)]
    for unit in graph.units:
        ids[depth[unit.id]].append(unit.id)
    for unit in graph.units:
        d = depth[unit.id]
        skip = [s for s in unit.inputs if depth[s] != d - 1]
        if skip:
            _not_layered(unit.id, d, f"reads {skip[0]} from layer {depth[skip[0]]}")
        if d > 0 and (unit.kind is UnitKind.OUTPUT) != (d == n_layers - 1):
            _not_layered(unit.id, d, "is an output outside the last layer, or a hidden unit in it")
    index = [{uid: i for i, uid in enumerate(layer)} for layer in ids]
    weights, biases, acts = [], [], []
    for layer in range(1, n_layers):
        w = np.zeros((len(ids[layer]), len(ids[layer - 1])))
        for row, uid in enumerate(ids[layer]):
            for src, value in graph[uid].inputs.items():
                w[row, index[layer - 1][src]] = value
        weights.append(w)
        biases.append(np.array([graph[u].bias for u in ids[layer]]))
        acts.append(tuple((graph[u].activation, graph[u].alpha) for u in ids[layer]))
    return Layered(tuple(map(tuple, ids)), tuple(weights), tuple(biases), ((), *acts))


def _not_layered(unit: str, layer: int, why: str) -> None:
    raise CircuitQLError(
        f"the basis search needs a strictly layered network, but unit {unit} (layer {layer}) {why}",
        fix="run it on an MLP whose layers each read only the layer before them, with all "
        "outputs in the last layer",
    )


def _apply(acts: Sequence[tuple[Activation, float]], z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    for (act, alpha), cols in _by_activation(acts).items():
        out[:, cols] = act.apply(z[:, cols], alpha)
    return out


def _slopes(acts: Sequence[tuple[Activation, float]], z: np.ndarray) -> np.ndarray:
    """act'(z) per unit; the slope of a ReLU at 0 is 0, as in "fires when z > 0"."""
    out = np.empty_like(z)
    for (act, alpha), cols in _by_activation(acts).items():
        v = z[:, cols]
        if act is Activation.RELU:
            out[:, cols] = v > 0.0
        elif act is Activation.LEAKY_RELU:
            out[:, cols] = np.where(v >= 0.0, 1.0, alpha)
        elif act is Activation.SIGMOID:
            s = act.apply(v)
            out[:, cols] = s * (1.0 - s)
        elif act is Activation.TANH:
            out[:, cols] = 1.0 - np.tanh(v) ** 2
        elif act is Activation.GELU:
            cdf = 0.5 * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))
            out[:, cols] = cdf + v * np.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
        else:
            out[:, cols] = 1.0
    return out


def _by_activation(
    acts: Sequence[tuple[Activation, float]],
) -> dict[tuple[Activation, float], list[int]]:
    groups: dict[tuple[Activation, float], list[int]] = {}
    for i, key in enumerate(acts):
        groups.setdefault(key, []).append(i)
    return groups


@dataclass(frozen=True)
class PairBasis:
    """The search for one Jacobian dh_Y/dh_X: sparsity before and after, and its cost."""

    source: int
    target: int
    shape: tuple[int, int]  # (units of Y, units of X)
    before: float
    after: float
    steps: int
    seconds: float
    converged: bool
    max_error: float  # max |rotated network - original| over the probes' outputs
    rotations: Mapping[int, np.ndarray]  # layer -> R (new coordinates = R @ old)
    heat_before: np.ndarray  # mean over probes of |J| / |J|_F, neuron basis
    heat_after: np.ndarray  # the same in the rotated bases

    @property
    def name(self) -> str:
        """``L<source>->L<target>``: how the report's tables and JSON name the Jacobian."""
        return f"L{self.source}->L{self.target}"

    def to_json(self) -> dict[str, Any]:
        """One entry of ``jacobians`` in the JSON: the rotations reduced to the layers they
        rotate, the heatmaps left to ``write_heatmaps``."""
        return {
            "jacobian": self.name,
            "shape": list(self.shape),
            "sparsity_before": self.before,
            "sparsity_after": self.after,
            "steps": self.steps,
            "seconds": self.seconds,
            "converged": self.converged,
            "max_error": self.max_error,
            "rotated_layers": sorted(self.rotations),
        }


@dataclass(frozen=True)
class LayerAgreement:
    """Whether the basis found for the Jacobian into a layer is the one found for the one out.

    Scores are the mean |cosine| between basis vectors paired greedily (most similar pair
    first): 1 = the same basis up to order and sign; ``chance`` is the score of a random
    rotation against the neuron basis, for scale.
    """

    layer: int
    agreement: float
    chance: float
    incoming_vs_neurons: float
    outgoing_vs_neurons: float

    @property
    def matches(self) -> bool:
        """Whether the bases into and out of the layer count as one, at ``MATCH_THRESHOLD``."""
        return self.agreement >= MATCH_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        """One entry of ``layers`` in the JSON, ``matches`` included."""
        return {
            "layer": self.layer,
            "agreement": self.agreement,
            "chance": self.chance,
            "incoming_vs_neurons": self.incoming_vs_neurons,
            "outgoing_vs_neurons": self.outgoing_vs_neurons,
            "matches": self.matches,
        }


@dataclass(frozen=True)
class BasisReport:
    """A model's sparse-Jacobian basis: one search per Jacobian between consecutive layers,
    and, per hidden layer, whether the searches on its two sides found the same basis."""

    model: str
    pairs: tuple[PairBasis, ...]
    layers: tuple[LayerAgreement, ...]
    probes: Probes

    @property
    def max_error(self) -> float:
        """The largest output difference of any rotated network from the original on the
        probes (0 without Jacobians); rotations keep the function, so it stays at rounding error."""
        return max((p.max_error for p in self.pairs), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """What ``circuitql basis --json`` prints, less ``heatmaps``: the CLI adds those once
        written."""
        return {
            "model": self.model,
            "measure": MEASURE,
            "probes": self.probes.describe(),
            "match_threshold": MATCH_THRESHOLD,
            "max_error": self.max_error,
            "jacobians": [p.to_json() for p in self.pairs],
            "layers": [a.to_json() for a in self.layers],
        }

    def text(self) -> str:
        """Both tables, the Jacobians' sparsity and the hidden layers' agreement, for a terminal."""
        lines = [
            f"{self.model}: sparse-Jacobian basis on {self.probes.describe()}",
            f"measure: {MEASURE}",
        ]
        lines += _table(
            ("jacobian", "shape", "before", "after", "steps", "seconds", "converged", "max error"),
            [
                (
                    p.name,
                    f"{p.shape[0]}x{p.shape[1]}",
                    f"{p.before:.3f}",
                    f"{p.after:.3f}",
                    str(p.steps),
                    f"{p.seconds:.1f}",
                    "yes" if p.converged else "no (step limit)",
                    f"{p.max_error:.1e}",
                )
                for p in self.pairs
            ],
        )
        if self.layers:
            lines.append(
                "basis of each hidden layer, from the Jacobian into it vs the one out "
                f"(mean |cos| of matched vectors; same basis at >= {MATCH_THRESHOLD})"
            )
            lines += _table(
                ("layer", "in vs out", "chance", "in vs neurons", "out vs neurons", "same"),
                [
                    (
                        f"L{a.layer}",
                        f"{a.agreement:.3f}",
                        f"{a.chance:.3f}",
                        f"{a.incoming_vs_neurons:.3f}",
                        f"{a.outgoing_vs_neurons:.3f}",
                        "yes" if a.matches else "no",
                    )
                    for a in self.layers
                ],
            )
        return "\n".join(lines)

    def write_heatmaps(self, directory: Path) -> list[Path]:
        """Two SVGs per Jacobian, before and after, on one colour scale so they compare."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for pair in self.pairs:
            top = float(max(pair.heat_before.max(), pair.heat_after.max()))
            for label, heat in (("before", pair.heat_before), ("after", pair.heat_after)):
                path = directory / f"jacobian_L{pair.source}-L{pair.target}_{label}.svg"
                basis = "neuron basis" if label == "before" else "rotated basis"
                path.write_text(
                    heatmap_svg(
                        heat,
                        f"{self.model} dh{pair.target}/dh{pair.source}, {basis}: "
                        f"mean |J|/|J|_F, sparsity {getattr(pair, label):.3f}",
                        top,
                    )
                )
                written.append(path)
        return written


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]


def sparse_basis(
    graph: NeuronGraph,
    *,
    name: str = "model",
    probes: Probes | None = None,
    search: Search | None = None,
    on_jacobian: Callable[[], None] | None = None,
) -> BasisReport:
    """Search, for every Jacobian between consecutive layers, the rotations that sparsify it;
    ``on_jacobian`` is called as each search ends (a wide network takes minutes)."""
    probes = probes or Probes(n=DEFAULT_PROBES)
    search = search or Search()
    net = layered(graph)
    x = probes.sample(len(graph.inputs))
    reference = graph.evaluate(x)
    _, pre = net.forward(x)
    pairs = []
    for target in _targets(net):
        slopes = _slopes(net.activations[target], pre[target - 1])
        pairs.append(_search_pair(net, target - 1, target, slopes, x, reference, search))
        if on_jacobian is not None:
            on_jacobian()
    return BasisReport(name, tuple(pairs), tuple(_agreements(pairs, search.seed)), probes)


def jacobian_count(graph: NeuronGraph) -> int:
    """How many Jacobians ``sparse_basis`` searches: one into every layer that is hidden or
    follows a hidden layer."""
    return len(_targets(layered(graph)))


def _targets(net: Layered) -> list[int]:
    return [
        target for target in range(1, len(net.ids)) if net.hidden(target - 1) or net.hidden(target)
    ]


def _search_pair(
    net: Layered,
    source: int,
    target: int,
    slopes: np.ndarray,
    x: np.ndarray,
    reference: np.ndarray,
    search: Search,
) -> PairBasis:
    weights = net.weights[target - 1]
    problem = _Problem(slopes, weights)
    sides = [layer for layer in (source, target) if net.hidden(layer)]
    start = time.perf_counter()
    generators, steps, converged = problem.optimise(
        {layer: len(net.ids[layer]) for layer in sides}, source, search
    )
    seconds = time.perf_counter() - start
    rotations = {layer: _rotation(a).numpy() for layer, a in generators.items()}
    before, heat_before = problem.measure(None, None)
    after, heat_after = problem.measure(rotations.get(source), rotations.get(target))
    rotated, _ = net.forward(x, rotations)
    return PairBasis(
        source,
        target,
        weights.shape,
        before,
        after,
        steps,
        seconds,
        converged,
        float(np.abs(rotated - reference).max()),
        rotations,
        heat_before,
        heat_after,
    )


def _rotation(generator: torch.Tensor) -> torch.Tensor:
    """matrix_exp of a skew-symmetric matrix: orthogonal, evaluated in float64 to stay so."""
    a = generator.detach().double()
    return torch.linalg.matrix_exp(a - a.T)


class _Problem:
    """J(x) = diag(slopes(x)) W for every probe, and the L1/L2 ratio of R_Y J(x) R_X^T."""

    def __init__(self, slopes: np.ndarray, weights: np.ndarray) -> None:
        fro = np.sqrt((slopes**2) @ (weights**2).sum(axis=1))
        live = fro > 0.0  # probes where Y does not depend on X at all say nothing
        self.slopes = torch.from_numpy(slopes[live])
        self.fro = torch.from_numpy(fro[live])
        self.weights = torch.from_numpy(weights)

    def ratios(
        self,
        rows: torch.Tensor,
        rx: torch.Tensor | None,
        ry: torch.Tensor | None,
        dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """|J'|_1 / |J'|_F per probe in ``rows``, and the sum of |J'| / |J'|_F over them."""
        m = self.weights.to(dtype)
        if rx is not None:
            m = m @ rx.T
        slopes = self.slopes[rows].to(dtype)
        if ry is None:
            j = slopes[:, :, None] * m
        else:
            # R_Y diag(s) M for every probe as one (probes * n_Y, n_Y) @ (n_Y, n_X) product:
            # one large matrix product instead of a batch of small ones.
            left = ry[None, :, :] * slopes[:, None, :]
            j = (left.reshape(-1, ry.shape[0]) @ m).reshape(len(rows), *m.shape)
        normalised = j.abs() / self.fro[rows].to(dtype)[:, None, None]
        return normalised.sum(dim=(1, 2)), normalised.sum(dim=0)

    def chunks(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.fro), EVAL_CHUNK):
            yield torch.arange(start, min(start + EVAL_CHUNK, len(self.fro)))

    def mean_ratio(self, rx: torch.Tensor | None, ry: torch.Tensor | None) -> float:
        """The objective on the whole pool, at the search's float32 precision."""
        with torch.no_grad():
            total = sum(
                float(self.ratios(rows, rx, ry, torch.float32)[0].sum()) for rows in self.chunks()
            )
        return total / len(self.fro)

    def measure(self, rx: np.ndarray | None, ry: np.ndarray | None) -> tuple[float, np.ndarray]:
        """Mean Hoyer sparsity and the mean normalised |J'|, in float64."""
        n = self.weights.numel()
        tx = None if rx is None else torch.from_numpy(rx)
        ty = None if ry is None else torch.from_numpy(ry)
        ratios, heat = [], torch.zeros_like(self.weights)
        with torch.no_grad():
            for rows in self.chunks():
                r, h = self.ratios(rows, tx, ty, torch.float64)
                ratios.append(r)
                heat += h
        if not ratios:
            return 0.0, heat.numpy()
        ratio = torch.cat(ratios)
        if n == 1:  # a single entry is as sparse as it gets
            return 1.0, (heat / len(ratio)).numpy()
        hoyer = (math.sqrt(n) - ratio) / (math.sqrt(n) - 1.0)
        return float(hoyer.mean()), (heat / len(ratio)).numpy()

    def optimise(
        self, sizes: Mapping[int, int], source: int, search: Search
    ) -> tuple[dict[int, torch.Tensor], int, bool]:
        """Generators A per rotated layer, the steps taken, and whether it stopped early."""
        generators = {layer: torch.zeros(n, n, requires_grad=True) for layer, n in sizes.items()}
        n_probes = len(self.fro)
        if n_probes == 0:
            return generators, 0, True

        def rotations() -> tuple[torch.Tensor | None, torch.Tensor | None]:
            rs = {layer: torch.linalg.matrix_exp(a - a.T) for layer, a in generators.items()}
            rx = rs.pop(source, None)
            return rx, next(iter(rs.values()), None)

        optimiser = torch.optim.Adam(list(generators.values()), lr=search.lr)
        order = torch.randperm(n_probes, generator=torch.Generator().manual_seed(search.seed))
        batch = min(search.batch, n_probes)
        best = self.mean_ratio(*rotations())
        best_state = {k: a.detach().clone() for k, a in generators.items()}
        stale, step = 0, 0
        for step in range(1, search.max_steps + 1):
            first = ((step - 1) * batch) % n_probes
            rows = order[torch.arange(first, first + batch) % n_probes]
            loss = self.ratios(rows, *rotations(), torch.float32)[0].mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % search.eval_every:
                continue
            value = self.mean_ratio(*rotations())
            if value < best * (1.0 - search.rel_tol):
                best, stale = value, 0
                best_state = {k: a.detach().clone() for k, a in generators.items()}
            else:
                stale += 1
                if stale >= search.patience:
                    return best_state, step, True
        return best_state, step, False


def _agreements(pairs: Sequence[PairBasis], seed: int) -> list[LayerAgreement]:
    incoming = {p.target: p.rotations[p.target] for p in pairs if p.target in p.rotations}
    outgoing = {p.source: p.rotations[p.source] for p in pairs if p.source in p.rotations}
    rng = np.random.default_rng(seed)
    found = []
    for layer in sorted(incoming.keys() & outgoing.keys()):
        a, b = incoming[layer], outgoing[layer]
        neurons = np.eye(len(a))
        q, _ = np.linalg.qr(rng.normal(size=a.shape))
        found.append(
            LayerAgreement(
                layer,
                basis_agreement(a, b),
                basis_agreement(neurons, q),
                basis_agreement(a, neurons),
                basis_agreement(b, neurons),
            )
        )
    return found


def basis_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |cosine| between the rows of two orthogonal matrices, paired greedily.

    Greedy (the most similar remaining pair first) rather than an optimal assignment, which
    would need scipy; it can only under-report agreement, and for bases that agree it finds
    the same pairing.
    """
    cos = np.abs(a @ b.T)
    n = len(cos)
    free_rows, free_cols = np.ones(n, bool), np.ones(n, bool)
    total, matched = 0.0, 0
    for flat in np.argsort(cos, axis=None)[::-1]:
        row, col = divmod(int(flat), n)
        if free_rows[row] and free_cols[col]:
            free_rows[row] = free_cols[col] = False
            total += float(cos[row, col])
            matched += 1
            if matched == n:
                break
    return total / n


def heatmap_svg(matrix: np.ndarray, title: str, top: float | None = None) -> str:
    """A small SVG heatmap (white = 0, dark blue = ``top``) with a colour bar.

    Matrices wider or taller than ``HEATMAP_CELLS`` are block-averaged first: a 128x784
    Jacobian would otherwise be 100,000 rectangles.
    """
    shown = _pool(_pool(np.abs(matrix), HEATMAP_CELLS).T, HEATMAP_CELLS).T
    top = float(top if top is not None else shown.max()) or 1.0
    rows, cols = shown.shape
    cell = max(2, min(16, 480 // max(rows, cols)))
    left, head = 10, 40
    width, height = left + cols * cell + 90, head + rows * cell + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16">{escape(title)}</text>',
        f'<text x="{left}" y="32">{matrix.shape[0]} rows (layer Y) x {matrix.shape[1]} '
        f"columns (layer X){', block-averaged' if shown.shape != matrix.shape else ''}"
        "</text>",
        f'<rect x="{left}" y="{head}" width="{cols * cell}" height="{rows * cell}" '
        'fill="white" stroke="#999"/>',
    ]
    for (r, c), value in np.ndenumerate(shown):
        if value / top >= 1.0 / 255.0:
            parts.append(
                f'<rect x="{left + c * cell}" y="{head + r * cell}" width="{cell}" '
                f'height="{cell}" fill="{_colour(value / top)}"/>'
            )
    bar_x = left + cols * cell + 20
    for i in range(10):
        parts.append(
            f'<rect x="{bar_x}" y="{head + (9 - i) * 12}" width="14" height="12" '
            f'fill="{_colour((i + 0.5) / 10)}"/>'
        )
    parts += [
        f'<text x="{bar_x + 18}" y="{head + 10}">{top:.2g}</text>',
        f'<text x="{bar_x + 18}" y="{head + 120}">0</text>',
        "</svg>",
    ]
    return "\n".join(parts)


def _pool(matrix: np.ndarray, cells: int) -> np.ndarray:
    """Average consecutive rows so that at most ``cells`` remain."""
    if len(matrix) <= cells:
        return matrix
    edges = np.linspace(0, len(matrix), cells + 1).round().astype(int)
    return np.add.reduceat(matrix, edges[:-1], axis=0) / np.diff(edges)[:, None]


def _colour(level: float) -> str:
    level = min(max(level, 0.0), 1.0)
    low, high = np.array([255, 255, 255]), np.array([8, 48, 107])
    r, g, b = (low + (high - low) * level).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"

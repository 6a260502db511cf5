"""Train small MLPs on the functions of the circuits literature, many networks at once.

A zoo network has a handful of neurons, so torch's per-call overhead, not arithmetic, sets the
cost of a training step. Training every seed and initialisation of one architecture together,
as stacked weight tensors and batched matmuls, pays that overhead once per step for all of
them. Each network still has its own data and initial weights (drawn from its own seed), its
own optimizer state, and the gradient of its own loss only: the summed loss has no term that
mixes two networks, so a network's training does not depend on which others share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuitql.domain import Domain
from circuitql.export import PREVIOUS, DenseLayer, MLPSpec

INPUT = "input"
OPTIMIZERS = ("adam", "sgd")
INITS = ("default", "kaiming", "small")
SMALL_INIT_STD = 0.1
LEARNING_RATES = {"adam": 1e-2, "sgd": 2e-2}
SGD_MOMENTUM = 0.9
FINAL_LR_FRACTION = 0.01  # cosine decay to this share of the rate: tail steps settle weights


@dataclass(frozen=True)
class Task:
    """A function to learn, with the network shapes the zoo tries on it.

    ``min_width`` is the width of the smallest network that computes the function exactly in
    the library's circuit (``circuit``); ``skip`` gives the output layer the network inputs
    too, which the one-neuron min and max circuits need.
    """

    name: str
    n_inputs: int
    inputs: Callable[[torch.Generator, int], Tensor]
    target: Callable[[Tensor], Tensor]
    circuit: str
    min_width: int
    depths: tuple[int, ...]
    skip: bool = False
    output: str = "identity"  # "sigmoid": a probability, trained with cross-entropy
    lr_scale: float = 1.0  # inputs far from [-1, 1] need other step sizes
    domain: tuple[float, float] = (-2.0, 2.0)  # every input's range in the training data

    def widths(self, depth: int, multipliers: Sequence[int]) -> tuple[int, ...]:
        """A network without hidden layers has no width to vary."""
        return (0,) if depth == 0 else tuple(self.min_width * m for m in multipliers)


def _uniform(lo: float, hi: float, n_inputs: int) -> Callable[[torch.Generator, int], Tensor]:
    def draw(gen: torch.Generator, n: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, n_inputs, generator=gen)

    return draw


def _around(c: float, gap: float, reach: float) -> Callable[[torch.Generator, int], Tensor]:
    """Uniform on [c - reach, c - gap] and [c + gap, c + reach]: a threshold is learnable
    only up to the spacing of the points around it, so (like the library's probes of
    less_than) the data leave a gap there."""
    span = reach - gap

    def draw(gen: torch.Generator, n: int) -> Tensor:
        u = torch.rand(n, 1, generator=gen) * 2 * span
        return torch.where(u < span, c - reach + u, c + gap + (u - span))

    return draw


def _grid(values: Sequence[float], n_inputs: int) -> Callable[[torch.Generator, int], Tensor]:
    """Every point of ``values ** n_inputs``: finite domains are learned on all their points."""
    points = torch.cartesian_prod(*[torch.tensor(values, dtype=torch.float32)] * n_inputs)
    points = points.reshape(-1, n_inputs)

    def draw(_gen: torch.Generator, _n: int) -> Tensor:
        return points.clone()

    return draw


LESS_THAN_C = 10.0
IS_EVEN_BITS = 4

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("identity", 1, _uniform(-2, 2, 1), lambda x: x[:, 0], "identity", 2, (1, 2)),
        Task("negation", 1, _uniform(-2, 2, 1), lambda x: -x[:, 0], "negation", 2, (1, 2)),
        Task("abs", 1, _uniform(-2, 2, 1), lambda x: x[:, 0].abs(), "abs", 2, (1, 2)),
        Task("add", 2, _uniform(-2, 2, 2), lambda x: x[:, 0] + x[:, 1], "add", 2, (1, 2)),
        Task("subtract", 2, _uniform(-2, 2, 2), lambda x: x[:, 0] - x[:, 1], "subtract", 2, (1, 2)),
        Task(
            "min", 2, _uniform(-2, 2, 2), lambda x: x.min(dim=1).values, "min", 1, (1, 2), skip=True
        ),
        Task(
            "max", 2, _uniform(-2, 2, 2), lambda x: x.max(dim=1).values, "max", 1, (1, 2), skip=True
        ),
        Task(
            "less_than",
            1,
            _around(LESS_THAN_C, 0.5, 4.0),
            lambda x: (x[:, 0] < LESS_THAN_C).float(),
            "less_than",
            1,
            (0, 1),
            output="sigmoid",
            lr_scale=10.0,
            domain=(LESS_THAN_C - 4.0, LESS_THAN_C + 4.0),
        ),
        Task(
            "is_even",
            1,
            _grid(range(2**IS_EVEN_BITS), 1),
            lambda x: x[:, 0].remainder(2),
            "is_even",
            2,
            (IS_EVEN_BITS + 1, IS_EVEN_BITS + 2),
            lr_scale=0.3,
            domain=(0.0, 2.0**IS_EVEN_BITS - 1),
        ),
        Task(
            "xor",
            2,
            _grid((0.0, 1.0), 2),
            lambda x: (x[:, 0] != x[:, 1]).float(),
            "xor",
            2,
            (1, 2),
            domain=(0.0, 1.0),
        ),
    )
}


@dataclass(frozen=True)
class TrainConfig:
    """How every network of a group trains: ``steps`` of its optimizer, the rate decaying
    along a cosine to ``FINAL_LR_FRACTION`` of it, full batch unless ``batch_size`` is
    smaller than the data."""

    steps: int = 1500
    n_samples: int = 256  # for tasks on a continuous domain; finite ones use every point
    batch_size: int | None = None  # None: full batch
    lr: float | None = None  # None: the optimizer's default in LEARNING_RATES


@dataclass(frozen=True)
class Member:
    """One network of a training group."""

    width: int
    seed: int
    init: str


@dataclass(frozen=True)
class Trained:
    """One trained network; ``spec.meta`` holds what the zoo records about it."""

    member: Member
    spec: MLPSpec

    @property
    def diverged(self) -> bool:
        """Training ended at a NaN or infinite loss; ``build_zoo`` saves no file for it."""
        return not math.isfinite(self.spec.meta["final_loss"])


def train_group(
    task: Task, depth: int, optimizer: str, members: Sequence[Member], config: TrainConfig
) -> list[Trained]:
    """Train one network per member, all ``depth`` hidden layers deep.

    Networks narrower than the widest member are padded with units whose weights are all
    zero: their gradients are exactly zero, so they stay zero and are cut off at the end.
    Deterministic: the same arguments give bit-identical weights.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    x = torch.stack([task.inputs(g, config.n_samples) for g in gens])  # (K, N, inputs)
    y = torch.stack([task.target(xi) for xi in x])  # (K, N)
    net = _Stacked.initialised(task, depth, members, gens)
    lr = (config.lr or LEARNING_RATES[optimizer]) * task.lr_scale
    opt: torch.optim.Optimizer = (
        torch.optim.Adam(net.params, lr=lr, fused=True)
        if optimizer == "adam"
        else torch.optim.SGD(net.params, lr=lr, momentum=SGD_MOMENTUM, fused=True)
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=config.steps, eta_min=lr * FINAL_LR_FRACTION
    )
    n = x.shape[1]
    batch = config.batch_size if config.batch_size and config.batch_size < n else None
    rows = torch.arange(len(members))[:, None]
    for _ in range(config.steps):
        if batch is None:
            xb, yb = x, y
        else:
            idx = torch.stack([torch.randint(n, (batch,), generator=g) for g in gens])
            xb, yb = x[rows, idx], y[rows, idx]
        opt.zero_grad(set_to_none=True)
        _loss(net(xb), yb, task.output).sum().backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        final = _loss(net(x), y, task.output)
    return [
        Trained(
            m,
            net.spec(
                k,
                m.width,
                {
                    "task": task.name,
                    "circuit": task.circuit,
                    "width": m.width,
                    "depth": depth,
                    "seed": m.seed,
                    "optimizer": optimizer,
                    "init": m.init,
                    "final_loss": float(final[k]),
                    "steps": config.steps,
                    "lr": lr,
                    "skip": net.skip,
                    "batch_size": batch or n,
                },
            ),
        )
        for k, m in enumerate(members)
    ]


def _loss(out: Tensor, target: Tensor, output: str) -> Tensor:
    """Per-network mean loss, shape (K,); ``out`` holds pre-activations."""
    if output == "sigmoid":
        per_point = torch.nn.functional.binary_cross_entropy_with_logits(
            out, target, reduction="none"
        )
    else:
        per_point = (out - target) ** 2
    return per_point.mean(dim=1)


class _Stacked:
    """K networks of one depth: layer i holds weights (K, out, in) and biases (K, out), as
    wide as the widest of them."""

    def __init__(self, task: Task, weights: list[Tensor], biases: list[Tensor]) -> None:
        self.task = task
        self.weights = weights
        self.biases = biases
        self.skip = task.skip and len(weights) > 1

    @property
    def params(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

    @staticmethod
    def initialised(
        task: Task, depth: int, members: Sequence[Member], gens: Sequence[torch.Generator]
    ) -> _Stacked:
        skip = task.skip and depth > 0
        padded = _shapes(task, depth, max(m.width for m in members), skip)
        weights = [torch.zeros(len(members), *shape) for shape in padded]
        biases = [torch.zeros(len(members), shape[0]) for shape in padded]
        for k, (member, gen) in enumerate(zip(members, gens, strict=True)):
            for i, shape in enumerate(_shapes(task, depth, member.width, skip)):
                # top-left: a skip output layer's input columns come first, so they line up
                weights[i][k, : shape[0], : shape[1]], biases[i][k, : shape[0]] = _init_layer(
                    member.init, *shape, gen
                )
        return _Stacked(
            task, [w.requires_grad_() for w in weights], [b.requires_grad_() for b in biases]
        )

    def __call__(self, x: Tensor) -> Tensor:
        """(K, N, inputs) -> (K, N) output pre-activations."""
        h = x
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = torch.relu(torch.baddbmm(b[:, None, :], h, w.transpose(1, 2)))
        if self.skip:
            h = torch.cat([x, h], dim=2)
        out = torch.baddbmm(self.biases[-1][:, None, :], h, self.weights[-1].transpose(1, 2))
        return out[:, :, 0]

    def spec(self, k: int, width: int, meta: dict[str, Any]) -> MLPSpec:
        """Network ``k``, cut to its own ``width``, as an ``MLPSpec`` for ``export.save``."""
        n_in = self.task.n_inputs
        layers = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            weight = w[k].detach()
            if i == last:
                name, act = "out", self.task.output
                reads = (INPUT, f"fc{i}") if self.skip else (PREVIOUS,)
                keep = n_in + width if self.skip else (width if i else n_in)
                weight, bias = weight[:, :keep], b[k].detach()
            else:
                name, act, reads = f"fc{i + 1}", "relu", (PREVIOUS,)
                weight, bias = weight[:width, : width if i else n_in], b[k].detach()[:width]
            layers.append(DenseLayer(name, weight.numpy().copy(), bias.numpy().copy(), act, reads))
        return MLPSpec(n_in, tuple(layers), meta, Domain((self.task.domain,)))


def _shapes(task: Task, depth: int, width: int, skip: bool) -> list[tuple[int, int]]:
    """(fan_out, fan_in) per layer; a skip output layer reads the inputs, then the last
    hidden layer."""
    hidden = [(width, task.n_inputs)] + [(width, width)] * (depth - 1) if depth else []
    return [*hidden, (1, (width if depth else task.n_inputs) + (task.n_inputs if skip else 0))]


def _init_layer(
    init: str, fan_out: int, fan_in: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``default``: torch's nn.Linear (uniform in ±1/sqrt(fan_in), biases too); ``kaiming``:
    He normal, zero biases; ``small``: normal with std 0.1, zero biases (the rich regime)."""
    if init == "default":
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound
        return w, (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
    if init == "kaiming":
        w = torch.randn(fan_out, fan_in, generator=gen) * math.sqrt(2.0 / fan_in)
        return w, torch.zeros(fan_out)
    if init == "small":
        return torch.randn(fan_out, fan_in, generator=gen) * SMALL_INIT_STD, torch.zeros(fan_out)
    raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")

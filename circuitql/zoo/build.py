"""The trained model zoo: every task of ``train.TASKS`` over widths, depths, seeds, optimizers
and initialisations, each network saved as safetensors + JSON config with its metadata.

The zoo is what the census counts: for each task, how many trained networks hold the library
circuit that computes it. Files go to ``DIR/<task>/w<width>-d<depth>-<optimizer>-<init>-
s<seed>.safetensors``, so ``circuitql index DIR`` names them ``<task>/...`` and
``--models 'min/*'`` picks one task.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from circuitql.errors import CircuitQLError
from circuitql.export import save
from circuitql.zoo.train import INITS, OPTIMIZERS, TASKS, Member, TrainConfig, train_group


@dataclass(frozen=True)
class Plan:
    """What to train: tasks x widths (multiples of each task's minimal width) x depths (each
    task's own) x seeds x optimizers x initialisations."""

    tasks: tuple[str, ...] = tuple(TASKS)
    multipliers: tuple[int, ...] = (1, 2, 4)
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    optimizers: tuple[str, ...] = OPTIMIZERS
    inits: tuple[str, ...] = INITS
    train: TrainConfig = field(default_factory=TrainConfig)

    def groups(self) -> list[Group]:
        """One training batch per task, depth and optimizer: every width, seed and
        initialisation of it trains together."""
        out: list[Group] = []
        for name in self.tasks:
            task = TASKS[name]
            for depth in task.depths:
                members = tuple(
                    Member(w, s, i)
                    for w in task.widths(depth, self.multipliers)
                    for s in self.seeds
                    for i in self.inits
                )
                out.extend(Group(name, depth, opt, members) for opt in self.optimizers)
        return out

    def __len__(self) -> int:
        return sum(len(g.members) for g in self.groups())


SIZES = ("small", "default", "large")


def plan_for(size: str, seed: int = 0) -> Plan:
    """``small`` (a quick look), ``default``, ``large``, or an integer k: the default plan with
    k times the seeds. Seeds run from ``seed`` up."""
    if size == "small":
        return Plan(
            multipliers=(1, 2),
            seeds=_seeds(seed, 2),
            optimizers=("adam",),
            inits=("default",),
            train=TrainConfig(steps=1000),
        )
    if size == "default":
        return Plan(seeds=_seeds(seed, 4))
    if size == "large":
        return Plan(multipliers=(1, 2, 4, 8), seeds=_seeds(seed, 10), train=TrainConfig(steps=3000))
    if size.isdigit() and int(size) > 0:
        return Plan(seeds=_seeds(seed, 4 * int(size)))
    raise CircuitQLError(
        f"unknown zoo size {size!r}",
        fix=f"use one of {', '.join(SIZES)}, or a positive integer k for "
        "k times the default number of seeds",
    )


def _seeds(first: int, n: int) -> tuple[int, ...]:
    return tuple(range(first, first + n))


@dataclass(frozen=True)
class Group:
    """One training batch (``Plan.groups``): a task's networks of one depth and optimizer,
    every width, seed and initialisation of them trained together."""

    task: str
    depth: int
    optimizer: str
    members: tuple[Member, ...]

    def path(self, member: Member) -> Path:
        """``member``'s file, relative to the zoo folder; ``circuitql index`` names the model
        after it."""
        return Path(self.task) / (
            f"w{member.width}-d{self.depth}-{self.optimizer}-"
            f"{member.init}-s{member.seed}.safetensors"
        )


Job = tuple[Path, Group, TrainConfig]
Result = tuple[list[Path], list[Path]]  # saved, diverged


@dataclass(frozen=True)
class BuildReport:
    """What ``build_zoo`` did: the files written, the networks that diverged instead, and
    the time it took."""

    written: list[Path]
    diverged: list[Path]  # training ran to NaN or Inf: not saved (no loader would take it)
    seconds: float


def build_zoo(
    directory: Path,
    plan: Plan,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Train and save every network of ``plan`` under ``directory``; ``progress`` is called
    with the number of networks each finished group held."""
    start = time.perf_counter()
    groups = sorted(plan.groups(), key=_cost, reverse=True)  # longest first: even workers
    written: list[Path] = []
    diverged: list[Path] = []
    with _writing(directory), _executor(jobs or os.cpu_count() or 1) as run:
        for saved, failed in run(_train_and_save, [(directory, g, plan.train) for g in groups]):
            written += saved
            diverged += failed
            if progress:
                progress(len(saved) + len(failed))
    return BuildReport(sorted(written), sorted(diverged), time.perf_counter() - start)


@contextmanager
def _writing(directory: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise CircuitQLError(
            f"cannot write the zoo: {exc}",
            where=str(directory),
            fix="choose a folder you can write to, with free space",
        ) from exc


def _cost(group: Group) -> int:
    widest = max(m.width for m in group.members)
    return len(group.members) * (1 + group.depth * widest)


def _train_and_save(job: Job) -> Result:
    directory, group, config = job
    _one_thread()
    saved, failed = [], []
    for trained in train_group(
        TASKS[group.task], group.depth, group.optimizer, group.members, config
    ):
        path = directory / group.path(trained.member)
        if trained.diverged:
            failed.append(path)
        else:
            saved.append(save(trained.spec, path))
    return saved, failed


def _one_thread() -> None:
    """Tiny matmuls gain nothing from threads; processes, not threads, share the cores."""
    import torch

    torch.set_num_threads(1)


@contextmanager
def _executor(
    jobs: int,
) -> Iterator[Callable[[Callable[[Job], Result], list[Job]], Iterator[Result]]]:
    """``map`` in this process for one job, else over worker processes from a fork server
    (never a fork of a parent that may hold torch's threads), results as they finish."""
    if jobs <= 1:
        yield map
        return
    context = get_context("forkserver" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:

        def unordered(fn: Callable[[Job], Result], items: list[Job]) -> Iterator[Result]:
            for future in as_completed([pool.submit(fn, item) for item in items]):
                yield future.result()

        yield unordered


def build_references(directory: Path) -> list[Path]:
    """The hand-wired network of every library circuit, as ``DIR/<circuit>.safetensors``:
    the zoo's ground truth, where each circuit is known to be present."""
    from circuitql.export import spec_from_graph
    from circuitql.language.library import builtin_library, reference_network

    with _writing(directory):
        return [
            save(
                spec_from_graph(reference_network(name), {"kind": "reference", "circuit": name}),
                directory / f"{name}.safetensors",
            )
            for name in builtin_library().names
        ]

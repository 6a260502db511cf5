"""Input domains: where a network's inputs live, one closed interval per input.

A domain is what turns "this ReLU could fire" into "this ReLU fires on every input the model
ever sees": on a box, a unit that never fires is dead and one that always fires is linear, and
a circuit is verified where the model is used rather than on an arbitrary range. Trained
networks are only ever asked about their training range, and leave units that are constant or
linear there; without a domain such units look like part of a circuit.

A domain is given once per model (``--domain``, ``IndexConfig``, a JSON config's ``"domain"``,
or recorded by ``circuitql zoo build`` from the training data) and stored with it. No domain
means unbounded inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from circuitql.errors import CircuitQLError

Interval = tuple[float, float]

MAX_INPUTS = 1_000_000  # a domain lists one interval per input; more is not a network


class DomainError(CircuitQLError):
    """A domain that cannot be read or does not fit the model."""


_FORMAT = (
    'a domain is LO:HI for every input ("-2:2"), or one LO:HI per input separated by '
    'commas ("-2:2,0:1"); in JSON, [LO, HI] or [[LO, HI], ...]'
)


@dataclass(frozen=True)
class Domain:
    """A box: ``box[i]`` is the interval of input i. One interval stands for every input
    until ``for_inputs`` spreads it to a model's inputs."""

    box: tuple[Interval, ...]

    def __post_init__(self) -> None:
        if not self.box:
            raise DomainError("a domain needs at least one interval", fix=_FORMAT)
        if len(self.box) > MAX_INPUTS:
            raise DomainError(
                f"a domain of {len(self.box)} intervals is larger than any "
                f"network circuitql reads ({MAX_INPUTS})",
                fix=_FORMAT,
            )
        for i, (lo, hi) in enumerate(self.box):
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise DomainError(
                    f"interval {i} of the domain, [{lo}, {hi}], is empty",
                    fix="give each interval as LO:HI with LO <= HI",
                )
            if not math.isfinite(hi - lo):  # probes are drawn from it, and JSON has no inf
                raise DomainError(
                    f"interval {i} of the domain, [{lo}, {hi}], is unbounded",
                    fix="give finite ends; for unbounded inputs give no domain",
                )

    @staticmethod
    def parse(text: str) -> Domain:
        """``"-2:2"`` or ``"-2:2,0:1"``: the command line's spelling."""
        box = []
        for part in text.split(","):
            ends = part.strip().split(":")
            if len(ends) != 2:
                raise DomainError(f"cannot read the domain {text!r}", fix=_FORMAT)
            try:
                box.append((float(ends[0]), float(ends[1])))
            except ValueError:
                raise DomainError(
                    f"cannot read the domain {text!r}: {part.strip()!r} is not "
                    "LO:HI with two numbers",
                    fix=_FORMAT,
                ) from None
        return Domain(tuple(box))

    @staticmethod
    def from_json(value: Any) -> Domain:
        """``[lo, hi]`` (every input) or ``[[lo, hi], ...]`` (one per input)."""
        try:
            if _is_pair(value):
                return Domain(((float(value[0]), float(value[1])),))
            if (
                isinstance(value, list)
                and value
                and len(value) <= MAX_INPUTS
                and all(_is_pair(v) for v in value)
            ):
                return Domain(tuple((float(lo), float(hi)) for lo, hi in value))
        except OverflowError:  # an integer too large for a float
            pass
        raise DomainError(f"cannot read the domain {_short(value)}", fix=_FORMAT)

    def for_inputs(self, n_inputs: int) -> Domain:
        """This domain for a model with ``n_inputs`` inputs: one interval is every input's."""
        if len(self.box) == n_inputs:
            return self
        if len(self.box) == 1:
            return Domain(self.box * n_inputs)
        raise DomainError(
            f"the domain has {len(self.box)} intervals but the model has {n_inputs} inputs",
            fix="give one interval for every input, or a single one for all of them",
        )

    @property
    def uniform(self) -> bool:
        """Whether every input has the same interval, so one interval can stand for all."""
        return all(interval == self.box[0] for interval in self.box)

    def to_json(self) -> list[Any]:
        """The shortest JSON ``from_json`` reads back to an equal domain for the model."""
        if self.uniform:
            return list(self.box[0])
        return [list(interval) for interval in self.box]

    def text(self) -> str:
        """For people (``circuitql models``): ``[-2, 2] for each of 3 inputs``, or one
        interval per input joined by ``x``."""
        if self.uniform:
            lo, hi = self.box[0]
            return f"[{lo:g}, {hi:g}]" + (
                "" if len(self.box) == 1 else f" for each of {len(self.box)} inputs"
            )
        return " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in self.box)


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""What EXPLAIN reports of a search: counts and seconds per stage, the plans, and why a
search stopped early (a ``PartialAnswer``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class PartialAnswer(UserWarning):
    """A search stopped at its deadline: the matches it gave are real, but not all."""


STAGES = ("lookup", "grow", "match", "fit", "verify")


@dataclass
class Explain:
    """Counts and seconds per stage, and the plans: what EXPLAIN prints."""

    plans: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    patterns: int = 0
    models: int | None = None  # None: the whole store, not listed
    partial: str | None = None  # why the search stopped before it was complete
    # Hears (candidates examined, candidates found so far) as the search goes: the second
    # grows as each flat pattern's anchors are looked up, so a bar's end moves with it.
    on_progress: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)
    examined: int = 0

    def advance(self, candidates: int) -> None:
        """``candidates`` more anchors examined (0: only more were looked up)."""
        self.examined += candidates
        if self.on_progress is not None:
            self.on_progress(self.examined, self.counts["lookup"])

    def to_json(self) -> dict[str, Any]:
        """What ``--json`` prints under ``explain`` (schemas/match.schema.json)."""
        return {
            "patterns": self.patterns,
            "models": self.models,
            "plans": self.plans,
            "partial": self.partial,
            "counts": dict(self.counts),
            "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
        }

    def text(self) -> str:
        """What ``EXPLAIN`` prints: the plans, then a line per stage with its count and time."""
        scope = "all models" if self.models is None else f"{self.models} model(s)"
        lines = [f"{self.patterns} flat pattern(s) over {scope}"]
        lines += self.plans
        for stage in STAGES:
            seconds = self.seconds[stage]
            lines.append(f"{stage:>7}: {self.counts[stage]:>8}  {seconds * 1e3:9.1f} ms")
        return "\n".join(lines)


class Clock:
    """Times a block into one stage of an ``Explain``."""

    def __init__(self, explain: Explain, stage: str) -> None:
        self.explain, self.stage = explain, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.explain.seconds[self.stage] += time.perf_counter() - self.start

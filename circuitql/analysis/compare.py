"""COMPARE: what two indexed networks have in common.

Three answers, from cheap to thorough: the canonical neuron signatures both contain (a
multiset intersection), which layers of one are sub-layers of the other (every token of a
layer appears in a layer of the other network, in layer order), and which library circuits
both contain. Two networks whose canonical graphs are isomorphic (within tolerance) are
reported as equivalent: they differ only by the symmetries the canonical form removes.
"""

from __future__ import annotations

import html
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from circuitql.analysis.equivalence import isomorphic
from circuitql.engine import search
from circuitql.engine.explain import Explain, PartialAnswer
from circuitql.grammar.token_parser import layer_words
from circuitql.language.compile import MatchQuery
from circuitql.language.library import PUBLIC_NAMES, builtin_library
from circuitql.store.base import Store, stored_graph

EQUIVALENCE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Comparison:
    """What two indexed models share: canonical neuron signatures, sub-layers and library
    circuits (``compare_models``)."""

    model_a: str
    model_b: str
    equivalent: bool
    shared_tokens: Mapping[str, int]
    hidden_a: int
    hidden_b: int
    sublayers: tuple[tuple[str, int, int], ...]  # ("a<=b" | "b<=a", layer of a, layer of b)
    # name: (matches in a, in b); None when circuits were not compared (--no-circuits)
    circuits: Mapping[str, tuple[int, int]] | None = None
    # Circuits whose search stopped at its deadline: their counts are lower bounds.
    unfinished: tuple[str, ...] = ()

    @property
    def shared_hidden(self) -> int:
        """Size of the multiset intersection of hidden-neuron tokens; input and output tokens
        (``x...``, ``y...``) never count."""
        return sum(n for t, n in self.shared_tokens.items() if not t.startswith(("x", "y")))

    def to_json(self) -> dict[str, Any]:
        """What ``compare --json`` and ``COMPARE ... --json`` print, as
        ``schemas/compare.schema.json`` describes it."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "equivalent": self.equivalent,
            "shared_hidden_neurons": self.shared_hidden,
            "hidden_neurons": [self.hidden_a, self.hidden_b],
            "shared_tokens": dict(self.shared_tokens),
            "sublayers": [
                {"relation": r, "layer_a": i, "layer_b": j} for r, i, j in self.sublayers
            ],
            "circuits": None
            if self.circuits is None
            else {k: {"a": v[0], "b": v[1]} for k, v in self.circuits.items()},
            "unfinished": list(self.unfinished),
        }

    def _repr_html_(self) -> str:
        """The comparison in Jupyter: its text, as preformatted HTML."""
        return f"<pre>{html.escape(self.text())}</pre>"

    def text(self) -> str:
        """The comparison for a terminal: the verdict, the shared signatures and sub-layers,
        then the circuits in both and those only one model holds."""
        verdict = "equivalent: identical canonical form" if self.equivalent else "not equivalent"
        lines = [
            f"{self.model_a} vs {self.model_b}: {verdict}",
            f"shared hidden neuron signatures: {self.shared_hidden} "
            f"(of {self.hidden_a} and {self.hidden_b})",
        ]
        for relation, i, j in self.sublayers:
            lines.append(
                f"  layer {i} of {self.model_a} {'⊆' if relation == 'a<=b' else '⊇'} "
                f"layer {j} of {self.model_b}"
            )
        if self.circuits is None:
            return "\n".join(lines)
        both = [name for name, (a, b) in self.circuits.items() if a and b]
        lines.append("circuits in both: " + (", ".join(both) if both else "none"))
        for name, (a, b) in self.circuits.items():
            if bool(a) != bool(b):
                lines.append(f"  {name}: only in {self.model_a if a else self.model_b}")
        if self.unfinished:
            lines.append(
                "searches stopped at their deadline (their counts are lower "
                f"bounds): {', '.join(self.unfinished)}"
            )
        return "\n".join(lines)


def plan_text() -> str:
    """What COMPARE does, in order: ``EXPLAIN COMPARE``'s plan."""
    steps = [
        "equivalent: the stored network strings, then the canonical graphs matched level by "
        "level (docs/canonical-form.md, equivalence)",
        "shared hidden neuron signatures: the multiset intersection of the hidden layers' tokens",
        "sub-layers: each hidden layer's token multiset against the other network's, in "
        "layer order",
        f"circuits: MATCH each of the {len(PUBLIC_NAMES)} public library circuits in the two "
        "models, all within one deadline (TIMEOUT, else 120 s); those it cuts short are "
        "listed as unfinished",
    ]
    return "plan:\n" + "\n".join(f"  {i}. {step}" for i, step in enumerate(steps, 1))


def compare_models(
    store: Store,
    model_a: str,
    model_b: str,
    tolerance: float | None = None,
    circuits: bool = True,
    on_circuit: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Comparison:
    """What the two models share; ``on_circuit`` is called with each library circuit's name
    once both models have been searched for it. The circuit searches share one deadline,
    ``timeout`` seconds (else ``DEFAULT_TIMEOUT``) from the first: each runs with the time
    left, and those that run out of it, or never start, are listed as unfinished."""
    info = {m.name: m for m in store.models() if m.name in (model_a, model_b)}
    words_a = [Counter(_tokens(w)) for w in layer_words(info[model_a].network_string)]
    words_b = [Counter(_tokens(w)) for w in layer_words(info[model_b].network_string)]
    all_a = sum(words_a[1:-1], Counter())
    all_b = sum(words_b[1:-1], Counter())
    equivalent = info[model_a].network_string == info[model_b].network_string and isomorphic(
        stored_graph(store, model_a), stored_graph(store, model_b), EQUIVALENCE_TOLERANCE
    )
    found: dict[str, tuple[int, int]] | None = None
    unfinished: list[str] = []
    if circuits:
        found = {}
        library = builtin_library()
        deadline = time.monotonic() + (search.DEFAULT_TIMEOUT if timeout is None else timeout)
        for name in PUBLIC_NAMES:
            left = deadline - time.monotonic()
            if left <= 0:
                found[name] = (0, 0)
                unfinished.append(name)
                if on_circuit is not None:
                    on_circuit(name)
                continue
            query = MatchQuery(library.pattern(name), tolerance=tolerance, timeout=left)
            explain = Explain()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PartialAnswer)  # said in the comparison
                counts = Counter(
                    m.model for m in search.run(store, query, explain, models=[model_a, model_b])
                )
            found[name] = (counts[model_a], counts[model_b])
            if explain.partial is not None:
                unfinished.append(name)
            if on_circuit is not None:
                on_circuit(name)
    return Comparison(
        model_a,
        model_b,
        equivalent,
        dict(all_a & all_b),
        sum(all_a.values()),
        sum(all_b.values()),
        _sublayers(words_a, words_b),
        found,
        tuple(unfinished),
    )


def _tokens(word: str) -> list[str]:
    """A layer word's tokens, counts expanded (``2*relu(...)`` is two tokens)."""
    out: list[str] = []
    for item in word.strip("[]").split():
        count, _, token = item.rpartition("*")
        out += [token] * (int(count) if count else 1)
    return out


def _sublayers(a: list[Counter[str]], b: list[Counter[str]]) -> tuple[tuple[str, int, int], ...]:
    """Hidden layers of one network whose token multiset is inside a hidden layer of the
    other, matched greedily in layer order."""
    pairs: list[tuple[str, int, int]] = []
    j_min = 1
    for i in range(1, len(a) - 1):
        for j in range(j_min, len(b) - 1):
            if not a[i] or not b[j]:
                continue
            if a[i] <= b[j]:
                pairs.append(("a<=b", i, j))
            elif b[j] <= a[i]:
                pairs.append(("b<=a", i, j))
            else:
                continue
            j_min = j + 1
            break
    return tuple(pairs)

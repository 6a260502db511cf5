"""How far the canonical form may move a network's function, and keeping it within that.

Every canonical step but pruning is exact on the domain (rescaling, merging exact duplicates,
folding dead and linear units), so the canonical network computes the original function up to
rounding and the weights pruning judged negligible. Whether they were is measured, not
assumed: both networks are evaluated on the same probes over the domain, and a model whose
canonical error is over ``Config.max_error`` is canonicalized again with a tighter
``prune_tol``, down to no pruning at all. Verification users compare decisions (an argmin, an
argmax) of the original and the indexed network: the bound is what lets them trust the index.

The probes are uniform over the domain's box, with its corners when there are few inputs
(where interval-wide weights do their worst). Without a domain they cover [-1, 1] for every
input (``canonical.input_ranges``), the box pruning judges contributions on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from circuitql.errors import ModelLoadError
from circuitql.graph import NeuronGraph
from circuitql.indexer.canonical import (
    Canonical,
    Config,
    State,
    Step,
    canonical_form,
    input_ranges,
)

PROBES = 512
SEED = 0
MAX_CORNER_INPUTS = 10  # 2^10 corners at most
TIGHTEN = 10.0  # each retry divides prune_tol by this much
MIN_PRUNE_TOL = 1e-9  # below this, the next retry prunes nothing
# Networks this large are let go during their canonical form and read again for a retry
# (a 3 x 64 MLP has 9,000 edges and retries often; a GPT-2-sized MLP block has 4.7 million).
RELEASED_EDGES = 1_000_000


def probes(graph: NeuronGraph, config: Config, n: int = PROBES) -> np.ndarray:
    """Inputs the original and canonical networks are compared on: shape (rows, inputs)."""
    lo, hi = input_ranges(config.box(len(graph.inputs)))
    rng = np.random.default_rng(SEED)
    rows = [rng.uniform(lo, hi, size=(n, len(lo)))]
    if len(lo) <= MAX_CORNER_INPUTS:
        rows.append(
            np.array(list(itertools.product(*zip(lo, hi, strict=True))), dtype=float).reshape(
                -1, len(lo)
            )
        )
    return np.concatenate(rows)


# Outputs no larger than this, relative to the inputs, are what float64 leaves of cancelling
# terms, not a function to keep relatively: a chain of units that can never fire, read
# through 1e-6-relative weights, gives outputs of 1e-7 where the inputs are 1, and merging two
# such units moves them by half of that.
NEGLIGIBLE_OUTPUT = 1e-6


def output_error(expected: np.ndarray, actual: np.ndarray, inputs: np.ndarray) -> float:
    """The largest output difference relative to the largest output; absolute when the
    outputs are all negligible next to the ``inputs`` they were computed on (a network of
    zeros, or of rounding); inf where either side is not finite."""
    if not (np.isfinite(expected).all() and np.isfinite(actual).all()):
        return float("inf")
    reach = float(np.max(np.abs(expected), initial=0.0))
    negligible = NEGLIGIBLE_OUTPUT * float(np.max(np.abs(inputs), initial=0.0))
    difference = float(np.max(np.abs(actual - expected), initial=0.0))
    return difference / (reach if reach > negligible and reach > 0 else 1.0)


def canonical_error(original: NeuronGraph, canonical: NeuronGraph, config: Config) -> float:
    """The canonical network's error against the original on the probes."""
    x = probes(original, config)
    with np.errstate(over="ignore", invalid="ignore"):
        return output_error(original.evaluate(x), canonical.evaluate(x), x)


def faithful_canonical(
    graph: NeuronGraph,
    config: Config,
    where: str = "",
    reread: Callable[[], NeuronGraph] | None = None,
) -> tuple[Canonical, float]:
    """The canonical form of ``graph`` within ``config.max_error`` of it, and its error.

    Each time the error is over the bound, pruning is tightened tenfold and the form is
    computed again (the log says so); a network still over it without any pruning is
    refused: something other than a negligible weight changed its function.

    With ``reread`` (the network read once more) and a network of ``RELEASED_EDGES`` edges
    or more, the graph is let go once its outputs on the probes are known, if the caller
    holds no other reference: the canonical form then never sits beside the loaded edges
    (1.4 GB for a GPT-2-sized stack), and the rare retry reads the network again. Smaller
    networks, which retry often, are kept.
    """
    tightened: list[Step] = []
    # The probes and the original's outputs there stay the same however pruning is tightened
    # (only prune_tol changes): computed once.
    x = probes(graph, config)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = graph.evaluate(x)
    if reread is not None and len(graph.edge_arrays) >= RELEASED_EDGES:
        released, again = True, reread
    else:
        released, again = False, _returning(graph)
    first = [State.of(graph, config, bare=released)]
    del graph
    while True:
        # Weights near the float range overflow on the way; the error measured says so.
        with np.errstate(over="ignore", invalid="ignore"):
            # Handed over, not held: each step's state replaces the one before.
            canon = canonical_form(
                first.pop() if first else State.of(again(), config, released),
                config,
            )
            error = output_error(expected, canon.graph.evaluate(x), x)
        if error <= config.max_error:
            return replace(canon, steps=(*tightened, *canon.steps)), error
        if config.prune_tol == 0.0:
            raise ModelLoadError(
                f"the canonical network differs from the loaded one by {error:.3g} (relative "
                f"to its largest output) even without pruning, over the bound "
                f"{config.max_error:g}",
                where=where,
                fix="check the weights for values that overflow (|w| near 1e300), or index "
                "it with a looser bound (--max-canonical-error)",
            )
        tighter = config.prune_tol / TIGHTEN
        tighter = 0.0 if tighter < MIN_PRUNE_TOL else tighter
        tightened.append(
            Step(
                "tighten",
                "prune_tol",
                f"{config.prune_tol:g} -> {tighter:g}: "
                f"canonical error {error:.3g} over {config.max_error:g}",
            )
        )
        config = replace(config, prune_tol=tighter)


def _returning(graph: NeuronGraph) -> Callable[[], NeuronGraph]:
    """``graph`` again, for a retry of a network that was kept."""
    return lambda: graph

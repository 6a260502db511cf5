"""Numeric verification: does the matched sub-network compute the circuit's function?

The matched units are rebuilt as a small NeuronGraph in the network's *original* coordinates
(canonical weights times the scales the canonical form recorded), so what is verified is what
the user's model computes, in its own units. The same graph is what ``Match.subnetwork()``
returns and what ``Match.verify(inputs)`` evaluates.

The circuit's inputs are the exception: they are read in canonical coordinates, as the fit
reads them. A hidden unit's own scale is a symmetry of the network (scale it by k and its
outgoing weights by 1/k, nothing changes), so "min of two hidden units" only means something
for their canonical, unit-norm values; in original units the same circuit would stop being
min whenever one of its inputs were rescaled. Network inputs are never rescaled, so for them
both coordinates agree.

When the circuit's output is a hidden neuron, its scale is a symmetry of the network (it can
move into the outgoing weights), so the circuit is identified up to a positive output scale
(reported as ``scale``). A network output's scale is part of the function: y = 2x is
``scale``, not ``identity``. The error is the largest deviation after the scale, relative to
the reference's largest magnitude on the probes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from circuitql.graph import Activation, NeuronGraph, Unit, UnitKind
from circuitql.query.pattern import CircuitPattern, Coef, CoefKind, Role
from circuitql.store.base import NeuronView

PROBES = 512
SEED = 0


def member_scale(view: NeuronView) -> float:
    """Original output = scale x canonical output, for the representative original neuron."""
    return view.record.members[0][1] if view.record.members else 1.0


def subnetwork(pattern: CircuitPattern, mapping: Mapping[str, str],
               views: Mapping[str, NeuronView]) -> NeuronGraph:
    """The matched units as a network of their own, inputs and outputs in pattern order."""
    units: list[Unit] = []
    scale = {name: 1.0 if pattern.unit(name).role is Role.INPUT else member_scale(views[uid])
             for name, uid in mapping.items()}
    for unit in pattern.units:
        uid = mapping[unit.name]
        if unit.role is Role.INPUT:
            units.append(Unit(uid, UnitKind.INPUT))
            continue
        view = views[uid]
        weights = dict(view.inputs)
        inputs = {mapping[src]: scale[unit.name] * weights[mapping[src]] / scale[src]
                  for src, _ in unit.inputs}
        bias = scale[unit.name] * view.record.bias
        if unit.role is Role.OUTPUT:
            # A bare-sum output is its pre-activation; an output the pattern writes with an
            # activation (a detector pair's relu(+x)) is that activation's value.
            act = Activation.IDENTITY if unit.activation is None else unit.activation
            units.append(Unit(uid, UnitKind.OUTPUT, act, bias, inputs))
        else:
            units.append(Unit(uid, UnitKind.HIDDEN, view.record.signature.activation, bias,
                              inputs))
    return NeuronGraph(tuple(units))


@dataclass(frozen=True)
class Verdict:
    error: float
    scales: tuple[float, ...]


def compare(outputs: np.ndarray, expected: np.ndarray,
            free_scale: tuple[bool, ...] | None = None) -> Verdict:
    """Per output column the best positive scale (where ``free_scale`` allows one, else 1)
    and the worst relative error after it."""
    errors, scales = [], []
    for col in range(expected.shape[1]):
        z, r = outputs[:, col], expected[:, col]
        zz = float(z @ z)
        if free_scale is not None and not free_scale[col]:
            k = 1.0
        else:
            k = float(z @ r) / zz if zz > 0 else 0.0
        reach = float(np.max(np.abs(r))) if r.size else 0.0
        if k <= 0:
            return Verdict(float("inf"), ())
        errors.append(float(np.max(np.abs(k * z - r))) / (reach if reach > 0 else 1.0))
        scales.append(k)
    return Verdict(max(errors, default=0.0), tuple(scales))


def verify(pattern: CircuitPattern, graph: NeuronGraph, params: Mapping[str, float],
           free_scale: tuple[bool, ...], probes: int = PROBES) -> Verdict:
    """Evaluate ``graph`` against the pattern's reference on its probe inputs."""
    if pattern.reference is None:
        return _verify_against_pattern(pattern, graph, params, free_scale, probes)
    rng = np.random.default_rng(SEED)
    x = pattern.reference.probes(rng, probes, params)
    return compare(graph.evaluate(x), pattern.reference(x, params), free_scale)


def _verify_against_pattern(pattern: CircuitPattern, graph: NeuronGraph,
                            params: Mapping[str, float], free_scale: tuple[bool, ...],
                            probes: int) -> Verdict:
    """Without EXPECT, the pattern's own arithmetic (sign-only weights taken as matched) is
    the reference: the structural match is confirmed on numbers, not trusted."""
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-4.0, 4.0, size=(probes, len(graph.inputs)))
    values = {u.name: x[:, i] for i, u in enumerate(u for u in pattern.units
                                                    if u.role is Role.INPUT)}
    graph_units = [u for u in graph.units if u.kind is not UnitKind.INPUT]
    for unit, actual in zip([u for u in pattern.units if u.role is not Role.INPUT],
                            graph_units, strict=True):
        z = np.full(len(x), _value(unit.bias, actual.bias, params))
        weights = list(actual.inputs.values())
        for (src, coef), w in zip(unit.inputs, weights, strict=True):
            z = z + _value(coef, w, params) * values[src]
        values[unit.name] = z if unit.activation is None else unit.activation.apply(z)
    outputs = [values[name] for name in pattern.outputs]
    return compare(graph.evaluate(x), np.stack(outputs, axis=1), free_scale)


def _value(coef: Coef, actual: float, params: Mapping[str, float]) -> float:
    if coef.kind is CoefKind.SIGN:
        return actual
    return coef.poly.evaluate(params)

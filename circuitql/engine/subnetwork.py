"""A neuron graph as an ``nn.Module``: how a matched circuit is handed back to torch users.

The module keeps the graph's wiring exactly (one parameter vector per unit, evaluated in
topological order), so it can be called, differentiated, traced by torch.fx, or indexed again
by circuitql, which then finds the same circuit in it.
"""

from __future__ import annotations

import torch
from torch import nn

from circuitql.graph import Activation, NeuronGraph, UnitKind

_ACTIVATIONS = {
    Activation.RELU: torch.relu,
    Activation.SIGMOID: torch.sigmoid,
    Activation.TANH: torch.tanh,
    Activation.GELU: nn.functional.gelu,
    Activation.IDENTITY: lambda z: z,
}


class GraphModule(nn.Module):
    """Computes a NeuronGraph: input (batch, n_inputs) -> output (batch, n_outputs)."""

    def __init__(self, graph: NeuronGraph) -> None:
        super().__init__()
        self.graph = graph
        index = {u.id: i for i, u in enumerate(graph.units)}
        self._plan: list[tuple[int, list[int], Activation, float]] = []
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for unit in graph.units:
            if unit.kind is UnitKind.INPUT:
                continue
            self._plan.append(
                (index[unit.id], [index[s] for s in unit.inputs], unit.activation, unit.alpha)
            )
            self.weights.append(
                nn.Parameter(torch.tensor(list(unit.inputs.values()), dtype=torch.float64))
            )
            self.biases.append(nn.Parameter(torch.tensor(unit.bias, dtype=torch.float64)))
        self._inputs = [index[u.id] for u in graph.inputs]
        self._outputs = [index[u.id] for u in graph.outputs]
        # Which unit each input column and output column stands for, in order.
        self.input_ids = tuple(u.id for u in graph.inputs)
        self.output_ids = tuple(u.id for u in graph.outputs)

    def extra_repr(self) -> str:
        """Which units the input and output columns stand for, in the module's printed form."""
        return f"inputs={list(self.input_ids)}, outputs={list(self.output_ids)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each unit in turn, in the graph's topological order; the columns of ``x`` and of
        the result follow ``input_ids`` and ``output_ids``."""
        values: dict[int, torch.Tensor] = {i: x[:, k] for k, i in enumerate(self._inputs)}
        for (target, sources, activation, alpha), w, b in zip(
            self._plan, self.weights, self.biases, strict=True
        ):
            z = b + sum(
                (w[j] * values[s] for j, s in enumerate(sources)), torch.zeros_like(x[:, 0])
            )
            if activation is Activation.LEAKY_RELU:
                values[target] = nn.functional.leaky_relu(z, alpha)
            else:
                values[target] = _ACTIVATIONS[activation](z)
        return torch.stack([values[i] for i in self._outputs], dim=1)


def as_module(graph: NeuronGraph) -> GraphModule:
    """The graph as a torch module: what ``Match.subnetwork()`` hands back."""
    return GraphModule(graph)

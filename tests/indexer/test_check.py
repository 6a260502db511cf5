"""`circuitql check`: the file's own function, the loaded graph and the canonical graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from circuitql.domain import Domain
from circuitql.export import save
from circuitql.indexer.canonical import Config
from circuitql.indexer.check import check_file, torch_outputs
from circuitql.indexer.nnet_loader import read_nnet
from circuitql.zoo.demo import random_mlp
from tests.indexer.test_nnet_loader import acas_like, nnet_semantics  # noqa: F401
from tests.indexer.test_onnx_loader import softmax_classifier

ACASXU = Path(__file__).resolve().parents[2].parent / "shared" / "zoo" / "acasxu"
BOX = Domain(((-0.3284228772, 0.6798577687), *((-0.5, 0.5),) * 4))


@pytest.mark.skipif(not ACASXU.is_dir(), reason="the ACAS Xu zoo is not beside this checkout")
def test_an_acas_xu_network_is_read_and_indexed_as_onnx_runs_it() -> None:
    report = check_file(ACASXU / "ACASXU_experimental_v2a_1_1.onnx", Config(domain=BOX), 2000)
    (against_file, canonical) = report.comparisons
    assert against_file.compared == "loaded graph vs ONNX reference evaluator"
    assert against_file.error < 1e-5 and canonical.error < 1e-3  # float32 file; the bound
    assert against_file.argmin_agreement == canonical.argmin_agreement == 1.0
    assert report.domain == BOX and report.probes == 2000 + 32
    assert "ONNX reference evaluator" in report.text()
    assert report.to_json()["comparisons"][1]["argmax_agreement"] == 1.0


def test_a_nnet_file_is_compared_with_its_own_semantics(acas_like: tuple) -> None:  # noqa: F811
    path, spec = acas_like
    x = np.random.default_rng(0).uniform(spec[1], spec[2], size=(50, 5))
    np.testing.assert_allclose(read_nnet(path).evaluate(x), nnet_semantics(*spec, x), rtol=1e-12)
    report = check_file(path, n_probes=1000)
    assert report.comparisons[0].compared == "loaded graph vs .nnet semantics"
    assert report.comparisons[0].error < 1e-9
    assert report.domain is not None and report.domain.box[0] == (0.0, 60760.0)


def test_a_final_softmax_is_compared_as_log_probabilities(tmp_path: Path) -> None:
    (against_file, _) = check_file(softmax_classifier(tmp_path), n_probes=500).comparisons
    assert against_file.compared.endswith("(log-probabilities)")
    assert against_file.error < 1e-5 and against_file.argmax_agreement == 1.0


def test_a_weights_file_is_run_by_torch_as_its_config_says(tmp_path: Path) -> None:
    """Skip connections, a residual add, a weight stored (in, out), and every activation:
    torch running the config agrees with the loaded graph, and with the torch module the
    state dict came from."""
    torch.manual_seed(0)
    fc1, fc2, fc3, out = (
        torch.nn.Linear(3, 6),
        torch.nn.Linear(9, 6),
        torch.nn.Linear(6, 6),
        torch.nn.Linear(6, 2),
    )
    state = {
        "fc1.weight": fc1.weight,
        "fc1.bias": fc1.bias,
        "fc2.weight": fc2.weight,
        "fc2.bias": fc2.bias,
        "fc3.W": fc3.weight.T.contiguous(),  # stored (in, out), as JAX keeps it
        "fc3.bias": fc3.bias,
        "out.weight": out.weight,
        "out.bias": out.bias,
    }
    path = tmp_path / "m.pt"
    torch.save({k: v.detach().clone() for k, v in state.items()}, path)
    layers = [
        {"name": "fc1", "activation": "leaky_relu", "negative_slope": 0.2},
        {"name": "fc2", "activation": "gelu", "input": ["input", "fc1"]},
        {"name": "fc3", "activation": "tanh", "weight": {"tensor": "fc3.W", "transpose": True}},
        {"name": "out", "activation": "sigmoid", "add": []},
    ]
    path.with_suffix(".json").write_text(json.dumps({"inputs": 3, "layers": layers}))
    report = check_file(path, n_probes=400)
    against_torch, canonical = report.comparisons
    assert against_torch.compared == "loaded graph vs torch running the config"
    assert against_torch.error < 1e-12 and canonical.error <= Config().max_error
    x = np.random.default_rng(1).uniform(-1, 1, size=(50, 3))
    with torch.no_grad():
        t = torch.from_numpy(x).float()
        h1 = torch.nn.functional.leaky_relu(fc1(t), 0.2)
        h2 = torch.nn.functional.gelu(fc2(torch.cat([t, h1], dim=1)))
        expected = torch.sigmoid(out(torch.tanh(fc3(h2)))).double().numpy()
    np.testing.assert_allclose(torch_outputs(path, x), expected, atol=1e-6)


def test_a_wrong_reading_of_a_weights_file_shows_in_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison is not the loader compared with itself: a graph builder that lost the
    biases would be caught, since torch applies them on its own."""
    from circuitql.indexer.affine import GraphBuilder

    path = save(random_mlp(np.random.default_rng(0), 4, [4], 2), tmp_path / "m.safetensors")
    right = check_file(path, n_probes=300).comparisons[0]
    linear = GraphBuilder.linear

    def without_bias(self: GraphBuilder, x: Any, weight: Any, _bias: Any, module: str) -> Any:
        return linear(self, x, weight, None, module)

    monkeypatch.setattr(GraphBuilder, "linear", without_bias)
    wrong = check_file(path, n_probes=300).comparisons[0]
    assert right.error < 1e-12 and wrong.error > 1e-3


def test_a_fixed_batch_written_into_the_graph_is_run_in_batches_of_its_size(tmp_path: Path) -> None:
    """An exporter that saw a batch of 25 writes Reshape(x, (25, -1)): the reference runs the
    probes 25 at a time (the last batch padded), and agrees with the graph read."""
    import torch
    from torch import nn

    class Viewed(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.view(x.size(0), -1))

    model = Viewed(nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(model, (torch.randn(25, 1, 4, 4),), str(path), dynamo=False)
    (against_file, _) = check_file(path, n_probes=1010).comparisons
    assert against_file.error < 1e-5 and against_file.argmax_agreement == 1.0

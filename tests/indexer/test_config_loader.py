"""Weights-only files (torch state_dict, safetensors) with a JSON config, written for real."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from circuitql.errors import ModelLoadError
from circuitql.export import MLPSpec, save
from circuitql.indexer.files import discover
from circuitql.indexer.load import load
from circuitql.zoo.demo import known_circuits, random_mlp

WEIGHT_FORMATS = (".pt", ".safetensors")


def _spec() -> MLPSpec:
    return random_mlp(np.random.default_rng(3), 5, [7, 6], 3, {"task": "demo"})


@pytest.mark.parametrize("suffix", [*WEIGHT_FORMATS, ".onnx"])
def test_written_files_compute_what_the_spec_computes(tmp_path: Path, suffix: str) -> None:
    spec = _spec()
    loaded = load(save(spec, tmp_path / f"m{suffix}"))
    x = np.random.default_rng(0).normal(size=(40, 5))
    np.testing.assert_allclose(loaded.graph.evaluate(x), spec.evaluate(x), rtol=1e-5, atol=1e-5)
    assert [u.id for u in loaded.graph.outputs] == ["out:0", "out:1", "out:2"]


@pytest.mark.parametrize("suffix", [*WEIGHT_FORMATS, ".onnx"])
def test_skip_connection_via_config_inputs(tmp_path: Path, suffix: str) -> None:
    spec = known_circuits()["min_skip"]
    graph = load(save(spec, tmp_path / f"min{suffix}")).graph
    x = np.random.default_rng(0).normal(size=(40, 2))
    np.testing.assert_allclose(graph.evaluate(x)[:, 0], x.min(axis=1), atol=1e-6)
    assert set(graph["out:0"].inputs) == {"input:0", "fc1:0"}


def test_same_network_hashes_the_same_in_every_format(tmp_path: Path) -> None:
    spec = _spec()
    hashes = {
        load(save(spec, tmp_path / f"m{s}")).graph.content_hash()
        for s in (*WEIGHT_FORMATS, ".onnx")
    }
    assert len(hashes) == 1


def test_meta_comes_from_the_config(tmp_path: Path) -> None:
    assert load(save(_spec(), tmp_path / "m.safetensors")).meta == {"task": "demo"}


def test_residual_add_in_config(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {
        "a.weight": rng.normal(size=(3, 3)),
        "a.bias": rng.normal(size=3),
        "b.weight": rng.normal(size=(3, 3)),
        "b.bias": rng.normal(size=3),
    }
    save_file(
        {k: v.astype(np.float32) for k, v in tensors.items()}, str(tmp_path / "r.safetensors")
    )
    (tmp_path / "r.json").write_text(
        json.dumps(
            {
                "inputs": 3,
                "layers": [
                    {"name": "a", "activation": "relu"},
                    {"name": "b", "activation": "identity", "add": ["a"]},
                ],
            }
        )
    )
    graph = load(tmp_path / "r.safetensors").graph
    x = rng.normal(size=(20, 3))
    t = {k: v.astype(np.float32).astype(np.float64) for k, v in tensors.items()}
    h = np.maximum(x @ t["a.weight"].T + t["a.bias"], 0)
    np.testing.assert_allclose(graph.evaluate(x), h @ t["b.weight"].T + t["b.bias"] + h, rtol=1e-9)


def test_pickled_module_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(2, 1)), path)
    save(_spec(), tmp_path / "whole.safetensors")  # leaves a whole.json sidecar
    with pytest.raises(ModelLoadError, match="never unpickles"):
        load(path)


@pytest.mark.parametrize("suffix", WEIGHT_FORMATS)
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = save(_spec(), tmp_path / f"m{suffix}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load(path)
    assert str(path) in str(err.value)


def test_missing_config_explains_the_format(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelLoadError, match=r"m\.json") as err:
        load(path)
    assert "circuitql-mlp" in str(err.value)


def _edit_config(path: Path, **changes: object) -> None:
    config_path = path.with_suffix(".json")
    config = json.loads(config_path.read_text())
    config.update(changes)
    config_path.write_text(json.dumps(config))


def test_shape_mismatch_between_config_and_weights(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    _edit_config(path, inputs=4)
    with pytest.raises(ModelLoadError, match=r"fc1: weight of shape \(7, 5\)"):
        load(path)


def test_unknown_activation(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    config = json.loads(path.with_suffix(".json").read_text())
    config["layers"][0]["activation"] = "swish"
    path.with_suffix(".json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="swish") as err:
        load(path)
    assert "relu" in str(err.value)


def test_nan_weights(tmp_path: Path) -> None:
    spec = _spec()
    bad = spec.layers[1].weight.copy()
    bad[0, 0] = np.inf
    layers = (
        spec.layers[0],
        type(spec.layers[1])(**{**spec.layers[1].__dict__, "weight": bad}),
        spec.layers[2],
    )
    path = save(MLPSpec(5, layers), tmp_path / "m.pt")
    with pytest.raises(ModelLoadError, match=r"fc2\.weight"):
        load(path)


def test_layer_reading_a_later_layer_is_refused(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    config = json.loads(path.with_suffix(".json").read_text())
    config["layers"][0]["input"] = ["fc2"]
    path.with_suffix(".json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not an earlier layer"):
        load(path)


def test_discover_recurses_and_skips_sidecars(tmp_path: Path) -> None:
    save(_spec(), tmp_path / "a" / "m.safetensors")
    save(_spec(), tmp_path / "b" / "c" / "n.onnx")
    (tmp_path / "notes.txt").write_text("hi")
    found = discover([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/m.safetensors", "b/c/n.onnx"]


def test_the_domain_comes_from_the_config(tmp_path: Path) -> None:
    from dataclasses import replace

    from circuitql.domain import Domain

    spec = replace(_spec(), domain=Domain(((-2.0, 2.0),)))
    loaded = load(save(spec, tmp_path / "m.safetensors"))
    assert loaded.domain is not None and loaded.domain.box == ((-2.0, 2.0),) * 5
    config = tmp_path / "m.json"
    raw = json.loads(config.read_text())
    raw["domain"] = [[0, 1]] * 4  # four intervals for five inputs
    config.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"'domain'.*4 intervals but the model has 5"):
        load(tmp_path / "m.safetensors")


def _state_dict_and_config(tmp_path: Path, stem: str) -> tuple[dict[str, torch.Tensor], Path]:
    """A state dict of the demo spec, and its config written as ``stem.json``."""
    spec = _spec()
    reference = save(spec, tmp_path / "reference" / "m.pt")
    config = tmp_path / f"{stem}.json"
    config.write_text(reference.with_suffix(".json").read_text())
    return torch.load(reference, weights_only=True), config


@pytest.mark.parametrize(
    "checkpoint",
    [
        lambda sd: {"state_dict": sd, "acc": 0.98, "epoch": 12},
        lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"state": {}, "lr": 0.1}},
        lambda sd: {"model": sd, "ema": {k: v * 0.5 for k, v in sd.items()}},
        lambda sd: {"weights_of_my_run": sd, "note": "unusual name, but the only state dict"},
    ],
    ids=["state_dict", "model_state_dict", "model-beside-ema", "only-one"],
)
def test_a_state_dict_inside_a_checkpoint_is_found(tmp_path: Path, checkpoint) -> None:
    weights, _ = _state_dict_and_config(tmp_path, "ckpt")
    torch.save(checkpoint(weights), tmp_path / "ckpt.pth")
    loaded = load(tmp_path / "ckpt.pth")
    x = np.random.default_rng(0).normal(size=(20, 5))
    np.testing.assert_allclose(loaded.graph.evaluate(x), _spec().evaluate(x), rtol=1e-5, atol=1e-5)


def test_several_unnamed_state_dicts_are_an_error_that_names_them(tmp_path: Path) -> None:
    weights, _ = _state_dict_and_config(tmp_path, "ckpt")
    torch.save({"run_a": weights, "run_b": weights, "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(ModelLoadError, match="2 state dicts") as err:
        load(tmp_path / "ckpt.pt")
    assert "'run_a'" in str(err.value) and "torch.save(checkpoint['run_a']" in str(err.value)


def test_safetensors_are_read_by_content_whatever_the_extension(tmp_path: Path) -> None:
    spec = _spec()
    real = save(spec, tmp_path / "reference" / "m.safetensors")
    disguised = tmp_path / "weights.pt"
    disguised.write_bytes(real.read_bytes())
    (tmp_path / "weights.json").write_text(real.with_suffix(".json").read_text())
    x = np.random.default_rng(0).normal(size=(20, 5))
    np.testing.assert_allclose(
        load(disguised).graph.evaluate(x), spec.evaluate(x), rtol=1e-5, atol=1e-5
    )


def test_a_name_with_dots_keeps_them_and_finds_its_config(tmp_path: Path) -> None:
    spec = _spec()
    first = save(spec, tmp_path / "mlp_s0.9.safetensors")
    assert first.name == "mlp_s0.9.safetensors" and (tmp_path / "mlp_s0.9.json").is_file()
    loaded = load(first)
    assert loaded.default_name == "mlp_s0.9"


def test_a_missing_config_is_suggested_from_the_files_own_tensors(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelLoadError) as err:
        load(path)
    message = str(err.value)
    assert "fc1.weight (7, 5)" in message and "out.bias (3,)" in message
    suggestion = _suggestion(message)
    assert suggestion == {
        "format": "circuitql-mlp",
        "inputs": 5,
        "layers": [
            {"name": "fc1", "activation": "relu"},
            {"name": "fc2", "activation": "relu"},
            {"name": "out", "activation": "identity"},
        ],
    }
    path.with_suffix(".json").write_text(json.dumps(suggestion))
    x = np.random.default_rng(0).normal(size=(20, 5))
    np.testing.assert_allclose(
        load(path).graph.evaluate(x), _spec().evaluate(x), rtol=1e-5, atol=1e-5
    )


def _suggestion(message: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        message[message.index('{"format"') : message.index("} (check") + 1]
    )
    return loaded


def test_a_suggested_config_reads_tensors_named_any_way_and_stored_either_way(
    tmp_path: Path,
) -> None:
    """rib-style layers.{i}.W stored (in, out), each followed by its bias layers.{i}.b: the
    suggestion reads them transposed, as only that chains, and loads as written."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    w0, b0, w1, w2 = (rng.normal(size=s) for s in ((6, 4), (4,), (4, 3), (3, 2)))
    path = tmp_path / "rib.safetensors"
    save_file({"layers.0.W": w0, "layers.0.b": b0, "layers.1.W": w1, "layers.2.W": w2}, str(path))
    with pytest.raises(ModelLoadError) as err:
        load(path)
    suggestion = _suggestion(str(err.value))
    assert suggestion["inputs"] == 6
    assert [layer["name"] for layer in suggestion["layers"]] == ["layers.0", "layers.1", "layers.2"]
    path.with_suffix(".json").write_text(json.dumps(suggestion))
    x = rng.normal(size=(20, 6))
    expected = np.maximum(np.maximum(x @ w0 + b0, 0) @ w1, 0) @ w2
    np.testing.assert_allclose(load(path).graph.evaluate(x), expected, atol=1e-9)


def test_a_suggested_config_names_the_tensors_it_cannot_read(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "cnn.pt"
    torch.save(
        {"conv1.weight": torch.zeros(4, 1, 3, 3), "fc.weight": torch.zeros(2, 72)}, str(path)
    )
    with pytest.raises(ModelLoadError, match=r"conv1.weight \(4, 1, 3, 3\) are not matrices"):
        load(path)


def test_a_config_declaring_millions_of_inputs_is_refused(tmp_path: Path) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    _edit_config(path, inputs=30_000_000)
    with pytest.raises(ModelLoadError, match="30,000,000 units"):
        load(path)


def test_a_config_renames_transposes_ties_and_slices_tensors(tmp_path: Path) -> None:
    # rib-style tensors: layers.{i}.W stored (in, out); a tied decoder reading the encoder's
    # matrix transposed; a bias sliced out of a packed vector.
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    encoder, packed = rng.normal(size=(6, 3)), rng.normal(size=10)
    head = rng.normal(size=(2, 4))  # (in, out): read transposed because only that fits
    save_file(
        {"layers.0.W": encoder, "packed_b": packed, "layers.2.W": head},
        str(tmp_path / "net.safetensors"),
    )
    (tmp_path / "net.json").write_text(
        json.dumps(
            {
                "inputs": 6,
                "layers": [
                    {
                        "name": "enc",
                        "weight": {"tensor": "layers.0.W", "transpose": True},
                        "bias": {"tensor": "packed_b", "rows": [0, 3]},
                        "activation": "relu",
                    },
                    {
                        "name": "dec",
                        "weight": "layers.0.W",
                        "bias": {"tensor": "packed_b", "rows": [3, 9]},
                        "activation": "relu",
                    },
                    {
                        "name": "mix",
                        "weight": {"tensor": "layers.0.W", "columns": [0, 2]},
                        "bias": None,
                    },
                    {"name": "out", "weight": "layers.2.W", "bias": None},
                ],
            }
        )
    )
    loaded = load(tmp_path / "net.safetensors")
    x = rng.normal(size=(30, 6))
    h = np.maximum(x @ encoder + packed[:3], 0)
    h = np.maximum(h @ encoder.T + packed[3:9], 0)
    h = h @ encoder[:, :2]  # columns [0, 2): (6, 2), read transposed as only that fits
    expected = h @ head
    np.testing.assert_allclose(loaded.graph.evaluate(x), expected, rtol=1e-9, atol=1e-9)
    assert loaded.meta["loaded"]["transposed"] == ["layers.0.W", "layers.0.W", "layers.2.W"]


@pytest.mark.parametrize("keep", [False, True])
def test_a_linear_layer_is_kept_as_units_on_request(tmp_path: Path, keep: bool) -> None:
    """A 6 -> 3 -> 2 linear map is one 6 -> 2 map (no more edges), unless the config keeps
    the 3-unit layer: then it stays, as units with the identity activation, through the
    canonical form too."""
    from safetensors.numpy import save_file

    from circuitql.indexer.canonical import canonicalize

    rng = np.random.default_rng(4)
    enc, dec = rng.normal(size=(3, 6)), rng.normal(size=(2, 3))
    save_file({"enc.weight": enc, "dec.weight": dec}, str(tmp_path / "ae.safetensors"))
    (tmp_path / "ae.json").write_text(
        json.dumps({"inputs": 6, "layers": [{"name": "enc", "keep": keep}, {"name": "dec"}]})
    )
    graph = load(tmp_path / "ae.safetensors").graph
    x = rng.normal(size=(20, 6))
    np.testing.assert_allclose(graph.evaluate(x), x @ enc.T @ dec.T, atol=1e-9)
    kept = [u.id for u in canonicalize(graph).graph.hidden]
    assert kept == ([f"enc:{i}" for i in range(3)] if keep else [])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"layers": [{"name": "fc1", "activation": "relu", "input": 5}]}, "'input' must be a name"),
        ({"outputs": 7}, "'outputs' must be a name"),
        ({"layers": [{"name": "fc1", "input": [["input"]]}]}, "'input' must be a name"),
        (
            {"layers": [{"name": "fc1", "activation": "leaky_relu", "negative_slope": "abc"}]},
            "'negative_slope' must be a number",
        ),
        ({"meta": [1, 2]}, "'meta' must be a JSON object"),
        (
            {"layers": [{"name": "fc1", "weight": {"tensor": "fc1.weight", "rows": [3, 1]}}]},
            "a range is",
        ),
        ({"layers": [{"name": "fc1", "weight": 3}]}, "must be a tensor name"),
        ({"layers": [{"name": "fc1", "transpose": "yes"}]}, "'transpose' must be true or false"),
        ({"layers": [{"name": "fc1", "weight": "nope"}]}, "does not hold"),
        ({"layers": [{"name": "fc1", "keep": 1}]}, "'keep' must be true or false"),
        ({"layers": [{"name": "fc1", "weight": None}]}, "'weight' must name a tensor, not null"),
        ({"outputs": []}, "'outputs' must name at least one layer"),
        ({"layers": [{"name": "fc1", "input": []}]}, "'input' must name at least one earlier"),
    ],
    ids=[
        "input-number",
        "outputs-number",
        "input-nested",
        "slope-text",
        "meta-list",
        "reversed-range",
        "weight-number",
        "transpose-text",
        "missing-tensor",
        "keep-number",
        "weight-null",
        "outputs-empty",
        "input-empty",
    ],
)
def test_a_malformed_config_is_one_message(
    tmp_path: Path, edit: dict[str, object], message: str
) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    _edit_config(path, **edit)
    with pytest.raises(ModelLoadError, match=message) as err:
        load(path)
    assert str(path.with_suffix(".json").name) in str(err.value) or str(path) in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"inputs": 5, "layers": [{"name": "fc1"}], "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"inputs": ' + "9" * 100_000 + ', "layers": [{"name": "fc1"}]}',
    ],
    ids=["meta-nested-100000-deep", "100000-digit-integer"],
)
def test_a_hostile_config_is_refused_with_a_message(tmp_path: Path, text: str) -> None:
    path = save(_spec(), tmp_path / "m.safetensors")
    path.with_suffix(".json").write_text(text)
    with pytest.raises(ModelLoadError, match=r"cannot read the config|must be"):
        load(path)


def test_a_stride_zero_tensor_is_refused_before_it_is_materialized(tmp_path: Path) -> None:
    # 8 bytes of storage, expanded to 30,000 x 30,000 (7.2 GB as float64 once copied).
    path = save(_spec(), tmp_path / "m.pt")
    weights = torch.load(path, weights_only=True)
    weights["fc1.weight"] = torch.zeros(1, 1).expand(30_000, 30_000)
    torch.save(weights, path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ModelLoadError, match="900,000,000 values"):
        load(path)


def test_many_tensors_each_under_the_limit_are_refused_together(tmp_path: Path) -> None:
    """Three stride-0 8192 x 8192 weights, 4.8 KB of file, each at the tensor limit: 201
    million values together, which the model limit refuses before any is copied."""
    layers = {f"fc{i}.weight": torch.zeros(1, 1).expand(8192, 8192) for i in (1, 2, 3)}
    path = tmp_path / "wide.pt"
    torch.save(layers, path)
    (tmp_path / "wide.json").write_text(
        json.dumps(
            {
                "inputs": 8192,
                "layers": [{"name": f"fc{i}", "activation": "relu"} for i in (1, 2, 3)],
            }
        )
    )
    with pytest.raises(ModelLoadError, match="201,326,592 values, more than the 134,217,728"):
        load(path)


def test_a_torch_file_unpacking_past_the_limit_is_refused_from_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sizes a zip's directory declares are checked before torch unpacks anything (here
    with the limit lowered to 1,000 values, 8,000 bytes, so the file stays small)."""
    import zipfile

    from circuitql.indexer import config_loader

    monkeypatch.setattr(config_loader, "MAX_MODEL_VALUES", 1000)
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("deflated/data/0", bytes(100_000))
    assert path.stat().st_size < 1000
    with pytest.raises(ModelLoadError, match="unpacks to 100,000 bytes, more than the 8,000"):
        load(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_half_precision_weights_are_read_and_complex_ones_refused(
    tmp_path: Path, suffix: str
) -> None:
    """bfloat16 and float8 have no numpy type (safetensors' numpy reader failed on them with
    a message about a truncated file); complex weights would lose their imaginary part."""
    from safetensors.torch import save_file

    spec = _spec()
    path = save(spec, tmp_path / f"m{suffix}")
    weights = torch.load(path, weights_only=True) if suffix == ".pt" else None
    tensors = weights or {k: torch.from_numpy(v) for k, v in spec.tensors().items()}
    for dtype in (torch.bfloat16, torch.float8_e4m3fn):
        cast = {k: v.to(dtype) for k, v in tensors.items()}
        torch.save(cast, path) if suffix == ".pt" else save_file(cast, str(path))
        x = np.random.default_rng(0).normal(size=(8, 5))
        expected = load(path).graph.evaluate(x)  # read, at that precision
        assert np.all(np.isfinite(expected))
    complex_ = {k: v.to(torch.complex64) for k, v in tensors.items()}
    torch.save(complex_, path) if suffix == ".pt" else save_file(complex_, str(path))
    with pytest.raises(ModelLoadError, match="holds complex numbers"):
        load(path)


def test_weights_that_overflow_are_refused_when_indexed(tmp_path: Path) -> None:
    from circuitql.indexer.pipeline import build_records

    path = save(_spec(), tmp_path / "m.pt")
    weights = torch.load(path, weights_only=True)
    weights = {k: v.double() * (1e300 if k.endswith("weight") else 1.0) for k, v in weights.items()}
    torch.save(weights, path)
    with pytest.raises(ModelLoadError, match="even without pruning"):
        build_records(lambda: load(path), "m")


DOCS = Path(__file__).resolve().parents[2] / "docs" / "model-config.md"


def _documented_config() -> dict[str, Any]:
    """The config docs/model-config.md shows every key with, as it is printed there."""
    text = DOCS.read_text()
    block = text[text.index("Each key in use, for a file holding") :]
    block = block[block.index("```json") + len("```json") : block.index("```\n\nHere")]
    config: dict[str, Any] = json.loads(block)
    return config


def test_the_documented_config_with_every_key_loads_as_it_says(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "layers.0.W": rng.normal(size=(3, 8)),
        "layers.0.b": rng.normal(size=8),
        "enc.weight": rng.normal(size=(4, 8)),
        "head.weight": rng.normal(size=(2, 7)),
        "head.bias": rng.normal(size=2),
    }
    path = tmp_path / "jax.safetensors"
    from safetensors.numpy import save_file

    save_file({k: v.astype(np.float64) for k, v in tensors.items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(_documented_config()))
    loaded = load(path)
    x = rng.uniform([0, 0, -3], [1, 1, 3], size=(64, 3))
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    l0 = gelu(x @ tensors["layers.0.W"] + tensors["layers.0.b"])
    emb = l0 @ tensors["enc.weight"][:2].T
    pre = l0 @ tensors["enc.weight"][2:4].T + emb
    emb2 = np.where(pre >= 0, pre, 0.1 * pre)
    head = np.concatenate([emb, emb2, x], axis=1) @ tensors["head.weight"].T + tensors["head.bias"]
    back = np.maximum(l0 @ tensors["layers.0.W"].T, 0)
    expected = np.concatenate([head, back], axis=1)
    np.testing.assert_allclose(loaded.graph.evaluate(x), expected, rtol=1e-10, atol=1e-10)
    assert loaded.domain is not None and loaded.domain.box[2] == (-3.0, 3.0)
    assert any(u.id.startswith("emb:") for u in loaded.graph.hidden)  # kept as units
    assert loaded.meta["source"] == "a JAX checkpoint"

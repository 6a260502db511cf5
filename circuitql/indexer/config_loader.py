"""Load weights-only files (a torch state_dict or safetensors) with a small JSON config.

A weights file says nothing about how its tensors connect, so a sidecar names the layer order,
what each layer reads and which activation follows it. Keeping the architecture in plain JSON
(instead of a pickled module) is what lets circuitql load zoos from strangers without running
their code. The format is documented in ``docs/model-config.md``.

Sidecar lookup, first match wins: ``<stem>.json``, ``<stem>.config.json``, ``config.json`` in
the same folder.
"""

from __future__ import annotations

import json
import math
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuitql.domain import Domain, DomainError
from circuitql.errors import ModelLoadError
from circuitql.graph import Activation, NeuronGraph
from circuitql.indexer.affine import (
    MAX_MODEL_VALUES,
    AffineVec,
    GraphBuilder,
    ShapeError,
    check_model_size,
    check_tensor_size,
)
from circuitql.indexer.files import model_stem

CONFIG_FORMAT = "circuitql-mlp"
NETWORK_INPUT = "input"
ACTIVATION_NAMES: dict[str, Activation] = {
    "relu": Activation.RELU,
    "leaky_relu": Activation.LEAKY_RELU,
    "sigmoid": Activation.SIGMOID,
    "tanh": Activation.TANH,
    "gelu": Activation.GELU,
    "identity": Activation.IDENTITY,
    "linear": Activation.IDENTITY,
    "none": Activation.IDENTITY,
}


@dataclass(frozen=True)
class TensorRef:
    """Which tensor a layer's weight or bias is, and how to read it: ``transpose`` None
    reads a weight as stored (out x in) unless only its transpose fits the layer's input;
    ``rows`` and ``columns`` take a [start, stop) range (ties and slices of shared tensors)."""

    tensor: str
    transpose: bool | None = None
    rows: tuple[int, int] | None = None
    columns: tuple[int, int] | None = None


@dataclass(frozen=True)
class LayerSpec:
    """One checked layer of a config: ``activation(weight @ concat(reads) + bias + sum(adds))``.
    ``bias_required``: the config names the bias, so a missing tensor is an error rather than
    no bias."""

    name: str
    activation: Activation
    reads: tuple[str, ...]
    adds: tuple[str, ...]
    alpha: float
    weight: TensorRef
    bias: TensorRef | None
    bias_required: bool = False
    keep: bool = False  # a linear layer stays as units even where folding adds no edges


@dataclass(frozen=True)
class ModelConfig:
    """A checked config: every name it uses is the network input or an earlier layer, and
    ``outputs`` (the last layer unless it says otherwise) are the network's outputs."""

    n_inputs: int
    layers: tuple[LayerSpec, ...]
    outputs: tuple[str, ...]
    meta: Mapping[str, Any]
    domain: Domain | None = None


def find_sidecar(weights: Path) -> Path | None:
    """The config beside a weights file, first match in the module docstring's order."""
    stem = model_stem(weights)
    for candidate in (
        weights.with_name(f"{stem}.json"),
        weights.with_name(f"{stem}.config.json"),
        weights.with_name("config.json"),
    ):
        if candidate.is_file():
            return candidate
    return None


def suggested_config(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A config for the file's own tensors, read as a chain of layers in the order they were
    saved (ReLU between them): the start a user edits, in the error that asks for one.

    Every matrix is a layer, whatever its name (``fc1.weight``, ``layers.0.W``, ``W``), read
    as stored (out x in, as torch keeps it) or transposed, whichever chains with the layers
    around it; its bias is ``<layer>.bias`` or the vector saved right after it, when its
    length fits."""
    names = list(tensors)
    matrices = [n for n in names if tensors[n].ndim == 2][:MAX_SUGGESTED_LAYERS]
    shapes = [(int(tensors[n].shape[0]), int(tensors[n].shape[1])) for n in matrices]
    flips = _chained_orientation(shapes, [n.endswith(".weight") for n in matrices])
    layers: list[dict[str, Any]] = []
    used: set[str] = set()
    for i, (name, (rows, cols), flip) in enumerate(zip(matrices, shapes, flips, strict=True)):
        layer = name.rsplit(".", 1)[0] if "." in name else name  # the module: layers.0.W
        if any(entry["name"] == layer for entry in layers):
            layer = name
        out = cols if flip else rows
        entry: dict[str, Any] = {"name": layer}
        if name != f"{layer}.weight":
            entry["weight"] = name
        if flip:
            entry["transpose"] = True
        following = names[names.index(name) + 1 : names.index(name) + 2]
        bias = next(
            (
                b
                for b in (f"{layer}.bias", *following)
                if b in tensors
                and b not in used
                and tensors[b].ndim == 1
                and tensors[b].shape[0] == out
            ),
            None,
        )
        if bias is not None:
            used.add(bias)
            if bias != f"{layer}.bias":
                entry["bias"] = bias
        entry["activation"] = "relu" if i < len(matrices) - 1 else "identity"
        layers.append(entry)
    inputs = (shapes[0][0] if flips[0] else shapes[0][1]) if shapes else 1
    return {"format": CONFIG_FORMAT, "inputs": inputs, "layers": layers}


MAX_SUGGESTED_LAYERS = 64


def _chained_orientation(shapes: list[tuple[int, int]], torch_named: list[bool]) -> list[bool]:
    """For each matrix, whether to read it transposed so that each layer's input width is
    the previous layer's output width: the chain with the fewest transposes, a matrix named
    ``*.weight`` (torch's out x in) counted as read as stored; as stored where none chains."""
    best: dict[int, tuple[int, list[bool]]] = {}  # output width -> (cost, flips so far)
    for (rows, cols), named in zip(shapes, torch_named, strict=True):
        step: dict[int, tuple[int, list[bool]]] = {}
        for flip in (False, True):
            width_in, width_out = (rows, cols) if flip else (cols, rows)
            if best and width_in not in best:
                continue  # does not read what any chain so far gives
            cost, flips = best[width_in] if best else (0, [])
            candidate = (cost + int(flip) * (2 if named else 1), [*flips, flip])
            if width_out not in step or candidate[0] < step[width_out][0]:
                step[width_out] = candidate
        if not step:  # nothing chains: read the rest as stored
            flips = min(best.values())[1] if best else []
            return flips + [False] * (len(shapes) - len(flips))
        best = step
    return min(best.values())[1] if best else []


def _missing_config(weights: Path, tensors: Mapping[str, np.ndarray]) -> ModelLoadError:
    shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in list(tensors.items())[:12])
    more = "" if len(tensors) <= 12 else f" and {len(tensors) - 12} more"
    return ModelLoadError(
        f"a weights-only file needs a JSON config naming its layers and activations; its "
        f"tensors are {shapes}{more}",
        where=str(weights),
        fix=f"write {model_stem(weights)}.json beside it; for a chain of these layers with "
        f"ReLU between them: {json.dumps(suggested_config(tensors))} (check the order and "
        f"the activations{_unread(tensors)}; see docs/model-config.md)",
    )


def _unread(tensors: Mapping[str, np.ndarray]) -> str:
    """The tensors a config of dense layers cannot read, named, so none is dropped
    silently."""
    others = [f"{n} {tuple(t.shape)}" for n, t in tensors.items() if t.ndim not in (1, 2)]
    if not others:
        return ""
    return (
        f"; {', '.join(others[:4])}{' ...' if len(others) > 4 else ''} are not matrices "
        "(convolution kernels?): circuitql reads dense layers, so export the network to "
        "ONNX if it has others"
    )


def parse_config(path: Path) -> ModelConfig:
    """The config at ``path``, checked before any tensor is read: unreadable JSON and every
    problem with its content are a ModelLoadError naming the file."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: malformed JSON, and integers too long to convert
        raise ModelLoadError(
            f"cannot read the config: {str(exc)[:200]}",
            where=str(path),
            fix="make it valid JSON (see docs/model-config.md)",
        ) from None
    try:
        return _model_config(raw)
    except _ConfigProblem as problem:
        raise ModelLoadError(
            str(problem), where=str(path), fix="see docs/model-config.md for the format"
        ) from None


class _ConfigProblem(ValueError):
    """What is wrong with a config, in words."""


def _model_config(raw: Any) -> ModelConfig:
    if not isinstance(raw, dict):
        raise _ConfigProblem("the config must be a JSON object")
    if raw.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        raise _ConfigProblem(
            f"unknown format {_short(raw.get('format'))}, expected {CONFIG_FORMAT!r}"
        )
    n_inputs = raw.get("inputs")
    if not isinstance(n_inputs, int) or isinstance(n_inputs, bool) or n_inputs < 1:
        raise _ConfigProblem("'inputs' must be the number of network inputs (a positive integer)")
    entries = raw.get("layers")
    if not isinstance(entries, list) or not entries:
        raise _ConfigProblem("'layers' must be a non-empty list")
    layers: list[LayerSpec] = []
    known = [NETWORK_INPUT]
    for entry in entries:
        layers.append(_layer(entry, known))
        known.append(layers[-1].name)
    outputs = _names(raw.get("outputs", [layers[-1].name]), "'outputs'", known, "a layer")
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise _ConfigProblem(f"'meta' must be a JSON object, not {_short(meta)}")
    domain = None
    if raw.get("domain") is not None:
        try:
            domain = Domain.from_json(raw["domain"]).for_inputs(n_inputs)
        except DomainError as exc:
            raise _ConfigProblem(f"'domain': {exc.what} ({exc.fix})") from None
    return ModelConfig(n_inputs, tuple(layers), outputs, meta, domain)


def _layer(entry: Any, known: list[str]) -> LayerSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise _ConfigProblem(
            "every layer needs a 'name' (the prefix of its weight and bias "
            f"tensors); found {_short(entry)}"
        )
    name = entry["name"]
    act_name = entry.get("activation", "identity")
    if not isinstance(act_name, str) or act_name.lower() not in ACTIVATION_NAMES:
        raise _ConfigProblem(
            f"layer {name!r} has unknown activation {_short(act_name)}: use "
            f"one of {', '.join(sorted(ACTIVATION_NAMES))}"
        )
    slope = entry.get("negative_slope", 0.01)
    if not isinstance(slope, int | float) or isinstance(slope, bool) or not math.isfinite(slope):
        raise _ConfigProblem(
            f"layer {name!r}: 'negative_slope' must be a number, not {_short(slope)}"
        )
    transpose = entry.get("transpose")
    if transpose is not None and not isinstance(transpose, bool):
        raise _ConfigProblem(f"layer {name!r}: 'transpose' must be true or false")
    keep = entry.get("keep", False)
    if not isinstance(keep, bool):
        raise _ConfigProblem(f"layer {name!r}: 'keep' must be true or false")
    weight = _tensor_ref(entry.get("weight", f"{name}.weight"), f"layer {name!r}: 'weight'")
    if weight is None:  # "weight": null; a bias may be null, a weight may not
        raise _ConfigProblem(f"layer {name!r}: 'weight' must name a tensor, not null")
    if transpose is not None and weight.transpose is None:
        weight = TensorRef(weight.tensor, transpose, weight.rows, weight.columns)
    bias = _tensor_ref(entry.get("bias", f"{name}.bias"), f"layer {name!r}: 'bias'")
    return LayerSpec(
        name,
        ACTIVATION_NAMES[act_name.lower()],
        _names(
            entry.get("input", known[-1]), f"layer {name!r}: 'input'", known, "an earlier layer"
        ),
        _names(
            entry.get("add", []), f"layer {name!r}: 'add'", known, "an earlier layer", empty=True
        ),
        float(slope),
        weight,
        bias,
        bias_required="bias" in entry,
        keep=keep,
    )


def _names(
    value: Any, what: str, known: list[str], kind: str, empty: bool = False
) -> tuple[str, ...]:
    """A name or a list of names, each of something already defined; an empty list only
    where ``empty`` allows it (a layer's ``add``, not what it reads or the outputs)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _ConfigProblem(f"{what} must be a name or a list of names, not {_short(value)}")
    if not names and not empty:
        raise _ConfigProblem(f"{what} must name at least one {kind.split(' ', 1)[-1]}")
    for ref in names:
        if ref not in known:
            raise _ConfigProblem(
                f"{what} names {ref!r}, which is not {kind}; list layers in "
                f"order (names so far: {', '.join(known)})"
            )
    return tuple(names)


def _tensor_ref(value: Any, what: str) -> TensorRef | None:
    if value is None:
        return None
    if isinstance(value, str):
        return TensorRef(value)
    if isinstance(value, dict) and isinstance(value.get("tensor"), str):
        transpose = value.get("transpose")
        if transpose is not None and not isinstance(transpose, bool):
            raise _ConfigProblem(f"{what}: 'transpose' must be true or false")
        return TensorRef(
            value["tensor"],
            transpose,
            _range(value.get("rows"), what),
            _range(value.get("columns"), what),
        )
    raise _ConfigProblem(
        f'{what} must be a tensor name, or {{"tensor": name, '
        f'"transpose": ..., "rows": [start, stop], "columns": '
        f"[start, stop]}}, not {_short(value)}"
    )


def _range(value: Any, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] < value[1]
    ):
        return value[0], value[1]
    raise _ConfigProblem(
        f"{what}: a range is [start, stop] with 0 <= start < stop, not {_short(value)}"
    )


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deep, or an integer too long to print
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Tensors by name, from safetensors or from a torch file loaded with weights_only=True."""
    try:
        if is_safetensors(path):
            return _read_safetensors(path)
        return _read_torch_state_dict(path)
    except ModelLoadError:
        raise
    except FileNotFoundError as exc:
        raise ModelLoadError("file not found", where=str(path), fix="check the path") from exc
    except Exception as exc:  # safetensors and torch raise many types for corrupt files
        raise ModelLoadError(
            f"cannot read the weights ({type(exc).__name__}: {exc})".rstrip(),
            where=str(path),
            fix="the file is truncated or not a weights file: re-save it with "
            "torch.save(model.state_dict(), path) or safetensors' save_file",
        ) from exc


def is_safetensors(path: Path) -> bool:
    """Whether the file is safetensors, by its content (8 bytes of header length, then a JSON
    object), whatever its extension: such files are published as .pt and .bin too."""
    with path.open("rb") as file:
        head = file.read(9)
    return (
        len(head) == 9
        and head[8:9] == b"{"
        and int.from_bytes(head[:8], "little") < path.stat().st_size
    )


# Where training scripts keep the weights inside a checkpoint, most common first.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")


def state_dict_of(checkpoint: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The state dict in ``checkpoint``: the file itself when all its values are tensors,
    else the one entry that is a state dict (beside an optimizer's state, an epoch, an
    accuracy), or of several the one under the first usual name (``CHECKPOINT_KEYS``)."""
    import torch

    def tensors_only(value: Any) -> bool:
        return (
            isinstance(value, Mapping)
            and bool(value)
            and all(isinstance(v, torch.Tensor) for v in value.values())
        )

    if tensors_only(checkpoint):
        return checkpoint
    found = [key for key, value in checkpoint.items() if tensors_only(value)]
    named = [key for key in CHECKPOINT_KEYS if key in found]
    if len(found) == 1 or named:
        return checkpoint[named[0] if named else found[0]]
    if found:
        raise ModelLoadError(
            f"the checkpoint holds {len(found)} state dicts ({', '.join(map(repr, found))}) "
            "and none is under a usual name",
            where=where,
            fix=f"re-save the one to index: torch.save(checkpoint[{found[0]!r}], path)",
        )
    keys = ", ".join(repr(k) for k in list(checkpoint)[:8])
    raise ModelLoadError(
        f"expected a state_dict (a mapping of names to tensors), or a checkpoint holding one; "
        f"found the keys {keys or '(none)'}",
        where=where,
        fix="save it with torch.save(model.state_dict(), path)",
    )


# safetensors dtypes numpy has no type for: read through torch, which has them.
_TORCH_ONLY_DTYPES = frozenset({"BF16", "F8_E4M3", "F8_E5M2"})


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file as float64, their declared sizes and types checked
    before any is read: complex weights are refused (a network's weights are real), and
    bfloat16 or float8 ones read through torch."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as file:
        declared = {
            name: (file.get_slice(name).get_dtype(), file.get_slice(name).get_shape())
            for name in file.keys()  # noqa: SIM118 (a safe_open is no mapping)
        }
    for name, (dtype, shape) in declared.items():
        check_tensor_size(name, math.prod(shape), str(path))
        _check_real(name, dtype.startswith("C"), str(path))
    check_model_size(sum(math.prod(shape) for _, shape in declared.values()), str(path))
    if _TORCH_ONLY_DTYPES & {dtype for dtype, _ in declared.values()}:
        from safetensors.torch import load_file as load_torch

        return {k: v.double().numpy() for k, v in load_torch(str(path)).items()}
    from safetensors.numpy import load_file

    return {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}


def _check_real(name: str, complex_: bool, where: str) -> None:
    if complex_:
        raise ModelLoadError(
            f"tensor {name!r} holds complex numbers; a network's weights are "
            "real, and dropping the imaginary part would change it",
            where=where,
            fix="save the real weights (tensor.real)",
        )


def _read_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    import torch

    _check_unpacked_size(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            "the file holds pickled objects beyond plain tensors, and circuitql never "
            "unpickles code from model files",
            where=str(path),
            fix="save only the weights: torch.save(model.state_dict(), path) with a JSON "
            "config, or export ONNX, or pass the nn.Module itself to db.index()",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(
            f"cannot read the file ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="the file is truncated or not a torch file: re-save it with "
            "torch.save(model.state_dict(), path)",
        ) from exc
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"expected a state_dict (a mapping of names to tensors), found a {type(obj).__name__}",
            where=str(path),
            fix="save it with torch.save(model.state_dict(), path)",
        )
    weights = state_dict_of(obj, str(path))
    for name, tensor in weights.items():
        check_tensor_size(str(name), tensor.numel(), str(path))
        _check_real(str(name), tensor.is_complex(), str(path))
    check_model_size(sum(t.numel() for t in weights.values()), str(path))
    return {str(k): v.detach().double().numpy() for k, v in weights.items()}


def _check_unpacked_size(path: Path) -> None:
    """A torch file is a zip: what its entries unpack to is declared in its directory, and
    checked before torch reads a byte of them (a deflated 512 KB entry can unpack to 512
    MiB). Files that are not zips (the legacy format) are left to torch."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(entry.file_size for entry in archive.infolist())
    if unpacked > MAX_MODEL_VALUES * 8:
        raise ModelLoadError(
            f"the file unpacks to {unpacked:,} bytes, more than the {MAX_MODEL_VALUES * 8:,} "
            "of the largest model circuitql reads",
            where=str(path),
            fix="index a smaller network, or the part of it a circuit lives in",
        )


def load_weights_file(
    path: Path, config_path: Path | None = None
) -> tuple[NeuronGraph, ModelConfig, dict[str, Any]]:
    """The graph, its config, and notes on how its tensors were read."""
    tensors = read_weights(path)
    config_path = config_path or find_sidecar(path)
    if config_path is None:
        raise _missing_config(path, tensors)
    config = parse_config(config_path)
    for name, array in tensors.items():
        if not np.all(np.isfinite(array)):
            raise ModelLoadError(
                f"tensor {name!r} contains NaN or Inf",
                where=str(path),
                fix="the weights are corrupt or diverged: retrain or re-export",
            )
    try:
        graph, notes = build_graph(config, tensors, str(path))
    except ShapeError as exc:
        raise ModelLoadError(
            str(exc), where=str(path), fix="make the config's layers match the tensors' shapes"
        ) from exc
    return graph, config, notes


def build_graph(
    config: ModelConfig, tensors: Mapping[str, np.ndarray], where: str
) -> tuple[NeuronGraph, dict[str, Any]]:
    """The graph, and notes on how its tensors were read (weights found transposed)."""
    builder = GraphBuilder()
    values: dict[str, AffineVec] = {NETWORK_INPUT: builder.inputs(config.n_inputs)}
    transposed: list[str] = []
    for layer in config.layers:
        x = AffineVec.concat([values[ref] for ref in layer.reads])
        weight = layer_weight(layer, tensors, len(x), where, transposed)
        bias = layer_bias(layer, tensors, where)
        pre = builder.linear(x, weight, bias, layer.name)
        for ref in layer.adds:
            pre = pre + values[ref]
        values[layer.name] = builder.activate(
            pre, layer.activation, layer.name, layer.alpha, keep=layer.keep
        )
    graph = builder.finish(AffineVec.concat([values[name] for name in config.outputs]))
    return graph, ({"loaded": {"transposed": transposed}} if transposed else {})


def layer_bias(
    layer: LayerSpec, tensors: Mapping[str, np.ndarray], where: str
) -> np.ndarray | None:
    """The layer's bias vector; None when the config names none, or names the default one
    (``<name>.bias``) and the file does not hold it."""
    if layer.bias is None or not (layer.bias.tensor in tensors or layer.bias_required):
        return None
    return _read(layer.bias, tensors, where, f"layer {layer.name!r}")


def layer_weight(
    layer: LayerSpec,
    tensors: Mapping[str, np.ndarray],
    width: int,
    where: str,
    transposed: list[str],
) -> np.ndarray:
    """The layer's weight as (out, in). Stored (in, out), as JAX and some papers keep it,
    it is read transposed when the config says so, or when only that fits the layer's
    input; a square one is read as stored unless the config says otherwise."""
    ref = layer.weight
    matrix = _read(ref, tensors, where, f"layer {layer.name!r}")
    if matrix.ndim != 2:
        raise ModelLoadError(
            f"layer {layer.name!r}: tensor {ref.tensor!r} has shape {matrix.shape}, not a matrix",
            where=where,
            fix="name the layer's 2-D weight tensor in the config",
        )
    fits_transposed = matrix.shape[0] == width and matrix.shape[1] != width
    if ref.transpose or (ref.transpose is None and fits_transposed):
        transposed.append(ref.tensor)
        return matrix.T
    return matrix


def _read(ref: TensorRef, tensors: Mapping[str, np.ndarray], where: str, what: str) -> np.ndarray:
    if ref.tensor not in tensors:
        names = ", ".join(sorted(tensors)[:20])
        raise ModelLoadError(
            f"{what} reads tensor {ref.tensor!r}, which the file does not hold",
            where=where,
            fix=f"name one of the file's tensors ({names}) in the config",
        )
    array = tensors[ref.tensor]
    for axis, span in ((0, ref.rows), (1, ref.columns)):
        if span is None:
            continue
        if array.ndim <= axis or span[1] > array.shape[axis]:
            raise ModelLoadError(
                f"{what}: {['rows', 'columns'][axis]} {list(span)} of tensor "
                f"{ref.tensor!r} of shape {array.shape} do not exist",
                where=where,
                fix="give a range inside the tensor",
            )
        array = array[span[0] : span[1]] if axis == 0 else array[:, span[0] : span[1]]
    return array

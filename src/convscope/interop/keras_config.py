"""Keras model files -> a convscope `ModelSpec`: the architecture half of the Keras bridge.

Three containers hold the same architecture JSON:
- a Keras 3 `.keras` archive (a zip of config.json, model.weights.h5 and metadata.json);
- a legacy HDF5 `.h5`, whose root attribute `model_config` holds it (tf.keras 2.x and Keras 3 both write it);
- the JSON of `model.to_json()`.

and it comes in two dialects, read here side by side:
- Keras 3: layers carry `module` and `registered_name`; a Functional layer's inbound node is
  `{"args": [..."__keras_tensor__" with keras_history [layer, node, tensor]...], "kwargs": {}}`;
  the Input's shape is `batch_shape`.
- tf.keras 2.x: an inbound node is `[["layer", node, tensor, {kwargs}], ...]`; the shape is
  `batch_input_shape`, on an InputLayer or on a Sequential model's first layer.

Only what changes a prediction is translated (sizes, activations, epsilon, ...); initialisers,
regularisers and constraints only matter for training from scratch and are dropped. Anything
that would change a prediction and has no convscope equivalent is refused, naming the layer.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
from torch import nn

from ..errors import UserError
from ..models.layers import ACTIVATIONS
from ..models.spec import INPUT, ModelSpec, parse_spec

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MODEL_CLASSES = ("Sequential", "Functional", "Model")

# Keras class name -> convscope type (the names convscope's specs use)
LAYER_TYPES = {
    "Conv2D": "Conv2D",
    "Convolution2D": "Conv2D",
    "MaxPooling2D": "MaxPool2D",
    "MaxPool2D": "MaxPool2D",
    "AveragePooling2D": "AveragePooling2D",
    "AvgPool2D": "AveragePooling2D",
    "GlobalAveragePooling2D": "GlobalAveragePooling2D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "Dense": "Dense",
    "Flatten": "Flatten",
    "BatchNormalization": "BatchNormalization",
    "Dropout": "Dropout",
    "Activation": "Activation",
    "Add": "Add",
    "Concatenate": "Concatenate",
    "Rescaling": "Rescaling",
    "Reshape": "Reshape",
}
SUPPORTED = (
    "InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Dense, Flatten, "
    "BatchNormalization, Dropout, Activation, Add, Concatenate, Rescaling, Reshape"
)
KERAS_ACTIVATIONS = sorted(k for k in ACTIVATIONS if k)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
FLAT_INPUT = "flatten_pixels"  # the Flatten put in front of a model that reads flat vectors


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the Keras model that became a convscope layer."""

    name: str  # Keras' name, the key of its weights
    class_name: str
    spec_name: str  # the name in the convscope spec (the same unless Keras' name is not a valid one)
    config: dict[str, Any]
    saved_index: int  # its place in model.layers, which names its weights in a .keras archive


@dataclass(frozen=True)
class KerasModel:
    source: str
    container: str  # "keras" (Keras 3 archive), "h5" (legacy HDF5) or "json" (to_json)
    keras_version: str | None
    model_class: str  # Sequential or Functional
    spec: ModelSpec
    input_shape: tuple[int, int, int]
    num_classes: int
    layers: tuple[KerasLayer, ...]  # in the order of the Keras config, InputLayer left out
    saved_order: tuple[str, ...]  # class names of model.layers as Keras saves them, for .keras weight paths

    @property
    def description(self) -> str:
        kind = {"keras": "a Keras 3 .keras archive", "h5": "a legacy HDF5 .h5", "json": "architecture JSON"}[
            self.container
        ]
        version = f", Keras {self.keras_version}" if self.keras_version else ""
        return f"{self.model_class} model from {kind}{version}"


def is_keras_file(path: str | Path) -> bool:
    """A .keras or .h5 file, or a .json whose top level is a Keras model (not a convscope spec)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return True
    if suffix == ".json" and path.is_file():
        try:
            top = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        return isinstance(top, dict) and "class_name" in top and "config" in top
    return False


def read_keras_model(path: str | Path) -> KerasModel:
    """The architecture of a Keras model file as a convscope spec, every layer checked."""
    config, container, version = read_architecture(path)
    return parse_keras_config(config, str(path), container, version)


def read_architecture(path: str | Path) -> tuple[dict[str, Any], str, str | None]:
    """(the model's architecture JSON, container, Keras version) of a .keras, .h5 or .json file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    if zipfile.is_zipfile(path):
        return _from_archive(path)
    if h5py.is_hdf5(path):
        return _from_hdf5(path)
    if path.suffix.lower() == ".json":
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc}).") from None
        _check_model_json(config, path)
        return config, "json", config.get("keras_version")
    raise UserError(
        f"{path} is not a Keras model: expected a Keras 3 .keras archive, a legacy HDF5 .h5 "
        "written by model.save(), or the JSON of model.to_json()."
    )


def _from_archive(path: Path) -> tuple[dict[str, Any], str, str | None]:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise UserError(f"{path} is a zip file but not a Keras model: it has no config.json.")
        try:
            config = json.loads(archive.read("config.json"))
            meta = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
        except ValueError as exc:
            raise UserError(f"{path}: config.json is not valid JSON ({exc}).") from None
    _check_model_json(config, path)
    return config, "keras", meta.get("keras_version") if isinstance(meta, dict) else None


def _from_hdf5(path: Path) -> tuple[dict[str, Any], str, str | None]:
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        version = f.attrs.get("keras_version")
        weights_only = "layer_names" in f.attrs or "layers" in f
    if raw is None:
        hint = (
            " It holds weights only (model.save_weights); save the whole model with model.save()."
            if weights_only
            else ""
        )
        raise UserError(f"{path} is an HDF5 file but not a Keras model: it has no 'model_config' attribute.{hint}")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: its model_config is not valid JSON ({exc}).") from None
    _check_model_json(config, path)
    version = version.decode() if isinstance(version, bytes) else (str(version) if version is not None else None)
    return config, "h5", version


def _check_model_json(config: Any, path: Path) -> None:
    if not (isinstance(config, dict) and isinstance(config.get("config"), dict) and "class_name" in config):
        raise UserError(f"{path} is not a Keras model: its architecture JSON has no 'class_name' and 'config'.")


# ---------------------------------------------------------------- the model


def parse_keras_config(
    config: dict[str, Any], source: str, container: str = "json", version: str | None = None
) -> KerasModel:
    class_name = config.get("class_name")
    body = config["config"]
    if class_name not in MODEL_CLASSES:
        if _is_custom(config):
            raise UserError(
                f"{source}: the model is a custom class {class_name!r} (custom objects cannot be imported); "
                "convscope reads Sequential and Functional models."
            )
        raise UserError(f"{source}: the model is a {class_name!r}; convscope reads Sequential and Functional models.")
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UserError(f"{source}: the model has no layers.")
    for layer in layers:
        _check_layer_class(layer, source)
    if class_name == "Sequential":
        graph, shape = _sequential(layers, body.get("build_input_shape"), source)
        saved = [l for l in layers if l["class_name"] != "InputLayer"]
    else:
        graph, shape = _functional(body, source)
        saved = list(layers)
    return _to_model(
        graph,
        shape,
        body,
        source,
        container,
        version,
        "Sequential" if class_name == "Sequential" else "Functional",
        saved,
    )


def _is_custom(layer: dict[str, Any]) -> bool:
    registered = layer.get("registered_name")
    module = layer.get("module")
    return (registered not in (None, layer.get("class_name"))) or (
        isinstance(module, str) and not module.startswith("keras")
    )


def _label(layer: dict[str, Any]) -> str:
    name = layer.get("name") or (layer.get("config") or {}).get("name", "?")
    return f"layer '{name}' ({layer.get('class_name')})"


def _check_layer_class(layer: Any, source: str) -> None:
    if not isinstance(layer, dict) or "class_name" not in layer:
        raise UserError(f"{source}: a layer entry has no class_name: {str(layer)[:80]}.")
    kind = layer["class_name"]
    if kind == "InputLayer" or (kind in LAYER_TYPES and not _is_custom(layer)):
        return
    if _is_custom(layer) or kind not in LAYER_TYPES and kind not in _KNOWN_KERAS:
        raise UserError(
            f"{source}: {_label(layer)} is a custom object, which cannot be imported; "
            f"convscope imports only these Keras layers: {SUPPORTED}."
        )
    raise UserError(
        f"{source}: {_label(layer)} is not supported; convscope imports only these Keras layers: {SUPPORTED}."
    )


# Built-in Keras layers a course model might contain that convscope does not translate; a class name
# outside this list and LAYER_TYPES is most likely the user's own (custom object).
_KNOWN_KERAS = {
    "Conv1D",
    "Conv3D",
    "Conv2DTranspose",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "MaxPooling1D",
    "MaxPooling3D",
    "GlobalMaxPooling2D",
    "GlobalMaxPool2D",
    "GlobalAveragePooling1D",
    "LayerNormalization",
    "GroupNormalization",
    "ZeroPadding2D",
    "Cropping2D",
    "UpSampling2D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Lambda",
    "TFOpLambda",
    "SlicingOpLambda",
    "Permute",
    "Multiply",
    "Subtract",
    "Average",
    "Maximum",
    "Minimum",
    "Embedding",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Normalization",
    "Resizing",
    "CenterCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomCrop",
    "Sequential",
    "Functional",
    "Model",
    "Attention",
    "MultiHeadAttention",
    "ActivityRegularization",
    "Masking",
    "RepeatVector",
    "Identity",
    "Concatenate",
    "Dot",
    "Bidirectional",
    "TimeDistributed",
    "AlphaDropout",
    "UnitNormalization",
    "Conv1DTranspose",
    "Conv3DTranspose",
}


def _input_shape(config: dict[str, Any]) -> list | None:
    for key in ("batch_shape", "batch_input_shape"):
        if config.get(key) is not None:
            return list(config[key])[1:]
    return list(config["input_shape"]) if config.get("input_shape") is not None else None


def _image_shape(shape: list | None, source: str) -> tuple[int, int, int]:
    """The (H, W, C) images a model reads; flat vectors of s*s values are s x s grayscale images."""
    if shape is None:
        raise UserError(
            f"{source}: the model does not say its input shape; build it with keras.Input(shape=...) before saving."
        )
    if len(shape) == 1 and isinstance(shape[0], int) and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        shape = [side, side, 1]
    if len(shape) == 2:  # (H, W) grayscale: with one channel every element order is the same
        shape = [*shape, 1]
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise UserError(
            f"{source}: the model's input shape is {tuple(shape)}; convscope reads images (H, W, C) "
            "of fixed size, or flat vectors of a square grayscale image's pixels."
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


# A step of the graph before naming: (layer json, Keras names of its inputs)
_Step = tuple[dict[str, Any], tuple[str, ...]]


def _sequential(layers: list[dict[str, Any]], built: list | None, source: str) -> tuple[list[_Step], list | None]:
    shape = list(built)[1:] if built else None
    graph: list[_Step] = []
    previous = INPUT
    for layer in layers:
        config = layer.get("config") or {}
        if shape is None:
            shape = _input_shape(config)
        if layer["class_name"] == "InputLayer":
            continue
        name = str(config.get("name") or layer.get("name"))
        graph.append((layer, (previous,)))
        previous = name
    return graph, shape


def _history_refs(value: Any) -> list[list]:
    """The [layer, node, tensor] references of a Keras 3 node's args, in argument order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [list(value["config"]["keras_history"])]
        return [ref for v in value.values() for ref in _history_refs(v)]
    if isinstance(value, (list, tuple)):
        return [ref for v in value for ref in _history_refs(v)]
    return []


def _node_inputs(layer: dict[str, Any], source: str) -> tuple[str, ...]:
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise UserError(
            f"{source}: {_label(layer)} is called {len(nodes)} times (a shared layer); convscope uses each layer once."
        )
    if not nodes:
        raise UserError(f"{source}: {_label(layer)} is not connected to anything.")
    node = nodes[0]
    # Keras 3: {"args": [...tensors...]}; tf.keras 2.x: [[name, node_index, tensor_index, kwargs], ...]
    refs = _history_refs(node.get("args", [])) if isinstance(node, dict) else [list(entry[:3]) for entry in node]
    for ref in refs:
        if ref[1:3] != [0, 0]:
            raise UserError(
                f"{source}: {_label(layer)} takes output {ref[2]} of call {ref[1]} of layer '{ref[0]}'; "
                "convscope imports graphs where every layer is called once with one output."
            )
    return tuple(str(ref[0]) for ref in refs)


def _endpoints(value: Any, what: str, source: str) -> str:
    entries = value if isinstance(value, list) else []
    if entries and isinstance(entries[0], str):  # a single [name, 0, 0]
        entries = [entries]
    if isinstance(value, dict):  # a dict of named inputs/outputs
        entries = list(value.values())
    if len(entries) != 1:
        names = ", ".join(str(e[0]) for e in entries if isinstance(e, list) and e)
        raise UserError(
            f"{source}: the model has {len(entries)} {what}s ({names}); convscope imports models with "
            f"one image input and one class-probability output."
        )
    return str(entries[0][0])


def _functional(body: dict[str, Any], source: str) -> tuple[list[_Step], list | None]:
    input_name = _endpoints(body.get("input_layers"), "input", source)
    output_name = _endpoints(body.get("output_layers"), "output", source)
    by_name = {str(l.get("name") or l["config"].get("name")): l for l in body["layers"]}
    if input_name not in by_name or by_name[input_name]["class_name"] != "InputLayer":
        raise UserError(f"{source}: the model's input '{input_name}' is not an InputLayer.")
    shape = _input_shape(by_name[input_name]["config"])
    inputs = {
        name: _node_inputs(layer, source) for name, layer in by_name.items() if layer["class_name"] != "InputLayer"
    }
    for name, layer in by_name.items():
        if layer["class_name"] == "InputLayer" and name != input_name:
            raise UserError(
                f"{source}: the model has a second input '{name}'; convscope imports models with one input."
            )
    # Only what the output depends on, inputs before the layers they feed.
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name == input_name:
            return
        if name in path:
            raise UserError(f"{source}: layer '{name}' feeds itself.")
        if name not in inputs:
            raise UserError(
                f"{source}: layer '{path[-1]}' takes the output of '{name}', which the model does not define."
            )
        for parent in inputs[name]:
            visit(parent, (*path, name))
        seen.add(name)
        order.append(name)

    visit(output_name, ())
    graph = [(by_name[n], tuple(INPUT if i == input_name else i for i in inputs[n])) for n in order]
    return graph, shape


# ---------------------------------------------------------------- layers


def _activation(value: Any, layer: dict[str, Any], source: str) -> str:
    if isinstance(value, dict):  # Keras 3 may serialise a built-in activation as an object
        if _is_custom(value) or value.get("registered_name") not in (None, "function"):
            raise UserError(
                f"{source}: {_label(layer)} uses a custom activation (a custom object), which cannot "
                f"be imported; convscope knows: {', '.join(KERAS_ACTIVATIONS)}."
            )
        value = value.get("config")
    if value is None:
        return "linear"
    if value not in ACTIVATIONS:
        raise UserError(
            f"{source}: {_label(layer)} uses activation {value!r}, which convscope does not have; "
            f"it knows: {', '.join(KERAS_ACTIVATIONS)}."
        )
    return str(value)


def _pair(value: Any) -> list[int] | None:
    if value is None:
        return None
    return [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]


def _refuse(layer: dict[str, Any], source: str, what: str) -> UserError:
    return UserError(f"{source}: {_label(layer)} has {what}, which convscope cannot reproduce.")


def translate_layer(layer: dict[str, Any], source: str) -> dict[str, Any]:
    """A Keras layer's config -> the convscope spec arguments that give the same outputs."""
    kind = LAYER_TYPES[layer["class_name"]]
    c = layer.get("config") or {}
    if c.get("data_format") not in (None, "channels_last"):
        raise _refuse(layer, source, f"data_format={c['data_format']!r} (convscope reads channels_last models)")
    padding = str(c.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise _refuse(layer, source, f"padding={padding!r}")
    if kind == "Conv2D":
        if _pair(c.get("dilation_rate", 1)) != [1, 1] or int(c.get("groups", 1)) != 1:
            raise _refuse(layer, source, f"dilation_rate={c.get('dilation_rate')} / groups={c.get('groups')}")
        return {
            "filters": int(c["filters"]),
            "kernel_size": _pair(c["kernel_size"]),
            "strides": _pair(c.get("strides", 1)),
            "padding": padding,
            "activation": _activation(c.get("activation"), layer, source),
            "use_bias": bool(c.get("use_bias", True)),
        }
    if kind in ("MaxPool2D", "AveragePooling2D"):
        args: dict[str, Any] = {"pool_size": _pair(c.get("pool_size", 2)), "padding": padding}
        if c.get("strides") is not None:
            args["strides"] = _pair(c["strides"])
        return args
    if kind == "GlobalAveragePooling2D":
        if c.get("keepdims"):
            raise _refuse(layer, source, "keepdims=True")
        return {}
    if kind == "Dense":
        return {
            "units": int(c["units"]),
            "activation": _activation(c.get("activation"), layer, source),
            "use_bias": bool(c.get("use_bias", True)),
        }
    if kind == "BatchNormalization":
        if c.get("renorm") or c.get("virtual_batch_size"):
            raise _refuse(layer, source, "batch renormalization / virtual batches")
        return {"momentum": float(c.get("momentum", 0.99)), "epsilon": float(c.get("epsilon", 1e-3))}
    if kind == "Dropout":
        if c.get("noise_shape") is not None:
            raise _refuse(layer, source, f"noise_shape={c['noise_shape']}")
        return {"rate": float(c["rate"])}
    if kind == "Activation":
        return {"activation": _activation(c.get("activation"), layer, source)}
    if kind == "Rescaling":
        return {"scale": c.get("scale", 1.0), "offset": c.get("offset", 0.0)}
    if kind == "Reshape":
        return {"target_shape": [int(t) for t in c["target_shape"]]}
    return {}  # Flatten, Add, Concatenate (axes are checked against the shapes by `check_axes`)


def _spec_names(names: list[str]) -> dict[str, str]:
    """Keras names -> names convscope accepts: kept when valid and not 'input', else made so."""
    out: dict[str, str] = {}
    taken = {INPUT}
    for name in names:
        candidate = name if _NAME.match(name) and name != INPUT else re.sub(r"[^A-Za-z0-9_\-]", "_", name)
        if hasattr(nn.ModuleDict, candidate):  # 'half', 'float', 'eval' ... would shadow a torch method
            candidate = f"{candidate}_layer"
        if not candidate or not re.match(r"[A-Za-z_]", candidate[0]):
            candidate = f"layer_{candidate}"
        base, n = candidate, 1
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        out[name] = candidate
    return out


def _to_model(
    graph: list[_Step],
    raw_shape: list | None,
    body: dict[str, Any],
    source: str,
    container: str,
    version: str | None,
    model_class: str,
    saved: list[dict[str, Any]],
) -> KerasModel:
    shape = _image_shape(raw_shape, source)
    keras_names = [str((l.get("config") or {}).get("name") or l.get("name")) for l, _ in graph]
    rename = _spec_names([*keras_names, FLAT_INPUT])
    rename[INPUT] = INPUT
    layers: list[KerasLayer] = []
    entries: list[dict[str, Any]] = []
    if raw_shape is not None and len(raw_shape) == 1:
        # A model of flat pixel vectors (x.reshape(n, -1) in the notebook, row by row): the images are
        # flattened first, in the same (H, W, C) order.
        entries.append({"name": rename[FLAT_INPUT], "type": "Flatten", "inputs": [INPUT]})
        rename[INPUT] = rename[FLAT_INPUT]
    for (layer, inputs), name in zip(graph, keras_names):
        args = translate_layer(layer, source)
        entries.append(
            {
                "name": rename[name],
                "type": LAYER_TYPES[layer["class_name"]],
                **args,
                "inputs": [rename[i] for i in inputs],
            }
        )
        index = next(i for i, candidate in enumerate(saved) if candidate is layer)
        layers.append(KerasLayer(name, layer["class_name"], rename[name], layer.get("config") or {}, index))
    spec = parse_spec(
        {
            "name": str(body.get("name") or "keras-model"),
            "layers": entries,
            "input_shape": list(shape),
            "output": entries[-1]["name"],
        },
        source=source,
    )
    return KerasModel(
        source,
        container,
        version,
        model_class,
        spec,
        shape,
        _classes(entries, source),
        tuple(layers),
        tuple(l["class_name"] for l in saved),
    )


def _classes(entries: list[dict[str, Any]], source: str) -> int:
    """The number of classes: the units of the Dense the output comes from through shape-keeping layers."""
    by_name = {e["name"]: e for e in entries}
    entry = entries[-1]
    while (
        entry["type"] in ("Activation", "Dropout", "BatchNormalization", "Rescaling") and entry["inputs"][0] in by_name
    ):
        entry = by_name[entry["inputs"][0]]
    if entry["type"] != "Dense":
        raise UserError(
            f"{source}: the output comes from layer '{entry['name']}' ({entry['type']}); convscope imports "
            "classifiers whose output is a Dense layer (softmax, or no activation for logits)."
        )
    return int(entry["units"])


def check_axes(model: KerasModel, shapes: dict[str, tuple[int, ...]]) -> None:
    """BatchNormalization and Concatenate must work on the channel (last) axis, as convscope's do.

    `shapes` maps spec names (and 'input') to output shapes without the batch axis."""
    by_spec = {l.spec_name: l for l in model.layers}
    for layer in model.spec.layers:
        if layer.type not in ("BatchNormalization", "Concatenate"):
            continue
        config = by_spec[layer.name].config
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        rank = len(shapes[layer.inputs[0]]) + 1
        if axis not in (-1, rank - 1):
            raise UserError(
                f"{model.source}: layer '{by_spec[layer.name].name}' "
                f"({by_spec[layer.name].class_name}) works on axis {axis}; convscope only has the "
                "channel (last) axis."
            )


def weights_file(path: str | Path) -> io.BytesIO | Path:
    """Where a model file's weights are: the HDF5 inside a .keras archive (read into memory) or the .h5 itself."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise UserError(f"{path} has no model.weights.h5: it holds an architecture without weights.")
            return io.BytesIO(archive.read("model.weights.h5"))
    return path

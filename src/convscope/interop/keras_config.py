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
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
from torch import nn

from ..checks import cut, limits, quote
from ..errors import UserError
from ..i18n import _
from ..models.build import check_params as check_network_params
from ..models.build import plan_network
from ..models.layers import ACTIVATIONS
from ..models.spec import INPUT, MAX_INT, ModelSpec, parse_spec
from .containers import MAX_JSON_BYTES, names, open_hdf5, open_zip, parse_json, read_member, text_attr

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
WEIGHTS_SLACK = 16 * 2**20  # an HDF5 file's own structure, names and attributes
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
        kind = {
            "keras": _("a Keras 3 .keras archive"),
            "h5": _("a legacy HDF5 .h5"),
            "json": _("architecture JSON"),
        }[self.container]
        if self.keras_version:
            return _("{model_class} model from {kind}, Keras {version}").format(
                model_class=self.model_class, kind=kind, version=self.keras_version
            )
        return _("{model_class} model from {kind}").format(model_class=self.model_class, kind=kind)


def is_keras_file(path: str | Path) -> bool:
    """A .keras or .h5 file, or a .json whose top level is a Keras model (not a convscope spec)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return True
    if suffix == ".json" and path.is_file():
        try:
            if path.stat().st_size > MAX_JSON_BYTES:
                return False
            top = parse_json(path.read_bytes(), str(path))
        except (OSError, UserError):
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
        raise UserError(_("{path}: no such file.").format(path=path))
    if zipfile.is_zipfile(path):
        return _from_archive(path)
    if h5py.is_hdf5(path):
        return _from_hdf5(path)
    if path.suffix.lower() == ".json":
        try:
            size = path.stat().st_size
            if size > MAX_JSON_BYTES:
                raise UserError(
                    _("{path} is {size:,} bytes; a Keras model's JSON is at most {limit:,}.").format(
                        path=path, size=size, limit=MAX_JSON_BYTES
                    )
                )
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(_("{path} cannot be read ({problem}).").format(path=path, problem=exc.strerror)) from None
        config = parse_json(data, str(path))
        _check_model_json(config, path)
        return config, "json", _version(config.get("keras_version"))
    raise UserError(
        _(
            "{path} is not a Keras model: expected a Keras 3 .keras archive, a legacy HDF5 .h5 "
            "written by model.save(), or the JSON of model.to_json()."
        ).format(path=path)
    )


def _from_archive(path: Path) -> tuple[dict[str, Any], str, str | None]:
    with open_zip(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise UserError(_("{path} is a zip file but not a Keras model: it has no config.json.").format(path=path))
        config = parse_json(read_member(archive, "config.json", MAX_JSON_BYTES, path), f"{path}: config.json")
        meta = (
            parse_json(read_member(archive, "metadata.json", MAX_JSON_BYTES, path), f"{path}: metadata.json")
            if "metadata.json" in names
            else {}
        )
    _check_model_json(config, path)
    return config, "keras", _version(meta.get("keras_version")) if isinstance(meta, dict) else None


def _from_hdf5(path: Path) -> tuple[dict[str, Any], str, str | None]:
    where = str(path)
    with open_hdf5(path, where) as f:
        raw = text_attr(f, "model_config", where)
        version = text_attr(f, "keras_version", where, limit=1024)
        weights_only = "layer_names" in f.attrs or "layers" in names(f, where)
    if raw is None:
        hint = (
            _(" It holds weights only (model.save_weights); save the whole model with model.save().")
            if weights_only
            else ""
        )
        raise UserError(
            _("{path} is an HDF5 file but not a Keras model: it has no 'model_config' attribute.").format(path=path)
            + hint
        )
    config = parse_json(raw, f"{path}: model_config")
    _check_model_json(config, path)
    return config, "h5", version


def _version(value: Any) -> str | None:
    """The Keras version a file claims, kept only when it is a short text (it is shown and stored)."""
    return value if isinstance(value, str) and len(value) <= 40 and value.isprintable() else None


def _check_model_json(config: Any, path: Path) -> None:
    if not (isinstance(config, dict) and isinstance(config.get("config"), dict) and "class_name" in config):
        raise UserError(
            _("{path} is not a Keras model: its architecture JSON has no 'class_name' and 'config'.").format(path=path)
        )


# ---------------------------------------------------------------- the model


def parse_keras_config(
    config: dict[str, Any], source: str, container: str = "json", version: str | None = None
) -> KerasModel:
    """The architecture JSON as a convscope model; every field is checked, any flaw is one UserError."""
    class_name = config.get("class_name")
    body = config["config"]
    if not isinstance(class_name, str) or class_name not in MODEL_CLASSES:
        if _is_custom(config):
            raise UserError(
                _(
                    "{source}: the model is a custom class {name} (custom objects cannot be imported); "
                    "convscope reads Sequential and Functional models."
                ).format(source=source, name=quote(class_name))
            )
        raise UserError(
            _("{source}: the model is a {name}; convscope reads Sequential and Functional models.").format(
                source=source, name=quote(class_name)
            )
        )
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UserError(_("{source}: the model has no layers.").format(source=source))
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


def _config(layer: dict[str, Any]) -> dict[str, Any]:
    """A layer's config (checked to be a mapping by `_check_layer_class`)."""
    return layer.get("config") or {}


def layer_name(layer: dict[str, Any]) -> str:
    """The Keras name of a checked layer entry: its config's name, else the entry's."""
    name = _config(layer).get("name") or layer.get("name")
    return str(name)


def _label(layer: dict[str, Any]) -> str:
    config = layer.get("config")
    name = (config.get("name") if isinstance(config, dict) else None) or layer.get("name") or "?"
    return _("layer {name} ({kind})").format(name=quote(name, 60), kind=cut(str(layer.get("class_name")), 40))


def _check_layer_class(layer: Any, source: str) -> None:
    if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
        raise UserError(
            _("{source}: a layer entry has no class_name: {entry}.").format(source=source, entry=quote(layer, 80))
        )
    config = layer.get("config")
    if config is not None and not isinstance(config, dict):
        raise UserError(
            _("{source}: {layer} has a config that is not a mapping: {value}.").format(
                source=source, layer=_label(layer), value=quote(config)
            )
        )
    for key in ("name",):
        for where in (layer, config or {}):
            value = where.get(key)
            if value is not None and not (isinstance(value, str) and value and value.isprintable()):
                raise UserError(
                    _("{source}: a {kind} layer's name must be printable text, got {value}.").format(
                        source=source, kind=cut(layer["class_name"], 40), value=quote(value)
                    )
                )
    kind = layer["class_name"]
    if kind == "InputLayer" or (kind in LAYER_TYPES and not _is_custom(layer)):
        return
    if _is_custom(layer) or kind not in LAYER_TYPES and kind not in _KNOWN_KERAS:
        raise UserError(
            _(
                "{source}: {layer} is a custom object, which cannot be imported; "
                "convscope imports only these Keras layers: {supported}."
            ).format(source=source, layer=_label(layer), supported=SUPPORTED)
        )
    raise UserError(
        _("{source}: {layer} is not supported; convscope imports only these Keras layers: {supported}.").format(
            source=source, layer=_label(layer), supported=SUPPORTED
        )
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


def _input_shape(config: dict[str, Any], source: str) -> list | None:
    for key in ("batch_shape", "batch_input_shape"):
        if config.get(key) is not None:
            value = config[key]
            if not isinstance(value, list) or not value:
                raise UserError(
                    _("{source}: the input's '{key}' must be a list like [null, 28, 28, 1], got {value}.").format(
                        source=source, key=key, value=quote(value)
                    )
                )
            return list(value)[1:]
    value = config.get("input_shape")
    if value is not None and not isinstance(value, list):
        raise UserError(
            _("{source}: the input's 'input_shape' must be a list like [28, 28, 1], got {value}.").format(
                source=source, value=quote(value)
            )
        )
    return list(value) if value is not None else None


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INT


def _image_shape(shape: list | None, source: str) -> tuple[int, int, int]:
    """The (H, W, C) images a model reads; flat vectors of s*s values are s x s grayscale images."""
    if shape is None:
        raise UserError(
            _(
                "{source}: the model does not say its input shape; build it with keras.Input(shape=...) before saving."
            ).format(source=source)
        )
    if len(shape) == 1 and _is_size(shape[0]) and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        shape = [side, side, 1]
    if len(shape) == 2:  # (H, W) grayscale: with one channel every element order is the same
        shape = [*shape, 1]
    if len(shape) != 3 or not all(_is_size(s) for s in shape):
        raise UserError(
            _(
                "{source}: the model's input shape is {shape}; convscope reads images (H, W, C) "
                "of fixed size, or flat vectors of a square grayscale image's pixels."
            ).format(source=source, shape=quote(tuple(shape)))
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


# A step of the graph before naming: (layer json, Keras names of its inputs)
_Step = tuple[dict[str, Any], tuple[str, ...]]


def _sequential(layers: list[dict[str, Any]], built: Any, source: str) -> tuple[list[_Step], list | None]:
    if built is not None and not (isinstance(built, list) and built):
        raise UserError(
            _("{source}: the model's 'build_input_shape' must be a list like [null, 28, 28, 1], got {value}.").format(
                source=source, value=quote(built)
            )
        )
    shape = list(built)[1:] if built else None
    graph: list[_Step] = []
    previous = INPUT
    for layer in layers:
        if shape is None:
            shape = _input_shape(_config(layer), source)
        if layer["class_name"] == "InputLayer":
            continue
        graph.append((layer, (previous,)))
        previous = layer_name(layer)
    return graph, shape


def _bad_node(layer: dict[str, Any], source: str, value: Any) -> UserError:
    return UserError(
        _(
            "{source}: {layer} has an inbound node that is not a list of [layer, node, tensor] references: {value}."
        ).format(source=source, layer=_label(layer), value=quote(value))
    )


def _reference(value: Any, layer: dict[str, Any], source: str) -> tuple[str, int, int]:
    """One [layer name, node index, tensor index] reference, checked."""
    if not (
        isinstance(value, (list, tuple))
        and len(value) >= 3
        and isinstance(value[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:3])
    ):
        raise _bad_node(layer, source, value)
    return value[0], value[1], value[2]


def _history_refs(value: Any, layer: dict[str, Any], source: str) -> list[tuple[str, int, int]]:
    """The [layer, node, tensor] references of a Keras 3 node's args, in argument order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config")
            history = config.get("keras_history") if isinstance(config, dict) else None
            return [_reference(history, layer, source)]
        return [ref for v in value.values() for ref in _history_refs(v, layer, source)]
    if isinstance(value, (list, tuple)):
        return [ref for v in value for ref in _history_refs(v, layer, source)]
    return []


def _node_inputs(layer: dict[str, Any], source: str) -> tuple[str, ...]:
    nodes = layer.get("inbound_nodes") or []
    if not isinstance(nodes, list):
        raise _bad_node(layer, source, nodes)
    if len(nodes) > 1:
        raise UserError(
            _("{source}: {layer} is called {count} times (a shared layer); convscope uses each layer once.").format(
                source=source, layer=_label(layer), count=len(nodes)
            )
        )
    if not nodes:
        raise UserError(_("{source}: {layer} is not connected to anything.").format(source=source, layer=_label(layer)))
    node = nodes[0]
    # Keras 3: {"args": [...tensors...]}; tf.keras 2.x: [[name, node_index, tensor_index, kwargs], ...]
    if isinstance(node, dict):
        refs = _history_refs(node.get("args", []), layer, source)
    elif isinstance(node, list):
        refs = [_reference(entry, layer, source) for entry in node]
    else:
        raise _bad_node(layer, source, node)
    if not refs:
        raise UserError(_("{source}: {layer} is not connected to anything.").format(source=source, layer=_label(layer)))
    for name, call, tensor in refs:
        if (call, tensor) != (0, 0):
            raise UserError(
                _(
                    "{source}: {layer} takes output {tensor} of call {call} of layer {parent}; "
                    "convscope imports graphs where every layer is called once with one output."
                ).format(source=source, layer=_label(layer), tensor=tensor, call=call, parent=quote(name))
            )
    return tuple(name for name, _call, _tensor in refs)


def _endpoints(value: Any, what: str, source: str) -> str:
    """The one layer named by a Functional model's input_layers / output_layers."""
    entries = value if isinstance(value, list) else []
    if entries and isinstance(entries[0], str):  # a single [name, 0, 0]
        entries = [entries]
    if isinstance(value, dict):  # a dict of named inputs/outputs
        entries = list(value.values())
    if len(entries) != 1:
        names = ", ".join(str(e[0]) for e in entries if isinstance(e, list) and e)
        if what == "input":
            message = _(
                "{source}: the model has {count} inputs ({names}); convscope imports models with "
                "one image input and one class-probability output."
            )
        else:
            message = _(
                "{source}: the model has {count} outputs ({names}); convscope imports models with "
                "one image input and one class-probability output."
            )
        raise UserError(message.format(source=source, count=len(entries), names=cut(names, 120)))
    entry = entries[0]
    if not (isinstance(entry, list) and entry and isinstance(entry[0], str)):
        if what == "input":
            message = _("{source}: the model's input must be named as [layer, 0, 0], got {value}.")
        else:
            message = _("{source}: the model's output must be named as [layer, 0, 0], got {value}.")
        raise UserError(message.format(source=source, value=quote(entry)))
    return entry[0]


def _functional(body: dict[str, Any], source: str) -> tuple[list[_Step], list | None]:
    input_name = _endpoints(body.get("input_layers"), "input", source)
    output_name = _endpoints(body.get("output_layers"), "output", source)
    by_name: dict[str, dict[str, Any]] = {}
    for layer in body["layers"]:
        name = layer_name(layer)
        if name in by_name:
            raise UserError(_("{source}: two layers are called {name}.").format(source=source, name=quote(name)))
        by_name[name] = layer
    if input_name not in by_name or by_name[input_name]["class_name"] != "InputLayer":
        raise UserError(
            _("{source}: the model's input {name} is not an InputLayer.").format(source=source, name=quote(input_name))
        )
    shape = _input_shape(_config(by_name[input_name]), source)
    inputs = {
        name: _node_inputs(layer, source) for name, layer in by_name.items() if layer["class_name"] != "InputLayer"
    }
    for name, layer in by_name.items():
        if layer["class_name"] == "InputLayer" and name != input_name:
            raise UserError(
                _("{source}: the model has a second input {name}; convscope imports models with one input.").format(
                    source=source, name=quote(name)
                )
            )
    if output_name not in inputs:
        raise UserError(
            _("{source}: the model's output {name} is not one of its layers.").format(
                source=source, name=quote(output_name)
            )
        )
    # Only what the output depends on, inputs before the layers they feed (iteratively: graphs can be long).
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(output_name, ())]
    while stack:
        name, path = stack.pop()
        if name in seen or name == input_name:
            continue
        if name in path:
            raise UserError(_("{source}: layer {name} feeds itself.").format(source=source, name=quote(name)))
        if name not in inputs:
            raise UserError(
                _("{source}: layer {layer} takes the output of {name}, which the model does not define.").format(
                    source=source, layer=quote(path[-1]), name=quote(name)
                )
            )
        pending = [p for p in inputs[name] if p not in seen and p != input_name]
        if pending:
            stack.append((name, path))
            stack.extend((p, (*path, name)) for p in reversed(pending))
            continue
        seen.add(name)
        order.append(name)
    graph = [(by_name[n], tuple(INPUT if i == input_name else i for i in inputs[n])) for n in order]
    return graph, shape


# ---------------------------------------------------------------- layers


def _activation(value: Any, layer: dict[str, Any], source: str) -> str:
    if isinstance(value, dict):  # Keras 3 may serialise a built-in activation as an object
        if _is_custom(value) or value.get("registered_name") not in (None, "function"):
            raise UserError(
                _(
                    "{source}: {layer} uses a custom activation (a custom object), which cannot "
                    "be imported; convscope knows: {known}."
                ).format(source=source, layer=_label(layer), known=", ".join(KERAS_ACTIVATIONS))
            )
        value = value.get("config")
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise UserError(
            _("{source}: {layer} uses activation {value}, which convscope does not have; it knows: {known}.").format(
                source=source, layer=_label(layer), value=quote(value), known=", ".join(KERAS_ACTIVATIONS)
            )
        )
    return value


def _refuse(layer: dict[str, Any], source: str, what: str) -> UserError:
    return UserError(
        _("{source}: {layer} has {what}, which convscope cannot reproduce.").format(
            source=source, layer=_label(layer), what=what
        )
    )


def _field(layer: dict[str, Any], source: str, key: str, value: Any, expected: str) -> UserError:
    return UserError(
        _("{source}: {layer} has {key}={value}; it must be {expected}.").format(
            source=source, layer=_label(layer), key=key, value=quote(value), expected=expected
        )
    )


def _flag(c: dict[str, Any], key: str, default: bool, layer: dict[str, Any], source: str) -> bool:
    """A Keras boolean: true or false only ("false" as text is not false)."""
    value = c.get(key, default)
    if not isinstance(value, bool):
        raise _field(layer, source, key, value, _("true or false"))
    return value


def _ones(value: Any) -> bool:
    """1, [1, 1] or (1, 1): Keras' 'no dilation'."""
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(v, int) and not isinstance(v, bool) and v == 1 for v in items)


def translate_layer(layer: dict[str, Any], source: str) -> dict[str, Any]:
    """A Keras layer's config -> the convscope spec arguments that give the same outputs.

    Values are passed on as they are, not converted: the spec's layer builders check each one's type
    and range (`models/layers._Args`), so 4.7 filters or use_bias "false" are refused, never rounded
    or taken as true. Only the fields convscope has no argument for are checked here."""
    kind = LAYER_TYPES[layer["class_name"]]
    c = _config(layer)
    if c.get("data_format") not in (None, "channels_last"):
        raise _refuse(
            layer,
            source,
            _("data_format={value} (convscope reads channels_last models)").format(value=quote(c["data_format"])),
        )
    padding = c.get("padding", "valid")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise _field(layer, source, "padding", padding, _("'valid' or 'same'"))
    padding = padding.lower()
    if kind == "Conv2D":
        if not _ones(c.get("dilation_rate", 1)):
            raise _refuse(layer, source, f"dilation_rate={quote(c.get('dilation_rate'))}")
        if not _ones(c.get("groups", 1)):
            raise _refuse(layer, source, f"groups={quote(c.get('groups'))}")
        return {
            "filters": c.get("filters"),
            "kernel_size": c.get("kernel_size"),
            "strides": c.get("strides", 1),
            "padding": padding,
            "activation": _activation(c.get("activation"), layer, source),
            "use_bias": c.get("use_bias", True),
        }
    if kind in ("MaxPool2D", "AveragePooling2D"):
        args: dict[str, Any] = {"pool_size": c.get("pool_size", 2), "padding": padding}
        if c.get("strides") is not None:
            args["strides"] = c["strides"]
        return args
    if kind == "GlobalAveragePooling2D":
        if _flag(c, "keepdims", False, layer, source):
            raise _refuse(layer, source, "keepdims=True")
        return {}
    if kind == "Dense":
        return {
            "units": c.get("units"),
            "activation": _activation(c.get("activation"), layer, source),
            "use_bias": c.get("use_bias", True),
        }
    if kind == "BatchNormalization":
        if _flag(c, "renorm", False, layer, source) or c.get("virtual_batch_size") is not None:
            raise _refuse(layer, source, _("batch renormalization / virtual batches"))
        _flag(c, "center", True, layer, source)
        _flag(c, "scale", True, layer, source)
        return {"momentum": c.get("momentum", 0.99), "epsilon": c.get("epsilon", 1e-3)}
    if kind == "Dropout":
        if c.get("noise_shape") is not None:
            raise _refuse(layer, source, f"noise_shape={quote(c['noise_shape'])}")
        return {"rate": c.get("rate")}
    if kind == "Activation":
        return {"activation": _activation(c.get("activation"), layer, source)}
    if kind == "Rescaling":
        return {"scale": c.get("scale", 1.0), "offset": c.get("offset", 0.0)}
    if kind == "Reshape":
        return {"target_shape": c.get("target_shape")}
    return {}  # Flatten, Add, Concatenate (axes are checked against the shapes by `check_axes`)


def taken_by_torch(name: str) -> bool:
    """A name the layers' ModuleDict already has (methods, and attributes such as `training`)."""
    return hasattr(nn.ModuleDict(), name)


def _spec_names(names: list[str]) -> dict[str, str]:
    """Keras names -> names convscope accepts: kept when valid and not 'input', else made so."""
    out: dict[str, str] = {}
    taken = {INPUT}
    for name in names:
        candidate = name if _NAME.match(name) and name != INPUT else re.sub(r"[^A-Za-z0-9_\-]", "_", name)
        candidate = candidate[:90]  # the spec allows 100 characters; room for a _layer or _N suffix
        if taken_by_torch(candidate):  # 'half', 'eval', 'training' ... would shadow a torch attribute
            candidate = f"{candidate}_layer"
        if not candidate or not re.match(r"[A-Za-z_]", candidate[0]):
            candidate = f"layer_{candidate}"
        base, n = candidate, 1
        while candidate in taken or taken_by_torch(candidate):
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
    keras_names = [layer_name(l) for l, _inputs in graph]
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
        layers.append(KerasLayer(name, layer["class_name"], rename[name], _config(layer), index))
    spec = parse_spec(
        {
            "name": body.get("name") or "keras-model",
            "layers": entries,
            "input_shape": list(shape),
            "output": entries[-1]["name"],
        },
        source=source,
    )
    num_classes = _classes(entries, layers, source)
    try:  # every argument's type and range, and every shape, worked out without allocating a weight
        plan_network(spec, shape, num_classes)
    except UserError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
    return KerasModel(
        source,
        container,
        version,
        model_class,
        spec,
        shape,
        num_classes,
        tuple(layers),
        tuple(l["class_name"] for l in saved),
    )


def _classes(entries: list[dict[str, Any]], layers: list[KerasLayer], source: str) -> int:
    """The number of classes: the units of the Dense the output comes from through shape-keeping layers."""
    by_name = {e["name"]: e for e in entries}
    entry = entries[-1]
    while (
        entry["type"] in ("Activation", "Dropout", "BatchNormalization", "Rescaling") and entry["inputs"][0] in by_name
    ):
        entry = by_name[entry["inputs"][0]]
    if entry["type"] != "Dense":
        raise UserError(
            _(
                "{source}: the output comes from layer '{name}' ({kind}); convscope imports "
                "classifiers whose output is a Dense layer (softmax, or no activation for logits)."
            ).format(source=source, name=entry["name"], kind=entry["type"])
        )
    units = entry["units"]
    if not _is_size(units):
        keras = next(l for l in layers if l.spec_name == entry["name"])
        raise UserError(
            _("{source}: layer {name} (Dense) has units={value}; it must be a positive integer.").format(
                source=source, name=quote(keras.name), value=quote(units)
            )
        )
    return int(units)


def check_params(model: KerasModel) -> None:
    """Refuse a model over `CONVSCOPE_MAX_PARAMS` weights before any of them is allocated or read."""
    try:
        check_network_params(plan_network(model.spec, model.input_shape, model.num_classes))
    except UserError as exc:
        raise UserError(f"{model.source}: {exc}") from None


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
        if isinstance(axis, bool) or not isinstance(axis, int) or axis not in (-1, rank - 1):
            raise UserError(
                _(
                    "{source}: layer '{name}' ({kind}) works on axis {axis}; convscope only has the "
                    "channel (last) axis."
                ).format(
                    source=model.source,
                    name=by_spec[layer.name].name,
                    kind=by_spec[layer.name].class_name,
                    axis=quote(axis),
                )
            )


def weights_file(path: str | Path, model: KerasModel) -> io.BytesIO | Path:
    """Where a model file's weights are: the HDF5 inside a .keras archive (read into memory) or the .h5 itself.

    The archive member may take what the model's weights and an optimizer's state need (Keras saves
    Adam's two moments beside the weights) plus room for names; more is refused before it is inflated."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        params = sum(
            l.trainable + l.non_trainable for l in plan_network(model.spec, model.input_shape, model.num_classes).info
        )
        limit = min(limits().max_bytes, WEIGHTS_SLACK + 16 * params)
        with open_zip(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise UserError(
                    _("{path} has no model.weights.h5: it holds an architecture without weights.").format(path=path)
                )
            return io.BytesIO(read_member(archive, "model.weights.h5", limit, path))
    return path

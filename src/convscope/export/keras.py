"""`export(trained, path, "keras")`: a convscope run -> a Keras 3 `.keras` file, written without Keras or TensorFlow.

The archive is what `model.save("x.keras")` writes: `config.json` (a Functional model),
`model.weights.h5` and `metadata.json`, zipped. The model takes raw pixels: the run's min-max
scaling is its first layer, a `Rescaling(scale=1 / (MAX - MIN), offset=-MIN / (MAX - MIN))`, and it
ends in softmax, so `keras.saving.load_model(path).predict(pixels)` gives the run's probabilities
on any Keras backend. `metadata.json` carries the export contract (`contract.py`), the same as the
ONNX and TorchScript files carry.

Keras finds a layer's weights by position, not by name: `layers/<snake_case(class)>[_n]/vars/<i>`,
counted over `model.layers`, which a Functional model orders by depth from the output and, at equal
depth, by first visit of a depth-first walk from the output (`keras/src/ops/function.py`,
`map_graph`). `keras_layer_order` computes that order, and the config lists the layers in it, so
the two agree.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch import nn

from ..errors import UserError
from ..i18n import _
from ..interop.keras_config import LAYER_TYPES
from ..interop.keras_import import snake_case
from ..models.network import Network
from ..models.spec import INPUT, LayerSpec
from ..training.trained_model import TrainedModel
from .contract import contract
from .files import write_file_atomically

INPUT_LAYER, SCALING_LAYER = "image", "scaling"
# convscope type -> Keras class: the import table turned round, each type to the first (canonical) Keras name
KERAS_CLASSES: dict[str, str] = {}
for _keras, _ours in LAYER_TYPES.items():
    KERAS_CLASSES.setdefault(_ours, _keras)
_KERAS_ACTIVATION = {None: "linear", "swish": "silu"}
# One Keras layer: (name, class, config, input names, output shape (H, W, C) or (n,), its variables)
_Node = tuple[str, str, dict[str, Any], list[str], tuple, list[np.ndarray]]


def write_keras(trained: TrainedModel, out: Path) -> None:
    """Write `trained` as a Keras 3 `.keras` archive at `out` (not a directory: `export` checked), atomically."""
    if out.suffix != ".keras":
        raise UserError(_("{out}: Keras 3 only loads archives whose name ends in .keras.").format(out=out))
    network = trained.model
    if not isinstance(network, Network):
        raise UserError(_("only runs built from a preset or spec can be exported to Keras."))
    config, weights = keras_model(network, trained)
    archive = _archive(config, weights, contract(trained, "keras"))
    write_file_atomically(out, lambda path: path.write_bytes(archive))  # the umask's mode, as the ONNX file


def keras_model(network: Network, trained: TrainedModel) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """(config.json, each layer's variables in model.layers order) of the Keras model."""
    spec = network.spec
    refuse = [l for l in spec.layers if l.type not in KERAS_CLASSES]
    if refuse:
        l = refuse[0]
        raise UserError(
            _("layer '{name}' ({type}) has no Keras equivalent; the Keras export handles {supported}.").format(
                name=l.name, type=l.type, supported=", ".join(KERAS_CLASSES)
            )
        )
    shapes = {INPUT: tuple(network.input_shape), **{i.name: i.output_shape for i in network.info}}
    names = _keras_names(spec.layers)
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    nodes: list[_Node] = [
        (
            INPUT_LAYER,
            "InputLayer",
            {"batch_shape": [None, *shapes[INPUT]], "dtype": "float32", "sparse": False, "name": INPUT_LAYER},
            [],
            shapes[INPUT],
            [],
        ),
        (
            SCALING_LAYER,
            "Rescaling",
            {"scale": 1.0 / (hi - lo), "offset": -lo / (hi - lo)},
            [INPUT_LAYER],
            shapes[INPUT],
            [],
        ),
    ]
    names[INPUT] = SCALING_LAYER
    for layer in spec.layers:
        nodes += _layer_nodes(layer, network.blocks[layer.name], names, shapes, network.num_classes)
    output = names[spec.output]
    if _output_activation(nodes, output) != "softmax":  # convscope applies softmax to the output itself
        nodes.append((f"{output}_softmax", "Activation", {"activation": "softmax"}, [output], nodes[-1][4], []))
        output = nodes[-1][0]
    by_name = {n[0]: n for n in nodes}
    order = keras_layer_order({n[0]: n[3] for n in nodes}, output)
    layers = []
    for name in order:
        _name, cls, cfg, inputs, shape, _variables = by_name[name]
        tensors = [
            {
                "class_name": "__keras_tensor__",
                "config": {"shape": [None, *by_name[i][4]], "dtype": "float32", "keras_history": [i, 0, 0]},
            }
            for i in inputs
        ]
        args = [] if not tensors else ([tensors] if cls in ("Add", "Concatenate") else tensors)
        entry: dict[str, Any] = {
            "module": "keras.layers",
            "class_name": cls,
            "config": {"name": name, "trainable": True, "dtype": "float32", **cfg} if cls != "InputLayer" else cfg,
            "registered_name": None,
            "name": name,
            "inbound_nodes": [{"args": args, "kwargs": {}}] if tensors else [],
        }
        if tensors:
            in_shapes = [[None, *by_name[i][4]] for i in inputs]
            entry["build_config"] = {"input_shape": in_shapes if cls in ("Add", "Concatenate") else in_shapes[0]}
        layers.append(entry)
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "config": {
            "name": spec.name.replace("-", "_"),
            "trainable": True,
            "layers": layers,
            "input_layers": [INPUT_LAYER, 0, 0],
            "output_layers": [output, 0, 0],
        },
        "build_config": {"input_shape": None},
        "compile_config": None,
    }
    return config, [by_name[name][5] for name in order]


def _keras_names(layers: tuple[LayerSpec, ...]) -> dict[str, str]:
    """Spec names as Keras layer names (Keras wants them unique and free of '/'; ours already are)."""
    taken = {INPUT_LAYER, SCALING_LAYER}
    out = {}
    for layer in layers:
        name, n = layer.name, 1
        while name in taken:
            name, n = f"{layer.name}_{n}", n + 1
        taken.add(name)
        out[layer.name] = name
    return out


def _activation(value: Any) -> str:
    return _KERAS_ACTIVATION.get(value, value)


def _output_activation(nodes: list[_Node], output: str) -> str | None:
    node = next(n for n in nodes if n[0] == output)
    return node[2].get("activation") if node[1] in ("Dense", "Conv2D", "Activation") else None


def _parametrised(block: nn.Module, kind: type) -> Any:  # nn.Conv2d, nn.Linear or a BatchNorm
    return next(m for m in block.modules() if isinstance(m, kind))


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def _layer_nodes(
    layer: LayerSpec, block: nn.Module, names: dict[str, str], shapes: dict, num_classes: int
) -> list[_Node]:
    """The Keras layer(s) for one convscope layer: (name, class, config, inputs, output shape, variables)."""
    a = dict(layer.args)
    name, inputs, shape = names[layer.name], [names[i] for i in layer.inputs], shapes[layer.name]
    kind = layer.type

    def pair(key: str, default: Any) -> list[int]:
        value = a.get(key, default)
        return [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]

    if kind == "Conv2D":
        conv = _parametrised(block, nn.Conv2d)
        variables = [np.transpose(_numpy(conv.weight), (2, 3, 1, 0))]
        if conv.bias is not None:
            variables.append(_numpy(conv.bias))
        padding = a.get("padding", "valid")
        nodes: list[_Node] = []
        if isinstance(padding, int):  # Keras' Conv2D has no numeric padding: zeros first, then 'valid'
            pad_shape = shapes[layer.inputs[0]]
            pad_shape = (pad_shape[0] + 2 * padding, pad_shape[1] + 2 * padding, pad_shape[2])
            nodes.append(
                (
                    f"{name}_padding",
                    "ZeroPadding2D",
                    {"padding": [[padding, padding], [padding, padding]], "data_format": "channels_last"},
                    inputs,
                    pad_shape,
                    [],
                )
            )
            inputs, padding = [f"{name}_padding"], "valid"
        config = {
            "filters": int(a["filters"]),
            "kernel_size": pair("kernel_size", None),
            "strides": pair("strides", 1),
            "padding": padding,
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": _activation(a.get("activation")),
            "use_bias": conv.bias is not None,
        }
        return [*nodes, (name, "Conv2D", config, inputs, shape, variables)]
    if kind in ("MaxPool2D", "AveragePooling2D"):
        padding = a.get("padding", "valid")
        if isinstance(padding, int):
            raise UserError(
                _(
                    "layer '{name}' ({kind}) pads by {padding} pixels, which Keras' pooling layers cannot do (they know 'valid' and 'same')."
                ).format(name=layer.name, kind=kind, padding=padding)
            )
        size = pair("pool_size", 2)
        config = {
            "pool_size": size,
            "strides": pair("strides", size) if a.get("strides") is not None else size,
            "padding": padding,
            "data_format": "channels_last",
        }
        return [(name, KERAS_CLASSES[kind], config, inputs, shape, [])]
    if kind == "Dense":
        linear = _parametrised(block, nn.Linear)
        variables = [_numpy(linear.weight).T.copy()]
        if linear.bias is not None:
            variables.append(_numpy(linear.bias))
        config = {
            "units": int(linear.out_features),
            "activation": _activation(a.get("activation")),
            "use_bias": linear.bias is not None,
        }
        return [(name, "Dense", config, inputs, shape, variables)]
    if kind == "BatchNormalization":
        bn = _parametrised(block, nn.modules.batchnorm._BatchNorm)
        variables = [_numpy(bn.weight), _numpy(bn.bias), _numpy(bn.running_mean), _numpy(bn.running_var)]
        config = {
            "axis": -1,
            "momentum": float(a.get("momentum", 0.99)),
            "epsilon": float(bn.eps),
            "center": True,
            "scale": True,
        }
        return [(name, "BatchNormalization", config, inputs, shape, variables)]
    configs: dict[str, Callable[[], dict[str, Any]]] = {
        "GlobalAveragePooling2D": lambda: {"data_format": "channels_last", "keepdims": False},
        "Flatten": lambda: {"data_format": "channels_last"},
        "Dropout": lambda: {"rate": float(a["rate"])},
        "Activation": lambda: {"activation": _activation(a.get("activation"))},
        "Add": dict,
        "Concatenate": lambda: {"axis": -1},
        "Rescaling": lambda: {"scale": a.get("scale", 1.0), "offset": a.get("offset", 0.0)},
        "Reshape": lambda: {"target_shape": list(shape)},
    }
    return [(name, KERAS_CLASSES[kind], configs[kind](), inputs, shape, [])]


def keras_layer_order(inputs: dict[str, list[str]], output: str) -> list[str]:
    """model.layers of the Keras Functional model with this graph: by depth from the output (deepest
    first), ties broken by the first visit of a depth-first walk from the output through each
    layer's inputs in argument order."""
    visit_index: dict[str, int] = {}
    post_order: list[str] = []

    def walk(name: str) -> None:
        if name in visit_index:
            return
        visit_index[name] = len(visit_index)
        for parent in inputs[name]:
            walk(parent)
        post_order.append(name)

    walk(output)
    depth: dict[str, int] = {}
    for name in reversed(post_order):  # consumers before producers
        depth.setdefault(name, 0)
        for parent in inputs[name]:
            depth[parent] = max(depth.get(parent, 0), depth[name] + 1)
    return sorted(post_order, key=lambda n: (-depth[n], visit_index[n]))


def _archive(config: dict[str, Any], variables: list[list[np.ndarray]], terms: dict[str, Any]) -> bytes:
    weights = io.BytesIO()
    classes = [layer["class_name"] for layer in config["config"]["layers"]]
    with h5py.File(weights, "w") as f:
        used: dict[str, int] = {}
        for layer, cls, values in zip(config["config"]["layers"], classes, variables):
            base = snake_case(cls)
            used[base] = used.get(base, -1) + 1
            path = base if used[base] == 0 else f"{base}_{used[base]}"
            group = f.create_group(f"layers/{path}/vars")
            group.attrs["name"] = layer["name"]
            for i, value in enumerate(values):
                group.create_dataset(str(i), data=np.asarray(value, dtype=np.float32))
        f.create_group("vars").attrs["name"] = config["config"]["name"]
    metadata = {"keras_version": "3.0.0", "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"), "convscope": terms}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())
    return out.getvalue()

"""`import_keras`: a Keras model file -> a convscope run directory, without TensorFlow or Keras.

The architecture comes from `keras_config`; the weights are read here with h5py from either
layout Keras writes:
- `.keras`: model.weights.h5 inside the archive, `layers/<path>/vars/0, 1, ...` in the order the
  layer created them. Keras names each path after the layer's class (`conv2d`, `conv2d_1`, ...,
  counted over `model.layers`), and Keras >= 3.x also stores the layer's own name as an attribute;
  that name is used when present, the class-name path otherwise.
- legacy `.h5`: `model_weights/<layer name>`, whose attribute `weight_names` lists the datasets
  (`conv2d/kernel:0` from tf.keras 2.x, `sequential/conv2d/kernel` from Keras 3).

Layouts differ from PyTorch's, and are converted once here:
- Conv2D kernels are (kh, kw, in, out) in Keras and (out, in, kh, kw) in torch;
- Dense kernels are (in, out) in Keras and (out, in) in torch. convscope's Flatten already
  flattens in Keras' (H, W, C) order (`models/layers.KerasFlatten`), so the Dense after a Flatten
  takes Keras' rows unpermuted;
- BatchNormalization: gamma, beta, moving mean and variance; absent gamma/beta (scale/center
  False) are ones/zeros, which is what Keras computes with.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..checks import cut, quote
from ..data import load
from ..data.dataset import Dataset
from ..data.raw import parse_class_names
from ..data.scaling import MinMaxScaler
from ..errors import UserError
from ..evaluation.evaluate import EvaluationResult, evaluate
from ..i18n import _
from ..models.network import Network
from ..models.spec import INPUT
from ..training.trained_model import TrainedModel
from .containers import child, names, open_hdf5, read_array, text_attr, text_list_attr
from .keras_config import (
    LAYER_TYPES,
    KerasLayer,
    KerasModel,
    check_axes,
    check_params,
    parse_keras_config,
    read_architecture,
    weights_file,
)

# What each weighted layer stores, in the order Keras creates the variables.
_VARIABLES = {
    "Conv2D": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


@dataclass
class ImportResult:
    trained: TrainedModel
    keras: KerasModel
    evaluation: EvaluationResult | None
    path: Path | None


def parse_scale(text: str) -> tuple[float, float] | str:
    """`--scale 0,255` -> (0.0, 255.0); `--scale none` -> 'none'."""
    if text.strip().lower() == "none":
        return "none"
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(_("--scale must be MIN,MAX (e.g. 0,255) or none, got {text!r}.").format(text=text)) from None
    return lo, hi


def scaler_for(scale: tuple[float, float] | str | None, model: KerasModel, double_scale: bool = False) -> MinMaxScaler:
    """The run's scaling: (x - MIN) / (MAX - MIN), or pixels as they are. A MIN,MAX for a model that starts
    with a Rescaling layer would scale every input twice: refused unless `double_scale` says it is meant."""
    first = model.spec.layers[0]
    if first.type == "Rescaling" and isinstance(scale, (tuple, list)) and not double_scale:
        raise UserError(
            _(
                "{source}: the model starts with a Rescaling layer ({layer}: x * {factor} + {offset}), so --scale "
                "{low:g},{high:g} would scale its inputs twice; leave --scale out (or give --scale none), or add "
                "--double-scale if the model really was trained on inputs scaled both ways."
            ).format(
                source=model.source,
                layer=first.name,
                factor=first.args.get("scale", 1.0),
                offset=first.args.get("offset", 0.0),
                low=float(scale[0]),
                high=float(scale[1]),
            )
        )
    if scale is None:
        if first.type != "Rescaling":
            raise UserError(
                _(
                    "{source}: say how the model's inputs were scaled: --scale MIN,MAX for (x - MIN) / (MAX - MIN), as the course does with the training set's minimum and maximum (0,255 for notMNIST), or --scale none if the model takes pixels as they are."
                ).format(source=model.source)
            )
        scale = "none"  # the model scales its inputs itself
    if scale == "none":
        return MinMaxScaler(0.0, 1.0)
    if isinstance(scale, str):
        return scaler_for(parse_scale(scale), model, double_scale)
    lo, hi = (float(v) for v in scale)
    if not hi > lo:
        raise UserError(_("--scale MIN,MAX needs MAX > MIN, got {lo:g},{hi:g}.").format(lo=lo, hi=hi))
    return MinMaxScaler(lo, hi)


def keras_network(model: KerasModel, path: str | Path) -> Network:
    """The convscope network of `model` with the weights of the Keras file at `path`.

    The parameter limit is applied before the network is allocated, and every weight's declared shape
    is checked against the network before it is read."""
    check_params(model)
    network = Network(model.spec, model.input_shape, model.num_classes)
    check_axes(model, {INPUT: model.input_shape, **{l.name: l.output_shape for l in network.info}})
    weights = read_keras_weights(path, model, _expected_shapes(network, model))
    with torch.no_grad():
        for layer in model.layers:
            kind = network_type(layer)
            if kind in _VARIABLES:
                _assign(network.blocks[layer.spec_name], kind, weights.get(layer.name, {}), layer, model.source)
    return network.eval()


def network_type(layer: KerasLayer) -> str:
    return LAYER_TYPES[layer.class_name]


# {Keras layer name: {variable: the shape Keras stores it in}}
Shapes = dict[str, dict[str, tuple[int, ...]]]


def _expected_shapes(network: Network, model: KerasModel) -> Shapes:
    """The shape each variable has in a Keras file, from the network the config describes."""
    out: Shapes = {}
    for layer in model.layers:
        kind = network_type(layer)
        if kind not in _VARIABLES:
            continue
        module = _parametrised(network.blocks[layer.spec_name], kind)
        if kind == "Conv2D":
            o, i, kh, kw = module.weight.shape
            shapes = {"kernel": (kh, kw, i, o), "bias": (o,)}
        elif kind == "Dense":
            o, i = module.weight.shape
            shapes = {"kernel": (i, o), "bias": (o,)}
        else:
            shapes = {role: (module.num_features,) for role in _VARIABLES[kind]}
        out[layer.name] = {role: tuple(int(s) for s in shapes[role]) for role in _roles(layer)}
    return out


def read_keras_weights(path: str | Path, model: KerasModel, shapes: Shapes) -> dict[str, dict[str, np.ndarray]]:
    """{Keras layer name: {variable: array}} for the layers that have weights, each checked before it is read."""
    source = weights_file(path, model)
    where = f"{path}: model.weights.h5" if model.container == "keras" else str(path)
    with open_hdf5(source, where) as f:
        if model.container == "keras":
            return _archive_weights(f, model, shapes, where)
        return _legacy_weights(f, model, shapes, where)


def _archive_weights(f: h5py.File, model: KerasModel, shapes: Shapes, where: str) -> dict[str, dict[str, np.ndarray]]:
    groups = child(f, "layers", where)
    if not isinstance(groups, h5py.Group):
        raise UserError(
            _("{source}: model.weights.h5 has no 'layers' group; it was not written by Keras 3.").format(
                source=model.source
            )
        )
    by_attr: dict[str, h5py.Group] = {}
    for key in names(groups, where):
        variables = child(groups, f"{key}/vars", where)
        if isinstance(variables, h5py.Group):
            name = text_attr(variables, "name", where, limit=4096)
            if name is not None:
                by_attr[name] = variables
    paths = _saved_names(model.saved_order)
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in model.layers:
        roles = _roles(layer)
        if not roles:
            continue
        group = by_attr.get(layer.name)
        if group is None:  # files without the name attribute: the path Keras derives from the class
            key = paths[layer.saved_index]
            found = child(groups, f"{key}/vars", where)
            if not isinstance(found, h5py.Group):
                raise UserError(
                    _(
                        "{source}: no weights for layer '{name}' ({kind}) in model.weights.h5 (looked for layers/{key}/vars)."
                    ).format(source=model.source, name=layer.name, kind=layer.class_name, key=key)
                )
            group = found
        stored = names(group, where)
        if sorted(stored, key=lambda n: (len(n), n)) != [str(i) for i in range(len(stored))]:
            raise UserError(
                _(
                    "{source}: layer '{name}' ({kind}) stores variables named {stored}; Keras numbers them 0, 1, ... without gaps."
                ).format(source=model.source, name=layer.name, kind=layer.class_name, stored=quote(sorted(stored)))
            )
        if len(stored) != len(roles):
            raise UserError(
                _("{source}: layer '{name}' ({kind}) stores {count} variables, expected {expected} ({roles}).").format(
                    source=model.source,
                    name=layer.name,
                    kind=layer.class_name,
                    count=len(stored),
                    expected=len(roles),
                    roles=", ".join(roles),
                )
            )
        out[layer.name] = {
            role: _read(child(group, str(i), where), layer, role, shapes, model.source) for i, role in enumerate(roles)
        }
    return out


def _read(dataset: Any, layer: KerasLayer, role: str, shapes: Shapes, source: str) -> np.ndarray:
    """One variable: its declared shape checked against the config, then read, then checked to be finite."""
    what = _("{source}: layer '{name}' ({kind}) {role}").format(
        source=source, name=layer.name, kind=layer.class_name, role=role
    )
    expected = shapes[layer.name][role]
    if isinstance(dataset, h5py.Dataset) and dataset.shape is not None and tuple(dataset.shape) != expected:
        raise UserError(
            _("{what} has shape {shape}, which does not fit its config (expected {expected}).").format(
                what=what, shape=tuple(dataset.shape), expected=expected
            )
        )
    values = read_array(dataset, what, int(np.prod(expected)))
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise UserError(
            _(
                "{what} holds {count:,} values that are not finite (NaN or infinity); the model cannot predict with them."
            ).format(what=what, count=bad)
        )
    return values


def _saved_names(classes: tuple[str, ...]) -> list[str]:
    """Keras' weight paths for a list of layer classes: snake_case of the class, _1, _2 ... on repeats."""
    used: dict[str, int] = {}
    names = []
    for cls in classes:
        base = snake_case(cls)
        if base in used:
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def snake_case(name: str) -> str:
    """Keras' own naming rule: Conv2D -> conv2d, BatchNormalization -> batch_normalization."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _roles(layer: KerasLayer) -> tuple[str, ...]:
    kind = network_type(layer)
    c = layer.config
    if kind in ("Conv2D", "Dense"):
        return ("kernel", "bias") if c.get("use_bias", True) else ("kernel",)
    if kind == "BatchNormalization":
        return tuple(
            r
            for r, keep in (
                ("gamma", c.get("scale", True)),
                ("beta", c.get("center", True)),
                ("moving_mean", True),
                ("moving_variance", True),
            )
            if keep
        )
    return ()


def _legacy_weights(f: h5py.File, model: KerasModel, shapes: Shapes, where: str) -> dict[str, dict[str, np.ndarray]]:
    root = child(f, "model_weights", where)
    root = root if isinstance(root, h5py.Group) else f
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in model.layers:
        roles = _roles(layer)
        if not roles:
            continue
        group = child(root, layer.name, where)
        if not isinstance(group, h5py.Group):
            raise UserError(
                _("{source}: no weights for layer '{name}' ({kind}) under model_weights.").format(
                    source=model.source, name=layer.name, kind=layer.class_name
                )
            )
        stored = text_list_attr(group, "weight_names", where) or []
        found = {re.sub(r":\d+$", "", n.rsplit("/", 1)[-1]): n for n in stored}
        missing = [r for r in roles if r not in found]
        if missing:
            raise UserError(
                _("{source}: layer '{name}' ({kind}) has no {missing} among its weights ({stored}).").format(
                    source=model.source,
                    name=layer.name,
                    kind=layer.class_name,
                    missing=", ".join(missing),
                    stored=cut(", ".join(stored), 200) or _("none"),
                )
            )
        out[layer.name] = {r: _read(child(group, found[r], where), layer, r, shapes, model.source) for r in roles}
    return out


def _parametrised(block: nn.Module, kind: str) -> Any:  # nn.Conv2d, nn.Linear or a BatchNorm
    wanted = {"Conv2D": nn.Conv2d, "Dense": nn.Linear, "BatchNormalization": nn.modules.batchnorm._BatchNorm}[kind]
    return next(m for m in block.modules() if isinstance(m, wanted))


def _assign(block: nn.Module, kind: str, values: dict[str, np.ndarray], layer: KerasLayer, source: str) -> None:
    module = _parametrised(block, kind)

    def put(target: torch.Tensor, value: np.ndarray, what: str) -> None:
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if tuple(tensor.shape) != tuple(target.shape):
            raise UserError(
                _(
                    "{source}: layer '{name}' ({class_name}) has {what} of shape {shape}, which does not fit its config (expected {expected} after conversion)."
                ).format(
                    source=source,
                    name=layer.name,
                    class_name=layer.class_name,
                    what=what,
                    shape=tuple(value.shape),
                    expected=tuple(target.shape),
                )
            )
        target.copy_(tensor)

    if kind == "Conv2D":
        put(module.weight, np.transpose(values["kernel"], (3, 2, 0, 1)), "kernel")
    elif kind == "Dense":
        put(module.weight, np.transpose(values["kernel"]), "kernel")
    if kind in ("Conv2D", "Dense") and "bias" in values:
        put(module.bias, values["bias"], "bias")
    if kind == "BatchNormalization":
        n = module.num_features
        put(module.weight, values.get("gamma", np.ones(n, np.float32)), "gamma")
        put(module.bias, values.get("beta", np.zeros(n, np.float32)), "beta")
        put(module.running_mean, values["moving_mean"], "moving_mean")
        put(module.running_var, values["moving_variance"], "moving_variance")


def _test_set(data: str, class_names: Any, layout: str | None, num_classes: int) -> Dataset:
    """The whole file as the test set: a file that ships its own split gives both halves."""
    dataset = load(data, class_names=class_names, layout=layout)
    if dataset.predefined_test is not None:
        test = dataset.predefined_test
        dataset = Dataset(
            np.concatenate([np.asarray(dataset.images), np.asarray(test.images)]),
            np.concatenate([dataset.labels, test.labels]),
            dataset.class_names,
            dataset.source,
        )
    if len(dataset.class_names) != num_classes:
        raise UserError(
            _(
                "{data}: has {count} classes but the model outputs {num_classes}; name all {num_classes} with --class-names."
            ).format(data=data, count=len(dataset.class_names), num_classes=num_classes)
        )
    return dataset


def import_keras(
    model_path: str | Path,
    out: str | Path | None = None,
    *,
    data: str | None = None,
    class_names: str | list[str] | None = None,
    scale: tuple[float, float] | str | None = None,
    layout: str | None = None,
    report: bool = True,
    double_scale: bool = False,
) -> ImportResult:
    """Read a Keras model (.keras, .h5) into a convscope run directory at `out`.

    `scale`: (MIN, MAX) when the model was trained on (x - MIN) / (MAX - MIN), 'none' when it takes
    pixels as they are; it may be left out only when the model starts with a Rescaling layer, and a MIN,MAX
    for such a model needs `double_scale=True` (the Rescaling layer already scales).
    `data`: a file whose every image becomes the run's test set: metrics.json, the test-set files
    and report.html, like a trained run. `out=None` builds the model without writing a run.
    """
    from ..runs import save_run

    config, container, version = read_architecture(model_path)
    model = parse_keras_config(config, str(model_path), container, version)
    network = keras_network(model, model_path)
    scaler = scaler_for(scale, model, double_scale)
    given = parse_class_names(class_names)
    if given is not None and len(given) != model.num_classes:
        raise UserError(
            _("--class-names gives {count} names but the model outputs {num_classes} classes.").format(
                count=len(given), num_classes=model.num_classes
            )
        )
    dataset = _test_set(data, given, layout, model.num_classes) if data is not None else None
    names = dataset.class_names if dataset is not None else (given or tuple(str(i) for i in range(model.num_classes)))
    trained = TrainedModel(network, scaler, tuple(names), model.input_shape, config={})
    evaluation = evaluate(trained, dataset) if dataset is not None else None
    if out is None:
        return ImportResult(trained, model, evaluation, None)

    run_config = {
        "imported": {
            "from": str(model_path),
            "format": model.description,
            "keras_version": version,
            "model_class": model.model_class,
        },
        "model": {"name": model.spec.name, "source": str(model_path)},
        "data": None
        if dataset is None
        else {
            "source": str(data),
            "class_names": list(names),
            "layout": layout,
            "input_shape": list(model.input_shape),
            "test_split": None,
            "whole_file_is_test_set": True,
            "test_size": len(dataset),
        },
        "scaling": {"minimum": scaler.minimum, "maximum": scaler.maximum},
        "versions": {"convscope": __version__, "torch": torch.__version__},
    }

    def keep_config(tmp: Path) -> None:  # the original architecture, for provenance
        (tmp / "keras_config.json").write_text(json.dumps(config, indent=1) + "\n")

    path = save_run(trained, out, evaluation, run_config, keep_config)
    if report and evaluation is not None:
        from ..presentation.report import write_report  # matplotlib loads only when a report is drawn

        write_report(path)
    return ImportResult(trained, model, evaluation, path)

"""Model specs in Keras vocabulary, from YAML, JSON or plain Python values.

Two shapes of spec, as in Keras:

Sequential, a plain list of layers (each either `{type: Conv2D, filters: 32, ...}` or the
compact `{Conv2D: {filters: 32, ...}}`):

    name: my-cnn
    layers:
      - Conv2D: {filters: 32, kernel_size: 3, padding: same, activation: relu}
      - MaxPool2D: {}
      - Flatten: {}
      - Dense: {units: num_classes, activation: softmax}

Functional, named layers that say which layers feed them (`input` is the image):

    layers:
      - {name: a, type: Conv2D, filters: 16, kernel_size: 3, padding: same, inputs: input}
      - {name: b, type: Conv2D, filters: 16, kernel_size: 3, padding: same, inputs: a}
      - {name: skip, type: Add, inputs: [a, b]}
    output: out

A layer without `inputs` takes the layer before it. `units: num_classes` is filled in from the data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ..errors import UserError
from .layers import BUILDERS, canonical_type

INPUT = "input"
KINDS = ("sequential", "functional")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    type: str  # canonical Keras class name, e.g. "Conv2D"
    args: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    layers: tuple[LayerSpec, ...]
    output: str
    input_shape: tuple[int, ...] | None = None  # from an Input layer, if the spec has one
    # How the spec was written: "functional" when it names its layers' inputs (Keras' Functional API,
    # even for a plain chain, as the course's Functional CNN is), else "sequential".
    kind: str = "sequential"

    def to_dict(self) -> dict[str, Any]:
        """The normalised, explicit form: what a run stores as its architecture."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        out["layers"] = [
            {"name": l.name, "type": l.type, **l.args, "inputs": list(l.inputs)} for l in self.layers
        ]
        out["output"] = self.output
        return out


def read_spec_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read model spec {path}: {exc.strerror}.") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" near line {where + (0 if isinstance(exc, json.JSONDecodeError) else 1)}" if where is not None else ""
        raise UserError(f"model spec {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}{at}.") from None


def parse_spec(raw: Any, name: str = "model", source: str = "spec") -> ModelSpec:
    """Validate and normalise a spec: canonical types, unique names, explicit inputs."""
    if isinstance(raw, list):
        raw = {"layers": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("layers"), list) or not raw["layers"]:
        raise UserError(f"{source}: a model spec needs a non-empty 'layers' list.")
    unknown_top = set(raw) - {"name", "kind", "layers", "output", "input_shape"}
    if unknown_top:
        raise UserError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; expected name, layers, output.")
    if raw.get("kind", "sequential") not in KINDS:
        raise UserError(f"{source}: kind must be {' or '.join(KINDS)}, got {str(raw['kind'])[:40]!r}.")
    functional = "output" in raw  # or any layer that names its inputs, below

    layers: list[LayerSpec] = []
    input_shape = tuple(raw["input_shape"]) if raw.get("input_shape") else None
    counters: dict[str, int] = {}
    previous = INPUT
    for position, item in enumerate(raw["layers"], start=1):
        kind, args = _split_layer(item, position, source)
        if kind == "Input":
            shape = args.get("shape")
            if not (isinstance(shape, (list, tuple)) and len(shape) in (1, 3)):
                raise UserError(f"{source}: layer {position} (Input) needs shape [H, W, C], got {shape!r}.")
            input_shape = tuple(int(s) for s in shape)
            if args.get("name", INPUT) != INPUT:
                raise UserError(f"{source}: the Input layer is always called '{INPUT}'.")
            continue
        layer_name = args.pop("name", None) or _auto_name(kind, counters)
        if not _NAME.match(str(layer_name)):
            raise UserError(f"{source}: layer {position} has an invalid name {layer_name!r} (letters, digits, _ and -).")
        if hasattr(nn.ModuleDict, str(layer_name)):  # the layers live in a ModuleDict, whose methods they would hide
            raise UserError(f"{source}: layer {position} cannot be called {layer_name!r}, the name of a torch method; "
                            "choose another name.")
        inputs = args.pop("inputs", None)
        functional = functional or inputs is not None
        inputs = (previous,) if inputs is None else (tuple(inputs) if isinstance(inputs, list) else (inputs,))
        layers.append(LayerSpec(str(layer_name), kind, args, tuple(str(i) for i in inputs)))
        previous = str(layer_name)

    _check_graph(layers, source)
    output = str(raw.get("output", layers[-1].name))
    if output not in {l.name for l in layers}:
        raise UserError(f"{source}: output {output!r} is not the name of a layer.")
    kind = str(raw.get("kind") or ("functional" if functional else "sequential"))
    return ModelSpec(str(raw.get("name", name)), tuple(layers), output, input_shape, kind)


def _split_layer(item: Any, position: int, source: str) -> tuple[str, dict[str, Any]]:
    if isinstance(item, dict) and "type" in item:
        args = dict(item)
        kind = args.pop("type")
    elif isinstance(item, dict) and len(item) == 1:
        ((kind, args),) = item.items()
        args = dict(args or {})
    else:
        raise UserError(f"{source}: layer {position} must be {{type: Conv2D, ...}} or {{Conv2D: {{...}}}}, got {item!r}.")
    canonical = "Input" if str(kind).lower() in ("input", "inputlayer") else canonical_type(kind)
    if canonical is None:
        known = ", ".join(["Input", *BUILDERS])
        raise UserError(f"{source}: layer {position} has unknown type {kind!r}; known types: {known}.")
    return canonical, args


def _auto_name(kind: str, counters: dict[str, int]) -> str:
    base = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", kind).lower().replace("2_d", "2d")  # Keras-style conv2d, dense_1
    n = counters.get(base, 0)
    counters[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _check_graph(layers: list[LayerSpec], source: str) -> None:
    seen = {INPUT}
    for layer in layers:
        if layer.name in seen:
            raise UserError(f"{source}: two layers are called '{layer.name}'.")
        for parent in layer.inputs:
            if parent not in seen:
                raise UserError(
                    f"{source}: layer '{layer.name}' takes input '{parent}', which is not defined before it."
                )
        seen.add(layer.name)

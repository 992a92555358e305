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
      - {name: pool, type: GlobalAveragePooling2D, inputs: skip}
      - {name: out, type: Dense, units: num_classes, activation: softmax, inputs: pool}
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

from ..checks import limits, quote
from ..errors import UserError
from ..i18n import _
from .layers import BUILDERS, canonical_type

INPUT = "input"
KINDS = ("sequential", "functional")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")
_MODEL_NAME = re.compile(r"^(?!\.\.?$)[^/\\\x00]{1,100}$")  # part of a run directory's name: no path, not huge


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
        out["layers"] = [{"name": l.name, "type": l.type, **l.args, "inputs": list(l.inputs)} for l in self.layers]
        out["output"] = self.output
        return out


MAX_SPEC_FILE_BYTES = 1 << 20  # a spec is a few hundred bytes; a megabyte is a wrong file
MAX_DEPTH = 16  # nesting of a spec: layers -> layer -> argument -> pair is 4
MAX_INT = 2**31 - 1  # sizes, counts and pads: larger ones are typos (and overflow torch's int32 paths)
_SEQUENCES = (list, tuple)
# An instance, not the class: `training` and the other attributes set in __init__ are taken too.
_MODULE_DICT = nn.ModuleDict()


def read_spec_file(path: str | Path) -> Any:
    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_FILE_BYTES:
            raise UserError(
                _("model spec {path} is {size:,} bytes; a spec is at most {limit:,}.").format(
                    path=path, size=size, limit=MAX_SPEC_FILE_BYTES
                )
            )
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(
            _("cannot read model spec {path}: {strerror}.").format(path=path, strerror=exc.strerror)
        ) from None
    except UnicodeDecodeError as exc:
        raise UserError(
            _("model spec {path} is not UTF-8 text (byte {start} cannot be decoded).").format(
                path=path, start=exc.start
            )
        ) from None
    try:
        value = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", None)
        if where is None:
            raise UserError(_("model spec {path} is not valid {kind}.").format(path=path, kind=kind)) from None
        line = where + (0 if isinstance(exc, json.JSONDecodeError) else 1)
        raise UserError(
            _("model spec {path} is not valid {kind} near line {line}.").format(path=path, kind=kind, line=line)
        ) from None
    except RecursionError:
        raise UserError(
            _(
                "model spec {path} nests deeper than {kind} can be read; a spec nests {max_depth} levels at most."
            ).format(path=path, kind=kind, max_depth=MAX_DEPTH)
        ) from None
    check_spec_size(value, str(path))
    return value


def check_spec_size(raw: Any, source: str) -> None:
    """Count a spec's values with aliases expanded, stopping at the limit: a YAML alias bomb
    (a few lines that expand to billions of values) is refused before anything walks it."""
    limit = limits().max_spec_values
    stack = [(raw, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > limit:
            raise UserError(
                _(
                    "{source}: the spec holds more than {limit:,} values (YAML aliases expanded); raise CONVSCOPE_MAX_SPEC_VALUES if it really is that large."
                ).format(source=source, limit=limit)
            )
        if depth > MAX_DEPTH:
            raise UserError(
                _("{source}: the spec nests more than {max_depth} levels deep.").format(
                    source=source, max_depth=MAX_DEPTH
                )
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, _SEQUENCES):
            stack.extend((v, depth + 1) for v in value)


def parse_spec(raw: Any, name: str = "model", source: str = "spec") -> ModelSpec:
    """Validate and normalise a spec: canonical types, unique names, explicit inputs."""
    check_spec_size(raw, source)
    if isinstance(raw, list):
        raw = {"layers": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("layers"), list) or not raw["layers"]:
        raise UserError(_("{source}: a model spec needs a non-empty 'layers' list.").format(source=source))
    unknown_top = sorted(quote(k, 40) for k in raw if k not in ("name", "kind", "layers", "output", "input_shape"))
    if unknown_top:
        raise UserError(
            _("{source}: unknown top-level key(s) {unknown_top}; expected name, layers, output.").format(
                source=source, unknown_top=", ".join(unknown_top)
            )
        )
    if "name" in raw and not (isinstance(raw["name"], str) and _MODEL_NAME.match(raw["name"])):
        raise UserError(
            _("{source}: 'name' must be up to 100 characters without / or \\, got {value}.").format(
                source=source, value=quote(raw["name"])
            )
        )
    if "output" in raw and not isinstance(raw["output"], str):
        raise UserError(
            _("{source}: 'output' must be the name of a layer, got {value}.").format(
                source=source, value=quote(raw["output"])
            )
        )
    if raw.get("kind", "sequential") not in KINDS:
        raise UserError(
            _("{source}: kind must be {kinds}, got {value!r}.").format(
                source=source, kinds=" or ".join(KINDS), value=str(raw["kind"])[:40]
            )
        )
    functional = "output" in raw  # or any layer that names its inputs, below

    layers: list[LayerSpec] = []
    input_shape = _shape(raw["input_shape"], f"{source}: 'input_shape'") if raw.get("input_shape") is not None else None
    counters: dict[str, int] = {}
    previous = INPUT
    for position, item in enumerate(raw["layers"], start=1):
        kind, args = _split_layer(item, position, source)
        if kind == "Input":
            input_shape = _shape(
                args.get("shape"),
                _("{source}: layer {position} (Input) 'shape'").format(source=source, position=position),
            )
            if args.get("name", INPUT) != INPUT:
                raise UserError(
                    _("{source}: the Input layer is always called '{input}'.").format(source=source, input=INPUT)
                )
            continue
        _check_args(args, _("{source}: layer {position} ({kind})").format(source=source, position=position, kind=kind))
        layer_name = args.pop("name", None) or _auto_name(kind, counters)
        if not _NAME.match(str(layer_name)):
            raise UserError(
                _("{source}: layer {position} has an invalid name {layer_name} (letters, digits, _ and -).").format(
                    source=source, position=position, layer_name=quote(layer_name)
                )
            )
        if hasattr(_MODULE_DICT, str(layer_name)):  # the layers live in a ModuleDict, whose attributes they would hide
            raise UserError(
                _(
                    "{source}: layer {position} cannot be called {layer_name!r}, the name of a torch method; choose another name."
                ).format(source=source, position=position, layer_name=layer_name)
            )
        inputs = args.pop("inputs", None)
        functional = functional or inputs is not None
        inputs = (previous,) if inputs is None else (tuple(inputs) if isinstance(inputs, list) else (inputs,))
        layers.append(LayerSpec(str(layer_name), kind, args, tuple(str(i) for i in inputs)))
        previous = str(layer_name)

    _check_graph(layers, source)
    output = str(raw.get("output", layers[-1].name))
    if output not in {l.name for l in layers}:
        raise UserError(
            _("{source}: output {output} is not the name of a layer.").format(source=source, output=quote(output))
        )
    kind = str(raw.get("kind") or ("functional" if functional else "sequential"))
    return ModelSpec(str(raw.get("name", name)), tuple(layers), output, input_shape, kind)


def _split_layer(item: Any, position: int, source: str) -> tuple[str, dict[str, Any]]:
    if isinstance(item, dict) and "type" in item:
        args = dict(item)
        kind = args.pop("type")
    elif isinstance(item, dict) and len(item) == 1:
        ((kind, args),) = item.items()
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise UserError(
                _(
                    "{source}: layer {position} ({kind}) needs a mapping of arguments like {{filters: 32}} (or {{}}), got {value}."
                ).format(source=source, position=position, kind=quote(kind, 30), value=quote(args))
            )
        args = dict(args)
    else:
        raise UserError(
            _("{source}: layer {position} must be {{type: Conv2D, ...}} or {{Conv2D: {{...}}}}, got {item}.").format(
                source=source, position=position, item=quote(item)
            )
        )
    if not isinstance(kind, str):
        raise UserError(
            _("{source}: layer {position} has a type that is not a name: {kind}.").format(
                source=source, position=position, kind=quote(kind)
            )
        )
    canonical = "Input" if kind.lower() in ("input", "inputlayer") else canonical_type(kind)
    if canonical is None:
        known = ", ".join(["Input", *BUILDERS])
        raise UserError(
            _("{source}: layer {position} has unknown type {kind}; known types: {known}.").format(
                source=source, position=position, kind=quote(kind), known=known
            )
        )
    return canonical, args


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not (isinstance(value, _SEQUENCES) and len(value) in (1, 3) and all(_is_int(v, 1) for v in value)):
        raise UserError(
            _("{where} must be [H, W, C] (or [features]) of positive integers up to {max_int:,}, got {value}.").format(
                where=where, max_int=MAX_INT, value=quote(value)
            )
        )
    return tuple(int(v) for v in value)


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_INT


def _name_or_names(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, _SEQUENCES) and all(isinstance(v, str) for v in value))


def _check_args(args: dict[Any, Any], where: str) -> None:
    """Argument names are text, and the two arguments read here are names; the layer builders
    check every other argument's type and meaning (`layers._Args`)."""
    for key in args:
        if not isinstance(key, str):
            raise UserError(_("{where}: argument names must be text, got {key}.").format(where=where, key=quote(key)))
    if "name" in args and not isinstance(args["name"], str):
        raise UserError(
            _("{where}: 'name' must be a name, got {value}.").format(where=where, value=quote(args["name"]))
        )
    if "inputs" in args and not _name_or_names(args["inputs"]):
        raise UserError(
            _("{where}: 'inputs' must be a layer name or a list of them, got {value}.").format(
                where=where, value=quote(args["inputs"])
            )
        )


def _auto_name(kind: str, counters: dict[str, int]) -> str:
    base = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", kind).lower().replace("2_d", "2d")  # Keras-style conv2d, dense_1
    n = counters.get(base, 0)
    counters[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _check_graph(layers: list[LayerSpec], source: str) -> None:
    seen = {INPUT}
    for layer in layers:
        if layer.name in seen:
            raise UserError(_("{source}: two layers are called {name}.").format(source=source, name=quote(layer.name)))
        for parent in layer.inputs:
            if parent not in seen:
                raise UserError(
                    _("{source}: layer {name} takes input {parent}, which is not defined before it.").format(
                        source=source, name=quote(layer.name), parent=quote(parent)
                    )
                )
        seen.add(layer.name)

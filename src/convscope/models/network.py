"""`Network`: a torch module built from a `ModelSpec`, for Sequential and Functional specs alike.

Every shape is worked out while building, so a spec that cannot work fails here, before any
training, naming the layer and the numbers. The output layer's softmax is left out of
`forward`: the network returns logits, the loss applies log-softmax itself (numerically
safer), and `probabilities()` applies softmax for predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..i18n import _
from . import fused
from .layers import BuiltLayer, Shape, build_layer
from .sizes import receptive_field
from .spec import INPUT, ModelSpec


@dataclass(frozen=True)
class LayerInfo:
    """What the summary shows for one layer (no tensors)."""

    name: str
    type: str
    inputs: tuple[str, ...]
    output_shape: Shape
    trainable: int
    non_trainable: int
    flops: int
    formula: str | None
    receptive_field: tuple[int, int] | None  # (height, width) in input pixels, for image outputs


class Network(nn.Module):
    def __init__(self, spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.spec = spec
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        if spec.input_shape is not None and tuple(spec.input_shape) != self.input_shape:
            raise UserError(
                _("model '{name}' declares Input shape {input_shape} but the data is {data_shape}.").format(
                    name=spec.name, input_shape=tuple(spec.input_shape), data_shape=self.input_shape
                )
            )
        self.blocks = nn.ModuleDict()
        self.info: list[LayerInfo] = []
        shapes: dict[str, Shape] = {INPUT: self.input_shape}
        # (rf_h, rf_w, jump_h, jump_w) per layer, for the receptive field column
        fields: dict[str, tuple[int, int, int, int]] = {INPUT: (1, 1, 1, 1)}
        for layer in spec.layers:
            args = dict(layer.args)
            if args.get("units") == "num_classes":
                args["units"] = num_classes
            built = build_layer(layer.name, layer.type, args, [shapes[i] for i in layer.inputs])
            if layer.name == spec.output:
                self._check_output(layer.name, built)
            self.blocks[layer.name] = built.module
            shapes[layer.name] = built.output_shape
            fields[layer.name] = _field_after(built, [fields[i] for i in layer.inputs])
            self.info.append(_info(layer.name, layer.type, layer.inputs, built, fields[layer.name]))
        self.graph = [(layer.name, layer.inputs) for layer in spec.layers]
        self.output_name = spec.output
        self.fusions = fused.plan(self.blocks, self.graph)

    def _check_output(self, name: str, built: BuiltLayer) -> None:
        if built.output_shape != (self.num_classes,):
            raise UserError(
                _(
                    "output layer '{name}' gives shape {output_shape}, but the data has {num_classes} classes; end with Dense(units: num_classes, activation: softmax)."
                ).format(name=name, output_shape=built.output_shape, num_classes=self.num_classes)
            )
        last = built.module[-1] if isinstance(built.module, nn.Sequential) else built.module
        if isinstance(last, nn.Softmax):
            # The loss takes logits; a softmax output layer (Dense(..., activation=softmax) is a Sequential,
            # a bare Activation(softmax) the Softmax itself) gives them back in predict_proba.
            if isinstance(built.module, nn.Sequential):
                built.module[-1] = nn.Identity()
            else:
                built.module = nn.Identity()
        elif not isinstance(last, (nn.Identity, nn.Linear)):
            raise UserError(
                _("output layer '{name}' ends in {module}; a classifier ends in softmax (or no activation).").format(
                    name=name, module=type(last).__name__
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x, only_output=True)[self.output_name]

    def activations(self, x: torch.Tensor, only_output: bool = False) -> dict[str, torch.Tensor]:
        """Every layer's output by name (the input under 'input'); `only_output` frees the rest as it goes, and
        runs the fused layers (models/fused.py), whose intermediate outputs differ from the layers' own."""
        values: dict[str, torch.Tensor] = {INPUT: x}
        remaining = _consumers(self.graph) if only_output else None
        fusions = self.fusions if only_output and not _exporting() else {}
        for name, inputs in self.graph:
            if name in fusions:
                values[name] = fused.run(fusions[name], self.blocks, name, values[inputs[0]])
            else:
                values[name] = self.blocks[name](*[values[i] for i in inputs])
            if remaining is not None:
                for i in inputs:
                    remaining[i] -= 1
                    if remaining[i] == 0 and i != self.output_name:
                        del values[i]
        return values

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=1)


def _exporting() -> bool:
    """Tracing, scripting, compiling or ONNX export: these record torch operators, and must see the eager layers."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def _consumers(graph: list[tuple[str, tuple[str, ...]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _name, inputs in graph:
        for i in inputs:
            counts[i] = counts.get(i, 0) + 1
    return counts


def _field_after(built: BuiltLayer, fields_in: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    # With several inputs (Add, Concatenate) an output pixel sees the widest of them.
    rf_h, rf_w, j_h, j_w = max(fields_in)
    if built.window is None:
        return rf_h, rf_w, j_h, j_w
    kh, kw, sh, sw = built.window
    rf_h, j_h = receptive_field(rf_h, j_h, kh, sh)
    rf_w, j_w = receptive_field(rf_w, j_w, kw, sw)
    return rf_h, rf_w, j_h, j_w


def _info(name: str, kind: str, inputs, built: BuiltLayer, field: tuple[int, int, int, int]) -> LayerInfo:
    trainable = sum(p.numel() for p in built.module.parameters() if p.requires_grad)
    # Keras counts BatchNormalization's moving mean and variance as non-trainable parameters.
    non_trainable = sum(
        b.numel() for n, b in built.module.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    rf = (field[0], field[1]) if len(built.output_shape) == 3 else None
    return LayerInfo(
        name, kind, tuple(inputs), built.output_shape, trainable, non_trainable, built.flops, built.formula, rf
    )

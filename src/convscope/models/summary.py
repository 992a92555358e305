"""A Keras-style model summary that also explains itself.

Besides layer, output shape and parameter count (totals split into trainable and
non-trainable, as Keras prints them), every Conv and Pool row shows how its output size
follows from the input size, the FLOPs the layer costs per image, and its receptive field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..checks import pad, printable, text_width
from ..errors import UserError
from ..i18n import _
from .build import plan_network
from .network import LayerInfo, Network
from .sizes import as_pair, axis_output, keras_shape


@dataclass(frozen=True)
class ModelSummary:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerInfo, ...]
    kind: str = "sequential"  # or "functional": how the spec was written, as Keras' `Model: "functional"` says

    @property
    def trainable_params(self) -> int:
        return sum(l.trainable for l in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(l.non_trainable for l in self.layers)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def flops(self) -> int:
        return sum(l.flops for l in self.layers)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "layers": [asdict(l) for l in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "flops_per_image": self.flops,
        }

    def __repr__(self) -> str:
        """One line for a plain REPL; `print(summary)` gives Keras' table with the formulas."""
        shape = "x".join(str(s) for s in self.input_shape)
        return (
            f"<ModelSummary {self.name}: {len(self.layers)} layers, {self.total_params:,} params, input {shape}, "
            f"{self.flops:,} FLOPs per image>"
        )

    def __str__(self) -> str:
        header = (_("Layer (type)"), _("Output Shape"), _("Param #"), _("FLOPs"), _("Receptive field"))
        rows = []
        for l in self.layers:
            rf = f"{l.receptive_field[0]}x{l.receptive_field[1]}" if l.receptive_field else ""
            inputs = "" if len(l.inputs) <= 1 else f" <- {', '.join(l.inputs)}"
            rows.append(
                (
                    printable(f"{l.name} ({l.type}){inputs}"),  # names come from the user's spec file
                    keras_shape(l.output_shape),
                    f"{l.trainable + l.non_trainable:,}",
                    _flops(l.flops),
                    rf,
                )
            )
        widths = [max(text_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = "-" * (sum(widths) + 2 * (len(widths) - 1))

        def fmt(r):
            return "  ".join(
                pad(cell, w, "<" if i in (0, 1, 4) else ">") for i, (cell, w) in enumerate(zip(r, widths))
            ).rstrip()

        out = [
            _('Model: "{name}" ({kind})   input {shape}').format(
                name=printable(self.name), kind=self.kind.capitalize(), shape=keras_shape(self.input_shape)
            ),
            line,
            fmt(header),
            line.replace("-", "="),
        ]
        for l, r in zip(self.layers, rows):
            out.append(fmt(r))
            if l.formula:
                out.append("    " + _("size: {formula}").format(formula=l.formula))
        out += [
            line.replace("-", "="),
            _("Total params: {count:,} ({size})").format(
                count=self.total_params, size=memory_size(self.total_params * 4)
            ),
            _("Trainable params: {count:,} ({size})").format(
                count=self.trainable_params, size=memory_size(self.trainable_params * 4)
            ),
            _("Non-trainable params: {count:,} ({size})").format(
                count=self.non_trainable_params, size=memory_size(self.non_trainable_params * 4)
            ),
            _("FLOPs per image (forward, multiply-add = 2): {count:,} ({short})").format(
                count=self.flops, short=_flops(self.flops)
            ),
        ]
        return "\n".join(out)


def _flops(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def plan(model, input_shape: tuple[int, ...], num_classes: int) -> ModelSummary:
    """The summary of a preset or spec on `input_shape`, worked out arithmetically (no weights allocated)."""
    return summary(plan_network(model, input_shape, num_classes))


DEFAULT_INPUT_SHAPE = (28, 28, 1)  # the course's images, as `convscope summary` assumes


def summary(
    model: nn.Module | str | Path | dict | list, input_shape: Sequence[int] | None = None, num_classes: int = 10
) -> ModelSummary:
    """The summary of a built model, of a preset name or spec (dict, list, YAML/JSON path) on `input_shape`
    (28 x 28 x 1 when not given, worked out without allocating weights), or of any other torch module,
    described from its leaf modules."""
    if isinstance(model, Network):
        return ModelSummary(model.spec.name, model.input_shape, tuple(model.info), model.spec.kind)
    if not isinstance(model, nn.Module):
        return plan(model, tuple(input_shape or DEFAULT_INPUT_SHAPE), num_classes)
    if input_shape is None:
        raise UserError(_("the summary of a plain torch module needs input_shape=(H, W, C)."))
    return ModelSummary(type(model).__name__, tuple(input_shape), tuple(_traced_layers(model, tuple(input_shape))))


def _traced_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """Run one zero image through the module, recording each leaf module's input and output shape."""
    records: list[LayerInfo] = []
    hooks = []

    def keras_order(t: torch.Tensor) -> tuple[int, ...]:
        s = tuple(t.shape[1:])
        return (s[1], s[2], s[0]) if len(s) == 3 else s

    def hook(name: str):
        def record(module: nn.Module, inputs, output):
            trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
            frozen = sum(
                b.numel() for n, b in module.named_buffers(recurse=False) if n in ("running_mean", "running_var")
            )
            formula, flops = None, 0
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and inputs[0].dim() == 4:
                k = as_pair(module.kernel_size)
                s = as_pair(module.stride)
                p = as_pair(module.padding)  # ("same", "same") when torch was given a string
                h = axis_output(inputs[0].shape[2], k[0], s[0], p[0])
                w = axis_output(inputs[0].shape[3], k[1], s[1], p[1])
                formula = h.formula if h == w else f"H: {h.formula}; W: {w.formula}"
            if isinstance(module, nn.Conv2d):
                flops = 2 * module.weight[0].numel() * output.numel()
            elif isinstance(module, nn.Linear):
                flops = 2 * module.weight.numel()
            records.append(
                LayerInfo(name, type(module).__name__, (), keras_order(output), trainable, frozen, flops, formula, None)
            )

        return record

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    h, w, c = input_shape
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, c, h, w))
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()
    return records


def memory_size(size: float) -> str:
    """Bytes as Keras' summary writes them, in steps of 1024 with two decimals: 1.04 MB, 4.00 KB, 0.00 B."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"

"""Keras-vocabulary layers turned into PyTorch modules, with their shapes checked up front.

Each builder takes a layer's name, its Keras arguments and its input shapes, and returns a
`BuiltLayer`: the torch module, the output shape, and what the summary shows (size formula,
FLOPs, receptive-field step). Shapes are in Keras order without the batch axis, (H, W, C) or
(features,); tensors themselves run channels-first (N, C, H, W), as PyTorch wants.

Initialisation and hyper-parameters follow Keras defaults: Glorot-uniform kernels, zero biases,
BatchNormalization momentum 0.99 / epsilon 1e-3 (PyTorch momentum = 1 - 0.99).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import quote
from ..errors import UserError
from ..i18n import _
from . import fused
from .sizes import AxisSize, as_pair, axis_output

Shape = tuple[int, ...]


@dataclass
class BuiltLayer:
    module: nn.Module
    output_shape: Shape
    formula: str | None = None  # the output-size derivation for Conv and Pool layers
    flops: int = 0  # per image, multiply-adds count as 2
    window: tuple[int, int, int, int] | None = None  # (kh, kw, sh, sw) for the receptive field


ACTIVATIONS: dict[str | None, Callable[[], nn.Module]] = {
    None: nn.Identity,
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras' default negative slope
}


MAX_SIZE = 2**31 - 1  # filters, units, kernels, strides, pads: larger is a typo, and overflows torch's int32 paths


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SIZE


class _Args:
    """Keras arguments of one layer; anything left unread is reported as unknown."""

    def __init__(self, layer: str, kind: str, args: dict[str, Any]):
        self.layer, self.kind, self.args = layer, kind, dict(args)
        self._read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return self.args.get(key, default)

    def pair(self, key: str, default: Any) -> tuple[int, int]:
        value = self.get(key, default)
        if isinstance(value, int):
            value = (value, value)
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_size(v) for v in value)):
            raise self.error(
                _("'{key}' must be a positive integer or a pair of them, got {value}").format(
                    key=key, value=quote(value)
                )
            )
        return int(value[0]), int(value[1])

    def positive_int(self, key: str, default: Any = None) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(_("'{key}' must be a positive integer, got {value}").format(key=key, value=quote(value)))
        if value > MAX_SIZE:
            raise self.error(
                _("'{key}' is {value:,}, above the largest size {max_size:,}").format(
                    key=key, value=value, max_size=MAX_SIZE
                )
            )
        return value

    def number(self, key: str, default: float, low: float, high: float | None = None) -> float:
        """A finite number in [low, high] (low < value when low is 0 and high is None: a positive number)."""
        value = self.get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and value >= low and (high is None or value <= high) and (high is not None or value > low)
        if not ok:
            if high is not None:
                message = _("'{key}' must be a number in [{low:g}, {high:g}], got {value}")
            else:
                message = _("'{key}' must be a number above {low:g}, got {value}")
            raise self.error(message.format(key=key, low=low, high=high, value=quote(value)))
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(_("'{key}' must be true or false, got {value}").format(key=key, value=quote(value)))
        return value

    def activation(self) -> nn.Module:
        name = self.get("activation")
        if name is not None and not isinstance(name, str):
            raise self.error(_("'activation' must be the name of one activation, got {name}").format(name=quote(name)))
        if name not in ACTIVATIONS:
            known = ", ".join(sorted(k for k in ACTIVATIONS if k))
            raise self.error(_("unknown activation {name} (known: {known})").format(name=quote(name), known=known))
        return ACTIVATIONS[name]()

    def padding(self) -> str | int:
        value = self.get("padding", "valid")
        if value in ("valid", "same") or (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE
        ):
            return value
        raise self.error(
            _("'padding' must be 'valid', 'same' or a non-negative integer, got {value}").format(value=quote(value))
        )

    def error(self, message: str) -> UserError:
        return UserError(
            _("layer '{layer}' ({kind}): {message}.").format(layer=self.layer, kind=self.kind, message=message)
        )

    def check_all_read(self) -> None:
        unknown = sorted(set(self.args) - self._read)
        if unknown:
            raise self.error(_("unknown argument(s) {unknown}").format(unknown=", ".join(unknown)))


def _one_input(a: _Args, shapes: list[Shape]) -> Shape:
    if len(shapes) != 1:
        raise a.error(_("takes one input, got {count}").format(count=len(shapes)))
    return shapes[0]


def _image_input(a: _Args, shapes: list[Shape]) -> tuple[int, int, int]:
    shape = _one_input(a, shapes)
    if len(shape) != 3:
        raise a.error(
            _("needs an image input (H, W, C), got {shape}; is there a Flatten before it?").format(shape=shape)
        )
    return shape


def _window(a: _Args, h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int], padding: str | int):
    axes = [axis_output(size, k, s, padding) for size, k, s in zip((h, w), kernel, strides)]
    too_small = (
        _(
            "output height would be {size}, below 1: {formula}; the input is {h}x{w}, use padding='same', "
            "a smaller kernel or fewer pooling layers"
        ),
        _(
            "output width would be {size}, below 1: {formula}; the input is {h}x{w}, use padding='same', "
            "a smaller kernel or fewer pooling layers"
        ),
    )
    for message, axis in zip(too_small, axes):
        if axis.size_out < 1:
            raise a.error(message.format(size=axis.formula.rsplit("= ", 1)[-1], formula=axis.formula, h=h, w=w))
    formula = axes[0].formula if axes[0] == axes[1] else f"H: {axes[0].formula}; W: {axes[1].formula}"
    return axes[0], axes[1], formula


class KerasPad(nn.Module):
    """Zero (or -inf) padding with separate before/after amounts: Keras 'same' pads odd totals asymmetrically."""

    def __init__(self, h: AxisSize, w: AxisSize, value: float = 0.0):
        super().__init__()
        self.pads = (w.pad_before, w.pad_after, h.pad_before, h.pad_after)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, value=self.value)


def _symmetric(h: AxisSize, w: AxisSize) -> bool:
    return h.pad_before == h.pad_after and w.pad_before == w.pad_after


def conv2d(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    h, w, c = _image_input(a, shapes)
    filters = a.positive_int("filters")
    kernel = a.pair("kernel_size", None)
    strides = a.pair("strides", 1)
    padding = a.padding()
    use_bias = a.flag("use_bias", True)
    act = a.activation()
    hy, wx, formula = _window(a, h, w, kernel, strides, padding)
    conv = nn.Conv2d(c, filters, kernel, strides, bias=use_bias)
    nn.init.xavier_uniform_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    if _symmetric(hy, wx):
        conv.padding = (hy.pad_before, wx.pad_before)
        parts: list[nn.Module] = [conv]
    else:
        parts = [KerasPad(hy, wx), conv]
    flops = 2 * kernel[0] * kernel[1] * c * filters * hy.size_out * wx.size_out
    return BuiltLayer(
        nn.Sequential(*parts, act),
        (hy.size_out, wx.size_out, filters),
        formula,
        flops,
        (kernel[0], kernel[1], strides[0], strides[1]),
    )


class _AveragePoolSame(nn.Module):
    """Keras averages 'same'-padded windows over the real pixels only, even when the padding is lopsided."""

    def __init__(self, h: AxisSize, w: AxisSize, kernel, strides):
        super().__init__()
        self.pad = KerasPad(h, w)
        self.kernel, self.strides = kernel, strides

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.avg_pool2d(self.pad(x), self.kernel, self.strides)
        ones = torch.ones_like(x[:1, :1])
        share = F.avg_pool2d(self.pad(ones), self.kernel, self.strides)
        return total / share


class KerasMaxPool(nn.MaxPool2d):
    """MaxPool2D that predicts faster: without gradients, windows that tile the image exactly are
    reduced with elementwise maxima over a channels-last view, first across the window's rows,
    then across its columns: 2.2x to 2.6x faster on the `cnn`'s maps than torch's pooling, which
    also writes the argmax indices no prediction needs. The values are the same. Training keeps
    torch's kernel, whose gradient goes to one pixel when a window ties; so does CUDA, whose own
    pooling kernel is fast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = as_pair(self.kernel_size)
        n, c, h, w = x.shape
        tiles = as_pair(self.stride) == (kh, kw) and as_pair(self.padding) == (0, 0) and h % kh == 0 and w % kw == 0
        small = x.numel() < 2**16  # a few images: torch's one kernel beats several small ones
        if (
            (torch.is_grad_enabled() and x.requires_grad)
            or not tiles
            or small
            or x.device.type != "cpu"
            or as_pair(self.dilation) != (1, 1)
            or not x.is_contiguous(memory_format=torch.channels_last)
            or self.return_indices
            or self.ceil_mode
        ):
            return super().forward(x)
        # (N, H/kh, kh, W/kw, kw*C): a window's kw pixels are kw adjacent blocks of C channels in memory
        rows = x.permute(0, 2, 3, 1).reshape(n, h // kh, kh, w // kw, kw * c)
        best = rows[:, :, 0]
        for i in range(1, kh):
            best = torch.maximum(best, rows[:, :, i])
        out = best[..., :c]
        for j in range(1, kw):
            out = torch.maximum(out, best[..., j * c : (j + 1) * c])
        return out.permute(0, 3, 1, 2)


def _pool(a: _Args, shapes: list[Shape], kind: str) -> BuiltLayer:
    h, w, c = _image_input(a, shapes)
    kernel = a.pair("pool_size", 2)
    strides = kernel if a.get("strides") is None else a.pair("strides", None)  # Keras: strides default to pool_size
    padding = a.padding()
    hy, wx, formula = _window(a, h, w, kernel, strides, padding)
    if kind == "max":
        pool = KerasMaxPool(kernel, strides)
        if _symmetric(hy, wx) and hy.pad_before * 2 <= kernel[0] and wx.pad_before * 2 <= kernel[1]:
            pool.padding = (hy.pad_before, wx.pad_before)
            module: nn.Module = pool
        else:
            module = nn.Sequential(KerasPad(hy, wx, float("-inf")), pool)
    elif hy.pad_before + hy.pad_after + wx.pad_before + wx.pad_after == 0:
        module = nn.AvgPool2d(kernel, strides)
    else:
        module = _AveragePoolSame(hy, wx, kernel, strides)
    flops = kernel[0] * kernel[1] * c * hy.size_out * wx.size_out
    return BuiltLayer(
        module, (hy.size_out, wx.size_out, c), formula, flops, (kernel[0], kernel[1], strides[0], strides[1])
    )


class GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class KerasFlatten(nn.Module):
    """Flattens in Keras' (H, W, C) order, so Dense weights mean the same thing as in Keras."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def dense(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    if len(shape) != 1:
        raise a.error(
            _("needs a flat input, got {shape}; add a Flatten or GlobalAveragePooling2D before it").format(shape=shape)
        )
    units = a.positive_int("units")
    use_bias = a.flag("use_bias", True)
    act = a.activation()
    linear = nn.Linear(shape[0], units, bias=use_bias)
    nn.init.xavier_uniform_(linear.weight)
    if use_bias:
        nn.init.zeros_(linear.bias)
    return BuiltLayer(nn.Sequential(linear, act), (units,), flops=2 * shape[0] * units)


def batch_norm(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    momentum = a.number("momentum", 0.99, 0.0, 1.0)
    eps = a.number("epsilon", 1e-3, 0.0)
    channels = shape[-1]
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return BuiltLayer(cls(channels, eps=eps, momentum=1.0 - momentum), shape, flops=2 * _numel(shape))


class KerasDropout(nn.Dropout):
    """Dropout as Keras does it: zero each value with probability `p`, scale the rest by 1 / (1 - p).

    On the CPU the mask is a hash of one seed from torch's generator and the value's position (16 bits per
    value, so `p` is honoured to 1/65,536), applied in one pass each way by a C kernel and recomputed in
    backward, never stored (`fused.dropout`). torch's own dropout draws a random number per value
    (`bernoulli_`: 18% of a bf16 training step of the `cnn` preset) and keeps the mask. Elsewhere (CUDA)
    torch's fused kernel is already fast.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or not fused.dense(x):
            return super().forward(x)
        return fused.dropout(x, self.p)


def dropout(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    rate = a.get("rate", None)
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise a.error(_("'rate' must be a number in [0, 1), got {rate}").format(rate=quote(rate)))
    return BuiltLayer(KerasDropout(float(rate)), shape)


def activation(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    return BuiltLayer(a.activation(), shape, flops=_numel(shape))


def flatten(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    return BuiltLayer(KerasFlatten(), (_numel(shape),))


def global_average_pooling(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    h, w, c = _image_input(a, shapes)
    return BuiltLayer(
        GlobalAveragePool(),
        (c,),
        _("the mean of each channel's {h}x{w} map -> ({c},)").format(h=h, w=w, c=c),
        flops=h * w * c,
    )


class AddInputs(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class ConcatenateChannels(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)  # Keras concatenates the last (channel) axis


def add(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    if len(shapes) < 2 or any(s != shapes[0] for s in shapes):
        raise a.error(_("needs two or more inputs of the same shape, got {shapes}").format(shapes=shapes))
    return BuiltLayer(AddInputs(), shapes[0], flops=_numel(shapes[0]) * (len(shapes) - 1))


def concatenate(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    axis = a.get("axis", -1)
    if not (isinstance(axis, int) and not isinstance(axis, bool) and axis == -1):
        raise a.error(_("only the channel axis (-1) can be concatenated, got axis={axis}").format(axis=quote(axis)))
    if len(shapes) < 2 or any(len(s) != len(shapes[0]) or s[:-1] != shapes[0][:-1] for s in shapes):
        raise a.error(_("needs two or more inputs that differ only in channels, got {shapes}").format(shapes=shapes))
    channels = [s[-1] for s in shapes]
    formula = _("channels {parts} = {total}").format(parts=" + ".join(map(str, channels)), total=sum(channels))
    return BuiltLayer(ConcatenateChannels(), (*shapes[0][:-1], sum(channels)), formula)


class Rescale(nn.Module):
    """Keras' Rescaling: `x * scale + offset`, either a number or one per channel (the last axis in Keras)."""

    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, scale: list[float], offset: list[float], image: bool):
        super().__init__()
        view = (1, -1, 1, 1) if image else (1, -1)
        # not in the state dict: Keras stores these in the config, not as weights
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(view), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(view), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


def _per_channel(a: _Args, key: str, default: float, channels: int) -> list[float]:
    value = a.get(key, default)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values) or len(
        values
    ) not in (1, channels):
        raise a.error(
            _("'{key}' must be a finite number or {channels} of them (one per channel), got {value}").format(
                key=key, channels=channels, value=quote(value)
            )
        )
    return [float(v) for v in values]


def rescaling(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    scale = _per_channel(a, "scale", 1.0, shape[-1])
    if 0.0 in scale:  # every image would become the same constant
        raise a.error(_("'scale' must not be 0, got {value}").format(value=quote(a.get("scale"))))
    offset = _per_channel(a, "offset", 0.0, shape[-1])
    show = lambda v: f"{v[0]:g}" if len(v) == 1 else "[" + ", ".join(f"{x:g}" for x in v) + "]"  # noqa: E731
    formula = _("unchanged; every value becomes x * {scale} + {offset}").format(scale=show(scale), offset=show(offset))
    return BuiltLayer(Rescale(scale, offset, len(shape) == 3), shape, formula, flops=2 * _numel(shape))


class KerasReshape(nn.Module):
    """Reshape in Keras' (H, W, C) element order; tensors enter and leave channels-first."""

    def __init__(self, target: Shape):
        super().__init__()
        self.target = tuple(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        x = x.reshape(x.shape[0], *self.target)
        return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def reshape(a: _Args, shapes: list[Shape]) -> BuiltLayer:
    shape = _one_input(a, shapes)
    target = a.get("target_shape")
    if not (
        isinstance(target, (list, tuple))
        and len(target) in (1, 3)
        and all(isinstance(t, int) and not isinstance(t, bool) and (t > 0 or t == -1) for t in target)
        and list(target).count(-1) <= 1
    ):
        raise a.error(
            _(
                "'target_shape' must be [features] or [H, W, C] of positive integers (one may be -1), got {target!r}"
            ).format(target=target)
        )
    size, known = _numel(shape), _numel(tuple(t for t in target if t != -1))
    filled = tuple(size // known if t == -1 else t for t in target)
    if _numel(filled) != size:
        raise a.error(
            _("cannot reshape {shape} ({size} values) to {target}").format(shape=shape, size=size, target=tuple(target))
        )
    formula = _("{dims} = {size} values -> {shape}").format(
        dims=" * ".join(map(str, shape)), size=size, shape=_shape_text(filled)
    )
    return BuiltLayer(KerasReshape(filled), filled, formula)


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


BUILDERS: dict[str, Callable[[_Args, list[Shape]], BuiltLayer]] = {
    "Conv2D": conv2d,
    "MaxPool2D": lambda a, s: _pool(a, s, "max"),
    "AveragePooling2D": lambda a, s: _pool(a, s, "average"),
    "GlobalAveragePooling2D": global_average_pooling,
    "Dense": dense,
    "Flatten": flatten,
    "BatchNormalization": batch_norm,
    "Dropout": dropout,
    "Activation": activation,
    "Add": add,
    "Concatenate": concatenate,
    "Rescaling": rescaling,
    "Reshape": reshape,
}

# Other spellings Keras users type; every one maps to a canonical name above.
ALIASES = {
    "Convolution2D": "Conv2D",
    "MaxPooling2D": "MaxPool2D",
    "AvgPool2D": "AveragePooling2D",
    "AveragePool2D": "AveragePooling2D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "BatchNorm": "BatchNormalization",
}
_BY_LOWER = {name.lower(): name for name in [*BUILDERS, *ALIASES]}


def canonical_type(kind: str) -> str | None:
    name = _BY_LOWER.get(str(kind).lower())
    return ALIASES.get(name, name) if name else None


def build_layer(name: str, kind: str, args: dict[str, Any], shapes: list[Shape]) -> BuiltLayer:
    a = _Args(name, kind, args)
    built = BUILDERS[kind](a, shapes)
    a.check_all_read()
    return built

"""Fused versions of the work around the convolutions, for training and prediction on the CPU.

Four fusions, chosen per call, each falling back to the eager operations whenever a condition does not
hold. The first three give their results bit for bit: they skip passes over memory and never change an
arithmetic result (dropout's eager twin is the same hash in torch operations, `dropout_bits`).

- `conv_relu` (prediction only): a convolution whose ReLU runs inside oneDNN's kernel as a post-op, so the
  activation is written once instead of written, read and written again.
- `relu_max_pool`: ReLU then a 2x2 max pool with stride 2 in one pass of a small C kernel
  (`kernels/pool.c`), keeping a one-byte window position instead of torch's 64-bit indices, and a backward
  that writes the input gradient once.
- `dropout`: the mask a hash of one seed and the position, applied in one pass and recomputed in backward
  (`kernels/dropout.c`), instead of drawn from torch's generator, stored, and multiplied in several passes.
- `batch_norm_relu_max_pool` (bf16 only): a BatchNormalization feeding only a ReLU and a 2x2 max pool, in two
  passes each way (`kernels/batch_norm.c`) instead of torch's ten, whose bf16 BatchNorm is slow on channels-last
  tensors. It sums in another order than torch, so its results are within bf16's resolution of the eager layers;
  fp32 keeps torch's BatchNorm and its results bit for bit.

`Network.forward` picks them (see `plan`); `Network.activations`, which the feature-map views read layer by
layer, stays eager.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .sizes import as_pair

_CONV_POINTWISE: Any = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
_KERNELS = {torch.float32: "relu_max_pool_f32", torch.bfloat16: "relu_max_pool_bf16"}


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def _autocast_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run a convolution in here."""
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


# --- convolution + ReLU -------------------------------------------------------------------------------


def can_fuse_conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """For prediction only: in a training step the fused forward measured slower than the eager pair
    (BENCHMARKS.md, the ablation), so gradients keep torch's convolution and ReLU."""
    training = torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad)
    return (
        not training
        and _CONV_POINTWISE is not None
        and x.device.type == "cpu"
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and _channels_last(x)
        and _onednn_runs(_autocast_dtype(x))
    )


def _onednn_runs(dtype: torch.dtype) -> bool:
    """oneDNN's bf16 convolution needs AVX-512 (or AVX-NE-CONVERT) and refuses on an AVX2 CPU, where torch's
    eager convolution still runs bf16 by converting; fp32 runs everywhere."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)) without gradients, the ReLU fused into oneDNN's convolution; autocast's casts are made
    here, as it would make them."""
    dtype = _autocast_dtype(x)
    weight, bias = conv.weight.to(dtype), None if conv.bias is None else conv.bias.to(dtype)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation))
    return _CONV_POINTWISE(x.to(dtype), weight, bias, *geometry, 1, "relu", [], "")


# --- ReLU + 2x2 max pool --------------------------------------------------------------------------------


def _library() -> ctypes.CDLL:
    library = native.library()
    assert library is not None  # callers checked a can_fuse_*, which asks for it
    return library


def _pointer(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr() if t is not None else None)


def _pooled_outputs(x: torch.Tensor, keep_where: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A 2x2 pool's output for x, and (for backward) a byte per value for its window position, channels-last."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
    where = torch.empty(out.shape, dtype=torch.uint8, memory_format=torch.channels_last) if keep_where else None
    return out, where


def _pool_forward(x: torch.Tensor, keep_where: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    n, c, h, w = x.shape
    out, where = _pooled_outputs(x, keep_where)
    kernel = getattr(_library(), f"{_KERNELS[x.dtype]}_forward")
    kernel(_pointer(x), _pointer(out), _pointer(where), n, h, w, c)
    return out, where


class _ReLUMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out, where = _pool_forward(x, keep_where=True)
        ctx.save_for_backward(out, where)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        out, where = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = ctx.input_shape
        grad_in = torch.empty((n, c, h, w), dtype=grad.dtype, memory_format=torch.channels_last)
        kernel = getattr(_library(), f"{_KERNELS[grad.dtype]}_backward")
        kernel(_pointer(grad), _pointer(out), _pointer(where), _pointer(grad_in), n, h, w, c)
        return grad_in


def can_fuse_relu_max_pool(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in _KERNELS
        and _channels_last(x)
        and x.shape[2] >= 2
        and x.shape[3] >= 2
        and x.numel() > 0
        and native.library() is not None
    )


def relu_max_pool(x: torch.Tensor) -> torch.Tensor:
    """max_pool2d(relu(x), 2): callers check `can_fuse_relu_max_pool(x)` first."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _ReLUMaxPool.apply(x)
    return _pool_forward(x, keep_where=False)[0]


# --- BatchNorm + ReLU + 2x2 max pool --------------------------------------------------------------------


# The kernel keeps a few image rows (width x channels values) on the threads' stacks; wider rows take torch's layers.
_BATCH_NORM_ROW_LIMIT = 1 << 16


def can_fuse_batch_norm_relu_max_pool(bn: nn.BatchNorm2d, x: torch.Tensor) -> bool:
    """bf16 only: the kernel sums in another order than torch, so its results are within bf16's resolution of
    the eager layers, not bit for bit, and fp32 keeps them. In evaluation, only without gradients."""
    params = [t for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]
    if bn.training:
        fits = x.shape[0] * x.shape[2] * x.shape[3] > 1  # else eager torch raises its own error
    else:
        fits = not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)))
    return (
        fits
        and x.dtype == torch.bfloat16
        and x.shape[1] * x.shape[3] <= _BATCH_NORM_ROW_LIMIT
        and bn.track_running_stats
        and bn.momentum is not None
        and all(p.dtype == torch.float32 and p.is_contiguous() and p.device.type == "cpu" for p in params)
        and can_fuse_relu_max_pool(x)
    )


def _check(status: int) -> None:
    """batch_norm.c's kernels return -1 when they could not allocate their partial sums."""
    if status != 0:
        raise MemoryError("no memory for BatchNormalization's partial sums")


def _batch_statistics(bn: nn.BatchNorm2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and 1/sqrt(var + eps) to normalise with: the batch's in training (updating the running
    statistics, as torch's layer does), the running ones in evaluation."""
    if not bn.training:
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
        return bn.running_mean, torch.rsqrt(bn.running_var + bn.eps)
    n, c, h, w = x.shape
    mean, invstd = torch.empty(c), torch.empty(c)
    status = _library().batch_norm_statistics_bf16(
        _pointer(x), n * h * w, c, bn.eps, bn.momentum,
        _pointer(bn.running_mean), _pointer(bn.running_var), _pointer(mean), _pointer(invstd),
    )  # fmt: skip
    _check(status)
    assert bn.num_batches_tracked is not None  # track_running_stats
    bn.num_batches_tracked.add_(1)
    return mean, invstd


def _batch_norm_pool_forward(x, mean, invstd, weight, bias, keep_where: bool):
    n, c, h, w = x.shape
    out, where = _pooled_outputs(x, keep_where)
    _library().batch_norm_relu_max_pool_bf16_forward(
        _pointer(x), _pointer(mean), _pointer(invstd), _pointer(weight), _pointer(bias), _pointer(out),
        _pointer(where), n, h, w, c,
    )  # fmt: skip
    return out, where


class _BatchNormReLUMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd):
        out, where = _batch_norm_pool_forward(x, mean, invstd, weight, bias, keep_where=True)
        ctx.save_for_backward(x, out, where, mean, invstd, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out, where, mean, invstd, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        grad_in = torch.empty((n, c, h, w), dtype=x.dtype, memory_format=torch.channels_last)
        grad_weight, grad_bias = torch.empty(c), torch.empty(c)
        status = _library().batch_norm_relu_max_pool_bf16_backward(
            _pointer(grad), _pointer(out), _pointer(where), _pointer(x), _pointer(mean), _pointer(invstd),
            _pointer(weight), _pointer(grad_weight), _pointer(grad_bias), _pointer(grad_in), n, h, w, c,
        )  # fmt: skip
        _check(status)
        return grad_in, grad_weight if weight is not None else None, grad_bias if ctx.has_bias else None, None, None


def batch_norm_relu_max_pool(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """max_pool2d(relu(bn(x)), 2), updating bn's running statistics in training as bn(x) would: callers check
    `can_fuse_batch_norm_relu_max_pool(bn, x)` first."""
    mean, invstd = _batch_statistics(bn, x)
    weight, bias = bn.weight, bn.bias
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in (weight, bias))):
        return _BatchNormReLUMaxPool.apply(x, weight, bias, mean, invstd)
    return _batch_norm_pool_forward(x, mean, invstd, weight, bias, keep_where=False)[0]


# --- dropout ----------------------------------------------------------------------------------------------

_DROPOUT_KERNELS = {torch.float32: "dropout_f32", torch.bfloat16: "dropout_bf16"}
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _signed(value: int) -> int:
    """A 64-bit constant as torch's int64 holds it (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: torch.Tensor, k: int) -> torch.Tensor:
    """Unsigned (logical) right shift of int64 values: torch's >> keeps the sign."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def dropout_bits(n: int, seed: int) -> torch.Tensor:
    """The 16 random bits of each of n positions: `kernels/dropout.c`'s hash, in torch operations (int64 products
    wrap around as the C's unsigned ones do). The fallback without the kernels, and the tests' oracle."""
    position = torch.arange(n, dtype=torch.int64)
    z = _signed(seed) + ((position >> 2) + 1) * _signed(_GOLDEN)
    z = (z ^ _shift_right(z, 30)) * _signed(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _signed(_MIX2)
    z = z ^ _shift_right(z, 31)
    return (z >> (16 * (position & 3))) & 0xFFFF


def dropout_threshold(rate: float) -> int:
    """A value is kept when its 16 bits are at least this: with probability 1 - rate, to 1/65,536."""
    return round(rate * 65536)


@functools.cache  # a few (rate, dtype) pairs per model, asked twice per Dropout layer and step
def _dropout_scale(rate: float, dtype: torch.dtype) -> float:
    """1 / (1 - rate) as eager `keep.to(dtype) * scale` holds it: rounded to the tensor's dtype."""
    return float(torch.tensor(1.0 / (1.0 - rate)).to(dtype))


def _dropout_kernel(x: torch.Tensor, seed: int, rate: float) -> torch.Tensor:
    out = torch.empty_like(x)  # keeps x's layout; the mask follows memory order
    kernel = getattr(_library(), _DROPOUT_KERNELS[x.dtype])
    kernel(_pointer(x), _pointer(out), x.numel(), seed, dropout_threshold(rate), _dropout_scale(rate, x.dtype))
    return out


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, seed, rate):
        ctx.seed, ctx.rate, ctx.channels_last = seed, rate, not x.is_contiguous()
        return _dropout_kernel(x, seed, rate)

    @staticmethod
    def backward(ctx, grad):
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        return _dropout_kernel(grad.contiguous(memory_format=layout), ctx.seed, ctx.rate), None, None


def dense(x: torch.Tensor) -> bool:
    """Contiguous or channels-last: memory order is then a fixed order of the values."""
    return x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))


def dropout(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Keras' training-time dropout of a dense CPU tensor: each value zeroed with probability `rate`, the rest
    scaled by 1 / (1 - rate). One seed from torch's generator per call, so `torch.manual_seed` (and a resumed
    run's saved generator) fix the masks; in one pass with the kernels, else the same masks in torch ops."""
    seed = int(torch.empty((), dtype=torch.int64).random_())
    if x.dtype in _DROPOUT_KERNELS and native.library() is not None:
        if torch.is_grad_enabled() and x.requires_grad:
            return _Dropout.apply(x, seed, rate)
        return _dropout_kernel(x, seed, rate)
    bits = dropout_bits(x.numel(), seed).as_strided(x.shape, x.stride())  # in memory order, as the kernel
    keep = bits >= dropout_threshold(rate)
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - rate)))


# --- which layers fuse -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fusion:
    """How `Network.forward` runs one layer: `conv_relu` for a Conv2D block ending in ReLU; `pooled` for such a
    block, or an Activation('relu') layer, whose ReLU moves into the 2x2 max pool that is its only consumer (the
    pool's own layer then takes `relu_pool`), and for a BatchNormalization whose only consumer is such an
    Activation('relu') (the pool then takes it as `batch_norm`)."""

    conv_relu: bool = False
    pooled: bool = False
    relu_pool: bool = False
    batch_norm: str | None = None  # the BatchNormalization layer's name: the module is looked up when run


def is_conv_relu(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Sequential)
        and len(module) == 2
        and isinstance(module[0], nn.Conv2d)
        and isinstance(module[1], nn.ReLU)
    )


def is_pool_2x2(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.MaxPool2d)
        and as_pair(module.kernel_size) == (2, 2)
        and as_pair(module.stride) == (2, 2)
        and as_pair(module.padding) == (0, 0)
        and as_pair(module.dilation) == (1, 1)
        and not module.ceil_mode
        and not module.return_indices
    )


def plan(blocks: nn.ModuleDict, graph: list[tuple[str, tuple[str, ...]]]) -> dict[str, Fusion]:
    """The fusions `forward` may use, by layer name; a layer not named runs as built."""
    consumers: dict[str, list[str]] = {}
    for name, inputs in graph:
        for i in inputs:
            consumers.setdefault(i, []).append(name)
    fusions: dict[str, Fusion] = {}
    for name, inputs in graph:
        conv, relu = is_conv_relu(blocks[name]), isinstance(blocks[name], nn.ReLU)
        if not (conv or relu):
            continue
        after = consumers.get(name, [])
        if len(after) == 1 and is_pool_2x2(blocks[after[0]]):
            fusions[name] = Fusion(pooled=True)
            norm = _batch_norm_feeding(name, inputs, blocks, consumers) if relu else None
            if norm is not None:
                fusions[norm] = Fusion(pooled=True)
            fusions[after[0]] = Fusion(relu_pool=True, batch_norm=norm)
        elif conv:
            fusions[name] = Fusion(conv_relu=True)
    return fusions


def _batch_norm_feeding(
    name: str, inputs: tuple[str, ...], blocks: nn.ModuleDict, consumers: dict[str, list[str]]
) -> str | None:
    """The BatchNormalization layer that is layer `name`'s one input and has no other consumer, if any."""
    if len(inputs) != 1 or inputs[0] not in blocks:
        return None
    before = inputs[0]
    return before if isinstance(blocks[before], nn.BatchNorm2d) and consumers[before] == [name] else None


def run(fusion: Fusion, blocks: nn.ModuleDict, name: str, x: torch.Tensor) -> torch.Tensor:
    """Layer `name`'s output under `fusion`, falling back to the layer as built when a condition does not hold."""
    block = blocks[name]
    if fusion.relu_pool:
        if fusion.batch_norm is not None:
            norm = blocks[fusion.batch_norm]
            assert isinstance(norm, nn.BatchNorm2d)  # as planned
            if can_fuse_batch_norm_relu_max_pool(norm, x):
                return batch_norm_relu_max_pool(norm, x)
            x = norm(x)
        return relu_max_pool(x) if can_fuse_relu_max_pool(x) else block(F.relu(x))
    if not isinstance(block, nn.Sequential):  # pooled: a ReLU or BatchNormalization the pool runs
        return x
    conv = block[0]  # the plan fuses Conv2d + ReLU blocks only (is_conv_relu)
    assert isinstance(conv, nn.Conv2d)
    if fusion.pooled:
        return conv(x)
    return conv_relu(conv, x) if can_fuse_conv_relu(conv, x) else block(x)

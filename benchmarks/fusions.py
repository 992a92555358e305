"""What each fusion of `models/fused.py` is worth, in training steps and in prediction, measured in one process.

    python -m benchmarks.fusions [--model cnn] [--batch-size 32] [--rounds 8]   # fit's training step
    python -m benchmarks.fusions --predict [--batch-size 64] [--rounds 8]       # predict_proba's forward pass

The `cnn` preset (or `fast`, whose BatchNorm fuses into its pools in bf16), channels-last, as `fit` and
`predict_proba` run it: with every fusion, with each one taken out, and with none. The variants take turns within every round, so a busy moment of this shared machine slows all of
them alike (separate processes, as in benchmarks/ablation.py, differ by more than these fusions are worth here);
the table gives the median over rounds and the speed against the unfused variant of the same rounds. Dropout is
the identity in prediction, and the convolution + ReLU fusion is prediction's only (`fused.can_fuse_conv_relu`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

import convscope as cs
from benchmarks.ablation import stored_mask_dropout
from convscope.models.fused import Fusion
from convscope.models.layers import KerasDropout
from convscope.training.adam import KerasAdam
from convscope.training.allocator import keep_freed_memory

NONE = "no fusion (the eager layers)"
NO_BATCH_NORM = "BatchNorm not fused (torch's layer, then the fused ReLU + pool)"
Variant = Callable[[nn.Module, Fusion], Fusion | None]  # a planned fusion, changed or dropped (None)


def _every(block: nn.Module, fusion: Fusion) -> Fusion | None:
    return fusion


def _no_batch_norm(block: nn.Module, fusion: Fusion) -> Fusion | None:
    return None if isinstance(block, nn.BatchNorm2d) else replace(fusion, batch_norm=None)


def _no_relu_pool(block: nn.Module, fusion: Fusion) -> Fusion | None:
    return None if fusion.relu_pool or fusion.pooled else fusion  # BatchNorm's fusion runs in the pool too


def _no_conv_relu(block: nn.Module, fusion: Fusion) -> Fusion | None:
    return None if fusion.conv_relu else fusion


def _none(block: nn.Module, fusion: Fusion) -> Fusion | None:
    return None


# name: (how the planned fusions change, whether Dropout runs the kernel)
TRAINING: dict[str, tuple[Variant, bool]] = {
    "every fusion": (_every, True),
    NO_BATCH_NORM: (_no_batch_norm, True),
    "ReLU + max pool not fused (torch's layers)": (_no_relu_pool, True),
    "dropout mask drawn and stored (int64 bits)": (_every, False),
    NONE: (_none, False),
}
PREDICTION: dict[str, tuple[Variant, bool]] = {
    "every fusion": (_every, True),
    NO_BATCH_NORM: (_no_batch_norm, True),
    "ReLU not fused into the convolution": (_no_conv_relu, True),
    "ReLU + max pool not fused (torch's layers)": (_no_relu_pool, True),
    NONE: (_none, True),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predict", action="store_true", help="prediction's forward pass instead of a training step")
    p.add_argument("--batch-size", type=int, help="default 32 for training, 64 (predict_proba's) for prediction")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=30, help="steps per variant and round")
    p.add_argument("--model", default="cnn", choices=["cnn", "fast"], help="the preset (fast: BatchNorm fuses)")
    args = p.parse_args(argv)
    batch = args.batch_size or (64 if args.predict else 32)
    keep_freed_memory()
    torch.manual_seed(0)
    model = cs.build(args.model, (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).train(not args.predict)
    plan, kernel_dropout = dict(model.fusions), KerasDropout.forward
    optimizer = KerasAdam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def train_step(precision: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def predict(precision: str) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            torch.softmax(model(x).float(), dim=1)

    step, variants = (predict, PREDICTION) if args.predict else (train_step, TRAINING)
    variants = _that_change_something(variants, model, plan)
    command = (
        f"python -m benchmarks.fusions --model {args.model}{' --predict' if args.predict else ''} --batch-size {batch}"
    )
    print(f"`{command} --rounds {args.rounds}`\n")
    print("| precision | variant | ms per step | images/s | vs no fusion |")
    print("|---|---|---:|---:|---:|")
    for precision in ("bf16", "fp32") if _native_bf16() else ("fp32",):
        # the BatchNorm kernel is bf16's only (fused.can_fuse_batch_norm_relu_max_pool): in fp32 that row would
        # time the same code as "every fusion"
        measured = {name: v for name, v in variants.items() if not (precision == "fp32" and name == NO_BATCH_NORM)}
        times: dict[str, list[float]] = {name: [] for name in measured}
        for _ in range(args.rounds):
            for name, (change, dropout_kernel) in measured.items():
                model.fusions = _changed(plan, change, model.blocks)
                KerasDropout.forward = kernel_dropout if dropout_kernel else stored_mask_dropout  # type: ignore[method-assign]
                for _ in range(3):
                    step(precision)
                started = time.perf_counter()
                for _ in range(args.steps):
                    step(precision)
                times[name].append((time.perf_counter() - started) / args.steps)
        base = statistics.median(times[NONE])
        for name, ts in times.items():
            t = statistics.median(ts)
            print(f"| {precision} | {name} | {1000 * t:.2f} | {batch / t:,.0f} | {base / t:.2f}x |")
    return 0


def _native_bf16() -> bool:
    """On a CPU without native bf16 (AVX2), bf16 is emulated and `fit`'s `--precision auto` keeps fp32: the
    table then has fp32's rows only."""
    from convscope.training.fit import resolve_precision

    return resolve_precision("auto", torch.device("cpu")) == "bf16"


def _changed(plan: dict[str, Fusion], change: Variant, blocks: nn.ModuleDict) -> dict[str, Fusion]:
    changed = {layer: change(blocks[layer], f) for layer, f in plan.items()}
    return {layer: f for layer, f in changed.items() if f is not None}


def _that_change_something(
    variants: dict[str, tuple[Variant, bool]], model: nn.Module, plan: dict[str, Fusion]
) -> dict[str, tuple[Variant, bool]]:
    """The variants that differ from "every fusion" for this model (`fast` has no Dropout, no Conv2D + ReLU)."""
    has_dropout = any(isinstance(m, KerasDropout) for m in model.modules())
    return {
        name: (change, kernel)
        for name, (change, kernel) in variants.items()
        if name in ("every fusion", NONE)
        or _changed(plan, change, model.blocks) != plan
        or (has_dropout and not kernel)
    }


if __name__ == "__main__":
    raise SystemExit(main())

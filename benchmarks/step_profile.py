"""Where a training step (or a prediction batch) of the `cnn` goes, and the most these convolutions allow.

    python -m benchmarks.step_profile [--batch-size 32] [--precision bf16] [--steps 40] [--inference]

Profiles `fit`'s step (the same model, fused Adam, dropout and allocator settings) or, with
`--inference`, `predict_proba`'s forward pass in inference mode, with torch's profiler, and splits
the time into convolutions (forward, backward, with their GFLOP/s) and everything else (pooling,
BatchNorm, ReLU, dropout, loss, Adam, Python). `bound_images_per_second` is the rate a loop would
reach if everything but the convolutions took no time: no loop on these kernels can beat it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import convscope as cs
from convscope.training.adam import KerasAdam
from convscope.training.allocator import keep_freed_memory

CONV_FORWARD = ("aten::mkldnn_convolution", "aten::convolution_overrideable", "mkldnn::_convolution_pointwise")
CONV_BACKWARD = ("aten::convolution_backward",)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--inference", action="store_true", help="a prediction batch instead of a training step")
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.manual_seed(0)
    model = cs.build("cnn", (28, 28, 1), 10).to(memory_format=torch.channels_last).train(not args.inference)
    optimizer = KerasAdam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(args.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))

    def step() -> None:
        if args.inference:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                torch.softmax(model(x).float(), dim=1)
            return
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_s = (time.perf_counter() - started) / args.steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / args.steps / 1e6
    forward = sum(e.self_cpu_time_total for e in events if e.key in CONV_FORWARD) / args.steps / 1e6
    backward = sum(e.self_cpu_time_total for e in events if e.key in CONV_BACKWARD) / args.steps / 1e6
    conv_layers = [layer.flops for layer in cs.summary(model, print_fn=None).layers if layer.type == "Conv2D"]
    conv_flops, first = sum(conv_layers), conv_layers[0]
    # backward: the input gradient and the weight gradient each cost a forward (the first conv has no input gradient)
    forward_flops, backward_flops = conv_flops * args.batch_size, (2 * conv_flops - first) * args.batch_size
    print(
        json.dumps(
            {
                "mode": "inference" if args.inference else "training",
                "batch_size": args.batch_size,
                "precision": args.precision,
                "step_ms": 1000 * step_s,
                "profiled_step_ms": 1000 * total,
                "conv_forward_ms": 1000 * forward,
                "conv_forward_gflops": forward_flops / forward / 1e9,
                "conv_backward_ms": 1000 * backward,
                "conv_backward_gflops": backward_flops / backward / 1e9 if backward else None,
                "conv_share": (forward + backward) / total,
                "other_ms": 1000 * (total - forward - backward),
                "images_per_second": args.batch_size / step_s,
                "bound_images_per_second": args.batch_size / (forward + backward),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

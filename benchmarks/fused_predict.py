"""What each fusion of `models/fused.py` is worth in prediction: the `cnn`'s forward pass as `predict_proba` runs
it (batches of 64, channels-last, inference mode), with every fusion, with each one taken out, and with none.

    python -m benchmarks.fused_predict [--batch-size 64] [--rounds 8]

The variants run in one process, one after another in every round, so a busy moment slows all of them; the
table gives the median over rounds and the speed against the unfused forward of the same rounds. (Dropout is
the identity in prediction, so its kernel does not appear here; benchmarks/ablation.py times it in training.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import convscope as cs
from convscope.training.allocator import keep_freed_memory

VARIANTS = {
    "every fusion": lambda f: True,
    "ReLU not fused into the convolution": lambda f: not f.conv_relu,
    "ReLU + max pool not fused (torch's layers)": lambda f: not (f.relu_pool or f.pooled),
    "no fusion (the eager layers)": lambda f: False,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=40, help="forward passes per variant and round")
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.manual_seed(0)
    model = cs.build("cnn", (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).eval()
    plan = dict(model.fusions)
    x = torch.rand(args.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    print(f"`python -m benchmarks.fused_predict --batch-size {args.batch_size} --rounds {args.rounds}`\n")
    print("| precision | variant | ms per batch | images/s | vs no fusion |")
    print("|---|---|---:|---:|---:|")
    for precision in ("bf16", "fp32"):
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for _ in range(args.rounds):
                for name, keep in VARIANTS.items():
                    model.fusions = {layer: f for layer, f in plan.items() if keep(f)}
                    for _ in range(5):
                        torch.softmax(model(x).float(), dim=1)
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        torch.softmax(model(x).float(), dim=1)
                    times[name].append((time.perf_counter() - started) / args.steps)
        base = statistics.median(times["no fusion (the eager layers)"])
        for name, ts in times.items():
            t = statistics.median(ts)
            print(f"| {precision} | {name} | {1000 * t:.2f} | {args.batch_size / t:,.0f} | {base / t:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

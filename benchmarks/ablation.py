"""Ablation of the fit loop's speed knobs, one at a time against the loop `fit` uses.

    python -m benchmarks.ablation [--repeats 3] [--images 4000] [--batch-size 128]

Each variant trains the `cnn` preset for 3 epochs in a fresh process with `fit`'s own epoch loop
(`training/loop.py`: gather a batch from resident tensors, forward, loss, backward, Adam) and
one knob changed; the first epoch (one-off setup) and the median of the others are reported,
as ratios against the baseline measured in the same run. A fresh process each matters: glibc's
malloc thresholds, once set, stay set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BASELINE = {
    "precision": "fp32",
    "layout": "channels_last",
    "adam": "fused",
    "threads": 0,
    "compile": False,
    "eval_batch": 64,
    "grad_mode": "inference",
    "malloc": "kept",
    "dropout": "kernel",
    "relu_pool": True,
}
PREVIOUS = {"malloc": "glibc", "dropout": "bernoulli", "adam": "default"}  # the loop before these three were kept
UNFUSED = {"relu_pool": False, "dropout": "stored"}  # the loop before models/fused.py
VARIANTS = {
    "baseline (fit's loop, fp32)": {},
    "bf16 autocast": {"precision": "bf16"},
    "bf16, ReLU + max pool not fused (torch's layers)": {"precision": "bf16", "relu_pool": False},
    "bf16, dropout mask drawn and stored (int64 bits)": {"precision": "bf16", "dropout": "stored"},
    "bf16, neither fusion": {**UNFUSED, "precision": "bf16"},
    "fp32, neither fusion": UNFUSED,
    "glibc's own malloc thresholds": {"malloc": "glibc"},
    "torch's dropout (bernoulli_)": {"dropout": "bernoulli"},
    "Adam unfused (torch's default)": {"adam": "default"},
    "all three above (the previous loop)": PREVIOUS,
    "the previous loop in bf16": {**PREVIOUS, "precision": "bf16"},
    "NCHW contiguous instead of channels_last": {"layout": "contiguous"},
    "1 thread": {"threads": 1},
    "torch.compile": {"compile": True},
    "eval batch 1024": {"eval_batch": 1024},
    "eval in no_grad instead of inference_mode": {"grad_mode": "no_grad"},
}


def train_variant(knobs: dict, images: int, batch_size: int, epochs: int = 3) -> dict:
    import numpy as np
    import torch

    import convscope as cs
    from convscope.data.scaling import MinMaxScaler
    from convscope.models.layers import KerasDropout
    from convscope.training.allocator import keep_freed_memory
    from convscope.training.loop import EpochLoop, ResidentFeed, Tensors, autocast_for

    if knobs["threads"]:
        torch.set_num_threads(knobs["threads"])
    if knobs["malloc"] == "kept":
        keep_freed_memory()
    if knobs["dropout"] == "bernoulli":  # this process only: every Dropout layer takes torch's own path
        KerasDropout.forward = torch.nn.Dropout.forward
    if knobs["dropout"] == "stored":
        KerasDropout.forward = stored_mask_dropout
    data = cs.load(_data())
    data = data.subset(np.arange(min(images, len(data))))
    cut = int(len(data) * 0.8)
    train, val = data.subset(np.arange(cut)), data.subset(np.arange(cut, len(data)))
    scaler = MinMaxScaler.fit(train.images)
    t, v = Tensors.of(train, scaler, torch.device("cpu")), Tensors.of(val, scaler, torch.device("cpu"))
    model = cs.build("cnn", data.input_shape, data.num_classes, seed=0)
    model.fusions = _fusions(model.fusions, knobs)
    if knobs["layout"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    else:
        t, v = Tensors(t.x.contiguous(), t.y), Tensors(v.x.contiguous(), v.y)
    opts = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[knobs["adam"]]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, **opts)
    grad_mode = torch.inference_mode if knobs["grad_mode"] == "inference" else torch.no_grad
    # fit's own epoch loop (training/loop.py), with the knobs put in from outside
    loop = EpochLoop(
        model,
        optimizer,
        ResidentFeed(t),
        ResidentFeed(v),
        batch_size,
        torch.Generator().manual_seed(0),
        autocast_for(torch.device("cpu"), knobs["precision"]),
        net=torch.compile(model) if knobs["compile"] else None,
    )
    torch.manual_seed(0)
    seconds, val_acc = [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        loop.train_epoch()
        val_acc = loop.validate(batch_size=knobs["eval_batch"], grad_mode=grad_mode)[1]
        seconds.append(time.perf_counter() - started)
    return {
        "first_epoch": seconds[0],
        "steady_epoch": statistics.median(seconds[1:]),
        "val_accuracy": val_acc,
        "images_per_epoch": len(data),
    }


def _fusions(plan: dict, knobs: dict) -> dict:
    """`Network.forward`'s fusions, without the ReLU + pool kernel when that knob is off. (The convolution +
    ReLU fusion is prediction's only: training runs the eager pair either way.)"""
    if knobs["relu_pool"]:
        return plan
    return {name: fusion for name, fusion in plan.items() if not (fusion.relu_pool or fusion.pooled)}


def stored_mask_dropout(self, x):
    """The dropout before the kernel: 16 bits per value from torch's int64 draws, a mask kept for backward."""
    import torch

    if not self.training or self.p == 0:
        return x
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    keep = words.view(torch.int16)[:n].as_strided(x.shape, x.stride()) >= -32768 + round(self.p * 65536)
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - self.p)))


def _data() -> str:
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist-10k")
    return shared if os.path.isdir(shared) else "mnist-5k"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="ablation of the fit loop's speed knobs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--only", help="comma-separated variant numbers (1 = the baseline, always run), default all")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(train_variant({**BASELINE, **VARIANTS[args.variant]}, args.images, args.batch_size)))
        return 0

    names = list(VARIANTS)
    if args.only:
        picked = {int(k) for k in args.only.split(",")} | {1}
        names = [name for i, name in enumerate(names, 1) if i in picked]
    results: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(args.repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotate the order every repetition
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.ablation",
                "--variant",
                name,
                "--images",
                str(args.images),
                "--batch-size",
                str(args.batch_size),
            ]
            load = os.getloadavg()[0]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[name].append({**json.loads(done.stdout.strip().splitlines()[-1]), "load": load})
            print(f"{name}: {results[name][-1]}", file=sys.stderr, flush=True)
    base = statistics.median(r["steady_epoch"] for r in results[names[0]])
    print(
        f"`python -m benchmarks.ablation --repeats {args.repeats} --images {args.images} --batch-size {args.batch_size}"
        f"{' --only ' + args.only if args.only else ''}`; "
        f"median load average {statistics.median(r['load'] for rs in results.values() for r in rs):.1f}\n"
    )
    print("| variant | first epoch s | steady epoch s | speed vs baseline | val accuracy after 3 epochs |")
    print("|---|---|---|---|---|")
    for name, rs in results.items():
        steady = statistics.median(r["steady_epoch"] for r in rs)
        print(
            f"| {name} | {statistics.median(r['first_epoch'] for r in rs):.2f} | {steady:.2f} | {base / steady:.2f}x | "
            f"{statistics.median(r['val_accuracy'] for r in rs):.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

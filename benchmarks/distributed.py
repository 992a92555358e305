"""Distributed and streamed training: throughput on 1 vs 2 DDP ranks, and peak memory of streamed vs in-memory data.

    python benchmarks/distributed.py throughput [--repeats 3] [--batch 32 128] [--device cpu]
    python benchmarks/distributed.py memory [--images 14000] [--side 256]

Throughput: the `cnn` preset on mnist-5k's 3,200 training images, one epoch after a warm-up epoch,
same global batch and seed for both; 1 rank uses every core, 2 ranks split them (1 thread each on 2
cores); a 1-rank, 1-thread run is measured too, to tell parallel ranks from thread contention.  Images per second are the median over repeats; the 2-rank figure is reported as a ratio
against the 1-rank run of the same repeat, because the machine is shared and absolute times drift.

Memory: the kernel's high-water mark (VmHWM) of a fresh process that trains one epoch on an .npy of
N x side x side x 1 uint8 images, streamed (`cs.stream`) or loaded (`cs.load`, float32 tensors resident).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

import convscope as cs
from convscope.training.distributed import DistContext, launch


def _epoch_seconds(batch: int, device: str, ctx: DistContext | None, threads: int | None = None) -> float:
    data = cs.load("mnist-5k")
    train, _ = data.split(0.2, seed=0)
    model = cs.build("cnn", data.input_shape, data.num_classes, seed=0)
    trained = cs.fit(
        model, train, epochs=2, batch_size=batch, device=device, verbose=False, distributed=ctx, threads=threads
    )  # None on a rank: it keeps the count its launcher set
    return trained.history.rows[-1]["seconds"], len(train)


def _rank_main(batch: int, device: str, out: str, ctx: DistContext) -> None:
    seconds, n = _epoch_seconds(batch, device, ctx)
    if ctx.is_main:
        Path(out).write_text(json.dumps({"seconds": seconds, "images": n}))


def throughput(repeats: int, batches: list[int], device: str) -> dict:
    results = {}
    for batch in batches:
        ones, ones_1t, twos, ratios, ratios_1t = [], [], [], [], []
        default_threads = torch.get_num_threads()
        for _ in range(repeats):
            seconds, n = _epoch_seconds(batch, device, None, default_threads)
            seconds_1t, _ = _epoch_seconds(batch, device, None, 1)
            torch.set_num_threads(default_threads)
            with tempfile.TemporaryDirectory() as tmp:
                launch(2, _rank_main, (batch, device, f"{tmp}/r.json"), device=device)
                two = json.loads(Path(f"{tmp}/r.json").read_text())
            ones.append(n / seconds)
            ones_1t.append(n / seconds_1t)
            twos.append(two["images"] / two["seconds"])
            ratios.append(twos[-1] / ones[-1])
            ratios_1t.append(twos[-1] / ones_1t[-1])
        results[batch] = {
            f"1 rank ({default_threads} threads) img/s": statistics.median(ones),
            "1 rank (1 thread) img/s": statistics.median(ones_1t),
            "2 ranks (1 thread each) img/s": statistics.median(twos),
            "2 ranks / 1 rank all threads (median ratio)": statistics.median(ratios),
            "2 ranks / 1 rank 1 thread (median ratio)": statistics.median(ratios_1t),
            "ratios": ratios,
            "ratios_1_thread": ratios_1t,
        }
        print(batch, results[batch], flush=True)
    return results


MEMORY_CHILD = """
    import sys, time
    import convscope as cs
    from convscope.data.streaming import stream
    path, mode = sys.argv[1], sys.argv[2]
    data = stream(path) if mode == "stream" else cs.load(path)
    model = cs.build({"layers": [{"MaxPool2D": {"pool_size": 16}}, {"Flatten": {}},
                                 {"Dense": {"units": "num_classes", "activation": "softmax"}}]},
                     data.input_shape, data.num_classes, seed=0)
    started = time.perf_counter()
    trained = cs.fit(model, data, epochs=1, batch_size=64, validation_split=0.1, verbose=False)
    seconds = time.perf_counter() - started
    hwm = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) * 1024
    print(hwm, seconds, trained.history.rows[0]["val_accuracy"])
"""


def memory(n: int, side: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, side, side, 1))
        labels = np.arange(n) % 2
        for start in range(0, n, 1000):
            block = np.full((min(1000, n - start), side, side, 1), 40, np.uint8)
            block[labels[start : start + len(block)] == 1, : side // 2] = 200
            images[start : start + len(block)] = block
        images.flush()
        del images
        np.save(Path(tmp) / "big_labels.npy", labels)
        out = {"data_bytes_uint8": n * side * side, "float32_bytes": 4 * n * side * side}
        for mode in ("stream", "load"):
            done = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(MEMORY_CHILD), str(path), mode], capture_output=True, text=True
            )
            hwm, seconds, acc = done.stdout.split() if done.returncode == 0 else ("nan", "nan", done.stderr[-300:])
            out[mode] = {"peak_rss_bytes": float(hwm), "epoch_seconds": float(seconds), "val_accuracy": acc}
            print(mode, out[mode], flush=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["throughput", "memory"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=14000)
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    result = (
        throughput(args.repeats, args.batch, args.device)
        if args.what == "throughput"
        else memory(args.images, args.side)
    )
    print(json.dumps(result, indent=2))

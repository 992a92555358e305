"""The serving engines at the batcher's batch sizes: torch eager, onnxruntime, OpenVINO.

    python benchmarks/serve_engines.py RUN [--sizes 1,4,16,32,64,256] [--repeats 5] [--threads N]

For each engine that is installed: its parity with the run's `predict_proba` (max |difference| in
a probability over the check images, at every size) and its images/s per batch size, medians of
--repeats rounds; engines are interleaved within a round so that the machine's load falls on all
of them alike. Ratios are against torch in the same round. This is what `--engine auto` does at
startup, in small.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import convscope as cs
from convscope.errors import UserError
from convscope.serving import engines


def images_per_second(forward, images: np.ndarray, size: int, seconds: float) -> float:
    batch = images[:size]
    forward(batch)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(batch)
        count += size
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sizes", default="1,4,16,32,64,256")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per engine, size and repeat")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)
    trained = cs.load_run(args.run)
    print(
        f"run {args.run}: precision {engines.precision_of(trained)}, tolerance {engines.tolerance(trained):g}, "
        f"{args.threads} threads",
        flush=True,
    )
    loaded = {}
    for name in engines.ENGINES:
        try:
            loaded[name] = engines.load(trained, name, sizes, args.threads)
            print(f"{name}: parity {loaded[name].parity:.2g}", flush=True)
        except UserError as exc:
            print(f"{name}: left out: {exc}", flush=True)
    images = engines.check_images(trained, max(sizes))
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for size in sizes:
            for name, engine in loaded.items():
                rates.setdefault((name, size), []).append(images_per_second(engine.forward, images, size, args.seconds))
    print(f"\nimages/s, median of {args.repeats} (x torch: median of per-round ratios)")
    print("engine       " + "".join(f"{'batch ' + str(s):>22}" for s in sizes))
    for name in loaded:
        cells = []
        for size in sizes:
            ratio = statistics.median(a / b for a, b in zip(rates[(name, size)], rates[("torch", size)]))
            cells.append(f"{statistics.median(rates[(name, size)]):>12,.0f} ({ratio:4.2f}x)")
        print(f"{name:12} " + "".join(f"{c:>22}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

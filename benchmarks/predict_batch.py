"""Prediction throughput against batch size and precision, for one trained run.

    python -m benchmarks.predict_batch RUN [--data ../shared/data/mnist-10k] [--images 4096] [--repeats 5]

Every configuration runs once to warm up, then the configurations alternate for `--repeats`
rounds; the table shows median images per second and the ratio to batch 1024 in fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import convscope as cs

CONFIGS = [(1024, "fp32"), (256, "fp32"), (64, "fp32"), (32, "fp32"), (256, "bf16"), (64, "bf16")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist-10k"))
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    trained = cs.load_run(args.run_dir)
    data = cs.load(args.data if Path(args.data).exists() else "mnist-5k")
    images = data.images[: args.images]
    seconds: dict[tuple[int, str], list[float]] = {c: [] for c in CONFIGS}
    for batch, precision in CONFIGS:
        trained.predict_proba(images, batch_size=batch, precision=precision)
    for _ in range(args.repeats):
        for batch, precision in CONFIGS:
            start = time.perf_counter()
            trained.predict_proba(images, batch_size=batch, precision=precision)
            seconds[(batch, precision)].append(time.perf_counter() - start)

    base = len(images) / statistics.median(seconds[CONFIGS[0]])
    print(f"{len(images)} images, {args.repeats} alternating rounds, medians")
    print("| batch | precision | images/s | vs batch 1024 fp32 |\n|---|---|---|---|")
    for (batch, precision), times in seconds.items():
        rate = len(images) / statistics.median(times)
        print(f"| {batch} | {precision} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()

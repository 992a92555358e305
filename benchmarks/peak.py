"""What these cores can do at best on convolution: the roof to compare the fit loop's FLOP/s with.

A 3x3 convolution, 64 -> 64 channels on 56x56 images, batch 32, channels-last: large enough for
oneDNN to reach its best kernels. Prints one JSON line with the best of several runs, fp32 and bf16.
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F


def best_flops(dtype: torch.dtype, repeats: int = 10) -> float:
    x = torch.randn(32, 64, 56, 56).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    flops = 2 * 32 * 64 * 64 * 9 * 56 * 56
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            F.conv2d(x, w, padding=1)
        for _ in range(repeats):
            t = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - t)
    return flops / best


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "fp32_flops": best_flops(torch.float32, repeats),
                "bf16_flops": best_flops(torch.bfloat16, repeats),
            }
        )
    )

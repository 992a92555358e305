"""Keep freed tensor memory in the process, so the next training step does not page-fault it back in.

On the CPU, torch allocates every activation with malloc. glibc hands big blocks (from 128 KiB,
raised on the fly up to the size of the last freed block) straight to the kernel with mmap and
gives them back on free, and trims the heap whenever 2x that much lies free at its top. A
training step frees and re-allocates the same few megabytes of activations, so each step
faulted them in again, page by page: 860 minor faults a step for the `cnn` at batch 32 in bf16,
14,000 at batch 128 in fp32, where a fault costs a few microseconds on these machines (the
`cnn`'s fit 1.05x to 1.35x slower; see the ablation in BENCHMARKS.md). Fixing both thresholds keeps the freed blocks for
reuse: the process's peak memory is unchanged, it only returns memory to the system later.
"""

from __future__ import annotations

import ctypes
import functools
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling on 64-bit; blocks above it (a 1,024-image batch) still go to mmap
TRIM_THRESHOLD = 1 * 2**30  # free memory at the heap's top kept for reuse before any is returned


@functools.cache  # once per process: prediction calls it for every image it serves
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; True if they were set.

    Other C libraries (musl, macOS) and a preloaded allocator without mallopt are left alone,
    and False says so.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols the process already has: glibc's, where it is glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

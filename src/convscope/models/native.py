"""The C kernels in `kernels/`, compiled once per machine and loaded with ctypes.

They need no torch headers, so a C compiler builds them in well under a second: on first use, into
`$XDG_CACHE_HOME/convscope/kernels` (else `~/.cache/convscope/kernels`), named by a hash of the source,
the compiler and the flags, and written under a temporary name then renamed, so concurrent processes never
load a half-written library. Without a compiler, or if the build fails, `library()` is None and every
caller keeps torch's eager path. `CONVSCOPE_NATIVE=0` turns the kernels off (the ablation's switch, and a
way out should a machine's compiler misbehave).

    python -m convscope.models.native   # build now (make install does), print where the library is
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..paths import cache_root

KERNELS = Path(__file__).parent / "kernels"
SOURCES = sorted(KERNELS.glob("*.c"))
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11")


def cache_dir(env: dict[str, str] | None = None) -> Path:
    return cache_root(dict(os.environ) if env is None else env) / "kernels"


def enabled(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return env.get("CONVSCOPE_NATIVE", "1") != "0"


def _compiler() -> str | None:
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def _key(compiler: str) -> str:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256(version.encode())
    digest.update(" ".join(FLAGS).encode())
    # -march=native: the same cache folder may be shared by machines with other CPUs
    digest.update(_cpu_flags().encode())
    for source in sorted(KERNELS.glob("*.[ch]")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return sys.platform
    return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), sys.platform)


def build(target_dir: Path | None = None) -> Path | None:
    """The compiled library's path, building it if this machine has none yet; None without a working compiler."""
    compiler = _compiler()
    if compiler is None or not SOURCES:
        return None
    target_dir = target_dir or cache_dir()
    target = target_dir / f"convscope-kernels-{_key(compiler)}.so"
    if target.is_file():
        return target
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
            partial = Path(scratch) / target.name
            done = subprocess.run(
                [compiler, *FLAGS, *map(str, SOURCES), "-o", str(partial), "-lm"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                return None
            os.replace(partial, target)
    except OSError:
        return None
    return target


@functools.cache  # one load per process; the kernels are pure functions of their arguments
def library() -> ctypes.CDLL | None:
    """The kernels, loaded; None when they are turned off or cannot be built here."""
    if not enabled():
        return None
    import torch  # noqa: F401  (torch's libgomp first, so the kernels' OpenMP calls resolve to the same runtime)

    path = build()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    for name in ("relu_max_pool_f32", "relu_max_pool_bf16"):
        getattr(lib, f"{name}_forward").argtypes = [pointer, pointer, pointer, size, size, size, size]
        getattr(lib, f"{name}_backward").argtypes = [pointer, pointer, pointer, pointer, size, size, size, size]
    for name in ("dropout_f32", "dropout_bf16"):
        getattr(lib, name).argtypes = [pointer, pointer, size, ctypes.c_uint64, ctypes.c_uint16, ctypes.c_float]
    real = ctypes.c_double
    lib.batch_norm_statistics_bf16.argtypes = [pointer, size, size, real, real, *[pointer] * 4]
    lib.batch_norm_statistics_bf16.restype = ctypes.c_int
    lib.batch_norm_relu_max_pool_bf16_forward.argtypes = [*[pointer] * 7, size, size, size, size]
    lib.batch_norm_relu_max_pool_bf16_backward.argtypes = [*[pointer] * 10, size, size, size, size]
    lib.batch_norm_relu_max_pool_bf16_backward.restype = ctypes.c_int
    return lib


def main() -> int:
    path = build() if enabled() else None
    print(path if path else "no C kernels here (no compiler, a failed build, or CONVSCOPE_NATIVE=0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

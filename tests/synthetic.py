"""Small generated datasets for tests: learnable in an epoch or two, no files needed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

import convscope as cs


def tiny_dataset(n: int = 240, size: int = 8, seed: int = 0) -> cs.Dataset:
    """Two classes a small CNN separates within an epoch or two: bright top half vs bright bottom half."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, size=(n, size, size, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        half = slice(0, size // 2) if label == 0 else slice(size // 2, size)
        images[i, half] += 150
    return cs.Dataset(images, labels.astype(np.int64), ("top", "bottom"), "tiny")


# No BatchNorm, no Dropout: runs split across processes or machines equal one process's up to float
# summation order.
PLAIN_SPEC = {
    "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPool2D": {}},
        {"Flatten": {}},
        {"Dense": {"units": "num_classes", "activation": "softmax"}},
    ]
}

SMALL_SPEC = {
    "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPool2D": {}},
        {"BatchNormalization": {}},
        {"Dropout": {"rate": 0.2}},
        {"Flatten": {}},
        {"Dense": {"units": "num_classes", "activation": "softmax"}},
    ]
}


def write_tiny_npz(folder: Path, n: int, size: int = 12) -> Path:
    """`tiny_dataset` as a real .npz file with keys x (N, H, W) and y."""
    data = tiny_dataset(n=n, size=size)
    path = folder / "tiny.npz"
    np.savez(path, x=data.images[..., 0], y=data.labels)
    return path


def write_tiny_run_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    """(tiny.npz, small.yaml) in `folder`: `tiny_dataset(n)` as a file with keys x and y, and SMALL_SPEC."""
    import yaml

    data = tiny_dataset(n=n)
    np.savez(folder / "tiny.npz", x=data.images[..., 0], y=data.labels)
    (folder / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    return folder / "tiny.npz", folder / "small.yaml"


def tiny_run_args(data: Path, spec: Path, out: Path, *extra: str) -> list[str]:
    """`convscope train` arguments for a run of seconds: 2 epochs of batch 16 on the CPU, quiet, no report."""
    return [
        "train",
        "--data",
        str(data),
        "--model",
        str(spec),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-report",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def png(image: np.ndarray) -> bytes:
    """One (H, W, 1) uint8 image as the bytes of a grayscale PNG file, as a client uploads it."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()

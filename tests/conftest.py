"""Fixtures shared by the test suites: one small trained run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """`cnn` on mnist-5k for 3 epochs (about 5 s on 2 cores): good enough to have both hits and mistakes."""
    import convscope as cs

    out = tmp_path_factory.mktemp("runs") / "cnn-run"
    cs.train("mnist-5k", "cnn", epochs=3, patience=3, out=out, verbose=False)
    return out


@pytest.fixture(scope="session")
def mnist_10k() -> Path:
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{SHARED_MNIST} is absent")
    return SHARED_MNIST

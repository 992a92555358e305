"""Fixtures shared by the test suites: one small trained run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """`cnn` on mnist-5k for 6 epochs (about 8 s on 2 cores): ~97% test accuracy, so both hits and a few mistakes.

    Fewer epochs leave the Keras-momentum (0.99) BatchNorm statistics unsettled and test accuracy near 40%.
    """
    import convscope as cs

    out = tmp_path_factory.mktemp("runs") / "cnn-run"
    cs.train("mnist-5k", "cnn", epochs=6, patience=3, out=out, verbose=False)
    return out


@pytest.fixture(scope="session")
def mnist_10k() -> Path:
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{SHARED_MNIST} is absent")
    return SHARED_MNIST

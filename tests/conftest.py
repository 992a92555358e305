"""Fixtures that more than one test file uses, each defined here once: the small trained runs (made once per
session), what is read back from them, the real MNIST test set, an interrupted run's `--resume` state and a
PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"


def pytest_configure(config) -> None:
    """The suite speaks English whatever the machine's locale (LANG=ko_KR.UTF-8 would otherwise give Korean
    messages): set before any fixture runs, so the servers and commands the tests start inherit it too. The Korean
    checks (test_i18n.py) ask for Korean explicitly."""
    os.environ["CONVSCOPE_LANG"] = "en"


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
def mlp_run(tmp_path_factory) -> Path:
    """`mlp` on scikit-learn's 8 x 8 digits for 1 epoch, no report (about a second): a real run directory for
    the suites that feed commands and the server bad input, where the model's accuracy does not matter."""
    import convscope as cs

    out = tmp_path_factory.mktemp("runs") / "mlp-run"
    cs.train("digits", "mlp", epochs=1, out=out, verbose=False, report=False)
    return out


@pytest.fixture(scope="session")
def trained(trained_run):
    """The `trained_run` loaded: the `predict_proba` the server's answers are compared with."""
    import convscope as cs

    return cs.load_run(trained_run)


@pytest.fixture(scope="module")
def view(trained_run):
    """Everything a page, a figure or a notebook cell shows of `trained_run`, read back from its directory."""
    from convscope.presentation.view import load_view

    return load_view(trained_run)


@pytest.fixture(scope="session")
def interrupted(tmp_path_factory) -> tuple[Path, Path]:
    """(folder, out): a tiny run killed in its second epoch (tests/resume_states.py). Tests damage copies of its
    state (`resume_states.copy_state`), never the state itself, so one serves the whole session."""
    from resume_states import make_interrupted

    return make_interrupted(tmp_path_factory.mktemp("resume-state"))


@pytest.fixture(scope="session")
def mnist_10k() -> Path:
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{SHARED_MNIST} is absent")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def letters_run(tmp_path_factory) -> Path:
    """A small CNN on notMNIST-like letters A-J (white, stretched to fill a black 28 x 28 frame) in two thirds
    of the installed fonts; `glyphs.held_out_fonts()` are the other third. About 5 s on 2 idle cores."""
    import convscope as cs
    import glyphs

    fonts = glyphs.truetype_fonts()
    if len(fonts) < 6:
        pytest.skip(
            "fewer than 6 TrueType fonts installed (make system-deps installs fonts-dejavu and fonts-liberation)"
        )
    images, labels = glyphs.letters_dataset(glyphs.training_fonts())
    data = cs.Dataset(images, labels, tuple(glyphs.LETTERS), "notMNIST-like letters")
    model = cs.build(glyphs.SMALL_CNN, input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    trained = cs.fit(model, data, epochs=10, verbose=False, seed=0)
    return cs.save_run(trained, tmp_path_factory.mktemp("runs") / "letters-run")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of its own for the session (tests/postgres.py); skips, saying why, where there is none."""
    from postgres import Unavailable, postgres_server

    pytest.importorskip("psycopg", reason="the sweep extra's PostgreSQL driver (psycopg) is not installed")
    try:
        server_context = postgres_server()
        server = server_context.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server_context.__exit__(None, None, None)

"""`cs.load(..., explain=True)`: every step from the stored arrays to what a model trains on, in the course's
order, with the shape and value range after it. The course's own numpy lines are the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope.data.describe import steps_text


def _steps(data: cs.Dataset) -> list[tuple[str, tuple[int, ...], float | None, float | None]]:
    return [(s.name, s.shape, s.low, s.high) for s in data.steps]


def test_a_course_mat_file_shows_transpose_reshape_scale_labels_and_one_hot(tmp_path, capsys):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 7)
    stored = rng.integers(3, 251, size=(28, 28, labels.size), dtype=np.uint8)  # notMNIST's (28, 28, N)
    scipy_io.savemat(tmp_path / "letters.mat", {"X": stored, "y": labels})

    data = cs.load(tmp_path / "letters.mat", class_names="ABCDEFGHIJ", explain=True)

    # the course, step by step
    x = scipy_io.loadmat(tmp_path / "letters.mat")["X"]
    transposed = x.transpose(2, 0, 1)
    reshaped = transposed.reshape(-1, 28, 28, 1)
    scaled = (reshaped - reshaped.min()) / (reshaped.max() - reshaped.min())
    one_hot = np.eye(10)[labels]  # Keras' to_categorical
    course = [
        ("as stored", x.shape, x.min(), x.max()),
        ("transpose", transposed.shape, transposed.min(), transposed.max()),
        ("reshape", reshaped.shape, reshaped.min(), reshaped.max()),
        ("scale", scaled.shape, scaled.min(), scaled.max()),
        ("labels", labels.shape, labels.min(), labels.max()),
        ("one-hot", one_hot.shape, one_hot.min(), one_hot.max()),
    ]
    assert _steps(data) == [(n, tuple(s), float(lo), float(hi)) for n, s, lo, hi in course]
    np.testing.assert_array_equal(data.images, reshaped)  # the steps describe what was actually done
    assert "(x - 3) / (250 - 3)" in data.steps[3].note

    printed = capsys.readouterr().out
    assert printed.strip() == steps_text(data.steps).strip()
    lines = printed.splitlines()
    assert lines[0] == "data steps:" and [line.split()[0] for line in lines[1:]] == [
        "as",
        "transpose",
        "reshape",
        "scale",
        "labels",
        "one-hot",
    ]
    assert "(70, 10)" in lines[-1] and "values 0 .. 1" in lines[-1]
    assert "(28, 28, 70)" in lines[1] and "values 3 .. 250" in lines[1]
    # describe and the notebook view list the same steps
    assert steps_text(data.steps) in cs.describe(data)
    from convscope.presentation.dataset import dataset_html

    html = dataset_html(data)
    assert all(f"step: {s.name}" in html for s in data.steps)


def test_without_explain_nothing_is_printed_but_the_steps_are_kept(tmp_path, capsys):
    images = np.arange(6 * 5 * 4, dtype=np.uint8).reshape(6, 5, 4, 1) % 17  # already (N, H, W, C), values 0 .. 16
    np.savez(tmp_path / "d.npz", x=images, y=np.array([0, 1, 2, 0, 1, 2]))
    data = cs.load(tmp_path / "d.npz")
    assert capsys.readouterr().out == ""
    assert _steps(data) == [
        ("as stored", (6, 5, 4, 1), 0.0, 16.0),  # nothing to transpose or reshape
        ("scale", (6, 5, 4, 1), 0.0, 1.0),
        ("labels", (6,), 0.0, 2.0),
        ("one-hot", (6, 3), 0.0, 1.0),
    ]


def test_channels_first_arrays_show_their_transpose(tmp_path):
    images = np.zeros((8, 1, 6, 5), dtype=np.uint8)  # (N, C, H, W), as PyTorch stores images
    images[:, 0, 1, 2] = 200
    np.savez(tmp_path / "nchw.npz", x=images, y=np.arange(8) % 2)
    data = cs.load(tmp_path / "nchw.npz", layout="NCHW")
    names = [s.name for s in data.steps]
    assert names == ["as stored", "transpose", "scale", "labels", "one-hot"]
    assert data.steps[1].shape == images.transpose(0, 2, 3, 1).shape == data.images.shape
    assert (data.steps[1].low, data.steps[1].high) == (0.0, 200.0)

"""The layout rule of `convscope.data.layout`, case by case, including ties the labels decide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.data import load
from convscope.data.layout import to_nhwc
from convscope.errors import UserError


def numbered(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize(
    ("shape", "n_labels", "axes", "expected"),
    [
        ((5, 4, 3), 5, (0, 1, 2), (5, 4, 3, 1)),  # N,H,W
        ((4, 3, 5), 5, (2, 0, 1), (5, 4, 3, 1)),  # H,W,N (notMNIST .mat)
        ((5, 4, 3, 1), 5, (0, 1, 2, 3), (5, 4, 3, 1)),  # N,H,W,C
        ((5, 3, 4, 6), 5, (0, 2, 3, 1), (5, 4, 6, 3)),  # N,C,H,W
        ((4, 6, 3, 5), 5, (3, 0, 1, 2), (5, 4, 6, 3)),  # H,W,C,N
        ((5, 4, 4, 4), 5, (0, 1, 2, 3), (5, 4, 4, 4)),  # RGBA channels-last
    ],
)
def test_each_layout(shape: tuple[int, ...], n_labels: int, axes: tuple[int, ...], expected: tuple[int, ...]) -> None:
    array = numbered(*shape)
    out = to_nhwc(array, n_labels)
    assert out.shape == expected and out.flags.c_contiguous
    flat = expected[:3] + (-1,)
    np.testing.assert_array_equal(out.reshape(flat), array.transpose(axes).reshape(flat))


def test_flat_rows_square_and_rgb() -> None:
    assert to_nhwc(numbered(6, 784), 6).shape == (6, 28, 28, 1)
    rgb = numbered(2, 3 * 4)
    out = to_nhwc(rgb, 2)
    assert out.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(out[0, 0, 1], [3, 4, 5])  # pixel-by-pixel R,G,B
    transposed = to_nhwc(numbered(9, 7), 7)  # (pixels, N), MATLAB-style feature columns
    assert transposed.shape == (7, 3, 3, 1)
    np.testing.assert_array_equal(transposed[:, 0, 0, 0], np.arange(7))


def test_label_count_decides_ambiguous_cases() -> None:
    # (28, 28, 28): every axis could be N; the first wins.
    cube = numbered(28, 28, 28)
    np.testing.assert_array_equal(to_nhwc(cube, 28)[..., 0], cube)
    # (6, 6, 10) with 10 labels: N is last, not first.
    assert to_nhwc(numbered(6, 6, 10), 10).shape == (10, 6, 6, 1)
    # (6, 6, 6): first and last tie; first wins.
    assert to_nhwc(numbered(6, 8, 6), 6).shape == (6, 8, 6, 1)
    # (3, 5, 5, 3): N could be first or last; first wins, then channels-last.
    np.testing.assert_array_equal(to_nhwc(numbered(3, 5, 5, 3), 3), numbered(3, 5, 5, 3))
    # (4, 3, 7, 3): second and last axes could both be channels; channels-last wins (Keras' default).
    assert to_nhwc(numbered(4, 3, 7, 3), 4).shape == (4, 3, 7, 3)
    # no label count: N first
    assert to_nhwc(numbered(4, 6, 6)).shape == (4, 6, 6, 1)


@pytest.mark.parametrize(
    ("layout", "shape", "expected"),
    [
        ("NHWC", (2, 3, 3, 3), (2, 3, 3, 3)),
        ("nchw", (2, 3, 3, 3), (2, 3, 3, 3)),
        ("NHW", (3, 3, 3), (3, 3, 3, 1)),
        ("HWN", (3, 3, 3), (3, 3, 3, 1)),
        ("HWCN", (3, 3, 3, 3), (3, 3, 3, 3)),
    ],
)
def test_layout_override(layout: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    array = numbered(*shape)
    out = to_nhwc(array, 3 if layout != "NHWC" and layout != "nchw" else 2, layout=layout)
    assert out.shape == expected
    if layout.upper() == "HWN":
        np.testing.assert_array_equal(out[1, ..., 0], array[:, :, 1])
    if layout.upper() == "NCHW":
        np.testing.assert_array_equal(out[1, ..., 2], array[1, 2])  # channels-first read as such, not guessed


def test_layout_override_through_load(tmp_path: Path) -> None:
    cube = numbered(3, 3, 3).astype(np.uint8)  # every axis has the label count: the rule says N first
    np.savez(tmp_path / "cube.npz", x=cube, y=np.array([0, 1, 2]))
    np.testing.assert_array_equal(load(tmp_path / "cube.npz").images[..., 0], cube)
    forced = load(tmp_path / "cube.npz", layout="HWN").images[..., 0]
    np.testing.assert_array_equal(forced, cube.transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("shape", "n_labels", "words"),
    [
        ((5, 4, 3), 7, ["(5, 4, 3)", "7 labels"]),
        ((5, 10), 5, ["10 values per image", "square"]),
        ((5, 6, 6, 6), 5, ["(5, 6, 6, 6)", "channel axis"]),
        ((6, 6, 5, 5), 5, ["(6, 6, 5, 5)", "channel axis"]),
        ((5,), 5, ["(5,)", "1 axes"]),
        ((2, 2, 2, 2, 2), 2, ["5 axes"]),
    ],
)
def test_impossible_shapes(shape: tuple[int, ...], n_labels: int, words: list[str]) -> None:
    with pytest.raises(UserError) as info:
        to_nhwc(np.zeros(shape), n_labels, source="f.npz")
    message = str(info.value)
    assert message.startswith("f.npz: ")
    for word in words:
        assert word in message


def test_bad_layout_name_and_wrong_rank() -> None:
    with pytest.raises(UserError, match="layout 'CHWN' is not one of NHWC, NCHW, NHW, HWN, HWCN"):
        to_nhwc(np.zeros((2, 2, 2)), 2, layout="CHWN")
    with pytest.raises(UserError, match=r"layout NHWC needs a 4-D array, but the images have shape \(2, 2, 2\)"):
        to_nhwc(np.zeros((2, 2, 2)), 2, layout="NHWC")
    with pytest.raises(UserError, match="reads shape .* as 4 images, but there are 2 labels"):
        to_nhwc(np.zeros((4, 2, 2)), 2, layout="NHW")

"""Every supported format round-trips small real files: shapes, dtypes, exact pixels, labels, names."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from convscope.data import BUILTIN_NAMES, Dataset, describe, imbalance_warning, load, read_image

RNG = np.random.default_rng(0)
IDX_TYPES = {np.dtype("u1"): 0x08, np.dtype(">f4"): 0x0D, np.dtype(">i2"): 0x0B}


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """IDX bytes by hand: 00 00 type ndim, big-endian uint32 dims, big-endian values."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    body = struct.pack(">BBBB", 0, 0, IDX_TYPES[dtype], array.ndim)
    body += struct.pack(f">{array.ndim}I", *array.shape) + array.astype(dtype).tobytes()
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def write_mat73(path: Path, **arrays: tuple[np.ndarray, str]) -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte header, HDF5, column-major axes, MATLAB_class."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, (value, matlab_class) in arrays.items():
            dataset = f.create_dataset(key, data=np.asarray(value).T)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path


def images_and_labels(n: int = 12, h: int = 5, w: int = 4, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    y = np.arange(n) % classes
    return x, y


# ---- IDX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_train_and_t10k_pair_become_predefined_split(tmp_path: Path, gz: bool) -> None:
    x, y = images_and_labels(12)
    xt, yt = images_and_labels(6)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y.astype(np.uint8), gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", xt, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", yt.astype(np.uint8), gz)

    for source in (tmp_path, tmp_path / f"train-images-idx3-ubyte{suffix}"):
        data = load(source)
        assert data.images.shape == (12, 5, 4, 1) and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images[..., 0], x)
        np.testing.assert_array_equal(data.labels, y)
        assert data.labels.dtype == np.int64
        assert data.class_names == ("0", "1", "2")
        assert data.source == str(source)
        assert data.predefined_test is not None
        np.testing.assert_array_equal(data.predefined_test.images[..., 0], xt)
        np.testing.assert_array_equal(data.predefined_test.labels, yt)
        train, test = data.split()
        assert len(train) == 12 and len(test) == 6


def test_idx_mixed_gzip_labels_file_path_and_float_values(tmp_path: Path) -> None:
    x = RNG.random((6, 3, 3)).astype(">f4")
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1, 0, 1], np.uint8))
    data = load(tmp_path / "train-labels-idx1-ubyte")  # a labels path finds its images
    assert data.images.dtype == np.float32 and data.predefined_test is None
    np.testing.assert_array_equal(data.images[..., 0], x.astype(np.float32))


def test_idx_folder_with_only_test_pair_is_the_whole_dataset(tmp_path: Path) -> None:
    x, y = images_and_labels(9)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y.astype(np.uint8), gz=True)
    data = load(tmp_path)
    assert len(data) == 9 and data.predefined_test is None


MNIST_10K = Path(__file__).parents[2] / "shared/data/mnist-10k"


def test_shared_mnist_10k() -> None:
    if not MNIST_10K.is_dir():
        pytest.skip(f"{MNIST_10K} is not present")
    data = load(MNIST_10K)
    assert data.images.shape == (10000, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.num_classes == 10 and data.predefined_test is None
    assert data.images.max() == 255


# ---- npz / npy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys", [("x", "y"), ("X", "Y"), ("X", "y"), ("images", "labels"), ("data", "labels"), ("features", "targets")]
)
def test_npz_key_pairs(tmp_path: Path, keys: tuple[str, str]) -> None:
    x, y = images_and_labels()
    np.savez(tmp_path / "d.npz", **{keys[0]: x, keys[1]: y})
    data = load(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.images[..., 0], x)
    np.testing.assert_array_equal(data.labels, y)


def test_npz_keras_style_split_one_hot_and_float_images(tmp_path: Path) -> None:
    x, y = images_and_labels(12)
    xt, yt = images_and_labels(6)
    one_hot = np.eye(3, dtype=np.float32)[y]
    np.savez(tmp_path / "k.npz", x_train=x / 255.0, y_train=one_hot, x_test=xt / 255.0, y_test=yt.astype(np.float64))
    data = load(tmp_path / "k.npz", class_names="cat,dog,fox")
    assert data.images.dtype == np.float32 and data.images.shape == (12, 5, 4, 1)
    np.testing.assert_allclose(data.images[..., 0], x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.labels, y)
    assert data.class_names == ("cat", "dog", "fox")
    assert data.predefined_test is not None and data.predefined_test.class_names == data.class_names
    np.testing.assert_array_equal(data.predefined_test.labels, yt)


def test_npz_string_labels_sorted_or_given(tmp_path: Path) -> None:
    x, _ = images_and_labels(4)
    np.savez(tmp_path / "s.npz", x=x, y=np.array(["dog", "cat", "dog", "ant"]))
    data = load(tmp_path / "s.npz")
    assert data.class_names == ("ant", "cat", "dog")
    np.testing.assert_array_equal(data.labels, [2, 1, 2, 0])
    data = load(tmp_path / "s.npz", class_names=["dog", "cat", "ant"])
    np.testing.assert_array_equal(data.labels, [0, 1, 0, 2])


def test_npz_rgb_nchw_and_character_class_names(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, size=(10, 3, 6, 7), dtype=np.uint8)
    y = np.arange(10)
    np.savez(tmp_path / "c.npz", x=x, y=y)
    data = load(tmp_path / "c.npz", class_names="ABCDEFGHIJ")
    assert data.images.shape == (10, 6, 7, 3)
    np.testing.assert_array_equal(data.images, x.transpose(0, 2, 3, 1))
    assert data.class_names == tuple("ABCDEFGHIJ")


@pytest.mark.parametrize("labels_name", ["x_labels.npy", "labels.npy"])
def test_npy_with_sibling_labels(tmp_path: Path, labels_name: str) -> None:
    x, y = images_and_labels()
    np.save(tmp_path / "x.npy", x.reshape(len(x), -1)[:, :16].reshape(-1, 16))  # flat 4x4
    np.save(tmp_path / labels_name, y.astype(np.int32))
    data = load(tmp_path / "x.npy")
    assert data.images.shape == (12, 4, 4, 1)
    np.testing.assert_array_equal(data.images.reshape(12, 16), x.reshape(12, -1)[:, :16])
    np.testing.assert_array_equal(data.labels, y)


# ---- MATLAB ----------------------------------------------------------------------------------


def test_mat_v5_notmnist_layout(tmp_path: Path) -> None:
    x, y = images_and_labels(7, 6, 6, classes=3)
    hwn = np.ascontiguousarray(x.transpose(1, 2, 0))  # notMNIST: (28, 28, N), labels (N,)
    scipy.io.savemat(tmp_path / "notmnist.mat", {"images": hwn, "labels": y.astype(np.float64)})
    data = load(tmp_path / "notmnist.mat", class_names="ABC")
    assert data.images.shape == (7, 6, 6, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], x)
    np.testing.assert_array_equal(data.labels, y)
    assert data.class_names == ("A", "B", "C")


def test_mat_v73_written_like_matlab(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, size=(8, 5, 5, 3), dtype=np.uint8)
    y = np.arange(8) % 2 + 1
    hwcn = x.transpose(1, 2, 3, 0)  # MATLAB (H, W, C, N), as SVHN ships it
    write_mat73(tmp_path / "svhn.mat", X=(hwcn, "uint8"), y=(y.reshape(-1, 1).astype(np.float64), "double"))
    assert h5py.File(tmp_path / "svhn.mat")["X"].shape == (8, 3, 5, 5)  # what h5py sees, reversed
    data = load(tmp_path / "svhn.mat")
    assert data.images.shape == (8, 5, 5, 3)
    np.testing.assert_array_equal(data.images, x)
    np.testing.assert_array_equal(data.labels, y)
    assert data.class_names == ("0", "1", "2")  # 1-based labels leave class 0 empty
    assert "class '0' has no images" in (imbalance_warning(data) or "")


# ---- CSV -------------------------------------------------------------------------------------


def test_csv_with_header_label_column_not_first(tmp_path: Path) -> None:
    x, y = images_and_labels(5, 3, 3)
    names = np.array(["cat", "dog", "emu"])[y]
    lines = ["p" + ",p".join(str(i) for i in range(4)) + ",label," + ",".join(f"p{i}" for i in range(4, 9))]
    for img, name in zip(x.reshape(5, 9), names):
        cells = [str(v) for v in img]
        lines.append(",".join(cells[:4] + [name] + cells[4:]))
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n\n")
    data = load(tmp_path / "t.csv")
    assert data.images.shape == (5, 3, 3, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], x)
    assert data.class_names == ("cat", "dog", "emu")
    np.testing.assert_array_equal(data.labels, y)


def test_csv_without_header_gzipped_rgb(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, size=(4, 2, 2, 3), dtype=np.uint8)
    y = np.array([1, 0, 1, 0])
    text = "\n".join(f"{label}," + ",".join(map(str, img.reshape(-1))) for img, label in zip(x, y))
    (tmp_path / "rgb.csv.gz").write_bytes(gzip.compress(text.encode()))
    data = load(tmp_path / "rgb.csv.gz")
    assert data.images.shape == (4, 2, 2, 3)
    np.testing.assert_array_equal(data.images, x)
    np.testing.assert_array_equal(data.labels, y)
    assert data.class_names == ("0", "1")


def test_csv_headerless_text_labels_and_numbered_header(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("cat,0,1,2,3\r\ndog,4,5,6,7\r\ncat,8,9,10,11\r\n")
    data = load(tmp_path / "a.csv")
    assert len(data) == 3 and data.class_names == ("cat", "dog")
    np.testing.assert_array_equal(data.images[2, ..., 0], [[8, 9], [10, 11]])
    (tmp_path / "b.csv").write_text("label,0,1,2,3\n1,0,0.5,1,1\n0,1,1,1,1\n")
    data = load(tmp_path / "b.csv")
    assert len(data) == 2 and data.images.dtype == np.float32
    np.testing.assert_array_equal(data.labels, [1, 0])


# ---- image folders ---------------------------------------------------------------------------


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_image_folder_grayscale_png_bmp_exact(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    b = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    _save(tmp_path / "zebra" / "1.png", a)
    _save(tmp_path / "ant" / "2.bmp", b)
    _save(tmp_path / "ant" / "3.PNG", a)
    (tmp_path / "ant" / "notes.txt").write_text("not a picture")
    data = load(tmp_path)
    assert data.class_names == ("ant", "zebra")
    assert data.images.shape == (3, 6, 5, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], [b, a, a])
    np.testing.assert_array_equal(data.labels, [0, 0, 1])


def test_image_folder_mixed_colour_resize_and_overrides(tmp_path: Path) -> None:
    _save(tmp_path / "red" / "1.jpg", np.full((10, 10, 3), (200, 30, 30), np.uint8))
    _save(tmp_path / "gray" / "1.png", np.full((20, 16), 90, np.uint8))
    palette = Image.fromarray(np.full((4, 4), 50, np.uint8)).convert("P")
    palette.save(tmp_path / "gray" / "2.gif")
    data = load(tmp_path)  # one colour picture -> RGB; first picture (gray/1.png) sets the size
    assert data.images.shape == (3, 20, 16, 3)
    assert abs(int(data.images[2, 5, 5, 0]) - 200) <= 3 and abs(int(data.images[2, 5, 5, 1]) - 30) <= 3
    assert (data.images[0] == 90).all()
    data = load(tmp_path, image_size=8, channels=1)
    assert data.images.shape == (3, 8, 8, 1)
    data = load(tmp_path, image_size=(4, 6), class_names="gray,red")
    assert data.images.shape == (3, 4, 6, 3)


def test_read_image_from_bytes_transparency_and_size(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[1, 2] = (0, 0, 0, 255)  # one opaque black pixel on a transparent canvas
    path = tmp_path / "drawing.png"
    Image.fromarray(rgba, "RGBA").save(path)
    gray = read_image(path.read_bytes(), None, 1)
    assert gray.shape == (4, 6, 1) and gray.dtype == np.uint8
    assert gray[1, 2, 0] == 0 and gray[0, 0, 0] == 255
    assert read_image(str(path), (8, 3), 3).shape == (8, 3, 3)
    wide = tmp_path / "16bit.png"
    Image.fromarray(np.full((2, 2), 65535, np.uint16)).save(wide)
    assert (read_image(wide, None, 1) == 255).all()


# ---- built-ins and describe --------------------------------------------------------------------


def test_builtins() -> None:
    assert BUILTIN_NAMES == ("mnist-5k", "digits")
    mnist = load()
    assert mnist.source == "mnist-5k"
    assert mnist.images.shape == (5000, 28, 28, 1) and mnist.images.dtype == np.uint8
    assert mnist.num_classes == 10 and (mnist.class_counts() == 500).all()
    assert mnist.images.max() == 255
    digits = load("digits")
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.uint8
    assert digits.images.max() == 16 and digits.num_classes == 10


def test_describe_text_and_imbalance() -> None:
    images = np.zeros((14, 2, 2, 1), np.uint8)
    images[0] = 7
    labels = np.array([0] * 10 + [1] * 3 + [2])
    test = Dataset(images[:3], labels[:3], ("a", "b", "c"), "t")
    data = Dataset(images, labels, ("a", "b", "c"), "toy.npz", predefined_test=test)
    text = describe(data)
    for expected in ("toy.npz", "images:      14", "2 x 2 x 1", "uint8, values 0 .. 7", "classes:     3", "3 images"):
        assert expected in text
    assert "heavy class imbalance" in text and "'a' has 10 images" in text
    balanced = Dataset(images[:2], np.array([0, 1]), ("a", "b"))
    assert imbalance_warning(balanced) is None and "warning" not in describe(balanced)

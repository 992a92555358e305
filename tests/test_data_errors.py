"""Every user mistake is one `UserError` sentence naming the file, the key and the numbers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.data import load, read_image
from convscope.errors import UserError


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    body = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    body += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def error(*args: object, **kwargs: object) -> str:
    with pytest.raises(UserError) as info:
        load(*args, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def npz(tmp_path: Path, name: str = "train.npz", **arrays: np.ndarray) -> Path:
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


X = np.zeros((6, 4, 4), np.uint8)
Y = np.array([0, 1, 2, 0, 1, 2])


def test_missing_paths_and_unknown_names(tmp_path: Path) -> None:
    assert error(tmp_path / "nope.npz") == f"{tmp_path / 'nope.npz'}: no such file or folder."
    message = error("mnist-6k")
    assert "mnist-6k" in message and "mnist-5k, digits" in message


def test_unsupported_extension_lists_formats(tmp_path: Path) -> None:
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    message = error(tmp_path / "data.parquet")
    assert "'.parquet'" in message and ".npz" in message and ".mat" in message and ".csv" in message


def test_count_mismatch_names_keys_and_counts(tmp_path: Path) -> None:
    path = npz(tmp_path, x=np.zeros((100, 4, 4)), y=np.arange(99) % 3)
    assert error(path) == f"{path}: 'x' holds 100 images but 'y' holds 99 labels."


def test_nan_and_inf_are_counted(tmp_path: Path) -> None:
    x = np.zeros((6, 4, 4))
    x[2, 0, 0], x[3, 1, 1], x[3, 1, 2] = np.nan, np.inf, -np.inf
    message = error(npz(tmp_path, x=x, y=Y))
    assert "'x' holds 3 NaN/inf pixel values (first in image 2)" in message


def test_empty_dataset(tmp_path: Path) -> None:
    message = error(npz(tmp_path, x=np.zeros((0, 4, 4)), y=np.zeros(0)))
    assert "train.npz: 'x' holds no images" in message
    (tmp_path / "e.csv").write_text("label,p0\n")
    assert "holds a header but no rows" in error(tmp_path / "e.csv")


def test_single_class(tmp_path: Path) -> None:
    message = error(npz(tmp_path, x=X, y=np.full(6, 4)))
    assert "'y' puts all 6 images in one class ('4')" in message and "at least 2 classes" in message
    assert "one class" in error(npz(tmp_path, "s.npz", x=X, y=np.array(["cat"] * 6)))


def test_labels_out_of_range_and_not_whole(tmp_path: Path) -> None:
    path = npz(tmp_path, x=X, y=np.array([0, 1, 12, 0, 1, 0]))
    assert error(path, class_names="a,b,c") == (
        f"{path}: 'y' holds label 12, outside 0..2 for the 3 class names given."
    )
    assert "holds label -1 at position 1" in error(npz(tmp_path, "n.npz", x=X, y=np.array([0, -1, 1, 0, 1, 0])))
    assert "holds 0.5 at position 2, not a whole number" in error(
        npz(tmp_path, "f.npz", x=X, y=np.array([0, 1, 0.5, 0, 1, 0]))
    )
    message = error(npz(tmp_path, "s.npz", x=X, y=np.array(["cat", "dog"] * 3)), class_names="cat,emu")
    assert "'dog', which is not one of the 2 class names (cat, emu)" in message
    message = error(npz(tmp_path, "h.npz", x=X, y=np.eye(4)[Y]), class_names="a,b,c")
    assert "one-hot rows of width 4, but there are 3 class names" in message


def test_bad_class_names_and_options(tmp_path: Path) -> None:
    path = npz(tmp_path, x=X, y=Y)
    assert "repeat a" in error(path, class_names="a,b,a")
    assert "empty name" in error(path, class_names="a,,b")
    assert "layout 'WHN'" in error(path, layout="WHN")
    assert "image_size and channels apply only to folders of pictures" in error(path, image_size=28)


def test_npz_without_known_keys_and_pickles(tmp_path: Path) -> None:
    message = error(npz(tmp_path, pictures=X, answers=Y))
    assert "holds 'pictures', 'answers'" in message and "x/y" in message
    np.savez(tmp_path / "p.npz", x=X, y=np.array([{"a": 1}] * 6, dtype=object))
    assert "p.npz: not a readable .npz file without pickled objects" in error(tmp_path / "p.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive")
    assert "junk.npz: not a .npz file (a zip archive)" in error(tmp_path / "junk.npz")


def test_npy_without_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", X)
    message = error(tmp_path / "images.npy")
    assert "images.npy: a .npy file holds only images" in message and "images_labels.npy" in message


def test_idx_truncated_corrupt_and_missing_partner(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(10) % 2)
    images.write_bytes(images.read_bytes()[:5000])
    assert error(images) == (
        f"{images}: the IDX header promises 10 x 28 x 28 uint8 values (7856 bytes) but the file holds 5000 bytes."
    )
    gz = tmp_path / "gz"
    gz.mkdir()
    full = gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + b"\x00\x01\x02")
    (gz / "train-labels-idx1-ubyte.gz").write_bytes(full[:-6])
    write_idx(gz / "train-images-idx3-ubyte.gz", np.zeros((3, 2, 2)), gz=True)
    assert "train-labels-idx1-ubyte.gz: the gzip data is truncated or corrupt" in error(gz)
    (gz / "train-labels-idx1-ubyte.gz").write_bytes(b"\x01\x02\x03\x04 not idx")
    assert "not an IDX file" in error(gz)
    alone = tmp_path / "alone"
    alone.mkdir()
    write_idx(alone / "t10k-images-idx3-ubyte", np.zeros((3, 2, 2)))
    assert "its labels partner" in error(alone) and "t10k-labels-idx1-ubyte" in error(alone)


def test_idx_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 3, 3)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4) % 2)
    assert error(tmp_path) == (
        f"{tmp_path}: 'train-images-idx3-ubyte' holds 5 images but 'train-labels-idx1-ubyte' holds 4 labels."
    )


def test_corrupt_mat(tmp_path: Path) -> None:
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 40)
    assert error(tmp_path / "bad.mat").startswith(f"{tmp_path / 'bad.mat'}: not a readable MATLAB .mat file")


def test_csv_label_beyond_int64_is_named_as_written(tmp_path: Path) -> None:
    """Before: 1e20 was cast to int64, wrapped around, and the message named -9223372036854775808."""
    (tmp_path / "big.csv").write_text("label,p0,p1,p2,p3\n1e20,0,1,2,3\n1,3,2,1,0\n")
    message = error(tmp_path / "big.csv")
    assert "holds label 1e+20 at position 0, over the largest class number" in message


def test_csv_cell_with_a_newline_is_quoted_on_one_line(tmp_path: Path) -> None:
    """A quoted CSV cell may hold a newline: the message shows it escaped, so an error stays one line."""
    (tmp_path / "q.csv").write_text('0,1,2,3,4\n1,"0\n0",2,3,4\n')
    message = error(tmp_path / "q.csv")
    assert message == f"{tmp_path / 'q.csv'}: line 2, column 2 holds '0\\n0', not a number."


def test_csv_ragged_and_non_numeric(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("label,a,b,c,d\n0,1,2,3,4\n1,1,2,3\n")
    assert error(tmp_path / "r.csv") == f"{tmp_path / 'r.csv'}: line 3 has 4 columns, but the table has 5."
    (tmp_path / "n.csv").write_text("0,1,2,3,4\n1,1,x,3,4\n")
    assert error(tmp_path / "n.csv") == f"{tmp_path / 'n.csv'}: line 2, column 3 holds 'x', not a number."
    (tmp_path / "s.csv").write_text("0,1,2,3,4,5\n1,1,2,3,4,5\n")
    assert "5 values per image is neither a square" in error(tmp_path / "s.csv")


def test_unreadable_picture_in_folder_is_named(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / cls / "ok.png")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    message = error(tmp_path)
    assert message.startswith(f"{tmp_path / 'b' / 'broken.jpg'}: not a readable")
    truncated = tmp_path / "b" / "broken.jpg"
    good = tmp_path / "x.png"
    Image.fromarray(np.arange(10000, dtype=np.uint8).reshape(100, 100) % 251).save(good)
    truncated.write_bytes(good.read_bytes()[:300])
    assert error(tmp_path).startswith(f"{truncated}: not a readable")
    (tmp_path / "empty").mkdir()
    assert "holds neither IDX files nor class sub-folders" in error(tmp_path / "empty")


def test_read_image_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="uploaded image: not a PNG/JPEG/BMP/GIF image"):
        read_image(b"GIF89a garbage", None, 1)
    with pytest.raises(UserError, match="no such image file"):
        read_image(tmp_path / "missing.png", None, 1)
    with pytest.raises(UserError, match="channels must be 1 .* or 3 .*, got 2"):
        read_image(b"", None, 2)

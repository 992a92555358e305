"""Fuzzing every data loader: random headers, arrays and bytes for each format end in a `Dataset`
or one `UserError` sentence, never in another exception, a hang or a huge allocation."""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import convscope as cs
from convscope.errors import UserError
from fuzzing import assert_one_sentence, valid_or_user_error


def check_dataset(data: cs.Dataset | None) -> None:
    """What a returned dataset promises: NHWC numbers that train in float32, labels inside the class list."""
    if data is None:
        return
    assert data.images.ndim == 4 and len(data.images) == len(data.labels) > 0
    assert data.images.dtype.kind in "uif"
    if data.images.dtype.kind == "f":
        assert data.images.dtype == np.float32 and np.isfinite(data.images).all()
    assert data.labels.min() >= 0 and data.labels.max() < len(data.class_names)


def load_checked(path, **options) -> None:
    check_dataset(valid_or_user_error(cs.load, path, **options))


# --- byte mutations of a valid file ---------------------------------------------------------

mutations = st.lists(
    st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits) -> bytes:
    for edit in edits:
        at = int(edit[1] * len(data))
        if edit[0] == "truncate":
            data = data[:at]
        elif edit[0] == "overwrite":
            data = data[:at] + edit[2] + data[at + len(edit[2]) :]
        else:
            data = data[:at] + edit[2] + data[at:]
    return data


def valid_npz() -> bytes:
    out = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(out, x=rng.integers(0, 255, (6, 4, 4), dtype=np.uint8), y=np.arange(6) % 2)
    return out.getvalue()


# --- IDX ----------------------------------------------------------------------------------------


def idx_bytes(type_byte: int, dims: list[int], payload: bytes) -> bytes:
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


idx_dims = st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1), st.just(65536)), max_size=5)


@given(
    type_byte=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]),
    dims=idx_dims,
    payload=st.binary(max_size=300),
    label_dims=idx_dims,
    label_payload=st.binary(max_size=40),
    gzipped=st.booleans(),
)
@example(0x08, [65536] * 4, b"\0" * 16, [6], bytes(6), False)  # the int64 product wraps to 0
@example(0x0E, [2, 2, 2], struct.pack(">8d", *[1e300] * 8), [2], bytes([0, 1]), False)  # float32 overflow
@example(0x08, [3, 2, 2], bytes(12), [3], struct.pack(">3I", 0, 1, 2)[:3], False)
@example(0x08, [2**31, 2**31], b"", [1], b"\0", True)  # a header that claims 4 EiB, gzipped
def test_idx_headers_and_values(type_byte, dims, payload, label_dims, label_payload, gzipped):
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "train-images-idx3-ubyte"
        labels = Path(tmp) / "train-labels-idx1-ubyte"
        data = idx_bytes(type_byte, dims, payload)
        images.write_bytes(gzip.compress(data) if gzipped else data)
        labels.write_bytes(idx_bytes(0x08, label_dims, label_payload))
        load_checked(images)


@given(
    dims=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    labels=st.lists(st.integers(-2, 2**62), min_size=1, max_size=6),
)
@example([2, 2, 2], [0, 2**62])
def test_idx_labels_of_any_size(dims, labels):
    with tempfile.TemporaryDirectory() as tmp:
        n = dims[0]
        Path(tmp, "train-images-idx3-ubyte").write_bytes(idx_bytes(0x08, dims, bytes(int(np.prod(dims)))))
        values = np.array(labels[:n] + [0] * (n - len(labels[:n])), dtype=">i8").astype(">i4", casting="unsafe")
        Path(tmp, "train-labels-idx1-ubyte").write_bytes(idx_bytes(0x0C, [n], values.tobytes()))
        load_checked(Path(tmp))


# --- npz / npy ------------------------------------------------------------------------------

any_dtype = st.one_of(
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.byte_string_dtypes(max_len=4),
    hnp.unicode_string_dtypes(max_len=4),
    hnp.datetime64_dtypes(),
)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)
arrays = hnp.arrays(any_dtype, small_shapes)


def _cast(array: np.ndarray, dtype) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return array.astype(dtype)


image_arrays = st.tuples(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=5),
        elements=st.one_of(st.integers(0, 255).map(float), st.floats(), st.just(1e300)),
    ),
    st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.uint64, np.float16]),
).map(lambda t: _cast(*t))
label_arrays = hnp.arrays(
    st.sampled_from([np.int64, np.uint64, np.float64, np.int8, np.bool_, "U3"]),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
)


@given(
    x=st.one_of(arrays, image_arrays),
    y=st.one_of(arrays, label_arrays),
    key=st.sampled_from(["x", "x_train", "pictures"]),
)
def test_npz_arrays(x, y, key):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **{key: x, key.replace("x", "y").replace("pictures", "y"): y})
        load_checked(path)


@given(x=st.one_of(arrays, image_arrays), y=st.one_of(arrays, label_arrays))
def test_npy_pair(x, y):
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        np.save(Path(tmp) / "y.npy", y)
        load_checked(Path(tmp) / "x.npy")


@given(edits=mutations)
def test_npz_bytes_mutated(edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(mutate(valid_npz(), edits))
        load_checked(path)


@given(
    shape=st.lists(st.integers(0, 2**40), min_size=0, max_size=4),
    descr=st.sampled_from(["|u1", "<f8", "|O", "<i4", "V3"]),
    payload=st.binary(max_size=64),
    version=st.sampled_from([1, 2]),
)
@example([2**40, 2**40, 2**40], "<f8", b"", 1)  # 8 * 2**120 bytes declared: refused before numpy allocates
def test_npy_headers_that_lie(shape, descr, payload, version):
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "x.npy").write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + header + payload)
        np.save(Path(tmp) / "y.npy", np.arange(2) % 2)
        load_checked(Path(tmp) / "x.npy")


# --- MATLAB ---------------------------------------------------------------------------------

mat_arrays = hnp.arrays(
    st.sampled_from([np.uint8, np.float64, np.int32, np.bool_, np.complex128]),
    hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
)


@given(
    x=mat_arrays,
    y=st.one_of(mat_arrays, st.lists(st.sampled_from(["a", "b", "cc"]), min_size=1, max_size=5).map(np.array)),
    compress=st.booleans(),
    edits=st.one_of(st.none(), mutations),
)
def test_mat_v5(x, y, compress, edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.mat"
        scipy.io.savemat(path, {"X": x, "y": y}, do_compression=compress)
        if edits is not None:
            path.write_bytes(mutate(path.read_bytes(), edits))
        load_checked(path)


@given(
    x=mat_arrays.filter(lambda a: a.dtype.kind != "c"),
    y=mat_arrays.filter(lambda a: a.dtype.kind != "c"),
    matlab_class=st.sampled_from([b"double", b"char", b"uint8", b"cell", b"logical"]),
)
def test_mat_v73(x, y, matlab_class):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.mat"
        with h5py.File(path, "w") as f:
            f.create_dataset("X", data=x)
            f.create_dataset("y", data=y).attrs["MATLAB_class"] = np.bytes_(matlab_class)
        load_checked(path)


def test_mat_v73_declaring_more_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", shape=(1000, 1000, 1000), dtype=np.uint8)  # 1 GB declared, nothing stored
        f.create_dataset("y", data=np.arange(1000) % 2)
    monkeypatch.setenv("CONVSCOPE_MAX_DATA_BYTES", str(10**8))
    with pytest.raises(
        UserError,
        match=r"'X': its 1000 x 1000 x 1000 uint8 values take 1,000,000,000 bytes, "
        r"over the limit of 100,000,000 \(raise it with",
    ):
        cs.load(path)


# --- CSV ------------------------------------------------------------------------------------

cells = st.one_of(
    st.integers(-5, 300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e300", "-1e300", "cat", "", '"3"', "label", " 7 ", "0x10", "nan", "2" * 30]),
    st.text(max_size=5),
)
csv_text = st.lists(st.lists(cells, min_size=1, max_size=6).map(",".join), min_size=0, max_size=8).map("\n".join)


@given(text=csv_text, gzipped=st.booleans())
def test_csv_tables(text, gzipped):
    with tempfile.TemporaryDirectory() as tmp:
        data = text.encode("utf-8", "surrogatepass") if text else b""
        path = Path(tmp) / ("data.csv.gz" if gzipped else "data.csv")
        path.write_bytes(gzip.compress(data) if gzipped else data)
        load_checked(path)


@given(raw=st.binary(max_size=200))
def test_csv_random_bytes(raw):
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "data.csv").write_bytes(raw)
        load_checked(Path(tmp) / "data.csv")


# --- image folders --------------------------------------------------------------------------


def png(size: tuple[int, int], mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


pictures = st.one_of(
    st.tuples(
        st.integers(1, 40), st.integers(1, 40), st.sampled_from(["1", "L", "RGB", "RGBA", "P", "I;16", "LA"])
    ).map(lambda t: png((t[0], t[1]), t[2])),
    st.binary(max_size=64),
    st.tuples(st.integers(1, 20), st.integers(1, 20), mutations).map(lambda t: mutate(png((t[0], t[1]), "L"), t[2])),
)


@given(
    files=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([".png", ".gif", ".jpg", ".bmp"]), pictures),
        min_size=1,
        max_size=6,
    ),
    image_size=st.one_of(st.none(), st.integers(1, 64)),
    channels=st.sampled_from([None, 1, 3]),
)
def test_image_folders(files, image_size, channels):
    with tempfile.TemporaryDirectory() as tmp:
        for number, (label, suffix, data) in enumerate(files):
            Path(tmp, label).mkdir(exist_ok=True)
            Path(tmp, label, f"{number}{suffix}").write_bytes(data)
        load_checked(Path(tmp), image_size=image_size, channels=channels)


def test_a_decompression_bomb_in_an_image_folder_is_named_before_it_is_decoded(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("1", (10_000, 10_000)).save(tmp_path / "a" / "0-bomb.png")  # about 12 KB, 100 million pixels
    Image.new("L", (8, 8)).save(tmp_path / "a" / "1.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "b" / "1.png")
    with pytest.raises(UserError) as error:
        cs.load(tmp_path)
    assert assert_one_sentence(error.value) == (
        f"{tmp_path / 'a' / '0-bomb.png'}: the image is 10000 x 10000 = 100,000,000 pixels, over the limit of "
        "16,777,216 (raise it with the environment variable CONVSCOPE_MAX_IMAGE_PIXELS)."
    )


def test_one_large_picture_does_not_become_the_resize_target(tmp_path):
    for label, value in (("a", 0), ("b", 255)):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("L", (8, 8), value).save(tmp_path / label / f"{i}.png")
    Image.new("L", (2000, 1500)).save(tmp_path / "a" / "0-large.png")  # sorts first
    assert cs.load(tmp_path).images.shape == (7, 8, 8, 1)


# --- labels and pixels at the edges of what float32 / int64 hold ----------------------------


@pytest.mark.parametrize(
    "x, y, message",
    [
        (
            np.full((4, 3, 3), 1e300),
            np.arange(4) % 2,
            "holds pixel values from 1e+300 to 1e+300; values and their span must stay within 3.4e+38 (float32)",
        ),
        (
            np.array([-3e38, 3e38, 0, 0]).reshape(4, 1, 1).repeat(3, 1).repeat(3, 2),
            np.arange(4) % 2,
            "holds pixel values from -3e+38 to 3e+38",
        ),
        (
            np.zeros((4, 3, 3), np.uint8),
            np.array([0, 1, 0, 2**62]),
            "'y' holds label 4611686018427387904 at position 3, over the largest class number 99,999",
        ),
        (
            np.zeros((4, 3, 3), np.uint8),
            np.array([0, 1, 0, 2**64 - 1], np.uint64),
            "'y' holds label 18446744073709551615 at position 3",
        ),
        (np.zeros((4, 3, 3), np.uint8), np.array([0, 1, 0, 1e300]), "holds label 1e+300 at position 3"),
    ],
)
def test_values_beyond_float32_and_huge_labels(tmp_path, x, y, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(UserError) as error:
        cs.load(tmp_path / "d.npz")
    assert message in assert_one_sentence(error.value)


def test_more_class_names_than_classes_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 3, 3), np.uint8), y=np.arange(6) % 3)
    with pytest.raises(UserError) as error:
        cs.load(tmp_path / "d.npz", class_names="ABCDE")
    assert assert_one_sentence(error.value).endswith(
        "'y' uses only 3 of the 5 class names given; no image is labelled D, E: drop those names or check the labels."
    )

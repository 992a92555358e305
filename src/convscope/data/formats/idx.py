"""MNIST's IDX format, raw or gzipped, parsed with numpy alone.

An IDX file is: two zero bytes, a type byte, a byte with the number of axes, one big-endian
uint32 per axis, then the values, big-endian, C order.  Files come in pairs
(``*-images-idx3-ubyte`` + ``*-labels-idx1-ubyte``); a ``train`` pair with a ``t10k``/``test``
pair beside it keeps that as the predefined test split.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...i18n import _
from ..raw import RawData, RawSplit, limits

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_NAME = re.compile(r"idx\d", re.IGNORECASE)
_TEST_WORDS = ("t10k", "test")


def is_idx_name(path: Path) -> bool:
    """IDX files have no real suffix; their names carry 'idx1'/'idx3' (`train-images-idx3-ubyte.gz`)."""
    return bool(_IDX_NAME.search(path.name))


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip detected by its magic bytes, not its name) into a native-endian array.

    The header's sizes are multiplied as Python integers (no wrap-around) and checked against the
    file size and `Limits.max_bytes` before the values are read; a gzipped file is decompressed
    only up to the size its header declares, so a small bomb cannot fill memory.
    """
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
                raise UserError(
                    _("{path}: not an IDX file (it does not start with 00 00, a type byte and an axis count).").format(
                        path=path
                    )
                )
            dtype, ndim = _TYPES[head[2]], head[3]
            header = 4 + 4 * ndim
            dim_bytes = f.read(4 * ndim)
            if len(dim_bytes) < 4 * ndim:
                raise UserError(
                    _("{path}: the IDX header needs {header} bytes but the file holds {held}.").format(
                        path=path, header=header, held=4 + len(dim_bytes)
                    )
                )
            dims = tuple(int.from_bytes(dim_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
            count = math.prod(dims)
            expected = header + count * dtype.itemsize
            shape = " x ".join(str(d) for d in dims) or _("a scalar of")
            if count == 0:  # also spares numpy shapes like 4294967295 x 4294967295 x 0, which it refuses
                raise UserError(
                    _("{path}: the IDX header declares {shape} values, none at all; the dataset is empty.").format(
                        path=path, shape=shape
                    )
                )
            limits().check_bytes(
                count * dtype.itemsize,
                str(path),
                _("the header's {shape} {dtype} values").format(shape=shape, dtype=dtype.name),
            )
            if not gzipped and path.stat().st_size != expected:
                raise UserError(
                    _(
                        "{path}: the IDX header promises {shape} {dtype} values ({expected} bytes) but the file holds {held} bytes."
                    ).format(path=path, shape=shape, dtype=dtype.name, expected=expected, held=path.stat().st_size)
                )
            data = f.read(count * dtype.itemsize + 1)  # one byte more reveals trailing data
    except (OSError, EOFError, zlib.error):
        raise UserError(_("{path}: the gzip data is truncated or corrupt.").format(path=path)) from None
    if len(data) != count * dtype.itemsize:
        if len(data) > count * dtype.itemsize:
            message = (
                _(
                    "{path}: the IDX header promises {shape} {dtype} values ({expected} bytes) but the decompressed file holds more than that."
                )
                if gzipped
                else _(
                    "{path}: the IDX header promises {shape} {dtype} values ({expected} bytes) but the file holds more than that."
                )
            )
        else:
            message = (
                _(
                    "{path}: the IDX header promises {shape} {dtype} values ({expected} bytes) but the decompressed file holds {held} bytes."
                )
                if gzipped
                else _(
                    "{path}: the IDX header promises {shape} {dtype} values ({expected} bytes) but the file holds {held} bytes."
                )
            )
        raise UserError(
            message.format(path=path, shape=shape, dtype=dtype.name, expected=expected, held=header + len(data))
        )
    values = np.frombuffer(data, dtype=dtype).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # a writable native-endian copy


def load_idx(path: Path) -> RawData:
    """A folder of IDX files, or one IDX file (images or labels) whose partner sits beside it."""
    if path.is_dir():
        images = _pick_images_in_folder(path)
    else:
        images = path if _kind(path) == "images" else _partner(path, "labels", "images")
    train = _split(images)
    test = None
    if not _is_test(images):
        test_images = _find_test_pair(images)
        test = _split(test_images) if test_images is not None else None
    return RawData(train, test)


def _kind(path: Path) -> str:
    name = path.name.lower()
    return "labels" if "labels" in name or "idx1" in name else "images"


def _is_test(path: Path) -> bool:
    return any(word in path.name.lower() for word in _TEST_WORDS)


def _split(images: Path) -> RawSplit:
    labels = _partner(images, "images", "labels")
    return RawSplit(read_idx(images), read_idx(labels), str(images.parent), images.name, labels.name)


def _swap(name: str, old: str, new: str) -> str:
    return re.sub(re.escape(old), new, name, flags=re.IGNORECASE)


def _candidates(folder: Path, name: str) -> list[Path]:
    """`name` with and without `.gz`: an images file may be gzipped while its labels are not."""
    base = name[:-3] if name.lower().endswith(".gz") else name
    return [folder / base, folder / f"{base}.gz"]


def _partner(path: Path, old: str, new: str) -> Path:
    """`train-images-idx3-ubyte` <-> `train-labels-idx1-ubyte` in the same folder."""
    name = _swap(path.name, old, new)
    name = _swap(name, "idx3", "idx1") if new == "labels" else _swap(name, "idx1", "idx3")
    for candidate in _candidates(path.parent, name):
        if candidate.is_file():
            return candidate
    if new == "labels":
        message = _("{path}: its labels partner {partner} (or .gz) is missing.")
    else:
        message = _("{path}: its images partner {partner} (or .gz) is missing.")
    raise UserError(message.format(path=path, partner=path.parent / name))


def _find_test_pair(train_images: Path) -> Path | None:
    for word in _TEST_WORDS:
        name = _swap(train_images.name, "train", word)
        if name == train_images.name:
            return None
        for candidate in _candidates(train_images.parent, name):
            if candidate.is_file():
                return candidate
    return None


def _pick_images_in_folder(folder: Path) -> Path:
    """The training images file of a folder, or its test file when that is all the folder holds."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and is_idx_name(p) and _kind(p) == "images")
    unpacked = {p.name for p in found}
    images = [p for p in found if not (p.suffix.lower() == ".gz" and p.name[:-3] in unpacked)]  # x and x.gz
    if not images:
        raise UserError(_("{folder}: holds IDX labels but no IDX images file.").format(folder=folder))
    train = [p for p in images if not _is_test(p)]
    chosen = train or images
    if len(chosen) > 1:
        listed = ", ".join(p.name for p in chosen)
        raise UserError(
            _("{folder}: holds {n_chosen} IDX image files ({listed}); pass one of them.").format(
                folder=folder, n_chosen=len(chosen), listed=listed
            )
        )
    return chosen[0]

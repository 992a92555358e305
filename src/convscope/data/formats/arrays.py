"""numpy `.npz` and `.npy` files, always read with ``allow_pickle=False``.

Pickled object arrays can run code when loaded; a dataset never needs them, so they are refused.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from ...errors import UserError
from ...i18n import _
from ..raw import RawData, RawSplit, limits

# (images, labels) key pairs, tried in order, case-insensitively; the first with a test partner
# keeps it as the predefined test split.
KEY_PAIRS: tuple[tuple[str, str], ...] = (
    ("x_train", "y_train"),
    ("train_images", "train_labels"),
    ("x", "y"),
    ("images", "labels"),
    ("data", "labels"),
    ("features", "targets"),
    ("data", "target"),
    ("x_test", "y_test"),
    ("test_images", "test_labels"),
)
TEST_PAIRS: dict[tuple[str, str], tuple[str, str]] = {
    ("x_train", "y_train"): ("x_test", "y_test"),
    ("train_images", "train_labels"): ("test_images", "test_labels"),
}


def pick_keys(keys: Iterable[str], file: str) -> tuple[tuple[str, str], tuple[str, str] | None]:
    """Find the (images, labels) keys, and the test keys if the file ships a split.

    Returns the keys as spelled in the file.  Shared by `.npz` and `.mat`.
    """
    spelled = {k.lower(): k for k in keys}
    for pair in KEY_PAIRS:
        if all(k in spelled for k in pair):
            found = (spelled[pair[0]], spelled[pair[1]])
            test = TEST_PAIRS.get(pair)
            if test and all(k in spelled for k in test):
                return found, (spelled[test[0]], spelled[test[1]])
            return found, None
    listed = ", ".join(repr(k)[:40] for k in keys) or _("nothing")  # repr: a key may hold a newline
    expected = ", ".join(f"{a}/{b}" for a, b in KEY_PAIRS)
    raise UserError(
        _("{file}: holds {listed}, but no images/labels pair among {expected}.").format(
            file=file, listed=listed, expected=expected
        )
    )


def load_npz(path: Path) -> RawData:
    file = str(path)
    _check_magic(path, b"PK", _("a .npz file (a zip archive)"))
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise UserError(
                _("{file}: holds one bare array, not named arrays; save it with np.savez(x=..., y=...).").format(
                    file=file
                )
            )
        with archive:
            (x, y), test = pick_keys(archive.files, file)
            keys = (x, y, *(test or ()))
            _check_members(path, keys)
            arrays = {k: archive[k] for k in keys}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, BadZipFile... on bad bytes
        raise UserError(
            _("{file}: not a readable .npz file without pickled objects ({exc}).").format(
                file=file, exc=_first_line(exc)
            )
        ) from None
    train = RawSplit(arrays[x], arrays[y], file, x, y)
    return RawData(train, RawSplit(arrays[test[0]], arrays[test[1]], file, *test) if test else None)


def label_candidates(path: Path) -> list[str]:
    """Where the labels of an images `.npy` may live, in the order they are looked for:
    `<stem>_labels.npy`, `*labels*` for `*images*`, `y.npy` beside `x.npy`, `labels.npy`."""
    stem = path.stem
    names = [f"{stem}_labels.npy"]
    if "images" in stem:
        names.append(stem.replace("images", "labels") + ".npy")
    if stem in ("x", "X"):
        names += ["y.npy", "Y.npy"]
    names.append("labels.npy")
    return [name for name in names if name != path.name]


def labels_partner(path: Path) -> Path | None:
    for name in label_candidates(path):
        if path.with_name(name).is_file():
            return path.with_name(name)
    return None


def load_npy(path: Path) -> RawData:
    labels = labels_partner(path)
    if labels is None:
        raise UserError(
            _(
                "{path}: a .npy file holds only images; put the labels beside it as {candidates}, or save both in one .npz."
            ).format(path=path, candidates=_(" or ").join(label_candidates(path)))
        )
    train = RawSplit(_read_npy(path), _read_npy(labels), str(path.parent), path.name, labels.name)
    return RawData(train)


def _read_npy(path: Path) -> np.ndarray:
    _check_magic(path, b"\x93NUMPY", _("a .npy file"))
    with open(path, "rb") as f:
        check_npy_header(f, path.stat().st_size, str(path))
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - as in load_npz
        raise UserError(
            _("{path}: not a readable .npy file without pickled objects ({exc}).").format(
                path=path, exc=_first_line(exc)
            )
        ) from None


def check_npy_header(f: IO[bytes], size: int, file: str, key: str | None = None) -> None:
    """Compare the array an .npy header declares with the bytes that follow it, before numpy allocates.

    The element count is a Python integer product (no wrap-around); it must fit `Limits.max_bytes`
    and match the stored bytes exactly, so a lying or truncated header ends in one sentence.
    """
    where = f"{file}: '{key}'" if key else file
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(f)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, TypeError... on bad headers
        raise UserError(
            _("{where}: not a readable .npy array header ({exc}).").format(where=where, exc=_first_line(exc))
        ) from None
    if dtype.hasobject:
        if key:
            message = _("{file}: not a readable .npz file without pickled objects ('{key}' holds dtype {dtype}).")
        else:
            message = _("{file}: not a readable .npy file without pickled objects (it holds dtype {dtype}).")
        raise UserError(message.format(file=file, key=key, dtype=dtype))
    declared = math.prod(shape) * dtype.itemsize
    shown = " x ".join(str(d) for d in shape) or _("scalar")
    limits().check_bytes(declared, where, _("its {shape} {dtype} values").format(shape=shown, dtype=dtype))
    stored = size - f.tell()
    if stored != declared:
        raise UserError(
            _(
                "{where}: the header declares {shown} {dtype} values ({declared:,} bytes) but {stored:,} bytes follow it; the file is truncated or damaged."
            ).format(where=where, shown=shown, dtype=dtype, declared=declared, stored=stored)
        )


def _check_members(path: Path, keys: Iterable[str]) -> None:
    """`check_npy_header` for each array of an .npz that will be read (stored sizes from the zip directory)."""
    with zipfile.ZipFile(path) as archive:
        for key in keys:
            name = key if key in archive.NameToInfo else f"{key}.npy"
            info = archive.getinfo(name)
            with archive.open(info) as member:
                check_npy_header(member, info.file_size, str(path), key)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


def _check_magic(path: Path, magic: bytes, what: str) -> None:
    """Without this, numpy reads any other bytes as a pickle and blames pickling."""
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise UserError(
                _("{path}: not {what}; its first bytes are not {magic!r}.").format(path=path, what=what, magic=magic)
            )

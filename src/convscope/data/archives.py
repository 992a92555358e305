"""Read the published archives of the catalogue into arrays, checking that each holds what it should.

* `idx-gz`: four gzipped IDX files (MNIST, Fashion-MNIST, KMNIST), read by `formats/idx.py`.
* `emnist-zip`: NIST's `gzip.zip`, whose `gzip/emnist-<subset>-{train,test}-{images,labels}-idx?-ubyte.gz`
  members are IDX files; EMNIST stores every image transposed and numbers the letters from 1.
* `cifar10-bin`: `cifar-10-binary.tar.gz`, whose `data_batch_1..5.bin` and `test_batch.bin` hold records
  of one label byte and 3,072 pixel bytes (red, green, blue planes of 32 x 32). No pickle is read.
* `notmnist-tar`: a tar.gz of `<top>/<letter>/<name>.png`, one 28 x 28 gray picture per glyph and no
  official split; the few files no decoder reads (empty ones) are skipped by name, anything else unreadable
  is refused.
Every reader ends in `check_counts`, so an archive that is not the published one is refused by structure
even where no hash is published.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import UserError
from ..i18n import _
from .catalog import CatalogEntry
from .formats.idx import read_idx

CIFAR_RECORD = 1 + 32 * 32 * 3
MAX_PICTURE_BYTES = 1 << 20  # a notMNIST PNG takes under 2 KB; anything near this is not one


@dataclass(frozen=True)
class Arrays:
    """A dataset as uint8 (N, H, W, C) images and int64 labels 0..K-1, with its official test split if any."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


Warn = Callable[[str], None]


def read_archive(entry: CatalogEntry, paths: Sequence[Path], warn: Warn) -> Arrays:
    readers = {"idx-gz": _idx_gz, "emnist-zip": _emnist_zip, "cifar10-bin": _cifar10_bin, "notmnist-tar": _notmnist}
    arrays = readers[entry.kind](entry, list(paths), warn)
    check_counts(entry, arrays, str(paths[0].parent))
    return arrays


def check_counts(entry: CatalogEntry, arrays: Arrays, where: str) -> None:
    """The numbers the catalogue promises: images per split, image shape, labels within the classes."""
    splits: list[tuple[str, np.ndarray | None, np.ndarray | None, int]] = [
        ("train", arrays.train_images, arrays.train_labels, entry.train_images)
    ]
    if entry.test_images:
        splits.append(("test", arrays.test_images, arrays.test_labels, entry.test_images))
    for split, images, labels, expected in splits:
        if images is None or labels is None:
            raise UserError(
                _("{where}: {dataset} has no {split} split.").format(where=where, dataset=entry.name, split=split)
            )
        if len(images) != expected or len(labels) != expected or images.shape[1:] != entry.image_shape:
            raise UserError(
                _(
                    "{where}: the {split} split of {dataset} holds {n:,} images of {shape} and {m:,} labels, not the "
                    "published {expected:,} of {want}; delete the folder to download it again."
                ).format(
                    where=where,
                    split=split,
                    dataset=entry.name,
                    n=len(images),
                    shape=images.shape[1:],
                    m=len(labels),
                    expected=expected,
                    want=entry.image_shape,
                )
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(entry.class_names)):
            raise UserError(
                _("{where}: the {split} labels of {dataset} run from {low} to {high}, outside 0..{top}.").format(
                    where=where,
                    split=split,
                    dataset=entry.name,
                    low=int(labels.min()),
                    high=int(labels.max()),
                    top=len(entry.class_names) - 1,
                )
            )


def _by_name(paths: list[Path]) -> dict[str, Path]:
    return {p.name: p for p in paths}


def _idx_gz(entry: CatalogEntry, paths: list[Path], warn: Warn) -> Arrays:
    files = _by_name(paths)

    def pair(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(files[f"{prefix}-images-idx3-ubyte.gz"])
        labels = read_idx(files[f"{prefix}-labels-idx1-ubyte.gz"])
        return images[..., np.newaxis], labels.astype(np.int64)

    return Arrays(*pair("train"), *pair("t10k"))


def _emnist_zip(entry: CatalogEntry, paths: list[Path], warn: Warn) -> Arrays:
    """Each needed member goes through a temporary file so that `read_idx` checks it like any IDX file."""
    archive = paths[0]

    def member(zipped: zipfile.ZipFile, split: str, kind: str) -> np.ndarray:
        rank = 3 if kind == "images" else 1
        name = f"gzip/emnist-{entry.subset}-{split}-{kind}-idx{rank}-ubyte.gz"
        try:
            data = zipped.read(name)
        except KeyError:
            raise UserError(
                _("{path}: the archive has no member {name}; it is not NIST's EMNIST gzip.zip.").format(
                    path=archive, name=name
                )
            ) from None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / PurePosixPath(name).name
            path.write_bytes(data)
            return read_idx(path)

    try:
        with zipfile.ZipFile(archive) as zipped:
            arrays = []
            for split in ("train", "test"):
                images = member(zipped, split, "images")
                labels = member(zipped, split, "labels").astype(np.int64) - 1  # letters are numbered 1..26
                arrays += [np.ascontiguousarray(images.transpose(0, 2, 1))[..., np.newaxis], labels]
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise UserError(_("{path}: not a readable zip archive.").format(path=archive)) from None
    return Arrays(*arrays)


def _cifar10_bin(entry: CatalogEntry, paths: list[Path], warn: Warn) -> Arrays:
    archive = paths[0]
    wanted = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                name = PurePosixPath(info.name).name
                if info.isfile() and name in wanted:
                    handle = tar.extractfile(info)
                    if handle is not None:
                        found[name] = handle.read()
    except (tarfile.TarError, zlib.error, EOFError, OSError):
        raise UserError(_("{path}: not a readable tar.gz archive.").format(path=archive)) from None
    missing = [n for n in wanted if n not in found]
    if missing:
        raise UserError(
            _("{path}: the archive lacks {names}; it is not CIFAR-10's binary version.").format(
                path=archive, names=", ".join(missing)
            )
        )

    def records(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raw = b"".join(found[n] for n in names)
        if len(raw) % CIFAR_RECORD:
            raise UserError(
                _("{path}: {names} hold {size:,} bytes, not whole records of {record:,}.").format(
                    path=archive, names=", ".join(names), size=len(raw), record=CIFAR_RECORD
                )
            )
        table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
        images = table[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), table[:, 0].astype(np.int64)

    return Arrays(*records(wanted[:5]), *records(wanted[5:]))


def _notmnist(entry: CatalogEntry, paths: list[Path], warn: Warn) -> Arrays:
    from PIL import Image, UnidentifiedImageError

    archive = paths[0]
    letters = {name: i for i, name in enumerate(entry.class_names)}
    known_bad = set(entry.known_unreadable)
    items: list[tuple[str, np.ndarray, int]] = []
    skipped: list[str] = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                parts = PurePosixPath(info.name).parts
                if len(parts) != 3 or parts[1] not in letters or not parts[2].lower().endswith(".png"):
                    raise UserError(
                        _(
                            "{path}: the member {name} is not <folder>/<letter A-J>/<name>.png; it is not the "
                            "published notMNIST archive."
                        ).format(path=archive, name=info.name)
                    )
                key = f"{parts[1]}/{parts[2]}"
                if info.size > MAX_PICTURE_BYTES:  # no hash is published: bound what a member may decompress to
                    raise UserError(
                        _("{path}: {name} holds {size:,} bytes, too many for a 28 x 28 picture.").format(
                            path=archive, name=info.name, size=info.size
                        )
                    )
                handle = tar.extractfile(info)
                data = handle.read() if handle is not None else b""
                try:
                    with Image.open(io.BytesIO(data)) as picture:
                        pixels = np.asarray(picture.convert("L"))
                except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                    if key in known_bad:
                        skipped.append(key)
                        continue
                    raise UserError(
                        _(
                            "{path}: {name} is not a readable PNG and not one of the archive's known unreadable files."
                        ).format(path=archive, name=info.name)
                    ) from None
                if pixels.shape != entry.image_shape[:2]:
                    raise UserError(
                        _("{path}: {name} is {shape}, not {want}.").format(
                            path=archive, name=info.name, shape=pixels.shape, want=entry.image_shape[:2]
                        )
                    )
                items.append((key, pixels, letters[parts[1]]))
    except (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile):
        raise UserError(_("{path}: not a readable tar.gz archive.").format(path=archive)) from None
    if skipped:
        warn(
            _("{dataset}: skipped {n} unreadable images the published archive is known to hold: {names}.").format(
                dataset=entry.name, n=len(skipped), names=", ".join(sorted(skipped))
            )
        )
    items.sort(key=lambda item: item[0])  # the archive's order varies with the tool that packed it
    if not items:
        raise UserError(_("{path}: holds no pictures.").format(path=archive))
    images = np.stack([pixels for _key, pixels, _label in items])[..., np.newaxis]
    labels = np.array([label for _key, _pixels, label in items], dtype=np.int64)
    return Arrays(images, labels)

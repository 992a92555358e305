"""Data larger than memory: images that stay on disk and are read one batch at a time.

    data = cs.stream("big_images.npy")            # labels from big_images_labels.npy or labels.npy
    data = cs.stream("photos/", image_size=64)    # one sub-folder per class, decoded per batch
    train, test = data.split(test_size=0.2)       # splits are index views: nothing is read
    cs.fit(model, train, validation_split=0.2)    # batches read (and decoded) as training needs them

A `StreamingDataset` is a `Dataset` whose `images` is a `LazyImages`: it has the shape and dtype of
the (N, H, W, C) array it stands for, indexing it reads just those images, and `take` makes a
smaller view without reading anything.  Labels are small and stay in memory.

Bounded memory, concretely: a `.npy` file is memory-mapped for each read and unmapped right
after, so the pages it touched leave the process (they stay in the kernel's page cache, which
gives them back under pressure); a picture folder holds only paths, and worker processes decode
and resize each batch with the same `read_image` that training from memory and serving use.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..i18n import _
from .catalog import named
from .dataset import Dataset
from .formats.arrays import labels_partner
from .formats.image_folder import _size, _survey, class_folders
from .images import IMAGE_SUFFIXES, read_image
from .raw import RawData, RawSplit, build_dataset

CHUNK_BYTES = 32 * 2**20  # per read in whole-dataset passes: bounded by bytes, whatever the image size


@dataclass(frozen=True)
class NpyFile:
    """An (N, H, W, C) or (N, H, W) `.npy` file, read through a memory map that lives for one read."""

    path: str
    shape: tuple[int, int, int, int]
    dtype: np.dtype
    offset: int  # where the data starts, after the header

    @classmethod
    def open(cls, path: str | Path) -> NpyFile:
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in header:
                    raise ValueError(
                        _("header version {version} is not supported for streaming").format(version=version)
                    )
                shape, fortran, dtype = header[version](f)
                offset = f.tell()
        except OSError as exc:
            raise UserError(_("{path}: cannot read ({strerror}).").format(path=path, strerror=exc.strerror)) from None
        except ValueError as exc:
            raise UserError(_("{path}: not a .npy file ({exc}).").format(path=path, exc=exc)) from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise UserError(
                _("{path}: holds {dtype} values; streamed images must be numbers (uint8 or float).").format(
                    path=path, dtype=dtype
                )
            )
        if fortran:
            raise UserError(
                _("{path}: is stored in Fortran order; save it C-ordered (np.ascontiguousarray) to stream it.").format(
                    path=path
                )
            )
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
            raise UserError(
                _(
                    "{path}: has shape {shape}; streaming reads (N, H, W) or (N, H, W, C) with C = 1 or 3 (other layouts: load it into memory with cs.load(..., layout=...))."
                ).format(path=path, shape=shape)
            )
        full = tuple(int(s) for s in shape) + ((1,) if len(shape) == 3 else ())
        return cls(str(path), full, dtype, offset)  # type: ignore[arg-type]

    def read(self, indices: np.ndarray) -> np.ndarray:
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = np.ndarray(self.shape, self.dtype, buffer=mapped, offset=self.offset)
            out = view[np.sort(indices)] if len(indices) > 1 else view[indices]  # sorted: sequential page faults
            del view  # the map can only close once no array points into it
        if len(indices) > 1:
            out = out[np.argsort(np.argsort(indices))]  # back to the order asked for
        return out.astype(self.dtype.newbyteorder("="), copy=False)


@dataclass(frozen=True)
class PictureFiles:
    """Picture paths decoded on demand to one size and channel count."""

    paths: tuple[str, ...]
    size: tuple[int, int]  # (height, width)
    channels: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.size, self.channels)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.size, self.channels), np.uint8)
        for row, i in enumerate(indices):
            out[row] = read_image(self.paths[int(i)], self.size, self.channels)
        return out


Source = NpyFile | PictureFiles


class LazyImages:
    """Stands for an (N, H, W, C) array on disk: `x[indices]` reads, `x.take(indices)` only narrows."""

    ndim = 4

    def __init__(self, source: Source, index: np.ndarray | None = None):
        self.source = source
        self.index = np.arange(source.shape[0]) if index is None else np.asarray(index, dtype=np.int64)
        self._range: tuple[float, float] | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.index), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.index)

    def take(self, indices: np.ndarray) -> LazyImages:
        return LazyImages(self.source, self.index[np.asarray(indices)])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.source.read(self.index[[int(key)]])[0]
        return self.source.read(self.index[key])

    def chunk_size(self) -> int:
        """Images per read that keep one read near CHUNK_BYTES."""
        per_image = max(1, int(np.prod(self.shape[1:])) * self.dtype.itemsize)
        return max(1, CHUNK_BYTES // per_image)

    def chunks(self, size: int | None = None) -> Iterator[np.ndarray]:
        size = size or self.chunk_size()
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # Only for small views (a test split saved with a run, a gallery): it reads everything.
        out = np.concatenate(list(self.chunks())) if len(self) else np.zeros(self.shape, self.dtype)
        return out.astype(dtype, copy=False) if dtype is not None else out

    def min(self) -> float:
        return self._min_max()[0]

    def max(self) -> float:
        return self._min_max()[1]

    def _min_max(self) -> tuple[float, float]:
        # One streamed pass serves both (MinMaxScaler.fit and describe ask for min then max).
        if self._range is None:
            lows, highs = zip(*((c.min(), c.max()) for c in self.chunks())) if len(self) else ((0,), (0,))
            self._range = (min(lows), max(highs))
        return self._range

    def __repr__(self) -> str:
        return f"LazyImages(shape={self.shape}, dtype={self.dtype}, source={type(self.source).__name__})"


@dataclass(frozen=True)
class StreamingDataset(Dataset):
    """A `Dataset` whose images are read from disk per batch; `subset` and `split` read nothing."""

    workers: int = 0  # processes that read and decode batches; 0 reads in the training process

    def subset(self, indices: np.ndarray) -> StreamingDataset:
        return replace(self, images=self.images.take(indices), labels=self.labels[indices], predefined_test=None)


def is_streaming(data: Dataset) -> bool:
    return isinstance(data.images, LazyImages)


def stream(
    path: str | os.PathLike[str],
    *,
    class_names: str | Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    workers: int | None = None,
) -> StreamingDataset:
    """Open a `.npy` file or a folder of class sub-folders for training without loading it.

    workers: processes decoding picture batches (default: up to 2 for folders, none for `.npy`,
        where a read is a memory copy).
    """
    if named(str(path)) is not None:
        raise UserError(
            _("{name}: a named dataset is read memory-mapped from its converted cache already; drop --stream.").format(
                name=path
            )
        )
    path = Path(path)
    if path.is_dir():
        return _stream_folder(path, class_names, image_size, channels, workers)
    if path.suffix.lower() == ".npy" and path.is_file():
        if image_size is not None or channels is not None:
            raise UserError(
                _("{path}: image_size and channels apply only to folders of pictures, not to .npy files.").format(
                    path=path
                )
            )
        return _stream_npy(path, class_names, workers or 0)
    raise UserError(
        _(
            "{path}: streaming reads a .npy file of (N, H, W[, C]) images or a folder with one sub-folder of {formats} pictures per class; load other formats with cs.load."
        ).format(path=path, formats="/".join(s[1:].upper() for s in IMAGE_SUFFIXES))
    )


def _stream_npy(path: Path, class_names, workers: int) -> StreamingDataset:
    source = NpyFile.open(path)
    partner = labels_partner(path)
    if partner is None:
        raise UserError(
            _("{path}: put the labels beside it as {stem}_labels.npy or labels.npy.").format(path=path, stem=path.stem)
        )
    labels = np.load(partner, allow_pickle=False)
    return _dataset(source, labels, str(path), partner.name, class_names, workers)


def _stream_folder(path: Path, class_names, image_size, channels, workers) -> StreamingDataset:
    classes = class_folders(path)
    if not classes:
        raise UserError(
            _("{path}: has no sub-folders with pictures; expected one sub-folder per class.").format(path=path)
        )
    paths = [p for _, pictures in classes for p in pictures]
    size = _size(image_size) if image_size is not None else None
    if size is None or channels is None:
        first_size, all_gray = _survey(paths)  # headers only
        size, channels = size or first_size, channels or (1 if all_gray else 3)
    if channels not in (1, 3):
        raise UserError(_("channels must be 1 (grayscale) or 3 (RGB), got {channels}.").format(channels=channels))
    labels = np.array([name for name, pictures in classes for _ in pictures])
    source = PictureFiles(tuple(str(p) for p in paths), size, channels)
    return _dataset(
        source, labels, str(path), "", class_names, min(2, os.cpu_count() or 1) if workers is None else workers
    )


def _dataset(source: Source, labels, where: str, labels_key: str, class_names, workers: int) -> StreamingDataset:
    # Label checks and class names come from the one place every format uses; the images there are
    # a zero-byte stand-in of the right length (np.broadcast_to allocates nothing).
    stand_in = np.broadcast_to(np.zeros((1, 1, 1, 1), np.uint8), (source.shape[0], 1, 1, 1))
    checked = build_dataset(
        RawData(RawSplit(stand_in, labels, where, "images", labels_key, nhwc=True)), where, class_names
    )
    # LazyImages stands in for the image array: shape, len, take and indexing are all a Dataset uses.
    return StreamingDataset(LazyImages(source), checked.labels, checked.class_names, where, workers=workers)  # type: ignore[arg-type]


class _BatchReader(torch.utils.data.Dataset):
    """Item i is batch i: (uint8 NHWC images, int64 labels), read in whichever process asks."""

    def __init__(self, images, labels: np.ndarray, batches: list[np.ndarray]):
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches[i]
        return torch.from_numpy(np.ascontiguousarray(self.images[idx])), torch.from_numpy(self.labels[idx])


def read_batches(
    data: Dataset, batches: list[np.ndarray], workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The given index batches of `data`, in order, read ahead by `workers` processes when there are any."""
    reader = _BatchReader(data.images, data.labels, batches)
    if workers <= 0:
        return (reader[i] for i in range(len(reader)))
    loader = torch.utils.data.DataLoader(reader, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4)
    return iter(loader)

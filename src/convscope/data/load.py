"""`load()`: one entry point from a built-in name or any supported file to a `Dataset`.

Supported: built-ins (mnist-5k, digits); named datasets downloaded once into the cache (`catalog.py`:
mnist, fashion-mnist, notmnist-small ...); MNIST IDX files or a folder of them (raw or .gz);
.npz / .npy; MATLAB .mat (v4-v7.3); .csv (or .csv.gz) with a label column and pixel columns;
a folder with one sub-folder of pictures per class.  The format is chosen from the path alone,
the reader parses, and `raw.build_dataset` applies the checks every format shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path

from ..errors import UserError
from ..i18n import _
from .builtin import BUILTIN_NAMES, load_builtin
from .catalog import CATALOG
from .catalog import named as find_named
from .dataset import Dataset
from .describe import steps_text
from .formats.arrays import load_npy, load_npz
from .formats.csv_table import load_csv
from .formats.idx import is_idx_name, load_idx
from .formats.image_folder import class_folders, load_image_folder
from .formats.matlab import load_mat
from .layout import check_layout
from .named import load_named
from .raw import RawData, build_dataset, parse_class_names
from .steps import data_steps

_READERS = {".npz": load_npz, ".npy": load_npy, ".mat": load_mat}


def load(
    path_or_name: str | PathLike[str] = "mnist-5k",
    *,
    class_names: str | Sequence[str] | None = None,
    layout: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    explain: bool = False,
) -> Dataset:
    """Load a dataset as (N, H, W, C) images in their stored dtype and int64 labels.

    A named dataset (`cs.datasets()`: "mnist", "notmnist-small", "cifar10" ...) is downloaded into the cache on
    first use (see `download.py`), keeps its official test split and comes with its class names.

    class_names: a list, "cat,dog", or "ABCDEFGHIJ" (one class per character); labels that are
        numbers index into it, labels that are text must appear in it.
    layout: force the axis order of array files: NHWC, NCHW, NHW, HWN or HWCN (see `layout.py`).
    image_size, channels: for image folders only: an int side or (height, width), and 1 or 3.
    explain: print each step from the stored arrays to the images (transpose, reshape, scaling, labels and
        what one-hot would have produced), with the shape and value range after it; `describe` and the
        notebook view list them too (`Dataset.steps`).
    """
    source = str(path_or_name)
    parse_class_names(class_names)  # reject bad names before reading a large file
    layout = check_layout(layout)
    path = Path(path_or_name)
    named = find_named(source)
    if source in BUILTIN_NAMES and not path.exists():
        _refuse_picture_options(source, image_size, channels)
        raw = load_builtin(source)
    elif named is not None:
        _refuse_picture_options(source, image_size, channels)
        source = named.name
        raw = load_named(named)
        if class_names is None:
            class_names = named.class_names
    else:
        raw = _read(path, source, image_size, channels)
    dataset = build_dataset(raw, source, class_names, layout)
    dataset = replace(dataset, steps=data_steps(raw.train, dataset, layout))
    if explain:
        print(steps_text(dataset.steps))
    return dataset


def _read(path: Path, source: str, image_size: int | tuple[int, int] | None, channels: int | None) -> RawData:
    if not path.exists():
        names = ", ".join([*BUILTIN_NAMES, *CATALOG])
        if len(path.parts) == 1:
            message = _("{source}: no such file or folder and not a built-in or named dataset ({names}).")
        else:
            message = _("{source}: no such file or folder.")
        raise UserError(message.format(source=source, names=names))
    if path.is_dir():
        if any(is_idx_name(p) for p in path.iterdir() if p.is_file()):
            _refuse_picture_options(source, image_size, channels)
            return load_idx(path)
        if class_folders(path):
            return load_image_folder(path, image_size, channels)
        raise UserError(
            _("{source}: this folder holds neither IDX files nor class sub-folders of images.").format(source=source)
        )
    _refuse_picture_options(source, image_size, channels)
    if is_idx_name(path):
        return load_idx(path)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return load_csv(path)
    if path.suffix.lower() in _READERS:
        return _READERS[path.suffix.lower()](path)
    raise UserError(
        _("{source}: unsupported file type '{suffix}'; use {supported}.").format(
            source=source,
            suffix="".join(path.suffixes) or path.name,
            supported=_(
                "a built-in name (mnist-5k, digits), a named dataset (convscope datasets), IDX files (*-idx3-ubyte[.gz]) or a folder of them, "
                ".npz, .npy, .mat, .csv, or a folder with one sub-folder of images per class"
            ),
        )
    )


def _refuse_picture_options(source: str, image_size: object, channels: object) -> None:
    """Resizing and colour conversion apply to decoded pictures only; silently ignoring them would mislead."""
    if image_size is not None or channels is not None:
        raise UserError(
            _("{source}: image_size and channels apply only to folders of pictures, not to this data.").format(
                source=source
            )
        )

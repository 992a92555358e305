"""A folder with one sub-folder of pictures per class (`pets/cat/1.png`, `pets/dog/7.jpg`).

Class names are the sub-folder names, sorted.  Every picture is brought to one size and one
channel count so they stack into a single (N, H, W, C) array: by default the most common size
among the first pictures (so one odd or huge picture cannot become everyone's resize target),
and grayscale only when every picture is grayscale (so colour is never thrown away silently).  Hidden files and files of other types (Thumbs.db, notes.txt) are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ...i18n import _
from ..images import IMAGE_SUFFIXES, is_grayscale, open_image, read_image
from ..raw import RawData, RawSplit, limits


def class_folders(folder: Path) -> list[tuple[str, list[Path]]]:
    """(class name, sorted picture paths) for every visible sub-folder holding pictures."""
    classes = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        pictures = sorted(
            p
            for p in sub.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if pictures:
            classes.append((sub.name, pictures))
    return classes


def load_image_folder(
    folder: Path, image_size: int | tuple[int, int] | None = None, channels: int | None = None
) -> RawData:
    classes = class_folders(folder)
    if not classes:
        raise UserError(
            _("{folder}: has no sub-folders with {formats} pictures; expected one sub-folder per class.").format(
                folder=folder, formats="/".join(s[1:].upper() for s in IMAGE_SUFFIXES)
            )
        )
    paths = [p for _, pictures in classes for p in pictures]
    size = _size(image_size) if image_size is not None else None
    if size is None or channels is None:
        first_size, all_gray = _survey(paths)
        size = size or first_size
        channels = channels or (1 if all_gray else 3)
    if channels not in (1, 3):
        raise UserError(_("channels must be 1 (grayscale) or 3 (RGB), got {channels}.").format(channels=channels))
    limits().check_bytes(
        len(paths) * size[0] * size[1] * channels,
        str(folder),
        _("its {count:,} pictures at {height} x {width} x {channels}").format(
            count=len(paths), height=size[0], width=size[1], channels=channels
        ),
    )
    images = np.stack([read_image(p, size, channels) for p in paths])
    labels = np.array([name for name, pictures in classes for _ in pictures])
    return RawData(RawSplit(images, labels, str(folder), "", "", nhwc=True))


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """An int is a square side; a pair is (height, width)."""
    value: Any = image_size  # anything a user passes; checked here
    try:
        scalar = bool(np.isscalar(value))  # a bool, so that the type of `value` stays Any
        size = (int(value), int(value)) if scalar else tuple(int(s) for s in value)
    except (TypeError, ValueError):
        raise UserError(
            _("image size must be an integer or (height, width), got {image_size!r}.").format(image_size=image_size)
        ) from None
    if len(size) != 2 or min(size) < 1:
        raise UserError(
            _("image size must be a positive integer or (height, width), got {image_size!r}.").format(
                image_size=image_size
            )
        )
    return size


SIZE_SAMPLE = 256  # pictures whose sizes vote for the common size; headers only, so cheap


def _survey(paths: list[Path]) -> tuple[tuple[int, int], bool]:
    """The most common (height, width) among the first pictures, and whether all are grayscale.

    Headers only. Ties go to the earlier picture; every picture is also held to the pixel limit
    here, so a decompression bomb is named before anything is decoded.
    """
    sizes: dict[tuple[int, int], int] = {}
    all_gray = True
    allowed = limits()
    for number, path in enumerate(paths):
        if number >= SIZE_SAMPLE and not all_gray:
            break
        try:
            with open_image(path) as image:
                size = (image.height, image.width)
                gray = is_grayscale(image)
        except Exception:  # noqa: BLE001 - any PIL failure means an unusable picture, see images.py
            raise UserError(_("{path}: not a readable PNG/JPEG/BMP/GIF image.").format(path=path)) from None
        allowed.check_pixels(size[1], size[0], str(path))
        all_gray = all_gray and gray
        if number < SIZE_SAMPLE:
            sizes[size] = sizes.get(size, 0) + 1
    common = max(sizes, key=sizes.__getitem__)  # ties: the first picture's size, as before
    return common, all_gray

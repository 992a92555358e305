"""What every format reader returns, and the one place it becomes a validated `Dataset`.

Readers only parse their file; axis order, label encoding, class names and every sanity check
live here, so an .npz, a .mat and a CSV with the same content give the same `Dataset` and the
same error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import Limits, cut, limits, quote  # noqa: F401 - Limits: the data limits live beside the others
from ..errors import UserError
from .dataset import Dataset
from .layout import to_nhwc


@dataclass
class RawSplit:
    """Arrays as a file stored them, plus names for messages ('train.npz', 'x', 'y')."""

    images: np.ndarray
    labels: np.ndarray  # ints, floats holding ints, one-hot rows, or strings
    file: str
    images_key: str = "images"
    labels_key: str = "labels"
    nhwc: bool = False  # already (N, H, W, C): decoded pictures and built-ins skip layout guessing

    def where(self, key: str) -> str:
        return f"{self.file}: '{key}'" if key else f"{self.file}:"


@dataclass
class RawData:
    train: RawSplit
    test: RawSplit | None = None  # a split the file ships (IDX t10k, npz x_test/y_test)


ClassNames = str | Sequence[str] | None


def parse_class_names(class_names: ClassNames) -> tuple[str, ...] | None:
    """None, a list, "cat,dog" (comma-separated) or "ABCDEFGHIJ" (one class per character)."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        text = class_names.strip()
        names = [n.strip() for n in text.split(",")] if "," in text else list(text)
    else:
        names = [str(n).strip() for n in class_names]
    shown = quote(class_names)
    if not names or any(not n for n in names):
        raise UserError(f"class names {shown} contain an empty name.")
    limit = limits().max_classes
    if len(names) > limit:
        raise UserError(f"class names give {len(names):,} classes, over the limit of {limit:,} {_CLASSES_HINT}.")
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    duplicates = sorted(n for n, c in counts.items() if c > 1)
    if duplicates:
        raise UserError(f"class names {shown} repeat {cut(', '.join(duplicates))}.")
    return tuple(names)


def build_dataset(raw: RawData, source: str, class_names: ClassNames = None, layout: str | None = None) -> Dataset:
    """Validate `raw` and return the `Dataset`; train and test share one set of class names."""
    given = parse_class_names(class_names)
    splits = [raw.train] + ([raw.test] if raw.test is not None else [])
    flat = [_flatten_labels(s) for s in splits]
    names = given if given is not None else _default_names(flat, splits)
    labels = [_encode(values, names, split, given is not None) for values, split in zip(flat, splits)]
    images = [_images(split, len(lab), layout) for split, lab in zip(splits, labels)]
    _check_classes(labels[0], names, splits[0])
    if given is not None:
        _check_named_classes_used(labels[0], names, splits[0])
    test = None
    if raw.test is not None:
        test = Dataset(images[1], labels[1], names, f"{source} (predefined test split)")
    return Dataset(images[0], labels[0], names, source, predefined_test=test)


def _flatten_labels(split: RawSplit) -> np.ndarray:
    """(N,), (N,1), (1,N) -> (N,); one-hot (N,K) -> argmax, keeping K as a 2-D marker."""
    labels = np.asarray(split.labels)
    where = split.where(split.labels_key)
    if labels.dtype.kind not in "biufUSO":
        raise UserError(f"{where} holds {labels.dtype} values; labels must be numbers or names.")
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim == 2 and labels.shape[1] == 0:
        raise UserError(f"{where} has shape {labels.shape}: one-hot rows of width 0 name no class.")
    if labels.ndim == 2:  # one-hot rows
        if labels.dtype.kind not in "biuf":
            raise UserError(f"{where} is a {labels.shape} table of {labels.dtype}; one-hot labels must be numbers.")
        return labels
    if labels.ndim != 1:
        raise UserError(f"{where} has shape {labels.shape}; labels must be (N,), (N, 1) or one-hot (N, K).")
    if labels.dtype.kind == "O":
        labels = np.array([_scalar_text(v) for v in labels])
    if labels.dtype.kind == "S":
        try:
            labels = np.char.decode(labels, "utf-8")
        except UnicodeDecodeError:  # not UTF-8: Latin-1 decodes every byte, so the names survive
            labels = np.char.decode(labels, "latin-1")
    return labels


def _scalar_text(value: object) -> str:
    """MATLAB cell arrays arrive as object arrays of 1-element arrays; unwrap them."""
    while isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return str(value).strip()


def _default_names(flat: list[np.ndarray], splits: list[RawSplit]) -> tuple[str, ...]:
    """Sorted names for text labels; "0".."K-1" for numbers (K = one-hot width or largest + 1)."""
    limit = limits().max_classes
    if flat[0].dtype.kind == "U":
        names = sorted({str(v).strip() for values in flat for v in values})
        if len(names) > limit:
            raise UserError(
                f"{splits[0].where(splits[0].labels_key)} holds {len(names):,} different label names, "
                f"over the limit of {limit:,} classes {_CLASSES_HINT}."
            )
        return tuple(names)
    k = 0
    for values, split in zip(flat, splits):
        if values.ndim == 2:
            if values.shape[1] > limit:
                raise UserError(
                    f"{split.where(split.labels_key)} has one-hot rows of width {values.shape[1]:,}, "
                    f"over the limit of {limit:,} classes {_CLASSES_HINT}."
                )
            k = max(k, values.shape[1])
        elif values.size:
            k = max(k, int(np.max(_as_ints(values, split))) + 1)
    return tuple(str(i) for i in range(k))


_CLASSES_HINT = "(raise it with the environment variable CONVSCOPE_MAX_CLASSES)"


def _as_ints(values: np.ndarray, split: RawSplit) -> np.ndarray:
    where = split.where(split.labels_key)
    if values.dtype.kind == "U":
        raise UserError(f"{where} holds names, but the other split holds numbers; use one kind of label.")
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"{where} holds {values[first]} at position {first}, not a whole number; "
                "labels must be class numbers, one-hot rows or names."
            )
    if values.size and values.min().item() < 0:  # before any cast: no int64 wrap-around yet
        first = int(np.flatnonzero(values < 0)[0])
        raise UserError(f"{where} holds label {_number(values[first])} at position {first}; class numbers start at 0.")
    limit = limits().max_classes
    if values.size and values.max().item() >= limit:  # .item(): float16 cannot hold the limit
        first = int(np.argmax(values))
        raise UserError(
            f"{where} holds label {_number(values[first])} at position {first}, over the largest class "
            f"number {limit - 1:,} {_CLASSES_HINT}."
        )
    return values.astype(np.int64)


def _number(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, (float, np.floating)) else str(int(value))


def _encode(values: np.ndarray, names: tuple[str, ...], split: RawSplit, names_given: bool) -> np.ndarray:
    """Labels -> int64 indices into `names`, refusing anything outside [0, len(names))."""
    where = split.where(split.labels_key)
    if values.ndim == 2:
        if values.shape[1] != len(names):
            raise UserError(
                f"{where} has one-hot rows of width {values.shape[1]}, but there are {len(names)} class names."
            )
        return np.argmax(values, axis=1).astype(np.int64)
    if values.dtype.kind == "U":
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v).strip() for v in values} - index.keys())
        if unknown:
            raise UserError(
                f"{where} holds label '{unknown[0]}', which is not one of the {len(names)} class names "
                f"({', '.join(names)})."
            )
        return np.array([index[str(v).strip()] for v in values], dtype=np.int64)
    ints = _as_ints(values, split)
    if ints.size and ints.max() >= len(names):
        bad = int(ints.max())
        origin = "class names given" if names_given else "classes"
        raise UserError(f"{where} holds label {bad}, outside 0..{len(names) - 1} for the {len(names)} {origin}.")
    return ints


def _images(split: RawSplit, n_labels: int, layout: str | None) -> np.ndarray:
    """Axis order, dtype and finiteness of one split's images."""
    images = np.asarray(split.images)
    where = split.where(split.images_key)
    if images.dtype.kind not in "biuf":
        raise UserError(f"{where} holds {images.dtype} values; images must be numbers.")
    if split.nhwc:
        if layout is not None:
            raise UserError(f"{split.file}: layout applies to array files, not to decoded pictures.")
        if len(images) != n_labels:
            raise UserError(f"{where} holds {len(images)} images but '{split.labels_key}' holds {n_labels} labels.")
    else:
        try:
            images = to_nhwc(images, n_labels, layout, where)
        except UserError:
            _raise_if_count_mismatch(images, n_labels, layout, split)
            raise
    if len(images) == 0:
        raise UserError(f"{where} holds no images; the dataset is empty.")
    if images.size == 0:
        raise UserError(f"{where}: images of shape {images.shape[1:]} hold no pixels; each needs at least one.")
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))[0])
            raise UserError(
                f"{where} holds {int(bad.sum())} NaN/inf pixel values (first in image {first}); "
                "fill or drop those images."
            )
        _check_float32_range(images, where)
        images = images.astype(np.float32, copy=False)
    elif images.dtype.kind == "b":
        images = images.astype(np.uint8)
    if not images.dtype.isnative:
        images = images.astype(images.dtype.newbyteorder("="))
    return images


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(images: np.ndarray, where: str) -> None:
    """Training runs in float32: values (and their span, the scaler's divisor) must stay finite there."""
    lo, hi = float(images.min()), float(images.max())
    if max(abs(lo), abs(hi), hi - lo) > _FLOAT32_MAX:
        raise UserError(
            f"{where} holds pixel values from {lo:g} to {hi:g}; values and their span must stay within "
            f"{_FLOAT32_MAX:.3g} (float32) for training: rescale the images."
        )


def _raise_if_count_mismatch(images: np.ndarray, n_labels: int, layout: str | None, split: RawSplit) -> None:
    """When the shape is fine on its own, the real problem is the count: say it that way."""
    try:
        n_images = len(to_nhwc(images, None, layout))
    except UserError:
        return
    if n_images != n_labels:
        raise UserError(
            f"{split.where(split.images_key)} holds {n_images} images but '{split.labels_key}' holds {n_labels} labels."
        ) from None


def _check_named_classes_used(labels: np.ndarray, names: tuple[str, ...], split: RawSplit) -> None:
    """Given names that no training image carries would be classes the model can never learn: refuse.

    (Numbered labels without names are left alone: 1-based MATLAB labels leave class 0 empty.)
    """
    used = np.zeros(len(names), dtype=bool)
    used[labels] = True
    if not used.all():
        unused = [names[i] for i in np.flatnonzero(~used)]
        raise UserError(
            f"{split.where(split.labels_key)} uses only {int(used.sum())} of the {len(names)} class names given; "
            f"no image is labelled {cut(', '.join(unused))}: drop those names or check the labels."
        )


def _check_classes(labels: np.ndarray, names: tuple[str, ...], split: RawSplit) -> None:
    if len(names) < 2 or len(np.unique(labels)) < 2:
        only = names[int(labels[0])] if len(labels) else "?"
        raise UserError(
            f"{split.where(split.labels_key)} puts all {len(labels)} images in one class ('{only}'); "
            "a classifier needs at least 2 classes."
        )

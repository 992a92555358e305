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

from ..checks import cut, limits, quote
from ..errors import UserError
from ..i18n import _
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
        raise UserError(_("class names {shown} contain an empty name.").format(shown=shown))
    limit = limits().max_classes
    if len(names) > limit:
        raise UserError(
            _(
                "class names give {n_names:,} classes, over the limit of {limit:,} (raise it with the environment variable CONVSCOPE_MAX_CLASSES)."
            ).format(n_names=len(names), limit=limit)
        )
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    duplicates = sorted(n for n, c in counts.items() if c > 1)
    if duplicates:
        raise UserError(
            _("class names {shown} repeat {duplicates}.").format(shown=shown, duplicates=cut(", ".join(duplicates)))
        )
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
        test = Dataset(images[1], labels[1], names, _("{source} (predefined test split)").format(source=source))
    return Dataset(images[0], labels[0], names, source, predefined_test=test)


def _flatten_labels(split: RawSplit) -> np.ndarray:
    """(N,), (N,1), (1,N) -> (N,); one-hot (N,K) -> argmax, keeping K as a 2-D marker."""
    labels = np.asarray(split.labels)
    where = split.where(split.labels_key)
    if labels.dtype.kind not in "biufUSO":
        raise UserError(
            _("{where} holds {dtype} values; labels must be numbers or names.").format(where=where, dtype=labels.dtype)
        )
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim == 2 and labels.shape[1] == 0:
        raise UserError(
            _("{where} has shape {shape}: one-hot rows of width 0 name no class.").format(
                where=where, shape=labels.shape
            )
        )
    if labels.ndim == 2:  # one-hot rows
        if labels.dtype.kind not in "biuf":
            raise UserError(
                _("{where} is a {shape} table of {dtype}; one-hot labels must be numbers.").format(
                    where=where, shape=labels.shape, dtype=labels.dtype
                )
            )
        return labels
    if labels.ndim != 1:
        raise UserError(
            _("{where} has shape {shape}; labels must be (N,), (N, 1) or one-hot (N, K).").format(
                where=where, shape=labels.shape
            )
        )
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
                _(
                    "{where} holds {n_names:,} different label names, over the limit of {limit:,} classes (raise it with the environment variable CONVSCOPE_MAX_CLASSES)."
                ).format(where=splits[0].where(splits[0].labels_key), n_names=len(names), limit=limit)
            )
        return tuple(names)
    k = 0
    for values, split in zip(flat, splits):
        if values.ndim == 2:
            if values.shape[1] > limit:
                raise UserError(
                    _(
                        "{where} has one-hot rows of width {width:,}, over the limit of {limit:,} classes (raise it with the environment variable CONVSCOPE_MAX_CLASSES)."
                    ).format(where=split.where(split.labels_key), width=values.shape[1], limit=limit)
                )
            k = max(k, values.shape[1])
        elif values.size:
            k = max(k, int(np.max(_as_ints(values, split))) + 1)
    return tuple(str(i) for i in range(k))


def _as_ints(values: np.ndarray, split: RawSplit) -> np.ndarray:
    where = split.where(split.labels_key)
    if values.dtype.kind == "U":
        raise UserError(
            _("{where} holds names, but the other split holds numbers; use one kind of label.").format(where=where)
        )
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(
                _(
                    "{where} holds {value} at position {first}, not a whole number; labels must be class numbers, one-hot rows or names."
                ).format(where=where, value=values[first], first=first)
            )
    if values.size and values.min().item() < 0:  # before any cast: no int64 wrap-around yet
        first = int(np.flatnonzero(values < 0)[0])
        raise UserError(
            _("{where} holds label {value} at position {first}; class numbers start at 0.").format(
                where=where, value=_number(values[first]), first=first
            )
        )
    limit = limits().max_classes
    if values.size and values.max().item() >= limit:  # .item(): float16 cannot hold the limit
        first = int(np.argmax(values))
        raise UserError(
            _(
                "{where} holds label {value} at position {first}, over the largest class number {largest:,} (raise it with the environment variable CONVSCOPE_MAX_CLASSES)."
            ).format(where=where, value=_number(values[first]), first=first, largest=limit - 1)
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
                _("{where} has one-hot rows of width {width}, but there are {n_names} class names.").format(
                    where=where, width=values.shape[1], n_names=len(names)
                )
            )
        return np.argmax(values, axis=1).astype(np.int64)
    if values.dtype.kind == "U":
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v).strip() for v in values} - index.keys())
        if unknown:
            raise UserError(
                _("{where} holds label '{unknown}', which is not one of the {n_names} class names ({names}).").format(
                    where=where, unknown=unknown[0], n_names=len(names), names=", ".join(names)
                )
            )
        return np.array([index[str(v).strip()] for v in values], dtype=np.int64)
    ints = _as_ints(values, split)
    if ints.size and ints.max() >= len(names):
        bad = int(ints.max())
        if names_given:
            message = _("{where} holds label {bad}, outside 0..{last} for the {count} class names given.")
        else:
            message = _("{where} holds label {bad}, outside 0..{last} for the {count} classes.")
        raise UserError(message.format(where=where, bad=bad, last=len(names) - 1, count=len(names)))
    return ints


def _images(split: RawSplit, n_labels: int, layout: str | None) -> np.ndarray:
    """Axis order, dtype and finiteness of one split's images."""
    images = np.asarray(split.images)
    where = split.where(split.images_key)
    if images.dtype.kind not in "biuf":
        raise UserError(
            _("{where} holds {dtype} values; images must be numbers.").format(where=where, dtype=images.dtype)
        )
    if split.nhwc:
        if layout is not None:
            raise UserError(
                _("{file}: layout applies to array files, not to decoded pictures.").format(file=split.file)
            )
        if len(images) != n_labels:
            raise UserError(
                _("{where} holds {n_images} images but '{labels_key}' holds {n_labels} labels.").format(
                    where=where, n_images=len(images), labels_key=split.labels_key, n_labels=n_labels
                )
            )
    else:
        try:
            images = to_nhwc(images, n_labels, layout, where)
        except UserError:
            _raise_if_count_mismatch(images, n_labels, layout, split)
            raise
    if len(images) == 0:
        raise UserError(_("{where} holds no images; the dataset is empty.").format(where=where))
    if images.size == 0:
        raise UserError(
            _("{where}: images of shape {shape} hold no pixels; each needs at least one.").format(
                where=where, shape=images.shape[1:]
            )
        )
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))[0])
            raise UserError(
                _(
                    "{where} holds {bad} NaN/inf pixel values (first in image {first}); fill or drop those images."
                ).format(where=where, bad=int(bad.sum()), first=first)
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
            _(
                "{where} holds pixel values from {lo:g} to {hi:g}; values and their span must stay within {float32_max:.3g} (float32) for training: rescale the images."
            ).format(where=where, lo=lo, hi=hi, float32_max=_FLOAT32_MAX)
        )


def _raise_if_count_mismatch(images: np.ndarray, n_labels: int, layout: str | None, split: RawSplit) -> None:
    """When the shape is fine on its own, the real problem is the count: say it that way."""
    try:
        n_images = len(to_nhwc(images, None, layout))
    except UserError:
        return
    if n_images != n_labels:
        raise UserError(
            _("{where} holds {n_images} images but '{labels_key}' holds {n_labels} labels.").format(
                where=split.where(split.images_key), n_images=n_images, labels_key=split.labels_key, n_labels=n_labels
            )
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
            _(
                "{where} uses only {used} of the {n_names} class names given; no image is labelled {unused}: drop those names or check the labels."
            ).format(
                where=split.where(split.labels_key),
                used=int(used.sum()),
                n_names=len(names),
                unused=cut(", ".join(unused)),
            )
        )


def _check_classes(labels: np.ndarray, names: tuple[str, ...], split: RawSplit) -> None:
    if len(names) < 2 or len(np.unique(labels)) < 2:
        only = names[int(labels[0])] if len(labels) else "?"
        raise UserError(
            _(
                "{where} puts all {n_labels} images in one class ('{only}'); a classifier needs at least 2 classes."
            ).format(where=split.where(split.labels_key), n_labels=len(labels), only=only)
        )

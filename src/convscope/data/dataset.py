"""The `Dataset` type every loader returns and every later stage takes.

Images are kept exactly as the file stored them (uint8 0-255, or floats) in channels-last
layout, N x H x W x C, the way a Keras user reshapes them. Scaling to floats happens later,
with statistics of the training split only (see `scaling.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UserError
from ..i18n import _


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, H, W, C), numeric
    labels: np.ndarray  # (N,), int64 in [0, num_classes)
    class_names: tuple[str, ...]
    source: str = ""  # file path or built-in name, for messages and the run's config
    # Files that ship their own train/test split (IDX train + t10k, npz x_test/y_test) keep it.
    predefined_test: Dataset | None = field(default=None, repr=False)
    # How `split` made this half ({"test_split": 0.2, "split_seed": 0, ...}), so a run saved from Python names it.
    split_info: dict | None = field(default=None, repr=False, compare=False)
    # What `load` did to the stored arrays, step by step (`steps.DataStep`), for describe and the notebook view.
    steps: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise UserError(
                _("{source}: images must be (N, H, W, C), got shape {shape}.").format(
                    source=self.source or _("dataset"), shape=self.images.shape
                )
            )
        if len(self.images) != len(self.labels):
            raise UserError(
                _("{source}: {n_images} images but {n_labels} labels.").format(
                    source=self.source or _("dataset"), n_images=len(self.images), n_labels=len(self.labels)
                )
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C), as Keras' `input_shape`."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> Dataset:
        return replace(self, images=self.images[indices], labels=self.labels[indices], predefined_test=None)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        """One line for a plain REPL (a notebook shows `presentation.dataset`'s view): size, shape, pixel range, classes."""
        h, w, c = self.input_shape
        low, high = (self.images.min(), self.images.max()) if len(self) else (0, 0)
        return (
            f"<Dataset {self.source or 'in memory'}: {len(self):,} images {h}x{w}x{c} {self.images.dtype} "
            f"in [{low:g}, {high:g}], {self.num_classes} classes ({names_preview(self.class_names)})>"
        )

    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Stratified train/test split; a pre-split file keeps its own split and ignores test_size."""
        if self.predefined_test is not None:
            info: dict[str, Any] = {"predefined_split": True, "test_split": None, "split_seed": None}
            return replace(self, predefined_test=None, split_info=info), replace(self.predefined_test, split_info=info)
        if not 0.0 < test_size < 1.0:
            raise UserError(
                _("test split must be between 0 and 1 (exclusive), got {test_size}.").format(test_size=test_size)
            )
        train_idx, test_idx = stratified_indices(self.labels, test_size, seed)
        info = {"predefined_split": False, "test_split": test_size, "split_seed": seed, "test_size": len(test_idx)}
        return replace(self.subset(train_idx), split_info=info), replace(self.subset(test_idx), split_info=info)


def stratified_indices(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle then the first round(n * test_size) go to test.

    Both halves are shuffled, so a file sorted by class (mnist-5k is) does not leave the
    last classes in Keras' validation_split tail.
    """
    rng = np.random.default_rng(seed)
    test_parts, train_parts = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_size))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = np.concatenate(train_parts)
    test_idx = np.concatenate(test_parts)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise UserError(
            _(
                "a test split of {test_size} leaves {n_train} training and {n_test} test images; use a different --test-split or more data."
            ).format(test_size=test_size, n_train=len(train_idx), n_test=len(test_idx))
        )
    return train_idx, test_idx


def names_preview(names: tuple[str, ...], shown: int = 6) -> str:
    """The class names for a one-line view: all of them when few, else the first ones and a count."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[: shown - 1])}, ... {names[-1]}"


# Images a fingerprint reads from a dataset streamed from disk: evenly spaced, so a changed file is
# likely caught without reading it all (a resident dataset is hashed whole: ~0.1 s for MNIST's 47 MB).
FINGERPRINT_SAMPLE = 256


def fingerprint(data: Dataset) -> str:
    """A short hash of what a rank trains on (shape, class names, every label, the images), to compare
    the copies of the data that the ranks of a multi-machine run read."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr((tuple(data.images.shape), str(data.images.dtype), tuple(data.class_names))).encode())
    digest.update(np.ascontiguousarray(data.labels).tobytes())
    if isinstance(data.images, np.ndarray):
        digest.update(np.ascontiguousarray(data.images).tobytes())
    else:
        picks = np.unique(np.linspace(0, len(data) - 1, num=min(len(data), FINGERPRINT_SAMPLE)).astype(np.int64))
        digest.update(np.ascontiguousarray(data.images[picks]).tobytes())
    return digest.hexdigest()

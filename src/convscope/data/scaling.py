"""Min-max scaling as the course teaches it: statistics from the training split only.

`x' = (x - min) / (max - min)` with one scalar min and max over every training pixel. The same
two numbers are applied, unchanged, to validation, test and prediction inputs and are stored
in the run, so a served model sees exactly what training saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class MinMaxScaler:
    minimum: float
    maximum: float

    @classmethod
    def fit(cls, images: np.ndarray) -> MinMaxScaler:
        lo, hi = float(images.min()), float(images.max())
        return cls(lo, hi if hi > lo else lo + 1.0)  # a constant image set would divide by zero

    def transform(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, C) numbers -> float32 (N, C, H, W) tensor in the training range [0, 1]."""
        # torch.tensor copies: read-only arrays (decoded images, memory maps) are fine and never aliased
        x = (
            images.to(torch.float32)
            if isinstance(images, torch.Tensor)
            else torch.tensor(np.asarray(images), dtype=torch.float32)
        )
        x = (x - self.minimum) / (self.maximum - self.minimum)
        return x.permute(0, 3, 1, 2).contiguous()

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

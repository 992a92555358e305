"""`TrainedModel`: what `fit` returns and a run directory holds: the network plus everything
needed to feed it new images exactly as training did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.scaling import MinMaxScaler
from .history import History


@dataclass
class TrainedModel:
    model: nn.Module
    scaler: MinMaxScaler
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]  # (H, W, C)
    history: History = field(default_factory=History)
    config: dict[str, Any] = field(default_factory=dict)  # the fit settings, for reproducing the run
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    path: Path | None = None  # the run directory, once saved or loaded

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities for raw (N, H, W, C) images: the one prediction path convscope has."""
        if images.ndim == 3:
            images = images[None]
        self.model.eval()
        out = []
        for start in range(0, len(images), batch_size):
            x = self.scaler.transform(images[start : start + batch_size]).to(self.device)
            out.append(torch.softmax(self.model(x).float(), dim=1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)

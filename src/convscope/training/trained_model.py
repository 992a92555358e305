"""`TrainedModel`: what `fit` returns and a run directory holds: the network plus everything
needed to feed it new images exactly as training did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import names_preview
from ..data.framing import InputContract
from ..data.scaling import MinMaxScaler
from .allocator import keep_freed_memory
from .history import History, epochs_text

if TYPE_CHECKING:
    from ..record import DataRecord


def predict_batch(device: torch.device) -> int:
    """The batch size for prediction and validation on `device`.

    Small batches keep a CNN's activations in the CPU's cache: on the `cnn` preset, batches of 64
    predict 2.5x faster than batches of 1,024 (BENCHMARKS.md, "Inference batch size"). A GPU wants
    large batches instead, to fill its cores (not measured here: no GPU was lent to this project).
    """
    return 64 if device.type == "cpu" else 1024


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
    data: DataRecord | None = None  # what `fit` trained it on: source, class names, sizes (None: not known)
    input_contract: InputContract | None = None  # how the training images are framed (data/framing.py)

    def __repr__(self) -> str:
        """One line for a plain REPL (a notebook shows `presentation.trained_model`'s view): model, data, classes, accuracy."""
        h, w, c = self.input_shape
        spec = getattr(self.model, "spec", None)
        name = getattr(spec, "name", None) or type(self.model).__name__
        parts = [
            f"{name} on {h}x{w}x{c} images",
            f"{len(self.class_names)} classes ({names_preview(self.class_names)})",
        ]
        parts.append(epochs_text(self.history.epochs_run))
        kept = next((r for r in self.history.rows if r.get("epoch") == self.history.weights_epoch), None)
        row = kept or (self.history.rows[-1] if self.history.rows else {})
        if "val_accuracy" in row:
            parts.append(f"val_accuracy {row['val_accuracy']:.4f} (epoch {int(row['epoch'])})")
        elif "accuracy" in row:
            parts.append(f"accuracy {row['accuracy']:.4f} (epoch {int(row['epoch'])})")
        if self.path is not None:
            parts.append(f"in {self.path}")
        return f"<TrainedModel {', '.join(parts)}>"

    @torch.inference_mode()
    def predict_proba(
        self, images: np.ndarray, batch_size: int | None = None, precision: str | None = None
    ) -> np.ndarray:
        """Class probabilities for raw (N, H, W, C) images: the one prediction path convscope has.

        `precision` defaults to the one the run was trained with: an fp32 run predicts exactly
        (the exported ONNX file gives the same numbers); a bf16 run predicts in bf16, as it validated.
        """
        if images.ndim == 3:
            images = images[None]
        precision = precision or self.config.get("precision", "fp32")
        batch_size = batch_size or predict_batch(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.model.eval()
        out = []
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for start in range(0, len(images), batch_size):
                x = self.scaler.transform(images[start : start + batch_size]).to(self.device)
                out.append(torch.softmax(self.model(x).float(), dim=1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1)

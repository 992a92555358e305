"""The fit loop: Keras' `model.fit` for a torch module, kept on one screen.

Adam with Keras defaults, categorical cross-entropy on integer labels (same numbers as
one-hot + softmax, without building one-hot vectors), mini-batches over a tensor that stays
resident on the device, `validation_split` taken from the end of the training arrays as Keras
does, early stopping, and Ctrl-C that ends the run cleanly with the best weights so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Dataset
from ..data.scaling import MinMaxScaler
from ..errors import UserError
from .device import pick_device
from .early_stopping import EarlyStopping
from .history import History
from .progress import ProgressBar
from .trained_model import TrainedModel

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Tensors:
    """A split, scaled and resident on the device: no per-sample Python work during training."""

    x: torch.Tensor  # float32 (N, C, H, W)
    y: torch.Tensor  # int64 (N,)

    @classmethod
    def of(cls, data: Dataset, scaler: MinMaxScaler, device: torch.device) -> Tensors:
        x = scaler.transform(data.images).to(device).contiguous(memory_format=torch.channels_last)
        return cls(x, torch.as_tensor(data.labels, dtype=torch.long, device=device))


def fit(
    model: nn.Module,
    train: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    validation_split: float = 0.0,
    validation_data: Dataset | None = None,
    early_stopping: EarlyStopping | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = True,
    stream: TextIO | None = None,
) -> TrainedModel:
    """Train `model` on `train`; returns the model with its scaler, class names and history.

    `validation_split` holds out the last fraction of `train` (before shuffling), exactly like
    Keras; `validation_data` gives a separate set instead.
    """
    _check_settings(epochs, batch_size, validation_split, lr, precision)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    if validation_data is None and validation_split > 0:
        cut = int(len(train) * (1.0 - validation_split))
        if cut < 1 or cut >= len(train):
            raise UserError(f"validation_split={validation_split} leaves no training or no validation images out of {len(train)}.")
        train, validation_data = train.subset(torch.arange(cut).numpy()), train.subset(torch.arange(cut, len(train)).numpy())
    stopper = early_stopping.fresh() if early_stopping is not None else None
    if stopper is not None and stopper.monitor.startswith("val_") and validation_data is None:
        raise UserError(f"early stopping monitors {stopper.monitor}, but there is no validation data; set validation_split.")

    scaler = MinMaxScaler.fit(train.images)  # training statistics only, reused unchanged everywhere after
    train_t = Tensors.of(train, scaler, device)
    val_t = Tensors.of(validation_data, scaler, device) if validation_data is not None else None

    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)  # Keras' epsilon
    history = History()
    steps = -(-len(train) // batch_size)
    progress = ProgressBar(epochs, steps, stream, enabled=verbose)
    shuffler = torch.Generator().manual_seed(seed)
    autocast = _autocast(device, precision)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout draws from the global generator; fork_rng keeps ours private
        try:
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                progress.start_epoch(epoch)
                metrics = _train_epoch(model, optimizer, train_t, batch_size, shuffler, autocast, progress)
                if val_t is not None:
                    val_loss, val_acc = evaluate_tensors(model, val_t, autocast=autocast)
                    metrics.update(val_loss=val_loss, val_accuracy=val_acc)
                metrics.update(epoch=epoch, lr=lr, seconds=time.perf_counter() - started)
                history.rows.append(metrics)
                stop = stopper is not None and stopper.update(epoch, metrics, model)
                progress.end_epoch(metrics, "  (early stop)" if stop else "")
                if stop:
                    history.stopped_early = True
                    break
        except KeyboardInterrupt:
            history.interrupted = True
            if verbose:
                print("\nInterrupted: stopping cleanly with the best weights so far.", file=stream)

    history.best_epoch = stopper.best_epoch if stopper is not None else history.best_by("val_loss", "loss")
    history.weights_epoch = history.best_epoch if stopper is not None and stopper.restore(model) else history.epochs_run
    config = {
        "epochs": epochs, "batch_size": batch_size, "validation_split": validation_split, "lr": lr,
        "seed": seed, "precision": precision, "device": str(device),
        "early_stopping": stopper.settings() if stopper else None,
    }
    return TrainedModel(model.eval(), scaler, train.class_names, train.input_shape, history, config, device)


def _train_epoch(model, optimizer, data: Tensors, batch_size: int, shuffler, autocast, progress) -> dict[str, float]:
    model.train()
    n = len(data.y)
    order = torch.randperm(n, generator=shuffler).to(data.y.device)
    loss_sum = torch.zeros((), device=data.y.device)
    correct = torch.zeros((), device=data.y.device, dtype=torch.long)
    for step, start in enumerate(range(0, n, batch_size), start=1):
        idx = order[start : start + batch_size]
        x, y = data.x[idx], data.y[idx]
        with autocast():
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        if progress.live:
            seen = min(start + batch_size, n)
            progress.step(step, loss_sum.item() / seen, correct.item() / seen)
    return {"loss": loss_sum.item() / n, "accuracy": correct.item() / n}


@torch.inference_mode()
def evaluate_tensors(model: nn.Module, data: Tensors, batch_size: int = 1024, autocast=None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in inference mode (dropout off, BatchNorm's moving statistics)."""
    model.eval()
    autocast = autocast or _autocast(data.x.device, "fp32")
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data.y), batch_size):
        x, y = data.x[start : start + batch_size], data.y[start : start + batch_size]
        with autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
    n = max(len(data.y), 1)
    return loss_sum / n, correct / n


def _autocast(device: torch.device, precision: str):
    enabled = precision == "bf16"
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _check_settings(epochs: int, batch_size: int, validation_split: float, lr: float, precision: str) -> None:
    if epochs < 1 or batch_size < 1:
        raise UserError(f"epochs and batch size must be at least 1, got {epochs} and {batch_size}.")
    if not 0.0 <= validation_split < 1.0:
        raise UserError(f"validation_split must be in [0, 1), got {validation_split}.")
    if lr <= 0:
        raise UserError(f"learning rate must be positive, got {lr}.")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")

"""The one epoch loop: a feed (where batches come from) and a reducer (how many processes share a step).

Feeds: `ResidentFeed` gathers batches from tensors resident on the device (no per-sample Python
work); `StreamFeed` reads them from disk per batch (`data/streaming.py`). Reducers: `OneProcess`,
or `distributed.DataParallel` (several ranks under DDP). Every recipe extra (one-cycle schedule,
label smoothing, random shift) and bf16 runs on every combination.

The resident one-process step is what `fit` spends its time in, and it stays as lean as it was
measured (BENCHMARKS.md): indices stay on the device, the loss and accuracy sums stay device
tensors until the epoch ends, and batch logs (one `.item()` sync per step) are built only when a
callback asks for them (a live progress bar, TerminateOnNaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Dataset
from ..data.scaling import MinMaxScaler
from ..data.streaming import is_streaming, read_batches
from .augment import random_shift as shift_images
from .diagnostics import steps_per_epoch
from .trained_model import predict_batch

Index = torch.Tensor | slice  # a batch: positions in the feed, or a contiguous range of them
# One step's part for this process: (its indices, loss weight, its share of the global batch, the global batch's size)
Share = tuple[torch.Tensor, float, slice, int | None]


class Feed(Protocol):
    """Where batches come from: `ResidentFeed` (tensors on the device) or `StreamFeed` (read from disk)."""

    device: torch.device

    def __len__(self) -> int: ...

    def place(self, order: torch.Tensor) -> torch.Tensor:
        """The epoch's shuffled order, where `batches` wants its indices."""
        ...

    def batches(self, indices: Sequence[Index]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def eval_batch_size(self, train_batch_size: int) -> int: ...


class Reducer(Protocol):
    """How many processes share a step: `OneProcess`, or `distributed.DataParallel` (DDP ranks)."""

    world_size: int
    rank: int
    is_main: bool

    def wrap(self, model: nn.Module) -> nn.Module: ...

    def plan(self, order: torch.Tensor, batch_size: int) -> Sequence[Share]: ...

    def positions(self, n: int, batch_size: int) -> Sequence[Index]: ...

    def sum(self, *values: torch.Tensor | float) -> tuple[float, ...]: ...

    def before_validation(self, model: nn.Module) -> None: ...

    def agree(self, stop: bool) -> bool: ...

    def barrier(self) -> None: ...


@dataclass(frozen=True)
class Tensors:
    """A split, scaled and resident on the device: no per-sample Python work during training."""

    x: torch.Tensor  # float32 (N, C, H, W)
    y: torch.Tensor  # int64 (N,)

    @classmethod
    def of(cls, data: Dataset, scaler: MinMaxScaler, device: torch.device) -> Tensors:
        x = scaler.transform(data.images).to(device).contiguous(memory_format=torch.channels_last)
        return cls(x, torch.as_tensor(data.labels, dtype=torch.long, device=device))


class ResidentFeed:
    def __init__(self, tensors: Tensors):
        self.tensors = tensors
        self.device = tensors.y.device

    def __len__(self) -> int:
        return len(self.tensors.y)

    def place(self, order: torch.Tensor) -> torch.Tensor:
        return order.to(self.device)  # one copy per epoch; every batch then slices it on the device

    def batches(self, indices: Sequence[Index]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.tensors.x, self.tensors.y
        for idx in indices:
            yield x[idx], y[idx]

    def eval_batch_size(self, train_batch_size: int) -> int:
        return predict_batch(self.device)


class StreamFeed:
    def __init__(self, data: Dataset, scaler: MinMaxScaler, device: torch.device):
        self.data, self.scaler, self.device = data, scaler, device

    def __len__(self) -> int:
        return len(self.data)

    def place(self, order: torch.Tensor) -> torch.Tensor:
        return order

    def batches(self, indices: Sequence[Index]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        everything = np.arange(len(self.data))
        plain = [everything[i] if isinstance(i, slice) else i.cpu().numpy() for i in indices]
        for images, labels in read_batches(self.data, plain, getattr(self.data, "workers", 0)):
            x = self.scaler.transform(images).to(self.device).contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device)

    def eval_batch_size(self, train_batch_size: int) -> int:
        return train_batch_size  # streamed images are validated in the batches the user made fit in memory


def feed_for(data: Dataset, scaler: MinMaxScaler, device: torch.device) -> Feed:
    return StreamFeed(data, scaler, device) if is_streaming(data) else ResidentFeed(Tensors.of(data, scaler, device))


class OneProcess:
    """The reducer of a single process: every batch is this process's, with weight 1."""

    world_size, rank, is_main = 1, 0, True

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def plan(self, order: torch.Tensor, batch_size: int) -> list[Share]:
        """(this process's indices, loss weight, its share of the global batch, the global batch's size)."""
        everything = slice(None)
        return [(batch, 1.0, everything, None) for batch in order.split(batch_size)]

    def positions(self, n: int, batch_size: int) -> list[Index]:
        return [slice(start, start + batch_size) for start in range(0, n, batch_size)]

    def sum(self, *values: torch.Tensor | float) -> tuple[float, ...]:
        return tuple(float(v) for v in values)

    def before_validation(self, model: nn.Module) -> None: ...

    def agree(self, stop: bool) -> bool:
        return stop

    def barrier(self) -> None: ...


@dataclass(frozen=True)
class Extras:
    """The optional per-step extras of a recipe; all off is plain Keras training."""

    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    label_smoothing: float = 0.0
    random_shift: int = 0


@dataclass
class EpochLoop:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    train: Feed
    validation: Feed | None
    batch_size: int
    shuffler: torch.Generator
    autocast: Callable
    extras: Extras = Extras()
    reducer: Reducer = OneProcess()  # stateless, so one instance serves every loop
    net: Any = None  # what the forward pass calls (DDP's wrapper, torch.compile's); default: model

    def __post_init__(self) -> None:
        self.net = self.net or self.reducer.wrap(self.model)

    @property
    def steps(self) -> int:
        return steps_per_epoch(len(self.train), 0.0, self.batch_size) or 0

    def train_epoch(self, callbacks=None) -> dict[str, float]:
        """One pass over the training feed; returns the epoch's loss, accuracy and last learning rate."""
        net, optimizer, extras, shuffler = self.net, self.optimizer, self.extras, self.shuffler
        net.train()
        n = len(self.train)
        order = self.train.place(torch.randperm(n, generator=shuffler))  # the same draw on every rank
        plan = self.reducer.plan(order, self.batch_size)
        device = self.train.device
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        watched = callbacks is not None and callbacks.wants_batches
        seen = 0
        lr = optimizer.param_groups[0]["lr"]
        for step, ((x, y), (_, weight, share, draws)) in enumerate(zip(self.train.batches([p[0] for p in plan]), plan)):
            if watched:
                callbacks.on_train_batch_begin(step)
            if extras.random_shift:
                x = shift_images(x, extras.random_shift, shuffler, draws, share)
            with self.autocast():
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=extras.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            (loss if weight == 1.0 else loss * weight).backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used, for the history
            if extras.scheduler is not None:
                extras.scheduler.step()
            if weight == 0.0:  # a rank's stand-in step on a short last batch: counts for nothing
                continue
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            if watched:
                seen += len(y)
                callbacks.on_train_batch_end(step, {"loss": loss_sum.item() / seen, "accuracy": correct.item() / seen})
                if self.reducer.world_size == 1 and getattr(
                    self.model, "stop_training", False
                ):  # Keras ends the epoch at once (TerminateOnNaN); ranks must finish it together
                    break
        total_loss, total_correct = self.reducer.sum(loss_sum, correct)
        return {"loss": total_loss / n, "accuracy": total_correct / n, "lr": lr}

    def validate(self, batch_size: int | None = None, grad_mode=torch.inference_mode) -> tuple[float, float]:
        """Validation loss and accuracy (dropout off, BatchNorm's moving statistics), over every rank's shard."""
        assert self.validation is not None
        return evaluate_feed(
            self.model,
            self.validation,
            self.reducer,
            self.autocast,
            batch_size or self.validation.eval_batch_size(self.batch_size),
            grad_mode,
        )


def evaluate_feed(
    model: nn.Module, feed: Feed, reducer: Reducer, autocast, batch_size: int, grad_mode=torch.inference_mode
) -> tuple[float, float]:
    with grad_mode():
        reducer.before_validation(model)
        model.eval()  # the bare module: no DDP hooks outside training
        loss_sum, correct = 0.0, 0
        for x, y in feed.batches(reducer.positions(len(feed), batch_size)):
            with autocast():
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        total_loss, total_correct = reducer.sum(
            torch.tensor(loss_sum, dtype=torch.float64), torch.tensor(float(correct))
        )
    n = max(len(feed), 1)
    return total_loss / n, total_correct / n


def autocast_for(device: torch.device, precision: str) -> Callable:
    enabled = precision == "bf16"
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def evaluate_tensors(
    model: nn.Module, data: Tensors, batch_size: int | None = None, autocast=None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of resident tensors in inference mode, in one process."""
    autocast = autocast or autocast_for(data.x.device, "fp32")
    return evaluate_feed(model, ResidentFeed(data), OneProcess(), autocast, batch_size or predict_batch(data.x.device))

"""The fit loop: Keras' `model.fit` for a torch module, kept on one screen.

Adam with Keras defaults, categorical cross-entropy on integer labels (same numbers as
one-hot + softmax, without building one-hot vectors), mini-batches over a tensor that stays
resident on the device, `validation_split` taken from the end of the training arrays as Keras
does, early stopping, and Ctrl-C that ends the run cleanly with the best weights so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Dataset
from ..data.framing import learn_contract
from ..data.scaling import MinMaxScaler
from ..display.notebook import in_notebook
from ..errors import UserError
from .allocator import keep_freed_memory
from .augment import random_shift as shift_images
from .device import pick_device
from .early_stopping import EarlyStopping
from .history import History
from .progress import ProgressBar
from .recipes import check_extras, lr_scheduler
from .threads import ThreadGovernor
from .trained_model import TrainedModel, predict_batch

if TYPE_CHECKING:
    from .distributed import DistContext

PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where the hardware has it, else fp32


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
    schedule: str = "constant",
    label_smoothing: float = 0.0,
    random_shift: int = 0,
    verbose: bool = True,
    stream: TextIO | None = None,
    distributed: DistContext | None = None,
    on_epoch: Callable[[dict[str, float]], bool] | None = None,
    threads: int | None = None,
) -> TrainedModel:
    """Train `model` on `train`; returns the model with its scaler, class names and history.

    `validation_split` holds out the last fraction of `train` (before shuffling), exactly like
    Keras; `validation_data` gives a separate set instead.  `distributed`: this process's rank
    (see `distributed.py`); `on_epoch(metrics)` returning True ends training (a sweep's pruner).
    `schedule`, `label_smoothing` and `random_shift` are optional extras, off by default (see `recipes.py`).
    `threads`: torch's intra-op threads; None picks them from the free cores and adjusts them while training (`threads.py`).
    """
    _check_settings(epochs, batch_size, validation_split, lr, precision)
    check_extras(schedule, label_smoothing, random_shift)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    device = distributed.device(device) if distributed is not None else device
    precision = resolve_precision(precision, device)
    if validation_data is None and validation_split > 0:
        cut = int(len(train) * (1.0 - validation_split))
        if cut < 1 or cut >= len(train):
            raise UserError(f"validation_split={validation_split} leaves no training or no validation images out of {len(train)}.")
        train, validation_data = train.subset(torch.arange(cut).numpy()), train.subset(torch.arange(cut, len(train)).numpy())
    stopper = early_stopping.fresh() if early_stopping is not None else None
    if stopper is not None and stopper.monitor.startswith("val_") and validation_data is None:
        raise UserError(f"early stopping monitors {stopper.monitor}, but there is no validation data; set validation_split.")

    scaler = MinMaxScaler.fit(train.images)  # training statistics only, reused unchanged everywhere after
    contract = learn_contract(train.images, (scaler.minimum, scaler.maximum))  # how new pictures get framed
    if device.type == "cpu":
        keep_freed_memory()  # else every step page-faults its activations back in (allocator.py)
    # Several ranks, or images streamed from disk, take the loop in distributed.py; the default stays here.
    parallel = distributed is not None or not isinstance(train.images, np.ndarray)

    model = model.to(device).to(memory_format=torch.channels_last)
    # Keras' epsilon; one fused kernel per step instead of ~10 small ops per parameter (1.04x a cnn step)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7, fused=_fusable(model))
    history = History()
    steps = -(-len(train) // batch_size)
    progress = progress_display(epochs, steps, stream, enabled=verbose and (distributed is None or distributed.is_main))
    shuffler = torch.Generator().manual_seed(seed)
    autocast = _autocast(device, precision)
    extras = _Extras(lr_scheduler(optimizer, schedule, epochs * steps), label_smoothing, random_shift)
    if parallel:
        if (schedule, label_smoothing, random_shift) != ("constant", 0.0, 0):
            raise UserError("schedule, label_smoothing and random_shift (the fast recipe) work on in-memory data in "
                            "one process; for distributed or streamed training use the keras recipe.")
        from .distributed import ParallelLoop

        loop = ParallelLoop(model, optimizer, train, validation_data, scaler, device, batch_size, shuffler, autocast,
                            progress, distributed)
    else:
        val_t = Tensors.of(validation_data, scaler, device) if validation_data is not None else None
        loop = _ResidentLoop(model, optimizer, Tensors.of(train, scaler, device), val_t, batch_size, shuffler, autocast,
                             progress, extras)

    governor = ThreadGovernor.start(model, threads, fixed=distributed is not None)  # DDP ranks keep their launcher's count
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + (distributed.rank if distributed else 0))  # dropout draws from the global generator; fork_rng keeps ours private
        try:
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                progress.start_epoch(epoch)
                metrics = loop.train_epoch()
                if validation_data is not None:
                    val_loss, val_acc = loop.validate()
                    metrics.update(val_loss=val_loss, val_accuracy=val_acc)
                metrics.update(epoch=epoch, seconds=time.perf_counter() - started)
                metrics.setdefault("lr", lr)
                history.rows.append(metrics)
                stop = stopper is not None and stopper.update(epoch, metrics, model)
                stop = bool(on_epoch is not None and on_epoch(metrics)) or stop
                stop = loop.agree(stop)
                progress.end_epoch(metrics, "  (early stop)" if stop else "")
                if stop:
                    history.stopped_early = True
                    break
        except KeyboardInterrupt:
            history.interrupted = True
            if verbose:
                print("\nInterrupted: stopping cleanly with the best weights so far.", file=stream)

    thread_record = governor.stop()
    history.best_epoch = stopper.best_epoch if stopper is not None else history.best_by("val_loss", "loss")
    history.weights_epoch = history.best_epoch if stopper is not None and stopper.restore(model) else history.epochs_run
    progress.finish(history)
    config = {
        "epochs": epochs, "batch_size": batch_size, "validation_split": validation_split, "lr": lr,
        "seed": seed, "precision": precision, "device": str(device),
        "early_stopping": stopper.settings() if stopper else None,
        "schedule": schedule, "label_smoothing": label_smoothing, "random_shift": random_shift,
        "threads": thread_record,
    }
    if distributed is not None:
        config["world_size"] = distributed.world_size
    return TrainedModel(model.eval(), scaler, train.class_names, train.input_shape, history, config, device,
                        input_contract=contract)


def progress_display(epochs: int, steps: int, stream: TextIO | None, enabled: bool):
    """How training reports progress, chosen in this one place: in a Jupyter kernel, one status line
    and a live chart updated in place (`notebook_progress.py`); elsewhere Keras' text bar, on `stream`."""
    if enabled and stream is None and in_notebook():
        from .notebook_progress import NotebookBar

        return NotebookBar(epochs, steps)
    return ProgressBar(epochs, steps, stream, enabled=enabled)


@dataclass(frozen=True)
class _Extras:
    """The optional per-step extras of a recipe; all off is plain Keras training."""

    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    label_smoothing: float = 0.0
    random_shift: int = 0


@dataclass
class _ResidentLoop:
    """The default path: in-memory tensors in one process (`distributed.ParallelLoop` has the same three methods)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train: Tensors
    validation: Tensors | None
    batch_size: int
    shuffler: torch.Generator
    autocast: Callable
    progress: ProgressBar
    extras: _Extras

    def train_epoch(self) -> dict[str, float]:
        return _train_epoch(self.model, self.optimizer, self.train, self.batch_size, self.shuffler, self.autocast,
                            self.progress, self.extras)

    def validate(self) -> tuple[float, float]:
        return evaluate_tensors(self.model, self.validation, autocast=self.autocast)

    def agree(self, stop: bool) -> bool:
        return stop  # one process: nobody to agree with


def _train_epoch(model, optimizer, data: Tensors, batch_size: int, shuffler, autocast, progress,
                 extras: _Extras = _Extras()) -> dict[str, float]:
    model.train()
    n = len(data.y)
    order = torch.randperm(n, generator=shuffler).to(data.y.device)
    loss_sum = torch.zeros((), device=data.y.device)
    correct = torch.zeros((), device=data.y.device, dtype=torch.long)
    for step, start in enumerate(range(0, n, batch_size), start=1):
        idx = order[start : start + batch_size]
        x, y = data.x[idx], data.y[idx]
        x = shift_images(x, extras.random_shift, shuffler)
        with autocast():
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=extras.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used, for the history
        if extras.scheduler is not None:
            extras.scheduler.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        if progress.live:
            seen = min(start + batch_size, n)
            progress.step(step, loss_sum.item() / seen, correct.item() / seen)
    return {"loss": loss_sum.item() / n, "accuracy": correct.item() / n, "lr": lr}


@torch.inference_mode()
def evaluate_tensors(model: nn.Module, data: Tensors, batch_size: int | None = None, autocast=None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in inference mode (dropout off, BatchNorm's moving statistics)."""
    model.eval()
    autocast = autocast or _autocast(data.x.device, "fp32")
    batch_size = batch_size or predict_batch(data.x.device)
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data.y), batch_size):
        x, y = data.x[start : start + batch_size], data.y[start : start + batch_size]
        with autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
    n = max(len(data.y), 1)
    return loss_sum / n, correct / n


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 where the hardware computes it natively (CUDA GPUs with bf16, CPUs with
    AVX-512 BF16 or AMX), else fp32: emulated bf16 on older CPUs is slower than fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return "bf16" if native else "fp32"


def _fusable(model: nn.Module) -> bool | None:
    """torch's fused Adam takes floating-point parameters on the CPU or CUDA, all on one device."""
    params = list(model.parameters())
    same = len({(p.device, p.dtype) for p in params}) == 1
    return True if params and same and params[0].is_floating_point() and params[0].device.type in ("cpu", "cuda") else None


def _autocast(device: torch.device, precision: str):
    enabled = precision == "bf16"
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _check_settings(epochs: int, batch_size: int, validation_split: float, lr: float, precision: str) -> None:
    if epochs < 1 or batch_size < 1:
        raise UserError(f"epochs and batch size must be at least 1, got {epochs} and {batch_size}.")
    if not 0.0 <= validation_split < 1.0:
        raise UserError(f"validation_split must be in [0, 1), got {validation_split}.")
    if not 0 < lr < float("inf"):  # NaN fails both comparisons
        raise UserError(f"learning rate must be positive, got {lr}.")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")

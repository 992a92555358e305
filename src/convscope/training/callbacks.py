"""Keras callbacks for `fit`: the one extension point of the epoch loop.

    cs.fit(model, train, validation_split=0.2, epochs=30, callbacks=[
        cs.ModelCheckpoint("best.safetensors", monitor="val_loss", save_best_only=True),
        cs.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
        cs.CSVLogger("log.csv"),
    ])

Names, arguments and semantics are Keras': `epoch` is 0-based in every hook, the logs of
`on_epoch_end` hold `loss`, `accuracy`, `val_loss`, `val_accuracy` and `lr`, and a callback ends
training with `self.model.stop_training = True`. `self.model` is the torch module being trained
(its optimizer is `self.model.optimizer` during `fit`, as in Keras).

Two additions that Keras does not need: `main_process_only` (callbacks that write files run on
rank 0 of a distributed run only; the others run on every rank, on the same all-reduced logs, so
every rank takes the same decisions), and `state_dict`/`load_state_dict`, which `--resume` saves
after every epoch so that a resumed run decides exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")


class Callback:
    """Keras' `keras.callbacks.Callback`: override the hooks you need."""

    main_process_only = False  # True: runs on rank 0 only (it writes files or prints)

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None) -> None: ...
    def on_train_end(self, logs=None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs=None) -> None: ...
    def on_epoch_end(self, epoch: int, logs=None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs=None) -> None: ...
    def on_train_batch_end(self, batch: int, logs=None) -> None: ...

    @property
    def wants_batches(self) -> bool:
        """Whether the per-batch hooks do anything: the loop only builds batch logs (one
        device-to-host sync each) when some callback asks for them."""
        cls = type(self)
        return (
            cls.on_train_batch_begin is not Callback.on_train_batch_begin
            or cls.on_train_batch_end is not Callback.on_train_batch_end
        )

    def state_dict(self) -> dict[str, Any]:
        """What `--resume` must restore: JSON values, tensors, or dicts of tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CallbackList:
    """The callbacks of one `fit`, called in order."""

    def __init__(self, callbacks: Iterable[Callback], model, params: dict[str, Any]):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batches = any(cb.wants_batches for cb in self.callbacks)

    def __iter__(self):
        return iter(self.callbacks)

    def on_train_begin(self, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)


def get_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value


def check_monitor(owner: str, monitor: str) -> None:
    if monitor not in MONITORS:
        raise UserError(f"{owner} can monitor {', '.join(MONITORS)}, not {monitor!r}.")


def maximizes(monitor: str, mode: str) -> bool:
    """Keras' mode: 'max' for accuracies and 'min' for losses when 'auto'."""
    if mode not in ("auto", "min", "max"):
        raise UserError(f"mode must be auto, min or max, not {mode!r}.")
    return mode == "max" or (mode == "auto" and "acc" in monitor)


def _finite(name: str, value: float, low: float = 0.0) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
        raise UserError(f"{name} must be a finite number >= {low:g}, got {value!r}.")


class ModelCheckpoint(Callback):
    """Save the weights (safetensors) after every epoch, or only when `monitor` improves.

    `filepath` may hold Keras' format fields, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"
    (`epoch` 1-based in the name, as in Keras). Weights only: the architecture and scaling live
    in the run directory (`cs.save_run`), whose format has no pickle either.
    """

    main_process_only = True

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = True,
        mode: str = "auto",
        save_freq: str = "epoch",
        initial_value_threshold: float | None = None,
    ):
        super().__init__()
        check_monitor("ModelCheckpoint", monitor)
        if save_freq != "epoch":
            raise UserError(f"ModelCheckpoint saves once per epoch (save_freq='epoch'), not {save_freq!r}.")
        if not save_weights_only:
            raise UserError("ModelCheckpoint writes weights (safetensors); save the whole run with cs.save_run.")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.maximize = save_best_only, maximizes(monitor, mode)
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold

    def on_train_begin(self, logs=None) -> None:
        self.best = self.initial_value_threshold

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or not math.isfinite(value):
                return
            if self.best is not None and not (value > self.best if self.maximize else value < self.best):
                return
            self.best = value
        path = Path(self.filepath.format(epoch=epoch + 1, **logs))
        save_weights(self.model, path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the weights to {path}")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The module's state as safetensors, written to a temporary name and renamed: never half a file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` once `monitor` has not improved for `patience` epochs.

    Keras' rule: an epoch improves when it beats the best by more than `min_delta`; after a
    reduction, `cooldown` epochs pass before waiting starts again; the rate never goes below
    `min_lr`. With the one-cycle schedule the schedule sets the rate every step, so use the
    constant schedule with this callback.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        super().__init__()
        check_monitor("ReduceLROnPlateau", monitor)
        if not (isinstance(factor, (int, float)) and 0.0 < factor < 1.0):
            raise UserError(f"ReduceLROnPlateau factor must be between 0 and 1 (exclusive), got {factor!r}.")
        _finite("ReduceLROnPlateau min_delta", min_delta)
        _finite("ReduceLROnPlateau min_lr", min_lr)
        if patience < 0 or cooldown < 0:
            raise UserError(f"ReduceLROnPlateau patience and cooldown must be >= 0, got {patience} and {cooldown}.")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), cooldown, float(min_lr)
        self.maximize = maximizes(monitor, mode)
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or (
            value > self.best + self.min_delta if self.maximize else value < self.best - self.min_delta
        ):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = get_lr(self.model.optimizer)
            if old > self.min_lr:  # at the floor already: keep waiting, as Keras does
                new = max(old * self.factor, self.min_lr)
                set_lr(self.model.optimizer, new)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.4g}.")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to `schedule(epoch, lr)` (epoch 0-based)."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, get_lr(optimizer))
        except TypeError:  # Keras also accepts a schedule of the epoch alone
            lr = self.schedule(epoch)
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0:
            raise UserError(
                f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}; it must be a finite rate >= 0."
            )
        set_lr(optimizer, lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:.4g}.")


class CSVLogger(Callback):
    """One CSV row per epoch: `epoch` (0-based, as Keras writes it) and every log value, sorted by name."""

    main_process_only = True

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.sep, self.append = Path(filename), separator, append
        self.keys: list[str] | None = None
        self.text = ""  # what this run wrote: kept so that --resume can put the file back as it was

    def on_train_begin(self, logs=None) -> None:
        self.keys = None
        self.text = self.filename.read_text() if self.append and self.filename.is_file() else ""
        self._header_written = bool(self.text)
        self._write()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", *self.keys], delimiter=self.sep, lineterminator="\n")
        if not self._header_written:
            writer.writeheader()
            self._header_written = True
        writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.text += out.getvalue()
        self._write()

    def _write(self) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.filename.with_name(f".{self.filename.name}.tmp")
        tmp.write_text(self.text)
        os.replace(tmp, self.filename)

    def state_dict(self) -> dict[str, Any]:
        return {"text": self.text, "keys": self.keys, "header": self._header_written}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.text, self.keys, self._header_written = state["text"], state["keys"], state["header"]
        self._write()  # drops a row written after the saved epoch by the run that was killed


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Scalars per epoch (`epoch_loss`, `epoch_accuracy`, `epoch_learning_rate`) in TensorBoard event files.

    Training values go to `log_dir/train`, validation values to `log_dir/validation`, as Keras
    lays them out (so `tensorboard --logdir log_dir` shows both on one chart). Needs the
    optional extra: pip install 'convscope[tensorboard]'.
    """

    main_process_only = True

    def __init__(self, log_dir: str | os.PathLike = "logs"):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer_class = _summary_writer()  # refuse at construction, before any training
        self._writers: dict[str, Any] = {}
        self._purge_step: int | None = None
        self._next_epoch = 0

    def _writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = self._writer_class(str(self.log_dir / name), purge_step=self._purge_step)
        return self._writers[name]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        for key, value in logs.items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            name = "learning_rate" if name == "lr" else name
            self._writer(split).add_scalar(f"epoch_{name}", value, global_step=epoch)
        for writer in self._writers.values():
            writer.flush()
        self._next_epoch = epoch + 1

    def on_train_end(self, logs=None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self._next_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Resuming after epoch k: events at later steps, written before the kill, are discarded.
        self._next_epoch = int(state["next_epoch"])
        self._purge_step = self._next_epoch or None


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "TensorBoard logs need the tensorboard package: pip install 'convscope[tensorboard]'."
        ) from None
    return SummaryWriter

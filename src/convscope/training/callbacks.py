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
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..i18n import _
from ..settings_table import MONITORS  # the one list, also `convscope train --monitor`'s choices

MODES = ("auto", "min", "max")


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


@dataclass(frozen=True)
class MonitorRule:
    """When a monitored value counts as better than the best so far: the one rule of every callback
    that watches a metric, and of the best epoch every view names (`best_epoch`)."""

    monitor: str = "val_loss"
    mode: str = "auto"
    min_delta: float = 0.0
    start_from_epoch: int = 0  # 0-based epochs before this one are not looked at, as in Keras

    @property
    def maximize(self) -> bool:
        """Keras' mode: 'max' for accuracies and 'min' for losses when 'auto'."""
        return self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor)

    def improves(self, value: float, reference: float | None) -> bool:
        """Keras' `_is_improvement`: better than `reference` by more than min_delta (NaN never is)."""
        if reference is None:
            return True
        return value - self.min_delta > reference if self.maximize else value + self.min_delta < reference

    @classmethod
    def default(cls, has_validation: bool) -> MonitorRule:
        """The rule of a run without early stopping: the lowest validation loss (training loss without validation)."""
        return cls("val_loss" if has_validation else "loss")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MonitorRule:
        """The rule of an `EarlyStopping.settings()` dict (config.json's `early_stopping`)."""
        return cls(
            str(settings.get("monitor", "val_loss")),
            str(settings.get("mode", "auto")),
            abs(float(settings.get("min_delta") or 0.0)),
            int(settings.get("start_from_epoch") or 0),
        )


def best_epoch(rows: Iterable[Mapping[str, float]], rule: MonitorRule) -> int | None:
    """The 1-based epoch `rule` calls the best, replayed over a history's rows: the same epoch EarlyStopping keeps."""
    best, chosen = None, None
    for row in rows:
        epoch, value = int(row["epoch"]), row.get(rule.monitor)
        if value is None or epoch - 1 < rule.start_from_epoch:
            continue
        if rule.improves(value, best):
            best, chosen = value, epoch
    return chosen


class MonitorCallback(Callback):
    """Keras' `MonitorCallback`: the base of every callback that watches one metric.

    It holds `monitor`, `mode`, `min_delta` (its size; `mode` gives the direction), `baseline` and
    the best value so far, and decides what counts as an improvement by `MonitorRule`, so that
    EarlyStopping, ModelCheckpoint and ReduceLROnPlateau cannot disagree about it. Subclasses check
    their own numbers before calling `__init__`, which checks the monitor and the mode.
    """

    def __init__(
        self, monitor: str = "val_loss", mode: str = "auto", baseline: float | None = None, min_delta: float = 0.0
    ):
        super().__init__()
        self.check_monitor(monitor, mode)
        self.monitor, self.mode, self.baseline = monitor, mode, baseline
        self.min_delta = abs(float(min_delta))
        self.best: float | None = baseline

    @property
    def owner(self) -> str:
        """The callback's name in a message."""
        return type(self).__name__

    def check_monitor(self, monitor: str, mode: str) -> None:
        """Refuse a metric the logs never hold and a mode Keras does not know, naming the callback."""
        if monitor not in MONITORS:
            raise UserError(
                _("{owner} can monitor {choices}, not {monitor!r}.").format(
                    owner=self.owner, choices=", ".join(MONITORS), monitor=monitor
                )
            )
        if mode not in MODES:
            raise UserError(_("mode must be auto, min or max, not {mode!r}.").format(mode=mode))

    @property
    def rule(self) -> MonitorRule:
        return MonitorRule(self.monitor, self.mode, self.min_delta)

    @property
    def maximize(self) -> bool:
        return self.rule.maximize

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best so far by the rule (the first value always does)."""
        return self.rule.improves(value, self.best)


def _finite(name: str, value: float, low: float = 0.0) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
        raise UserError(
            _("{name} must be a finite number >= {low:g}, got {value!r}.").format(name=name, low=low, value=value)
        )


class ModelCheckpoint(MonitorCallback):
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
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ):
        if save_freq != "epoch" and not (
            isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0
        ):
            raise UserError(
                _("ModelCheckpoint save_freq is 'epoch' or a number of batches > 0, not {value!r}.").format(
                    value=save_freq
                )
            )
        if not save_weights_only:
            raise UserError(
                _(
                    "ModelCheckpoint(save_weights_only=False) would save the whole Keras model; convscope checkpoints "
                    "hold the weights (safetensors): leave save_weights_only=True and save the run with cs.save_run."
                )
            )
        # Keras' rule for a checkpoint: any improvement counts (no min_delta), from the threshold on
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath, self.verbose, self.save_best_only = str(filepath), verbose, save_best_only
        self.save_weights_only, self.save_freq = save_weights_only, save_freq
        self._epoch = 0
        self._batches_since_save = 0

    @property
    def wants_batches(self) -> bool:
        return self.save_freq != "epoch"

    @property
    def initial_value_threshold(self) -> float | None:
        return self.baseline

    def on_train_begin(self, logs=None) -> None:
        self.best = self.baseline
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        """With `save_freq=N`: every N batches, as Keras counts them (across epochs)."""
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= int(self.save_freq):
            self._batches_since_save = 0
            self._save(self._epoch, logs or {}, batch)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, logs or {}, None)

    def _save(self, epoch: int, logs: dict, batch: int | None) -> None:
        path = Path(self.filepath.format(epoch=epoch + 1, batch=(batch or 0) + 1, **logs))
        if self.save_best_only:
            value = logs.get(self.monitor)
            # Keras saves when the monitored value is missing (a batch has no val_loss) and skips a non-improvement
            if value is not None:
                if not math.isfinite(value):
                    return
                if not self.improved(value):
                    if self.verbose:
                        print(
                            _("Epoch {epoch}: {monitor} did not improve from {best:.5f}").format(
                                epoch=epoch + 1, monitor=self.monitor, best=self.best
                            )
                        )
                    return
                if self.verbose:
                    print(
                        _(
                            "Epoch {epoch}: {monitor} improved from {best} to {value:.5f}, saving the weights to {path}"
                        ).format(
                            epoch=epoch + 1,
                            monitor=self.monitor,
                            best="None" if self.best is None else f"{self.best:.5f}",
                            value=value,
                            path=path,
                        )
                    )
                self.best = value
                save_weights(self.model, path)
                return
        save_weights(self.model, path)
        if self.verbose:
            print(_("Epoch {epoch}: saved the weights to {path}").format(epoch=epoch + 1, path=path))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "batches": self._batches_since_save}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self._batches_since_save = int(state.get("batches", 0))


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The module's state as safetensors, written to a temporary name and renamed: never half a file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


class ReduceLROnPlateau(MonitorCallback):
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
        **kwargs: Any,
    ):
        if "epsilon" in kwargs:  # Keras' old name for min_delta, which Keras 3 still takes
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise UserError(
                _("ReduceLROnPlateau takes no argument {names}.").format(names=", ".join(map(repr, sorted(kwargs))))
            )
        if not (isinstance(factor, (int, float)) and 0.0 < factor < 1.0):
            raise UserError(
                _("ReduceLROnPlateau factor must be between 0 and 1 (exclusive), got {factor!r}.").format(factor=factor)
            )
        _finite("ReduceLROnPlateau min_delta", min_delta)
        _finite("ReduceLROnPlateau min_lr", min_lr)
        if patience < 0 or cooldown < 0:
            raise UserError(
                _("ReduceLROnPlateau patience and cooldown must be >= 0, got {patience} and {cooldown}.").format(
                    patience=patience, cooldown=cooldown
                )
            )
        super().__init__(monitor, mode, min_delta=min_delta)
        self.factor, self.patience, self.verbose = float(factor), patience, verbose
        self.cooldown, self.min_lr = cooldown, float(min_lr)
        self._reset()

    def _reset(self) -> None:
        self.best = None
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
        if self.improved(value):
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
                    print(
                        _("Epoch {epoch}: ReduceLROnPlateau reducing learning rate to {new:.4g}.").format(
                            epoch=epoch + 1, new=new
                        )
                    )

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
                _(
                    "LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}; it must be a finite rate >= 0."
                ).format(lr=lr, epoch=epoch)
            )
        set_lr(optimizer, lr)
        if self.verbose:
            print(
                _("Epoch {epoch}: LearningRateScheduler setting learning rate to {lr:.4g}.").format(
                    epoch=epoch + 1, lr=lr
                )
            )


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
    """Stop training as soon as a batch's loss is NaN or infinite; with `raise_error=True`, raise at once
    instead (Keras raises RuntimeError; this is the UserError, a one-sentence error, with the same words)."""

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise UserError(
                    _("NaN or Inf loss encountered at batch {batch}: loss {loss}; training stopped.").format(
                        batch=batch, loss=loss
                    )
                )
            print(_("Batch {batch}: invalid loss, terminating training").format(batch=batch))
            self.model.stop_training = True


class TensorBoard(Callback):
    """Scalars per epoch (`epoch_loss`, `epoch_accuracy`, `epoch_learning_rate`) in TensorBoard event files.

    Training values go to `log_dir/train`, validation values to `log_dir/validation`, as Keras
    lays them out (so `tensorboard --logdir log_dir` shows both on one chart). Needs the
    optional extra: pip install 'convscope[tensorboard]'.
    """

    main_process_only = True

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        histogram_freq: int = 0,
        write_graph: bool = False,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: str | int = "epoch",
        profile_batch: int = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ):
        super().__init__()
        # What convscope does not write. Keras' defaults are off, except write_graph (the report's Model section
        # shows the layers instead), so that TensorBoard(log_dir) with Keras' other defaults works unchanged.
        for name, value, off in (
            ("write_graph", write_graph, False),
            ("write_images", write_images, False),
            ("profile_batch", profile_batch, 0),
            ("embeddings_freq", embeddings_freq, 0),
            ("embeddings_metadata", embeddings_metadata, None),
        ):
            if value != off:
                raise UserError(
                    _(
                        "TensorBoard({name}={value!r}): convscope does not write that to TensorBoard; leave it at {off!r}."
                    ).format(name=name, value=value, off=off)
                )
        if update_freq not in ("epoch", "batch") and not (
            isinstance(update_freq, int) and not isinstance(update_freq, bool) and update_freq > 0
        ):
            raise UserError(
                _("TensorBoard update_freq is 'epoch', 'batch' or a number of batches > 0, not {value!r}.").format(
                    value=update_freq
                )
            )
        if not (isinstance(histogram_freq, int) and histogram_freq >= 0):
            raise UserError(
                _("TensorBoard histogram_freq must be an integer >= 0, not {value!r}.").format(value=histogram_freq)
            )
        self.log_dir, self.histogram_freq = Path(log_dir), histogram_freq
        self.write_steps_per_second, self.update_freq = write_steps_per_second, update_freq
        self._writer_class = _summary_writer()  # refuse at construction, before any training
        self._writers: dict[str, Any] = {}
        self._purge_step: int | None = None
        self._next_epoch = 0
        self._step = 0  # optimizer steps so far: the x axis of batch-level scalars
        self._epoch_started = 0.0

    @property
    def wants_batches(self) -> bool:
        return self.update_freq != "epoch"

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        """`update_freq="batch"` or N: the batch's loss and accuracy every N steps, as Keras' `batch_*` scalars."""
        self._step += 1
        every = 1 if self.update_freq == "batch" else int(self.update_freq)
        if self._step % every:
            return
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)):
                self._writer("train").add_scalar(f"batch_{key}", value, global_step=self._step)

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
        if self.write_steps_per_second:
            seconds = time.perf_counter() - self._epoch_started
            steps = self.params.get("steps", 0)
            if seconds > 0 and steps:
                self._writer("train").add_scalar("epoch_steps_per_second", steps / seconds, global_step=epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            for name, tensor in self.model.state_dict().items():
                if tensor.is_floating_point() and tensor.numel():
                    self._writer("train").add_histogram(name, tensor.detach().float().cpu(), global_step=epoch)
        for writer in self._writers.values():
            writer.flush()
        self._next_epoch = epoch + 1

    def on_train_end(self, logs=None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self._next_epoch, "step": self._step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Resuming after epoch k: events at later steps, written before the kill, are discarded.
        self._next_epoch = int(state["next_epoch"])
        self._step = int(state.get("step", 0))
        self._purge_step = self._next_epoch or None


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            _("TensorBoard logs need the tensorboard package: pip install 'convscope[tensorboard]'.")
        ) from None
    return SummaryWriter

"""Training progress in a Jupyter notebook: one status line updated in place and a live chart.

A terminal gets Keras' text bar (`progress.py`); a notebook cell would collect hundreds of lines of
it. Here the cell holds exactly two outputs, each replaced in place through IPython's display ids:
a status line (epoch, step, running loss and accuracy) and the loss/accuracy chart of every epoch so
far, train against validation, with the best epoch marked. The chart is one PNG that each epoch
replaces, so a saved notebook keeps one image, not one per epoch.

The two outputs are plain data (`LiveStatus`, `LiveChart`): `convscope.presentation.live` draws them, through
the formatters `presentation.notebook` gives IPython, so this module imports nothing that draws.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..i18n import _
from .callbacks import Callback
from .diagnostics import min_delta_note
from .early_stopping import MonitorRule, best_epoch
from .history import History

THROTTLE_SECONDS = 0.5  # a status update per half second: fast enough to watch, light on the kernel's socket


class LiveStatus:
    """The status line's numbers (the `sections/live.html` template's context); its repr is the same words as
    text, for any front end without the HTML view."""

    def __init__(self, context: dict):
        self.context = context

    def __repr__(self) -> str:
        c = self.context
        words = (
            c["done"]
            or _("epoch {epoch}/{epochs}").format(epoch=c["epoch"], epochs=c["epochs"]) + f" {c['step']}/{c['steps']}"
        )
        estimate = f" ({c['estimate']})" if c.get("estimate") else ""
        return words + "".join(f" - {name} {value:.4f}" for name, value in c["metrics"]) + estimate


class NotebookProgress(Callback):
    """The notebook's progress display: `progress.default_progress` picks it in a Jupyter kernel."""

    main_process_only = True  # it draws: rank 0 only

    def __init__(self, show=None, rule: MonitorRule | None = None, estimate: str = ""):
        super().__init__()
        self.estimate = estimate  # "about 110 s per epoch on 2 CPU cores", shown until the first epoch ends
        self.rule = rule  # the early-stopping rule of the run (None: the lowest validation loss)
        # `show` is IPython's display(); passed in by tests, imported lazily otherwise (IPython is there in a kernel)
        self._show = show
        self.history = History()
        self._status = None
        self._chart = None
        self._last = 0.0

    def _display(self, obj):
        if self._show is None:
            from IPython.display import display as show

            self._show = show
        return self._show(obj, display_id=True)

    def _put_status(self, step: int, metrics: list[tuple[str, float]], done: str = "") -> None:
        status = LiveStatus(
            {
                "epoch": self._epoch + 1,
                "epochs": self.params.get("epochs", 0),
                "step": step,
                "steps": self.params.get("steps", 0),
                "metrics": metrics,
                "done": done,
                "estimate": self.estimate if not self.history.rows else "",
            }
        )
        if self._status is None:
            self._status = self._display(status)
        else:
            self._status.update(status)

    def _put_chart(self) -> None:
        # a copy: the callback goes on adding epochs to its history after this chart is shown
        picture = LiveChart(replace(self.history, rows=list(self.history.rows)), _("training curves (live)"))
        if self._chart is None:
            self._chart = self._display(picture)
        else:
            self._chart.update(picture)

    def on_train_begin(self, logs=None):
        self._epoch, self._started = 0, time.perf_counter()
        self._put_status(0, [])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last < THROTTLE_SECONDS:
            return
        self._last = now
        logs = logs or {}
        self._put_status(batch + 1, [(k, float(logs[k])) for k in ("loss", "accuracy") if k in logs])

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}}
        self.history.rows.append(row)
        # the early-stopping decision's best epoch (fit passes its rule), never a separate minimum
        self.history.best_epoch = best_epoch(self.history.rows, self._rule())
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        self._put_status(self.params.get("steps", 0), [(k, row[k]) for k in keys if k in row])
        self._put_chart()

    def _rule(self) -> MonitorRule:
        if self.rule is not None:
            return self.rule
        return MonitorRule.default(any("val_loss" in r for r in self.history.rows))

    def on_train_end(self, logs=None):
        logs = logs or {}
        history = self.history
        # a callback (EarlyStopping) ends training with model.stop_training, as in Keras
        history.stopped_early = bool(logs.get("stopped_early", getattr(self.model, "stop_training", False)))
        history.interrupted = bool(logs.get("interrupted"))
        if logs.get("best_epoch") is not None:
            history.best_epoch = int(logs["best_epoch"])
        if logs.get("weights_epoch") is not None:
            history.weights_epoch = int(logs["weights_epoch"])
        seconds = time.perf_counter() - self._started
        done = _("{n} epochs in {seconds:.1f} s").format(n=history.epochs_run, seconds=seconds)
        if history.best_epoch is not None:
            done += _(", best epoch {epoch}").format(epoch=history.best_epoch)
        if history.weights_epoch is not None and history.weights_epoch != history.best_epoch:
            done += _(", the model keeps the weights of epoch {epoch}").format(epoch=history.weights_epoch)
        if history.stopped_early:
            done += _(", stopped early")
        if history.interrupted:
            done += _(", interrupted")
        note = min_delta_note(history, self._rule())
        if note is not None:
            done += f". {note}"
        last = history.rows[-1] if history.rows else {}
        self._put_status(
            self.params.get("steps", 0),
            [(k, last[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in last],
            done,
        )
        if history.rows:
            self._put_chart()  # the final chart, with the stop marked


@dataclass(frozen=True)
class LiveChart:
    """The live chart's data: the epochs so far, drawn as the training curves titled `title`."""

    history: History
    title: str

    def __repr__(self) -> str:
        return f"<LiveChart {self.title!r}: {self.history.epochs_run} epochs>"

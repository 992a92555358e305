"""A Keras-like progress line per epoch: a live bar on a terminal, one plain line per epoch otherwise.

`default_progress` is the one place `fit` picks its progress display: a notebook variant plugs in
there.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..i18n import _
from .callbacks import Callback
from .diagnostics import batchnorm_lag_line, batchnorm_momentum
from .early_stopping import MonitorRule


def in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel, where rich output and in-place updates work.

    Only looks at IPython when something already imported it: a terminal run never pays for it.
    ipykernel's shells (Jupyter, Colab, VS Code) carry a `kernel`; the terminal IPython shell does not.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def default_progress(log: TextIO | None = None, rule: MonitorRule | None = None, estimate: str = "") -> Callback:
    """The progress callback `fit` shows when verbose, for where the output goes: in a Jupyter kernel (and
    no `log` given) one status line and a live chart updated in place (`notebook_progress.py`), elsewhere
    Keras' text bar. `rule`: the early-stopping rule that names the best epoch (`early_stopping.MonitorRule`); `estimate`: the line
    saying how long an epoch will take, shown before the first one (`estimate.py`)."""
    if log is None and in_notebook():
        from .notebook_progress import NotebookProgress

        return NotebookProgress(rule=rule, estimate=estimate)
    return ProgressBar(log, estimate)


class ProgressBar(Callback):
    main_process_only = True

    def __init__(self, log: TextIO | None = None, estimate: str = ""):
        super().__init__()
        self.log = log or sys.stdout
        self.estimate = estimate
        self.live = self.log.isatty()  # the per-step bar costs a device sync per step: only where someone watches
        self._last_draw = 0.0
        self._lag_explained = False

    @property
    def wants_batches(self) -> bool:
        return self.live

    @property
    def steps(self) -> int:
        return int(self.params.get("steps", 0))

    def on_train_begin(self, logs=None) -> None:
        if self.estimate:
            self.log.write(self.estimate + "\n")
            self.log.flush()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.start = time.perf_counter()
        self.log.write(_("Epoch {epoch}/{epochs}").format(epoch=epoch + 1, epochs=self.params.get("epochs")) + "\n")
        self.log.flush()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        now, done = time.perf_counter(), batch + 1
        if not self.live or (now - self._last_draw < 0.1 and done < self.steps):
            return
        self._last_draw = now
        logs = logs or {}
        left = (now - self.start) / done * (self.steps - done)
        self.log.write(
            f"\r{self._bar(done)} - ETA: {eta_text(left)} - loss: {logs.get('loss', 0):.4f}"
            f" - accuracy: {logs.get('accuracy', 0):.4f}\x1b[K"  # erase what a longer ETA left behind
        )
        self.log.flush()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self.start
        parts = [f"{k}: {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
        note = "  " + _("(early stop)") if getattr(self.model, "stop_training", False) else ""
        prefix = "\r" if self.live else ""
        pace = step_time_text(seconds / max(self.steps, 1))
        erase = "\x1b[K" if self.live else ""
        self.log.write(
            f"{prefix}{self._bar(self.steps)} {seconds:.1f}s {pace} - " + " - ".join(parts) + note + erase + "\n"
        )
        self.log.flush()
        self._explain_lag(epoch, logs)

    def _explain_lag(self, epoch: int, logs: dict) -> None:
        """Once per run, the line that says why validation accuracy trails in the first epochs of a model
        with BatchNormalization: a newcomer otherwise stops a healthy run that looks broken."""
        if self._lag_explained or "val_accuracy" not in logs or "accuracy" not in logs or self.model is None:
            return
        line = batchnorm_lag_line(
            epoch + 1, logs["accuracy"], logs["val_accuracy"], batchnorm_momentum(self.model), self.steps
        )
        if line is not None:
            self._lag_explained = True
            self.log.write(line + "\n")
            self.log.flush()

    def on_train_end(self, logs=None) -> None:
        """The best epoch as fit's early-stopping rule decided it, and the epoch whose weights the model keeps."""
        logs = logs or {}
        best, kept = logs.get("best_epoch"), logs.get("weights_epoch")
        if best is None:
            return
        line = _("best epoch {epoch} ({monitor})").format(epoch=best, monitor=logs.get("monitor", "val_loss"))
        if kept is not None and kept != best:
            line += _("; the model keeps the weights of epoch {epoch}").format(epoch=kept)
        self.log.write(line + "\n")
        self.log.flush()

    def _bar(self, done: int, width: int = 30) -> str:
        filled = int(width * done / max(self.steps, 1))
        arrow = ">" if filled < width else ""
        return (
            f"{done:>{len(str(self.steps))}}/{self.steps} [{'=' * filled}{arrow}{'.' * (width - filled - len(arrow))}]"
        )


def eta_text(seconds: float) -> str:
    """Time left as Keras' bar writes it: 7s, 1:05, 1:02:05."""
    whole = max(0, round(seconds))
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if whole >= 60:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole}s"


def step_time_text(seconds: float) -> str:
    """Time per step as Keras' bar writes it: 2s/step, 35ms/step, 480us/step."""
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"

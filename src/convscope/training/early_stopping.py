"""EarlyStopping with Keras' semantics, and the one rule that says which epoch is the best.

An epoch improves when it beats the best so far by more than `min_delta` (in the direction `mode`
says); epochs before `start_from_epoch` are not looked at; training stops once `patience` epochs
in a row did not improve, where an epoch that improves on the best but not on `baseline` does not
reset the wait (Keras 3's rule). One difference, on purpose: with `restore_best_weights=True` the
run ends holding the best epoch's weights, also when it ran out of epochs without stopping early
(Keras 3 does the same; Keras 2 restored only when it stopped early).

`MonitorRule` and `best_epoch` (defined in `callbacks` beside `MonitorCallback`, whose rule they
are) are that decision as plain values: the live chart, the status line, the progress bar,
`metrics.json`, the report and the notebook views all name the epoch it picks, so the best epoch a
learner is shown is the epoch whose weights the run keeps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import UserError
from ..i18n import _
from .callbacks import MODES, MonitorCallback, MonitorRule, best_epoch


class EarlyStopping(MonitorCallback):
    """Keras' `keras.callbacks.EarlyStopping`, every argument included."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        numbers = (patience, min_delta, start_from_epoch)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers) or not (
            patience >= 0 and math.isfinite(min_delta) and start_from_epoch >= 0
        ):
            raise UserError(
                _(
                    "patience and start_from_epoch must be >= 0 and min_delta a finite number, got {p}, {s} and {d}."
                ).format(p=patience, s=start_from_epoch, d=min_delta)
            )
        if baseline is not None and not (isinstance(baseline, (int, float)) and math.isfinite(baseline)):
            raise UserError(_("early stopping baseline must be a finite number or None, got {b!r}.").format(b=baseline))
        super().__init__(monitor, mode, baseline, min_delta)
        self.patience, self.verbose, self.start_from_epoch = patience, verbose, int(start_from_epoch)
        self.restore_best_weights = restore_best_weights
        self._reset()

    @property
    def owner(self) -> str:
        return _("early stopping")

    def check_monitor(self, monitor: str, mode: str) -> None:
        if mode not in MODES:
            raise UserError(_("early stopping mode must be auto, min or max, not {mode!r}.").format(mode=mode))
        super().check_monitor(monitor, mode)

    def _reset(self) -> None:
        # Keras 3 starts from no best at all: the baseline only decides whether an improvement resets the wait
        self.best = None
        self.best_epoch: int | None = None  # 1-based, as the history counts epochs
        self.wait = 0
        self.stopped_epoch: int | None = None  # 1-based
        self.best_state: dict[str, torch.Tensor] | None = None
        self.restored = False

    def __repr__(self) -> str:
        return "EarlyStopping(" + ", ".join(f"{k}={v!r}" for k, v in self.settings().items()) + ")"

    @property
    def rule(self) -> MonitorRule:
        return MonitorRule(self.monitor, self.mode, self.min_delta, self.start_from_epoch)

    @property
    def will_restore(self) -> bool:
        """Whether `restore` puts the best epoch's weights back (known before training ends)."""
        return self.restore_best_weights and self.best_state is not None

    def update(self, epoch: int, metrics: dict[str, float], model: torch.nn.Module) -> bool:
        """Record one finished epoch (1-based); True means: stop now."""
        value = metrics.get(self.monitor)
        if value is None or epoch - 1 < self.start_from_epoch:
            return False
        self.wait += 1
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if self.baseline is None or self.rule.improves(value, self.baseline):
                self.wait = 0
            return False
        if self.wait >= self.patience and epoch > 1:
            self.stopped_epoch = epoch
            return True
        return False

    def restore(self, model: torch.nn.Module) -> bool:
        if self.will_restore:
            model.load_state_dict(self.best_state)  # type: ignore[arg-type]
            return True
        return False

    # The callback hooks (epoch 0-based, as Keras passes it)
    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.update(epoch + 1, logs or {}, self.model):
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.verbose and self.stopped_epoch is not None:
            print(_("Epoch {epoch}: early stopping").format(epoch=self.stopped_epoch))
        self.restored = self.restore(self.model)
        if self.verbose and self.restored:
            print(_("Restoring model weights from the end of the best epoch: {epoch}.").format(epoch=self.best_epoch))

    def settings(self) -> dict:
        names = ("monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights")
        return {k: getattr(self, k) for k in (*names, "start_from_epoch")}

    def fresh(self) -> EarlyStopping:
        """The same settings with no memory of an earlier run."""
        return EarlyStopping(**self.settings())

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.stopped_epoch = state.get("stopped_epoch")
        self.best_state = state.get("best_state")


__all__ = ["EarlyStopping", "MonitorRule", "best_epoch"]

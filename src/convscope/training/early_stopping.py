"""EarlyStopping with Keras' semantics: monitor, min_delta, patience, mode, restore_best_weights.

An epoch improves when it beats the best so far by more than `min_delta`; training stops once
`patience` epochs in a row did not improve. One difference, on purpose: with
`restore_best_weights=True` the run always ends holding the best epoch's weights, also when it
ran out of epochs without stopping early (Keras only restores when it stops early).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from .callbacks import MONITORS, Callback


class EarlyStopping(Callback):
    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ):
        super().__init__()
        if monitor not in MONITORS:
            raise UserError(f"early stopping can monitor {', '.join(MONITORS)}, not {monitor!r}.")
        if mode not in ("auto", "min", "max"):
            raise UserError(f"early stopping mode must be auto, min or max, not {mode!r}.")
        if not patience >= 0 or not min_delta >= 0:  # `not >=` also refuses NaN
            raise UserError(f"patience and min_delta must be >= 0, got {patience} and {min_delta}.")
        self.monitor, self.min_delta, self.patience, self.mode = monitor, min_delta, patience, mode
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None  # 1-based, as the history counts epochs
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.restored = False

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, min_delta={self.min_delta}, patience={self.patience}, "
            f"mode={self.mode!r}, restore_best_weights={self.restore_best_weights})"
        )

    @property
    def maximize(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor)

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best + self.min_delta if self.maximize else value < self.best - self.min_delta

    def update(self, epoch: int, metrics: dict[str, float], model: torch.nn.Module) -> bool:
        """Record one finished epoch (1-based); True means: stop now."""
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, model: torch.nn.Module) -> bool:
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return True
        return False

    # The callback hooks (epoch 0-based, as Keras passes it)
    def on_train_begin(self, logs=None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.update(epoch + 1, logs or {}, self.model):
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        self.restored = self.restore(self.model)

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in ("monitor", "min_delta", "patience", "mode", "restore_best_weights")}

    def fresh(self) -> EarlyStopping:
        """The same settings with no memory of an earlier run."""
        return EarlyStopping(**self.settings())

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state = state.get("best_state")

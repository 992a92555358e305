"""EarlyStopping with Keras' semantics: monitor, min_delta, patience, mode, restore_best_weights.

An epoch improves when it beats the best so far by more than `min_delta`; training stops once
`patience` epochs in a row did not improve. One difference, on purpose: with
`restore_best_weights=True` the run always ends holding the best epoch's weights, also when it
ran out of epochs without stopping early (Keras only restores when it stops early).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import UserError

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    min_delta: float = 0.0
    patience: int = 0
    mode: str = "auto"  # "min", "max", or "auto": max for accuracies, min for losses
    restore_best_weights: bool = False

    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)
    wait: int = field(default=0, init=False)
    best_state: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise UserError(f"early stopping can monitor {', '.join(MONITORS)}, not {self.monitor!r}.")
        if self.mode not in ("auto", "min", "max"):
            raise UserError(f"early stopping mode must be auto, min or max, not {self.mode!r}.")
        if self.patience < 0 or not self.min_delta >= 0:  # NaN fails >=
            raise UserError(f"patience and min_delta must be >= 0, got {self.patience} and {self.min_delta}.")

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

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in ("monitor", "min_delta", "patience", "mode", "restore_best_weights")}

    def fresh(self) -> EarlyStopping:
        """The same settings with no memory of an earlier run."""
        return EarlyStopping(**self.settings())

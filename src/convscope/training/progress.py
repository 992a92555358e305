"""A Keras-like progress line per epoch: a live bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, epochs: int, steps: int, stream: TextIO | None = None, enabled: bool = True):
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self._last_draw = 0.0

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, time.perf_counter()
        if self.enabled:
            self.stream.write(f"Epoch {epoch}/{self.epochs}\n")

    def step(self, done: int, loss: float, accuracy: float) -> None:
        now = time.perf_counter()
        if not self.live or (now - self._last_draw < 0.1 and done < self.steps):
            return
        self._last_draw = now
        self.stream.write(f"\r{self._bar(done)} - loss: {loss:.4f} - accuracy: {accuracy:.4f}")
        self.stream.flush()

    def end_epoch(self, metrics: dict[str, float], note: str = "") -> None:
        if not self.enabled:
            return
        seconds = time.perf_counter() - self.start
        parts = [f"{k}: {metrics[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in metrics]
        prefix = "\r" if self.live else ""
        self.stream.write(f"{prefix}{self._bar(self.steps)} {seconds:.1f}s - " + " - ".join(parts) + note + "\n")
        self.stream.flush()

    def finish(self, history) -> None:
        """Nothing more to print: the last epoch's line said it all."""

    def _bar(self, done: int, width: int = 30) -> str:
        filled = int(width * done / max(self.steps, 1))
        arrow = ">" if filled < width else ""
        return f"{done:>{len(str(self.steps))}}/{self.steps} [{'=' * filled}{arrow}{'.' * (width - filled - len(arrow))}]"

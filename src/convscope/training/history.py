"""`History`: one row of metrics per epoch, like Keras' `History.history`, plus how the run ended."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)
    # the epoch with the best monitored value, by the early-stopping rule (`early_stopping.best_epoch`)
    best_epoch: int | None = None
    weights_epoch: int | None = None  # the epoch whose weights the model ends with (best_epoch when restored)
    stopped_early: bool = False
    interrupted: bool = False  # Ctrl-C: the run stopped cleanly and kept the best weights so far
    resumed_from_epoch: int | None = None  # --resume: the epochs before this one ran in an earlier process
    # --resume: what was restored ("epoch", "generators" it set) and whether the run ends as if never
    # killed ("identical", and "because": the causes when not)
    resume: dict | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if name in row]

    def __repr__(self) -> str:
        """One line for a plain REPL (a notebook shows `presentation.history`'s view)."""
        parts = [epochs_text(self.epochs_run)]
        if self.best_epoch is not None:
            parts.append(f"best epoch {self.best_epoch}")
        if self.weights_epoch is not None and self.weights_epoch != self.best_epoch:
            parts.append(f"weights of epoch {self.weights_epoch}")
        parts += [
            word for word, flag in (("stopped early", self.stopped_early), ("interrupted", self.interrupted)) if flag
        ]
        return f"<History: {', '.join(parts)}>"

    def to_csv(self) -> str:
        columns = [c for c in COLUMNS if any(c in row for row in self.rows)]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({c: row.get(c, "") for c in columns})
        return out.getvalue()

    @classmethod
    def from_csv(cls, text: str, **ending) -> History:
        """Rows from `to_csv`; `ending` restores best_epoch, weights_epoch, stopped_early, interrupted."""
        rows = [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
            for row in csv.DictReader(io.StringIO(text))
        ]
        return cls(rows, **ending)

    def ending(self) -> dict:
        return {
            "best_epoch": self.best_epoch,
            "weights_epoch": self.weights_epoch,
            "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
            "resumed_from_epoch": self.resumed_from_epoch,
            "resume": self.resume,
        }


def epochs_text(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"

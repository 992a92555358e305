"""`evaluate`: Keras' `model.evaluate` plus what a user asks next: per-class scores and confusions.

No drawing here: pictures of a result (`cs.show_random(result)`, ...) and its notebook view live in
`convscope.presentation`, which this module never imports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import pad, printable, text_width
from ..data.dataset import Dataset
from ..errors import UserError
from ..i18n import _
from ..training.trained_model import TrainedModel
from .metrics import confusion_matrix, most_confused, per_class

_EPS = 1e-7  # Keras clips probabilities the same way before taking the log


@dataclass
class EvaluationResult:
    loss: float
    accuracy: float
    probabilities: np.ndarray  # (N, K), rows sum to 1, classes in class order
    labels: np.ndarray  # (N,) true class indices
    class_names: tuple[str, ...]
    images: np.ndarray = field(repr=False)  # the raw (N, H, W, C) images, for galleries and inspection
    # the model that was evaluated, for feature maps, filters and Grad-CAM (None when built from numbers alone)
    trained: TrainedModel | None = field(default=None, repr=False, compare=False)
    confusion_matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion_matrix = confusion_matrix(self.labels, self.predictions, len(self.class_names))

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def per_class(self) -> list[dict]:
        return per_class(self.confusion_matrix, self.class_names)

    def most_confused(self, top: int = 5) -> list[dict]:
        return most_confused(self.confusion_matrix, self.class_names, top)

    @property
    def mistakes(self) -> np.ndarray:
        """Indices of misclassified images."""
        return np.flatnonzero(self.predictions != self.labels)

    def __repr__(self) -> str:
        """One line for a plain REPL; `print(result.text())` gives the full report."""
        return (
            f"<{type(self).__name__}: accuracy {self.accuracy:.4f}, loss {self.loss:.4f} on {len(self.labels):,} "
            f"images, {len(self.class_names)} classes, {len(self.mistakes):,} mistakes>"
        )

    def metrics(self) -> dict:
        return {
            "test_loss": self.loss,
            "test_accuracy": self.accuracy,
            "test_size": int(len(self.labels)),
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "most_confused": self.most_confused(),
        }

    def text(self) -> str:
        lines = [
            _("test loss {loss:.4f}, test accuracy {accuracy:.4f} on {count} images").format(
                loss=self.loss, accuracy=self.accuracy, count=len(self.labels)
            )
        ]
        shown = [printable(n) for n in self.class_names]
        titles = (_("class"), _("precision"), _("recall"), _("f1"), _("support"))
        width = max(text_width(titles[0]), *(text_width(n) for n in shown))
        # Each number column is as wide as its number or its (translated) heading, whichever is wider.
        wp, wr, wf, ws = (max(w, text_width(t)) for w, t in zip((9, 6, 5, 7), titles[1:]))
        lines.append("  ".join(pad(t, w, ">") for t, w in zip(titles, (width, wp, wr, wf, ws))))
        for name, row in zip(shown, self.per_class):
            lines.append(
                f"{pad(name, width, '>')}  {row['precision']:{wp}.3f}  {row['recall']:{wr}.3f}  {row['f1']:{wf}.3f}  {row['support']:{ws}d}"
            )
        lines += self.confusion_text()
        pairs = self.most_confused(3)
        if pairs:
            listed = ", ".join(f"{printable(p['true'])} -> {printable(p['predicted'])} ({p['count']})" for p in pairs)
            lines.append(_("most confused: {pairs}").format(pairs=listed))
        return "\n".join(lines)

    def confusion_text(self, max_classes: int = 20) -> list[str]:
        """The confusion matrix as aligned text (rows true, columns predicted), for up to `max_classes`."""
        k = len(self.class_names)
        if k > max_classes:
            return [_("confusion matrix: {count} classes, too many to print; see --json or the report").format(count=k)]
        names, corner = [printable(n[:8]) for n in self.class_names], _("true \\ predicted")
        width = max(text_width(corner), *(text_width(n) for n in names))
        cell = max(3, *(text_width(n) for n in names), len(str(int(self.confusion_matrix.max(initial=0)))))
        lines = [
            _("confusion matrix (rows: true class, columns: predicted)"),
            f"{pad(corner, width, '>')}  " + " ".join(pad(n, cell, ">") for n in names),
        ]
        for name, row in zip(names, self.confusion_matrix):
            lines.append(f"{pad(name, width, '>')}  " + " ".join(f"{int(v):>{cell}}" for v in row))
        return lines


def evaluate(trained: TrainedModel, data: Dataset) -> EvaluationResult:
    """Loss and accuracy like `model.evaluate`, with the probabilities kept for everything after."""
    if data.input_shape != tuple(trained.input_shape):
        raise UserError(
            _("{source}: images are {shape} but the model expects {expected}.").format(
                source=printable(data.source or _("data")), shape=data.input_shape, expected=tuple(trained.input_shape)
            )
        )
    if data.num_classes > len(trained.class_names) or (len(data) and data.labels.max() >= len(trained.class_names)):
        raise UserError(
            _("{source}: has {count} classes but the model knows {known}.").format(
                source=printable(data.source or _("data")), count=data.num_classes, known=len(trained.class_names)
            )
        )
    probs = trained.predict_proba(data.images)
    picked = np.clip(probs[np.arange(len(data)), data.labels], _EPS, 1.0)
    loss = float(-np.log(picked).mean()) if len(data) else float("nan")
    accuracy = float((probs.argmax(axis=1) == data.labels).mean()) if len(data) else float("nan")
    return EvaluationResult(loss, accuracy, probs, data.labels, trained.class_names, data.images, trained)

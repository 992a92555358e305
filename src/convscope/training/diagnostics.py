"""What a learning curve says: short notes, with the numbers, for the patterns that make a run look broken.

Each reader is a pure function of the history (and, for class balance, the per-class scores). A note is
written only when its pattern is present, so a healthy run gets none. The thresholds are deliberately
plain numbers a learner can check against the table of epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..i18n import _, ngettext
from .early_stopping import MonitorRule, best_epoch

if TYPE_CHECKING:  # annotations only: History draws itself with html.py, which shows these notes
    from .history import History
    from .trained_model import TrainedModel

# Validation accuracy this far below training accuracy counts as lagging.
LAG = 0.10
# BatchNorm statistics count as young while this share of their initial values (mean 0, variance 1) is left.
YOUNG = 0.01
# A validation loss this much (relative) above its minimum, at the end, counts as having risen.
RISE = 0.05
# Both accuracies below this, and still rising, count as underfitting.
LOW_ACCURACY = 0.90
# A class whose recall is this far below the mean recall, with this many times fewer training images than
# the median class, is a class the model saw too rarely.
RECALL_GAP = 0.10
RARE = 0.5


@dataclass(frozen=True)
class CurveNote:
    kind: str  # min-delta | batchnorm-warmup | overfitting | label-smoothing | imbalance | underfitting
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ClassScore:
    name: str
    recall: float
    train_count: int


def batchnorm_momentum(model: nn.Module) -> float | None:
    """The Keras momentum of the model's BatchNormalization layers (the largest, if they differ), or None."""
    momenta = [
        1.0 - m.momentum
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None
    ]
    return max(momenta) if momenta else None


def read_curves(
    history: History,
    *,
    batchnorm_momentum: float | None = None,
    steps_per_epoch: int | None = None,
    label_smoothing: float = 0.0,
    num_classes: int | None = None,
    classes: Sequence[ClassScore] = (),
    early_stopping: dict | None = None,
) -> list[CurveNote]:
    """Every note whose pattern is present in this run, in the order a learner should read them.
    `early_stopping`: the run's `EarlyStopping.settings()` (config.json's fit `early_stopping`), if any."""
    notes = [
        min_delta_note(history, MonitorRule.from_settings(early_stopping)) if early_stopping else None,
        _batchnorm_warmup(history, batchnorm_momentum, steps_per_epoch),
        _overfitting(history, batchnorm_momentum, steps_per_epoch),
        _label_smoothing(history, label_smoothing, num_classes),
        _imbalance(classes),
        _underfitting(history),
    ]
    return [note for note in notes if note is not None]


def min_delta_note(history: History, rule: MonitorRule) -> CurveNote | None:
    """When `min_delta` hid every later improvement: the epoch kept is not the one with the best value."""
    if rule.min_delta <= 0:
        return None
    kept = best_epoch(history.rows, rule)
    raw = best_epoch(history.rows, MonitorRule(rule.monitor, rule.mode, 0.0, rule.start_from_epoch))
    if kept is None or raw is None or raw == kept:
        return None
    values = {int(r["epoch"]): r[rule.monitor] for r in history.rows if rule.monitor in r}
    largest = abs(values[raw] - values[kept])
    text = _(
        "min_delta {delta:g} is larger than any {monitor} improvement (largest {largest:.3g}): the run kept "
        "epoch {kept}, although epoch {raw} had the {extreme} {monitor} ({value:.4f})."
    ).format(
        delta=rule.min_delta,
        monitor=rule.monitor,
        largest=largest,
        kept=kept,
        raw=raw,
        extreme=_("highest") if rule.maximize else _("lowest"),
        value=values[raw],
    )
    return CurveNote("min-delta", text)


def batchnorm_lag_line(
    epoch: int, accuracy: float, val_accuracy: float, momentum: float | None, steps: int | None
) -> str | None:
    """The line shown during training at `epoch` when validation accuracy lags training accuracy while the
    BatchNormalization statistics validation uses are young (None otherwise): the lag is expected and passes."""
    if momentum is None or not steps or not 0.0 < momentum < 1.0:
        return None
    left = momentum ** (steps * epoch)
    if accuracy - val_accuracy <= LAG or left <= YOUNG:
        return None
    settled = math.ceil(math.log(YOUNG) / math.log(momentum) / steps)
    return _(
        "note: validation accuracy lags ({val:.2f} against {train:.2f}) because BatchNormalization's moving "
        "statistics are young ({left} of their initial values left after {count} steps with momentum "
        "{momentum:g}); expected, and it fades by about epoch {settled}."
    ).format(
        val=val_accuracy,
        train=accuracy,
        left=_share(left),
        count=steps * epoch,
        momentum=momentum,
        settled=settled,
    )


def _batchnorm_warmup(history: History, momentum: float | None, steps: int | None) -> CurveNote | None:
    if momentum is None or not steps or not 0.0 < momentum < 1.0:
        return None
    for row in history.rows:
        if "val_accuracy" not in row or "accuracy" not in row:
            continue
        epoch = int(row["epoch"])
        left = momentum ** (steps * epoch)
        if row["accuracy"] - row["val_accuracy"] > LAG and left > YOUNG:
            needed = math.ceil(math.log(YOUNG) / math.log(momentum) / steps)
            lower = 0.9 if momentum > 0.9 else momentum / 2
            return CurveNote(
                "batchnorm-warmup",
                _(
                    "Validation accuracy lags training accuracy at epoch {epoch} ({val_accuracy:.2f} against "
                    "{accuracy:.2f}) because BatchNormalization's moving statistics are young: validation uses "
                    "them, and after {steps} steps with momentum {momentum:g}, {momentum:g}^{steps} = "
                    "{left:.0%} of their initial values (mean 0, variance 1) is still in them. Train for at least "
                    "{needed} epochs (under {young:.0%} left), or lower the momentum (e.g. {lower:g}: "
                    "{share} left after one epoch)."
                ).format(
                    epoch=epoch,
                    val_accuracy=row["val_accuracy"],
                    accuracy=row["accuracy"],
                    steps=steps * epoch,
                    momentum=momentum,
                    left=left,
                    needed=needed,
                    young=YOUNG,
                    lower=lower,
                    share=_share(lower**steps),
                ),
            )
    return None


def _share(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.005 else f"{fraction:.0e}"


def _overfitting(history: History, momentum: float | None, steps: int | None) -> CurveNote | None:
    rows = [r for r in history.rows if "val_loss" in r and "loss" in r]
    if len(rows) < 3:
        return None
    best = min(rows, key=lambda r: r["val_loss"])
    if momentum and steps and momentum ** (steps * int(best["epoch"])) > YOUNG:
        return None  # young BatchNorm statistics move the validation loss too: that note explains it instead
    last = rows[-1]
    rose = last["val_loss"] > best["val_loss"] * (1.0 + RISE)
    if best is last or not rose or not last["loss"] < best["loss"]:
        return None
    kept = (
        _("Early stopping kept epoch {kept}'s weights.")
        if history.weights_epoch == int(best["epoch"])
        else _("Early stopping kept epoch {kept}'s weights, the best by its min_delta.")
        if history.weights_epoch is not None and history.weights_epoch == history.best_epoch
        else _(
            "The model ends with epoch {kept}'s weights; EarlyStopping(restore_best_weights=True) would keep "
            "epoch {best}'s."
        )
    ).format(kept=history.weights_epoch, best=int(best["epoch"]))
    return CurveNote(
        "overfitting",
        _(
            "Overfitting: validation loss was lowest at epoch {best} ({best_val_loss:.4f}) and rose to "
            "{last_val_loss:.4f} by epoch {last}, while training loss kept falling "
            "({best_loss:.4f} -> {last_loss:.4f}): the model is learning its training images rather than the "
            "classes."
        ).format(
            best=int(best["epoch"]),
            best_val_loss=best["val_loss"],
            last_val_loss=last["val_loss"],
            last=int(last["epoch"]),
            best_loss=best["loss"],
            last_loss=last["loss"],
        )
        + " "
        + kept,
    )


def smoothed_loss_floor(label_smoothing: float, num_classes: int) -> float:
    """The lowest cross-entropy a model can reach against smoothed targets: their entropy."""
    off = label_smoothing / num_classes
    on = 1.0 - label_smoothing + off
    return -(on * math.log(on) + (num_classes - 1) * (off * math.log(off) if off > 0 else 0.0))


def _label_smoothing(history: History, smoothing: float, num_classes: int | None) -> CurveNote | None:
    if smoothing <= 0 or not num_classes or not history.rows:
        return None
    last = history.rows[-1]
    if "val_loss" not in last or not last["loss"] > last["val_loss"]:
        return None
    target = 1.0 - smoothing + smoothing / num_classes
    return CurveNote(
        "label-smoothing",
        _(
            "Training loss ({loss:.4f}) stays above validation loss ({val_loss:.4f}) because of label "
            "smoothing {smoothing:g}: training aims at probability {target:.3f} for the true class, not 1, so its loss "
            "cannot fall below {floor:.4f}; validation is scored against the plain labels. This is expected, not a bug."
        ).format(
            loss=last["loss"],
            val_loss=last["val_loss"],
            smoothing=smoothing,
            target=target,
            floor=smoothed_loss_floor(smoothing, num_classes),
        ),
    )


def _imbalance(classes: Sequence[ClassScore]) -> CurveNote | None:
    if len(classes) < 2:
        return None
    mean_recall = sum(c.recall for c in classes) / len(classes)
    counts = sorted(c.train_count for c in classes)
    median = (
        counts[len(counts) // 2] if len(counts) % 2 else (counts[len(counts) // 2 - 1] + counts[len(counts) // 2]) / 2
    )
    rare = [c for c in classes if c.recall < mean_recall - RECALL_GAP and c.train_count < RARE * median]
    if not rare:
        return None
    worst = min(rare, key=lambda c: c.recall)
    others = (
        " "
        + ngettext("({count} more class alike)", "({count} more classes alike)", len(rare) - 1).format(
            count=len(rare) - 1
        )
        if len(rare) > 1
        else ""
    )
    return CurveNote(
        "imbalance",
        _(
            "Class {name!r} has recall {recall:.2f} against {mean:.2f} on average, and had "
            "{count} training images against a median of {median:g}: the model saw it too rarely{others}. "
            "More images of it, or weighting it in the loss, would help."
        ).format(
            name=worst.name,
            recall=worst.recall,
            mean=mean_recall,
            count=worst.train_count,
            median=median,
            others=others,
        ),
    )


def _underfitting(history: History) -> CurveNote | None:
    if len(history.rows) < 2 or history.stopped_early:
        return None
    last, before = history.rows[-1], history.rows[-2]
    keys = [k for k in ("accuracy", "val_accuracy") if k in last and k in before]
    if not keys or not all(last[k] < LOW_ACCURACY and last[k] > before[k] for k in keys):
        return None
    values = ", ".join(f"{k.replace('_', ' ')} {before[k]:.2f} -> {last[k]:.2f}" for k in keys)
    return CurveNote(
        "underfitting",
        _(
            "Underfitting: accuracy is still low and still rising at the last epoch ({values} at epoch "
            "{epoch}): the model has not finished learning. Train for more epochs."
        ).format(values=values, epoch=int(last["epoch"])),
    )


def validation_cut(size: int, validation_split: float) -> int:
    """How many of `size` images train when Keras' `validation_split` holds out the last fraction."""
    return int(size * (1.0 - validation_split))


def steps_per_epoch(train_size: int | None, validation_split: float | None, batch_size: int | None) -> int | None:
    """Optimizer steps in one epoch: the training images left after Keras' validation cut, in batches."""
    if not train_size or not batch_size:
        return None
    return -(-validation_cut(int(train_size), validation_split or 0.0) // int(batch_size))


def notes_for(
    history: History,
    model: nn.Module,
    fit: dict,
    steps: int | None,
    num_classes: int,
    classes: Sequence[ClassScore] = (),
) -> list[CurveNote]:
    """`read_curves` for a trained model: `fit` is its fit settings (config.json's "fit"), `steps` its
    optimizer steps per epoch (`steps_per_epoch`)."""
    return read_curves(
        history,
        batchnorm_momentum=batchnorm_momentum(model),
        steps_per_epoch=steps,
        label_smoothing=float(fit.get("label_smoothing") or 0.0),
        num_classes=num_classes,
        classes=classes,
        early_stopping=fit.get("early_stopping") if isinstance(fit.get("early_stopping"), dict) else None,
    )


def curve_notes_for(
    trained: TrainedModel,
    per_class: Sequence[dict[str, Any]] = (),
    train_labels: np.ndarray | None = None,
    run_data: dict[str, Any] | None = None,
) -> list[CurveNote]:
    """What the curves of a trained model say: the one place every view (the end of `convscope train`, the
    report, the notebook) gets its notes from.

    Steps per epoch come from the images `fit` trained on (`trained.data`, after the validation cut), or,
    for a run read back from disk, from its config.json `run_data` (before the cut) and validation split.
    `per_class` (the test evaluation's rows) with `train_labels` (the training split's) add the class-balance note.
    """
    fit = trained.config or {}
    if trained.data is not None:
        steps = steps_per_epoch(trained.data.train_size, 0.0, fit.get("batch_size"))
    else:
        steps = steps_per_epoch((run_data or {}).get("train_size"), fit.get("validation_split"), fit.get("batch_size"))
    classes: list[ClassScore] = []
    if per_class and train_labels is not None:
        counts = np.bincount(np.asarray(train_labels), minlength=len(trained.class_names))
        classes = [ClassScore(row["class"], row["recall"], int(n)) for row, n in zip(per_class, counts)]
    return notes_for(trained.history, trained.model, fit, steps, len(trained.class_names), classes)

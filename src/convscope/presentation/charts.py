"""Charts of plain numbers, shared by the report, the notebook reprs and the live training chart.

They take duck-typed inputs (anything with a History's `column`, `best_epoch`, ... ; arrays and dicts), so
this bottom layer imports nothing from convscope but the message catalogs and `checks.text_width` (names' widths
in terminal columns). Every function builds a `matplotlib.figure.Figure`
directly, without pyplot: no global figure state and no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..checks import text_width
from ..i18n import _
from .fonts import fit_fonts

CORRECT, WRONG, NEUTRAL = "#1a7f37", "#cf222e", "#57606a"
TRAIN_COLOR, VAL_COLOR = "#0969da", "#bc4c00"


def training_curves(history, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training against validation, with the best epoch and the stop marked."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    epochs = history.column("epoch")
    panels = (("loss", _("loss (cross-entropy)"), _("loss")), ("accuracy", _("accuracy"), _("accuracy")))
    for ax, (metric, label, heading) in zip(figure.subplots(1, 2), panels):
        for key, name, color in ((metric, _("train"), TRAIN_COLOR), (f"val_{metric}", _("validation"), VAL_COLOR)):
            values = history.column(key)
            if values:
                ax.plot(epochs[: len(values)], values, marker="o", markersize=3.5, color=color, label=name)
        if history.best_epoch is not None:
            ax.axvline(
                history.best_epoch,
                color=CORRECT,
                linestyle="--",
                linewidth=1.2,
                label=_("best epoch {epoch}").format(epoch=history.best_epoch),
            )
        if history.stopped_early or history.interrupted:
            why = _("stopped early at epoch {epoch}") if history.stopped_early else _("interrupted at epoch {epoch}")
            ax.axvline(
                history.epochs_run,
                color=WRONG,
                linestyle=":",
                linewidth=1.5,
                label=why.format(epoch=history.epochs_run),
            )
        ax.set_xlabel(_("epoch"))
        ax.set_ylabel(label)
        ax.set_title(heading)
        if epochs:
            ax.set_xticks(_epoch_ticks(len(epochs)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title if title is not None else _("training curves"), fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def _epoch_ticks(n: int) -> list[int]:
    step = max(1, int(np.ceil(n / 12)))
    return list(range(1, n + 1, step))


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts per (true, predicted) pair as a heat map, every cell labelled."""
    k = len(class_names)
    side = min(12.0, max(4.5, 0.45 * k + 2))
    figure = Figure(figsize=(side + 1, side), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8, label=_("images"))
    ticks = np.arange(k)
    ax.set_xticks(ticks, class_names, rotation=90 if max(text_width(n) for n in class_names) > 3 else 0)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel(_("predicted class"))
    ax.set_ylabel(_("true class"))
    ax.set_title(
        _("confusion matrix ({count} test images, {correct} correct)").format(
            count=int(cm.sum()), correct=int(np.trace(cm))
        )
    )
    if k <= 30:
        threshold = cm.max() / 2 if cm.size and cm.max() > 0 else 0
        fontsize = 9 if k <= 12 else 7 if k <= 20 else 5
        for (t, p), count in np.ndenumerate(cm):
            if count or t == p:
                ax.text(
                    p,
                    t,
                    str(int(count)),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if count > threshold else "black",
                )
    return fit_fonts(figure)


def per_class_figure(rows: Sequence[dict]) -> Figure:
    """Precision, recall and F1 of every class as grouped bars (rows as `EvaluationResult.per_class`)."""
    k = len(rows)
    figure = Figure(figsize=(min(14.0, max(6.0, 0.5 * k + 2)), 3.4), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(k)
    width = 0.27
    bars = ((-width, "precision", _("precision"), TRAIN_COLOR), (0.0, "recall", _("recall"), VAL_COLOR))
    for offset, key, label, color in (*bars, (width, "f1", _("F1"), CORRECT)):
        ax.bar(x + offset, [row[key] for row in rows], width, label=label, color=color)
    ax.set_xticks(
        x, [row["class"] for row in rows], rotation=90 if max(text_width(r["class"]) for r in rows) > 3 else 0
    )
    low = min([row[key] for row in rows for key in ("precision", "recall", "f1")] + [1.0])
    ax.set_ylim(max(0.0, np.floor(low * 10) / 10 - 0.1), 1.0)
    ax.set_xlabel(_("class"))
    ax.set_ylabel(_("score"))
    ax.set_title(_("per-class precision, recall and F1 (test split)"))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never hides a bar
    return fit_fonts(figure)


def spread_chart(labels: Sequence[str], scores: Sequence[Sequence[float]], metric: str, title: str) -> Figure:
    """Mean ± spread (sample standard deviation) of each group's scores as an error bar, every score as a dot."""
    figure = Figure(figsize=(max(4.5, 1.3 * len(labels) + 2), 3.4), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(labels))
    means = [float(np.mean(s)) for s in scores]
    spreads = [float(np.std(s, ddof=1)) if len(s) > 1 else 0.0 for s in scores]
    ax.errorbar(x, means, yerr=spreads, fmt="o", color=TRAIN_COLOR, capsize=6, markersize=7, label=_("mean ± spread"))
    for i, s in enumerate(scores):
        ax.scatter([i] * len(s), s, color=NEUTRAL, s=14, alpha=0.7, zorder=3)
    ax.set_xticks(x, list(labels))
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fit_fonts(figure)

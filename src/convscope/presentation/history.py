"""History as the report's "Training" section, the notebook's view of it and its plain-text table."""

from __future__ import annotations

from ..i18n import N_, _
from ..training.diagnostics import read_curves
from ..training.history import History
from .jinja import fragment, number, picture

CURVES_ALT = N_("training and validation loss and accuracy per epoch")  # translated where it is shown


def ending(history: History) -> str:
    """How the run ended, in one sentence without its full stop."""
    parts = []
    if history.best_epoch is not None:
        parts.append(_("best epoch {epoch}").format(epoch=history.best_epoch))
    if history.stopped_early:
        parts.append(_("stopped early after epoch {epoch}").format(epoch=history.epochs_run))
    if history.interrupted:
        parts.append(_("interrupted after epoch {epoch}").format(epoch=history.epochs_run))
    if history.weights_epoch is not None:
        parts.append(_("the saved weights are those of epoch {epoch}").format(epoch=history.weights_epoch))
    return "; ".join(parts)


def training_section(
    history: History,
    curves: dict | None,
    open_epochs: bool = False,
    imported: dict | None = None,
    notes: list | tuple = (),
) -> tuple[str, dict]:
    """`curves`: the training-curves picture (`jinja.picture`), or None for a history without epochs;
    `imported`: config.json's record of a `convscope import`, whose model was trained elsewhere."""
    rows = [
        [
            int(r["epoch"]),
            *(number(r.get(k)) for k in ("loss", "accuracy", "val_loss", "val_accuracy")),
            number(r.get("seconds"), 1),
        ]
        for r in history.rows
    ]
    return "sections/training.html", {
        "anchor": "training",
        "nav": _("Training"),
        "curves": curves,
        "ending": ending(history),
        "rows": rows,
        "open": open_epochs,
        "imported": imported,
        "notes": [str(n) for n in notes],
    }


def curves_picture(history: History) -> dict | None:
    if not history.rows:
        return None
    from .charts import training_curves  # matplotlib loads only when a chart is drawn

    return picture(training_curves(history), _(CURVES_ALT))


def history_html(history: History) -> str:
    # A bare History knows no model or settings: only the notes that its numbers alone support.
    return fragment(training_section(history, curves_picture(history), notes=read_curves(history)))


def epochs_best(epochs: int, best: int | None) -> str:
    """Epochs run, with the best one when there is one: "12 (best 9)"."""
    return _("{epochs} (best {best})").format(epochs=epochs, best=best) if best else f"{epochs}"


def epochs_text(history: History) -> str:
    """`epochs_best` of a history."""
    return epochs_best(history.epochs_run, history.best_epoch)


def history_text(history: History) -> str:
    """Jupyter's plain-text view: every epoch's numbers and how the run ended."""
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    lines = ["  ".join(f"{c:>12}" for c in columns)]
    for row in history.rows:
        lines.append("  ".join(f"{number(row.get(c)):>12}" for c in columns))
    end = ending(history)
    return "\n".join(lines + ([end] if end else []))

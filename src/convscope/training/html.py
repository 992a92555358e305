"""History and TrainedModel as the report's "Training" section and header cards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import display
from ..i18n import N_, _
from .diagnostics import curve_notes_for, read_curves

if TYPE_CHECKING:  # types only: the classes import this module to draw themselves
    from .history import History
    from .trained_model import TrainedModel

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
    """`curves`: the training-curves picture (`display.picture`), or None for a history without epochs;
    `imported`: config.json's record of a `convscope import`, whose model was trained elsewhere."""
    number = display.number
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
    from ..display.charts import training_curves  # matplotlib loads only when a chart is drawn

    return display.picture(training_curves(history), _(CURVES_ALT))


def history_html(history: History) -> str:
    # A bare History knows no model or settings: only the notes that its numbers alone support.
    return display.fragment(training_section(history, curves_picture(history), notes=read_curves(history)))


def model_cards(trained: TrainedModel, total_params: int) -> list[tuple[str, str]]:
    history = trained.history
    h, w, c = trained.input_shape
    epochs = f"{history.epochs_run}" + (f" (best {history.best_epoch})" if history.best_epoch else "")
    return [
        ("classes", f"{len(trained.class_names)}"),
        ("input", f"{h} × {w} × {c}"),
        ("parameters", f"{total_params:,}"),
        ("epochs", epochs),
        ("device", str(trained.device)),
    ]


def trained_html(trained: TrainedModel) -> str:
    from ..models.html import model_section
    from ..models.summary import summary

    s = summary(trained.model, trained.input_shape)
    scaler = trained.scaler
    card = (
        "sections/model_card.html",
        {
            "title": _("Trained model: {name}").format(name=s.name) + (f" ({trained.path})" if trained.path else ""),
            "cards": model_cards(trained, s.total_params),
            "note": _(
                "classes {names}; inputs scaled with training statistics: (x - {minimum:g}) / ({maximum:g} - {minimum:g})"
            ).format(names=", ".join(trained.class_names), minimum=scaler.minimum, maximum=scaler.maximum),
        },
    )
    notes = curve_notes_for(trained)
    return display.fragment(
        card, model_section(s), training_section(trained.history, curves_picture(trained.history), notes=notes)
    )


def history_text(history: History) -> str:
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    lines = ["  ".join(f"{c:>12}" for c in columns)]
    for row in history.rows:
        lines.append("  ".join(f"{display.number(row.get(c)):>12}" for c in columns))
    end = ending(history)
    return "\n".join(lines + ([end] if end else []))

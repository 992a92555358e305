"""A TrainedModel as the notebook shows it: the report's headline cards, Model and Training sections."""

from __future__ import annotations

from ..i18n import _
from ..models.summary import summary
from ..training.diagnostics import curve_notes_for
from ..training.trained_model import TrainedModel
from .history import curves_picture, epochs_text, training_section
from .jinja import fragment
from .summary import model_section


def model_cards(trained: TrainedModel, total_params: int) -> list[tuple[str, str]]:
    h, w, c = trained.input_shape
    return [
        ("classes", f"{len(trained.class_names)}"),
        ("input", f"{h} × {w} × {c}"),
        ("parameters", f"{total_params:,}"),
        ("epochs", epochs_text(trained.history)),
        ("device", str(trained.device)),
    ]


def trained_html(trained: TrainedModel) -> str:
    """Jupyter: the report's headline cards, Model and Training sections."""
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
    return fragment(
        card, model_section(s), training_section(trained.history, curves_picture(trained.history), notes=notes)
    )


def trained_text(trained: TrainedModel) -> str:
    """Jupyter's plain-text view: the model, its inputs, classes, epochs and where it is saved."""
    h, w, c = trained.input_shape
    return (
        f"TrainedModel: {type(trained.model).__name__} on {h}x{w}x{c} images, "
        f"{len(trained.class_names)} classes, {trained.history.epochs_run} epochs, device {trained.device}"
        + (f", saved in {trained.path}" if trained.path else "")
    )

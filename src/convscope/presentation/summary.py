"""The model summary as the report's "Model" section: every layer with its output-size formula."""

from __future__ import annotations

from ..i18n import _
from ..models.sizes import keras_shape
from ..models.summary import ModelSummary
from .jinja import fragment


def model_section(s: ModelSummary) -> tuple[str, dict]:
    # An "inputs" column only for graphs that branch: a plain chain reads top to bottom without it.
    previous = ["input", *(layer.name for layer in s.layers)]
    branching = any(tuple(layer.inputs) != (previous[i],) for i, layer in enumerate(s.layers))
    columns = [
        ("layer", _("layer")),
        ("type", _("type")),
        *([("inputs", _("inputs"))] if branching else []),
        ("output shape", _("output shape")),
        ("params", _("params")),
        ("FLOPs", _("FLOPs")),
        ("receptive field", _("receptive field")),
        ("output size", _("output size")),
    ]
    keys = [key for key, _title in columns]
    header = [title for _key, title in columns]
    rows = []
    for layer in s.layers:
        rf = f"{layer.receptive_field[0]}×{layer.receptive_field[1]}" if layer.receptive_field else ""
        rows.append(
            [
                layer.name,
                layer.type,
                *([", ".join(layer.inputs)] if branching else []),
                keras_shape(layer.output_shape),
                f"{layer.trainable + layer.non_trainable:,}",
                f"{layer.flops:,}",
                rf,
                layer.formula or "",
            ]
        )
    return "sections/model.html", {
        "anchor": "model",
        "nav": _("Model"),
        "name": s.name,
        "header": header,
        "rows": rows,
        "numeric": [keys.index("params"), keys.index("FLOPs")],
        "total": s.total_params,
        "trainable": s.trainable_params,
        "non_trainable": s.non_trainable_params,
        "flops": s.flops,
        "input_shape": s.input_shape,
    }


def summary_html(s: ModelSummary) -> str:
    """Jupyter: the report's Model section, formulas included."""
    return fragment(model_section(s))


def summary_text(s: ModelSummary) -> str:
    """Jupyter's plain-text view: Keras' table with the formulas (`print(summary)`)."""
    return str(s)

"""An EvaluationResult as the report's "Test metrics" and "Confusion matrix" sections."""

from __future__ import annotations

from ..evaluation.evaluate import EvaluationResult
from ..i18n import _
from .jinja import fragment, number, picture


def per_class_alt() -> str:
    return _("per-class precision, recall and F1")


def matrix_alt() -> str:
    return _("confusion matrix")


def matrix_caption() -> str:
    return _("Rows: the true class; columns: the predicted class.")


def metrics_section(result: EvaluationResult, bars: dict) -> tuple[str, dict]:
    rows = [
        [r["class"], number(r["precision"], 3), number(r["recall"], 3), number(r["f1"], 3), r["support"]]
        for r in result.per_class
    ]
    return "sections/metrics.html", {
        "anchor": "metrics",
        "nav": _("Metrics"),
        "accuracy": result.accuracy,
        "loss": result.loss,
        "size": len(result.labels),
        "bars": bars,
        "per_class": rows,
    }


def confusion_section(result: EvaluationResult, matrix: dict, top: int = 10) -> tuple[str, dict]:
    pairs = [[p["true"], p["predicted"], p["count"]] for p in result.most_confused(top)]
    return "sections/confusion.html", {"anchor": "confusion", "nav": _("Confusion"), "matrix": matrix, "pairs": pairs}


def evaluation_html(result: EvaluationResult) -> str:
    """Jupyter: the report's Test metrics and Confusion matrix sections."""
    from .charts import confusion_matrix_figure, per_class_figure  # matplotlib only when drawn

    bars = picture(per_class_figure(result.per_class), per_class_alt())
    matrix = picture(
        confusion_matrix_figure(result.confusion_matrix, result.class_names), matrix_alt(), matrix_caption()
    )
    return fragment(metrics_section(result, bars), confusion_section(result, matrix))


def evaluation_text(result: EvaluationResult) -> str:
    """Jupyter's plain-text view: the full text report (`result.text()`)."""
    return result.text()

"""Jupyter's views of convscope's objects, given to IPython's display formatter by type name.

The objects themselves (`Dataset`, `ModelSummary`, `History`, `TrainedModel`, `EvaluationResult`,
`ExperimentResult`, fit's live status and chart) hold data and know nothing of HTML: `install` tells
IPython's formatters which function of this package shows each one. They are registered by module and class
name, so no class is imported here, and each function imports its module only when something is shown.
`convscope/__init__.py` calls `install` when it is imported in a running IPython shell.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# (module of the class, class name, MIME type, presentation module, function)
VIEWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("convscope.data.dataset", "Dataset", "text/html", "dataset", "dataset_html"),
    ("convscope.data.dataset", "Dataset", "text/plain", "dataset", "dataset_text"),
    ("convscope.models.summary", "ModelSummary", "text/html", "summary", "summary_html"),
    ("convscope.models.summary", "ModelSummary", "text/plain", "summary", "summary_text"),
    ("convscope.training.history", "History", "text/html", "history", "history_html"),
    ("convscope.training.history", "History", "text/plain", "history", "history_text"),
    ("convscope.training.trained_model", "TrainedModel", "text/html", "trained_model", "trained_html"),
    ("convscope.training.trained_model", "TrainedModel", "text/plain", "trained_model", "trained_text"),
    ("convscope.evaluation.evaluate", "EvaluationResult", "text/html", "evaluation", "evaluation_html"),
    ("convscope.evaluation.evaluate", "EvaluationResult", "text/plain", "evaluation", "evaluation_text"),
    ("convscope.experiment", "ExperimentResult", "text/html", "experiment", "experiment_html"),
    ("convscope.experiment", "ExperimentResult", "text/plain", "experiment", "experiment_text"),
    ("convscope.training.notebook_progress", "LiveStatus", "text/html", "live", "status_html"),
    ("convscope.training.notebook_progress", "LiveChart", "image/png", "live", "chart_png"),
)


def view(module: str, function: str) -> Callable:
    """`presentation.<module>.<function>`, imported on the first call (matplotlib, jinja2 and torch load only
    when something is shown)."""

    def show(obj):
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(obj)

    return show


def pretty(show: Callable) -> Callable:
    """A text view as IPython's pretty printer calls it: (obj, printer, cycle)."""

    def printer(obj, p, cycle: bool) -> None:
        p.text(show(obj))

    return printer


def install(formatter) -> None:
    """Register every view with `formatter`, an IPython `DisplayFormatter` (a shell's `display_formatter`)."""
    for module, name, mime, where, function in VIEWS:
        show = view(where, function)
        formatter.formatters[mime].for_type_by_name(module, name, pretty(show) if mime == "text/plain" else show)

"""Figures (matplotlib, no display needed), the self-contained `report.html`, and run comparison."""

from .compare import compare_runs, comparison_text, write_comparison
from .figures import (
    class_samples_figure,
    comparison_figure,
    confusion_matrix_figure,
    feature_maps_figure,
    filters_figure,
    per_class_figure,
    predictions_figure,
    to_png,
    training_curves,
)
from .html import REPORT, render, write_report
from .view import RunView, load_view

__all__ = [
    "REPORT", "RunView", "class_samples_figure", "compare_runs", "comparison_figure", "comparison_text",
    "confusion_matrix_figure", "feature_maps_figure", "filters_figure", "load_view", "per_class_figure",
    "predictions_figure", "render", "to_png", "training_curves", "write_comparison", "write_report",
]

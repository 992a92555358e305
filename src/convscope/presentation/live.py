"""fit's live display in a notebook: the status line as HTML and the chart of the epochs so far as a PNG
(`training.notebook_progress` holds their data and puts them in the cell)."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..training.notebook_progress import LiveChart, LiveStatus
from .charts import training_curves
from .images import figure_png
from .jinja import fragment

CHART_DPI = 72  # a 720 x 274 px chart: readable in a cell, about 50 KB as PNG; it is re-sent every epoch


def status_html(status: LiveStatus) -> str:
    return fragment(("sections/live.html", status.context))


def chart_figure(chart: LiveChart) -> Figure:
    return training_curves(chart.history, title=chart.title)


def chart_png(chart: LiveChart) -> bytes:
    return figure_png(chart_figure(chart), CHART_DPI)

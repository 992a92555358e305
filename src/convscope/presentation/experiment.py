"""An ExperimentResult as the notebook shows it: its table, what the spread says, and the chart of every repeat."""

from __future__ import annotations

from html import escape

from ..i18n import _
from .images import png_data_uri
from .picture import Picture


def experiment_chart(result) -> Picture:
    """Mean ± spread per combination as error bars, every repeat as a dot (`result`: an `ExperimentResult`)."""
    from .charts import spread_chart  # matplotlib loads only when the chart is drawn

    groups = result.groups
    figure = spread_chart(
        [g.label for g in groups],
        [list(g.accuracies) for g in groups],
        _("test accuracy"),
        _("{n} repeats per value, mean ± spread").format(n=max((len(g.accuracies) for g in groups), default=0)),
    )
    return Picture(figure, "experiment")


def experiment_html(result) -> str:
    """Jupyter: the table, the note and the chart."""
    note = f"<p>{escape(result.note())}</p>" if result.note() else ""
    alt = escape(_("experiment chart"), quote=True)
    src = png_data_uri(experiment_chart(result).png())
    return f"<pre>{escape(result.table())}</pre>{note}<img alt='{alt}' src='{src}'>"


def experiment_text(result) -> str:
    """Jupyter's plain-text view: the table and its note (`print(result)`)."""
    return str(result)

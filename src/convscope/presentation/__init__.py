"""Presentation: every way convscope shows something, as HTML, text, figures or pages, in one package.

The domain objects (`Dataset`, `ModelSummary`, `History`, `TrainedModel`, `EvaluationResult`,
`ExperimentResult`, fit's live display) hold data and import nothing from here; a module per thing shown
turns it into the report's section, the notebook's view or a figure (`dataset`, `summary`, `history`,
`trained_model`, `evaluation`, `experiment`, `live`, `inspection`, `report`), with the shared pieces beside
them (`jinja` and `templates/`, `images`, `charts`, `figures`, `fonts`, `table`, `picture`). Jupyter finds the
views through `notebook.install`, which registers them with IPython's display formatter by type name.
matplotlib is only touched when something is drawn.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .images import array_png, figure_png, png_data_uri, strip
    from .jinja import (
        fragment,
        image_tag,
        number,
        page,
        picture,
        render,
    )
    from .picture import Picture

attach(
    __name__,
    {
        "array_png": ".images",
        "figure_png": ".images",
        "png_data_uri": ".images",
        "strip": ".images",
        "fragment": ".jinja",
        "image_tag": ".jinja",
        "number": ".jinja",
        "page": ".jinja",
        "picture": ".jinja",
        "render": ".jinja",
        "Picture": ".picture",
    },
)

__all__ = [
    "Picture",
    "array_png",
    "figure_png",
    "fragment",
    "image_tag",
    "number",
    "page",
    "picture",
    "png_data_uri",
    "render",
    "strip",
]

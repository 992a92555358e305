"""The display layer: HTML templates and pictures shared by `report.html` and the notebook reprs.

It sits at the bottom of convscope and imports nothing else from it, so every stage's objects
(`Dataset`, `ModelSummary`, `History`, `EvaluationResult`, `TrainedModel`) can show themselves in
Jupyter with the same templates the report is written from. matplotlib is only touched by `charts`
and `Picture`, and only when something is drawn.
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
        shape,
    )
    from .notebook import in_notebook
    from .rich import Picture

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
        "shape": ".jinja",
        "in_notebook": ".notebook",
        "Picture": ".rich",
    },
)

__all__ = [
    "Picture",
    "array_png",
    "figure_png",
    "fragment",
    "image_tag",
    "in_notebook",
    "number",
    "page",
    "picture",
    "png_data_uri",
    "render",
    "shape",
    "strip",
]

"""`Picture`: a matplotlib Figure that shows itself in Jupyter (a rich-display object).

A bare `Figure` (built without pyplot, as convscope builds them) has no rich repr: without the
inline backend's formatter a notebook prints `<Figure size ...>` and no image. A `Picture` gives
IPython a PNG through `_repr_png_`, registers nothing global, and still behaves as the figure
(`picture.axes`, `picture.savefig(...)`, `picture.figure`).
"""

from __future__ import annotations

from .images import figure_png


class Picture:
    def __init__(self, figure, title: str = ""):
        self.figure = figure
        self.title = title

    def _repr_png_(self) -> bytes:
        return figure_png(self.figure)

    def png(self) -> bytes:
        return figure_png(self.figure)

    def __getattr__(self, name: str):
        # public names are the figure's (axes, savefig, suptitle, ...); private ones are not, so IPython
        # sees no `_repr_html_` of the Figure's (webagg's) and shows the PNG, and `figure` itself, when
        # not set yet (copy, unpickling), does not recurse
        if name.startswith("_") or name == "figure":
            raise AttributeError(name)
        return getattr(self.figure, name)

    def __repr__(self) -> str:
        width, height = self.figure.get_size_inches()
        return f"<Picture {self.title or 'figure'!r} {width:g}x{height:g} in>"

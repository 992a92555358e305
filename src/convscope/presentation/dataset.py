"""The Dataset as the report's "Data" section: a notebook shows `data` the way report.html does."""

from __future__ import annotations

import numpy as np

from ..data.dataset import Dataset
from ..data.describe import _number, describe, imbalance_note
from ..i18n import _
from .images import array_png, strip
from .jinja import fragment, image_tag

SAMPLES_PER_CLASS = 8


def class_table(dataset: Dataset, per_class: int = SAMPLES_PER_CLASS, seed: int = 0) -> dict:
    """One row per class: name, image count, share, and a strip of `per_class` random images of it."""
    rng = np.random.default_rng(seed)
    counts = dataset.class_counts()
    total = max(len(dataset), 1)
    value_range = _value_range(dataset)
    rows = []
    for c, name in enumerate(dataset.class_names):
        pool = np.flatnonzero(dataset.labels == c)
        chosen = np.sort(rng.choice(pool, size=min(per_class, len(pool)), replace=False)) if len(pool) else pool
        images = np.asarray(dataset.images[chosen])  # one read, also for memory-mapped images
        samples = (
            image_tag(
                array_png(strip(images, value_range=value_range)),
                _("samples of class {name}").format(name=name),
            )
            if len(chosen)
            else ""
        )
        rows.append([name, f"{int(counts[c]):,}", f"{100 * counts[c] / total:.1f}%", samples])
    return {"header": [_("class"), _("images"), _("share"), _("samples")], "rows": rows, "numeric": [1, 2]}


def _value_range(dataset: Dataset) -> tuple[float, float]:
    """Black and white are the data's own minimum and maximum (as the scaler sees them): 0..16 digits are
    not drawn near-black, and 0..255 images are drawn as stored."""
    images = dataset.images
    return (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)


def step_rows(steps) -> list[tuple[str, str]]:
    """What load did, one row per `steps.DataStep`: its name, then the shape and value range after it."""
    rows = []
    for step in steps:
        if step.low is not None:
            text = _("{shape}, values {low} .. {high}; {note}").format(
                shape=step.shape, low=_number(step.low), high=_number(step.high), note=step.note
            )
        else:
            text = f"{step.shape}; {step.note}"
        rows.append((_("step: {name}").format(name=step.name), text))
    return rows


def facts(dataset: Dataset) -> list[tuple[str, str]]:
    """The key-value rows of `describe`, for the HTML table."""
    h, w, c = dataset.input_shape
    images = dataset.images
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    rows = [
        (_("source"), dataset.source or _("(in memory)")),
        (_("images"), f"{len(dataset):,}"),
        (_("image shape"), _("{h} × {w} × {c} (height × width × channels)").format(h=h, w=w, c=c)),
        (_("values"), f"{images.dtype}, {_number(low)} .. {_number(high)}"),
        (_("classes"), f"{dataset.num_classes}: {', '.join(dataset.class_names)}"),
    ]
    if dataset.predefined_test is not None:
        rows.append(
            (_("test split"), _("predefined by the file, {count:,} images").format(count=len(dataset.predefined_test)))
        )
    rows += step_rows(dataset.steps)
    warning = imbalance_note(dataset)
    if warning:
        rows.append((_("warning"), warning))
    return rows


def data_section(dataset: Dataset) -> tuple[str, dict]:
    return "sections/data.html", {
        "anchor": "data",
        "nav": _("Data"),
        "title": _("Data"),
        "rows": facts(dataset),
        "classes": class_table(dataset),
        "caption": _("Samples: {count} random images of every class (seed 0).").format(count=SAMPLES_PER_CLASS),
    }


def dataset_html(dataset: Dataset) -> str:
    """Jupyter: the report's Data section (facts, class counts, sample strips)."""
    return fragment(data_section(dataset))


def dataset_text(dataset: Dataset) -> str:
    """Jupyter's plain-text view: `describe`, not the arrays."""
    return describe(dataset)

"""The Dataset as the report's "Data" section: a notebook shows `data` the way report.html does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import display
from ..i18n import _
from .describe import _number, imbalance_warning

if TYPE_CHECKING:  # types only: the classes import this module to draw themselves
    from .dataset import Dataset

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
        strip = (
            display.image_tag(
                display.array_png(display.strip(images, value_range=value_range)), f"samples of class {name}"
            )
            if len(chosen)
            else ""
        )
        rows.append([name, f"{int(counts[c]):,}", f"{100 * counts[c] / total:.1f}%", strip])
    return {"header": ["class", "images", "share", "samples"], "rows": rows, "numeric": [1, 2]}


def _value_range(dataset: Dataset) -> tuple[float, float]:
    """Black and white are the data's own minimum and maximum (as the scaler sees them): 0..16 digits are
    not drawn near-black, and 0..255 images are drawn as stored."""
    images = dataset.images
    return (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)


def step_rows(steps) -> list[tuple[str, str]]:
    """What load did, one row per `steps.DataStep`: its name, then the shape and value range after it."""
    rows = []
    for step in steps:
        values = f", {_('values')} {_number(step.low)} .. {_number(step.high)}" if step.low is not None else ""
        rows.append((_("step: {name}").format(name=step.name), f"{step.shape}{values}; {step.note}"))
    return rows


def facts(dataset: Dataset) -> list[tuple[str, str]]:
    """The key-value rows of `describe`, for the HTML table."""
    h, w, c = dataset.input_shape
    images = dataset.images
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    rows = [
        ("source", dataset.source or "(in memory)"),
        ("images", f"{len(dataset):,}"),
        ("image shape", f"{h} × {w} × {c} (height × width × channels)"),
        ("values", f"{images.dtype}, {_number(low)} .. {_number(high)}"),
        ("classes", f"{dataset.num_classes}: {', '.join(dataset.class_names)}"),
    ]
    if dataset.predefined_test is not None:
        rows.append(("test split", f"predefined by the file, {len(dataset.predefined_test):,} images"))
    rows += step_rows(dataset.steps)
    warning = imbalance_warning(dataset)
    if warning:
        rows.append(("warning", warning.removeprefix("warning: ")))
    return rows


def data_section(dataset: Dataset) -> tuple[str, dict]:
    return "sections/data.html", {
        "anchor": "data",
        "nav": "Data",
        "title": "Data",
        "rows": facts(dataset),
        "classes": class_table(dataset),
        "caption": f"Samples: {SAMPLES_PER_CLASS} random images of every class (seed 0).",
    }


def dataset_html(dataset: Dataset) -> str:
    return display.fragment(data_section(dataset))

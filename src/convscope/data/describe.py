"""A plain-text summary of a `Dataset`, for `convscope data describe` and run logs.

Pure functions returning text, so the CLI prints it, the server can return it, tests compare it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checks import pad, printable, text_width

if TYPE_CHECKING:  # types only: the classes import this module to draw themselves
    from .dataset import Dataset


IMBALANCE_RATIO = 3.0  # largest class more than 3x the smallest: accuracy starts to mislead


def imbalance_warning(dataset: Dataset) -> str | None:
    """One warning line when classes are heavily imbalanced, else None."""
    counts = dataset.class_counts()
    largest, smallest = int(counts.max()), int(counts.min())
    big, small = (printable(dataset.class_names[int(i)]) for i in (counts.argmax(), counts.argmin()))
    if smallest == 0:
        return f"warning: class '{small}' has no images; the model can never learn to predict it."
    if largest > IMBALANCE_RATIO * smallest:
        return (
            f"warning: heavy class imbalance: '{big}' has {largest} images, {largest / smallest:.1f}x the "
            f"{smallest} of '{small}'; accuracy will flatter the model, watch per-class recall."
        )
    return None


def describe(dataset: Dataset) -> str:
    """Multi-line summary: source, size, shape, dtype and range, classes with counts, split, warnings."""
    images = dataset.images
    h, w, c = dataset.input_shape
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    lines = [
        f"source:      {printable(dataset.source or '(in memory)')}",
        f"images:      {len(dataset)}",
        f"image shape: {h} x {w} x {c} (height x width x channels)",
        f"dtype:       {images.dtype}, values {_number(low)} .. {_number(high)}",
        f"classes:     {dataset.num_classes}",
    ]
    counts = dataset.class_counts()
    names = [printable(n) for n in dataset.class_names]
    width = max(text_width(n) for n in names)
    for name, count in zip(names, counts):
        lines.append(f"  {pad(name, width)}  {int(count):>7}  {100 * count / max(len(dataset), 1):5.1f}%")
    if dataset.predefined_test is not None:
        lines.append(f"test split:  predefined by the file, {len(dataset.predefined_test)} images")
    if dataset.steps:
        lines.append(steps_text(dataset.steps))
    warning = imbalance_warning(dataset)
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def _number(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def steps_text(steps) -> str:
    """What `load` did, one `steps.DataStep` per line."""
    from ..i18n import _

    return "\n".join([_("data steps:")] + [f"  {s}" for s in steps])

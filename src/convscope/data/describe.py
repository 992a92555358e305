"""A plain-text summary of a `Dataset`, for `convscope data describe` and run logs.

Pure functions returning text, so the CLI prints it, the server can return it, tests compare it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checks import pad, printable, text_width
from ..i18n import _

if TYPE_CHECKING:  # types only: the classes import this module to draw themselves
    from .dataset import Dataset


IMBALANCE_RATIO = 3.0  # largest class more than 3x the smallest: accuracy starts to mislead


def imbalance_warning(dataset: Dataset) -> str | None:
    """One warning line when classes are heavily imbalanced, else None."""
    note = imbalance_note(dataset)
    return _("warning: {note}").format(note=note) if note else None


def imbalance_note(dataset: Dataset) -> str | None:
    """The warning's sentence without its "warning:" label (the report shows the label in its own column)."""
    counts = dataset.class_counts()
    largest, smallest = int(counts.max()), int(counts.min())
    big, small = (printable(dataset.class_names[int(i)]) for i in (counts.argmax(), counts.argmin()))
    if smallest == 0:
        return _("class '{small}' has no images; the model can never learn to predict it.").format(small=small)
    if largest > IMBALANCE_RATIO * smallest:
        return _(
            "heavy class imbalance: '{big}' has {largest} images, {ratio:.1f}x the "
            "{smallest} of '{small}'; accuracy will flatter the model, watch per-class recall."
        ).format(big=big, largest=largest, ratio=largest / smallest, smallest=smallest, small=small)
    return None


def describe(dataset: Dataset) -> str:
    """Multi-line summary: source, size, shape, dtype and range, classes with counts, split, warnings."""
    images = dataset.images
    h, w, c = dataset.input_shape
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    fields = [
        (_("source:"), printable(dataset.source or _("(in memory)"))),
        (_("images:"), str(len(dataset))),
        (_("image shape:"), _("{h} x {w} x {c} (height x width x channels)").format(h=h, w=w, c=c)),
        (
            _("dtype:"),
            _("{dtype}, values {low} .. {high}").format(dtype=images.dtype, low=_number(low), high=_number(high)),
        ),
        (_("classes:"), str(dataset.num_classes)),
    ]
    test_field = None
    if dataset.predefined_test is not None:
        test_field = (
            _("test split:"),
            _("predefined by the file, {count} images").format(count=len(dataset.predefined_test)),
        )
    # Labels padded to the widest (in terminal columns: translated labels differ in length) plus one space.
    label_width = max(text_width(label) for label, _value in [*fields, *([test_field] if test_field else [])]) + 1
    lines = [f"{pad(label, label_width)}{value}" for label, value in fields]
    counts = dataset.class_counts()
    names = [printable(n) for n in dataset.class_names]
    width = max(text_width(n) for n in names)
    for name, count in zip(names, counts):
        lines.append(f"  {pad(name, width)}  {int(count):>7}  {100 * count / max(len(dataset), 1):5.1f}%")
    if test_field is not None:
        lines.append(f"{pad(test_field[0], label_width)}{test_field[1]}")
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
    width = max([10, *(text_width(s.name) for s in steps)])
    return "\n".join([_("data steps:")] + [f"  {s.line(width)}" for s in steps])

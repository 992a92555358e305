"""The data steps the course prints, one by one: shape and value range after each, as a learner checks them.

    (28, 28, 18724) as stored -> transpose to (18724, 28, 28) -> reshape to (18724, 28, 28, 1)
    -> scale to 0 .. 1 (at fit, with training statistics) -> labels (18724,), one-hot would be (18724, 10)

`data_steps` replays what `load` did, from the arrays as the file stored them and the dataset it made;
it computes each shape from the same layout rule (`layout.py`), so what it says is what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import pad
from ..i18n import _
from .dataset import Dataset
from .layout import _TO_NHWC, _guess_layout, check_layout
from .raw import RawSplit


@dataclass(frozen=True)
class DataStep:
    name: str  # "as stored", "transpose", "reshape", "scale", "labels", "one-hot"
    shape: tuple[int, ...]
    low: float | None  # the values' range after the step (None: not a value step)
    high: float | None
    note: str

    def __str__(self) -> str:
        return self.line()

    def line(self, name_width: int = 10) -> str:
        """One line of `steps_text`, the name padded to `name_width` terminal columns (translated names vary)."""
        values = f"  {_('values')} {_num(self.low)} .. {_num(self.high)}" if self.low is not None else ""
        return f"{pad(self.name, name_width)} {str(self.shape):<22}{values}  {self.note}".rstrip()


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def data_steps(raw: RawSplit, dataset: Dataset, layout: str | None = None) -> tuple[DataStep, ...]:
    """Each step from the stored arrays to the images and labels a model trains on, in the course's order."""
    stored = np.asarray(raw.images)
    low, high = (float(stored.min()), float(stored.max())) if stored.size else (0.0, 0.0)
    steps = [
        DataStep(
            _("as stored"),
            tuple(stored.shape),
            low,
            high,
            _("{dtype}, in {file}").format(dtype=stored.dtype, file=raw.file),
        )
    ]
    n = len(dataset)
    if not raw.nhwc:
        name = check_layout(layout) or _guess_layout(tuple(int(s) for s in stored.shape), n, "")
        if name in _TO_NHWC and _TO_NHWC[name] != tuple(range(len(name))):
            order = _TO_NHWC[name]
            shape = tuple(int(stored.shape[i]) for i in order)
            steps.append(
                DataStep(
                    _("transpose"),
                    shape,
                    low,
                    high,
                    _("axes {order}: {layout} -> images first").format(order=order, layout=name),
                )
            )
        if name in ("NHW", "HWN") or name == "flat":
            steps.append(
                DataStep(
                    _("reshape"), tuple(dataset.images.shape), low, high, _("one channel axis added: (N, H, W, C)")
                )
            )
    elif tuple(stored.shape) != tuple(dataset.images.shape):
        steps.append(DataStep(_("reshape"), tuple(dataset.images.shape), low, high, _("(N, H, W, C)")))
    steps.append(
        DataStep(
            _("scale"),
            tuple(dataset.images.shape),
            0.0,
            1.0,
            _("at fit: (x - {low}) / ({high} - {low}), with the training split's min and max").format(
                low=_num(low), high=_num(high)
            ),
        )
    )
    k = dataset.num_classes
    steps.append(
        DataStep(_("labels"), (n,), 0.0, float(k - 1), _("integers 0 .. {last}, one per image").format(last=k - 1))
    )
    steps.append(
        DataStep(
            _("one-hot"),
            (n, k),
            0.0,
            1.0,
            _("what to_categorical would have produced; not needed: the loss takes the integers (same numbers)"),
        )
    )
    return tuple(steps)

"""Output-size arithmetic for convolution and pooling, one axis at a time, Keras semantics.

- `valid`:      out = floor((W - F + 2*0) / S) + 1
- explicit P:   out = floor((W - F + 2*P) / S) + 1
- `same`:       out = ceil(W / S); Keras pads (out - 1)*S + F - W in total, the smaller half
                before and the larger after when the total is odd. PyTorch's own
                padding='same' refuses stride > 1, so we compute the pads ourselves.

Every function returns the numbers *and* the sentence that derives them, so the summary
can show a user why a 5x5 filter turns 32 into 28.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..i18n import _


def as_pair(value) -> tuple:
    """A torch module's kernel_size / stride / padding as a pair: (3, 3) from 3 or (3, 3)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@dataclass(frozen=True)
class AxisSize:
    size_in: int
    size_out: int
    pad_before: int
    pad_after: int
    formula: str


def axis_output(size: int, kernel: int, stride: int, padding: str | int) -> AxisSize:
    """Output length of one spatial axis; `size_out` may be < 1 (the caller reports it)."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        before, after = total // 2, total - total // 2
        formula = _(
            "ceil({size} / {stride}) = {out}  (same: pad {before}+{after}, floor(({size} - {kernel} + {total}) / {stride}) + 1 = {out})"
        ).format(size=size, stride=stride, out=out, before=before, after=after, kernel=kernel, total=total)
        return AxisSize(size, out, before, after, formula)
    pad = 0 if padding == "valid" else int(padding)
    out = (size - kernel + 2 * pad) // stride + 1
    formula = f"floor(({size} - {kernel} + 2*{pad}) / {stride}) + 1 = {out}"
    return AxisSize(size, out, pad, pad, formula)


def receptive_field(rf_in: int, jump_in: int, kernel: int, stride: int) -> tuple[int, int]:
    """Receptive field and jump (distance in input pixels between neighbouring outputs) after a layer."""
    return rf_in + (kernel - 1) * jump_in, jump_in * stride


def keras_shape(dims) -> str:
    """An output shape as Keras prints it, with its batch axis: (None, 28, 28, 32)."""
    return "(" + ", ".join(["None", *(str(s) for s in dims)]) + ")"

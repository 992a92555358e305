"""Where the work runs: CUDA when torch has it, else the CPU; `device=` forces either."""

from __future__ import annotations

import torch

from ..errors import UserError
from ..i18n import _


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            _("device {name!r} was asked for, but this torch build sees no CUDA GPU; use --device cpu.").format(
                name=name
            )
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(_("unknown device {name!r}; use auto, cpu or cuda[:N].").format(name=name)) from None

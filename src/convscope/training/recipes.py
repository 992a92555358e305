"""Recipes: a bundle of fit settings, so a preset can carry the way it is best trained.

`fit` takes every setting on its own; a `Recipe` only names a set of them. The `keras` recipe is
the course's workflow (Adam 1e-3, batch 32, up to 20 epochs, validation_split 0.2, EarlyStopping
with patience 3): the default for every model. The `fast` recipe goes with the `fast` preset and
is tuned for small grayscale images on a CPU, digits and letters alike: a few epochs at a large batch with a
one-cycle learning rate, label smoothing and random shifts of one pixel.

The three training extras, all off by default so a plain `fit` stays Keras' `model.fit`:

- `schedule="one-cycle"`: the learning rate climbs linearly from 0 to `lr` over the first quarter
  of all steps, then falls linearly to 0 at the last step; a high peak is safe after the warm-up
  and the decay to zero settles the weights, so few epochs are enough.
- `label_smoothing=0.1`: the target puts 0.9 on the true class and spreads 0.1 over all classes,
  which keeps logits from growing without bound on an easy training set.
- `random_shift=1`: every training image moves by up to 1 pixel each way, fresh every epoch (letters stretched
  to fill the frame, as notMNIST's are, lose their edges to larger shifts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from ..errors import UserError
from ..i18n import _

if TYPE_CHECKING:
    import torch

WARMUP_FRACTION = 0.25


@dataclass(frozen=True)
class Recipe:
    name: str = "keras"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    validation_split: float = 0.2
    patience: int | None = 3  # EarlyStopping on val_loss, restoring the best weights; None: no early stopping
    precision: str = "fp32"
    schedule: str = "constant"
    label_smoothing: float = 0.0
    random_shift: int = 0

    def with_overrides(self, **settings) -> Recipe:
        """This recipe with every setting that is not None replaced."""
        return replace(self, **{k: v for k, v in settings.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    "keras": Recipe(),
    # Measured on mnist-10k and on a notMNIST-like letters set (8,000 training images each, 2 CPU cores): see
    # BENCHMARKS.md. Batch 256 at a peak of 8e-3 reaches the accuracy of batch 128 at 4e-3 in two thirds of the time.
    "fast": Recipe(
        # No early stopping: the one-cycle rate ends at zero, and the last weights are the settled ones.
        name="fast",
        epochs=8,
        batch_size=256,
        lr=8e-3,
        validation_split=0.1,
        patience=None,
        precision="auto",
        schedule="one-cycle",
        label_smoothing=0.1,
        random_shift=1,
    ),
}

# The recipe a preset is trained with when none is named.
PRESET_RECIPES = {"fast": "fast"}


def recipe_for(model: object, name: str | None = None) -> Recipe:
    """The named recipe, else the one the preset `model` recommends, else the course's `keras` recipe."""
    if name is None:
        name = PRESET_RECIPES.get(model, "keras") if isinstance(model, str) else "keras"
    if name not in RECIPES:
        raise UserError(
            _("unknown recipe {name!r}; known recipes: {choices}.").format(name=name, choices=", ".join(RECIPES))
        )
    return RECIPES[name]


def one_cycle(step: int, total: int, warmup: float = WARMUP_FRACTION) -> float:
    """The learning-rate factor after `step` optimizer steps out of `total`: 0 -> 1 -> 0, piecewise linear."""
    peak = max(1, round(total * warmup))
    if step < peak:
        return (step + 1) / peak  # the first step already moves, at 1/peak of the rate
    return max(0.0, (total - step) / (total - peak + 1))


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int):
    """A per-step scheduler for `schedule`, or None for a constant rate (Keras' default)."""
    if schedule == "constant":
        return None
    import torch  # only training needs it; the recipes' names are read by --help

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: one_cycle(step, total_steps))

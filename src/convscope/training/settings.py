"""Settings as typed objects: `FitSettings` (what `fit` needs) and `TrainSettings` (everything
`convscope train` / `cs.train` takes, named exactly as the CLI flags with `_` for `-`).

One path for both: CLI flags -> `TrainSettings` -> `train` -> `fit` -> the run's `config.json`
("settings"), and back with `TrainSettings.from_config` (`convscope train --config`). Adding a fit
option is a field of `FitSettings` (and of `TrainSettings` when the CLI offers it), its use in the
loop, and one row of `settings_table.TRAIN`, which checks it everywhere: the CLI's option, `cs.train`
and `config.json` follow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..i18n import _
from ..record import differences
from ..settings_table import PRECISIONS, check_settings
from .recipes import Recipe, recipe_for

if TYPE_CHECKING:
    from .early_stopping import EarlyStopping

__all__ = ["PRECISIONS", "FitSettings", "TrainSettings"]


@dataclass(frozen=True)
class FitSettings:
    """`fit`'s settings; defaults are Keras' `model.fit` (no recipe extras)."""

    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.0
    lr: float = 1e-3
    seed: int = 0
    precision: str = "fp32"
    schedule: str = "constant"
    label_smoothing: float = 0.0
    random_shift: int = 0

    def __post_init__(self) -> None:
        # Every field is required here: `fit` has no recipe to fill a None from.
        check_settings({f.name: getattr(self, f.name) for f in fields(self)}, optional=False)

    @classmethod
    def of(cls, base: FitSettings | None, options: dict[str, Any]) -> FitSettings:
        """`base` (or the defaults) with `options` replaced; an unknown name is a TypeError, as for any function."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"fit() got an unexpected keyword argument {unknown[0]!r}; fit settings: {', '.join(sorted(known))}."
            )
        return replace(base or cls(), **options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainSettings:
    """Every option of `convscope train`, by the flag's name; None means: from the recipe."""

    data: str = "mnist-5k"
    model: str = "cnn"
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    monitor: str = "val_loss"
    validation_split: float | None = None
    test_split: float = 0.2
    seed: int = 0
    class_names: str | list[str] | None = None
    layout: str | None = None
    image_size: int | None = None
    channels: int | None = None
    device: str | None = None
    precision: str | None = None
    schedule: str | None = None
    label_smoothing: float | None = None
    random_shift: int | None = None
    reduce_lr_patience: int | None = None
    reduce_lr_factor: float = 0.1
    tensorboard: str | None = None
    out: str | None = None
    nproc: int = 1
    threads: int | None = None
    stream: bool = False
    report: bool = True
    verbose: bool = True
    resume: bool = False

    # How a run is carried out, not what it computes: free to differ when resuming or reproducing.
    CONDUCT = ("out", "resume", "verbose", "report", "tensorboard", "threads")

    def __post_init__(self) -> None:
        # Here rather than in `train`, so that every way of building settings (flags, `cs.train`, `--config`)
        # is refused before any data is read.
        check_settings({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def of(cls, base: TrainSettings | None, options: dict[str, Any]) -> TrainSettings:
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(
                f"train() got an unexpected keyword argument {unknown[0]!r}; "
                f"it takes the options of `convscope train`: {', '.join(cls.names())}."
            )
        options = {
            k: (
                str(v)
                if k in ("data", "model", "out", "tensorboard") and v is not None and not isinstance(v, dict)
                else v
            )
            for k, v in options.items()
        }
        return replace(base or cls(), **options)

    def recipe_settings(self) -> Recipe:
        """The recipe with every setting given here replacing its own."""
        recipe = recipe_for(self.model, self.recipe)
        return recipe.with_overrides(
            **{f.name: getattr(self, f.name) for f in fields(Recipe) if f.name != "name" and hasattr(self, f.name)}
        )

    def fit_settings(self) -> FitSettings:
        recipe = self.recipe_settings()
        return FitSettings(
            **{f.name: getattr(recipe, f.name) for f in fields(FitSettings) if f.name != "seed"}, seed=self.seed
        )

    def early_stopping(self) -> EarlyStopping | None:
        """The EarlyStopping a run of these settings trains with: the recipe's patience on `monitor` with
        `min_delta`, restoring the best epoch's weights; None when the recipe has no early stopping."""
        from .early_stopping import EarlyStopping  # it imports torch; the CLI reads these settings for --help

        patience = self.recipe_settings().patience
        if patience is None:
            return None
        return EarlyStopping(
            monitor=self.monitor, min_delta=self.min_delta, patience=patience, restore_best_weights=True
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def differences(self, other: TrainSettings) -> list[str]:
        """'name: mine vs theirs' for every setting that changes what a run computes."""
        names = [name for name in self.names() if name not in self.CONDUCT]
        return differences(vars(other), vars(self), names)

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "config.json") -> TrainSettings:
        """The settings a run's config.json was trained with (runs saved from Python: from its data, model and fit)."""
        if isinstance(config.get("settings"), dict):
            saved = {k: v for k, v in _current_names(config["settings"]).items() if k in cls.names()}
            return replace(cls(), **saved)
        data, model, fit = config.get("data") or {}, config.get("model") or {}, config.get("fit") or {}
        if not data.get("source") or not (model.get("source") or model.get("name")):
            raise UserError(
                _(
                    "{source} does not name the data and the model it was trained with; it cannot be retrained from its config."
                ).format(source=source)
            )
        fit_names = {f.name for f in fields(FitSettings)}
        stopping = fit.get("early_stopping") or {}
        return replace(
            cls(),
            data=data["source"],
            model=model.get("source") or model["name"],
            **{k: v for k, v in fit.items() if k in fit_names},
            **(
                {"patience": stopping["patience"], "min_delta": stopping["min_delta"], "monitor": stopping["monitor"]}
                if stopping
                else {}
            ),
        )


# Runs saved by convscope 0.1.0 wrote the two conduct settings under negative names; those runs live on in
# users' folders and must still retrain with `--config`, so a saved config is read with them turned into
# today's names here, the one place a config.json's settings are read.
_RENAMED = {"quiet": "verbose", "no_report": "report"}


def _current_names(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config's settings under today's names (an old negative flag becomes its positive twin)."""
    current = {k: v for k, v in saved.items() if k not in _RENAMED}
    for old, new in _RENAMED.items():
        if new not in saved and isinstance(saved.get(old), bool):
            current[new] = not saved[old]
    return current

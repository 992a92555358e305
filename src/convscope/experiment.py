"""`experiment`: the course's "filters found by repeated experiment", with repeats that show the noise.

    result = cs.experiment("notMNIST_small.mat", "cnn", grid={"filters": [8, 16, 32]}, repeats=3, epochs=2)
    result            # a table of mean ± spread of the test accuracy per value, a chart, and whether the
                      # differences are larger than the spread of the repeats

Every combination of the named values is trained `repeats` times, with seeds seed, seed + 1, ... (the
weights' initialisation, the shuffling and dropout change; the data split, the test images and every
other setting stay the same), so the spread of one value's runs is the noise a single run carries.
Each run is an ordinary run directory under `out` (compare, inspect, report or serve it).

A grid names model values (`filters`: every Conv2D layer's filters; `kernel_size`: every Conv2D's kernel;
`dropout`: every Dropout layer's rate; `units`: every Dense layer's units but the last) or fit settings
(`lr`, `batch_size`, `epochs`, `label_smoothing`, ...).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .checks import pad, text_width
from .data import load
from .data.dataset import Dataset
from .errors import UserError
from .evaluation.evaluate import evaluate
from .i18n import _
from .models.build import build, plan_network, resolve_spec
from .runs import save_run
from .training.fit import fit
from .training.settings import FitSettings, TrainSettings

MODEL_VALUES = ("filters", "kernel_size", "dropout", "units")
FIT_VALUES = tuple(f.name for f in fields(FitSettings) if f.name not in ("seed", "validation_split"))
# What a run of an experiment takes besides its grid: `convscope train`'s settings that change how one run trains.
RUN_OPTIONS = (*FIT_VALUES, "recipe", "monitor", "min_delta", "device", "threads")


@dataclass(frozen=True)
class Trial:
    """One run of the experiment: the values it tried, its seed, its test scores and its run directory."""

    values: tuple[tuple[str, Any], ...]
    seed: int
    accuracy: float
    loss: float
    best_epoch: int | None
    path: Path


@dataclass(frozen=True)
class Group:
    """The repeats of one combination of values: mean and spread (sample standard deviation) of their scores."""

    values: tuple[tuple[str, Any], ...]
    accuracies: tuple[float, ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def spread(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0


@dataclass
class ExperimentResult:
    grid: dict[str, list]
    trials: list[Trial] = field(default_factory=list)
    path: Path | None = None

    @property
    def groups(self) -> list[Group]:
        """One group per combination of values, in the grid's order."""
        order: dict[tuple, list[float]] = {}
        for t in self.trials:
            order.setdefault(t.values, []).append(t.accuracy)
        return [Group(values, tuple(accs)) for values, accs in order.items()]

    def note(self) -> str:
        """Whether the best value's lead over the runner-up is larger than the spread of their repeats."""
        groups = sorted(self.groups, key=lambda g: g.mean, reverse=True)
        if len(groups) < 2:
            return ""
        best, second = groups[0], groups[1]
        if min(len(best.accuracies), len(second.accuracies)) < 2:
            return _("With one run per value there is no spread to compare with: repeat each value (repeats=3).")
        gap, noise = best.mean - second.mean, best.spread + second.spread
        numbers = dict(
            best=best.label, m1=best.mean, s1=best.spread, second=second.label, m2=second.mean, s2=second.spread
        )
        if gap <= noise:
            return _(
                "The differences are within the spread of the repeats: {best} ({m1:.3f} ± {s1:.3f}) is ahead of "
                "{second} ({m2:.3f} ± {s2:.3f}) by {gap:.3f}, less than their spreads together ({noise:.3f}), so "
                "these runs cannot tell them apart; more repeats or more epochs would."
            ).format(**numbers, gap=gap, noise=noise)
        return _(
            "{best} ({m1:.3f} ± {s1:.3f}) is ahead of {second} ({m2:.3f} ± {s2:.3f}) by {gap:.3f}, more than "
            "their spreads together ({noise:.3f})."
        ).format(**numbers, gap=gap, noise=noise)

    def table(self) -> str:
        """Mean ± spread of the test accuracy per combination, with every repeat's value."""
        head = (_("values"), _("test accuracy (mean ± spread)"), _("runs"), _("each run"))
        rows = [
            (
                g.label,
                f"{g.mean:.4f} ± {g.spread:.4f}",
                str(len(g.accuracies)),
                " ".join(f"{a:.4f}" for a in g.accuracies),
            )
            for g in self.groups
        ]
        widths = [max(text_width(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(pad(cell, w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        """One line for a plain REPL; `print(result)` gives the table and its note."""
        best = max(self.groups, key=lambda g: g.mean, default=None)
        lead = f", best {best.label} ({best.mean:.4f})" if best is not None else ""
        where = f" in {self.path}" if self.path is not None else ""
        return f"<ExperimentResult: {len(self.trials)} runs of {len(self.groups)} combinations{lead}{where}>"

    def __str__(self) -> str:
        return "\n\n".join(part for part in (self.table(), self.note()) if part)


def check_grid(grid: Mapping[str, Sequence]) -> dict[str, list]:
    if not isinstance(grid, Mapping) or not grid:
        raise UserError(_("experiment needs grid={{name: [values]}}, e.g. grid={{'filters': [8, 16, 32]}}."))
    known = (*MODEL_VALUES, *FIT_VALUES)
    out = {}
    for name, values in grid.items():
        if name not in known:
            raise UserError(
                _("experiment grid: {name!r} is not a value it can vary; choose from {known}.").format(
                    name=name, known=", ".join(known)
                )
            )
        values = list(values) if isinstance(values, (list, tuple, range)) else [values]
        if not values:
            raise UserError(_("experiment grid: {name!r} has no values.").format(name=name))
        out[name] = values
    return out


def vary_spec(spec: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with the model values of `values` set on every layer they apply to."""
    spec = json.loads(json.dumps(spec))
    dense = [l for l in spec["layers"] if l["type"] == "Dense"]
    for layer in spec["layers"]:
        kind = layer["type"]
        if kind == "Conv2D" and "filters" in values:
            layer["filters"] = values["filters"]  # as given: the spec's own checks refuse 4.7 or "abc" in a sentence
        if kind == "Conv2D" and "kernel_size" in values:
            layer["kernel_size"] = values["kernel_size"]
        if kind == "Dropout" and "dropout" in values:
            layer["rate"] = values["dropout"]
        if kind == "Dense" and "units" in values and dense and layer is not dense[-1]:
            layer["units"] = values["units"]
    return spec


def run_settings(
    model: str | dict, seed: int, epochs: int, validation_split: float, patience: int | None, options: Mapping
) -> TrainSettings:
    """The settings of one run, as `convscope train` would take them: the model's recipe fills what is not
    given, so a run of the experiment trains as `train` with the same flags would."""
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise TypeError(
            _("experiment() got an unexpected keyword argument {name!r}; it takes {names}.").format(
                name=unknown[0], names=", ".join(RUN_OPTIONS)
            )
        )
    given = {"model": model, "seed": seed, "epochs": epochs, "validation_split": validation_split}
    return TrainSettings.of(None, {**given, "patience": patience, **options})


def plan(
    grid: Mapping[str, list],
    model: str | dict,
    seed: int,
    epochs: int,
    validation_split: float,
    patience: int | None,
    options: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every combination of `grid`'s values with its spec, each network (on torch's meta device: shapes, no
    weights) and each run's settings checked, so that a bad value in the last combination is refused before
    the first one trains."""
    base = resolve_spec(model)
    names = list(grid)
    combinations = []
    for combo in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combo))
        spec = vary_spec(base.to_dict(), values)
        plan_network(spec, input_shape, num_classes)
        fit_values = {k: v for k, v in values.items() if k in FIT_VALUES}
        run_settings(model, seed, epochs, validation_split, patience, {**options, **fit_values})
        combinations.append((values, spec))
    return combinations


def experiment(
    data: str | Path | Dataset,
    model: str | dict = "cnn",
    *,
    grid: Mapping[str, Sequence],
    repeats: int = 3,
    seed: int = 0,
    test_size: float = 0.2,
    validation_split: float = 0.2,
    epochs: int = 10,
    patience: int | None = 3,
    out: str | Path | None = None,
    log: TextIO | None = None,
    **options: Any,
) -> ExperimentResult:
    """Train every combination of `grid`'s values `repeats` times (seeds seed, seed + 1, ...) and compare
    their test accuracy, mean ± spread. `data`: a path (loaded with `options` such as class_names) or a
    Dataset; `model`: a preset or spec; `patience`: EarlyStopping on val_loss restoring the best weights
    (None: no early stopping); other `options` are fit settings (batch_size, lr, ...). `log`: a line per run."""
    values_grid = check_grid(grid)
    if not (isinstance(repeats, int) and repeats >= 1):
        raise UserError(_("experiment repeats must be an integer >= 1, got {n!r}.").format(n=repeats))
    load_names = ("class_names", "layout", "image_size", "channels")
    load_options = {k: options.pop(k) for k in load_names if k in options}
    dataset = data if isinstance(data, Dataset) else load(data, **load_options)
    train_set, test_set = dataset.split(test_size=test_size, seed=seed)
    base = resolve_spec(model)
    root = Path(out) if out is not None else Path("experiments") / f"{time.strftime('%Y%m%d-%H%M%S')}-{base.name}"
    if root.exists() and any(root.iterdir()):
        raise UserError(_("experiment folder {path} already exists; choose another out.").format(path=root))
    result = ExperimentResult(values_grid, path=root)
    combinations = plan(
        values_grid, model, seed, epochs, validation_split, patience, options, dataset.input_shape, dataset.num_classes
    )
    for values, spec in combinations:
        fit_values = {k: v for k, v in values.items() if k in FIT_VALUES}
        for r in range(repeats):
            run_seed = seed + r
            network = build(spec, dataset.input_shape, dataset.num_classes, seed=run_seed)
            settings = run_settings(model, run_seed, epochs, validation_split, patience, {**options, **fit_values})
            trained = fit(
                network,
                train_set,
                settings=settings.fit_settings(),
                early_stopping=settings.early_stopping() if patience is not None else None,
                device=settings.device,
                threads=settings.threads,
                verbose=False,
            )
            evaluation = evaluate(trained, test_set)
            label = "-".join(f"{k}{v}" for k, v in values.items())
            config = {
                "data": {
                    **(trained.data.to_dict() if trained.data is not None else {}),
                    "test_split": test_size,
                    "split_seed": seed,
                    "train_size": len(train_set),
                    "test_size": len(test_set),
                },
                "model": {"name": base.name, "source": model if isinstance(model, str) else base.name},
                "experiment": {"values": values, "seed": run_seed},
            }
            path = save_run(trained, root / f"{label}-seed{run_seed}", evaluation, config)
            trial = Trial(
                tuple(values.items()), run_seed, evaluation.accuracy, evaluation.loss, trained.history.best_epoch, path
            )
            result.trials.append(trial)
            if log is not None:
                print(
                    _("{values}, seed {seed}: test accuracy {acc:.4f} ({path})").format(
                        values=", ".join(f"{k}={v}" for k, v in values.items()),
                        seed=run_seed,
                        acc=trial.accuracy,
                        path=path,
                    ),
                    file=log,
                    flush=True,
                )
    if not math.isfinite(sum(t.accuracy for t in result.trials)):
        raise UserError(_("experiment: a run ended with no test accuracy."))
    return result

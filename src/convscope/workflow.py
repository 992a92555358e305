"""`train`: the whole classic workflow in one call, the function behind `convscope train`.

load -> describe -> stratified split -> build -> summary -> fit (validation split, early
stopping) -> evaluate on the test split -> save the run directory atomically.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from ._version import __version__
from .checks import check_random_shift, check_train_settings
from .data import describe, load
from .data.streaming import stream as open_stream
from .errors import UserError
from .evaluation.evaluate import EvaluationResult
from .models.build import build, resolve_spec
from .models.summary import summary
from .report.result import evaluate
from .runs import check_out_writable, default_run_dir, save_run
from .training.early_stopping import EarlyStopping
from .training.fit import fit
from .training.recipes import recipe_for
from .training.trained_model import TrainedModel

if TYPE_CHECKING:
    from .training.distributed import DistContext


@dataclass
class TrainResult:
    trained: TrainedModel
    evaluation: EvaluationResult | None  # None on distributed ranks other than 0, which write nothing
    path: Path | None


def train(
    data: str = "mnist-5k",
    model: str = "cnn",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    monitor: str = "val_loss",
    validation_split: float | None = None,
    test_split: float = 0.2,
    seed: int = 0,
    class_names: str | list[str] | None = None,
    layout: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    recipe: str | None = None,
    schedule: str | None = None,
    label_smoothing: float | None = None,
    random_shift: int | None = None,
    verbose: bool = True,
    stream: TextIO | None = None,
    streaming: bool = False,
    distributed: DistContext | None = None,
    on_epoch: Callable[[dict[str, float]], bool] | None = None,
    threads: int | None = None,
    report: bool = True,
) -> TrainResult:
    """Train `model` on `data` the way the course does and write a run directory.

    Defaults are the course's workflow: 20 epochs at most, EarlyStopping on val_loss with
    patience 3 that restores the best weights, validation_split 0.2, a 0.2 stratified test split.
    Those are the `keras` recipe; `recipe` names another (`fast` is the default for the fast preset),
    and every training setting left at None comes from the recipe (`training/recipes.py`).
    `streaming` reads a .npy file or picture folder batch by batch (`data/streaming.py`);
    `distributed` is this process's rank: only rank 0 prints, evaluates and writes the run, the
    other ranks return with `evaluation` and `path` None.
    `report` writes `report.html` (figures, metrics, feature maps) into the run directory at the end.
    """
    check_out_writable(out)  # first: a bad `out` must not cost a training run
    check_train_settings(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, min_delta=min_delta,
                         validation_split=validation_split, test_split=test_split, seed=seed,
                         label_smoothing=label_smoothing, random_shift=random_shift)
    settings = recipe_for(model, recipe).with_overrides(
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, validation_split=validation_split,
        precision=precision, schedule=schedule, label_smoothing=label_smoothing, random_shift=random_shift,
    )
    stream = stream or sys.stdout
    verbose = verbose and (distributed is None or distributed.is_main)
    say = (lambda text="": print(text, file=stream, flush=True)) if verbose else (lambda text="": None)

    if streaming:
        if layout is not None:
            raise UserError(f"{data}: layout does not apply to streamed data, which is read as (N, H, W[, C]).")
        dataset = open_stream(data, class_names=class_names, image_size=image_size, channels=channels)
    else:
        dataset = load(data, class_names=class_names, layout=layout, image_size=image_size, channels=channels)
    check_random_shift(settings.random_shift, dataset.input_shape)
    say(describe(dataset))
    train_set, test_set = dataset.split(test_size=test_split, seed=seed)
    say(f"split: {len(train_set)} train (of which {settings.validation_split:.0%} validation), {len(test_set)} test\n")

    spec = resolve_spec(model)
    network = build(spec, dataset.input_shape, dataset.num_classes, seed=seed)
    say(str(summary(network)) + "\n")

    stopper = (EarlyStopping(monitor=monitor, min_delta=min_delta, patience=settings.patience, restore_best_weights=True)
               if settings.patience is not None else None)
    trained = fit(
        network, train_set, epochs=settings.epochs, batch_size=settings.batch_size,
        validation_split=settings.validation_split, early_stopping=stopper, lr=settings.lr, seed=seed, device=device,
        precision=settings.precision, schedule=settings.schedule, label_smoothing=settings.label_smoothing,
        random_shift=settings.random_shift, verbose=verbose, stream=stream,
        distributed=distributed, on_epoch=on_epoch, threads=threads,
    )
    if distributed is not None and not distributed.is_main:
        return TrainResult(trained, None, None)
    history = trained.history
    if history.stopped_early or history.weights_epoch != history.epochs_run:
        say(f"restored the weights of epoch {history.weights_epoch} (best {monitor})")

    result = evaluate(trained, test_set)
    say("\n" + result.text())

    config: dict[str, Any] = {
        "data": {
            "source": str(data), "class_names": list(dataset.class_names), "layout": layout,
            "image_size": image_size, "channels": channels, "input_shape": list(dataset.input_shape),
            "test_split": None if dataset.predefined_test is not None else test_split,
            "predefined_split": dataset.predefined_test is not None, "split_seed": seed,
            "train_size": len(train_set), "test_size": len(test_set),
        },
        "model": {"name": spec.name, "source": str(model)},
        "recipe": settings.name,
        "versions": {"convscope": __version__, "torch": torch.__version__},
    }
    path = save_run(trained, out or default_run_dir(spec.name), result, config)
    say(f"\nrun saved to {path}")
    if report:  # after the run is safely on disk: a failing report never costs the trained model
        from .report.html import write_report  # matplotlib (~0.3 s to import) loads only when a report is drawn

        say(f"report: {write_report(path, samples=train_set)}")
    return TrainResult(trained, result, path)

"""`train`: the whole classic workflow in one call, the function behind `convscope train`.

load -> describe -> stratified split -> build -> summary -> fit (validation split, early
stopping) -> evaluate on the test split -> save the run directory atomically.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from . import __version__
from .data import describe, load
from .evaluation.evaluate import EvaluationResult, evaluate
from .models.build import build, resolve_spec
from .models.summary import summary
from .runs import default_run_dir, save_run
from .training.early_stopping import EarlyStopping
from .training.fit import fit
from .training.trained_model import TrainedModel


@dataclass
class TrainResult:
    trained: TrainedModel
    evaluation: EvaluationResult
    path: Path


def train(
    data: str = "mnist-5k",
    model: str = "cnn",
    *,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int = 3,
    min_delta: float = 0.0,
    monitor: str = "val_loss",
    validation_split: float = 0.2,
    test_split: float = 0.2,
    seed: int = 0,
    class_names: str | list[str] | None = None,
    layout: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    precision: str = "fp32",
    verbose: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train `model` on `data` the way the course does and write a run directory.

    Defaults are the course's workflow: 20 epochs at most, EarlyStopping on val_loss with
    patience 3 that restores the best weights, validation_split 0.2, a 0.2 stratified test split.
    """
    stream = stream or sys.stdout
    say = (lambda text="": print(text, file=stream, flush=True)) if verbose else (lambda text="": None)

    dataset = load(data, class_names=class_names, layout=layout, image_size=image_size, channels=channels)
    say(describe(dataset))
    train_set, test_set = dataset.split(test_size=test_split, seed=seed)
    say(f"split: {len(train_set)} train (of which {validation_split:.0%} validation), {len(test_set)} test\n")

    spec = resolve_spec(model)
    network = build(spec, dataset.input_shape, dataset.num_classes, seed=seed)
    say(str(summary(network)) + "\n")

    stopper = EarlyStopping(monitor=monitor, min_delta=min_delta, patience=patience, restore_best_weights=True)
    trained = fit(
        network, train_set, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
        early_stopping=stopper, lr=lr, seed=seed, device=device, precision=precision, verbose=verbose, stream=stream,
    )
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
        "versions": {"convscope": __version__, "torch": torch.__version__},
    }
    path = save_run(trained, out or default_run_dir(spec.name), result, config)
    say(f"\nrun saved to {path}")
    return TrainResult(trained, result, path)

"""The convscope side of the Keras comparison: the same workload, measured the same way.

Runs in its own process, like the peer, and prints one JSON line. `--model cnn` is the course's
CNN trained the Keras way (Adam 1e-3, validation_split 0.2, EarlyStopping patience 3);
`--model fast` is the fast preset with its own recipe (`convscope.training.recipes`).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

import convscope as cs
from convscope.data.scaling import MinMaxScaler
from convscope.training.fit import Tensors, evaluate_tensors, resolve_precision
from convscope.training.settings import TrainSettings
from convscope.training.threads import apply_threads


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", required=True, help="npz with x_train, y_train, x_test, y_test (uint8 images)")
    p.add_argument("--model", default="cnn", help="a preset; its recipe gives every setting not set here")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: convscope's choice, convscope/cpu.py)")
    p.add_argument(
        "--track-test",
        action="store_true",
        help="evaluate on the test set after every epoch, off the clock, for time-to-accuracy",
    )
    p.add_argument("--latency-repeats", type=int, default=200)
    args = p.parse_args(argv)

    # The same settings object `convscope train` builds from its flags: the recipe fills what is not given.
    settings = TrainSettings(
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        precision=args.precision,
        seed=args.seed,
    )
    recipe = settings.recipe_settings()
    data = cs.load(args.split)
    train, test = data.split()  # the npz carries the split, so both sides see the same images
    model = cs.build(args.model, data.input_shape, data.num_classes, seed=args.seed)
    flops = cs.summary(model, print_fn=None).flops

    tracker = _TestTracker(model, train, test, recipe.validation_split, args.track_test)
    started = time.perf_counter()
    trained = cs.fit(
        model,
        train,
        settings=settings.fit_settings(),
        early_stopping=settings.early_stopping(),
        verbose=False,
        callbacks=[tracker],
        threads=args.threads,
    )
    fit_seconds = time.perf_counter() - started - tracker.off_clock
    history = trained.history
    result = cs.evaluate(trained, test)

    x_test = test.images
    predict_plan = apply_threads(args.threads)  # as `convscope predict` and `serve` do: planned once, at the start
    trained.predict_proba(x_test[:1024])  # first call pays one-off setup, as Keras' first predict does
    t = time.perf_counter()
    trained.predict_proba(x_test)
    predict_rate = len(x_test) / (time.perf_counter() - t)
    one = x_test[:1]
    for _ in range(10):
        trained.predict_proba(one)
    latencies = []
    for _ in range(args.latency_repeats):
        t = time.perf_counter()
        trained.predict_proba(one)
        latencies.append(time.perf_counter() - t)

    per_epoch = len(train)  # training + validation images, as on the Keras side
    print(
        json.dumps(
            {
                "side": "convscope",
                "model": args.model,
                "recipe": recipe.to_dict(),
                "precision": resolve_precision(recipe.precision, trained.device),
                "threads": trained.config["threads"],
                "predict_threads": predict_plan.to_dict(),
                "versions": {"convscope": cs.__version__, "torch": torch.__version__},
                "batch_size": recipe.batch_size,
                "epochs_run": history.epochs_run,
                "train_images": int(len(train) * (1 - recipe.validation_split)),
                "images_seen": history.epochs_run * per_epoch,
                "fit_seconds": fit_seconds,
                "images_per_second": history.epochs_run * per_epoch / fit_seconds,
                "test_accuracy": result.accuracy,
                "test_loss": result.loss,
                "epoch_end_seconds": list(np.cumsum([row["seconds"] for row in history.rows])),
                "epoch_test_accuracy": tracker.test_accuracy,
                "predict_images_per_second": {"1024": predict_rate},
                "latency_p50_ms": 1000 * float(np.median(latencies)),
                "flops_per_image": flops,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )
    return 0


class _TestTracker(cs.Callback):
    """A callback for `fit`: test accuracy after each epoch, timed so it can be taken off the clock.

    It scales the test images with the statistics `fit` uses (the training part before the
    validation split) and evaluates without autograd, so the run itself is not changed.
    """

    def __init__(self, model, train, test, validation_split: float, enabled: bool):
        super().__init__()
        self.model, self.enabled, self.off_clock, self.test_accuracy = model, enabled, 0.0, []
        if enabled:
            cut = int(len(train) * (1.0 - validation_split))
            scaler = MinMaxScaler.fit(train.images[:cut])
            self.test = Tensors.of(test, scaler, torch.device("cpu"))

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.enabled:
            t = time.perf_counter()
            self.test_accuracy.append(evaluate_tensors(self.model, self.test)[1])
            self.off_clock += time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())

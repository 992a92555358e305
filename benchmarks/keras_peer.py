"""The peer: the classic Keras notebook, written out as a script (Keras 3 on the CPU, on any backend).

The workflow exactly as the course runs it: reshape to (N, 28, 28, 1), min-max scale with the
training split's minimum and maximum, `to_categorical`, a `Sequential` model, `compile` with
adam and categorical_crossentropy, `fit` with validation_split=0.2 and EarlyStopping,
`evaluate`, `predict`. Nothing is tuned for speed: this is the code a student runs.

Keras 3 takes its backend from the environment variable KERAS_BACKEND (tensorflow, torch or jax); the
harness runs this script once per installed backend, each in its own process, which imports that backend's
framework and not convscope (two frameworks in one process fight over threads). It prints one JSON line with
the measurements the harness reads, the backend and its framework's version among them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def build_cnn(keras, input_shape, num_classes):
    """The course's Sequential CNN: 44,010 parameters on 28x28x1 with 10 classes (the `cnn` preset)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.BatchNormalization(),
            layers.Dropout(0.25),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.BatchNormalization(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", required=True, help="npz with x_train, y_train, x_test, y_test (uint8 images)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--track-test",
        action="store_true",
        help="evaluate on the test set after every epoch, off the clock, for time-to-accuracy",
    )
    p.add_argument("--latency-repeats", type=int, default=200)
    args = p.parse_args(argv)

    import keras

    keras.utils.set_random_seed(args.seed)
    d = np.load(args.split)
    x_train, x_test = d["x_train"], d["x_test"]
    num_classes = int(d["y_train"].max()) + 1
    h, w = x_train.shape[1], x_train.shape[2]
    x_train = x_train.reshape(-1, h, w, 1).astype("float32")
    x_test = x_test.reshape(-1, h, w, 1).astype("float32")
    lo, hi = x_train.min(), x_train.max()
    x_train, x_test = (x_train - lo) / (hi - lo), (x_test - lo) / (hi - lo)
    y_train = keras.utils.to_categorical(d["y_train"], num_classes)
    y_test = keras.utils.to_categorical(d["y_test"], num_classes)

    model = build_cnn(keras, (h, w, 1), num_classes)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

    clock = _EpochClock(keras, x_test, y_test, args.track_test)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.2,
        callbacks=[stopper, clock],
        verbose=0,
    )
    fit_seconds = time.perf_counter() - started - clock.off_clock
    epochs_run = len(history.history["loss"])
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

    # Batch prediction as the notebook calls it (batch 32), and with a large batch for fairness.
    predict = {}
    for batch in (32, 1024):
        model.predict(x_test[:batch], batch_size=batch, verbose=0)  # build the predict function first
        t = time.perf_counter()
        model.predict(x_test, batch_size=batch, verbose=0)
        predict[batch] = len(x_test) / (time.perf_counter() - t)
    one = x_test[:1]
    model.predict(one, verbose=0)
    latencies = []
    for _ in range(args.latency_repeats):
        t = time.perf_counter()
        model.predict(one, verbose=0)
        latencies.append(time.perf_counter() - t)

    backend = keras.backend.backend()
    framework = sys.modules.get(backend)  # the backend's module is already imported by Keras, and named after it
    result = {
        "side": "keras",
        "backend": backend,
        "versions": {"keras": keras.__version__, "backend": backend, backend: getattr(framework, "__version__", None)},
        "batch_size": args.batch_size,
        "epochs_run": epochs_run,
        "images_seen": epochs_run * len(x_train),  # training + validation images, every epoch
        "fit_seconds": fit_seconds,
        "images_per_second": epochs_run * len(x_train) / fit_seconds,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "epoch_end_seconds": clock.ends,
        "epoch_test_accuracy": clock.test_accuracy,
        "predict_images_per_second": {str(k): v for k, v in predict.items()},
        "latency_p50_ms": 1000 * float(np.median(latencies)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))
    return 0


class _EpochClock:
    """Keras callback: when each epoch ended on the training clock; test accuracy taken off the clock."""

    def __new__(cls, keras, x_test, y_test, track_test):
        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.started, self.off_clock, self.ends, self.test_accuracy = time.perf_counter(), 0.0, [], []

            def on_epoch_end(self, epoch, logs=None):
                now = time.perf_counter()
                self.ends.append(now - self.started - self.off_clock)
                if track_test:
                    self.test_accuracy.append(float(self.model.evaluate(x_test, y_test, verbose=0)[1]))
                    self.off_clock += time.perf_counter() - now

        return Clock()


if __name__ == "__main__":
    sys.exit(main())

"""The Keras side of tests/test_keras_interop.py, run in its own process with real Keras 3 on the
torch backend (no TensorFlow), so Keras never shares the test process:

    python tests/keras_side.py build OUT      # fixture models in both formats + Keras' own predictions
    python tests/keras_side.py predict OUT A.keras B.keras ...   # load each, predict OUT/A.npy, OUT/B.npy ...

`build` writes, for every model, NAME.keras and NAME.h5 (Keras 3's legacy HDF5), plus `keras.npz`
(raw images, labels, Keras' probabilities per model) and `keras.json` (Keras' `evaluate` loss and
accuracy, parameter counts). Every model is trained a few steps on pixels / 255 first, so the
BatchNormalization moving statistics are far from their initial 0 and 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np


def models(keras):
    """name -> (model, input shape): the course's three models and two small ones with every layer we read."""
    from keras import layers

    def course_cnn():  # the course's Sequential CNN: 44,010 parameters
        def block():
            return [
                layers.Conv2D(32, 3, padding="same", activation="relu"),
                layers.Conv2D(32, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(2, 2),
                layers.BatchNormalization(),
                layers.Dropout(0.25),
            ]

        return keras.Sequential(
            [keras.Input((28, 28, 1)), *block(), *block(), layers.Flatten(), layers.Dense(10, activation="softmax")],
            name="cnn",
        )

    def course_mlp():  # 271,370 parameters
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Flatten(),
                layers.Dense(256, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(0.2),
                layers.Dense(256, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(0.2),
                layers.Dense(10, activation="softmax"),
            ],
            name="mlp",
        )

    def course_wide():  # the Functional CNN: 662,410 parameters
        x = inputs = keras.Input((28, 28, 1))
        for filters in (128, 64):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
        return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="cnn_wide")

    def small_sequential():  # 'same' with stride 2 on an even size: Keras pads 0 before, 1 after
        return keras.Sequential(
            [
                keras.Input((12, 12, 1)),
                layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
                layers.BatchNormalization(momentum=0.9, epsilon=0.01),
                layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False),
                layers.Activation("tanh"),
                layers.MaxPool2D(pool_size=2, strides=1, padding="same"),
                layers.Dropout(0.3),
                layers.Flatten(),
                layers.Dense(3, activation="softmax"),
            ],
            name="small_sequential",
        )

    def small_functional():  # branches, merges and every other layer of the import list
        inputs = keras.Input((12, 12, 1), name="pixels")
        x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
        a = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="stem")(x)
        b = layers.Conv2D(4, 3, padding="same", name="branch")(a)
        b = layers.BatchNormalization(name="branch_bn")(b)
        b = layers.Activation("relu", name="branch_relu")(b)
        merged = layers.Add(name="skip")([a, b])
        both = layers.Concatenate(name="both")([merged, a])
        pooled = layers.AveragePooling2D(pool_size=2, name="avg")(both)
        gap = layers.GlobalAveragePooling2D(name="gap")(both)
        flat = layers.Reshape((72,), name="flat")(pooled)
        hidden = layers.Dense(8, activation="sigmoid", name="hidden")(layers.Dropout(0.2, name="drop")(flat))
        hidden = layers.BatchNormalization(name="hidden_bn")(hidden)
        joined = layers.Concatenate(name="joined")([hidden, gap])
        logits = layers.Dense(3, name="logits")(joined)
        outputs = layers.Activation("softmax", name="probabilities")(logits)
        return keras.Model(inputs, outputs, name="small_functional")

    def small_flat():  # an MLP on flat pixel vectors, x.reshape(n, -1) in the notebook
        return keras.Sequential(
            [
                keras.Input((144,)),
                layers.Dense(16, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(0.2),
                layers.Dense(3, activation="softmax"),
            ],
            name="small_flat",
        )

    return {
        "cnn": (course_cnn(), 10),
        "mlp": (course_mlp(), 10),
        "cnn_wide": (course_wide(), 10),
        "small_sequential": (small_sequential(), 3),
        "small_functional": (small_functional(), 3),
        "small_flat": (small_flat(), 3),
    }


def refused(keras, out: Path) -> None:
    """Models convscope must refuse, one file each."""
    from keras import layers

    @keras.saving.register_keras_serializable(package="course")
    class Doubler(layers.Layer):
        def call(self, x):
            return 2 * x

    def save(model, name):
        model.save(out / f"{name}.keras")

    save(
        keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                layers.SeparableConv2D(2, 3, name="sep"),
                layers.Flatten(),
                layers.Dense(2, activation="softmax"),
            ]
        ),
        "unsupported",
    )
    save(
        keras.Sequential(
            [keras.Input((8, 8, 1)), Doubler(name="doubler"), layers.Flatten(), layers.Dense(2, activation="softmax")]
        ),
        "custom",
    )
    a, b = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    merged = layers.Flatten()(layers.Add()([a, b]))
    save(keras.Model([a, b], layers.Dense(2, activation="softmax")(merged)), "two_inputs")
    x = keras.Input((8, 8, 1))
    flat = layers.Flatten()(x)
    save(
        keras.Model(
            x,
            [
                layers.Dense(2, activation="softmax", name="first")(flat),
                layers.Dense(3, activation="softmax", name="second")(flat),
            ],
        ),
        "two_outputs",
    )


def build(out: Path) -> None:
    import keras

    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    expected = {}
    facts = {}
    for name, (model, classes) in models(keras).items():
        shape = model.input_shape[1:]
        images = rng.integers(0, 256, (96, *shape)).astype(np.uint8)
        # labels that depend on the image, so training moves the weights somewhere
        labels = (images.reshape(len(images), -1).mean(axis=1) * classes // 256).astype(np.int64) % classes
        labels[:classes] = np.arange(classes)
        x = images.astype(np.float32) / 255.0
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        model.fit(x, labels, epochs=2, batch_size=32, verbose=0)
        model.save(out / f"{name}.keras")
        model.save(out / f"{name}.h5")
        (out / f"{name}.json").write_text(model.to_json())
        loss, accuracy = model.evaluate(x, labels, batch_size=32, verbose=0)
        expected[f"{name}_images"] = images
        expected[f"{name}_labels"] = labels
        expected[f"{name}_probabilities"] = model.predict(x, verbose=0)
        bn = [w for l in model.layers if "BatchNormalization" in type(l).__name__ for w in l.get_weights()[2:]]
        facts[name] = {
            "loss": float(loss),
            "accuracy": float(accuracy),
            "params": int(model.count_params()),
            "bn_moving_stats_moved": bool(bn)
            and all(np.abs(w - (0 if i % 2 == 0 else 1)).max() > 1e-3 for i, w in enumerate(bn)),
        }
    np.savez(out / "keras.npz", **expected)
    (out / "keras.json").write_text(json.dumps(facts, indent=1))
    refused(keras, out)


def predict(out: Path, files: list[str]) -> None:
    import keras

    results = {}
    for f in files:
        images = np.load(out / f"{Path(f).stem}.npy").astype(np.float32)
        results[Path(f).stem] = np.asarray(keras.saving.load_model(f).predict(images, verbose=0))
    np.savez(out / "predictions.npz", **results)


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "build":
        build(where)
    else:
        predict(where, sys.argv[3:])

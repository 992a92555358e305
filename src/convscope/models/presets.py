"""The architectures of the classic course, as specs (Keras parameter counts on 28x28x1, 10 classes).

- `mlp`       271,370: Flatten, [Dense 256 relu, BatchNorm, Dropout 0.2] x 2, Dense softmax.
- `cnn`        44,010: [Conv2D 32 3x3 same relu x 2, MaxPool 2x2, BatchNorm, Dropout 0.25] x 2, Flatten, Dense softmax.
- `cnn-wide`  662,410: Conv2D 128 x 2, MaxPool, Conv2D 64 x 2, MaxPool, Flatten, Dense 128 relu, Dense softmax;
                       written as a Functional graph, the way the course builds it.
- `fast`      29,402: [Conv2D 3x3 same (no bias), BatchNorm, ReLU, MaxPool] x 3 with 16, 32, 64 filters,
                       Flatten, Dense softmax; 3.9 MFLOPs per 28x28 image, 6x fewer than `cnn`. Made
                       to be trained with the `fast` recipe (`training/recipes.py`): over 98.5% on
                       MNIST-sized digits in seconds on two CPU cores.
"""

from __future__ import annotations

from typing import Any


def _conv(filters: int, **extra: Any) -> dict[str, Any]:
    return {"type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same", "activation": "relu", **extra}


_SOFTMAX = {"type": "Dense", "units": "num_classes", "activation": "softmax"}

MLP: dict[str, Any] = {
    "name": "mlp",
    "layers": [
        {"type": "Flatten"},
        {"type": "Dense", "units": 256, "activation": "relu"},
        {"type": "BatchNormalization"},
        {"type": "Dropout", "rate": 0.2},
        {"type": "Dense", "units": 256, "activation": "relu"},
        {"type": "BatchNormalization"},
        {"type": "Dropout", "rate": 0.2},
        _SOFTMAX,
    ],
}

_CNN_BLOCK = [
    _conv(32),
    _conv(32),
    {"type": "MaxPool2D", "pool_size": 2, "strides": 2},
    {"type": "BatchNormalization"},
    {"type": "Dropout", "rate": 0.25},
]
CNN: dict[str, Any] = {"name": "cnn", "layers": [*_CNN_BLOCK, *_CNN_BLOCK, {"type": "Flatten"}, _SOFTMAX]}

CNN_WIDE: dict[str, Any] = {
    "name": "cnn-wide",
    "layers": [
        _conv(128, name="conv1", inputs="input"),
        _conv(128, name="conv2", inputs="conv1"),
        {"name": "pool1", "type": "MaxPool2D", "inputs": "conv2"},
        _conv(64, name="conv3", inputs="pool1"),
        _conv(64, name="conv4", inputs="conv3"),
        {"name": "pool2", "type": "MaxPool2D", "inputs": "conv4"},
        {"name": "flatten", "type": "Flatten", "inputs": "pool2"},
        {"name": "hidden", "type": "Dense", "units": 128, "activation": "relu", "inputs": "flatten"},
        {"name": "probabilities", **_SOFTMAX, "inputs": "hidden"},
    ],
    "output": "probabilities",
}


def _fast_block(filters: int) -> list[dict[str, Any]]:
    # BatchNorm right after the bias-free conv; momentum 0.9 (Keras' default is 0.99) so the moving
    # statistics keep up with weights that change fast over a few hundred steps of a short run.
    return [
        {"type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same", "use_bias": False},
        {"type": "BatchNormalization", "momentum": 0.9},
        {"type": "Activation", "activation": "relu"},
        {"type": "MaxPool2D", "pool_size": 2},
    ]


FAST: dict[str, Any] = {
    "name": "fast",
    "layers": [*_fast_block(16), *_fast_block(32), *_fast_block(64), {"type": "Flatten"}, _SOFTMAX],
}

PRESETS: dict[str, dict[str, Any]] = {"mlp": MLP, "cnn": CNN, "cnn-wide": CNN_WIDE, "fast": FAST}

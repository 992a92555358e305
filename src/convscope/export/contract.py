"""The preprocessing contract of an exported model: what a consumer must do to an image, and what comes out.

The server's auto-invert uses the same background (`run_background`), so a drawing the server inverts is one
the contract tells an exported file's consumer to invert."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..data.background import Background, training_background
from ..runs import has_test_set, load_test_set
from ..training.trained_model import TrainedModel

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"


def run_background(trained: TrainedModel) -> Background | None:
    """The background of the run's saved test images, which auto-invert compares uploads with; None without them."""
    if trained.path is None or not has_test_set(trained.path):
        return None
    images = load_test_set(trained.path)[0].images
    return training_background(images, (trained.scaler.minimum, trained.scaler.maximum))


def contract(trained: TrainedModel) -> dict[str, Any]:
    """What a consumer of the exported file must do to an image, and what comes out."""
    h, w, c = trained.input_shape
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    background = run_background(trained)
    return {
        "producer": f"convscope {__version__}",
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", h, w, c],
            "layout": "NHWC (batch, height, width, channels)",
            "color": "grayscale (1 channel)" if c == 1 else "RGB (3 channels)",
            "resize": f"to {h} x {w} with Lanczos, aspect ratio not kept (PIL Image.resize(..., LANCZOS))",
            "values": f"raw pixels in the training data's units ({lo:g}..{hi:g}); do not scale them yourself",
            "background": background,
            "invert": (
                f"the model was trained on {background} backgrounds: invert images on the other background "
                f"(x -> {lo:g} + {hi:g} - x) first"
                if background
                else "no single background in the training data: never invert"
            ),
        },
        "inside_the_graph": f"x = (pixels - {lo:g}) / ({hi:g} - {lo:g}); NHWC -> NCHW; network; softmax",
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(trained.class_names)],
                   "meaning": "class probabilities in class order; each row sums to 1"},
        "class_names": list(trained.class_names),
        "scaler": {"minimum": lo, "maximum": hi},
    }

"""The preprocessing contract of an exported model: what a consumer must do to an image, and what comes out.

One contract for every format (ONNX, TorchScript, Keras): every exported file takes raw pixels and holds the
scaling and the softmax, so a consumer's steps are the same whichever runtime loads it. It is the run's learned
input contract (`convscope.data.framing`), the one the server and `convscope predict` apply: polarity and framing
in words another runtime can follow, and as numbers (`input_contract`)."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..data.framing import InputContract, unframed
from ..training.trained_model import TrainedModel

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "keras": ".keras"}
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
# How each format's file is loaded; the Keras model keeps the run's own name for its output layer
_LOAD = {
    "onnx": "onnxruntime.InferenceSession(path) (any language with an ONNX runtime)",
    "torchscript": "torch.jit.load(path)",
    "keras": "keras.saving.load_model(path) (Keras 3, any backend)",
}


def run_contract(trained: TrainedModel) -> InputContract:
    """The run's learned input contract; a model put together by hand, without one, is resized whole."""
    if trained.input_contract is not None:
        return trained.input_contract
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    return unframed((lo, hi), "this model carries no input contract: images are resized whole and never inverted")


def contract(trained: TrainedModel, format: str = "onnx") -> dict[str, Any]:
    """What a consumer of the file exported as `format` must do to an image, and what comes out."""
    h, w, c = trained.input_shape
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    terms = run_contract(trained)
    background = terms.background
    scaling = f"x = (pixels - {lo:g}) / ({hi:g} - {lo:g})"
    output: dict[str, Any] = {"name": OUTPUT_NAME} if format != "keras" else {}
    return {
        "producer": f"convscope {__version__}",
        "format": format,
        "load": _LOAD[format],
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", h, w, c],
            "layout": "NHWC (batch, height, width, channels)",
            "color": "grayscale (1 channel)" if c == 1 else "RGB (3 channels)",
            "resize": f"frame first (see 'framing'), then to {h} x {w} with Lanczos (PIL Image.resize(..., LANCZOS))",
            "values": (
                f"raw pixels in the training data's units ({lo:g}..{hi:g}) as float32 (cast uint8 images with "
                "numpy's astype(np.float32)); do not scale them yourself"
            ),
            "background": background,
            "polarity": terms.polarity,
            "invert": (
                f"the model was trained on {background} backgrounds: invert images on the other background "
                f"(x -> {lo:g} + {hi:g} - x) first"
                if background
                else "no single background in the training data: never invert"
            ),
            "framing": framing_steps(terms),
        },
        "inside_the_graph": (
            f"Rescaling: {scaling}; the network; softmax"
            if format == "keras"
            else f"{scaling}; NHWC -> NCHW; network; softmax"
        ),
        "output": {
            **output,
            "dtype": "float32",
            "shape": ["batch", len(trained.class_names)],
            "meaning": "class probabilities in class order; each row sums to 1",
        },
        "class_names": list(trained.class_names),
        "scaler": {"minimum": lo, "maximum": hi},
        "input_contract": terms.to_dict(),
    }


def framing_steps(terms: InputContract) -> str:
    """The learned framing in words another runtime can follow (`convscope.data.framing.frame` does exactly this)."""
    ink = (
        f"ink: pixels past {terms.threshold:.0%} of the way from the image's background level (its most frequent "
        f"level below mid-grey, after inversion to the training polarity) to its ink level (99.9th percentile)"
    )
    if terms.framing == "fill":
        return f"'fill': crop to the ink's bounding box and stretch it to the whole frame; {ink}"
    if terms.framing == "fit":
        centre = "centre of mass" if terms.centre == "mass" else "box centre"
        return (
            f"'fit': crop to the ink's bounding box, scale it (aspect kept) so its longest side is "
            f"{terms.fraction:.3f} of the frame, and place it so its {centre} is in the middle of the frame, "
            f"padding with the image's background; {ink}"
        )
    return "'none': resize the whole image, no cropping"

"""Export a trained run for use without convscope: `export(trained, path, format)`, one entry point for
ONNX (onnxruntime, any language), TorchScript and Keras 3 (`keras.py`).

The exported model takes raw pixels and returns probabilities: the stored min-max scaling,
the NHWC -> NCHW transpose and the softmax are inside it, so a consumer only has to decode
and resize its image the way the contract says (`contract.py`, one for every format). The contract
travels with the file (ONNX metadata_props / TorchScript extra file `convscope.json` / the Keras
archive's metadata.json) and is printed by `convscope export`: it names the polarity and the
framing learned at fit time, in words and as numbers.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.scaling import MinMaxScaler
from ..errors import UserError
from ..i18n import _
from ..training.trained_model import TrainedModel
from .contract import FORMATS, INPUT_NAME, OUTPUT_NAME, contract
from .files import write_file_atomically


class RawPixelClassifier(nn.Module):
    """Raw (N, H, W, C) pixels in the training data's units -> (N, K) class probabilities."""

    def __init__(self, network: nn.Module, scaler: MinMaxScaler):
        super().__init__()
        self.network = network
        self.scaler = scaler

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # The scaler's own transform, so the exported arithmetic is the one predict_proba uses.
        return torch.softmax(self.network(self.scaler.transform(image)).float(), dim=1)


def export(trained: TrainedModel, out: str | Path, format: str = "onnx") -> Path:
    """Write `trained` as `format` ('onnx', 'torchscript' or 'keras') to `out`, atomically."""
    if format not in FORMATS:
        raise UserError(
            _("unknown export format {format!r}; choose one of {formats}.").format(
                format=format, formats=", ".join(FORMATS)
            )
        )
    out = Path(out)
    if out.is_dir():
        raise UserError(
            _("{out} is a directory; give a file name such as {example}.").format(
                out=out, example=out / ("model" + FORMATS[format])
            )
        )
    if format == "keras":  # a file written from the spec and the weights, no tracing
        # imported here: h5py and the Keras layer table are not needed by the server's ONNX engine, which imports this module
        from .keras import write_keras

        write_keras(trained, out)
        return out
    wrapper = RawPixelClassifier(trained.model, trained.scaler).to("cpu").eval()
    h, w, c = trained.input_shape
    # Two images, not one: an example batch of 1 would let the exporter fix the batch size to 1.
    example = torch.rand(2, h, w, c) * (trained.scaler.maximum - trained.scaler.minimum) + trained.scaler.minimum
    writer = _write_onnx if format == "onnx" else _write_torchscript
    try:
        write_file_atomically(out, lambda tmp: writer(wrapper, example, contract(trained), tmp))
    finally:
        trained.model.to(trained.device)
    return out


def _write_onnx(wrapper: nn.Module, example: torch.Tensor, terms: dict[str, Any], path: Path) -> None:
    import onnx

    # The exporter logs a line per missing optional op library (torchvision) and warns about its
    # own internals; none of it concerns the user's model.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    model = onnx.load(str(path))
    model.doc_string = "convscope classifier. " + terms["inside_the_graph"] + ". Contract: metadata 'convscope'."
    for key, value in {"convscope": json.dumps(terms), "class_names": json.dumps(terms["class_names"])}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_torchscript(wrapper: nn.Module, example: torch.Tensor, terms: dict[str, Any], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is in maintenance mode and says so on every call
        traced = torch.jit.trace(wrapper, example, check_trace=True)
        torch.jit.save(traced, str(path), _extra_files={"convscope.json": json.dumps(terms)})


def onnx_probabilities(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Run an exported ONNX file with onnxruntime on raw (N, H, W, C) images: what a consumer would do."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(images, dtype=np.float32)})[0]

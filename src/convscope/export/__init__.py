"""Export a trained run for use without convscope: ONNX (onnxruntime, any language), TorchScript or Keras 3.

One entry point, `export(trained, path, format)`, and one preprocessing contract for every format (`contract`).
Its own package, below the server: ONNX needs the `export` extra (onnx, onnxruntime, onnxscript), never the
`serve` one, and the Keras file needs neither Keras nor TensorFlow. onnx and onnxruntime are imported only by
the functions that use them."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .contract import FORMATS, contract, run_contract
    from .writers import export, onnx_probabilities

attach(
    __name__,
    {
        "FORMATS": ".contract",
        "contract": ".contract",
        "run_contract": ".contract",
        "export": ".writers",
        "onnx_probabilities": ".writers",
    },
)

__all__ = ["FORMATS", "contract", "export", "onnx_probabilities", "run_contract"]

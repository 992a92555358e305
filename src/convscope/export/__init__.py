"""Export a trained run for use without convscope: ONNX (onnxruntime, any language) or TorchScript.

Its own package, below the server: exporting needs the `export` extra (onnx, onnxruntime, onnxscript), never
the `serve` one. onnx and onnxruntime are imported only by the functions that use them."""

from .contract import FORMATS, contract, run_contract
from .writers import export, onnx_probabilities

__all__ = ["FORMATS", "contract", "export", "onnx_probabilities", "run_contract"]

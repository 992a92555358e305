"""Export a trained run for use without convscope: ONNX (onnxruntime, any language) or TorchScript.

Its own package, below the server: exporting needs the `export` extra (onnx, onnxruntime, onnxscript), never
the `serve` one. onnx and onnxruntime are imported only by the functions that use them."""

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

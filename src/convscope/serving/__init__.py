"""Serving a trained run: the HTTP API with its drawing page (`app`), and ONNX/TorchScript export (`export`).

The web stack (FastAPI, uvicorn) comes with the `serve` extra and is imported only here, so the
rest of convscope works without it.
"""

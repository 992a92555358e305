"""Serving a trained run: the HTTP API with its drawing page (`app`, put together from modules named by
their job) and running it in one process or several (`server`).

The web stack (FastAPI, uvicorn) comes with the `serve` extra and is imported only here, so the
rest of convscope works without it.
"""

"""The FastAPI application for one run: the parts put together.

Each job has its module: the routes (`routes.py`), their shared query options (`options.py`), reading request
bodies (`requests.py`) within the limits (`limits.py`), errors as JSON (`error_handlers.py`), the offline API
docs (`docs.py`) and the drawing page (`page.py`). Every mistake a client can make is answered with a 4xx JSON
body `{"error": "one sentence"}`; a 500 would be a bug.

The routes hand one job per image to the app's `Batcher`, whose worker decodes, preprocesses and predicts
whole batches: a process of its own on 2 cores or more, a thread otherwise (`worker_process.py`,
`--batch-worker`); /metrics tells what it did. How a server runs (one process or several) is `server.py`'s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .._version import __version__
from ..cpu import affinity_size
from ..training.trained_model import TrainedModel
from . import worker_process
from .batcher import Batcher, BatchPolicy, InThread, Runner
from .docs import add_docs
from .error_handlers import add_error_handlers
from .limits import BodyLimit
from .metrics import MetricsMiddleware, ServerMetrics
from .page import STATIC
from .requests import RequestLanguage
from .routes import PATHS, add_routes
from .service import ServedModel, ServerSettings, load_served, run_jobs


def create_app(run: str | Path | TrainedModel, settings: ServerSettings | None = None) -> FastAPI:
    """The app for one run directory (or an in-memory trained model)."""
    served = load_served(run, settings)
    metrics = ServerMetrics(set(PATHS))
    where = worker_process.choose(served.settings.batch_worker, served.trained.path, affinity_size())
    served.info["batch_worker"] = where
    batcher = _batcher(served, where, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()  # a worker process loads its model now, not during the first request
        with gc_frozen():
            yield
        await batcher.close()

    app = FastAPI(
        title=f"convscope: {served.info['name']}",
        version=__version__,
        description="Predict with a trained convscope run. The drawing page is at `/`.",
        docs_url=None,  # served by docs.py from local files: the default page loads Swagger UI from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.served, app.state.batcher, app.state.metrics = served, batcher, metrics  # for tests and introspection
    add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=served.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # it also counts the 413s of BodyLimit
    app.add_middleware(RequestLanguage)  # outermost: BodyLimit's own answers speak the request's language too
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_docs(app)
    add_routes(app, served, batcher, metrics)
    return app


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Leave what exists at startup (torch, FastAPI, the model: about 200,000 objects) out of garbage collections.

    Python's full collections walk every tracked object; under load one came every few seconds and
    stopped the server for 90-140 ms, which made most of /health's and /predict's p99 (BENCHMARKS.md,
    "Serving at the model's speed"). Frozen objects are skipped until the server stops.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _batcher(served: ServedModel, where: str, metrics: ServerMetrics) -> Batcher:
    """The batcher, with its worker in a process of its own or in a thread (`where`; worker_process.py)."""
    import torch

    runner: Runner
    if where == "thread":
        runner = InThread(partial(run_jobs, served=served))
    else:
        assert served.trained.path is not None  # choose() gives a process only for a run on disk
        runner = worker_process.InProcess(
            Path(served.trained.path), served.settings, served.engine.name, torch.get_num_threads()
        )
    return Batcher(
        runner,
        BatchPolicy(served.settings.max_batch_size, served.settings.max_batch_delay_ms / 1000),
        on_batch=metrics.observe_batch,
        on_queue=metrics.observe_queue,
    )

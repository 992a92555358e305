"""The routes: each reads its request (`requests.py`), hands the work on (the batcher, `service.py`) and
answers with JSON; a mistake raises and `error_handlers.py` answers it.

/predict and /predict/batch read their bodies on the event loop and hand one job per image to the
app's `Batcher`, whose worker decodes, preprocesses and predicts whole batches (`service.run_jobs`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..i18n import language, normalize
from . import schemas
from .batcher import Batcher
from .error_handlers import ERROR_RESPONSES
from .metrics import CONTENT_TYPE, ServerMetrics
from .options import ImageQuery
from .page import drawing_page
from .requests import BATCH_BODY, ONE_IMAGE_BODY, batch_payloads, one_payload
from .service import ServedModel, check_batch_length, feature_map_tiles, one_of_many

# The paths /metrics counts by name (docs.py adds /docs); any other counts as "other", so labels stay few.
PATHS = frozenset({"/", "/health", "/model", "/predict", "/predict/batch", "/feature-maps", "/metrics", "/docs"})


def add_routes(app: FastAPI, served: ServedModel, batcher: Batcher, metrics: ServerMetrics) -> None:
    """The API of one served model, with its batcher and its metrics, in the order /docs lists it.

    Declared on the app itself, as docs.py and error_handlers.py declare theirs: these are all the routes
    there are, and FastAPI matches an included APIRouter's routes in a second step of its own.
    """
    add_model_routes(app, served)
    add_predict_routes(app, served, batcher)
    add_metrics_route(app, metrics)


def add_model_routes(app: FastAPI, served: ServedModel) -> None:
    """The drawing page, and what the model is."""
    pages: dict[str, str] = {}  # one page per language, built on its first request

    @app.get("/", include_in_schema=False)
    def page(lang: str | None = None) -> HTMLResponse:
        """The drawing page in `?lang=` if given and known, else the request's language (Accept-Language)."""
        lang = normalize(lang) or language()
        if lang not in pages:
            pages[lang] = drawing_page(lang, " ".join([served.info["name"], *served.trained.class_names]))
        return HTMLResponse(pages[lang])

    @app.get("/health", response_model=schemas.Health, tags=["model"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=schemas.ModelInfo, tags=["model"])
    def model() -> dict[str, Any]:
        """Classes, input shape, parameter count, the layer summary, test accuracy and preprocessing."""
        return served.info


def add_predict_routes(app: FastAPI, served: ServedModel, batcher: Batcher) -> None:
    """Images in, predictions out: one, several, or one with what every layer computed."""
    post_images = partial(app.post, responses=ERROR_RESPONSES, tags=["predict"])

    @post_images("/predict", response_model=schemas.Prediction, openapi_extra=ONE_IMAGE_BODY)
    async def predict_one(request: Request, options: ImageQuery) -> Response:
        """The class of one image: label, probabilities in class order, and the top-k."""
        with batcher.reading():
            payload = await one_payload(request, served.settings)
        # A JSONResponse skips re-validating what service.prediction built (the schema still documents it).
        return JSONResponse(await batcher.submit(options.job(payload)))

    @post_images("/predict/batch", response_model=schemas.BatchPrediction, openapi_extra=BATCH_BODY)
    async def predict_many(request: Request, options: ImageQuery) -> Response:
        """Several images in one call, through the same batcher as /predict; one bad image fails the call and is named."""
        with batcher.reading():
            payloads = await batch_payloads(request, served.settings)
        check_batch_length(len(payloads), served)
        outcomes = await batcher.submit_all([options.job(payload) for payload in payloads])
        return JSONResponse({"predictions": one_of_many(outcomes)})

    @post_images("/feature-maps", response_model=schemas.FeatureMaps, openapi_extra=ONE_IMAGE_BODY)
    async def feature_maps(
        request: Request,
        options: ImageQuery,
        channels: int = Query(
            served.settings.max_feature_channels, ge=1, description="tiles per layer (the server's maximum applies)"
        ),
    ) -> dict[str, Any]:
        """What every Conv and Pool layer computed for one image, one PNG tile per channel."""
        job = options.job(await one_payload(request, served.settings))
        return await run_in_threadpool(
            feature_map_tiles, job.payload, served, job.invert, job.top_k, channels, job.framing
        )


def add_metrics_route(app: FastAPI, metrics: ServerMetrics) -> None:
    """What the server did, for Prometheus to scrape."""

    @app.get(
        "/metrics",
        tags=["model"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}, "description": "Prometheus text format"}},
    )
    async def prometheus_metrics() -> Response:
        """Requests and errors by route and status, latencies, batch sizes and why batches were sent, queue depth."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

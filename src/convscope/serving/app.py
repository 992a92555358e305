"""The FastAPI application: HTTP in, `service` functions, JSON out.

Images arrive as multipart uploads, raw image bodies or JSON pixels; options (`invert`,
`framing`, `top_k`) are query parameters for all three. Every mistake a client can make is answered with a
4xx JSON body `{"error": "one sentence"}`; a 500 would be a bug.

/predict and /predict/batch read their bodies on the event loop and hand one job per image to the
app's `Batcher`, whose worker decodes, preprocesses and predicts whole batches (`service.run_jobs`):
a process of its own on 2 cores or more, a thread otherwise (`worker_process.py`, `--batch-worker`);
/metrics tells what it did.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import i18n
from .._version import __version__
from ..data.framing import parse_framing, parse_invert
from ..errors import UserError
from ..i18n import _, from_accept_language, language, normalize, speaking
from ..presentation.fonts import with_font_face
from ..training.threads import affinity_size
from ..training.trained_model import TrainedModel
from . import schemas, worker_process
from .batcher import Batcher, BatchPolicy, InThread, Runner, WorkerStopped
from .errors import PayloadTooLarge, RequestError, UnsupportedMediaType
from .limits import parse_json, read_files
from .metrics import CONTENT_TYPE, MetricsMiddleware, ServerMetrics
from .service import (
    Job,
    Payload,
    ServedModel,
    ServerSettings,
    check_batch_length,
    feature_map_tiles,
    load_served,
    one_of_many,
    run_jobs,
)

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("convscope.serving")

Invert = Literal["auto", "true", "false"]
INVERT_HELP = (
    "auto: invert when the image's background is the opposite of the training images' (dark-on-light drawings)"
)
FramingChoice = Literal["auto", "fill", "fit", "none"]
FRAMING_HELP = "auto: crop and frame the ink as the training images are framed (GET /model, preprocessing.contract)"
TOP_K_HELP = "how many classes to list in `top`"

_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
_ONE_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "one image: a multipart file field `image`, a raw PNG/JPEG/BMP/GIF body, or JSON pixels "
        "in the training data's units, shaped like the model input ((H, W) for grayscale, or (H, W, C)).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
            "image/png": _IMAGE_BODY,
            "image/jpeg": _IMAGE_BODY,
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"pixels": {"type": "array", "items": {}}},
                    "required": ["pixels"],
                },
            },
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": 'several images: multipart file fields `images` (repeated), or JSON {"images": [pixels, ...]}.',
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["images"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"images": {"type": "array", "items": {}}},
                    "required": ["images"],
                },
            },
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Error, "description": text}
    for code, text in [
        (400, "not an image, a truncated image, an empty body, invalid JSON"),
        (413, "the body, an image or a batch is over the server's limit"),
        (415, "a content type the endpoint does not take"),
        (422, "JSON pixels of the wrong shape, type or range; a bad query parameter"),
    ]
}


class BodyTooLarge(PayloadTooLarge):
    pass


def page_texts() -> dict[str, str]:
    """The sentences app.js writes into the page, in the language in force; `{fields}` are filled by the script."""
    return {
        "yourDrawing": _("your drawing"),
        "yourDrawingLive": _("your drawing (live)"),
        "upload": _("upload: {name}"),
        "sure": _("{percent} sure"),
        "modelInput": _("model input · framing {framing}"),
        "firstChannels": _("first {count} channels"),
        "channel": _("{layer} channel {index}: {low} .. {high}"),
        "nothingYet": _("nothing yet"),
        "drawOrUpload": _("draw or upload an image to see them"),
        "notAvailable": _("n/a"),
    }


@cache
def _page_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env.get_template("index.html")


def drawing_page(lang: str, shown: str) -> str:
    """The drawing page in `lang`, carrying the glyphs of its own text, its script's and `shown` (the model's
    name and class names, which the script writes in later), so Hangul shows with no Korean font installed."""
    with speaking(lang) as code:
        texts = page_texts()
        html = _page_template().render(lang=code, texts=texts)
    return with_font_face(html, also="".join(texts.values()) + shown)


def create_app(run: str | Path | TrainedModel, settings: ServerSettings | None = None) -> FastAPI:
    """The app for one run directory (or an in-memory trained model)."""
    served = load_served(run, settings)
    metrics = ServerMetrics(
        {"/", "/health", "/model", "/predict", "/predict/batch", "/feature-maps", "/metrics", "/docs"}
    )
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
        docs_url=None,  # served below from local files: the default page loads Swagger UI from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.served, app.state.batcher, app.state.metrics = served, batcher, metrics  # for tests and introspection
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=served.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # it also counts the 413s of BodyLimit
    app.add_middleware(RequestLanguage)  # outermost: BodyLimit's own answers speak the request's language too
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_docs(app)

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

    @app.post(
        "/predict",
        response_model=schemas.Prediction,
        responses=_ERRORS,
        openapi_extra=_ONE_IMAGE_BODY,
        tags=["predict"],
    )
    async def predict_one(
        request: Request,
        invert: Invert = Query("auto", description=INVERT_HELP),
        top_k: int = Query(3, ge=1, description=TOP_K_HELP),
        framing: FramingChoice = Query("auto", description=FRAMING_HELP),
    ) -> Response:
        """The class of one image: label, probabilities in class order, and the top-k."""
        with batcher.reading():
            payload = await _one_payload(request, served)
        # A JSONResponse skips re-validating what service.prediction built (the schema still documents it).
        job = Job(payload, parse_invert(invert), top_k, parse_framing(framing), language())
        return JSONResponse(await batcher.submit(job))

    @app.post(
        "/predict/batch",
        response_model=schemas.BatchPrediction,
        responses=_ERRORS,
        openapi_extra=_BATCH_BODY,
        tags=["predict"],
    )
    async def predict_many(
        request: Request,
        invert: Invert = Query("auto", description=INVERT_HELP),
        top_k: int = Query(3, ge=1, description=TOP_K_HELP),
        framing: FramingChoice = Query("auto", description=FRAMING_HELP),
    ) -> Response:
        """Several images in one call, through the same batcher as /predict; one bad image fails the call and is named."""
        with batcher.reading():
            payloads = await _batch_payloads(request, served)
        check_batch_length(len(payloads), served)
        outcomes = await batcher.submit_all(
            [Job(payload, parse_invert(invert), top_k, parse_framing(framing), language()) for payload in payloads]
        )
        return JSONResponse({"predictions": one_of_many(outcomes)})

    @app.post(
        "/feature-maps",
        response_model=schemas.FeatureMaps,
        responses=_ERRORS,
        openapi_extra=_ONE_IMAGE_BODY,
        tags=["predict"],
    )
    async def feature_maps(
        request: Request,
        invert: Invert = Query("auto", description=INVERT_HELP),
        top_k: int = Query(3, ge=1, description=TOP_K_HELP),
        channels: int = Query(
            served.settings.max_feature_channels, ge=1, description="tiles per layer (the server's maximum applies)"
        ),
        framing: FramingChoice = Query("auto", description=FRAMING_HELP),
    ) -> dict[str, Any]:
        """What every Conv and Pool layer computed for one image, one PNG tile per channel."""
        payload = await _one_payload(request, served)
        return await run_in_threadpool(
            feature_map_tiles, payload, served, parse_invert(invert), top_k, channels, parse_framing(framing)
        )

    @app.get(
        "/metrics",
        tags=["model"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}, "description": "Prometheus text format"}},
    )
    async def prometheus_metrics() -> Response:
        """Requests and errors by route and status, latencies, batch sizes and why batches were sent, queue depth."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

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


# --- request bodies ---------------------------------------------------------------------------


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _one_payload(request: Request, served: ServedModel) -> Payload:
    kind = _media_type(request)
    if kind == "multipart/form-data":
        files = await read_files(request, served.settings.max_batch)
        if len(files) != 1:
            raise RequestError(
                _("send exactly one image file (field 'image'), got {count}; use /predict/batch for several.").format(
                    count=len(files)
                )
            )
        return files[0]
    if kind == "application/json":
        body = _json_object(await _body(request), "pixels")
        return body["pixels"]
    if kind in ("", "application/octet-stream") or kind.startswith("image/"):
        return await _body(request)
    raise UnsupportedMediaType(
        _(
            "content type {kind!r} is not taken here; send multipart/form-data (field 'image'), an image/* body, or application/json with 'pixels'."
        ).format(kind=kind)
    )


async def _batch_payloads(request: Request, served: ServedModel) -> list[Payload]:
    kind = _media_type(request)
    if kind == "multipart/form-data":
        files = await read_files(request, served.settings.max_batch)
        if not files:
            raise RequestError(_("the form has no image files; send them in repeated 'images' fields."))
        return files
    if kind == "application/json":
        images = _json_object(await _body(request), "images")["images"]
        if not isinstance(images, list) or not images:
            raise RequestError(_("'images' must be a non-empty list of pixel arrays."))
        return images
    raise UnsupportedMediaType(
        _(
            "content type {kind!r} is not taken by /predict/batch; send multipart/form-data files 'images' or application/json with 'images'."
        ).format(kind=kind)
    )


async def _body(request: Request) -> bytes:
    body = await request.body()
    if not body:
        raise RequestError(
            _("the request body is empty; send an image (multipart field 'image', an image/* body, or JSON pixels).")
        )
    return body


def _json_object(body: bytes, key: str) -> dict[str, Any]:
    value = parse_json(body)  # limits.py: depth-limited
    if not isinstance(value, dict) or key not in value:
        raise RequestError(_("the JSON body must be an object with a '{key}' field.").format(key=key))
    return value


class RequestLanguage:
    """Answers each request in the language its `Accept-Language` prefers (quality values; `i18n.from_accept_language`),
    else the server's own (`--lang`, CONVSCOPE_LANG, the locale). The language is a ContextVar set for this request's
    task alone, so concurrent requests in different languages never see each other's; jobs carry it to the batch
    worker (`Job.language`)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1")
        with speaking(from_accept_language(header) or language()):
            return await self.app(scope, receive, send)


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413: at once from Content-Length, or while streaming."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.strip().isdigit():  # '-1', '1e9': h11 refuses these before us
            response = JSONResponse(
                {
                    "error": _("Content-Length must be a number of bytes, got {value!r}.").format(
                        value=declared[:20].decode("latin-1")
                    )
                },
                status_code=400,
            )
            return await response(scope, receive, send)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"error": self._message(int(declared))}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self._message(received, at_least=True))
            return message

        return await self.app(scope, counting_receive, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        message = (
            _(
                "the request body is over {size:,} bytes; this server accepts at most {limit:,} (start it with a larger --max-upload-mb)."
            )
            if at_least
            else _(
                "the request body is {size:,} bytes; this server accepts at most {limit:,} (start it with a larger --max-upload-mb)."
            )
        )
        return message.format(size=size, limit=self.max_bytes)


# --- errors as data ---------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 400))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = " ".join(str(part) for part in first.get("loc", ()))
        # pydantic's own explanation stays in English; the sentence around it is ours.
        message = _("{where}: {explanation}.").format(where=where, explanation=first.get("msg", "invalid"))
        return JSONResponse({"error": message.strip()}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = _("there is no {path}; the API is listed at /docs.").format(path=request.url.path)
        elif exc.status_code == 405:
            message = _("{method} is not allowed on {path}; see /docs.").format(
                method=request.method, path=request.url.path
            )
        else:
            message = str(exc.detail).rstrip(".") + "."
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up before its body was in: nobody to answer, and no bug. 499 is nginx's
        # "client closed request", so /metrics counts it apart from the server's own errors.
        return Response(status_code=499)

    @app.exception_handler(WorkerStopped)
    async def worker_died(request: Request, exc: WorkerStopped) -> JSONResponse:
        # The batch worker process was killed (out of memory, say) while running this request's batch;
        # the batcher has started another, so the same request can succeed a moment later.
        return JSONResponse(
            {
                "error": _(
                    "the model's worker process stopped while running this request's batch; a new one is "
                    "starting: retry the request."
                )
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": _("internal error ({kind}); this is a bug in convscope.").format(kind=type(exc).__name__)},
            status_code=500,
        )


# --- offline API docs -------------------------------------------------------------------------


def _add_docs(app: FastAPI) -> None:
    """Swagger UI from the files of the `swagger-ui-bundle-v2` package, so /docs works without a network."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(_plain_docs(app.openapi()))
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def _plain_docs(spec: dict[str, Any]) -> str:
    """A page without JavaScript listing every endpoint, for installs without the Swagger UI files."""
    from html import escape

    schema = _("The full schema is {link}.").format(link="<a href='/openapi.json'>/openapi.json</a>")
    rows = "".join(
        f"<li><code>{escape(method.upper())} {escape(path)}</code>: {escape(op.get('summary', ''))}"
        f"<br><small>{escape(op.get('description', ''))}</small></li>"
        for path, methods in spec.get("paths", {}).items()
        for method, op in methods.items()
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>{escape(spec['info']['title'])}</title>"
        f"<h1>{escape(spec['info']['title'])}</h1><p>{schema}</p>"
        f"<ul>{rows}</ul>"
    )


# --- several worker processes ------------------------------------------------------------------

CONFIG_ENV = "CONVSCOPE_SERVE_CONFIG"


def app_from_environment() -> FastAPI:
    """The app of one `convscope serve --workers N` process, from the settings the parent left in the environment.

    Each worker takes its share of the cores for its forward passes (`threads`, chosen by `convscope serve`),
    so N batchers do not oversubscribe them.
    """
    import os

    import torch

    config = json.loads(os.environ[CONFIG_ENV])
    torch.set_num_threads(config["threads"])
    return create_app(config["run"], ServerSettings(**config["settings"]))

"""Errors as data: every exception a request can raise becomes a JSON body `{"error": "one sentence"}`.

A client's mistake is a `UserError` answered with its own status (4xx, `errors.py`); FastAPI's and Starlette's
own refusals (a bad query parameter, an unknown path) get a sentence of ours; a 500 is a bug.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import UserError
from ..i18n import _
from . import schemas
from .batcher import WorkerStopped

log = logging.getLogger("convscope.serving")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Error, "description": text}
    for code, text in [
        (400, "not an image, a truncated image, an empty body, invalid JSON"),
        (413, "the body, an image or a batch is over the server's limit"),
        (415, "a content type the endpoint does not take"),
        (422, "JSON pixels of the wrong shape, type or range; a bad query parameter"),
    ]
}


def add_error_handlers(app: FastAPI) -> None:
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

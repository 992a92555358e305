"""Reading a request: its image bodies (multipart uploads, raw image bodies or JSON pixels) and its language.

Every mistake a client can make in a body is a `RequestError` (400), `UnsupportedMediaType` (415) or one of
the limits' (`limits.py`: 413, a too-deep JSON body), each one sentence that says what to send instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..i18n import _, from_accept_language, language, speaking
from .errors import RequestError, UnsupportedMediaType
from .limits import parse_json, read_files
from .service import Payload, ServerSettings

_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
ONE_IMAGE_BODY = {
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
BATCH_BODY = {
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


async def one_payload(request: Request, settings: ServerSettings) -> Payload:
    """The one image of a /predict or /feature-maps body: upload bytes, or the decoded JSON pixels."""
    kind = _media_type(request)
    if kind == "multipart/form-data":
        files = await read_files(request, settings.max_batch)
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


async def batch_payloads(request: Request, settings: ServerSettings) -> list[Payload]:
    """The images of a /predict/batch body, at least one."""
    kind = _media_type(request)
    if kind == "multipart/form-data":
        files = await read_files(request, settings.max_batch)
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


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


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

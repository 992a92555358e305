"""Request limits that sit in front of the app's own parsing: the body's size, JSON depth and
multipart counts, each answered with a 4xx JSON sentence naming the limit.

The body size, image pixels and batch size are `ServerSettings` (the `serve` flags); the JSON
depth and the form's fields are the rest of what a request may ask of the parser.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import UserError
from ..i18n import _
from .errors import PayloadTooLarge, RequestError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Pixels nest 4 deep ({"images": [image[row[pixel[channel]]]]}); the default leaves room and stays
# far below Python's recursion limit, which a 100,000-deep body would otherwise hit (a 500).
MAX_JSON_DEPTH = 32
JSON_DEPTH_VARIABLE = "CONVSCOPE_MAX_JSON_DEPTH"
MAX_FORM_FIELDS = 100  # non-file fields of a multipart form


def max_json_depth() -> int:
    text = os.environ.get(JSON_DEPTH_VARIABLE)
    if text is None:
        return MAX_JSON_DEPTH
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(
            _("environment variable {JSON_DEPTH_VARIABLE} must be a positive integer, got {text!r}.").format(
                JSON_DEPTH_VARIABLE=JSON_DEPTH_VARIABLE, text=text[:40]
            )
        )
    return int(text)


def check_json_depth(body: bytes, limit: int | None = None) -> None:
    """Refuse a JSON body whose brackets nest deeper than `limit`, before `json.loads` recurses.

    Counted over the raw bytes in one vectorised pass; brackets inside strings count too, which
    can only over-estimate, and pixel bodies hold no strings but their keys.
    """
    limit = max_json_depth() if limit is None else limit
    codes = np.frombuffer(body, dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int8) - ((codes == ord("]")) | (codes == ord("}")))
    depth = int(np.cumsum(steps, dtype=np.int64).max(initial=0))
    if depth > limit:
        raise RequestError(
            _(
                "the JSON body nests {depth:,} levels deep; this server reads at most {limit} (set {JSON_DEPTH_VARIABLE} to change it)."
            ).format(depth=depth, limit=limit, JSON_DEPTH_VARIABLE=JSON_DEPTH_VARIABLE)
        )


def parse_json(body: bytes):
    """`json.loads` behind the depth limit; invalid JSON is a 400 sentence."""
    check_json_depth(body)
    try:
        return json.loads(body, parse_int=_json_int)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(
            _("the body is not valid JSON ({reason}).").format(reason=str(exc)[:120] or type(exc).__name__)
        ) from None


def _json_int(text: str) -> int | float:
    """A JSON integer; past Python's int-from-text digit limit (4,300 digits, a guard against slow parsing)
    `int()` raises ValueError inside the parser, so such a literal is read as the float it overflows to
    (inf), which the pixel checks refuse like any other number beyond float32."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class _FormReader:
    """python-multipart callbacks that keep the file parts' bytes and count the other fields."""

    def __init__(self, max_files: int):
        self.max_files = max_files
        self.files: list[bytes] = []
        self.fields = 0
        self.open_part = False
        self._header, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._data: list[bytes] = []
        self._is_file = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.open_part, self._data = True, []
        self._headers = {}

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header = self._value = b""

    def headers_finished(self) -> None:
        # A part with a filename is a file, as browsers and Starlette's own form parser tell them apart
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._is_file = b"filename" in options
        if self._is_file and len(self.files) >= self.max_files:
            raise PayloadTooLarge(
                _(
                    "the form holds more than {max_files} files; this server takes at most {max_files} images per request (start it with a larger --max-batch)."
                ).format(max_files=self.max_files)
            )
        if not self._is_file and self.fields >= MAX_FORM_FIELDS:
            raise PayloadTooLarge(
                _("the form holds more than {MAX_FORM_FIELDS} fields; send only image files.").format(
                    MAX_FORM_FIELDS=MAX_FORM_FIELDS
                )
            )

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._data.append(data[start:end])

    def part_end(self) -> None:
        if self._is_file:
            self.files.append(b"".join(self._data))
        else:
            self.fields += 1
        self.open_part = False


async def read_files(request: Request, max_files: int) -> list[bytes]:
    """The file parts of a multipart/form-data body, in order, each read into memory.

    Written on python-multipart's parser rather than Starlette's `request.form()`, which spools every
    file through a SpooledTemporaryFile: for the small pictures this server reads that took 111 us a
    request against 24 us here. BodyLimit already bounds what is held in memory.
    """
    _media, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise RequestError(
            _("the multipart/form-data content type has no boundary parameter, so its parts cannot be found.")
        )
    reader = _FormReader(max_files)
    parser = MultipartParser(boundary, reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(
            _("the multipart form cannot be read ({reason}).").format(reason=str(exc).rstrip(".")[:120])
        ) from None
    if reader.open_part:
        raise RequestError(_("the multipart body ends inside a part: its closing boundary is missing."))
    return reader.files


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
                raise PayloadTooLarge(self._message(received, at_least=True))
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

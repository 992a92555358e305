"""Request limits that sit in front of the app's own parsing: JSON depth, multipart counts,
and malformed HTTP, each answered with a 4xx JSON sentence naming the limit.

The body size, image pixels and batch size are `ServerSettings` (the `serve` flags); these
are the rest of what a request may ask of the parser.
"""

from __future__ import annotations

import json
import os

import numpy as np
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from ..errors import UserError
from .errors import PayloadTooLarge, RequestError

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
        raise UserError(f"environment variable {JSON_DEPTH_VARIABLE} must be a positive integer, got {text[:40]!r}.")
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
            f"the JSON body nests {depth:,} levels deep; this server reads at most {limit} "
            f"(set {JSON_DEPTH_VARIABLE} to change it)."
        )


def parse_json(body: bytes):
    """`json.loads` behind the depth limit; invalid JSON is a 400 sentence."""
    check_json_depth(body)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(f"the body is not valid JSON ({str(exc)[:120] or type(exc).__name__}).") from None


async def read_form(request: Request, max_files: int):
    """The multipart form, with Starlette's count limits turned into our 413 sentence."""
    try:
        return await request.form(max_files=max_files + 1, max_fields=MAX_FORM_FIELDS)
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise PayloadTooLarge(
                f"the form holds more than {max_files + 1} files; this server takes at most {max_files} images "
                "per request (start it with a larger --max-batch)."
            ) from None
        if detail.startswith("Too many fields"):
            raise PayloadTooLarge(
                f"the form holds more than {MAX_FORM_FIELDS} fields; send only image files."
            ) from None
        raise RequestError(f"the multipart form cannot be read ({detail.rstrip('.')}).") from None


def json_error_protocol():
    """uvicorn's HTTP/1.1 protocol with JSON errors for requests it cannot parse (`http_protocol.py`)."""
    from .http_protocol import JsonErrorH11Protocol  # uvicorn loads only when a server starts

    return JsonErrorH11Protocol

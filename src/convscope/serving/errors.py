"""User errors that carry the HTTP status the server answers them with.

They are `UserError`s, so the same messages read well from the CLI; a plain `UserError` (a
file that is not an image, say) is answered with 400.
"""

from __future__ import annotations

from ..errors import UserError


class RequestError(UserError):
    """A request the server understood but cannot serve: answered with `status` and the message."""

    status = 400


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


class InvalidPixels(RequestError):
    """JSON pixels of the wrong shape, type or range: well-formed JSON, unusable content."""

    status = 422

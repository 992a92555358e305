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


class NonFiniteOutput(RequestError):
    """The model computed NaN or infinity for a valid image: the run's weights are at fault, not the request,
    so the answer is a 500 whose JSON body names that cause (never the JSON encoder's own failure)."""

    status = 500

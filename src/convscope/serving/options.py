"""The query options every image route takes (`invert`, `top_k`, `framing`), declared once.

Routes take them as one FastAPI dependency, `options: ImageQuery`: FastAPI reads the dataclass's fields
as query parameters, validates them (a bad value is a 422 naming the parameter) and documents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query

from ..data.framing import parse_framing, parse_invert
from ..i18n import language
from .service import Job, Payload

Invert = Literal["auto", "true", "false"]
INVERT_HELP = (
    "auto: invert when the image's background is the opposite of the training images' (dark-on-light drawings)"
)
FramingChoice = Literal["auto", "fill", "fit", "none"]
FRAMING_HELP = "auto: crop and frame the ink as the training images are framed (GET /model, preprocessing.contract)"
TOP_K_HELP = "how many classes to list in `top`"


@dataclass(frozen=True)
class ImageOptions:
    """How to read and answer for one image, as the client asked in the query string."""

    invert: Annotated[Invert, Query(description=INVERT_HELP)] = "auto"
    top_k: Annotated[int, Query(ge=1, description=TOP_K_HELP)] = 3
    framing: Annotated[FramingChoice, Query(description=FRAMING_HELP)] = "auto"

    def job(self, payload: Payload) -> Job:
        """The batcher's job for one image, worded in the request's language."""
        return Job(payload, parse_invert(self.invert), self.top_k, parse_framing(self.framing), language())


ImageQuery = Annotated[ImageOptions, Depends()]

"""Models: Keras-vocabulary specs -> torch modules, presets, and the explained summary."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .build import build, resolve_spec
    from .network import LayerInfo, Network
    from .presets import PRESETS
    from .spec import LayerSpec, ModelSpec, parse_spec
    from .summary import ModelSummary, summary

attach(
    __name__,
    {
        "build": ".build",
        "resolve_spec": ".build",
        "LayerInfo": ".network",
        "Network": ".network",
        "PRESETS": ".presets",
        "LayerSpec": ".spec",
        "ModelSpec": ".spec",
        "parse_spec": ".spec",
        "ModelSummary": ".summary",
        "summary": ".summary",
    },
)

__all__ = [
    "build",
    "resolve_spec",
    "Network",
    "LayerInfo",
    "PRESETS",
    "LayerSpec",
    "ModelSpec",
    "parse_spec",
    "ModelSummary",
    "summary",
]

"""Models: Keras-vocabulary specs -> torch modules, presets, and the explained summary."""

from .build import build, resolve_spec
from .network import LayerInfo, Network
from .presets import PRESETS
from .spec import LayerSpec, ModelSpec, parse_spec
from .summary import ModelSummary, summary

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

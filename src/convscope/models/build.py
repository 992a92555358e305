"""`build`: a preset name, a spec file, a spec value or a ready torch module -> a torch module."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .network import Network
from .presets import PRESETS
from .spec import ModelSpec, parse_spec, read_spec_file

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_spec(model: str | Path | dict[str, Any] | list | ModelSpec) -> ModelSpec:
    """A preset name, a path to a YAML/JSON spec, or the spec itself, validated."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (dict, list)):
        return parse_spec(copy.deepcopy(model))
    text = str(model)
    if text in PRESETS:
        return parse_spec(copy.deepcopy(PRESETS[text]), name=text, source=f"preset '{text}'")
    path = Path(text)
    if path.suffix.lower() in SPEC_SUFFIXES:
        return parse_spec(read_spec_file(path), name=path.stem, source=str(path))
    raise UserError(
        f"model {text!r} is neither a preset ({', '.join(PRESETS)}) nor a .yaml/.yml/.json spec file."
    )


def build(
    model: str | Path | dict[str, Any] | list | ModelSpec | nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int | None = None,
) -> nn.Module:
    """Keras' `Sequential([...])` / `Model(inputs, outputs)` in one call; a torch module passes through.

    `seed` makes the initial weights reproducible without touching torch's global generator.
    """
    if isinstance(model, nn.Module):
        return model
    spec = resolve_spec(model)
    if seed is None:
        return Network(spec, tuple(input_shape), int(num_classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Network(spec, tuple(input_shape), int(num_classes))

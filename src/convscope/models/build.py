"""`build`: a preset name, a spec file, a spec value or a ready torch module -> a torch module."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import limits
from ..errors import UserError
from ..i18n import _
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
        return parse_spec(copy.deepcopy(PRESETS[text]), name=text, source=_("preset '{text}'").format(text=text))
    path = Path(text)
    if path.suffix.lower() in SPEC_SUFFIXES:
        return parse_spec(read_spec_file(path), name=path.stem, source=str(path))
    raise UserError(
        _("model {text!r} is neither a preset ({presets}) nor a .yaml/.yml/.json spec file.").format(
            text=text, presets=", ".join(PRESETS)
        )
    )


def plan_network(
    model: str | Path | dict[str, Any] | list | ModelSpec, input_shape: tuple[int, ...], num_classes: int
) -> Network:
    """The network with every shape, parameter count and FLOP worked out, but no memory behind it.

    Built on torch's meta device, whose tensors have shapes and no storage: a model of billions
    of weights, or an input of 100,000 x 100,000 pixels, is described in milliseconds.
    """
    spec = resolve_spec(model)
    try:
        with torch.device("meta"):
            return Network(spec, tuple(input_shape), int(num_classes))
    except UserError:
        raise
    except (RuntimeError, OverflowError, ValueError) as exc:  # torch refuses sizes beyond int64
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(
            _("model '{name}' on input {input_shape}: its sizes are too large to work out ({first}).").format(
                name=spec.name, input_shape=tuple(input_shape), first=first
            )
        ) from None


def check_params(network: Network) -> None:
    """Refuse to allocate a model over `Limits.max_params` weights."""
    total = sum(layer.trainable + layer.non_trainable for layer in network.info)
    allowed = limits().max_params
    if total > allowed:
        largest = max(network.info, key=lambda layer: layer.trainable + layer.non_trainable)
        raise UserError(
            _(
                "model '{name}' on input {input_shape} has {total:,} parameters ({layer_params:,} in layer '{layer}'), over the limit of {allowed:,} (raise it with the environment variable CONVSCOPE_MAX_PARAMS)."
            ).format(
                name=network.spec.name,
                input_shape=network.input_shape,
                total=total,
                layer_params=largest.trainable + largest.non_trainable,
                layer=largest.name,
                allowed=allowed,
            )
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
    check_params(plan_network(spec, input_shape, num_classes))  # before a single weight is allocated
    if seed is None:
        return Network(spec, tuple(input_shape), int(num_classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Network(spec, tuple(input_shape), int(num_classes))

"""`convscope summary MODEL --input-shape 28,28,1`: the explained Keras-style summary, no data needed."""

from __future__ import annotations

import argparse
import json

from ..i18n import _
from .options import positive_int, presets, shape


def add_parser(sub) -> None:
    p = sub.add_parser(
        "summary",
        help=_("show a model's layers, output sizes with formulas, params, FLOPs"),
        description=_("Summarise a preset or spec file without training it."),
    )
    p.add_argument(
        "model",
        metavar="MODEL_OR_SPEC",
        help=_("preset ({presets}), a .yaml/.json spec, or a Keras model (.keras, .h5, to_json() .json)").format(
            presets=presets()
        ),
    )
    p.add_argument("--input-shape", type=shape, default=(28, 28, 1), help=_("H,W,C (default 28,28,1)"))
    p.add_argument("--classes", type=positive_int, default=10, help=_("number of classes (default 10)"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.keras_config import is_keras_file, read_keras_model  # h5py only when a Keras file is read
    from ..models.summary import plan

    if is_keras_file(args.model):  # its own input shape and classes; no weights are read
        keras = read_keras_model(args.model)
        result = plan(keras.spec, keras.input_shape, keras.num_classes)
    else:
        result = plan(args.model, args.input_shape, args.classes)  # arithmetic: any input size, no weights allocated
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0

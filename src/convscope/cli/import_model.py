"""`convscope import MODEL --out RUN`: a Keras model (.keras, .h5) as a convscope run directory."""

from __future__ import annotations

import argparse

from ..i18n import _


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import",
        help=_("import a Keras model (.keras or .h5) as a run"),
        description=_(
            "Read a Keras 3 .keras archive or a legacy HDF5 .h5 (tf.keras 2.x or Keras 3) into a run directory that evaluate, inspect, report, serve and export use like a trained run. Neither TensorFlow nor Keras is needed."
        ),
    )
    p.add_argument("model", metavar="MODEL", help=_("the Keras model file (.keras, .h5)"))
    p.add_argument("--out", required=True, help=_("the run directory to write"))
    p.add_argument("--data", help=_("a file whose every image is the test set (metrics, test-set files, report)"))
    p.add_argument("--class-names", help=_("ABCDEFGHIJ (one character per class) or comma,separated,names"))
    p.add_argument(
        "--scale",
        metavar="MIN,MAX|none",
        help=_(
            "the model was trained on (x - MIN) / (MAX - MIN) (the course: 0,255), or 'none' for pixels as they are; may be left out when the model starts with a Rescaling layer"
        ),
    )
    p.add_argument(
        "--double-scale",
        action="store_true",
        help=_("accept --scale MIN,MAX for a model that starts with a Rescaling layer (its inputs are scaled twice)"),
    )
    p.add_argument("--layout", choices=["NHWC", "NCHW", "NHW", "HWN", "HWCN"], help=_("axis order of --data arrays"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.keras_import import import_keras, parse_scale  # h5py and the run writer only when used

    scale = parse_scale(args.scale) if args.scale is not None else None
    result = import_keras(
        args.model,
        args.out,
        data=args.data,
        class_names=args.class_names,
        scale=scale,
        layout=args.layout,
        double_scale=args.double_scale,
    )
    trained = result.trained
    print(
        _("read a {description}: {count} layers, input {shape}, {classes} classes").format(
            description=result.keras.description,
            count=len(result.keras.layers),
            shape=tuple(trained.input_shape),
            classes=len(trained.class_names),
        )
    )
    print(
        _("scaling: (x - {minimum:g}) / ({maximum:g} - {minimum:g})").format(
            minimum=trained.scaler.minimum, maximum=trained.scaler.maximum
        )
    )
    if result.evaluation is not None:
        print(result.evaluation.text())
    print(_("run saved to {path}").format(path=result.path))
    return 0

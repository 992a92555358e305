"""`convscope export RUN --format onnx|torchscript|keras`: the model as one file, usable without convscope."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from ..i18n import _


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help=_("export a run as ONNX, TorchScript or a Keras 3 .keras file"),
        description=_(
            "Export a run's model as one file that takes raw pixels and returns class probabilities (scaling and softmax inside). Prints the preprocessing contract, which is also stored in the file."
        ),
    )
    p.add_argument("run_dir", metavar="RUN")
    # the names of export.FORMATS, written out: that module imports torch, and --help should not wait for it
    p.add_argument("--format", choices=["onnx", "torchscript", "keras"], default="onnx")
    p.add_argument("--out", help=_("output file (default RUN/model.onnx, RUN/model.pt or RUN/model.keras)"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs import check_writable, load_run

    if args.out is not None:
        check_writable(args.out, "--out")
    try:
        from ..export import FORMATS, contract, export
    except ImportError as exc:
        raise UserError(
            _("convscope export needs the export extra ({name} is missing): pip install 'convscope[export]'.").format(
                name=exc.name
            )
        ) from None
    trained = load_run(args.run_dir)
    out = Path(args.out) if args.out else Path(args.run_dir) / f"model{FORMATS[args.format]}"
    try:
        path = export(trained, out, args.format)
    except ImportError as exc:
        raise UserError(
            _("exporting to {format} needs {name}: pip install 'convscope[export]'.").format(
                format=args.format, name=exc.name
            )
        ) from None
    print(_("wrote {path} ({size:,} bytes)").format(path=path, size=path.stat().st_size))
    print(_("preprocessing contract (stored in the file too):"))
    print(json.dumps(contract(trained, args.format), indent=2))
    return 0

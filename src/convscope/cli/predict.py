"""`convscope predict RUN IMAGE...`: class probabilities for image files, framed like the training images."""

from __future__ import annotations

import argparse
import json
import sys

from ..checks import printable
from ..i18n import _
from .options import add_framing_options, add_threads_option, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help=_("predict the class of image files"), description=_("Predict image files with a run.")
    )
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top", type=positive_int, default=3, help=_("how many classes to list per image"))
    p.add_argument("--json", action="store_true")
    add_threads_option(p)
    add_framing_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.framing import model_input, parse_framing, parse_invert
    from ..export.contract import run_contract
    from ..runs import load_run
    from ..training.threads import apply_threads

    apply_threads(args.threads)
    trained = load_run(args.run_dir)
    contract = run_contract(trained)
    if contract.source.startswith("this run stored no contract"):
        print(_("note: {source}.").format(source=contract.source), file=sys.stderr)
    invert, framing = parse_invert(args.invert), parse_framing(args.framing)
    framed = [model_input(path, contract, trained.input_shape, invert, framing) for path in args.images]
    probs = trained.predict_proba(np.stack([f.image for f in framed]))
    rows = []
    for path, p, f in zip(args.images, probs, framed):
        order = np.argsort(p)[::-1][: args.top]
        rows.append(
            {
                "image": path,
                "label": trained.class_names[int(order[0])],
                "probabilities": {name: float(v) for name, v in zip(trained.class_names, p)},
                "top": [{"label": trained.class_names[int(i)], "probability": float(p[i])} for i in order],
                "inverted": f.inverted,
                "framing": f.framing,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            top = ", ".join(f"{printable(t['label'])} {t['probability']:.3f}" for t in row["top"])
            print(f"{printable(row['image'])}: {printable(row['label'])}  ({top})")
    return 0

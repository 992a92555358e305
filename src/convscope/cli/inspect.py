"""`convscope inspect RUN`: test images with what the model made of them, drawn in the terminal.

convscope inspect runs/x                        # 5 random test images
convscope inspect runs/x --mistakes 9 --class 7 # misclassified 7s
convscope inspect runs/x --top-losses 5         # highest loss first
convscope inspect runs/x --index 42 --feature-maps --save out/
convscope inspect runs/x --image my_digit.png   # an image file: prediction, feature maps, Grad-CAM
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..checks import printable
from ..errors import UserError
from ..i18n import _

if TYPE_CHECKING:
    import numpy as np

    from ..evaluation import inspection

from .options import add_framing_options, non_negative_int, positive_int, seed

DEFAULT_COUNT = 5


def add_parser(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help=_("look at test images, mistakes, feature maps and Grad-CAM"),
        description=_(
            "Test images with their true and predicted class and every class's probability; images are drawn in the terminal with half-block characters (works over SSH)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--random",
        type=positive_int,
        nargs="?",
        const=DEFAULT_COUNT,
        metavar="N",
        help=_("N random test images (the default, N={DEFAULT_COUNT})").format(DEFAULT_COUNT=DEFAULT_COUNT),
    )
    which.add_argument(
        "--mistakes",
        type=positive_int,
        nargs="?",
        const=DEFAULT_COUNT,
        metavar="N",
        help=_("N random misclassified test images"),
    )
    which.add_argument(
        "--top-losses",
        type=positive_int,
        nargs="?",
        const=DEFAULT_COUNT,
        metavar="N",
        help=_(
            "the N misclassified images with the highest loss, highest first (the lowest probability on the true class)"
        ),
    )
    which.add_argument("--index", type=non_negative_int, metavar="I", help=_("test image I (reproducible)"))
    which.add_argument(
        "--image", metavar="FILE", help=_("an image file instead of a test image (implies --feature-maps)")
    )
    p.add_argument("--class", dest="class_name", metavar="NAME", help=_("only test images of this true class"))
    p.add_argument("--seed", type=seed, help=_("seed for the random choices (printed when not given)"))
    p.add_argument(
        "--feature-maps",
        action="store_true",
        help=_("also show the first image's Conv/Pool activations and its Grad-CAM heat map"),
    )
    p.add_argument("--save", metavar="DIR", help=_("write the figures as PNG files into DIR"))
    p.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help=_("24-bit colour half blocks (auto: on a terminal, unless NO_COLOR is set)"),
    )
    p.add_argument("--no-images", action="store_true", help=_("text only: captions and probabilities"))
    add_framing_options(p)  # --image only
    p.set_defaults(run=run)


def _selection(args: argparse.Namespace) -> tuple[str, int]:
    for kind, value in (("mistakes", args.mistakes), ("top-losses", args.top_losses), ("random", args.random)):
        if value is not None:
            return kind, value
    return ("index", 1) if args.index is not None else ("random", DEFAULT_COUNT)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.framing import model_input, parse_framing, parse_invert
    from ..evaluation import inspection, terminal
    from ..export.contract import run_contract
    from ..presentation.view import load_view
    from ..runs import check_writable, load_run

    if args.save is not None:
        check_writable(args.save, "--save")
    out = sys.stdout
    color = args.color == "always" or (args.color == "auto" and terminal.wants_color(out))
    draw = not args.no_images
    width = shutil.get_terminal_size((100, 24)).columns
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    if args.image is not None:
        if args.class_name is not None:
            raise UserError(_("--class selects test images; it does not apply to --image."))
        trained = load_run(args.run_dir)
        contract = run_contract(trained)
        framed = model_input(
            args.image, contract, trained.input_shape, parse_invert(args.invert), parse_framing(args.framing)
        )
        samples: tuple[inspection.Sample, ...] = (inspection.predict_image(trained, framed.image),)
        title, stem, feature_maps = f"image {args.image}", "image", True
        print(
            (
                _("model input: inverted, framing {framing} ({contract})")
                if framed.inverted
                else _("model input: framing {framing} ({contract})")
            ).format(framing=framed.framing, contract=contract.describe()),
            file=out,
        )
    else:
        view = load_view(args.run_dir)
        trained = view.trained
        kind, n = _selection(args)
        seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(10_000))
        chosen = inspection.select(view.evaluation, kind, n, class_name=args.class_name, index=args.index, seed=seed)
        samples, title, feature_maps = chosen.samples, chosen.title, args.feature_maps
        stem = f"index-{args.index}" if kind == "index" else kind
        header = _("{title}: {count} shown").format(title=printable(title), count=len(samples))
        if kind in ("random", "mistakes") and args.seed is None:
            header += " " + _("(seed {seed}; repeat with --seed {seed})").format(seed=seed)
        print(header, file=out)
        if not samples:
            print(_("nothing to show: no test image matches."), file=out)
            return 0
    for s in samples:
        print("", file=out)
        print(terminal.render_sample(s, color=color, draw=draw, max_width=min(40, width // 3)), file=out)
    if save is not None:
        from ..presentation import figures  # matplotlib (~0.3 s) loads only when something is drawn

        path = save / f"{stem}.png"
        figures.to_png(figures.predictions_figure(samples, title), path)
        written.append(path)

    if feature_maps:
        written += _feature_maps(trained, samples[0], color, draw, width, save)
    for path in written:
        print(_("wrote {path}").format(path=path), file=out)
    return 0


def _feature_maps(
    trained, sample: inspection.Sample, color: bool, draw: bool, width: int, save: Path | None
) -> list[Path]:
    from ..evaluation import inspection, terminal

    out = sys.stdout
    maps = inspection.feature_maps(trained, sample.image)
    if not maps:
        print(_("\nthis model has no Conv or Pool layers: no feature maps, filters or Grad-CAM to show."), file=out)
        return []
    cam = inspection.grad_cam(trained, sample.image)
    heading = (
        _("feature maps of test image #{index} (one tile per channel, each scaled to its own range)")
        if sample.index is not None
        else _("feature maps of the image (one tile per channel, each scaled to its own range)")
    )
    print("\n" + heading.format(index=sample.index), file=out)
    for fmap in maps:
        h, w, c = fmap.output_shape
        # Full-size tiles, as many as two rows of the terminal hold: shrunk tiles would show nothing.
        per_row = max(1, min(c, (width - 1) // (w + 1)))
        shown = min(c, 2 * per_row)
        more = (
            " " + _("(channels 0-{last} of {count}; --save draws all)").format(last=shown - 1, count=c)
            if shown < c
            else ""
        )
        print(
            _("\n{layer} ({type}): output {h} x {w} x {c}{more}").format(
                layer=fmap.layer, type=fmap.type, h=h, w=w, c=c, more=more
            ),
            file=out,
        )
        if draw:
            tiles = inspection.mosaic(fmap.values[:shown], columns=per_row)
            print("\n".join(terminal.halfblocks(_colored(tiles, color), color, max_width=width - 1)), file=out)
    if cam is not None:
        # The caption names what the picture below shows: colours, grey levels, or no picture at all.
        if draw and color:
            key = _("red and yellow are where the evidence lies")
        elif draw:
            key = _("the brighter, the more evidence")
        else:
            key = _("--save draws it")
        print(
            "\n"
            + _("Grad-CAM on {layer} for predicted class '{name}' (p={probability:.3f}): {key}").format(
                layer=cam.layer, name=cam.class_name, probability=cam.probability, key=key
            ),
            file=out,
        )
        if draw:
            picture = terminal.heat_overlay(sample.image, cam.heatmap) if color else cam.heatmap
            print("\n".join(terminal.halfblocks(picture, color, max_width=40)), file=out)
    written = []
    if save is not None:
        from ..presentation import figures  # matplotlib (~0.3 s) loads only when something is drawn

        stem = f"index-{sample.index}" if sample.index is not None else "image"
        path = save / f"feature-maps-{stem}.png"
        figures.to_png(figures.feature_maps_figure(sample, maps, cam), path)
        written.append(path)
        filters = inspection.first_filters(trained)
        if filters is not None:
            path = save / "filters.png"
            figures.to_png(figures.filters_figure(filters), path)
            written.append(path)
    return written


def _colored(tiles: np.ndarray, color: bool) -> np.ndarray:
    """Tiles in [0, 1] with NaN gaps -> viridis RGB for colour terminals, gray for plain ones (gaps dark)."""
    import numpy as np

    filled = np.nan_to_num(tiles, nan=0.0)
    if not color:
        return filled
    from matplotlib import colormaps  # only colour terminals need it

    rgb = colormaps["viridis"](filled)[..., :3]
    rgb[np.isnan(tiles)] = 0.0
    return (rgb * 255).round().astype(np.uint8)

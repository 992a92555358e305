"""`report.html`: one self-contained page about a run.

Everything is inline (CSS in a <style> element, figures as base64 PNG data URIs, no script),
so the file opens offline, can be mailed or attached to an issue, and makes no request at all.
The page is rendered from the templates of `jinja`, section by section; the notebook views of the Dataset,
summary, History and EvaluationResult render the same section templates.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._version import __version__
from ..data.dataset import Dataset
from ..errors import UserError
from ..evaluation import inspection
from ..evaluation.evaluate import EvaluationResult
from ..i18n import _
from ..runs import default_run_dir, save_run
from ..training.diagnostics import CurveNote, curve_notes_for
from ..training.trained_model import TrainedModel
from . import charts, figures, jinja
from .dataset import class_table, step_rows
from .evaluation import confusion_section, matrix_alt, matrix_caption, metrics_section, per_class_alt
from .history import CURVES_ALT, epochs_text, training_section
from .summary import model_section
from .view import RunView, load_view

REPORT = "report.html"
GALLERY_SIZE = 8
Section = tuple[str, dict]  # (template file, its context): a new section is one more pair


def split_label(split: str) -> str:
    """The reader's words for a `samples_split` key ("training split", "test split")."""
    return {"training split": _("training split"), "test split": _("test split")}.get(split, split)


def picture(figure: Figure, alt: str, caption: str | None = None) -> dict:
    """A figure for the templates, drawn through `figures.to_png` (the report's one PNG path)."""
    return jinja.picture(figure, alt, caption, png=figures.to_png)


def headline(view: RunView) -> list[tuple[str, str]]:
    seconds = view.metrics.get("train_seconds")
    return [
        (_("test accuracy"), f"{view.evaluation.accuracy:.2%}"),
        (_("test loss"), f"{view.evaluation.loss:.4f}"),
        (_("epochs"), epochs_text(view.trained.history)),
        (_("parameters"), f"{view.summary.total_params:,}"),
        (_("training time"), f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "–"),
    ]


def data_section(view: RunView) -> Section:
    data = view.config.get("data", {})
    evaluation = view.evaluation
    h, w, c = view.trained.input_shape
    scaler = view.trained.scaler
    rows = [
        (_("source"), data.get("source", "–")),
        # what load did to the file, step by step, when the training split that came from it is at hand
        *(step_rows(view.samples.steps) if view.samples_split == "training split" else []),
        (_("image shape"), _("{h} × {w} × {c} (height × width × channels)").format(h=h, w=w, c=c)),
        (_("classes"), f"{len(evaluation.class_names)}: {', '.join(evaluation.class_names)}"),
        (_("training images"), data.get("train_size", "–")),
        (
            _("of which validation"),
            _validation_row(data.get("train_size"), view.trained.config.get("validation_split")),
        ),
        (_("test images"), len(evaluation.labels)),
        (
            _("test split"),
            _("the whole file (an imported model)")
            if data.get("whole_file_is_test_set")
            else _("predefined by the file")
            if data.get("predefined_split")
            else _("{split} stratified, seed {seed}").format(
                split=data.get("test_split", "–"), seed=data.get("split_seed", "–")
            ),
        ),
        (
            _("scaling"),
            _("min-max with training statistics: (x - {low:g}) / ({high:g} - {low:g})").format(
                low=scaler.minimum, high=scaler.maximum
            ),
        ),
        (_("input contract"), view.trained.input_contract.describe() if view.trained.input_contract else "–"),
    ]
    classes = class_table(view.samples)
    classes["header"][1] = _("images ({split})").format(split=split_label(view.samples_split))
    if view.samples_split != "test split":  # the test split's counts as well, beside the training split's
        counts = [int((evaluation.labels == k).sum()) for k in range(len(evaluation.class_names))]
        classes["header"].insert(3, _("test images"))
        classes["rows"] = [[*row[:3], f"{n:,}", row[3]] for row, n in zip(classes["rows"], counts)]
        classes["numeric"] = [1, 2, 3]
    contract = view.trained.input_contract
    return "sections/data.html", {
        "anchor": "data",
        "nav": _("Data"),
        "title": _("Data"),
        "rows": rows,
        "classes": classes,
        "caption": (
            _("Samples: random examples of every class from the training split.")
            if view.samples_split == "training split"
            else _("Samples: random examples of every class from the test split.")
            if view.samples_split == "test split"
            else _("Samples: random examples of every class from the {split}.").format(split=view.samples_split)
        ),
        "contract": picture(
            figures.contract_figure(np.asarray(view.samples.images[:5]), contract),
            _("the learned input contract"),
            _(
                "How a new picture is framed before the model sees it: learned from the training images "
                "(polarity, ink threshold, framing) and applied by predict, inspect and the server."
            ),
        )
        if contract is not None and len(view.samples)
        else None,
    }


def _validation_row(train_size, split) -> str:
    """How many of the training images fit held out, counted as fit cuts them (the last fraction, as Keras)."""
    if not isinstance(train_size, int) or not isinstance(split, (int, float)):
        return _("{split} (the last fraction, as Keras)").format(split=split if split is not None else "–")
    held = train_size - int(train_size * (1.0 - split))
    return _("{n:,} ({split:g}: the last fraction, as Keras)").format(n=held, split=split)


def config_section(view: RunView) -> Section:
    fit = view.trained.config
    keys = ["epochs", "batch_size", "lr", "validation_split", "seed", "precision", "device", "early_stopping"]
    rows = [(k, json.dumps(fit[k]) if isinstance(fit[k], (dict, list)) else fit[k]) for k in keys if k in fit]
    rows += [(k, v) for k, v in fit.items() if k not in keys and not isinstance(v, (dict, list))]
    versions = view.config.get("versions", {})
    return "sections/config.html", {
        "anchor": "config",
        "nav": _("Settings"),
        "rows": rows,
        "config_json": json.dumps(view.config, indent=2),
        "versions": f"convscope {versions.get('convscope', __version__)}, torch {versions.get('torch', '?')}",
    }


def predictions_section(view: RunView) -> Section:
    e = view.evaluation
    picked = inspection.select(e, "random", GALLERY_SIZE, seed=0)
    mistakes = inspection.select(e, "mistakes", GALLERY_SIZE, seed=0)
    galleries = [
        picture(
            figures.predictions_figure(picked.samples, picked.title),
            picked.title,
            _(
                "Captions read true → predicted (probability) and the verdict, correct or wrong (green or red); "
                "every class's probability is the number beside its bar."
            ),
        )
    ]
    if mistakes.samples:
        galleries.append(
            picture(
                figures.predictions_figure(mistakes.samples, mistakes.title),
                mistakes.title,
                _("{wrong} of {total} test images are misclassified; {shown} of them, drawn at random.").format(
                    wrong=len(e.mistakes), total=len(e.labels), shown=len(mistakes.samples)
                ),
            )
        )
    return "sections/predictions.html", {
        "anchor": "predictions",
        "nav": _("Predictions"),
        "galleries": galleries,
        "no_mistakes": not mistakes.samples,
    }


def inside_section(view: RunView) -> Section:
    trained, e = view.trained, view.evaluation
    maps: list[tuple[str, dict]] = []
    context = {"anchor": "inside", "nav": _("Inside the model"), "flat": False, "maps": maps, "filters": None}
    if not inspection.image_layers(trained):
        return "sections/inside.html", {**context, "flat": True}
    texts = {  # (figure title, heading, alt text)
        "correct": (
            _("feature maps of a correctly classified image (test image #{index})"),
            _("A correctly classified image: {caption}"),
            _("feature maps of a correctly classified image"),
        ),
        "top-losses": (
            _("feature maps of the misclassified image with the highest loss (test image #{index})"),
            _("The misclassified image with the highest loss: {caption}"),
            _("feature maps of the misclassified image with the highest loss"),
        ),
    }
    for kind, (title, heading, alt) in texts.items():
        chosen = inspection.select(e, kind, 1, seed=0).samples
        if not chosen:
            continue
        s = chosen[0]
        fig = figures.feature_maps_figure(
            s,
            inspection.feature_maps(trained, s.image),
            inspection.grad_cam(trained, s.image),
            title=title.format(index=s.index),
        )
        maps.append((heading.format(caption=s.caption), picture(fig, alt)))
    filters = inspection.first_filters(trained)
    if filters is not None:
        context["filters"] = picture(
            figures.filters_figure(filters),
            _("first-layer filters"),
            _("The kernels the first convolution slides over the pixels (red positive, blue negative weights)."),
        )
    return "sections/inside.html", context


def curve_notes(view: RunView) -> list[CurveNote]:
    """What the curves say, with the per-class recall of the test split against the training counts
    (when the report was written with the training split at hand)."""
    training = view.samples_split == "training split"
    labels = view.samples.labels if training else None
    return curve_notes_for(view.trained, view.evaluation.per_class, labels, view.config.get("data", {}))


def sections(view: RunView) -> list[Section]:
    """The report's sections in page order; the navigation bar is made from the same list."""
    e = view.evaluation
    return [
        data_section(view),
        config_section(view),
        model_section(view.summary),
        training_section(
            view.trained.history,
            picture(charts.training_curves(view.trained.history), _(CURVES_ALT)) if view.trained.history.rows else None,
            imported=view.config.get("imported"),
            notes=curve_notes(view),
        ),
        metrics_section(e, picture(charts.per_class_figure(e.per_class), per_class_alt())),
        confusion_section(
            e,
            picture(charts.confusion_matrix_figure(e.confusion_matrix, e.class_names), matrix_alt(), matrix_caption()),
        ),
        predictions_section(view),
        inside_section(view),
    ]


def render(view: RunView) -> str:
    """The whole page as a string (no file written)."""
    data_source = view.config.get("data", {}).get("source", "")
    title = (
        _("{run}: {model} on {source}").format(run=view.name, model=view.model_name, source=data_source)
        if data_source
        else view.name
    )
    return jinja.page(
        "report.html",
        title=title,
        path=str(view.path),
        headline=headline(view),
        sections=sections(view),
        version=__version__,
        made=time.strftime("%Y-%m-%d %H:%M"),
    )


def write_report(run_dir: str | Path, samples: Dataset | None = None, samples_split: str = "training split") -> Path:
    """Write `report.html` into the run directory: a temporary file first, renamed into place, so a
    reader never sees half a page and a failure leaves the previous report as it was."""
    view = load_view(run_dir, samples, samples_split)
    page = render(view)
    final = view.path / REPORT
    tmp = view.path / f".{REPORT}.{os.getpid()}.tmp"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def report(
    run: str | Path | TrainedModel,
    result: EvaluationResult | None = None,
    path: str | Path | None = None,
    samples: Dataset | None = None,
) -> Path:
    """`cs.report`: the self-contained report.html of a run, from Python.

    `run`: a run directory or a trained model. A model not saved yet is saved first as a run directory,
    with `result` (its `cs.evaluate` on the test split) as the test set: into `path` when `path` is a folder,
    else beside `path`, else under runs/. `path` ending in .html: the report is also copied there.
    `samples`: the training split, for the per-class counts and samples (else the test split is shown).
    Returns the path of the report written.
    """
    html_path = Path(path) if path is not None and str(path).lower().endswith((".html", ".htm")) else None
    if isinstance(run, TrainedModel):
        if run.path is None:
            if result is None:
                raise UserError(
                    _("cs.report needs the test evaluation of a model not saved yet: cs.report(model, result, path).")
                )
            folder = html_path.with_suffix("") if html_path is not None else Path(path) if path is not None else None
            run_dir = save_run(
                run,
                folder
                if folder is not None
                else default_run_dir(getattr(getattr(run.model, "spec", None), "name", "model")),
                result,
            )
        else:
            run_dir = Path(run.path)
    else:
        run_dir = Path(run)
    written = write_report(run_dir, samples=samples, samples_split="training split" if samples is not None else "")
    if html_path is None:
        return written
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(written.read_bytes())
        os.replace(tmp, html_path)
    finally:
        tmp.unlink(missing_ok=True)
    return html_path

"""`report.html`: one self-contained page about a run.

Everything is inline (CSS in a <style> element, figures as base64 PNG data URIs, no script),
so the file opens offline, can be mailed or attached to an issue, and makes no request at all.
The page is rendered from the templates of `convscope.display`, section by section; the notebook
reprs of the Dataset, summary, History and EvaluationResult render the same section templates.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import display
from .._version import __version__
from ..data.dataset import Dataset
from ..data.html import class_table
from ..errors import UserError
from ..evaluation import inspection
from ..evaluation.evaluate import EvaluationResult
from ..evaluation.html import MATRIX_ALT, MATRIX_CAPTION, PER_CLASS_ALT, confusion_section, metrics_section
from ..i18n import _
from ..models.html import model_section
from ..runs import default_run_dir, save_run
from ..training.diagnostics import ClassScore, CurveNote, notes_for, steps_per_epoch
from ..training.html import CURVES_ALT, training_section
from ..training.trained_model import TrainedModel
from . import figures
from .view import RunView, load_view

REPORT = "report.html"
GALLERY_SIZE = 8
Section = tuple[str, dict]  # (template file, its context): a new section is one more pair


def picture(figure: Figure, alt: str, caption: str | None = None) -> dict:
    """A figure for the templates, drawn through `figures.to_png` (the report's one PNG path)."""
    return display.picture(figure, alt, caption, png=figures.to_png)


def headline(view: RunView) -> list[tuple[str, str]]:
    history = view.trained.history
    seconds = view.metrics.get("train_seconds")
    return [
        ("test accuracy", f"{view.evaluation.accuracy:.2%}"),
        ("test loss", f"{view.evaluation.loss:.4f}"),
        ("epochs", f"{history.epochs_run}" + (f" (best {history.best_epoch})" if history.best_epoch else "")),
        ("parameters", f"{view.summary.total_params:,}"),
        ("training time", f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "–"),
    ]


def data_section(view: RunView) -> Section:
    data = view.config.get("data", {})
    evaluation = view.evaluation
    h, w, c = view.trained.input_shape
    scaler = view.trained.scaler
    rows = [
        ("source", data.get("source", "–")),
        ("image shape", f"{h} × {w} × {c} (height × width × channels)"),
        ("classes", f"{len(evaluation.class_names)}: {', '.join(evaluation.class_names)}"),
        ("training images", data.get("train_size", "–")),
        ("of which validation", _validation_row(data.get("train_size"), view.trained.config.get("validation_split"))),
        ("test images", len(evaluation.labels)),
        (
            "test split",
            "the whole file (an imported model)"
            if data.get("whole_file_is_test_set")
            else "predefined by the file"
            if data.get("predefined_split")
            else f"{data.get('test_split', '–')} stratified, seed {data.get('split_seed', '–')}",
        ),
        (
            "scaling",
            f"min-max with training statistics: (x - {scaler.minimum:g}) / ({scaler.maximum:g} - {scaler.minimum:g})",
        ),
        ("input contract", view.trained.input_contract.describe() if view.trained.input_contract else "–"),
    ]
    classes = class_table(view.samples)
    classes["header"][1] = f"images ({view.samples_split})"
    if view.samples_split != "test split":  # the test split's counts as well, beside the training split's
        counts = [int((evaluation.labels == k).sum()) for k in range(len(evaluation.class_names))]
        classes["header"].insert(3, "test images")
        classes["rows"] = [[*row[:3], f"{n:,}", row[3]] for row, n in zip(classes["rows"], counts)]
        classes["numeric"] = [1, 2, 3]
    contract = view.trained.input_contract
    return "sections/data.html", {
        "anchor": "data",
        "nav": "Data",
        "title": "Data",
        "rows": rows,
        "classes": classes,
        "caption": f"Samples: random examples of every class from the {view.samples_split}.",
        "contract": picture(
            figures.contract_figure(np.asarray(view.samples.images[:5]), contract),
            "the learned input contract",
            "How a new picture is framed before the model sees it: learned from the training images "
            "(polarity, ink threshold, framing) and applied by predict, inspect and the server.",
        )
        if contract is not None and len(view.samples)
        else None,
    }


def _validation_row(train_size, split) -> str:
    """How many of the training images fit held out, counted as fit cuts them (the last fraction, as Keras)."""
    if not isinstance(train_size, int) or not isinstance(split, (int, float)):
        return f"{split if split is not None else '–'} " + _("(the last fraction, as Keras)")
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
        "nav": "Settings",
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
                f"{len(e.mistakes)} of {len(e.labels)} test images are misclassified; "
                f"{len(mistakes.samples)} of them, drawn at random.",
            )
        )
    return "sections/predictions.html", {
        "anchor": "predictions",
        "nav": "Predictions",
        "galleries": galleries,
        "no_mistakes": not mistakes.samples,
    }


def inside_section(view: RunView) -> Section:
    trained, e = view.trained, view.evaluation
    maps: list[tuple[str, dict]] = []
    context = {"anchor": "inside", "nav": "Inside the model", "flat": False, "maps": maps, "filters": None}
    if not inspection.image_layers(trained):
        return "sections/inside.html", {**context, "flat": True}
    for kind, label in (
        ("correct", "a correctly classified image"),
        ("top-losses", "the misclassified image with the highest loss"),
    ):
        chosen = inspection.select(e, kind, 1, seed=0).samples
        if not chosen:
            continue
        s = chosen[0]
        fig = figures.feature_maps_figure(
            s,
            inspection.feature_maps(trained, s.image),
            inspection.grad_cam(trained, s.image),
            title=f"feature maps of {label} (test image #{s.index})",
        )
        maps.append((f"{label.capitalize()}: {s.caption}", picture(fig, f"feature maps of {label}")))
    filters = inspection.first_filters(trained)
    if filters is not None:
        context["filters"] = picture(
            figures.filters_figure(filters),
            "first-layer filters",
            "The kernels the first convolution slides over the pixels (red positive, blue negative weights).",
        )
    return "sections/inside.html", context


def curve_notes(view: RunView) -> list[CurveNote]:
    """What the curves say, with the per-class recall of the test split against the training counts
    (when the report was written with the training split at hand)."""
    fit, data = view.trained.config, view.config.get("data", {})
    steps = steps_per_epoch(data.get("train_size"), fit.get("validation_split"), fit.get("batch_size"))
    classes: list[ClassScore] = []
    if view.samples_split == "training split":
        counts = np.bincount(np.asarray(view.samples.labels), minlength=len(view.evaluation.class_names))
        classes = [ClassScore(row["class"], row["recall"], int(n)) for row, n in zip(view.evaluation.per_class, counts)]
    return notes_for(view.trained.history, view.trained.model, fit, steps, len(view.trained.class_names), classes)


def sections(view: RunView) -> list[Section]:
    """The report's sections in page order; the navigation bar is made from the same list."""
    e = view.evaluation
    return [
        data_section(view),
        config_section(view),
        model_section(view.summary),
        training_section(
            view.trained.history,
            picture(figures.training_curves(view.trained.history), CURVES_ALT) if view.trained.history.rows else None,
            imported=view.config.get("imported"),
            notes=curve_notes(view),
        ),
        metrics_section(e, picture(figures.per_class_figure(e.per_class), PER_CLASS_ALT)),
        confusion_section(
            e, picture(figures.confusion_matrix_figure(e.confusion_matrix, e.class_names), MATRIX_ALT, MATRIX_CAPTION)
        ),
        predictions_section(view),
        inside_section(view),
    ]


def render(view: RunView) -> str:
    """The whole page as a string (no file written)."""
    data_source = view.config.get("data", {}).get("source", "")
    title = f"{view.name}: {view.model_name} on {data_source}" if data_source else view.name
    return display.page(
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

"""`report.html`: one self-contained page about a run.

Everything is inline (CSS in a <style> element, figures as base64 PNG data URIs, no script),
so the file opens offline, can be mailed or attached to an issue, and makes no request at all.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._version import __version__
from ..data.dataset import Dataset
from ..evaluation import inspection
from . import figures
from .view import RunView, load_view

REPORT = "report.html"
GALLERY_SIZE = 8


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def image_tag(figure: Figure, alt: str) -> str:
    data = base64.b64encode(figures.to_png(figure)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure_block(figure: Figure, alt: str, caption: str | None = None) -> str:
    caption_html = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{image_tag(figure, alt)}{caption_html}</figure>"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = (), cls: str = "") -> str:
    """An HTML table; cells are escaped, columns listed in `numeric` are right-aligned."""
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{esc(c)}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def _number(value: object, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(["None", *(str(s) for s in shape)]) + ")"


def headline(view: RunView) -> str:
    history = view.trained.history
    seconds = view.metrics.get("train_seconds")
    cards = [
        ("test accuracy", f"{view.evaluation.accuracy:.2%}"),
        ("test loss", f"{view.evaluation.loss:.4f}"),
        ("epochs", f"{history.epochs_run}" + (f" (best {history.best_epoch})" if history.best_epoch else "")),
        ("parameters", f"{view.summary.total_params:,}"),
        ("training time", f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "–"),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{esc(k)}</div><div class="value">{esc(v)}</div></div>' for k, v in cards
    ) + "</div>"


def data_section(view: RunView) -> str:
    data = view.config.get("data", {})
    evaluation = view.evaluation
    h, w, c = view.trained.input_shape
    rows = [
        ("source", data.get("source", "–")),
        ("image shape", f"{h} × {w} × {c} (height × width × channels)"),
        ("classes", f"{len(evaluation.class_names)}: {', '.join(evaluation.class_names)}"),
        ("training images", data.get("train_size", "–")),
        ("of which validation", f"{view.trained.config.get('validation_split', '–')} (the last fraction, as Keras)"),
        ("test images", len(evaluation.labels)),
        ("test split", "the whole file (an imported model)" if data.get("whole_file_is_test_set") else
         "predefined by the file" if data.get("predefined_split") else
         f"{data.get('test_split', '–')} stratified, seed {data.get('split_seed', '–')}"),
        ("scaling", f"min-max with training statistics: (x - {view.trained.scaler.minimum:g}) / "
                    f"({view.trained.scaler.maximum:g} - {view.trained.scaler.minimum:g})"),
    ]
    counts = np.bincount(evaluation.labels, minlength=len(evaluation.class_names))
    per_class = table(["class", *evaluation.class_names], [["test images", *counts.tolist()]],
                      numeric=range(1, len(counts) + 1), cls="compact")
    samples = figure_block(
        figures.class_samples_figure(view.samples, title=f"sample images per class ({view.samples_split})"),
        "sample images per class", f"Random examples of every class from the {view.samples_split}.",
    )
    return section("data", "Data", table(["", ""], rows, cls="kv"), per_class, samples)


def config_section(view: RunView) -> str:
    fit = view.trained.config
    keys = ["epochs", "batch_size", "lr", "validation_split", "seed", "precision", "device", "early_stopping"]
    rows = [(k, json.dumps(fit[k]) if isinstance(fit[k], (dict, list)) else fit[k]) for k in keys if k in fit]
    rows += [(k, v) for k, v in fit.items() if k not in keys and not isinstance(v, (dict, list))]
    versions = view.config.get("versions", {})
    raw = f"<details><summary>config.json</summary><pre>{esc(json.dumps(view.config, indent=2))}</pre></details>"
    note = f'<p class="muted">convscope {esc(versions.get("convscope", __version__))}, torch {esc(versions.get("torch", "?"))}</p>'
    return section("config", "Training settings", table(["setting", "value"], rows, cls="kv"), raw, note)


def model_section(view: RunView) -> str:
    s = view.summary
    # An "inputs" column only for graphs that branch: a plain chain reads top to bottom without it.
    previous = ["input", *(l.name for l in s.layers)]
    branching = any(tuple(l.inputs) != (previous[i],) for i, l in enumerate(s.layers))
    rows = []
    for layer in s.layers:
        rf = f"{layer.receptive_field[0]}×{layer.receptive_field[1]}" if layer.receptive_field else ""
        rows.append([
            layer.name, layer.type, ", ".join(layer.inputs) if branching else "",
            _shape(layer.output_shape), f"{layer.trainable + layer.non_trainable:,}", f"{layer.flops:,}", rf,
            layer.formula or "",
        ])
    header = ["layer", "type", "inputs", "output shape", "params", "FLOPs", "receptive field", "output size"]
    if not any(r[2] for r in rows):
        header.pop(2)
        rows = [r[:2] + r[3:] for r in rows]
    numeric = [header.index("params"), header.index("FLOPs")]
    totals = (
        f"<p>Total params: <b>{s.total_params:,}</b> (trainable {s.trainable_params:,}, non-trainable "
        f"{s.non_trainable_params:,}) · FLOPs per image: <b>{s.flops:,}</b> · input {esc(_shape(s.input_shape))}</p>"
        '<p class="muted">Output size of a Conv or Pool layer along each axis: floor((W − F + 2P) / S) + 1 for '
        "input W, kernel F, padding P and stride S; with padding='same' it is ceil(W / S).</p>"
    )
    return section("model", f"Model: {s.name}", table(header, rows, numeric, cls="summary"), totals)


def training_section(view: RunView) -> str:
    imported = view.config.get("imported")
    if imported:  # `convscope import`: trained elsewhere, so no curves to draw
        return section("training", "Training", f"<p>Imported from <code>{esc(imported.get('from'))}</code> "
                       f"({esc(imported.get('format'))}): the model was trained outside convscope, so this run has "
                       "no training curves.</p>")
    history = view.trained.history
    rows = [
        [int(r["epoch"]), *(_number(r.get(k)) for k in ("loss", "accuracy", "val_loss", "val_accuracy")),
         _number(r.get("seconds"), 1)]
        for r in history.rows
    ]
    ending = []
    if history.best_epoch is not None:
        ending.append(f"best epoch {history.best_epoch}")
    if history.stopped_early:
        ending.append(f"stopped early after epoch {history.epochs_run}")
    if history.interrupted:
        ending.append(f"interrupted after epoch {history.epochs_run}")
    if history.weights_epoch is not None:
        ending.append(f"the saved weights are those of epoch {history.weights_epoch}")
    note = f"<p>{esc('; '.join(ending))}.</p>" if ending else ""
    curves = figure_block(figures.training_curves(history), "training and validation loss and accuracy per epoch")
    epochs = "<details><summary>every epoch</summary>" + table(
        ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"], rows, numeric=range(6), cls="compact"
    ) + "</details>"
    return section("training", "Training", curves, note, epochs)


def metrics_section(view: RunView) -> str:
    e = view.evaluation
    rows = [[r["class"], _number(r["precision"], 3), _number(r["recall"], 3), _number(r["f1"], 3), r["support"]]
            for r in e.per_class]
    scores = table(["class", "precision", "recall", "F1", "support"], rows, numeric=range(1, 5), cls="compact")
    bars = figure_block(figures.per_class_figure(e.per_class), "per-class precision, recall and F1")
    return section(
        "metrics", "Test metrics",
        f"<p>Accuracy <b>{e.accuracy:.4f}</b> and loss <b>{e.loss:.4f}</b> on {len(e.labels)} test images "
        "the model never saw while training.</p>", f'<div class="pair">{bars}{scores}</div>',
    )


def confusion_section(view: RunView) -> str:
    e = view.evaluation
    pairs = e.most_confused(10)
    cm = figure_block(figures.confusion_matrix_figure(e.confusion_matrix, e.class_names),
                      "confusion matrix", "Rows: the true class; columns: the predicted class.")
    if pairs:
        confused = table(["true class", "predicted as", "images"],
                         [[p["true"], p["predicted"], p["count"]] for p in pairs], numeric=[2], cls="compact")
    else:
        confused = "<p>No test image was misclassified.</p>"
    return section("confusion", "Confusion matrix",
                   f'<div class="pair">{cm}<div><h3>Most confused pairs</h3>{confused}</div></div>')


def predictions_section(view: RunView) -> str:
    e = view.evaluation
    picked = inspection.select(e, "random", GALLERY_SIZE, seed=0)
    mistakes = inspection.select(e, "mistakes", GALLERY_SIZE, seed=0)
    parts = [figure_block(figures.predictions_figure(picked.samples, picked.title), picked.title,
                          "Captions read true → predicted (probability); green is right, red is wrong.")]
    if mistakes.samples:
        parts.append(figure_block(figures.predictions_figure(mistakes.samples, mistakes.title), mistakes.title,
                                  f"{len(e.mistakes)} of {len(e.labels)} test images are misclassified; "
                                  f"{len(mistakes.samples)} of them, drawn at random."))
    else:
        parts.append("<p>No test image was misclassified.</p>")
    return section("predictions", "Predictions", *parts)


def inside_section(view: RunView) -> str:
    trained, e = view.trained, view.evaluation
    if not inspection.image_layers(trained):
        return section("inside", "Inside the model",
                       "<p>This model has no Conv or Pool layers: it looks at the pixels as one flat vector, so "
                       "there are no feature maps or filters to show.</p>")
    parts = [
        '<p class="muted">For one image, the output of every Conv and Pool layer, one tile per channel (each '
        "tile scaled to its own range). Grad-CAM weights the last convolution's channels by how much they raise "
        "the predicted class: red is where the evidence for that class lies.</p>"
    ]
    for kind, label in (("correct", "a correctly classified image"), ("top-losses", "the most confidently wrong image")):
        chosen = inspection.select(e, kind, 1, seed=0).samples
        if not chosen:
            continue
        s = chosen[0]
        fig = figures.feature_maps_figure(s, inspection.feature_maps(trained, s.image),
                                          inspection.grad_cam(trained, s.image),
                                          title=f"feature maps of {label} (test image #{s.index})")
        parts.append(f"<h3>{esc(label.capitalize())}: {esc(s.caption)}</h3>" + figure_block(fig, f"feature maps of {label}"))
    filters = inspection.first_filters(trained)
    if filters is not None:
        parts.append("<h3>First-layer filters</h3>" + figure_block(
            figures.filters_figure(filters), "first-layer filters",
            "The kernels the first convolution slides over the pixels (red positive, blue negative weights).",
        ))
    return section("inside", "Inside the model", *parts)


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); background: #fff; }
header { background: var(--bg); border-bottom: 1px solid var(--line); padding: 24px 0 16px; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); font-size: 21px; }
h3 { margin: 24px 0 8px; font-size: 16px; }
.muted { color: var(--muted); }
nav { margin-top: 12px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.card .value { font-size: 22px; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; }
table.kv thead { display: none; }
table.summary { width: 100%; }
table.summary td { white-space: nowrap; }
table.summary td:last-child { white-space: normal; }
.pair { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
.pair figure { margin-top: 8px; }
table.summary td:last-child { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.scroll { overflow-x: auto; }
figure { margin: 12px 0 20px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow-x: auto;
      font-size: 12.5px; }
footer { margin: 48px 0 24px; color: var(--muted); font-size: 13px; }
"""

SECTIONS = (("data", "Data"), ("config", "Settings"), ("model", "Model"), ("training", "Training"),
            ("metrics", "Metrics"), ("confusion", "Confusion"), ("predictions", "Predictions"), ("inside", "Inside the model"))


def render(view: RunView) -> str:
    """The whole page as a string (no file written)."""
    data_source = view.config.get("data", {}).get("source", "")
    title = f"{view.name}: {view.model_name} on {data_source}" if data_source else view.name
    nav = "".join(f'<a href="#{anchor}">{esc(label)}</a>' for anchor, label in SECTIONS)
    body = [
        data_section(view), config_section(view), f'<div class="scroll">{model_section(view)}</div>',
        training_section(view), metrics_section(view), confusion_section(view), predictions_section(view),
        inside_section(view),
    ]
    made = time.strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>convscope report: {esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{esc(title)}</h1>'
        f'<div class="muted">run directory {esc(view.path)}</div>{headline(view)}<nav>{nav}</nav></div></header>'
        f'<main class="wrap">{"".join(body)}</main>'
        f'<footer class="wrap">Written by convscope {esc(__version__)} on {esc(made)}; '
        f"recreate it with <code>convscope report {esc(view.path)}</code>.</footer>"
        "</body></html>\n"
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

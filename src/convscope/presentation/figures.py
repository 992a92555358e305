"""matplotlib figures of a run, readable at a glance: titles, axis labels, class names.

Every function builds a `matplotlib.figure.Figure` directly, without pyplot: no global figure
state, no display needed (PNG goes through the Agg canvas). A bare Figure does not render in a
notebook, so the API hands them out wrapped in `picture.Picture`. `to_png` turns any of them into
PNG bytes. Charts of plain numbers (curves, confusion matrix, per-class bars, spreads) live in `charts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data.dataset import Dataset
from ..data.framing import InputContract, frame, ink_box, ink_of
from ..evaluation.evaluate import EvaluationResult
from ..evaluation.inspection import FeatureMap, Filters, GradCam, Sample, mosaic, percent, select, tile_grid
from ..i18n import _
from ..training.history import History
from .charts import CORRECT, NEUTRAL, TRAIN_COLOR, WRONG
from .fonts import fit_fonts
from .images import figure_png

MAX_BARS = 20  # beyond this many classes a probability panel lists the 10 most likely


def to_png(figure: Figure, path: str | Path | None = None) -> bytes:
    """PNG bytes of a figure (and the same bytes written to `path`, when given)."""
    data = figure_png(figure)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _show_image(ax, image: np.ndarray) -> None:
    """A raw (H, W, C) image as the dataset stores it: gray for one channel, colour for three."""
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3:
        if pixels.dtype != np.uint8:  # float RGB: stretch to [0, 1], which imshow needs
            lo, hi = float(pixels.min()), float(pixels.max())
            pixels = (pixels - lo) / (hi - lo if hi > lo else 1.0)
        ax.imshow(pixels, interpolation="nearest")
    else:
        ax.imshow(pixels, cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _verdict_color(sample: Sample) -> str:
    return NEUTRAL if sample.correct is None else CORRECT if sample.correct else WRONG


def _probability_bars(ax, sample: Sample) -> None:
    k = len(sample.class_names)
    order = np.arange(k) if k <= MAX_BARS else np.argsort(sample.probabilities)[::-1][:10]
    colors = []
    for i in order:
        if i == sample.predicted:
            colors.append(_verdict_color(sample))
        elif sample.label is not None and i == sample.label:
            colors.append(CORRECT)
        else:
            colors.append("#afb8c1")
    positions = np.arange(len(order))
    ax.barh(positions, sample.probabilities[order], color=colors, height=0.75)
    ax.set_yticks(positions, [sample.class_names[i] for i in order], fontsize=7 if len(order) > 12 else 8)
    ax.invert_yaxis()  # first class at the top
    for y, i in zip(positions, order):  # the number beside the bar, as the course prints it
        ax.text(1.02, y, percent(float(sample.probabilities[i])), va="center", ha="left", fontsize=7, clip_on=False)
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1])
    ax.tick_params(axis="x", labelsize=7)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def predictions_figure(samples: Sequence[Sample], title: str, bars: bool = True, columns: int = 4) -> Figure:
    """A gallery: each image captioned `true → predicted (p)` (green when right, red when wrong),
    with every class's probability as a bar beside it when `bars`."""
    n = len(samples)
    if n == 0:
        figure = Figure(figsize=(6, 1.2))
        figure.text(
            0.5, 0.5, _("{title}: no images to show").format(title=title), ha="center", va="center", fontsize=12
        )
        return fit_fonts(figure)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    per = 2 if bars else 1
    cell_w = 3.3 if bars else 1.8  # room for the percentages beside the bars
    figure = Figure(figsize=(cell_w * columns, 2.5 * rows + 0.5), layout="constrained")
    grid = figure.add_gridspec(rows, columns * per, width_ratios=[1, 1.15] * columns if bars else None)
    for i, s in enumerate(samples):
        r, c = divmod(i, columns)
        ax = figure.add_subplot(grid[r, c * per])
        _show_image(ax, s.image)
        where = f"#{s.index}  " if s.index is not None else ""
        ax.set_title(f"{where}{s.caption}\n{s.verdict}", fontsize=9, color=_verdict_color(s))
        if bars:
            _probability_bars(figure.add_subplot(grid[r, c * per + 1]), s)
    figure.suptitle(title, fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def gallery(result: EvaluationResult, kind: str = "random", n: int = 6, seed: int | None = None) -> Figure:
    """`n` test images of a result (`kind` as in `inspection.select`: 'random', 'mistakes' ...) with their
    class probabilities."""
    chosen = select(result, kind, n, seed=seed)
    return predictions_figure(chosen.samples, chosen.title)


def class_samples_figure(data: Dataset, per_class: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """A grid of example images: one row per class, its name on the left."""
    rng = np.random.default_rng(seed)
    k = data.num_classes
    figure = Figure(figsize=(0.7 * per_class + 0.8, 0.7 * k + 0.5), layout="constrained")
    axes = np.atleast_2d(figure.subplots(k, per_class, squeeze=False))
    for c in range(k):
        pool = np.flatnonzero(data.labels == c)
        chosen = np.sort(rng.choice(pool, size=min(per_class, len(pool)), replace=False)) if len(pool) else pool
        images = np.asarray(data.images[chosen])  # one read, also for images that stay on disk until indexed
        for j in range(per_class):
            ax = axes[c, j]
            if j < len(chosen):
                _show_image(ax, images[j])
            else:
                ax.axis("off")
            if j == 0:
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylabel(data.class_names[c], rotation=0, ha="right", va="center", fontsize=10)
    if title is None:
        title = _("sample images per class ({source})").format(source=data.source or _("dataset"))
    figure.suptitle(title, fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def _shape_text(shape: Sequence[int]) -> str:
    return " × ".join(str(s) for s in shape)


def feature_maps_figure(
    sample: Sample, maps: Sequence[FeatureMap], cam: GradCam | None = None, title: str | None = None
) -> Figure:
    """One image, where Grad-CAM says the model looked, its class probabilities, then every Conv and
    Pool layer's activations as a tile grid titled with the layer's output shape."""
    n = len(maps)
    heights = [2.4] + [_mosaic_height(m) for m in maps]
    figure = Figure(figsize=(10, sum(heights) + 0.6), layout="constrained")
    grid = figure.add_gridspec(n + 1, 3, height_ratios=heights)
    ax = figure.add_subplot(grid[0, 0])
    _show_image(ax, sample.image)
    caption = _("input: {caption}").format(caption=sample.caption)
    ax.set_title(f"{caption}\n{sample.verdict}", fontsize=9, color=_verdict_color(sample))
    ax = figure.add_subplot(grid[0, 1])
    if cam is not None:
        _show_image(ax, sample.image)
        ax.imshow(cam.heatmap, cmap="jet", alpha=0.45, interpolation="bilinear")
        ax.set_title(_("Grad-CAM for '{name}' ({layer})").format(name=cam.class_name, layer=cam.layer), fontsize=9)
    else:
        ax.axis("off")
        ax.set_title(_("Grad-CAM needs a Conv2D layer"), fontsize=9)
    _probability_bars(figure.add_subplot(grid[0, 2]), sample)
    for row, fmap in enumerate(maps, start=1):
        ax = figure.add_subplot(grid[row, :])
        tiles = mosaic(fmap.values)
        ax.imshow(np.ma.masked_invalid(tiles), cmap="viridis", interpolation="nearest", vmin=0, vmax=1)
        ax.set_facecolor("white")
        ax.set_axis_off()
        ax.set_title(
            _("{layer} ({type}): output {shape} — {count} maps of {h}×{w}").format(
                layer=fmap.layer,
                type=fmap.type,
                shape=_shape_text(fmap.output_shape),
                count=fmap.values.shape[0],
                h=fmap.values.shape[1],
                w=fmap.values.shape[2],
            ),
            fontsize=9,
        )
    if title is None:
        title = (
            _("feature maps of test image #{index}").format(index=sample.index)
            if sample.index is not None
            else _("feature maps of image")
        )
    figure.suptitle(title, fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def _mosaic_height(fmap: FeatureMap) -> float:
    """Inches of figure height that show a layer's tile grid at the figure's full width."""
    c, h, w = fmap.values.shape
    rows, columns = tile_grid(c, h, w)
    return float(np.clip(10 * rows * (h + 1) / (columns * (w + 1)), 0.8, 6.0)) + 0.35


def filters_figure(filters: Filters) -> Figure:
    """The first Conv2D layer's kernels, each a small image (gray for one input channel, RGB for three);
    blue is negative weight, red positive, on one scale for the whole layer."""
    weights = filters.weights  # (F, C, kh, kw)
    count, channels = weights.shape[:2]
    columns = min(count, 8)
    rows = -(-count // columns)
    figure = Figure(figsize=(1.1 * columns + 1.2, 1.1 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    limit = float(np.abs(weights).max()) or 1.0
    image = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        if channels == 3:
            kernel = (weights[i].transpose(1, 2, 0) / limit + 1) / 2
            ax.imshow(np.clip(kernel, 0, 1), interpolation="nearest")
        else:
            image = ax.imshow(weights[i].mean(axis=0), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label=_("weight"))
    kh, kw = weights.shape[2:]
    figure.suptitle(
        _("first-layer filters: {layer}, {count} kernels of {kh}×{kw}×{channels}").format(
            layer=filters.layer, count=count, kh=kh, kw=kw, channels=channels
        ),
        fontsize=12,
        fontweight="bold",
    )
    return fit_fonts(figure)


def comparison_figure(histories: Sequence[tuple[str, History]]) -> Figure:
    """Validation loss and accuracy of several runs on shared axes (training curves dashed, fainter)."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    axes = figure.subplots(1, 2)
    colors = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#1b7c83", "#9a6700", "#57606a"]
    for i, (name, history) in enumerate(histories):
        color = colors[i % len(colors)]
        epochs = history.column("epoch")
        lines = (  # (column, label, style): validation solid, training dashed and faint
            ("val_{metric}", _("{name} (validation)"), {"marker": "o", "markersize": 3}),
            ("{metric}", _("{name} (train)"), {"linestyle": "--", "alpha": 0.45}),
        )
        for ax, metric in zip(axes, ("loss", "accuracy")):
            for column, label, style in lines:
                values = history.column(column.format(metric=metric))
                if values:
                    ax.plot(epochs[: len(values)], values, color=color, label=label.format(name=name), **style)
    labels = {"loss": (_("loss"), _("validation loss")), "accuracy": (_("accuracy"), _("validation accuracy"))}
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel(_("epoch"))
        ax.set_ylabel(labels[metric][0])
        ax.set_title(labels[metric][1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(_("runs compared"), fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def grad_cam_figure(samples: Sequence[Sample], cams: Sequence[GradCam | None], title: str = "Grad-CAM") -> Figure:
    """Each image beside itself under its Grad-CAM heat map: red is where the evidence for the predicted
    class lies. The caption is the sample's `true → predicted (p)`."""
    n = len(samples)
    figure = Figure(figsize=(2.6 * max(n, 1), 3.0), layout="constrained")
    axes = figure.subplots(2, max(n, 1), squeeze=False)
    for column, (s, cam) in enumerate(zip(samples, cams)):
        top, bottom = axes[0, column], axes[1, column]
        _show_image(top, s.image)
        where = f"#{s.index}  " if s.index is not None else ""
        top.set_title(f"{where}{s.caption}\n{s.verdict}", fontsize=9, color=_verdict_color(s))
        _show_image(bottom, s.image)
        if cam is not None:
            bottom.imshow(cam.heatmap, cmap="jet", alpha=0.45, interpolation="bilinear")
            bottom.set_title(_("evidence for '{name}'").format(name=cam.class_name), fontsize=8)
        else:
            bottom.set_title(_("Grad-CAM needs a Conv2D layer"), fontsize=8)
    figure.suptitle(title, fontsize=12, fontweight="bold")
    return fit_fonts(figure)


def contract_figure(images: np.ndarray, contract: InputContract, examples: int = 5) -> Figure:
    """The learned input contract at a glance: the intensity histogram with its dominant (background) level and
    the ink threshold, training images with their measured ink box (and, for "fit", the learned frame), and what
    a dark-on-light picture of one of them, small and off-centre on paper, becomes."""
    images = np.asarray(images[:examples])
    lo, hi = contract.pixel_range
    figure = Figure(figsize=(2.2 * (examples + 3), 2.6), layout="constrained")
    axes = figure.subplots(1, examples + 3, width_ratios=[2.2] + [1] * (examples + 2))
    gray = (np.asarray(images, dtype=np.float64).mean(axis=-1) - lo) / (hi - lo)
    axes[0].hist(gray.ravel() * (hi - lo) + lo, bins=32, range=(lo, hi), color=NEUTRAL, log=True)
    axes[0].axvline(contract.threshold_value, color=WRONG, linestyle="--", label=_("ink threshold"))
    axes[0].set_xlabel(_("pixel value"))
    background = {"dark": _("dark"), "light": _("light")}.get(contract.background or "", _("none"))
    axes[0].set_title(_("background: {background}").format(background=background), fontsize=9)
    axes[0].legend(fontsize=7, loc="upper center")
    for ax, image in zip(axes[1 : examples + 1], images):
        _show_image(ax, image)
        found = ink_box(ink_of(image, contract), contract.threshold) if contract.framing != "none" else None
        if found is not None:
            top, left, bottom, right = found.box
            ax.add_patch(_rectangle(left - 0.5, top - 0.5, right - left, bottom - top, WRONG, "-"))
        if contract.framing == "fit":
            h, w = image.shape[:2]
            side = contract.fraction * max(h, w)
            ax.add_patch(_rectangle((w - side) / 2 - 0.5, (h - side) / 2 - 0.5, side, side, TRAIN_COLOR, "--"))
    paper = _on_paper(images[0], contract)
    _show_image(axes[-2], paper)
    axes[-2].set_title(_("a picture"), fontsize=9)
    _show_image(axes[-1], frame(paper, contract, images[0].shape[:2]).image)
    axes[-1].set_title(_("model input"), fontsize=9)
    figure.suptitle(_("input contract: {framing}").format(framing=contract.framing), fontsize=11, fontweight="bold")
    return fit_fonts(figure)


def _rectangle(x: float, y: float, w: float, h: float, color: str, style: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor=color, linestyle=style, linewidth=1.2)


def _on_paper(image: np.ndarray, contract: InputContract) -> np.ndarray:
    """One training image as someone's picture: on the opposite background, half size, off-centre on a 3x canvas."""
    lo, hi = contract.pixel_range
    flipped = (
        (lo + hi - np.asarray(image, dtype=np.float32))
        if contract.background is not None
        else np.asarray(image, np.float32)
    )
    h, w = image.shape[:2]
    canvas = np.empty((3 * h, 3 * w, image.shape[2]), np.float32)
    canvas[...] = (
        np.median(flipped.reshape(-1, image.shape[2]), axis=0)
        if contract.background is None
        else (hi if contract.background == "dark" else lo)
    )
    canvas[h // 2 : h // 2 + h, 2 * w - w // 2 : 3 * w - w // 2] = flipped
    return canvas

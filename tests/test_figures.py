"""Figures: valid PNGs, the expected panels, and the right words and numbers on them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.lines import Line2D
from PIL import Image

from convscope.evaluation import inspection
from convscope.presentation import charts, figures
from convscope.training.history import History


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # checks the chunks' CRCs
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def history(stopped: bool) -> History:
    rows = [
        {
            "epoch": e,
            "loss": 1.0 / e,
            "accuracy": 1 - 0.5 / e,
            "val_loss": [0.9, 0.5, 0.4, 0.45, 0.5][e - 1],
            "val_accuracy": [0.7, 0.8, 0.85, 0.84, 0.83][e - 1],
            "seconds": 1.0,
        }
        for e in range(1, 6)
    ]
    return History(rows, best_epoch=3, weights_epoch=3, stopped_early=stopped)


def _vertical_lines(ax) -> dict[str, float]:
    found = {}
    for line in ax.get_lines():
        xs = np.asarray(line.get_xdata(), dtype=float)
        if len(xs) == 2 and xs[0] == xs[1]:
            found[line.get_label()] = xs[0]
    return found


def test_training_curves_mark_best_epoch_and_early_stop(tmp_path):
    figure = charts.training_curves(history(stopped=True))
    assert len(figure.axes) == 2
    loss_ax, acc_ax = figure.axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "accuracy"
    assert loss_ax.get_xlabel() == "epoch" and "loss" in loss_ax.get_ylabel()
    for ax in figure.axes:
        labels = [line.get_label() for line in ax.get_lines() if isinstance(line, Line2D)]
        assert labels[:2] == ["train", "validation"]
        assert _vertical_lines(ax) == {"best epoch 3": 3.0, "stopped early at epoch 5": 5.0}
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_ydata(), [0.9, 0.5, 0.4, 0.45, 0.5])
    size = png_size(figures.to_png(figure, tmp_path / "curves.png"))
    assert size == (1000, 380) and (tmp_path / "curves.png").stat().st_size > 10_000
    plain = charts.training_curves(history(stopped=False))
    assert _vertical_lines(plain.axes[0]) == {"best epoch 3": 3.0}


@pytest.mark.slow
def test_confusion_matrix_shows_class_names_and_counts(view):
    e = view.evaluation
    figure = charts.confusion_matrix_figure(e.confusion_matrix, e.class_names)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(e.class_names)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(e.class_names)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    for (true, predicted), count in np.ndenumerate(e.confusion_matrix):
        if count or true == predicted:
            assert cells[(true, predicted)] == count
    assert f"{len(e.labels)} test images" in ax.get_title()
    png_size(figures.to_png(figure))


@pytest.mark.slow
def test_per_class_bars_are_the_scores(view):
    rows = view.evaluation.per_class
    figure = charts.per_class_figure(rows)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [r["class"] for r in rows]
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 3 * len(rows)
    expected = [r[k] for k in ("precision", "recall", "f1") for r in rows]
    np.testing.assert_allclose(heights, expected)
    png_size(figures.to_png(figure))


@pytest.mark.slow
def test_prediction_gallery_has_an_image_and_a_bar_panel_per_sample(view, tmp_path):
    chosen = inspection.select(view.evaluation, "top-losses", 5)
    figure = figures.predictions_figure(chosen.samples, chosen.title)
    assert len(figure.axes) == 10
    images, bars = figure.axes[0::2], figure.axes[1::2]
    for s, image_ax, bar_ax in zip(chosen.samples, images, bars):
        assert image_ax.get_title() == f"#{s.index}  {s.caption}\n{s.verdict}" and s.verdict == "wrong"
        # every class's probability as a number beside its bar, as the course prints it
        assert [t.get_text() for t in bar_ax.texts] == [f"{p:.1%}" for p in s.probabilities]
        assert image_ax.title.get_color() == figures.WRONG
        assert [t.get_text() for t in bar_ax.get_yticklabels()] == list(s.class_names)
        np.testing.assert_allclose([p.get_width() for p in bar_ax.patches], s.probabilities, rtol=1e-6)
    width, height = png_size(figures.to_png(figure, tmp_path / "top.png"))
    assert width > height > 200
    compact = figures.predictions_figure(chosen.samples, chosen.title, bars=False)
    assert len(compact.axes) == 5
    empty = figures.predictions_figure((), "mistakes")
    assert not empty.axes and "no images to show" in empty.texts[0].get_text()


@pytest.mark.slow
def test_class_sample_grid_rows_are_classes(view):
    figure = figures.class_samples_figure(view.samples, per_class=6)
    assert len(figure.axes) == 10 * 6
    row_labels = [figure.axes[r * 6].get_ylabel() for r in range(10)]
    assert row_labels == list(view.evaluation.class_names)
    for r in range(10):  # every shown image really is of that row's class
        shown = [ax.get_images()[0].get_array() for ax in figure.axes[r * 6 : r * 6 + 6]]
        pool = view.samples.images[view.samples.labels == r][..., 0]
        for pixels in shown:
            assert any(np.array_equal(pixels, p) for p in pool)
    png_size(figures.to_png(figure))


@pytest.mark.slow
def test_feature_map_and_filter_figures(view):
    s = inspection.select(view.evaluation, "index", index=0).samples[0]
    maps = inspection.feature_maps(view.trained, s.image)
    figure = figures.feature_maps_figure(s, maps, inspection.grad_cam(view.trained, s.image))
    assert len(figure.axes) == 3 + len(maps)
    titles = [ax.get_title() for ax in figure.axes[3:]]
    assert titles[0].startswith("conv2d (Conv2D): output 28 × 28 × 32")
    assert titles[-1].startswith("max_pool2d_1 (MaxPool2D): output 7 × 7 × 32")
    assert figure.axes[1].get_title().startswith("Grad-CAM for")
    png_size(figures.to_png(figure))
    filters = figures.filters_figure(inspection.first_filters(view.trained))
    kernels = [ax for ax in filters.axes if ax.get_images() and ax.get_title()]
    assert len(kernels) == 32
    png_size(figures.to_png(filters))


def test_mosaic_tiles_each_channel_separately():
    values = np.stack([np.full((3, 4), 5.0), np.arange(12.0).reshape(3, 4), -np.arange(12.0).reshape(3, 4)])
    tiles = inspection.mosaic(values, columns=2)
    assert tiles.shape == (2 * 4 - 1, 2 * 5 - 1)
    np.testing.assert_array_equal(tiles[:3, :4], 0)  # a constant channel is flat
    np.testing.assert_allclose(tiles[:3, 5:9], np.arange(12.0).reshape(3, 4) / 11)
    np.testing.assert_allclose(tiles[4:7, :4], 1 - np.arange(12.0).reshape(3, 4) / 11)
    assert np.isnan(tiles[3]).all() and np.isnan(tiles[4:, 5:]).all()  # gaps and the empty slot


def test_comparison_figure_overlays_validation_curves():
    figure = figures.comparison_figure([("mlp", history(False)), ("cnn", history(True))])
    loss_ax, acc_ax = figure.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["mlp (validation)", "mlp (train)", "cnn (validation)", "cnn (train)"]
    assert acc_ax.get_title() == "validation accuracy"
    png_size(figures.to_png(figure))

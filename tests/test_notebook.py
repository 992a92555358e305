"""Jupyter: rich reprs that match the report, pictures that render, and fit's live display.

The last test runs examples/course.ipynb in a real kernel (nbclient), as a learner would."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import convscope as cs
from convscope.presentation import live
from convscope.presentation.notebook import VIEWS, install
from convscope.training import progress
from convscope.training.notebook_progress import NotebookProgress
from convscope.training.progress import ProgressBar
from test_figures import png_size
from test_report import decode_images, parse

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course.ipynb"


def formats(obj) -> dict:
    """What a notebook shows for `obj`, by MIME type: IPython's display formatter with convscope's views."""
    from IPython.core.formatters import DisplayFormatter

    formatter = DisplayFormatter()
    install(formatter)
    data, _metadata = formatter.format(obj)
    return data


def html(obj) -> str:
    return formats(obj)["text/html"]


def text(obj) -> str:
    return formats(obj)["text/plain"]


def test_every_view_names_a_function_of_the_presentation_package():
    import importlib

    for _module, _name, _mime, where, function in VIEWS:
        assert callable(getattr(importlib.import_module(f"convscope.presentation.{where}"), function))


def table_with(page, first_row: list[str]) -> list[list[str]]:
    return next(t for t in page.tables if t and t[0][: len(first_row)] == first_row)


@pytest.mark.slow
def test_dataset_shows_facts_counts_and_a_strip_per_class(view):
    data = view.samples
    page = parse(html(data))
    assert page.style.startswith(".convscope")  # the report's stylesheet, scoped to the cell
    facts = dict(row for row in table_with(page, ["", ""])[1:])
    assert facts["images"] == f"{len(data):,}" and facts["image shape"].startswith("28 × 28 × 1")
    assert facts["values"] == f"uint8, {int(data.images.min())} .. {int(data.images.max())}"
    classes = table_with(page, ["class", "images", "share", "samples"])
    assert [row[0] for row in classes[1:]] == list(data.class_names)
    assert [int(row[1].replace(",", "")) for row in classes[1:]] == data.class_counts().tolist()
    strips = decode_images(page)
    assert len(strips) == data.num_classes and all(size == (8 * 56 + 7 * 2, 56) for size in strips)
    assert text(data) == cs.describe(data)  # the text fallback is `describe`, not the arrays


@pytest.mark.slow
def test_summary_html_holds_every_formula_like_the_report(view):
    s = view.summary
    page = parse(html(s))
    rows = table_with(page, ["layer", "type"])
    assert [row[0] for row in rows[1:]] == [layer.name for layer in s.layers]
    assert [row[-1] for row in rows[1:]] == [layer.formula or "" for layer in s.layers]
    assert "floor((28 - 2 + 2*0) / 2) + 1 = 14" in " ".join(page.text) and "44,010" in " ".join(page.text)
    report = parse(Path(view.path / "report.html").read_text())
    assert table_with(report, ["layer", "type"]) == rows  # the same section in both places


@pytest.mark.slow
def test_history_and_trained_model_show_curves_and_epochs(view):
    history = view.trained.history
    page = parse(html(history))
    (size,) = decode_images(page)
    assert size[0] > 600
    epochs = table_with(page, ["epoch", "loss"])
    assert [int(r[0]) for r in epochs[1:]] == history.column("epoch")
    assert [float(r[1]) for r in epochs[1:]] == pytest.approx(history.column("loss"), abs=5e-5)
    assert f"best epoch {history.best_epoch}" in " ".join(page.text)
    assert text(history).splitlines()[0].split() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    model = parse(html(view.trained))
    words = " ".join(model.text)
    assert "44,010" in words and "Trained model: cnn" in words
    assert table_with(model, ["layer", "type"]) and table_with(model, ["epoch", "loss"])


@pytest.mark.slow
def test_evaluation_shows_scores_matrix_and_confusions(view):
    e = view.evaluation
    page = parse(html(e))
    assert len(decode_images(page)) == 2  # per-class bars and the confusion matrix
    scores = table_with(page, ["class", "precision", "recall", "F1", "support"])
    assert [float(r[2]) for r in scores[1:]] == pytest.approx([r["recall"] for r in e.per_class], abs=5e-4)
    assert [int(r[4]) for r in scores[1:]] == [r["support"] for r in e.per_class]
    words = " ".join(page.text)
    assert f"{e.accuracy:.4f}" in words and f"{e.loss:.4f}" in words
    confused = table_with(page, ["true class", "predicted as", "images"])
    assert confused[1:] == [[p["true"], p["predicted"], str(p["count"])] for p in e.most_confused(10)]
    assert "precision" in e.text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "call",
    [
        lambda e: cs.show_random(e, 4, seed=0),
        lambda e: cs.show_mistakes(e, 3, seed=0),
        lambda e: cs.show_top_losses(e, 3),
        lambda e: cs.show_feature_maps(e),
        lambda e: cs.show_filters(e),
        lambda e: cs.show_grad_cam(e, 3),
    ],
)
def test_everything_show_returns_renders_as_a_png(view, call):
    picture = call(view.evaluation)
    assert not hasattr(picture, "_repr_html_")  # Jupyter shows the PNG itself
    width, height = png_size(picture._repr_png_())
    assert width > 300 and height > 150
    assert picture.axes and picture.figure.axes == picture.axes  # still the matplotlib figure underneath


def test_grad_cam_and_feature_maps_need_the_model():
    e = cs.EvaluationResult(
        0.1, 1.0, np.eye(2, dtype=np.float32), np.array([0, 1]), ("a", "b"), np.zeros((2, 4, 4, 1), np.uint8)
    )
    with pytest.raises(cs.UserError, match="does not know its model"):
        cs.show_filters(e)


class FakeDisplay:
    """IPython's display(obj, display_id=True) and its handle's update(), recording what a cell would hold."""

    def __init__(self) -> None:
        self.outputs: list[object] = []
        self.updates = 0

    def __call__(self, obj, display_id=False):
        assert display_id is True
        index = len(self.outputs)
        self.outputs.append(obj)
        fake = self

        class Handle:
            def update(self, new) -> None:
                fake.outputs[index] = new
                fake.updates += 1

        return Handle()


def test_notebook_progress_keeps_two_outputs_and_marks_the_best_epoch():
    shown = FakeDisplay()
    callback = NotebookProgress(show=shown)
    callback.set_model(SimpleNamespace(stop_training=False))
    callback.set_params({"epochs": 4, "steps": 10, "verbose": 1})
    callback.on_train_begin()
    for epoch, val_loss in enumerate([0.9, 0.5, 0.6, 0.7]):  # Keras' 0-based epochs: the best is the 2nd
        callback.on_epoch_begin(epoch)
        for batch in range(10):
            callback.on_train_batch_end(batch, {"loss": 1.0 / (epoch + 1), "accuracy": 0.5})
        callback.on_epoch_end(
            epoch,
            {
                "loss": 1.0 / (epoch + 1),
                "accuracy": 0.5 + epoch / 10,
                "val_loss": val_loss,
                "val_accuracy": 0.8,
                "lr": 1e-3,
            },
        )
    callback.model.stop_training = True  # as EarlyStopping ends a run
    callback.on_train_end()
    status, chart = shown.outputs  # one status line and one chart, however many epochs
    assert "4 epochs in" in repr(status) and "best epoch 2" in repr(status) and "stopped early" in repr(status)
    assert "4 epochs in" in html(status)
    figure = live.chart_figure(chart)
    lines = {
        line.get_label(): line.get_xdata()[0]
        for ax in figure.axes
        for line in ax.get_lines()
        if line.get_label().startswith(("best", "stopped"))
    }
    assert lines == {"best epoch 2": 2, "stopped early at epoch 4": 4}
    np.testing.assert_allclose(figure.axes[0].get_lines()[1].get_ydata(), [0.9, 0.5, 0.6, 0.7])
    assert len(formats(chart)["image/png"]) < 80_000
    assert shown.updates >= 4 + 4  # the chart redrawn every epoch, the status at least as often


def test_fit_picks_the_notebook_display_only_in_a_kernel(monkeypatch):
    assert isinstance(progress.default_progress(None), ProgressBar)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert isinstance(progress.default_progress(None), NotebookProgress)
    assert isinstance(progress.default_progress(io.StringIO()), ProgressBar)  # an explicit log stays text


def test_in_notebook_is_false_outside_a_kernel():
    assert progress.in_notebook() is False


def _outputs_of(nb, pattern: str) -> list[dict]:
    cell = next(c for c in nb.cells if c.cell_type == "code" and re.search(pattern, c.source))
    return cell.outputs


def _html(outputs) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


# Run after the notebook's own cells (not part of it): what the kernel holds, for the checks below.
_PROBE = """
import json as _json
from convscope.presentation import Picture as _Picture
_pictures = {
    n: [t.get_text() for ax in v.figure.axes for t in [ax.title, *ax.texts]]
    for n, v in Out.items() if isinstance(v, _Picture)
}
_values = run.history.column("val_loss")
print(_json.dumps({
    "weights_epoch": run.history.weights_epoch,
    "lowest_val_loss_epoch": run.history.rows[_values.index(min(_values))]["epoch"],
    "report": str(page.with_suffix("") / "report.html"),
    "pictures": _pictures,
}))
"""


@pytest.mark.slow
def test_course_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    """The course's cells with its own Keras arguments, end to end; every best epoch shown is the one kept."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(COURSE, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    env_path = os.pathsep.join(p for p in [str(Path(cs.__file__).parents[1]), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", env_path)  # the kernel imports this checkout's convscope
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", "".join(out.get("traceback", []))
    probe = json.loads(nb.cells[-1].outputs[-1].text.strip().splitlines()[-1])

    steps = "".join(o.get("text", "") for o in _outputs_of(nb, r"explain=True"))
    shapes = re.findall(r"^  (\S+(?: \S+)?)\s{2,}(\([\d, ]+\))", steps, flags=re.M)
    assert shapes == [  # the course's order, the shape after each step
        ("as stored", "(28, 28, 1250)"),
        ("transpose", "(1250, 28, 28)"),
        ("reshape", "(1250, 28, 28, 1)"),
        ("scale", "(1250, 28, 28, 1)"),
        ("labels", "(1250,)"),
        ("one-hot", "(1250, 10)"),
    ], steps
    spec_summary = _html(_outputs_of(nb, r"cs\.summary\(small_cnn, input_shape"))
    assert "small-cnn" in spec_summary and "floor((28 - 2 + 2*0) / 2) + 1 = 14" in spec_summary
    summary = _html(_outputs_of(nb, r"cs\.summary\(cnn\)"))
    assert "floor((28 - 2 + 2*0) / 2) + 1 = 14" in summary and "ceil(28 / 1) = 28" in summary
    assert "44,010" in summary

    fit_cell = _outputs_of(nb, r"cs\.fit\(")
    assert len(json.dumps(fit_cell)) < 200_000
    assert sum("image/png" in o.get("data", {}) for o in fit_cell) == 1  # one chart, redrawn in place
    assert "epochs in" in _html(fit_cell)
    streams = "".join(o.text for o in fit_cell if o.output_type == "stream")  # verbose=1's lines, nothing else
    assert "Restoring model weights from the end of the best epoch" in streams
    assert all(line.startswith(("Epoch ", "Restoring ")) for line in streams.splitlines()), streams

    # Every best epoch the learner is shown (status line, verbose=1, the run, the report) is the one kept
    kept = probe["weights_epoch"]
    shown_in = [json.dumps(fit_cell), json.dumps(_outputs_of(nb, r"^run$"))]
    report = Path(tmp_path, probe["report"]).read_text()
    shown_in.append(report)
    assert "step: transpose" in report and "(1250, 28, 28, 1)" in report  # the report lists the data steps too
    shown = [int(n) for text in shown_in for n in re.findall(r"best epoch:? (\d+)", text)]
    assert len(shown) >= 3 and set(shown) == {kept}, (shown, kept)
    if probe["lowest_val_loss_epoch"] != kept:  # min_delta=0.1 kept an earlier epoch: the status line says why
        assert f"the run kept epoch {kept}" in _html(fit_cell)

    evaluation = parse(_html(_outputs_of(nb, r"result = cs\.evaluate")))
    scores = table_with(evaluation, ["class", "precision", "recall", "F1", "support"])
    assert [row[0] for row in scores[1:]] == [str(d) for d in range(10)]
    # the course's prediction view in one call: the image, ten percentages and the verdict
    one = next(c for c in nb.cells if c.cell_type == "code" and "show_random(result, 1," in c.source)
    texts = probe["pictures"][str(one.execution_count)]
    assert len([t for t in texts if re.fullmatch(r"\d+\.\d%", t)]) == 10
    assert any(t.endswith(("\ncorrect", "\nwrong")) for t in texts), texts
    mistakes = _outputs_of(nb, r"show_mistakes")
    (png,) = [o.data["image/png"] for o in mistakes if "image/png" in o.get("data", {})]
    assert png_size(base64.b64decode(png))[0] > 300

    experiment = _outputs_of(nb, r"cs\.experiment\(")
    table = "".join(o.get("data", {}).get("text/plain", "") for o in experiment)
    rows = re.findall(r"^filters=(\d+)\s+(\d\.\d{4}) ± (\d\.\d{4})\s+3\s", table, flags=re.M)
    assert [r[0] for r in rows] == ["8", "16", "32"], table
    assert "spreads together" in table or "within the spread" in table
    assert len(list(Path(tmp_path, "filters").iterdir())) == 9  # 3 values x 3 seeds, each a run directory
    assert "image/png" in _html(experiment)  # the chart of mean ± spread


def test_auto_device_is_cuda_where_torch_sees_a_gpu(monkeypatch):
    """Colab: `device="auto"` (and fit's default, None) must train on the GPU when there is one."""
    import torch

    from convscope.training.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda" and pick_device(None).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"

"""report.html: written by train, self-contained, parseable, and saying the right things."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

import convscope as cs
from convscope.cli import main
from convscope.presentation import report as report_html
from convscope.presentation.view import load_view
from synthetic import write_tiny_npz

URL = re.compile(r"(?:https?:|ftp:|wss?:)?//[\w.-]+\.\w", re.I)


class Page(HTMLParser):
    """Collects what the tests look at, and fails on unbalanced tags."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.images: list[dict] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            self.attributes.append((tag, name, value or ""))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables.append([])
        if tag == "tr":
            self.tables[-1].append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag == "style":
            self._in_style = True
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    return page


def decode_images(page: Page) -> list[tuple[int, int]]:
    sizes = []
    for image in page.images:
        src = image["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            sizes.append(picture.size)
        assert image.get("alt")
    return sizes


def assert_offline(text: str, page: Page) -> None:
    for tag, name, value in page.attributes:
        if name in ("src", "href", "action", "srcset", "poster", "data"):
            assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:60]!r}> leaves the page"
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in page.style
    assert "url(" not in page.style.replace("url(data:", "")  # an embedded font's subset is inline
    # no absolute URL anywhere outside the base64 payloads
    stripped = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not URL.search(stripped), URL.search(stripped)


@pytest.fixture(scope="module")
def report(trained_run) -> tuple[str, Page]:
    path = trained_run / "report.html"  # written by `train` itself
    text = path.read_text(encoding="utf-8")
    return text, parse(text)


@pytest.mark.slow
def test_train_writes_a_self_contained_report(trained_run, report):
    text, page = report
    assert text.startswith("<!DOCTYPE html>")
    assert_offline(text, page)
    sizes = decode_images(page)
    alts = [image["alt"] for image in page.images]
    strips = [i for i, alt in enumerate(alts) if alt.startswith("samples of class ")]
    assert [alts[i] for i in strips] == [f"samples of class {d}" for d in range(10)]  # one strip per class
    assert all(h == 56 and w > 300 for w, h in (sizes[i] for i in strips))  # 8 images of 28 px, doubled
    alts, sizes = (
        [a for i, a in enumerate(alts) if i not in strips],
        [s for i, s in enumerate(sizes) if i not in strips],
    )
    assert alts == [
        "the learned input contract",
        "training and validation loss and accuracy per epoch",
        "per-class precision, recall and F1",
        "confusion matrix",
        "random test images",
        "misclassified test images",
        "feature maps of a correctly classified image",
        "feature maps of the misclassified image with the highest loss",
        "first-layer filters",
    ]
    assert all(w > 300 and h > 200 for w, h in sizes)
    assert {"data", "config", "model", "training", "metrics", "confusion", "predictions", "inside"} <= page.ids
    assert "light ink on a dark background" in text and "longest side scaled to 71% of the frame" in text
    assert not [p for p in trained_run.iterdir() if p.name.startswith(".")]  # no temporary file left behind


@pytest.mark.slow
def test_report_states_the_runs_numbers(trained_run, report):
    text, page = report
    metrics = json.loads((trained_run / "metrics.json").read_text())
    words = " ".join(page.text)
    assert f"{metrics['test_accuracy']:.2%}" in words and f"{metrics['test_loss']:.4f}" in words
    assert "mnist-5k" in words and "44,010" in words  # data source and the cnn's Keras parameter count
    summary = next(t for t in page.tables if t and t[0][:2] == ["layer", "type"])
    layers = {row[0]: row for row in summary[1:]}
    assert layers["conv2d"][2] == "(None, 28, 28, 32)" and layers["conv2d"][3] == "320"
    assert "floor((28 - 2 + 2*0) / 2) + 1 = 14" in layers["max_pool2d"][-1]
    assert layers["dense"][2] == "(None, 10)" and layers["dense"][3] == "15,690"
    per_class = next(t for t in page.tables if t and t[0] == ["class", "precision", "recall", "F1", "support"])
    assert [row[0] for row in per_class[1:]] == [str(d) for d in range(10)]
    assert [float(row[1]) for row in per_class[1:]] == pytest.approx(
        [r["precision"] for r in metrics["per_class"]], abs=5e-4
    )
    confused = next(t for t in page.tables if t and t[0] == ["true class", "predicted as", "images"])
    expected = [[p["true"], p["predicted"], str(p["count"])] for p in metrics["most_confused"]]
    assert confused[1 : 1 + len(expected)] == expected
    epochs = next(t for t in page.tables if t and t[0][:2] == ["epoch", "loss"])
    assert len(epochs) - 1 == metrics["epochs_run"]


@pytest.mark.slow
def test_report_command_rewrites_it_atomically(trained_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "copy"
    run.mkdir()
    for name in (
        "config.json",
        "architecture.json",
        "model.safetensors",
        "history.csv",
        "metrics.json",
        "test_set.npz",
        "test_images.npy",
    ):
        (run / name).write_bytes((trained_run / name).read_bytes())
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    first = (run / "report.html").read_text()
    assert "every class from the test split" in first  # the run directory keeps only the test split
    decode_images(parse(first))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_html.figures, "to_png", broken)
    with pytest.raises(RuntimeError):
        report_html.write_report(run)
    assert (run / "report.html").read_text() == first  # the old report is untouched
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # nor a temporary file


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a convscope run directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    return write_tiny_npz(tmp_path_factory.mktemp("data"), n=120)


@pytest.mark.slow
def test_no_report_when_asked_and_an_mlp_report_explains_the_missing_maps(tiny_npz, tmp_path):
    quiet = cs.train(
        str(tiny_npz), "cnn", epochs=1, class_names="top,bottom", out=tmp_path / "a", verbose=False, report=False
    )
    assert not (quiet.path / "report.html").exists()
    mlp = cs.train(str(tiny_npz), "mlp", epochs=1, class_names="top,bottom", out=tmp_path / "b", verbose=False)
    text = (mlp.path / "report.html").read_text()
    page = parse(text)
    assert_offline(text, page)
    decode_images(page)
    words = " ".join(page.text)
    assert "no Conv or Pool layers" in words and "top" in words and "bottom" in words
    assert "every class from the training split" in text  # train hands the report its training split
    assert not any("feature maps" in image["alt"] for image in page.images)


@pytest.mark.slow
def test_render_escapes_names(trained_run):
    view = load_view(trained_run)
    view.config = {**view.config, "data": {**view.config["data"], "source": "<script>alert(1)</script>"}}
    text = report_html.render(view)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text

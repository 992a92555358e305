"""compare: the MLP-versus-CNN table and the overlaid validation curves."""

from __future__ import annotations

import json
import re

import pytest

import convscope as cs
from convscope.cli import main
from convscope.report.compare import compare_runs, comparison_text
from test_report import assert_offline, decode_images, parse


@pytest.fixture(scope="module")
def mnist_mlp_run(tmp_path_factory):
    """`mlp` on the same mnist-5k digits as `trained_run` (2 epochs, no report), so the two runs compare: the
    session's `mlp_run` trains on scikit-learn's 8 x 8 digits instead."""
    out = tmp_path_factory.mktemp("runs") / "mlp-run"
    cs.train("mnist-5k", "mlp", epochs=2, out=out, verbose=False, report=False)
    return out


@pytest.mark.slow
def test_table_rows_come_from_the_runs(trained_run, mnist_mlp_run):
    rows = compare_runs([mnist_mlp_run, trained_run])
    assert [(r.name, r.model, r.params) for r in rows] == [("mlp-run", "mlp", 271_370), ("cnn-run", "cnn", 44_010)]
    for row, run in zip(rows, (mnist_mlp_run, trained_run)):
        metrics = json.loads((run / "metrics.json").read_text())
        assert row.test_accuracy == metrics["test_accuracy"] and row.test_loss == metrics["test_loss"]
        assert row.epochs == metrics["epochs_run"] and row.train_seconds == metrics["train_seconds"]
        assert row.data_source == "mnist-5k"
    text = comparison_text(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["run", "model", "params", "epochs", "train", "time", "test", "accuracy", "test", "loss"]
    assert re.search(r"^mlp-run\s+mlp\s+271,370\s+2\b", lines[2])
    assert re.search(
        rf"^cnn-run\s+cnn\s+44,010\s+{rows[1].epochs}\b.*{rows[1].test_accuracy:.4f}\s+{rows[1].test_loss:.4f}$",
        lines[3],
    )
    best = max(rows, key=lambda r: r.test_accuracy)
    assert f"best test accuracy: {best.name}" in text
    assert "different data" not in text


@pytest.mark.slow
def test_compare_command_writes_png_and_html(trained_run, mnist_mlp_run, tmp_path, capsys):
    assert main(["compare", str(mnist_mlp_run), str(trained_run), "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mlp-run" in out and "cnn-run" in out and f"wrote {tmp_path / 'compare.png'}" in out
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "compare.html").read_text()
    page = parse(text)
    assert_offline(text, page)
    assert len(decode_images(page)) == 1
    table = next(t for t in page.tables if t and t[0][0] == "run")
    assert [row[:3] for row in table[1:]] == [["mlp-run", "mlp", "271,370"], ["cnn-run", "cnn", "44,010"]]


@pytest.mark.slow
def test_compare_warns_about_different_data_and_rejects_non_runs(trained_run, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for p in trained_run.iterdir():
        if p.is_file():
            (other / p.name).write_bytes(p.read_bytes())
    config = json.loads((other / "config.json").read_text())
    config["data"]["source"] = "notMNIST_small.mat"
    (other / "config.json").write_text(json.dumps(config))
    assert main(["compare", str(trained_run), str(other)]) == 0
    assert "trained on different data (mnist-5k, notMNIST_small.mat)" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "is not a convscope run directory" in capsys.readouterr().err

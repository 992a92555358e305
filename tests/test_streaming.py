"""Streaming: .npy memory maps and picture folders read per batch train like in-memory data, in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope.data.streaming import LazyImages, StreamingDataset, stream
from convscope.errors import UserError
from synthetic import SMALL_SPEC, tiny_dataset

SRC = Path(__file__).resolve().parents[1] / "src"


def save_npy(folder: Path, data: cs.Dataset) -> Path:
    np.save(folder / "images.npy", data.images)
    np.save(folder / "labels.npy", data.labels)
    return folder / "images.npy"


def history(data) -> list[dict]:
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    trained = cs.fit(model, data, epochs=3, batch_size=16, validation_split=0.25, verbose=False)
    return trained.history.rows


def test_streamed_npy_trains_like_the_same_data_in_memory(tmp_path):
    data = tiny_dataset(250)
    streamed = stream(save_npy(tmp_path, data), class_names=data.class_names)
    assert isinstance(streamed.images, LazyImages) and streamed.input_shape == data.input_shape
    in_memory, from_disk = history(data), history(streamed)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose([r[key] for r in from_disk], [r[key] for r in in_memory], rtol=1e-5)


def test_lazy_views_read_only_what_is_indexed_in_the_order_asked(tmp_path):
    data = tiny_dataset(50)
    streamed = stream(save_npy(tmp_path, data))
    train, test = streamed.split(test_size=0.2, seed=1)
    expected_train, expected_test = data.split(test_size=0.2, seed=1)
    assert isinstance(train, StreamingDataset) and isinstance(train.images, LazyImages)
    np.testing.assert_array_equal(train.labels, expected_train.labels)
    picks = np.array([7, 2, 2, 30])
    np.testing.assert_array_equal(train.images[picks], expected_train.images[picks])
    np.testing.assert_array_equal(np.asarray(test.images), expected_test.images)
    assert (train.images.min(), train.images.max()) == (expected_train.images.min(), expected_train.images.max())


def test_streamed_picture_folder_matches_loading_it(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (20, 16), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    loaded = cs.load(tmp_path, image_size=12, channels=1)
    streamed = stream(tmp_path, image_size=12, channels=1, workers=2)
    assert streamed.class_names == loaded.class_names == ("cat", "dog")
    np.testing.assert_array_equal(np.asarray(streamed.images), loaded.images)
    trained = cs.fit(
        cs.build(SMALL_SPEC, streamed.input_shape, 2, seed=0),
        streamed,
        epochs=1,
        batch_size=8,
        validation_split=0.25,
        verbose=False,
    )  # batches decoded in 2 worker processes
    assert trained.history.epochs_run == 1 and np.isfinite(trained.history.rows[0]["val_loss"])


def test_streaming_refuses_what_it_cannot_stream(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3, 8, 8), np.uint8))
    np.save(tmp_path / "x_labels.npy", np.array([0, 1, 0, 1]))
    with pytest.raises(UserError, match=r"shape \(4, 3, 8, 8\).*C = 1 or 3"):
        stream(tmp_path / "x.npy")
    np.save(tmp_path / "alone.npy", np.zeros((4, 8, 8), np.uint8))
    (tmp_path / "x_labels.npy").unlink()
    with pytest.raises(UserError, match="alone_labels.npy"):
        stream(tmp_path / "alone.npy")
    with pytest.raises(UserError, match="streaming reads a .npy file"):
        stream(tmp_path / "data.csv")


# 14,000 images of 256 x 256 x 1: 917 MB of uint8 on disk, 3.7 GB as the float32 tensors the
# in-memory path would hold.  The child trains one epoch from the memory map and reports its peak RSS
# (the kernel's high-water mark of this process alone).  An address-space limit would not
# say much: importing torch reserves gigabytes of virtual memory it never touches.
MEMORY_SCRIPT = """
    import json, sys
    import convscope as cs
    from convscope.data.streaming import stream
    data = stream(sys.argv[1])
    model = cs.build({"layers": [{"MaxPool2D": {"pool_size": 16}}, {"Flatten": {}},
                                 {"Dense": {"units": "num_classes", "activation": "softmax"}}]},
                     data.input_shape, data.num_classes, seed=0)
    status = lambda key: int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(key))) * 1024
    base = status("VmRSS:")  # the interpreter with torch and convscope, before any image is read
    trained = cs.fit(model, data, epochs=1, batch_size=64, validation_split=0.1, verbose=False)
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss still holds the forking parent's peak.
    peak_kib = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
    print(json.dumps({"peak_bytes": peak_kib * 1024, "base_bytes": base, "rows": trained.history.rows}))
"""


@pytest.mark.slow
def test_training_from_a_memory_map_keeps_peak_rss_far_below_the_data(tmp_path):
    n, side = 14_000, 256
    images = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(n, side, side, 1))
    labels = np.arange(n) % 2
    for start in range(0, n, 1000):  # written in slices, so this process never holds it either
        block = np.full((min(1000, n - start), side, side, 1), 40, np.uint8)
        block[labels[start : start + len(block)] == 1, : side // 2] = 200  # class 1: bright top half
        images[start : start + len(block)] = block
    images.flush()
    del images
    np.save(tmp_path / "big_labels.npy", labels)
    data_bytes = n * side * side
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_SCRIPT), str(tmp_path / "big.npy")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # What training adds to the interpreter (torch and convscope alone are ~250-400 MB, and grow with releases):
    # far below the float32 tensors the in-memory path would hold, and below the uint8 file itself. Measured
    # 394-494 MB: a few batches plus glibc heap fragmentation from the per-batch tensors, which plateaus over
    # epochs (+40 MB from 1 to 3) and is there with or without convscope's malloc thresholds.
    grown = report["peak_bytes"] - report["base_bytes"]
    assert grown < 0.2 * data_bytes * 4 and grown < data_bytes, report
    assert report["rows"][0]["val_accuracy"] > 0.9  # it did train on the data


def test_a_streamed_run_is_evaluated_and_saved_without_reading_all_images_at_once(tmp_path, monkeypatch):
    data = tiny_dataset(200)
    path = save_npy(tmp_path, data)

    def refuse(self, dtype=None, copy=None):
        raise AssertionError(f"{self!r} was read into memory whole")

    monkeypatch.setattr(LazyImages, "__array__", refuse)
    result = cs.train(str(path), SMALL_SPEC, epochs=2, stream=True, out=tmp_path / "run", verbose=False, report=False)
    test, probabilities = cs.load_test_set(result.path)
    expected = data.split(test_size=0.2, seed=0)[1]
    assert isinstance(test.images, np.memmap)  # read back lazily too
    np.testing.assert_array_equal(test.images, expected.images)
    np.testing.assert_array_equal(test.labels, expected.labels)
    np.testing.assert_allclose(probabilities, result.evaluation.probabilities)

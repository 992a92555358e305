"""The input contract: learned from the training images, stored in the run, applied to people's own pictures.

The end-to-end tests predict black-on-white pictures at a random size and place, in fonts the model never
saw, through the CLI and through a real server. Without the contract, `--framing none --invert false` (the
picture neither inverted nor framed, only resized whole), both paths score near chance (10%) on them; the
tests check that they still do, so the gain is shown to come from the contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import numpy as np
import pytest
from PIL import Image

import convscope as cs
import glyphs
from convscope.data.framing import InputContract, frame, learn_contract, model_input, resize
from server_process import SRC, running_server

MNIST_FRACTION = 20 / 28  # MNIST scales each digit's longest side to 20 of 28 pixels


# --- learning the contract --------------------------------------------------------------------------------------


def test_mnist_is_light_on_dark_fit_at_twenty_of_twenty_eight_centred_by_mass():
    contract = learn_contract(cs.load("mnist-5k").images, (0, 255))
    assert contract.background == "dark"
    assert contract.framing == "fit"
    assert contract.fraction == pytest.approx(MNIST_FRACTION, abs=1.5 / 28)
    assert contract.centre == "mass"
    assert contract.threshold_value == pytest.approx(127.5)


def test_notmnist_like_letters_are_fill_and_their_negative_is_dark_on_light():
    images, _ = glyphs.letters_dataset(glyphs.training_fonts())
    contract = learn_contract(images, (0, 255))
    assert (contract.background, contract.framing) == ("dark", "fill")
    negative = learn_contract(255 - images, (0, 255))
    assert (negative.background, negative.framing) == ("light", "fill")


def test_photos_have_no_background_and_no_framing():
    rng = np.random.default_rng(0)
    # smooth colour fields, like small photos: no dominant level, no ink box
    coarse = rng.integers(0, 256, (60, 4, 4, 3)).astype(np.uint8)
    photos = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BICUBIC)) for im in coarse])
    contract = learn_contract(photos, (0, 255))
    assert (contract.background, contract.framing) == (None, "none")
    picture = photos[0]
    framed = frame(picture, contract, (16, 16))
    assert framed.inverted is False and framed.framing == "none"
    np.testing.assert_array_equal(framed.image, resize(picture, (16, 16)))  # today's behaviour: resized whole


def test_scattered_glyphs_of_varying_size_have_no_consistent_framing():
    rng = np.random.default_rng(1)
    images = np.zeros((80, 28, 28, 1), np.uint8)
    for image in images:  # a block of random size at a random place: neither filling nor centred
        h, w = rng.integers(3, 20, 2)
        y, x = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
        image[y : y + h, x : x + w] = 255
    contract = learn_contract(images, (0, 255))
    assert (contract.background, contract.framing) == ("dark", "none")


# --- applying it ------------------------------------------------------------------------------------------------


def _fit_contract(centre: str = "mass") -> InputContract:
    return InputContract(
        "dark",
        "fit",
        0.5,
        (0.0, 255.0),
        fraction=MNIST_FRACTION,
        centre=centre,
        fraction_range=(0.68, 0.75),
        offset_limit=0.05,
    )


def _small_dark_glyph_on_paper() -> np.ndarray:
    """An L-shape 30 x 18 px, ink black, near the bottom-right corner of a white 200 x 160 picture."""
    paper = np.full((200, 160, 1), 255, np.uint8)
    paper[150:180, 120:126] = 0
    paper[174:180, 120:138] = 0
    return paper


def test_fit_inverts_crops_scales_and_centres_by_mass():
    framed = frame(_small_dark_glyph_on_paper(), _fit_contract(), (28, 28))
    assert framed.inverted and framed.framing == "fit" and framed.image.shape == (28, 28, 1)
    ink = framed.image[..., 0] > 127
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert rows[-1] - rows[0] + 1 == pytest.approx(20, abs=1)  # the longest side (30 px) became 20 of 28
    assert cols[-1] - cols[0] + 1 == pytest.approx(12, abs=1)  # aspect kept: 18 px -> 12
    from scipy import ndimage

    cy, cx = ndimage.center_of_mass(framed.image[..., 0].astype(float))
    assert (cy, cx) == pytest.approx((13.5, 13.5), abs=1.0)
    assert framed.image[0, 0, 0] == 0  # padded with the (inverted) paper


def test_fit_by_box_centres_the_bounding_box_instead():
    framed = frame(_small_dark_glyph_on_paper(), _fit_contract("box"), (28, 28))
    ink = framed.image[..., 0] > 127
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert (rows[0] + rows[-1]) / 2 == pytest.approx(13.5, abs=1.0)
    assert (cols[0] + cols[-1]) / 2 == pytest.approx(13.5, abs=1.0)


def test_fill_stretches_the_ink_box_to_the_whole_frame():
    contract = InputContract("dark", "fill", 0.5, (0.0, 255.0), fraction_range=(0.9, 1.0))
    framed = frame(_small_dark_glyph_on_paper(), contract, (28, 28))
    ink = framed.image[..., 0] > 127
    assert ink[:, 0].any() and ink[-1, :].any() and ink[:, :3].all()  # the stem fills the left, the foot the bottom
    assert not ink[0, -1]  # the L's empty corner stays empty


def test_overrides_win_and_a_training_image_passes_through_unchanged():
    paper = _small_dark_glyph_on_paper()
    kept = frame(paper, _fit_contract(), (28, 28), invert=False, framing="none")
    assert not kept.inverted and kept.framing == "none"
    np.testing.assert_array_equal(kept.image, resize(paper, (28, 28)))
    digits = cs.load("mnist-5k").images[:50]
    contract = learn_contract(digits, (0, 255))
    results = [frame(image, contract, (28, 28)) for image in digits]
    assert sum(r.kept for r in results) >= 45  # within the training images' own spread: left as they are
    for image, result in zip(digits, results):
        if result.kept:
            np.testing.assert_array_equal(result.image, image)


def test_an_image_without_ink_is_resized_whole():
    blank = np.full((50, 40, 1), 255, np.uint8)
    framed = frame(blank, _fit_contract(), (28, 28))
    assert framed.framing == "none" and framed.inverted and (framed.image == 0).all()


# --- the run keeps it ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_contract_is_stored_in_the_run_and_old_runs_fall_back_and_say_so(trained_run, tmp_path):
    arch = json.loads((trained_run / "architecture.json").read_text())
    assert arch["input_contract"]["framing"] == "fit" and arch["input_contract"]["background"] == "dark"
    assert cs.load_run(trained_run).input_contract == InputContract.from_dict(arch["input_contract"])

    old = tmp_path / "old-run"
    old.mkdir()
    for path in trained_run.iterdir():
        if path.is_file():
            (old / path.name).write_bytes(path.read_bytes())
    del arch["input_contract"]
    (old / "architecture.json").write_text(json.dumps(arch))
    learned = cs.load_run(old).input_contract
    assert (learned.background, learned.framing) == ("dark", "fit")
    assert "saved test images" in learned.source

    (old / "test_images.npy").unlink()
    bare = cs.load_run(old).input_contract
    assert (bare.background, bare.framing) == (None, "none") and "resized whole" in bare.source


# --- end to end: people's own pictures through the CLI and the server ---------------------------------------------


def _cli_predict(run: Path, files: list[Path], *options: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "convscope", "predict", str(run), *map(str, files), "--json", *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _http_predict(url: str, files: list[Path]) -> list[dict]:
    out = []
    for start in range(0, len(files), 50):
        parts = [("images", (f.name, f.read_bytes(), "image/png")) for f in files[start : start + 50]]
        response = httpx2.post(url + "/predict/batch", files=parts, timeout=120)
        assert response.status_code == 200, response.text
        out += response.json()["predictions"]
    return out


def _accuracy(labels: list[str], truth: list[int], names: str) -> float:
    return float(np.mean([label == names[t] for label, t in zip(labels, truth)]))


@pytest.mark.slow
def test_own_letters_in_unseen_fonts_are_read_by_cli_and_server_alike(letters_run, tmp_path):
    pictures = glyphs.write_pictures(tmp_path / "letters", glyphs.held_out_fonts(), glyphs.LETTERS, seed=1)
    files, truth = [p for p, _ in pictures], [t for _, t in pictures]
    cli = _cli_predict(letters_run, files)
    assert all(row["inverted"] and row["framing"] == "fill" for row in cli)
    cli_labels = [row["label"] for row in cli]
    assert _accuracy(cli_labels, truth, glyphs.LETTERS) >= 0.8  # chance is 0.1
    with running_server(letters_run, timeout=300) as url:
        served = _http_predict(url, files)
        assert httpx2.get(url + "/model").json()["preprocessing"]["framing"] == "fill"
    assert [p["label"] for p in served] == cli_labels
    np.testing.assert_allclose(
        [p["probabilities"] for p in served],
        [[row["probabilities"][c] for c in glyphs.LETTERS] for row in cli],
        atol=1e-5,
    )
    # Without the contract (no inversion, the whole picture resized) the same files are read near chance.
    unframed = _cli_predict(letters_run, files, "--framing", "none", "--invert", "false")
    assert _accuracy([row["label"] for row in unframed], truth, glyphs.LETTERS) <= 0.4


@pytest.mark.slow
def test_own_digits_are_read_by_an_mnist_model_through_cli_and_server_alike(trained_run, tmp_path):
    pictures = glyphs.write_pictures(tmp_path / "digits", glyphs.truetype_fonts(), glyphs.DIGITS, seed=2)
    files, truth = [p for p, _ in pictures], [t for _, t in pictures]
    cli = _cli_predict(trained_run, files)
    assert all(row["inverted"] and row["framing"] == "fit" for row in cli)
    cli_labels = [row["label"] for row in cli]
    assert _accuracy(cli_labels, truth, glyphs.DIGITS) >= 0.5  # chance is 0.1; typed digits are not handwriting
    with running_server(trained_run, timeout=300) as url:
        served = _http_predict(url, files)
    assert [p["label"] for p in served] == cli_labels
    unframed = _cli_predict(trained_run, files, "--framing", "none")
    assert _accuracy([row["label"] for row in unframed], truth, glyphs.DIGITS) <= 0.3


def test_inspect_frames_an_image_file_the_same_way(letters_run, tmp_path, capsys):
    from convscope.cli import main

    path, _ = glyphs.write_pictures(tmp_path, glyphs.held_out_fonts()[:1], "E", seed=3)[0]
    trained = cs.load_run(letters_run)
    framed = model_input(path, trained.input_contract, trained.input_shape)
    assert main(["inspect", str(letters_run), "--image", str(path), "--no-images"]) == 0
    out = capsys.readouterr().out
    assert "model input: inverted, framing fill" in out
    probabilities = trained.predict_proba(framed.image)[0]
    expected = trained.class_names[int(probabilities.argmax())]
    assert f"for predicted class '{expected}' (p={probabilities.max():.3f})" in out  # the Grad-CAM line


def test_level_counts_are_numpys_histogram_exactly():
    """The served path counts levels with bincount (a tenth of np.histogram's cost); the counts must be the
    same, bin edges included, or a picture could frame differently from the training images."""
    from convscope.data.framing import _BINS, _level_counts

    rng = np.random.default_rng(7)
    edges = np.arange(_BINS + 1) / _BINS
    for values in (
        rng.random(5000),
        np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1)]).clip(0, 1),
        np.arange(256) / 255,  # every uint8 level
        np.zeros(3),
        np.ones(3),
    ):
        expected, _ = np.histogram(values, bins=_BINS, range=(0.0, 1.0))
        assert np.array_equal(_level_counts(values, _BINS), expected)
        dark = values[values < 0.5]
        expected, _ = np.histogram(dark, bins=_BINS // 2, range=(0.0, 0.5))
        assert np.array_equal(_level_counts(dark, _BINS // 2), expected)

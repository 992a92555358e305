"""Inspection: which test images are picked, what is said about them, and what the network computed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import convscope as cs
from convscope.cli import main
from convscope.evaluation import inspection, terminal

# "  name  0.123 ████▍": a class's probability row, wherever the drawn image puts it on the line
PROBABILITY_ROW = re.compile(r"(\S+) +(\d+\.\d)%(?= |$)", re.M)


@pytest.mark.slow
def test_random_selection_is_reproducible_and_describes_each_image(view):
    result = view.evaluation
    first = inspection.select(result, "random", 7, seed=3)
    again = inspection.select(result, "random", 7, seed=3)
    other = inspection.select(result, "random", 7, seed=4)
    indices = [s.index for s in first.samples]
    assert indices == [s.index for s in again.samples]
    assert indices != [s.index for s in other.samples]
    assert len(set(indices)) == 7
    for s in first.samples:
        assert s.class_names == result.class_names == tuple(str(d) for d in range(10))
        assert s.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert s.true_name == result.class_names[result.labels[s.index]]
        assert s.predicted_name == result.class_names[int(result.probabilities[s.index].argmax())]
        assert s.verdict == ("correct" if s.true_name == s.predicted_name else "wrong")
        assert s.caption == f"{s.true_name} → {s.predicted_name} ({s.probabilities.max():.1%})"
        np.testing.assert_array_equal(s.image, result.images[s.index])


@pytest.mark.slow
def test_mistakes_contain_only_misclassified_images(view):
    result = view.evaluation
    wrong = set(result.mistakes.tolist())
    assert 0 < len(wrong) < len(result.labels)  # the 3-epoch fixture model makes a few mistakes
    chosen = inspection.select(result, "mistakes", 1000, seed=0).samples
    assert {s.index for s in chosen} == wrong
    assert all(s.correct is False and s.predicted != s.label for s in chosen)
    right = inspection.select(result, "correct", 5, seed=0).samples
    assert len(right) == 5 and all(s.correct for s in right)


@pytest.mark.slow
def test_top_losses_are_the_misclassified_images_highest_loss_first(view):
    result = view.evaluation
    top = inspection.select(result, "top-losses", 5).samples
    losses = [s.loss for s in top]
    assert losses == sorted(losses, reverse=True)
    assert all(not s.correct for s in top)
    all_losses = inspection.losses(result)
    assert losses[0] == pytest.approx(all_losses[result.mistakes].max())
    # per-image losses are the ones the reported test loss averages
    assert all_losses.mean() == pytest.approx(result.loss, rel=1e-5)


@pytest.mark.slow
def test_class_filter_and_index(view):
    result = view.evaluation
    sevens = inspection.select(result, "random", 50, class_name="7", seed=0).samples
    assert len(sevens) == 50 and all(s.true_name == "7" for s in sevens)
    wrong_sevens = inspection.select(result, "mistakes", 50, class_name="7", seed=0).samples
    assert all(s.true_name == "7" and s.predicted_name != "7" for s in wrong_sevens)
    one = inspection.select(result, "index", index=12).samples
    assert [s.index for s in one] == [12]
    with pytest.raises(cs.UserError, match=r"class 'Z' is not one of the model's classes: 0, 1, 2"):
        inspection.select(result, "random", 3, class_name="Z")
    with pytest.raises(cs.UserError, match=r"--index 1000 is out of range: the test set has 1000 images \(0 to 999\)"):
        inspection.select(result, "index", index=1000)


@pytest.mark.slow
def test_feature_maps_are_the_conv_and_pool_outputs(view):
    trained = view.trained
    image = view.evaluation.images[0]
    maps = inspection.feature_maps(trained, image)
    conv_pool = [i for i in trained.model.info if i.type in ("Conv2D", "MaxPool2D")]
    assert [m.layer for m in maps] == [i.name for i in conv_pool]
    assert [m.layer for m in maps] == ["conv2d", "conv2d_1", "max_pool2d", "conv2d_2", "conv2d_3", "max_pool2d_1"]
    with torch.no_grad():
        direct = trained.model.activations(trained.scaler.transform(image[None]))
    for m, info in zip(maps, conv_pool):
        h, w, c = info.output_shape
        assert m.output_shape == (h, w, c) and m.values.shape == (c, h, w)
        np.testing.assert_allclose(m.values, direct[m.layer][0].numpy(), rtol=1e-5, atol=1e-6)
    filters = inspection.first_filters(trained)
    assert filters.layer == "conv2d" and filters.weights.shape == (32, 1, 3, 3)
    conv = trained.model.blocks["conv2d"][0]
    np.testing.assert_array_equal(filters.weights, conv.weight.detach().numpy())


@pytest.mark.slow
def test_grad_cam_on_real_model_is_a_normalised_map_for_the_predicted_class(view):
    trained, result = view.trained, view.evaluation
    for s in inspection.select(result, "correct", 5, seed=0).samples:
        cam = inspection.grad_cam(trained, s.image)
        assert cam.class_index == s.predicted and cam.class_name == s.predicted_name
        assert cam.layer in ("conv2d_3", "dropout_1")  # the last convolution, or the last image-shaped layer
        assert cam.heatmap.shape == (28, 28) and cam.heatmap.min() >= 0 and cam.heatmap.max() == pytest.approx(1.0)
        assert cam.probability == pytest.approx(s.confidence, abs=1e-4)


def test_grad_cam_known_answer():
    """A 1x1 identity convolution averaged into the logit of class 0: the evidence for class 0 is the
    image itself, and there is none for class 1 (whose logit is minus the same average)."""
    spec = {
        "layers": [
            {"Conv2D": {"filters": 1, "kernel_size": 1, "activation": "relu"}},
            {"GlobalAveragePooling2D": {}},
            {"Dense": {"units": "num_classes", "activation": "softmax"}},
        ]
    }
    model = cs.build(spec, input_shape=(6, 6, 1), num_classes=2)
    with torch.no_grad():
        conv = model.blocks["conv2d"][0]
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        dense = model.blocks["dense"][0]
        dense.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        dense.bias.zero_()
    trained = cs.TrainedModel(model, cs.MinMaxScaler(0.0, 255.0), ("bright", "dark"), (6, 6, 1))
    image = np.zeros((6, 6, 1), np.uint8)
    image[1:3, 2:5] = 200
    image[4, 0] = 100
    cam = inspection.grad_cam(trained, image)
    assert (cam.layer, cam.class_name) == ("conv2d", "bright")
    np.testing.assert_allclose(cam.heatmap, image[..., 0] / 200.0, atol=1e-6)
    against = inspection.grad_cam(trained, image, class_index=1)
    assert against.class_name == "dark" and not against.heatmap.any()


@pytest.mark.slow
def test_image_file_is_predicted_through_the_same_path(view, tmp_path):
    image = view.evaluation.images[5]
    path = tmp_path / "digit.png"
    Image.fromarray(image[..., 0]).save(path)
    s = inspection.predict_image(view.trained, cs.read_image(path, (28, 28), 1))
    np.testing.assert_allclose(s.probabilities, view.evaluation.probabilities[5], atol=1e-6)
    assert s.label is None and s.verdict == "no label" and s.caption.startswith(f"predicted {s.predicted_name} (")


# --- terminal rendering --------------------------------------------------------------------


def test_halfblocks_plain_and_colour():
    image = np.array([[255, 0, 255, 0], [255, 255, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)[..., None]
    # rows 0/1 -> one line, row 2 (odd) is paired with a black row
    assert terminal.halfblocks(image, color=False) == ["█▄▀ ", "    "]
    lines = terminal.halfblocks(image, color=True)
    assert len(lines) == 2
    cells = re.findall(r"\x1b\[38;2;(\d+);(\d+);(\d+)m\x1b\[48;2;(\d+);(\d+);(\d+)m▀", lines[0])
    assert [(int(c[0]), int(c[3])) for c in cells] == [(255, 255), (0, 255), (255, 0), (0, 0)]
    assert terminal.visible_width(lines[0]) == 4
    wide = np.zeros((10, 100, 1), np.uint8)
    assert terminal.visible_width(terminal.halfblocks(wide, False, max_width=40)[0]) == 40


@pytest.mark.slow
def test_rendered_sample_names_classes_and_probabilities(view):
    s = inspection.select(view.evaluation, "mistakes", 1, seed=0).samples[0]
    text = terminal.render_sample(s, color=False)
    assert f"#{s.index}  {s.true_name} → {s.predicted_name} ({s.confidence:.1%})  wrong" in text
    rows = PROBABILITY_ROW.findall(text)
    assert [name for name, _ in rows] == list(s.class_names)
    assert sum(float(p) for _, p in rows) == pytest.approx(100.0, abs=0.6)
    assert "<- predicted" in text and "<- true" in text


# --- the command --------------------------------------------------------------------------------


def _shown(text: str) -> list[dict]:
    """Each sample the CLI printed: header fields and its class probabilities."""
    samples = []
    for block in text.split("\n\n"):
        head = re.search(r"#(\d+)  (\S+) → (\S+) \(([\d.]+)%\)  (correct|wrong)", block)
        if head:
            probs = {m[0]: float(m[1]) for m in PROBABILITY_ROW.findall(block[head.end() :])}
            samples.append(
                {"index": int(head[1]), "true": head[2], "predicted": head[3], "verdict": head[5], "probs": probs}
            )
    return samples


@pytest.mark.slow
def test_inspect_mistakes_command(trained_run, view, capsys, tmp_path):
    assert (
        main(
            ["inspect", str(trained_run), "--mistakes", "4", "--seed", "2", "--color", "never", "--save", str(tmp_path)]
        )
        == 0
    )
    out = capsys.readouterr().out
    shown = _shown(out)
    assert len(shown) == 4
    result = view.evaluation
    for s in shown:
        assert s["verdict"] == "wrong" and s["true"] != s["predicted"]
        assert s["true"] == result.class_names[result.labels[s["index"]]]
        assert list(s["probs"]) == list(result.class_names)
        assert sum(s["probs"].values()) == pytest.approx(100.0, abs=0.6)
        assert s["probs"][s["predicted"]] == max(s["probs"].values())
    assert (tmp_path / "mistakes.png").is_file() and f"wrote {tmp_path / 'mistakes.png'}" in out


@pytest.mark.slow
def test_inspect_random_prints_its_seed_and_repeats_with_it(trained_run, capsys):
    assert main(["inspect", str(trained_run), "--random", "3", "--color", "never", "--no-images"]) == 0
    out = capsys.readouterr().out
    seed = re.search(r"repeat with --seed (\d+)", out)[1]
    assert main(["inspect", str(trained_run), "--random", "3", "--seed", seed, "--color", "never", "--no-images"]) == 0
    again = capsys.readouterr().out
    assert [s["index"] for s in _shown(out)] == [s["index"] for s in _shown(again)]


@pytest.mark.slow
def test_inspect_image_file_shows_feature_maps_and_grad_cam(trained_run, view, capsys, tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(view.evaluation.images[view.evaluation.labels == 7][0][..., 0]).save(path)
    assert main(["inspect", str(trained_run), "--image", str(path), "--color", "always", "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "predicted 7" in out
    assert "conv2d (Conv2D): output 28 x 28 x 32" in out and "max_pool2d_1 (MaxPool2D): output 7 x 7 x 32" in out
    # the last Conv2D, or the last image-shaped layer when the conv map holds no positive evidence (grad_cam's rule;
    # which one depends on the trained weights)
    assert re.search(r"Grad-CAM on (conv2d_3|dropout_1) for predicted class '7'", out)
    assert "\x1b[38;2;" in out  # drawn in 24-bit colour
    assert {p.name for p in tmp_path.glob("*.png")} >= {"image.png", "feature-maps-image.png", "filters.png"}


@pytest.mark.slow
def test_inspect_user_errors(trained_run, capsys):
    assert main(["inspect", str(trained_run), "--class", "Q"]) == 2
    assert "class 'Q' is not one of the model's classes" in capsys.readouterr().err
    assert main(["inspect", str(trained_run), "--index", "5000"]) == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.slow
def test_show_random_and_show_mistakes_return_figures(view):
    result = view.evaluation
    figure = cs.show_random(result, 4, seed=0)
    assert len(figure.axes) == 8  # an image and a probability panel per sample
    mistakes = cs.show_mistakes(result, 3, seed=0)
    titles = [ax.get_title() for ax in mistakes.axes if ax.get_title()]
    assert len(titles) == 3
    for title in titles:
        true, predicted = re.search(r"(\S+) → (\S+) \(", title).groups()
        assert true != predicted

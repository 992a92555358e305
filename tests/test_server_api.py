"""The HTTP API, spoken to over HTTP: a real `convscope serve` process on a free loopback port.

Limits are set small (1 MiB bodies, 1 Mpixel images, batches of 8) so the over-limit cases stay cheap.
"""

from __future__ import annotations

import base64
import io
import json

import httpx2
import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope.cli import main
from convscope.cpu import affinity_size
from convscope.data.framing import frame, learn_contract
from convscope.serving.preprocess import range_warnings
from server_process import running_server

pytest.importorskip("fastapi")
MAX_BATCH = 8


@pytest.fixture(scope="module")
def server(trained_run):
    limits = ("--max-upload-mb", "1", "--max-image-pixels", "1000000", "--max-batch", str(MAX_BATCH))
    with running_server(trained_run, *limits) as url, httpx2.Client(base_url=url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def digits(trained_run):
    """Eight real MNIST test digits, uint8 (8, 28, 28, 1), light on dark, and their labels."""
    data, _ = cs.load_test_set(trained_run)
    return data.images[:8], data.labels[:8]


def png(pixels: np.ndarray, mode: str = "L", size: tuple[int, int] | None = None, fmt: str = "PNG") -> bytes:
    image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 else pixels).convert(mode)
    if size is not None:
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def upload(client: httpx2.Client, path: str, data: bytes, **params) -> httpx2.Response:
    return client.post(path, files={"image": ("digit.png", data, "image/png")}, params=params)


# --- good requests ------------------------------------------------------------------------------


@pytest.mark.slow
def test_health_and_model_describe_the_run(server, trained_run):
    assert server.get("/health").json() == {"status": "ok"}
    info = server.get("/model").json()
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert info["class_names"] == [str(d) for d in range(10)]
    assert info["input_shape"] == [28, 28, 1]
    assert info["parameters"] == {"total": 44_010, "trainable": 43_882, "non_trainable": 128}
    assert info["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert [layer["name"] for layer in info["summary"]["layers"]][:2] == ["conv2d", "conv2d_1"]
    assert "44,010" in info["summary_text"]
    assert info["preprocessing"]["background"] == "dark"  # MNIST: light digits on black
    assert info["preprocessing"]["framing"] == "fit"  # MNIST: 20 of 28 pixels, centred by mass
    assert info["preprocessing"]["contract"]["source"] == "learned from the training images at fit time"
    assert info["preprocessing"]["pixel_range"] == [0.0, 255.0]
    assert info["limits"]["max_batch"] == MAX_BATCH
    assert info["batch_worker"] == ("process" if affinity_size() >= 2 else "thread")  # auto, on this machine


@pytest.mark.slow
def test_upload_gives_the_same_probabilities_as_predict_proba(server, trained, digits):
    images, _ = digits
    expected = trained.predict_proba(images)
    for image, want in zip(images[:4], expected):
        body = upload(server, "/predict", png(image), top_k=3).json()
        probabilities = np.array(body["probabilities"])
        np.testing.assert_allclose(probabilities, want, atol=1e-5)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert body["index"] == int(want.argmax()) and body["label"] == str(int(want.argmax()))
        assert [t["index"] for t in body["top"]] == list(np.argsort(-want)[:3])
        assert body["inverted"] is False


@pytest.mark.slow
def test_a_dark_on_light_photo_of_any_size_and_mode_is_inverted_and_recognised(server, trained, digits):
    images, _ = digits
    expected = trained.predict(images)
    confident = [i for i in range(len(images)) if trained.predict_proba(images[i])[0].max() > 0.9]
    for i in confident[:3]:
        paper = 255 - images[i]  # dark ink on white, as drawn or scanned
        for mode, fmt in [("RGB", "JPEG"), ("RGBA", "PNG"), ("L", "BMP"), ("P", "GIF")]:
            body = upload(server, "/predict", png(paper, mode, (140, 112), fmt)).json()
            assert body["inverted"] is True, (mode, fmt)
            assert body["index"] == expected[i], (mode, fmt, body["top"])
    # explicit invert=false keeps the white background: a different input, different numbers
    kept = upload(server, "/predict", png(255 - images[confident[0]]), invert="false").json()
    assert kept["inverted"] is False
    forced = upload(server, "/predict", png(images[confident[0]]), invert="true").json()
    assert forced["inverted"] is True


@pytest.mark.slow
def test_raw_image_body_and_json_pixels_predict_the_same(server, trained, digits):
    image = digits[0][0]
    want = trained.predict_proba(image)[0]
    raw = server.post("/predict", content=png(image), headers={"content-type": "image/png"}).json()
    as_hw = server.post("/predict", json={"pixels": image[..., 0].tolist()}).json()
    as_hwc = server.post("/predict", json={"pixels": (image / 1.0).tolist()}).json()
    for body in (raw, as_hw, as_hwc):
        np.testing.assert_allclose(body["probabilities"], want, atol=1e-5)


@pytest.mark.slow
def test_json_pixels_in_other_units_are_predicted_with_a_warning(server, digits):
    image = digits[0][0].astype(np.float64)
    right = server.post("/predict", json={"pixels": image.tolist()}).json()
    assert right["warnings"] == []
    scaled = server.post("/predict", json={"pixels": (image / 255).tolist()}).json()  # 0..1 to a 0..255 model
    (warning,) = scaled["warnings"]
    assert "0..1" in warning and "0..255" in warning and "multiply them by 255" in warning
    batch = server.post("/predict/batch", json={"images": [image.tolist(), (image / 255).tolist()]}).json()
    assert [len(p["warnings"]) for p in batch["predictions"]] == [0, 1]
    upload_body = server.post("/predict", content=png(digits[0][0]), headers={"content-type": "image/png"}).json()
    assert upload_body["warnings"] == []


def test_range_warnings_flag_only_a_detailed_image_in_a_sliver_of_the_range():
    digit = np.zeros((8, 8, 1), np.float32)
    digit[2:6, 3:5] = 1.0
    assert range_warnings(digit, (0, 255))  # 0..1 sent to a 0..255 model
    assert "multiply them by 16" in range_warnings(digit, (0, 16))[0]  # scikit-learn digits: 0..16
    assert range_warnings(digit * 200, (0, 255)) == ()  # a real image
    assert range_warnings(digit * 30, (0, 255)) == ()  # faint, but 12% of the range
    assert range_warnings(np.zeros((8, 8, 1)), (0, 255)) == ()  # blank: plausible in any units
    assert range_warnings(digit, (0, 1)) == ()  # a model trained on 0..1 pixels
    (far,) = range_warnings(digit + 100, (0, 255))  # a sliver, but not 0..1: no multiplication hint
    assert "100..101" in far and "multiply" not in far


@pytest.mark.slow
def test_batch_predicts_every_image_like_single_calls(server, trained, digits):
    images, _ = digits
    files = [("images", (f"d{i}.png", png(image), "image/png")) for i, image in enumerate(images[:5])]
    body = server.post("/predict/batch", files=files).json()
    np.testing.assert_allclose(
        [p["probabilities"] for p in body["predictions"]], trained.predict_proba(images[:5]), atol=1e-5
    )
    as_json = server.post("/predict/batch", json={"images": [im[..., 0].tolist() for im in images[:3]]}).json()
    assert [p["index"] for p in as_json["predictions"]] == list(trained.predict(images[:3]))


@pytest.mark.slow
def test_feature_maps_come_as_png_tiles_for_every_conv_and_pool_layer(server, trained, digits):
    image = digits[0][0]
    body = upload(server, "/feature-maps", png(image), channels=4).json()
    layers = [(layer["name"], layer["type"], layer["shape"]) for layer in body["layers"]]
    assert layers == [
        ("conv2d", "Conv2D", [28, 28, 32]),
        ("conv2d_1", "Conv2D", [28, 28, 32]),
        ("max_pool2d", "MaxPool2D", [14, 14, 32]),
        ("conv2d_2", "Conv2D", [14, 14, 32]),
        ("conv2d_3", "Conv2D", [14, 14, 32]),
        ("max_pool2d_1", "MaxPool2D", [7, 7, 32]),
    ]
    for layer in body["layers"]:
        assert len(layer["tiles"]) == 4 and len(layer["ranges"]) == 4
        tile = Image.open(io.BytesIO(base64.b64decode(layer["tiles"][0].split(",", 1)[1])))
        assert tile.format == "PNG" and tile.size == (layer["shape"][1], layer["shape"][0])
        assert all(lo <= hi for lo, hi in layer["ranges"])
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["input"].split(",", 1)[1]))))
    np.testing.assert_array_equal(seen, image[..., 0])  # the model saw exactly the uploaded digit
    np.testing.assert_allclose(body["prediction"]["probabilities"], trained.predict_proba(image)[0], atol=1e-5)


@pytest.mark.slow
def test_docs_work_offline(server):
    page = server.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    assert server.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert server.get("/docs-assets/swagger-ui.css").status_code == 200
    spec = server.get("/openapi.json").json()
    assert {"/health", "/model", "/predict", "/predict/batch", "/feature-maps"} <= set(spec["paths"])
    assert {"multipart/form-data", "application/json", "image/png"} <= set(
        spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    )
    page = server.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert server.get("/static/app.js").status_code == 200


# --- bad requests: a 4xx with one sentence, never a 500, and the server keeps serving ----------------


def _noise_png(side: int) -> bytes:
    return png(np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8))


def _too_many_files():
    return {"files": [("images", (f"d{i}.png", _noise_png(28), "image/png")) for i in range(MAX_BATCH + 1)]}


BAD_REQUESTS = {
    "not an image": (
        400,
        "/predict",
        lambda: {"content": b"hello, not a picture", "headers": {"content-type": "image/png"}},
        "not a",
    ),
    "truncated image": (
        400,
        "/predict",
        lambda: {"files": {"image": ("t.png", _noise_png(120)[:3000], "image/png")}},
        "truncated",
    ),
    "empty body": (400, "/predict", lambda: {"content": b""}, "empty"),
    "empty upload": (400, "/predict", lambda: {"files": {"image": ("e.png", b"", "image/png")}}, "empty"),
    "empty form": (400, "/predict/batch", lambda: {"files": {"other": ("e.txt", b"", "text/plain")}, "data": {}}, None),
    "invalid json": (
        400,
        "/predict",
        lambda: {"content": b"{pixels: 1", "headers": {"content-type": "application/json"}},
        "JSON",
    ),
    "json without pixels": (400, "/predict", lambda: {"json": {"image": [1, 2]}}, "pixels"),
    "wrong json shape": (422, "/predict", lambda: {"json": {"pixels": [[0] * 28] * 27}}, "(27, 28, 1)"),
    "ragged json": (422, "/predict", lambda: {"json": {"pixels": [[0] * 28] * 27 + [[0] * 5]}}, "rectangular"),
    "strings": (422, "/predict", lambda: {"json": {"pixels": [["0"] * 28] * 28}}, "string"),
    "booleans": (422, "/predict", lambda: {"json": {"pixels": [[True] * 28] * 28}}, "true/false"),
    "nulls": (422, "/predict", lambda: {"json": {"pixels": [[None] * 28] * 28}}, "null"),
    "NaN": (
        422,
        "/predict",
        lambda: {
            "content": json.dumps({"pixels": [[float("nan")] * 28] * 28}).encode(),
            "headers": {"content-type": "application/json"},
        },
        "NaN",
    ),
    "out of range": (422, "/predict", lambda: {"json": {"pixels": [[300] * 28] * 28}}, "0..255"),
    "image over pixel limit": (
        413,
        "/predict",
        lambda: {"files": {"image": ("big.png", png(np.zeros((1200, 1000), np.uint8)), "image/png")}},
        "1,000,000",
    ),
    "body over limit": (
        413,
        "/predict",
        lambda: {"content": b"\0" * (2 * 1024 * 1024), "headers": {"content-type": "image/png"}},
        "1,048,576",
    ),
    "chunked body over limit": (
        413,
        "/predict",
        lambda: {"content": iter([b"\0" * 65536] * 40), "headers": {"content-type": "image/png"}},
        "1,048,576",
    ),
    "batch over limit": (413, "/predict/batch", _too_many_files, f"at most {MAX_BATCH}"),
    "json batch over limit": (
        413,
        "/predict/batch",
        lambda: {"json": {"images": [[[0] * 28] * 28] * (MAX_BATCH + 1)}},
        f"at most {MAX_BATCH}",
    ),
    "bad image in batch": (
        400,
        "/predict/batch",
        lambda: {
            "files": [("images", ("a.png", _noise_png(28), "image/png")), ("images", ("b.png", b"junk", "image/png"))]
        },
        "image 2 of 2",
    ),
    "two files to /predict": (
        400,
        "/predict",
        lambda: {"files": [("image", ("a.png", _noise_png(28), "image/png"))] * 2},
        "exactly one",
    ),
    "unsupported content type": (
        415,
        "/predict",
        lambda: {"content": b"x", "headers": {"content-type": "text/plain"}},
        "text/plain",
    ),
    "raw body to batch": (
        415,
        "/predict/batch",
        lambda: {"content": _noise_png(28), "headers": {"content-type": "image/png"}},
        None,
    ),
    "multipart without a boundary": (
        400,
        "/predict",
        lambda: {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
        "no boundary parameter",
    ),
    "multipart cut inside a part": (
        400,
        "/predict",
        lambda: {
            "content": b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            + _noise_png(28),
            "headers": {"content-type": "multipart/form-data; boundary=b"},
        },
        "the multipart body ends inside a part: its closing boundary is missing.",
    ),
    "top_k zero": (
        422,
        "/predict?top_k=0",
        lambda: {"files": {"image": ("a.png", _noise_png(28), "image/png")}},
        "top_k",
    ),
    "invert typo": (
        422,
        "/predict?invert=maybe",
        lambda: {"files": {"image": ("a.png", _noise_png(28), "image/png")}},
        "invert",
    ),
    "feature maps of junk": (
        400,
        "/feature-maps",
        lambda: {"content": b"GIF89a-junk", "headers": {"content-type": "image/gif"}},
        "not a",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_json_sentence(server, case):
    status, path, request, words = BAD_REQUESTS[case]
    response = server.post(path, **request())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error.endswith(".") and "Traceback" not in error and len(error) < 300, error
    if words:
        assert words in error, error
    assert server.get("/health").json() == {"status": "ok"}


@pytest.mark.slow
def test_unknown_paths_and_methods_are_json_errors(server):
    missing = server.get("/nope")
    assert missing.status_code == 404 and "/nope" in missing.json()["error"]
    wrong = server.get("/predict")
    assert wrong.status_code == 405 and "GET" in wrong.json()["error"]


def test_serve_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "1"]) == 2
    assert "not a convscope run directory" in capsys.readouterr().err


# --- the inversion rule, as a pure function ------------------------------------------------------


def test_inversion_follows_the_training_background():
    dark = np.zeros((20, 28, 28, 1), np.uint8)
    dark[:, 8:20, 12:16] = 255
    assert learn_contract(dark, (0, 255)).background == "dark"
    assert learn_contract(255 - dark, (0, 255)).background == "light"
    photos = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 3), dtype=np.uint8)
    assert learn_contract(photos, (0, 255)).background is None
    paper = 255 - dark[0]
    contract = learn_contract(dark, (0, 255))
    assert frame(paper, contract, (28, 28)).inverted is True
    assert frame(dark[0], contract, (28, 28)).inverted is False
    assert (
        frame(paper, learn_contract(photos, (0, 255)), (28, 28)).inverted is False
    )  # no clear background: never guess
    assert frame(dark[0], contract, (28, 28), invert=True).inverted is True  # the client's word wins

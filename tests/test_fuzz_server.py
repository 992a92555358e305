"""Fuzzing the server's request parsing in process (Starlette's TestClient): random bodies,
content types, query strings and multipart forms get a 2xx or a 4xx JSON sentence, never a 500;
and the real server answers malformed HTTP with JSON too."""

from __future__ import annotations

import io
import json
import socket
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from fuzzing import scaled

pytest.importorskip("fastapi")
from starlette.testclient import TestClient

from convscope.serving.app import create_app
from convscope.serving.service import ServerSettings

MAX_BATCH = 4


@pytest.fixture(scope="module")
def client(mlp_run):
    app = create_app(mlp_run, ServerSettings(max_body_bytes=256 * 1024, max_image_pixels=100_000, max_batch=MAX_BATCH))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_answered(response) -> None:
    """The property: a success, or a 4xx whose JSON body is one sentence."""
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error, str) and "\n" not in error and len(error) < 400 and "Traceback" not in error


def png(side: int, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (side, side), 40).save(out, format="PNG")
    return out.getvalue()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=9), st.dictionaries(st.sampled_from(["pixels", "images", "x"]), inner, max_size=2)
    ),
    max_leaves=80,
)
pixel_grids = st.integers(1, 10).flatmap(
    lambda side: st.lists(
        st.lists(st.one_of(st.integers(-1, 300), st.floats()), min_size=side, max_size=side),
        min_size=side,
        max_size=side,
    )
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda g: json.dumps({"pixels": g}).encode(), pixel_grids),
    st.builds(lambda gs: json.dumps({"images": gs}).encode(), st.lists(pixel_grids, max_size=6)),
    st.sampled_from([png(8), png(8, "RGBA"), png(400), png(8)[:40], b"{" * 5000, b"[" * 100_000, b"GIF89a"]),
)
content_types = st.sampled_from(
    [
        "application/json",
        "image/png",
        "",
        "application/octet-stream",
        "text/plain",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "image/*",
        "application/json; charset=latin-1",
    ]
)
paths = st.sampled_from(["/predict", "/predict/batch", "/feature-maps"])
queries = st.dictionaries(
    st.sampled_from(["top_k", "invert", "channels", "x"]),
    st.one_of(st.integers(-5, 10**12).map(str), st.sampled_from(["auto", "true", "nan", "", "1e400", "-0"])),
    max_size=3,
)


@pytest.mark.slow
@scaled(0.3)
@given(path=paths, body=bodies, content_type=content_types, query=queries)
@example("/predict", b"[" * 100_000, "application/json", {})
@example("/predict", json.dumps({"pixels": [[[[[[0]]]]]]}).encode(), "application/json", {})
def test_random_bodies(client, path, body, content_type, query):
    headers = {"content-type": content_type} if content_type else {}
    assert_answered(client.post(path, content=body, headers=headers, params=query))


@pytest.mark.slow
@scaled(0.1)
@given(
    count=st.integers(0, 12),
    field=st.sampled_from(["image", "images", "other"]),
    data=st.lists(st.sampled_from([png(8), png(3, "RGB"), b"", b"junk", png(400)]), min_size=1, max_size=3),
    path=paths,
)
def test_random_multipart_forms(client, count, field, data, path):
    files = [(field, (f"f{i}.png", data[i % len(data)], "image/png")) for i in range(count)]
    response = client.post(path, files=files) if files else client.post(path, data={"a": "b"})
    assert_answered(response)


@pytest.mark.slow
def test_json_nested_100000_deep_is_a_400_naming_the_limit(client):
    response = client.post(
        "/predict", content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "the JSON body nests 100,000 levels deep; this server reads at most 32 (set CONVSCOPE_MAX_JSON_DEPTH to change it)."
    )


@pytest.mark.slow
def test_ten_thousand_files_are_a_413_naming_our_limit(mlp_run):
    files = [("images", (f"{i}.png", b"x", "image/png")) for i in range(10_000)]  # 1.3 MB: under the body limit
    app = create_app(mlp_run, ServerSettings(max_batch=MAX_BATCH))
    with TestClient(app, raise_server_exceptions=False) as big_body_client:
        response = big_body_client.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert response.json()["error"] == (
        f"the form holds more than {MAX_BATCH} files; this server takes at most {MAX_BATCH} images per request "
        "(start it with a larger --max-batch)."
    )


@pytest.mark.slow
def test_negative_content_length_in_process_is_json(client):
    response = client.post("/predict", content=b"x", headers={"content-length": "-1", "content-type": "image/png"})
    assert response.status_code == 400 and "Content-Length" in response.json()["error"]


@pytest.mark.slow
def test_the_real_server_answers_malformed_http_with_json(mlp_run):
    from server_process import running_server

    with running_server(mlp_run) as url:
        parts = urlsplit(url)
        for request in (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"GARBAGE\r\n\r\n"):
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
                conn.sendall(request)
                reply = b""
                while chunk := conn.recv(65536):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
            assert json.loads(body)["error"].startswith("the request is not valid HTTP (")

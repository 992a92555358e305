"""Real `convscope serve` processes: several workers on one port, clients that hang up, /metrics over HTTP."""

from __future__ import annotations

import socket

import httpx2
import numpy as np
import pytest

import convscope as cs
from server_process import running_server
from synthetic import png

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def predictions_counted(client: httpx2.Client) -> float:
    text = client.get("/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "convscope_requests_total" and s.labels["route"] == "/predict" and s.labels["status"] == "200"
    )


def multipart(data: bytes, port: int) -> bytes:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
        + data
        + b"\r\n--b--\r\n"
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def test_two_workers_share_the_port_and_one_scrape_counts_both(trained_run):
    trained = cs.load_run(trained_run)
    images = cs.load_test_set(trained_run)[0].images[:12]
    with running_server(trained_run, "--workers", "2", "--max-batch-size", "4") as url:
        # fresh connections, so the kernel spreads them over both workers' accept queues
        bodies = [
            httpx2.post(url + "/predict", files={"image": ("d.png", png(im), "image/png")}).json() for im in images
        ]
        got = np.float32([b["probabilities"] for b in bodies])
        np.testing.assert_allclose(
            got, np.concatenate([trained.predict_proba(im[None]) for im in images]), rtol=0, atol=1e-6
        )
        with httpx2.Client(base_url=url) as client:
            # a scrape of whichever worker answers reads every worker's samples
            assert [predictions_counted(client) for _ in range(4)] == [len(images)] * 4


def test_clients_that_hang_up_mid_request_break_nothing(trained_run):
    image = cs.load_test_set(trained_run)[0].images[0]
    with running_server(trained_run) as url:
        port = int(url.rsplit(":", 1)[1])
        request = multipart(png(image), port)
        for cut in (len(request) // 2, len(request)):  # mid-body, and right after a whole request
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", port)) as conn:
                    conn.sendall(request[:cut])
        with httpx2.Client(base_url=url) as client:
            statuses = [
                client.post("/predict", files={"image": ("d.png", png(image), "image/png")}).status_code
                for _ in range(5)
            ]
            assert statuses == [200] * 5
            assert client.get("/health").json() == {"status": "ok"}
            text = client.get("/metrics").text
    errors = [
        s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "convscope_request_errors_total" and s.labels["status"] == "500"
    ]
    assert errors == []

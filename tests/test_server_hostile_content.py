"""Request content the server cannot use is a 4xx JSON sentence, never a 500: JSON numbers past float32
(integer literals past Python's 4,300-digit parsing limit included). A model that computes NaN answers a
JSON error naming that cause, never the JSON encoder's crash."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from convscope.runs import WEIGHTS

pytest.importorskip("fastapi")
from starlette.testclient import TestClient

from convscope.serving.app import create_app
from convscope.serving.service import ServerSettings

pytestmark = pytest.mark.slow

SIDE = 8  # the mlp_run fixture's 8 x 8 digits, pixels 0..16


def pixels_with(literal: str) -> str:
    """A JSON 8 x 8 image of zeros whose first pixel is `literal`, written as raw JSON text."""
    rows = [["0"] * SIDE for _ in range(SIDE)]
    rows[0][0] = literal
    return "[" + ",".join("[" + ",".join(row) + "]" for row in rows) + "]"


LITERALS = {
    "4,301-digit integer": "9" * 4301,
    "100,000-digit integer": "9" * 100_000,
    "400-digit integer": "9" * 400,
    "negative 5,000-digit integer": "-" + "9" * 5000,
    "float past float32": "1e39",
    "float past float64": "1e400",
}
ROUTES = {
    "/predict": lambda image: f'{{"pixels": {image}}}',
    "/predict/batch": lambda image: f'{{"images": [{pixels_with("0")}, {image}]}}',
    "/feature-maps": lambda image: f'{{"pixels": {image}}}',
}


@pytest.fixture(scope="module")
def client(mlp_run):
    with TestClient(create_app(mlp_run, ServerSettings()), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("literal", list(LITERALS))
def test_numbers_past_float32_are_a_422_sentence(client, route, literal):
    body = ROUTES[route](pixels_with(LITERALS[literal]))
    response = client.post(route, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "float32" in error and error.endswith(".") and len(error) < 300, error


@pytest.fixture(scope="module")
def nan_client(mlp_run, tmp_path_factory):
    """The mlp run with every weight NaN: a model that answers NaN for any image."""
    run = tmp_path_factory.mktemp("nan") / "run"
    shutil.copytree(mlp_run, run)
    weights = load_file(str(run / WEIGHTS))
    save_file(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
        str(run / WEIGHTS),
    )
    with TestClient(create_app(run, ServerSettings()), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("route", list(ROUTES))
def test_nan_output_is_a_json_error_naming_the_model(nan_client, route):
    body = ROUTES[route](pixels_with("3"))
    response = nan_client.post(route, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert "NaN or infinite" in error and "weights" in error and "bug" not in error, error
    assert nan_client.get("/health").json() == {"status": "ok"}

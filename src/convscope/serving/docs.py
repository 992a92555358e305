"""The API docs at /docs, served from local files: FastAPI's default page loads Swagger UI from a CDN,
and a server for a lab or a laptop may have no network."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..i18n import _


def add_docs(app: FastAPI) -> None:
    """Swagger UI from the files of the `swagger-ui-bundle-v2` package; without it, a plain list of the endpoints."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(plain_docs(app.openapi()))
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def plain_docs(spec: dict[str, Any]) -> str:
    """A page without JavaScript listing every endpoint, for installs without the Swagger UI files."""
    schema = _("The full schema is {link}.").format(link="<a href='/openapi.json'>/openapi.json</a>")
    rows = "".join(
        f"<li><code>{escape(method.upper())} {escape(path)}</code>: {escape(op.get('summary', ''))}"
        f"<br><small>{escape(op.get('description', ''))}</small></li>"
        for path, methods in spec.get("paths", {}).items()
        for method, op in methods.items()
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>{escape(spec['info']['title'])}</title>"
        f"<h1>{escape(spec['info']['title'])}</h1><p>{schema}</p>"
        f"<ul>{rows}</ul>"
    )

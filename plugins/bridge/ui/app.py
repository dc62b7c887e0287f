"""The FastAPI app of the bridge pages, mounted by the Airflow plugin under ``/bridge``.

Pages (Chinese, server-rendered, no JavaScript but the wallboard's), one router each in :mod:`bridge.ui.routes`:

- ``/``                       overview
- ``/reports``                经营日报 by date: open the HTML, download the XLSX
- ``/health``                 数据健康: scores with a 30-day trend, failed checks, daily summaries
- ``/data-docs/…``             the Great Expectations Data Docs site, served from the data folder
- ``/quarantine``             隔离区: list with filters and paging; ``/quarantine/{id}`` one record, masked
- ``/quarantine/{id}/release`` POST: release by an authorised user (CSRF token + confirmation)
- ``/sync``                   同步状态: watermarks and lag, last runs, quarantine backlog
- ``/migration``              历史迁移: runs and their report files
- ``/wallboard``              大屏, also through a kiosk link without login

Every route needs an Airflow login (see :mod:`bridge.ui.auth`) except
``/static`` (the stylesheet and icon, no data) and the kiosk links. A fresh
install shows empty states; a hub that is unreachable or not migrated shows
what to do (503).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.staticfiles import StaticFiles

from bridge.ui import errors
from bridge.ui.config import UiConfig, default_config
from bridge.ui.deps import Pages
from bridge.ui.routes import ROUTERS

__all__ = ["UiConfig", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


class _SecurityHeaders(BaseHTTPMiddleware):
    """Pages are same-origin framable only (the Airflow UI embeds them), never cached, never sniffed."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.endswith(".css") and "/static/" not in request.url.path:
            headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response


def create_app(config: UiConfig | None = None) -> FastAPI:
    """The bridge pages; ``config`` defaults to Airflow's login and the bridge_hub Connection."""
    cfg = config or default_config()
    app = FastAPI(title="OA ⇄ CRM bridge pages", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = cfg
    app.state.pages = Pages(cfg)
    errors.install(app)
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app

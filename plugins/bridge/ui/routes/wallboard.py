"""大屏: the office wallboard page and its figures, for a logged-in user or through a kiosk link.

Routes (all GET, read-only):

- ``/wallboard``                      the page, for a logged-in Airflow user
- ``/wallboard/data``                 its figures as JSON (the page fetches them every ``refresh_seconds``)
- ``/wallboard/kiosk/{token}``        the same page opened with a kiosk link, no Airflow login
- ``/wallboard/kiosk/{token}/data``   the figures for that page

The figures and their cache are :mod:`bridge.ui.wallboard`; the links :mod:`bridge.ui.kiosk`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from bridge.ui import kiosk
from bridge.ui.deps import pages_of, require_viewer
from bridge.ui.rendering import base_path, error_page, templates
from bridge.ui.wallboard import MAX_REFRESH, MIN_REFRESH, WallboardSettings, load_settings

log = logging.getLogger(__name__)
router = APIRouter()

# The page's own CSP: scripts only from this origin (ECharts and wallboard.js), data only from here.
WALLBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)

REFUSED_LINK = "大屏链接无效或已被收回。请联系管理员用 `bridge kiosk create` 生成新的链接。"


def _headers(kiosk_mode: bool) -> dict[str, str]:
    headers = {"Content-Security-Policy": WALLBOARD_CSP, "Cache-Control": "no-store"}
    if kiosk_mode:
        headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
        headers["X-Robots-Tag"] = "noindex"
    return headers


def _refresh_of(request: Request, cfg: WallboardSettings) -> int:
    """``?refresh=`` when it is a usable number of seconds, else the settings' ``refresh_seconds``."""
    raw = request.query_params.get("refresh", "")
    if raw.isdigit() and MIN_REFRESH <= int(raw) <= MAX_REFRESH:
        return int(raw)
    return cfg.refresh_seconds


def _page(request: Request, data_url: str, kiosk_mode: bool) -> Response:
    cfg = load_settings()
    html = (
        templates()
        .get_template("wallboard.html")
        .render(
            base=base_path(request),
            data_url=data_url,
            refresh=_refresh_of(request, cfg),
            title=cfg.title,
            kiosk=kiosk_mode,
        )
    )
    return HTMLResponse(html, headers=_headers(kiosk_mode))


def _figures(request: Request) -> JSONResponse:
    cfg = load_settings()
    pages = pages_of(request)
    return JSONResponse(
        pages.wallboard_figures.get(pages.hub(), cfg.cache_seconds), headers={"Cache-Control": "no-store"}
    )


def _link_valid(request: Request, token: str) -> bool:
    """Whether ``token`` is a kiosk link created here and not revoked."""
    if not kiosk.TOKEN_PATTERN.match(token):
        return False
    try:
        key = kiosk.signing_key()
    except kiosk.KioskKeyMissing as exc:
        log.error("wallboard: kiosk links cannot be checked: %s", exc)
        return False
    if key is None:  # no key yet: no link was ever created here
        return False
    with pages_of(request).hub().connect() as conn:
        link = kiosk.verify(conn, key, token)
    if link is None:
        log.warning("wallboard: kiosk link refused (id %s)", kiosk.token_id_of(token)[:26])
    return link is not None


def _refused_page(request: Request) -> Response:
    response = error_page(request, 403, "大屏链接无效", REFUSED_LINK)
    response.headers.update(_headers(True))
    return response


@router.get("/wallboard", response_class=HTMLResponse, name="wallboard")
def wallboard(request: Request, viewer: Any = Depends(require_viewer)) -> Response:
    return _page(request, f"{base_path(request)}/wallboard/data", kiosk_mode=False)


@router.get("/wallboard/data", name="wallboard_data")
def wallboard_data(request: Request, viewer: Any = Depends(require_viewer)) -> Response:
    return _figures(request)


@router.get("/wallboard/kiosk/{token}", response_class=HTMLResponse, name="wallboard_kiosk")
def wallboard_kiosk(request: Request, token: str) -> Response:
    if not _link_valid(request, token):
        return _refused_page(request)
    return _page(request, f"{base_path(request)}/wallboard/kiosk/{token}/data", kiosk_mode=True)


@router.get("/wallboard/kiosk/{token}/data", name="wallboard_kiosk_data")
def wallboard_kiosk_data(request: Request, token: str) -> Response:
    if not _link_valid(request, token):
        return JSONResponse({"error": REFUSED_LINK}, status_code=403, headers=_headers(True))
    response = _figures(request)
    response.headers.update(_headers(True))
    return response

"""What can go wrong on a page, and the error page each answer shows (Chinese: what happened, what to do).

Routes raise these exceptions; :func:`install` turns every one of them (and
FastAPI's own 404/405/422 and anything unexpected) into the same error page,
with the viewer when the login was already checked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.ui import display, files
from bridge.ui.auth import Forbidden, NotAuthenticated, Viewer
from bridge.ui.queries import HubUnavailable
from bridge.ui.rendering import error_page

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """A query or form value the pages cannot use; the message says which and what is allowed."""


class NotFound(Exception):
    """Nothing at this address; the message says what was looked for."""


class Conflict(Exception):
    """The action no longer applies (e.g. the entry was released meanwhile)."""


class PermissionConfigError(Exception):
    """The permission policy or the viewer → role settings cannot be used: no page shows data (fail closed)."""


# Exceptions whose message is the page's message: (status, title).
_SAID: tuple[tuple[type[Exception], int, str], ...] = (
    (Forbidden, 403, "没有权限"),
    (BadRequest, 400, "请求参数有误"),
    (files.UnsafePath, 400, "路径不合法"),
    (NotFound, 404, "没有找到"),
    (Conflict, 409, "操作未执行"),
    (PermissionConfigError, 503, "权限配置有误"),
)
_HTTP_TITLES = {
    404: ("没有找到", "没有这个页面。请从上方导航进入。"),
    405: ("方法不允许", "该地址不支持这种请求方式。"),
}


def viewer_of(request: Request) -> Viewer | None:
    """The viewer of this request when the login was already checked (for the error page's header)."""
    viewer = getattr(request.state, "bridge_viewer", None)
    return viewer if isinstance(viewer, Viewer) else None


def _said(status: int, title: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The handler of an exception whose message is the page's message."""

    async def handler(request: Request, exc: Exception) -> Response:
        return error_page(request, status, title, str(exc), viewer=viewer_of(request))

    return handler


async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "")
    if request.method == "GET" and wants_html and exc.login_url:
        return RedirectResponse(exc.login_url, status_code=302)
    response = error_page(request, 401, "需要登录", "请先登录 Airflow，再打开本页面。", exc.reason)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _hub(request: Request, exc: HubUnavailable) -> Response:
    log.warning("bridge UI: hub unavailable: %s %s", exc.message, exc.detail)
    return error_page(request, 503, "中枢库不可用", exc.message, exc.detail, viewer=viewer_of(request))


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    problems = [display.validation_problem(err) for err in exc.errors()]
    return error_page(
        request,
        422,
        "请求参数有误",
        "参数不符合要求：" + "；".join(problems) + "。请检查地址后重试。",
        viewer=viewer_of(request),
    )


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    title, message = _HTTP_TITLES.get(
        exc.status_code,
        ("请求失败", f"请求未能完成（状态码 {exc.status_code}）。请返回后重试，或联系管理员。"),
    )
    return error_page(request, exc.status_code, title, message, viewer=viewer_of(request))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("bridge UI: unexpected error on %s", request.url.path)
    return error_page(
        request,
        500,
        "页面出错",
        "页面处理时发生意外错误，已记录在 Airflow API 服务日志中。请稍后重试或联系管理员。",
        viewer=viewer_of(request),
    )


def install(app: FastAPI) -> None:
    """Every error of the pages answered with the error page."""
    app.exception_handler(NotAuthenticated)(_not_authenticated)
    for exc_type, status, title in _SAID:
        app.exception_handler(exc_type)(_said(status, title))
    app.exception_handler(HubUnavailable)(_hub)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(Exception)(_unexpected)

"""The pages' templates: one Jinja environment (``bridge.templating``) with the display filters, built once.

Every HTML answer of the pages, the wallboard and the error pages goes
through :func:`render_html`, so each page gets the same ``base`` (the mount
prefix Airflow gives), viewer, request path and time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from bridge import workdays
from bridge.templating import template_environment
from bridge.ui import display
from bridge.ui.auth import Viewer

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> jinja2.Environment:
    env = template_environment(TEMPLATES, escape="html")
    env.filters.update(
        local_time=display.local_time,
        duration=display.duration_text,
        reason=display.reason_label,
        entity=display.entity_label,
        direction=display.direction_label,
        resolution=display.resolution_label,
        scrub=display.scrub_personal,
        counts=display.counts_text,
        count_rows=display.count_rows,
        stream=display.stream_label,
        number=display.number,
        department=display.department_label,
        short=display.first_lines,
        score_class=display.score_class,
        lag_class=display.lag_class,
        run_kind=lambda k: display.RUN_KIND_LABELS.get(k, k),
        run_status=lambda s: display.RUN_STATUS_LABELS.get(s, s),
    )
    env.globals.update(
        calendar_banner=workdays.banner_text,  # None, or the working-day calendar's warning
        scope_labels=display.SCOPE_LABELS,
        reason_advice=display.REASON_ADVICE,
        run_seconds=display.run_seconds,
        field_label=display.field_label,
        query_string=display.query_string,
    )
    return env


_env_lock = threading.Lock()
_env: list[jinja2.Environment] = []


def templates() -> jinja2.Environment:
    """The environment, built on first use (the plugin builds the app lazily too)."""
    with _env_lock:
        if not _env:
            _env.append(_environment())
        return _env[0]


def base_path(request: Request) -> str:
    """The prefix the app is mounted under (``/bridge`` in Airflow), for links and redirects."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render_html(
    request: Request, template: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page of the bridge: ``template`` with the shared context and ``context``."""
    html = (
        templates()
        .get_template(template)
        .render(
            base=base_path(request),
            viewer=viewer,
            request_path=request.url.path,
            now=datetime.now(UTC),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status)


def error_page(
    request: Request, status: int, title: str, message: str, detail: str = "", viewer: Viewer | None = None
) -> HTMLResponse:
    """The error page: what went wrong and what to do (Chinese), with the viewer when known."""
    return render_html(
        request, "error.html", viewer, status=status, title=title, message=message, detail=detail
    )

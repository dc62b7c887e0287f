"""``/``: the overview — open quarantine, the last run of each kind, the latest report, health and migration."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from bridge.hub import store
from bridge.ui import queries
from bridge.ui.auth import Viewer
from bridge.ui.deps import pages_of, require_viewer
from bridge.ui.rendering import render_html

router = APIRouter()


@router.get("/", response_class=HTMLResponse, name="index")
def index(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    with pages_of(request).hub().connect() as conn:
        open_total = store.count_quarantine(conn)
        latest_runs = queries.latest_run_per_kind(conn)
        reports = queries.report_runs(conn, limit=1)
        health_day = queries.latest_health_day(conn)
        overall = None
        if health_day is not None:
            overall = next(
                (s for s in queries.health_scores(conn, health_day) if s.scope_type == "overall"), None
            )
        migrations = queries.migration_runs(conn, limit=1)
    return render_html(
        request,
        "index.html",
        viewer,
        open_total=open_total,
        latest_runs=latest_runs,
        report=reports[0] if reports else None,
        health_day=health_day,
        overall=overall,
        migration=migrations[0] if migrations else None,
    )

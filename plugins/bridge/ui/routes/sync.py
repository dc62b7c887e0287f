"""``/sync`` (同步状态): freshness of each direction, watermarks and their lag, last runs, quarantine backlog."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from bridge import clock
from bridge.hub import store
from bridge.sync.freshness import sync_freshness
from bridge.ui import queries
from bridge.ui.auth import Viewer
from bridge.ui.deps import pages_of, require_viewer
from bridge.ui.rendering import render_html

router = APIRouter()


@router.get("/sync", response_class=HTMLResponse, name="sync")
def sync(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    now = datetime.now(UTC)
    with pages_of(request).hub().connect() as conn:
        freshness = sync_freshness(conn, now)
        marks = queries.watermarks(conn)
        latest = queries.latest_run_per_kind(conn)
        runs = store.recent_runs(conn, limit=30)
        backlog = store.quarantine_backlog(conn)
    streams = []
    for mark in marks:
        value_at = clock.from_ms(mark.value_ms)
        streams.append(
            {
                "mark": mark,
                "value_at": value_at,
                "lag": (now - value_at).total_seconds(),
                "age": (now - mark.updated_at).total_seconds(),
            }
        )
    return render_html(
        request,
        "sync.html",
        viewer,
        freshness=list(freshness.values()),
        streams=streams,
        latest=latest,
        runs=runs,
        backlog=backlog,
        backlog_total=sum(backlog.values()),
    )

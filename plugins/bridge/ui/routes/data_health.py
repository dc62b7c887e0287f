"""``/health`` (数据健康): scores with a 30-day trend, failed checks, daily summaries; ``/data-docs/…`` the GX site.

The Data Docs site is served from the data folder with its own CSP
(:data:`bridge.ui.files.DATA_DOCS_CSP`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from bridge import people
from bridge.quality.scores import HealthScore
from bridge.ui import display, files, queries
from bridge.ui.auth import Viewer
from bridge.ui.deps import pages_of, require_viewer
from bridge.ui.errors import NotFound
from bridge.ui.rendering import base_path, render_html

router = APIRouter()

TREND_DAYS = 30
NAMED_SCOPES = ("entity", "department", "data_owner")  # shown in this order; other scope types after them


def score_groups(scores: list[HealthScore], latest: date | None) -> dict[str, list[dict[str, Any]]]:
    """Per scope type, one row per scope: its latest score and its trend, weakest first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_scope: dict[tuple[str, str], dict[date, float]] = defaultdict(dict)
    latest_row: dict[tuple[str, str], HealthScore] = {}
    for s in scores:
        by_scope[(s.scope_type, s.scope)][s.day] = s.score
        latest_row[(s.scope_type, s.scope)] = s  # rows come ordered by day
    for key, series in by_scope.items():
        row = latest_row[key]
        groups[key[0]].append(
            {
                "scope": key[1],
                "row": row,
                "current": row.day == latest,
                "trend": display.trend(series, latest or row.day, TREND_DAYS),
            }
        )
    for rows in groups.values():
        rows.sort(key=lambda r: (r["trend"].latest if r["trend"].latest is not None else 101, r["scope"]))
    return groups


@router.get("/health", response_class=HTMLResponse, name="health")
def health(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    pages = pages_of(request)
    with pages.hub().connect() as conn:
        latest = queries.latest_health_day(conn)
        scores = queries.health_scores(conn, latest - timedelta(days=TREND_DAYS - 1)) if latest else []
        failed = queries.failed_checks(conn, latest) if latest else []
        owner_names = people.names(conn, [s.scope for s in scores if s.scope_type == "data_owner"])
    groups = score_groups(scores, latest)
    overall = groups.pop("overall", [])
    docs_index = files.find_index(pages.area("data_docs"))
    summaries_base = pages.area("data_health")
    summaries = [
        {"day": d, "files": files.files_in(summaries_base, summaries_base / d.isoformat())}
        for d in files.day_folders(summaries_base, limit=TREND_DAYS)
    ]
    return render_html(
        request,
        "health.html",
        viewer,
        latest=latest,
        overall=overall[0] if overall else None,
        groups=[(t, groups[t]) for t in NAMED_SCOPES if groups.get(t)],
        other_groups=[(t, rows) for t, rows in groups.items() if t not in NAMED_SCOPES],
        failed=failed,
        docs_index=docs_index,
        summaries=summaries,
        trend_days=TREND_DAYS,
        owner_names=owner_names,
        dept_labels=pages.department_labels(),
        dictionary=pages.policy().dictionary,
    )


@router.get("/data-docs", name="data_docs_root")
def data_docs_root(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    index_rel = files.find_index(pages_of(request).area("data_docs"))
    if index_rel is None:
        return render_html(request, "data_docs_empty.html", viewer)
    return RedirectResponse(f"{base_path(request)}/data-docs/{index_rel}", status_code=302)


@router.get("/data-docs/{rel:path}", name="data_docs")
def data_docs(request: Request, rel: str, viewer: Viewer = Depends(require_viewer)) -> Response:
    if rel in ("", "/"):
        return data_docs_root(request, viewer)
    found = files.data_docs_file(pages_of(request).area("data_docs"), rel)
    if found is None:
        raise NotFound("文件不存在。数据文档可能尚未生成，或已在下一次数据健康检查时重建。")
    return FileResponse(
        found.path,
        media_type=found.media_type,
        filename=found.path.name if found.download else None,
        headers={"Content-Security-Policy": files.DATA_DOCS_CSP},
    )

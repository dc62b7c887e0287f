"""``/migration`` (历史迁移): the history migration's runs, and their report files for the export's audience."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from bridge.ui import files, queries
from bridge.ui.auth import Viewer
from bridge.ui.deps import FILE_CSP, pages_of, require_viewer
from bridge.ui.errors import BadRequest, NotFound
from bridge.ui.rendering import render_html

router = APIRouter()


@router.get("/migration", response_class=HTMLResponse, name="migration")
def migration(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    pages = pages_of(request)
    base = pages.area("migration")
    with pages.hub().connect() as conn:
        runs = queries.migration_runs(conn)
    rows = []
    for run in runs:
        html = files.confined(base, run.report_html, pages.data_dir())
        csv = files.confined(base, run.report_csv, pages.data_dir())
        rows.append(
            {"run": run, "html_ok": bool(html and html.is_file()), "csv_ok": bool(csv and csv.is_file())}
        )
    return render_html(
        request, "migration.html", viewer, rows=rows, may_open=pages.may_open("export", "migration", viewer)
    )


@router.get("/migration/report", name="migration_report")
def migration_report(
    request: Request, run_id: str, kind: str = "html", viewer: Viewer = Depends(require_viewer)
) -> Response:
    pages = pages_of(request)
    pages.audience_check("export", "migration", viewer, "历史迁移报告")
    if kind not in ("html", "csv"):
        raise BadRequest("kind 只能是 html 或 csv。")
    if not run_id or len(run_id) > 250:
        raise BadRequest("run_id 不能为空，且不超过 250 个字符。")
    with pages.hub().connect() as conn:
        run = queries.get_migration_run(conn, run_id)
    if run is None:
        raise NotFound(f"没有运行编号为 {run_id} 的历史迁移记录。")
    stored = run.report_html if kind == "html" else run.report_csv
    path = files.confined(pages.area("migration"), stored, pages.data_dir())
    if path is None or not path.is_file():
        raise NotFound("这次历史迁移的报告文件不存在（尚未生成，或不在 migration 目录中）。")
    if kind == "html":
        return FileResponse(
            path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": FILE_CSP}
        )
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=path.name)

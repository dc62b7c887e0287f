"""``/reports`` (经营日报): the daily reports by date — open the HTML, download the XLSX, for the report's audience.

A day folder the hub has no row for (a report built elsewhere, a lost
``report_run``) is still listed with its files.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from bridge.report import archive
from bridge.ui import display, files, queries
from bridge.ui.auth import Forbidden, Viewer
from bridge.ui.deps import FILE_CSP, Pages, pages_of, require_viewer
from bridge.ui.errors import BadRequest, NotFound
from bridge.ui.rendering import render_html

router = APIRouter()


def parse_day(raw: str) -> date:
    """A ``YYYY-MM-DD`` date of the address, else a 400 that shows the expected form."""
    try:
        return date.fromisoformat(raw) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw) else _invalid_day(raw)
    except ValueError:
        return _invalid_day(raw)


def _invalid_day(raw: str) -> date:
    raise BadRequest(f"日期 {raw[:40]!r} 不合法，应为 YYYY-MM-DD，例如 2026-11-26。")


def _registered_rows(pages: Pages, runs: list[Any], viewer: Viewer) -> list[dict[str, Any]]:
    """One row per report the hub knows, with whether its files are there and its headline figures."""
    base = pages.area("reports")
    amounts_visible = bool(pages.policy().allowed("deal", "contract_amount", viewer.role))
    rows = []
    for run in runs:
        if run is None:
            continue
        html = files.confined(base, run.html_path, pages.data_dir())
        xlsx = files.confined(base, run.xlsx_path, pages.data_dir())
        rows.append(
            {
                "day": run.day,
                "run": run,
                "html_ok": bool(html and html.is_file()),
                "xlsx_ok": bool(xlsx and xlsx.is_file()),
                "headline": display.headline(run.figures, amounts_visible),
                "recipients": [display.scrub_personal(r) for r in run.recipients],
                "editions": _editions_for(pages, run.figures, viewer),
            }
        )
    return rows


def _editions_for(pages: Pages, figures: dict[str, Any], viewer: Viewer) -> list[dict[str, Any]]:
    """The day's other editions (one per audience, issue 20) the viewer's role may open: those built for a role
    it covers (sees everything that role sees, as clearly)."""
    current, base = pages.policy(), pages.area("reports")
    out = []
    for e in archive.editions_in(figures):
        if e.audience not in current.roles or not current.covers(viewer.role, e.audience):
            continue
        html = files.confined(base, str(e.html_path), pages.data_dir())
        xlsx = files.confined(base, str(e.xlsx_path), pages.data_dir())
        out.append({"audience": e.audience, "label": current.roles[e.audience], "sent": e.sent,
                    "html_ok": bool(html and html.is_file()), "xlsx_ok": bool(xlsx and xlsx.is_file())})
    return out


@router.get("/reports", response_class=HTMLResponse, name="reports")
def reports(request: Request, day: str | None = None, viewer: Viewer = Depends(require_viewer)) -> Response:
    pages = pages_of(request)
    wanted = parse_day(day) if day else None
    base = pages.area("reports")
    with pages.hub().connect() as conn:
        runs = [queries.get_report_run(conn, wanted)] if wanted else queries.report_runs(conn)
    rows = _registered_rows(pages, runs, viewer)
    registered = {row["day"] for row in rows}
    unregistered = []
    for folder_day in files.day_folders(base):
        if folder_day in registered or (wanted and folder_day != wanted):
            continue
        unregistered.append({"day": folder_day, "files": files.files_in(base, base / folder_day.isoformat())})
    current = pages.policy()
    audience = current.audience("report", "daily_report")
    return render_html(
        request,
        "reports.html",
        viewer,
        rows=rows,
        unregistered=unregistered,
        wanted=wanted,
        today=display.business_today(),
        may_open=current.covers(viewer.role, audience),
        audience_label=current.roles[audience],
        allowed_labels="、".join(current.roles[r] for r in current.roles_covering(audience)),
    )


def _report_file(pages: Pages, day: str, kind: str) -> tuple[Path, str]:
    """The day's report file of ``kind``: the registered one, else the day folder's only file of that kind."""
    wanted = parse_day(day)
    base = pages.area("reports")
    with pages.hub().connect() as conn:
        run = queries.get_report_run(conn, wanted)
    stored = (run.html_path if kind == "html" else run.xlsx_path) if run else None
    path = files.confined(base, stored, pages.data_dir()) if stored else None
    if path is None:  # not registered (or outside the folder): the day folder's only file of that kind
        folder = base / wanted.isoformat()
        suffix = ".html" if kind == "html" else ".xlsx"
        found = [f for f in files.files_in(base, folder) if f.name.endswith(suffix)]
        path = (base / found[0].rel).resolve() if len(found) == 1 else None
    if path is None or not path.is_file():
        raise NotFound(
            f"{wanted.isoformat()} 的经营日报{'网页' if kind == 'html' else '表格'}文件不存在。"
            "日报由 daily_report 每天 08:00 生成；如需补做，请在 Airflow 中手动触发 daily_report。"
        )
    return path, wanted.isoformat()


def _report_for(request: Request, day: str, viewer: Viewer, kind: str) -> tuple[Path, str]:
    """The day's report file for a viewer of the report's audience (else 403)."""
    pages = pages_of(request)
    pages.audience_check("report", "daily_report", viewer, "经营日报")
    return _report_file(pages, day, kind)


@router.get("/reports/{day}/html", name="report_html")
def report_html(request: Request, day: str, viewer: Viewer = Depends(require_viewer)) -> Response:
    path, _ = _report_for(request, day, viewer, "html")
    return FileResponse(
        path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": FILE_CSP}
    )


@router.get("/reports/{day}/xlsx", name="report_xlsx")
def report_xlsx(request: Request, day: str, viewer: Viewer = Depends(require_viewer)) -> Response:
    path, label = _report_for(request, day, viewer, "xlsx")
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=f"经营日报-{label}.xlsx",
    )


@router.get("/reports/{day}/editions/{audience}/{kind}", name="report_edition")
def report_edition(request: Request, day: str, audience: str, kind: str,
                   viewer: Viewer = Depends(require_viewer)) -> Response:
    """An edition's HTML or XLSX, for a viewer whose role covers the edition's audience (else 403)."""
    pages = pages_of(request)
    wanted = parse_day(day)
    if kind not in ("html", "xlsx"):
        raise NotFound(f"日报文件类型 {kind[:20]!r} 未知：应为 html 或 xlsx。")
    with pages.hub().connect() as conn:
        run = queries.get_report_run(conn, wanted)
    edition = next((e for e in archive.editions_in(run.figures if run else None) if e.audience == audience), None)
    current = pages.policy()
    if edition is None or audience not in current.roles:
        raise NotFound(f"{wanted.isoformat()} 没有「{audience[:40]}」版经营日报。")
    if not current.covers(viewer.role, audience):
        raise Forbidden(f"这一版经营日报按「{current.roles[audience]}」的权限生成，你的角色（{viewer.role_label}）不能打开。"
                        f"可以打开的角色：{'、'.join(current.roles[r] for r in current.roles_covering(audience))}。")
    stored = edition.html_path if kind == "html" else edition.xlsx_path
    path = files.confined(pages.area("reports"), str(stored), pages.data_dir())
    if path is None or not path.is_file():
        raise NotFound(f"{wanted.isoformat()} 的「{current.roles[audience]}」版经营日报文件不存在，请在 Airflow 中重新触发 daily_report。")
    if kind == "html":
        return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": FILE_CSP})
    return FileResponse(path, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        filename=f"经营日报-{wanted.isoformat()}-{current.roles[audience]}.xlsx")

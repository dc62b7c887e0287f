"""``/journey/import`` (表格导入): upload a CSV/XLSX of survey answers or performance ratings into the import folder.

The page is the folder import with a form in front of it (docs/journey.md, *Import*): an uploaded file is
checked at once — kind, size, row count, required columns — and refused with the reason, or saved in
``journey.import_dir`` under a name of its own; the next ``journey_sync`` run reads its rows (quarantining
the bad ones with their row number) and moves it to ``done/``. Who may upload: the policy roles of
``journey.upload_roles``. Uploads are audited (``upload``), from this site only, with a CSRF token.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from bridge import settings
from bridge.context import RunContext
from bridge.hub import audit
from bridge.journey import SYSTEM_OF, imports
from bridge.settings_model import JourneySection
from bridge.ui.auth import Forbidden, Viewer, same_site_request
from bridge.ui.deps import Pages, pages_of, require_viewer
from bridge.ui.errors import BadRequest
from bridge.ui.rendering import render_html

log = logging.getLogger("bridge.ui")
router = APIRouter()
UI_DAG_ID = "bridge-ui"
UNSAFE = re.compile(r"[^\w.\-（）()\u4e00-\u9fff]+")


def _cfg(pages: Pages) -> tuple[JourneySection, Path]:
    cfg = settings.load_typed().journey
    folder = Path(cfg.import_dir) if cfg.import_dir else pages.data_dir() / "journey_import"
    return cfg, folder


def _files(folder: Path, sub: str) -> list[dict[str, object]]:
    where = folder / sub if sub else folder
    if not where.is_dir():
        return []
    found = sorted((p for p in where.iterdir() if p.is_file() and not p.name.endswith(".error.txt")),
                   key=lambda p: p.stat().st_mtime, reverse=True)[:20]
    return [{"name": p.name, "at": datetime.fromtimestamp(p.stat().st_mtime, UTC),
             "error": (p.with_name(p.name + ".error.txt").read_text(encoding="utf-8")
                       if p.with_name(p.name + ".error.txt").exists() else None)} for p in found]


def _page(request: Request, viewer: Viewer, status: int = 200, **notice: object) -> Response:
    pages = pages_of(request)
    cfg, folder = _cfg(pages)
    return render_html(request, "journey_import.html", viewer, status, may_upload=viewer.role in cfg.upload_roles,
                       csrf_token=pages.csrf.token(viewer.name), waiting=_files(folder, ""),
                       done=_files(folder, "done"), failed=_files(folder, "failed"), folder=folder,
                       **{"accepted": None, "refused": None, **notice})


@router.get("/journey/import", response_class=HTMLResponse, name="journey_import")
def journey_import(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    return _page(request, viewer)


async def _upload(request: Request, pages: Pages, viewer: Viewer, cfg: JourneySection) -> UploadFile:
    """The uploaded file of a form from this site, by a permitted role, with a valid CSRF token."""
    if not same_site_request(request, pages.config.allowed_origins):
        raise Forbidden("请求来自其他网站，已拒绝。请在表格导入页面中上传。")
    if viewer.role not in cfg.upload_roles:
        raise Forbidden(f"{viewer.name}，你的角色（{viewer.role_label}）不能上传导入文件；"
                        "可以上传的角色见 include/settings.yaml 的 journey.upload_roles。")
    form = await request.form()
    token = form.get("csrf_token")
    if not pages.csrf.valid(viewer.name, token if isinstance(token, str) else None):
        raise Forbidden("页面已过期或表单无效（CSRF 校验未通过）。请刷新页面后重新上传。")
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise BadRequest("请选择要上传的 .csv 或 .xlsx 文件。")
    return upload


@router.post("/journey/import", response_class=HTMLResponse, name="journey_import_upload")
async def journey_import_upload(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
    pages = pages_of(request)
    cfg, folder = _cfg(pages)
    upload = await _upload(request, pages, viewer, cfg)
    name = UNSAFE.sub("_", Path(upload.filename or "upload").name)[-120:]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        with staged.open("wb") as out:
            shutil.copyfileobj(upload.file, out, length=1024 * 1024)
            if out.tell() > cfg.max_import_bytes:
                return _page(request, viewer, 400, refused=f"文件「{name}」超过上限 {cfg.max_import_bytes} 字节。")
        try:
            entity, rows = imports.precheck(staged, cfg.max_import_bytes, cfg.max_import_rows)
        except imports.ImportRefused as refused:
            return _page(request, viewer, 400, refused=f"文件「{name}」未接收：{refused}")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{name}"
        shutil.move(str(staged), target)
    _audit_upload(pages, viewer, entity, target.name, rows)
    log.info("bridge UI: journey import %s (%s, %d rows) uploaded by %s", target.name, entity, rows, viewer.name)
    return _page(request, viewer, accepted=f"已接收「{target.name}」（{rows} 行）：下一次客户旅程数据接入（journey_sync，"
                                           "每小时一次）读取；有问题的行进入隔离区。")


def _audit_upload(pages: Pages, viewer: Viewer, entity: str, name: str, rows: int) -> None:
    ctx = RunContext.local(principal=viewer.name[:120], dag_id=UI_DAG_ID)
    event = audit.AuditEvent("upload", SYSTEM_OF[entity], entity, {"file": name[:120], "rows": rows}, [], "accepted")
    with pages.hub().begin() as conn:
        audit.record(conn, ctx, event)

"""``/files/{area}/{path}``: a file of a data folder (reports, data_health, migration, data_docs), confined to it.

The report and migration folders hold what their audience sees, so they are
checked like the reports themselves; the daily health summaries link
``../../data_docs/``, so that folder is served here too.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from bridge.ui import files
from bridge.ui.auth import Viewer
from bridge.ui.deps import FILE_CSP, pages_of, require_viewer
from bridge.ui.errors import NotFound

router = APIRouter()


@router.get("/files/{area_name}/{rel:path}", name="area_file")
def area_file(
    request: Request, area_name: str, rel: str, viewer: Viewer = Depends(require_viewer)
) -> Response:
    pages = pages_of(request)
    if area_name not in files.AREAS:  # data_docs too: the daily summaries link ../../data_docs/
        raise NotFound("没有这个文件目录。")
    if area_name == "reports":  # the report folders hold what the report's audience sees
        pages.audience_check("report", "daily_report", viewer, "经营日报")
    elif area_name == "migration":
        pages.audience_check("export", "migration", viewer, "历史迁移报告")
    return serve(pages.area(area_name), rel)


def serve(base: Path, rel: str) -> Response:
    """A file of a data folder (confined); HTML with the file CSP, unknown types as downloads."""
    path = files.safe_join(base, rel)
    if not path.is_file():
        raise NotFound("文件不存在。它可能尚未生成，或已被清理。")
    media_type, _ = mimetypes.guess_type(path.name)
    headers: Mapping[str, str] = {"Content-Security-Policy": FILE_CSP}
    if media_type in (
        "text/html",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/json",
    ):
        return FileResponse(path, media_type=f"{media_type}; charset=utf-8", headers=headers)
    if media_type in ("text/plain", "text/markdown"):  # summaries: readable in the browser
        return FileResponse(path, media_type="text/plain; charset=utf-8", headers=headers)
    if media_type in ("image/png", "image/svg+xml", "image/jpeg", "image/gif", "font/woff", "font/woff2"):
        return FileResponse(path, media_type=media_type, headers=headers)
    return FileResponse(
        path, media_type=media_type or "application/octet-stream", filename=path.name, headers=headers
    )

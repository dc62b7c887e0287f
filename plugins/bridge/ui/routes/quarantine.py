"""``/quarantine`` (隔离区): the list with filters and paging, its CSV export, one entry (masked), and release.

Every record is shown through the viewer's own policy role: a field the
role may not read is masked in the record, in the message and in the export.
Releasing sends the record again, so it needs a releaser (Airflow Op/Admin
or ``ui.quarantine_releasers``), a same-site POST, a CSRF token and a
confirmation; it is audited under the dag_id :data:`UI_DAG_ID`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bridge import people
from bridge.context import RunContext
from bridge.hub import store
from bridge.ui import display, queries
from bridge.ui.auth import Forbidden, Viewer, same_site_request
from bridge.ui.deps import Pages, pages_of, require_viewer
from bridge.ui.errors import BadRequest, Conflict, NotFound
from bridge.ui.rendering import base_path, render_html

log = logging.getLogger(__name__)
router = APIRouter()

UI_DAG_ID = "bridge-ui"  # dag_id stamped on audit entries written from the pages
MAX_PAGE = 100_000
EXPORT_LIMIT = 10_000  # quarantine entries per CSV export
EXPORT_HEADER = [
    "编号",
    "状态",
    "方向",
    "对象",
    "记录编号",
    "原因",
    "字段",
    "部门",
    "数据责任人",
    "说明（请按此处理）",
    "最近出现（北京时间）",
    "记录内容（按你的角色脱敏）",
]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


# ---------------------------------------------------------------- query values


def parse_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"页码 {raw[:20]!r} 不合法，应为 1 到 {MAX_PAGE} 之间的整数。")
    return int(raw)


def check_id(entry_id: int) -> None:
    if not 1 <= entry_id <= 2**62:
        raise BadRequest("隔离记录编号应为正整数。")


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def quarantine_query(
    reason: str | None = None,
    entity: str | None = None,
    department: str | None = None,
    owner: str | None = None,
    direction: str | None = None,
    status: str | None = None,
) -> dict[str, str | None]:
    """The list filters of the query string, validated: unknown codes are a 400 that lists what is allowed.

    A FastAPI dependency of the list and the export.
    """
    reason, entity, department = _blank(reason), _blank(entity), _blank(department)
    owner, direction, status = _blank(owner), _blank(direction), _blank(status)
    if reason is not None and reason not in store.REASON_CODES:
        raise BadRequest(f"原因 {reason[:40]!r} 未知；可选：{'、'.join(sorted(store.REASON_CODES))}。")
    if entity is not None and (len(entity) > 40 or not _NAME.match(entity)):
        raise BadRequest("对象（entity）应为数据字典中的英文名称，如 contact、deal。")
    if direction is not None and direction not in store.QUARANTINE_DIRECTIONS:
        raise BadRequest(f"方向 {direction[:30]!r} 未知；可选：{'、'.join(store.QUARANTINE_DIRECTIONS)}。")
    if department is not None and len(department) > 30:
        raise BadRequest("部门名称不能超过 30 个字符。")
    if owner is not None and len(owner) > 64:
        raise BadRequest("数据责任人不能超过 64 个字符。")
    if status is not None and status not in ("open", "all"):
        raise BadRequest("状态只能是 open（待处理）或 all（全部）。")
    return {
        "reason": reason,
        "entity": entity,
        "department": department,
        "owner": owner,
        "direction": direction,
        "status": status or "open",
    }


def _where(filters: Mapping[str, str | None]) -> store.QuarantineFilter:
    return store.QuarantineFilter(
        reason=filters["reason"],
        department=filters["department"],
        data_owner=filters["owner"],
        entity=filters["entity"],
        direction=filters["direction"],
        open_only=filters["status"] == "open",
    )


def _entries(
    conn: Any, filters: Mapping[str, str | None], limit: int, offset: int
) -> list[store.QuarantineEntry]:
    return store.list_quarantine(conn, _where(filters), limit=limit, offset=offset)


def entry_view(pages: Pages, entry: store.QuarantineEntry, viewer: Viewer) -> dict[str, str]:
    """What a viewer may read of an entry's message and field (the offending value hidden when not theirs)."""
    current = pages.policy()
    clear = display.field_visible_in_clear(current, entry.entity, entry.field, viewer.role)
    label = display.field_label(entry.entity, entry.field, current.dictionary)
    keep = (entry.source_id, label, display.ENTITY_LABELS.get(entry.entity, ""))
    return {"message": display.redact_message(entry.message, clear, keep), "field": label}


# ---------------------------------------------------------------- pages


@router.get("/quarantine", response_class=HTMLResponse, name="quarantine")
def quarantine_list(
    request: Request,
    page: str | None = None,
    filters: dict[str, str | None] = Depends(quarantine_query),
    viewer: Viewer = Depends(require_viewer),
) -> Response:
    pages = pages_of(request)
    number = parse_page(page)
    with pages.hub().connect() as conn:
        total = store.count_quarantine(conn, _where(filters))
        paging = display.Page(number, pages.config.page_size, total)
        entries = _entries(conn, filters, paging.size, paging.offset)
        facets = queries.quarantine_facets(conn)
        backlog = store.quarantine_backlog(conn)
        owner_names = people.names(conn, [*(e.data_owner for e in entries), *facets.owners])
    params = {k: v for k, v in filters.items() if v and not (k == "status" and v == "open")}
    return render_html(
        request,
        "quarantine_list.html",
        viewer,
        entries=entries,
        paging=paging,
        filters=filters,
        params=params,
        facets=facets,
        backlog=backlog,
        directions=store.QUARANTINE_DIRECTIONS,
        all_reasons=sorted(store.REASON_CODES),
        owner_names=owner_names,
        dept_labels=pages.department_labels(),
        shown=[entry_view(pages, e, viewer) for e in entries],
    )


def _export_row(
    pages: Pages,
    policy: Any,
    entry: store.QuarantineEntry,
    viewer: Viewer,
    names: Mapping[str, str],
    depts: Mapping[str, str],
) -> list[Any]:
    """One CSV row: the entry as the viewer's role may read it."""
    shown = entry_view(pages, entry, viewer)
    content = ""
    if entry.payload is not None:
        view = display.payload_view(policy, entry.entity, entry.payload, viewer.role, names)
        content = display.payload_text(view)
    return [
        entry.id,
        display.resolution_label(entry.resolution) if not entry.is_open else "待处理",
        display.direction_label(entry.direction),
        display.ENTITY_LABELS.get(entry.entity, entry.entity),
        entry.source_id,
        display.REASON_LABELS.get(entry.reason_code, entry.reason_code),
        shown["field"],
        display.department_label(entry.department, depts),
        names.get(entry.data_owner or "", entry.data_owner or ""),
        shown["message"],
        display.local_time(entry.last_seen_at),
        content,
    ]


@router.get("/quarantine/export", name="quarantine_export")
def quarantine_export(
    request: Request,
    filters: dict[str, str | None] = Depends(quarantine_query),
    viewer: Viewer = Depends(require_viewer),
) -> Response:
    """The filtered list as CSV, every record through the viewer's own role (a per-role export)."""
    pages = pages_of(request)
    with pages.hub().connect() as conn:
        entries = _entries(conn, filters, EXPORT_LIMIT, 0)
        names = people.names(
            conn,
            [e.data_owner for e in entries]
            + [str((e.payload or {}).get(k) or "") for e in entries for k in display.PERSON_FIELDS],
        )
    current, depts = pages.policy(), pages.department_labels()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_HEADER)
    for e in entries:
        writer.writerow(_export_row(pages, current, e, viewer, names, depts))
    log.info(
        "bridge UI: quarantine export of %s entries by %s (role %s)", len(entries), viewer.name, viewer.role
    )
    stamp = display.business_today().isoformat()
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(f'隔离区-{stamp}.csv')}"},
    )


@router.get("/quarantine/{entry_id}", response_class=HTMLResponse, name="quarantine_entry")
def quarantine_entry(request: Request, entry_id: int, viewer: Viewer = Depends(require_viewer)) -> Response:
    pages = pages_of(request)
    check_id(entry_id)
    with pages.hub().connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
        if entry is None:
            raise NotFound(f"没有编号为 {entry_id} 的隔离记录。请回到隔离区列表查看现有记录。")
        history = queries.quarantine_history(conn, entry.entity, entry.id)
        payload = entry.payload or {}
        names = people.names(
            conn, [entry.data_owner] + [str(payload.get(k) or "") for k in display.PERSON_FIELDS]
        )
    view: display.PayloadView | None = None
    payload_problem: str | None = None
    if entry.payload is not None:
        try:
            view = display.payload_view(pages.policy(), entry.entity, entry.payload, viewer.role, names)
        except Exception as exc:  # fail closed: never show an unfiltered record
            log.warning("bridge UI: quarantine entry %s not shown: %s", entry.id, exc)
            payload_problem = "权限策略无法应用到这条记录"
    released = request.query_params.get("released") == "1"
    return render_html(
        request,
        "quarantine_entry.html",
        viewer,
        entry=entry,
        view=view,
        payload_problem=payload_problem,
        history=history,
        released=released,
        csrf_token=pages.csrf.token(viewer.name),
        shown=entry_view(pages, entry, viewer),
        owner_names=names,
        dept_labels=pages.department_labels(),
    )


async def _check_release_form(request: Request, pages: Pages, viewer: Viewer) -> None:
    """A release must come from this site, from a releaser, with a valid CSRF token and the confirmation."""
    if not same_site_request(request, pages.config.allowed_origins):
        raise Forbidden("请求来自其他网站，已拒绝。请在 Airflow 的隔离区页面中操作。")
    if not viewer.may_release:
        raise Forbidden(
            f"{viewer.name}，你没有释放隔离记录的权限。只有 Airflow 运维（Op）或管理员（Admin）角色，"
            "或配置在 ui.quarantine_releasers 中的处理人可以释放；请联系他们处理。"
        )
    form = await request.form()
    token = form.get("csrf_token")
    if not pages.csrf.valid(viewer.name, token if isinstance(token, str) else None):
        raise Forbidden("页面已过期或表单无效（CSRF 校验未通过）。请刷新记录页面后重新释放。")
    if form.get("confirm") != "yes":
        raise BadRequest("请先勾选“我已确认源数据已修正或可以重试”，再点击释放。")


@router.post("/quarantine/{entry_id}/release", name="quarantine_release")
async def quarantine_release(
    request: Request, entry_id: int, viewer: Viewer = Depends(require_viewer)
) -> Response:
    pages = pages_of(request)
    check_id(entry_id)
    await _check_release_form(request, pages, viewer)
    ctx = RunContext.local(principal=viewer.name[:120], dag_id=UI_DAG_ID)
    try:
        with pages.hub().begin() as conn:
            entry = store.release(conn, ctx, entry_id, viewer.name)
    except store.QuarantineNotFound as exc:
        raise NotFound(f"没有编号为 {entry_id} 的隔离记录。") from exc
    except store.QuarantineAlreadyResolved as exc:
        done = exc.entry
        raise Conflict(
            f"隔离记录 #{done.id} 已于 {display.local_time(done.resolved_at)}（北京时间）结案"
            f"（{display.resolution_label(done.resolution)}，处理人 {done.resolved_by or '-'}），无需再次释放。"
        ) from exc
    log.info("bridge UI: quarantine entry %s released by %s", entry.id, viewer.name)
    return RedirectResponse(f"{base_path(request)}/quarantine/{entry.id}?released=1", status_code=303)

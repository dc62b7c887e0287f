"""``/documents`` (客户文件): a customer's documents in both systems, and their download through the bridge.

Search a customer by name (any part) or by 统一社会信用代码 (only for a role that may see the USCC); the
page lists the customer's documents (:func:`bridge.hub.documents.documents_for_company`) cut to the
viewer's role (:mod:`bridge.ui.document_view`). A row's link points at ``/documents/file/<sha256>``, a
route of the bridge that checks the viewer's document access again and streams the file through the
hooks (:mod:`bridge.ui.document_files`): no vendor URL ever reaches the page. Every link shown and every
download (or refusal) is written to the audit log under the viewer's name.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import Connection, Engine
from starlette.background import BackgroundTask

from bridge.attachments import safe_file_name
from bridge.context import RunContext
from bridge.dictionary.formats import to_half_width
from bridge.hub import audit, store
from bridge.hub import documents as hub_documents
from bridge.permissions import Policy
from bridge.ui import document_files, document_view, queries
from bridge.ui.auth import Forbidden, Viewer
from bridge.ui.deps import pages_of, require_viewer
from bridge.ui.errors import BadRequest, NotFound
from bridge.ui.rendering import error_page, render_html

log = logging.getLogger(__name__)
router = APIRouter()

UI_DAG_ID = "bridge-ui"  # as the quarantine release: audit entries written from the pages
MAX_QUERY = 100
MAX_HITS = 50
_SHA = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_USCC = re.compile(r"^[0-9A-Z]{18}$")
FILE_CSP = "sandbox; default-src 'none'"  # a served file never runs anything in Airflow's origin


def _customer_id(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    if not _ID.match(raw.strip()):
        raise BadRequest("客户编号（company）应为 CRM 中的客户编号，如 3001。")
    return raw.strip()


def _search_text(raw: str | None) -> str | None:
    text = (raw or "").strip()
    if len(text) > MAX_QUERY:
        raise BadRequest(f"搜索内容不能超过 {MAX_QUERY} 个字符。")
    return text or None


def _uscc_of(text: str) -> str | None:
    """The text as a USCC when it looks like one (18 letters/digits; spaces, dashes, full width ignored)."""
    code = re.sub(r"[\s\-]", "", to_half_width(text)).upper()
    return code if _USCC.match(code) else None


def _customers(
    conn: Connection, policy: Policy, role: str, text: str | None
) -> tuple[list[queries.CustomerHit], bool]:
    """Hits for the search text, and whether a USCC search was refused to the role (it may not see USCCs)."""
    if text is None:
        return [], False
    uscc = _uscc_of(text)
    refused = uscc is not None and not policy.allowed("company", "uscc", role)
    hits = queries.find_customers(conn, text, None if refused else uscc, limit=MAX_HITS)
    return hits, refused


def _payloads(conn: Connection, docs: Sequence[Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The canonical records the documents are attached to, for naming them (missing ones are absent)."""
    wanted: dict[tuple[str, str], list[str]] = {}
    for d in docs:
        wanted.setdefault((d.system, d.record_type), []).append(d.record_id)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (system, entity), ids in wanted.items():
        for source_id, snap in store.get_snapshots(conn, system, entity, ids).items():
            found[(system, entity, source_id)] = snap.payload
    return found


def _audit(engine: Engine, viewer: Viewer, events: Sequence[audit.AuditEvent]) -> None:
    """The events in the audit log under the viewer's name (their own short transaction)."""
    if not events:
        return
    ctx = RunContext.local(principal=viewer.name[:120], dag_id=UI_DAG_ID)
    with engine.begin() as conn:
        audit.record_many(conn, ctx, events)


def _event(
    operation: str, viewer: Viewer, policy: Policy, ids: dict[str, str], outcome: str
) -> audit.AuditEvent:
    system = ids.pop("system", "bridge")
    return audit.AuditEvent(
        operation=operation,
        system=system,
        entity="document",
        record_ids=ids,
        fields=[],
        outcome=outcome,
        detail=f"role={viewer.role}",
        policy_version=policy.version,
    )


@router.get("/documents", response_class=HTMLResponse, name="documents")
def documents_page(
    request: Request,
    q: str | None = None,
    company: str | None = None,
    viewer: Viewer = Depends(require_viewer),
) -> Response:
    pages, policy = pages_of(request), pages_of(request).policy()
    text, chosen_id = _search_text(q), _customer_id(company)
    if not policy.sees_customers(viewer.role):
        return render_html(request, "documents.html", viewer, q=text, no_customers=True)
    engine = pages.hub()
    with engine.connect() as conn:
        hits, uscc_refused = _customers(conn, policy, viewer.role, text)
        chosen = queries.get_customer(conn, chosen_id) if chosen_id else (hits[0] if len(hits) == 1 else None)
        if chosen_id and chosen is None:
            raise NotFound(f"没有编号为 {chosen_id} 的客户。请用客户名称重新搜索。")
        docs = hub_documents.documents_for_company(conn, chosen.crm_id) if chosen else []
        payloads = _payloads(conn, docs)
    rows = document_view.document_rows(policy, viewer.role, docs, payloads)
    customer_id = chosen.crm_id if chosen else ""
    _audit(
        engine,
        viewer,
        [
            _event(
                "document_link_view",
                viewer,
                policy,
                {"system": r.system, "sha256": r.sha256, "company_id": customer_id},
                "shown",
            )
            for r in rows
            if r.may_open
        ],
    )
    return render_html(
        request,
        "documents.html",
        viewer,
        q=text,
        no_customers=False,
        uscc_refused=uscc_refused,
        hits=[(h, policy.project("company", h.record, viewer.role)) for h in hits],
        chosen=chosen,
        chosen_view=policy.project("company", chosen.record, viewer.role) if chosen else {},
        rows=rows,
        max_hits=MAX_HITS,
    )


@router.get("/documents/file/{sha256}", name="document_file")
def document_file(
    request: Request, sha256: str, company: str | None = None, viewer: Viewer = Depends(require_viewer)
) -> Response:
    """The file, streamed through the hooks, for a role that may open its class; else 403 naming who may."""
    pages, policy = pages_of(request), pages_of(request).policy()
    if not _SHA.match(sha256):
        raise BadRequest("文件编号应为 64 位十六进制字符（SHA-256）。请从客户文件页面点击文件名。")
    customer = _customer_id(company)
    if customer is None:
        raise BadRequest("缺少客户编号（company）。请从客户文件页面点击文件名。")
    engine = pages.hub()
    with engine.connect() as conn:
        rows = [d for d in hub_documents.documents_for_company(conn, customer) if d.sha256 == sha256]
    if not rows:
        raise NotFound("这个客户没有这个文件（或文件记录已不在中枢库中）。请回到客户文件页面重新搜索。")
    ids = {"sha256": sha256, "company_id": customer}
    if not policy.may_open_document(viewer.role, rows[0].doc_class):
        _audit(engine, viewer, [_event("document_download", viewer, policy, dict(ids), "denied")])
        log.info("bridge UI: document %s refused to %s (role %s)", sha256[:12], viewer.name, viewer.role)
        raise Forbidden(document_view.refusal_text(policy, viewer.role, rows[0].doc_class))
    return _stream(request, (engine, viewer, policy), ids, rows[0])


def _stream(request: Request, who: tuple[Engine, Viewer, Policy], ids: dict[str, str], doc: Any) -> Response:
    engine, viewer, policy = who
    folder = Path(tempfile.mkdtemp(prefix="bridge-doc-"))
    sources = document_files.HookSources()
    try:
        got = document_files.fetch_document(ids["sha256"], engine, sources, folder)
    except document_files.DocumentUnavailable as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _audit(engine, viewer, [_event("document_download", viewer, policy, dict(ids), "failed")])
        return error_page(request, 502, "文件暂时无法取得", str(exc), viewer=viewer)  # what failed: the log
    finally:
        sources.close()
    done = {"system": got.system, **ids, "file_ref": got.file_ref[:120]}
    _audit(engine, viewer, [_event("document_download", viewer, policy, done, "ok")])
    log.info(
        "bridge UI: document %s (%s bytes) downloaded by %s", ids["sha256"][:12], got.facts.size, viewer.name
    )
    name = safe_file_name(doc.name)
    return FileResponse(
        got.path,
        media_type=document_view.MEDIA_TYPES.get(doc.kind, "application/octet-stream"),
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Content-Security-Policy": FILE_CSP,
        },
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )

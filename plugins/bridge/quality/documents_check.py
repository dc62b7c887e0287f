"""Data-health checks on documents (attachments, issue 19): what the hub's document tables must agree on.

The tables are written by the attachment steps of both syncs (:mod:`bridge.hub.documents`); these checks
find what a broken or interrupted transfer leaves behind, one row per thing checked (so the failing ones
are named and counted per data owner like any row-level check):

==================================================  ============================================================
``document.copy.documented``                        a copy stored in a system whose content (SHA-256) has no
                                                    ``document`` row: the bridge cannot say what the file is
``document.link.copy_in_system``                    a file attached to a record in one system with no copy of
                                                    its content in that system (linked, but missing there)
``project_initiation.documents.contract_in_oa``     a live 立项申请 of a deal that has contract files in the
                                                    CRM, with no contract file in the OA
``attachment.quarantine.age``                       a refused file (quarantine entity ``attachment``) left
                                                    open longer than ``data_health.attachment_quarantine_days``
``deal.documents.contract_file``                    a live deal at a stage that files a 立项申请 with no
                                                    contract file registered in the CRM (only while
                                                    ``attachments.enabled``: else nothing is evaluated)
==================================================  ============================================================

:mod:`bridge.quality.checks` declares them with the other cross checks; :func:`document_frames` builds
their frames from the hub, and ``bridge.quality.run`` validates them as row frames. pandas is imported
inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, select

from bridge.hub import store
from bridge.hub.schema import document, document_copy, document_link, quarantine, snapshot
from bridge.quality.checks import (
    ATTACHMENT_QUARANTINE_FRAME,
    CLOSED_STATUSES,
    CONTRACT_DOCUMENTS_FRAME,
    CONTRACT_STAGE_FRAME,
    DOCUMENT_COPIES_FRAME,
    DOCUMENT_LINKS_FRAME,
    ID_COLUMN,
    OWNER_COLUMN,
    Check,
)
from bridge.quality.frames import NO_OWNER, Frame

CONTRACT_CLASS = "contract"
PROJECT_FORM = "project_initiation"  # the OA record type of a 立项申请's files
ATTACHMENT_ENTITY = "attachment"  # quarantine entity of a refused file (bridge.sync.transfer)


def _frame(name: str, rows: Sequence[tuple[str, str, Any]], column: str, started: float) -> Frame:
    """A frame of (id, owner, value) rows with the check's one column."""
    import pandas as pd

    data = pd.DataFrame(
        {
            ID_COLUMN: pd.array([r[0] for r in rows], dtype="string"),
            OWNER_COLUMN: pd.array([r[1] for r in rows], dtype="string"),
            column: [r[2] for r in rows],
        }
    )
    return Frame(name, data, len(rows), len(rows), time.perf_counter() - started)


def copies_frame(conn: Connection) -> Frame:
    """One row per stored copy: is its content a ``document`` row?"""
    started = time.perf_counter()
    query = (
        select(document_copy.c.system, document_copy.c.file_ref, document.c.sha256.is_not(None))
        .select_from(document_copy.outerjoin(document, document.c.sha256 == document_copy.c.sha256))
        .order_by(document_copy.c.id)
    )
    rows = [(f"{r[0]}:{r[1]}", NO_OWNER, bool(r[2])) for r in conn.execute(query)]
    return _frame(DOCUMENT_COPIES_FRAME, rows, "copy__documented", started)


def links_frame(conn: Connection) -> Frame:
    """One row per link: does the link's system hold a copy of the content?"""
    started = time.perf_counter()
    held = exists().where(
        and_(
            document_copy.c.sha256 == document_link.c.sha256, document_copy.c.system == document_link.c.system
        )
    )
    query = select(
        document_link.c.system,
        document_link.c.record_type,
        document_link.c.record_id,
        document_link.c.sha256,
        held,
    ).order_by(document_link.c.id)
    rows = [(f"{r[0]}:{r[1]}:{r[2]}:{r[3][:12]}", NO_OWNER, bool(r[4])) for r in conn.execute(query)]
    return _frame(DOCUMENT_LINKS_FRAME, rows, "link__copy_in_system", started)


def _contract_records(conn: Connection, system: str, record_type: str) -> set[str]:
    """Ids of the records of ``system``/``record_type`` that have a contract document linked."""
    query = (
        select(document_link.c.record_id)
        .distinct()
        .join(document, document.c.sha256 == document_link.c.sha256)
        .where(
            document_link.c.system == system,
            document_link.c.record_type == record_type,
            document.c.doc_class == CONTRACT_CLASS,
        )
    )
    return {str(r[0]) for r in conn.execute(query)}


def _live_projects(conn: Connection, deal_ids: set[str]) -> Iterator[tuple[str, str]]:
    """(deal id, 立项申请 code) of the live 立项申请 of these deals (link not archived, status not closed)."""
    links = store.links_for_crm_ids(conn, "deal_project", deal_ids)
    codes = {
        lk.oa_id: deal
        for deal, found in links.items()
        for lk in found
        if lk.oa_id and not (lk.state or {}).get("archived")
    }
    snaps = store.get_snapshots(conn, "oa", PROJECT_FORM, [c for c in codes if c])
    for code, deal in codes.items():
        snap = snaps.get(code or "")
        if code and not (snap and (snap.deleted or snap.payload.get("approval_status") in CLOSED_STATUSES)):
            yield deal, code


def contracts_frame(conn: Connection) -> Frame:
    """One row per live 立项申请 whose deal has contract files in the CRM: has it one in the OA?"""
    started = time.perf_counter()
    in_oa = _contract_records(conn, "oa", PROJECT_FORM)
    projects = list(_live_projects(conn, _contract_records(conn, "crm", "deal")))
    owners = {
        s.source_id: s.data_owner
        for s in store.get_snapshots(conn, "oa", PROJECT_FORM, [c for _, c in projects]).values()
    }
    rows = [(code, owners.get(code) or NO_OWNER, code in in_oa) for _, code in sorted(projects)]
    return _frame(CONTRACT_DOCUMENTS_FRAME, rows, "contract__in_oa", started)


def contract_stages() -> frozenset[str]:
    """The deal stages that file a 立项申请 (``crm_to_oa.initiation_stages``) while attachments travel; none
    (nothing to check) while ``attachments.enabled`` is off: then no contract file is ever registered."""
    from bridge.sync import transfer
    from bridge.sync.crm_to_oa.settings import CrmToOaSettings

    if not transfer.load_settings().enabled:
        return frozenset()
    return CrmToOaSettings.from_settings().initiation_stages


def contract_stage_frame(conn: Connection, stages: frozenset[str]) -> Frame:
    """One row per live deal at one of ``stages``: has it a contract file registered in the CRM?"""
    started = time.perf_counter()
    with_contract = _contract_records(conn, "crm", "deal")
    query = (
        select(snapshot.c.source_id, snapshot.c.data_owner)
        .where(
            snapshot.c.system == "crm",
            snapshot.c.entity == "deal",
            snapshot.c.deleted.is_(False),
            snapshot.c.archived.is_(False),
            snapshot.c.payload["stage"].as_string().in_(sorted(stages)),
        )
        .order_by(snapshot.c.source_id)
    )
    rows = (
        [(str(r[0]), r[1] or NO_OWNER, str(r[0]) in with_contract) for r in conn.execute(query)]
        if stages
        else []
    )
    return _frame(CONTRACT_STAGE_FRAME, rows, "contract__in_crm", started)


def attachment_quarantine_frame(conn: Connection, now: datetime) -> Frame:
    """One row per open quarantine entry of a refused file, with its age in days."""
    started = time.perf_counter()
    query = (
        select(quarantine.c.source_id, quarantine.c.data_owner, quarantine.c.first_seen_at)
        .where(quarantine.c.entity == ATTACHMENT_ENTITY, quarantine.c.resolved_at.is_(None))
        .order_by(quarantine.c.first_seen_at, quarantine.c.id)
    )
    rows = []
    for source_id, owner, first_seen in conn.execute(query):
        seen = first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=UTC)
        rows.append((str(source_id), owner or NO_OWNER, round((now - seen).total_seconds() / 86400, 2)))
    return _frame(ATTACHMENT_QUARANTINE_FRAME, rows, "quarantine__age_days", started)


def document_frames(
    conn: Connection, now: datetime, wanted: Mapping[str, Sequence[Check]]
) -> Iterator[Frame]:
    """The frames of the document checks in ``wanted`` (frame name → checks), built one at a time."""
    builders: dict[str, Callable[[], Frame]] = {
        DOCUMENT_COPIES_FRAME: lambda: copies_frame(conn),
        DOCUMENT_LINKS_FRAME: lambda: links_frame(conn),
        CONTRACT_DOCUMENTS_FRAME: lambda: contracts_frame(conn),
        ATTACHMENT_QUARANTINE_FRAME: lambda: attachment_quarantine_frame(conn, now),
        CONTRACT_STAGE_FRAME: lambda: contract_stage_frame(conn, contract_stages()),
    }
    for name, build in builders.items():
        if wanted.get(name):
            yield build()

"""The history migration's attachments: the files of migrated approved 费用报销 / 差旅申请 into the CRM.

After an OA chunk's records are loaded (linked to their customer), the files
of its approved instances travel exactly as the OA → CRM sync takes them
(:mod:`bridge.sync.oa_to_crm.attachments`, itself on :mod:`bridge.sync.transfer`):
downloaded into a bounded temporary file (an expired URL refreshed by reading
the instance again), checked by content and size, recorded in the hub's
document tables, uploaded PRIVATE into the customer's folder — unless the CRM
already holds the same SHA-256 (from this run, an earlier chunk, an earlier
run or the sync) — and linked to the instance, the customer and the deal. A
refused file is quarantined on its own (entity ``attachment``).

Where the migration differs from the sync: it writes no CRM activity (the
migration never created notes for history), so the files are not attached to
a note; the hub's ``document_link`` rows say which customer and deal they
belong to, and the documents page lists them. The deal link uses the
instance's project number (the 立项申请 the migration linked to the deal).

Resume: the hub is the proof. A file whose place (``<instance>/<widget>/<n>``)
has an OA copy and whose content has a CRM copy is not downloaded again, so a
chunk re-run after a crash transfers nothing twice and picks up what it had
not reached. A vendor unavailable through its retries fails the chunk (the
migration's unit of resume); the chunk runs again on resume.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, select

from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import VendorError
from bridge.hooks.feishu_files import OaFile
from bridge.hooks.hubspot_files import AttachedFile
from bridge.hooks.oa import OaHook
from bridge.hub import documents
from bridge.hub.documents import NewLink
from bridge.hub.schema import snapshot, xref
from bridge.migration.chunk import CUSTOMER_LINK, OaChunk, Tools
from bridge.migration.counts import EntityCounts
from bridge.settings_model import AttachmentsSection
from bridge.sync import transfer
from bridge.sync.common import CRM_TO_OA, OA_TO_CRM
from bridge.sync.crm_to_oa import attachments as c2o_files
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import Hooks, Run, write_audit
from bridge.sync.oa_to_crm import activities
from bridge.sync.oa_to_crm import attachments as o2c_files
from bridge.sync.oa_to_crm.settings import OaToCrmSettings
from bridge.sync.transfer import Refusal, RefusedFile

log = logging.getLogger("bridge.migration.attachments")

APPROVED = "APPROVED"
DEAL_BATCH = 100  # deals per association read of their notes


class Instance(NamedTuple):
    """A migrated approved instance linked to its customer: whose files travel."""

    code: str
    company_id: str
    project_no: str | None
    applicant: str | None


def wanted(t: Tools, entity: str, cfg: AttachmentsSection | None = None) -> bool:
    """Whether this run moves the files of ``entity``: the Param ``attachments`` (default
    ``attachments.enabled``), a real load, and a form ``attachments.oa_to_crm.forms`` names."""
    cfg = cfg or transfer.load_settings()
    enabled = t.params.attachments if t.params.attachments is not None else cfg.enabled
    return bool(enabled) and not t.dry_run and entity in cfg.oa_to_crm.forms


def migrate_files(oa: OaHook, crm: CrmHook | None, t: Tools, chunk: OaChunk, counts: EntityCounts) -> None:
    """The files of the chunk's migrated approved instances into the CRM (counted ``attachments_*``)."""
    cfg = transfer.load_settings()
    if crm is None or not wanted(t, chunk.entity, cfg):
        return
    run = _run(oa, crm, t)
    with t.hub.connect() as conn:
        found = list(instances(conn, chunk))
        deals = activities._deals_for_projects(conn, {i.project_no for i in found if i.project_no})
    for n, inst in enumerate(found):
        if n and n % 50 == 0:
            t.renew()
        holder = o2c_files.Holder(
            chunk.entity,
            inst.code,
            "files",
            "",
            inst.company_id,
            deals.get(inst.project_no or ""),
            inst.applicant,
        )
        _instance(run, cfg, holder)
    figures = {k: n for k, n in run.tally.counts.items() if k.startswith("attachments_")}
    if figures:  # kept with the chunk (resume reads them back), not added to its record counts
        counts.examples["attachments"] = [figures]


def _run(oa: OaHook, crm: CrmHook, t: Tools) -> Run[OaToCrmSettings]:
    """A run of the OA → CRM direction for the sync's step functions (its quarantine, audit and tally)."""
    return Run(OA_TO_CRM, Hooks(crm_hook=crm, oa_hook=oa), t.hub, t.ctx, OaToCrmSettings(), t.now(), t.d)


def _instance(run: Run[OaToCrmSettings], cfg: AttachmentsSection, holder: o2c_files.Holder) -> None:
    """One instance: each file through the sync's step (known by place, or downloaded, checked, de-duplicated
    and uploaded), then linked to the instance, the customer and the deal, with the audit entries."""
    oa = run.hooks.oa
    files = oa.instance_files(oa.get_instance(holder.code))
    if not files:
        return
    done = o2c_files._Files()
    for file in files:
        try:
            o2c_files._one_file(run, cfg, holder, file, done)
        except VendorError as exc:
            if exc.system != "crm":
                raise  # the OA unavailable: the chunk fails and runs again on resume
            _interrupted(run, holder, file, exc)
    with run.hub.begin() as conn:
        for (sha, file), crm_id in zip(done.links, done.crm_ids, strict=True):
            _link(run, conn, holder, sha, (file.widget_id, crm_id))
        write_audit(conn, run.ctx, done.events)
    run.tally.add("attachments_instances")


def _interrupted(run: Run[OaToCrmSettings], holder: o2c_files.Holder, file: OaFile, exc: VendorError) -> None:
    """An upload the CRM's files API broke off through the hook's retries (and the return-existing retry):
    the file is quarantined, the other files and instances go on. The hub holds its OA copy and no CRM
    copy, so once released the next migration (or the sync) uploads it; nothing is stored twice."""
    form = o2c_files.FORM_LABELS.get(holder.entity, holder.entity)
    where = f"OA {form}审批 {holder.code}，CRM 客户 {holder.company_id}"
    refusal = Refusal("interrupted", f"上传到 CRM 时中断（已重试；{exc.status or type(exc).__name__}）")
    todo = (
        "CRM 恢复后由管理员执行 `bridge quarantine release` 释放此条，再运行一次历史迁移即会上传"
        "（已上传的文件不会重复上传）；反复出现请联系系统管理员。"
    )
    refused = RefusedFile(
        "oa",
        o2c_files._place(holder, file),
        transfer.refusal_message(file.name, where, refusal, todo),
        {"name": file.name, "instance_code": holder.code, "company_id": holder.company_id},
        (o2c_files.DEPARTMENTS.get(holder.entity), holder.owner),
    )
    with run.hub.begin() as conn:
        write_audit(conn, run.ctx, [transfer.quarantine(run, conn, refused, refusal)])
    log.warning("migration attachments: an upload broken off, the file quarantined (%s)", exc.status)


def _link(
    run: Run[OaToCrmSettings], conn: Connection, holder: o2c_files.Holder, sha: str, via: tuple[str, str]
) -> None:
    """The content linked to the instance (OA) and to the customer and deal (CRM, through its file)."""
    widget, crm_file = via
    targets = [("oa", holder.entity, holder.code, widget), ("crm", "company", holder.company_id, crm_file)]
    if holder.deal_id:
        targets.append(("crm", "deal", holder.deal_id, crm_file))
    added = 0
    for system, record_type, record_id, through in targets:
        _, new = documents.add_link(
            conn,
            sha,
            NewLink(system, record_type, record_id, through, holder.company_id),
            run_id=run.ctx.run_id,
            now=run.now,
        )
        added += new
    run.tally.add("attachments_linked", 1 if added else 0)


# ---------------------------------------------------------------- deals' contract files (recorded, not moved)


def migrate_deal_files(crm: CrmHook, t: Tools, window: tuple[int, int], counts: EntityCounts) -> None:
    """The contract files attached to the chunk's migrated deals (modified in ``window``), recorded in the
    hub: the content (downloaded once, checked by the CRM → OA rule), its CRM copy and its link to the deal
    and customer. Nothing is uploaded: the migration files no 立项申请, so the OA gets them when the sync
    files one. A file the hub knows by its CRM id is only linked (no download)."""
    cfg = transfer.load_settings()
    if not (t.params.attachments if t.params.attachments is not None else cfg.enabled) or t.dry_run:
        return
    run = Run(CRM_TO_OA, Hooks(crm_hook=crm), t.hub, t.ctx, CrmToOaSettings(), t.now(), t.d)
    with t.hub.connect() as conn:
        deals = list(_deals(conn, window))
    for start in range(0, len(deals), DEAL_BATCH):
        batch = deals[start : start + DEAL_BATCH]
        attached = crm.attached_files("deals", [d for d, _, _ in batch])
        for deal_id, company, owner in batch:
            for held in attached.get(deal_id, []):
                _deal_file(run, cfg, c2o_files.DealRef(deal_id, owner), held, company)
        t.renew()
    figures = {k: n for k, n in run.tally.counts.items() if k.startswith("attachments_")}
    if figures:
        counts.examples["attachments"] = [figures]


def _deal_file(
    run: Run[CrmToOaSettings],
    cfg: AttachmentsSection,
    deal: c2o_files.DealRef,
    held: AttachedFile,
    company: str | None,
) -> None:
    """One file on a deal through the CRM → OA sync's steps (known / candidate / fetched and checked /
    recorded), then linked to the deal."""
    known, _ = c2o_files._known(run, held.file_id)
    sha = known.sha256 if known is not None else None
    if sha is None:
        meta = c2o_files._candidate(run, cfg, held.file_id)
        if meta is None:
            return
        with transfer.temporary() as temp:
            got = c2o_files._fetch_checked(run, cfg, deal, meta, temp)
        if got is None:
            return
        c2o_files._record(run, meta, got)
        sha = got.facts.sha256
        run.tally.add("attachments_recorded")
    with run.hub.begin() as conn:
        _, new = documents.add_link(
            conn,
            sha,
            NewLink("crm", "deal", deal.deal_id, held.holder_id, company),
            run_id=run.ctx.run_id,
            now=run.now,
        )
    run.tally.add("attachments_linked", 1 if new else 0)


def _deals(conn: Connection, window: tuple[int, int]) -> Iterator[tuple[str, str | None, str | None]]:
    """(deal id, its customer, its owner) of the live deals the hub holds modified in ``[lo, hi)``."""
    lo, hi = window
    query = (
        select(snapshot.c.source_id, snapshot.c.payload)
        .where(snapshot.c.system == "crm", snapshot.c.entity == "deal", snapshot.c.archived.is_(False))
        .where(snapshot.c.source_modified_ms >= lo, snapshot.c.source_modified_ms < hi)
        .order_by(snapshot.c.source_id)
    )
    for deal_id, payload in conn.execute(query):
        record = payload or {}
        company, owner = record.get("company_id"), record.get("owner_id")
        yield str(deal_id), str(company) if company else None, str(owner) if owner else None


# ---------------------------------------------------------------- the OA chunk's instances


def instances(conn: Connection, chunk: OaChunk) -> Iterator[Instance]:
    """The chunk's instances the hub holds as approved and linked to a customer (created in its window)."""
    query = (
        select(snapshot.c.source_id, snapshot.c.payload, snapshot.c.data_owner, xref.c.crm_id)
        .join(
            xref,
            and_(
                xref.c.link_type == CUSTOMER_LINK,
                xref.c.oa_type == snapshot.c.entity,
                xref.c.oa_id == snapshot.c.source_id,
            ),
        )
        .where(snapshot.c.system == "oa", snapshot.c.entity == chunk.entity, snapshot.c.archived.is_(False))
        .order_by(snapshot.c.source_id)
    )
    for code, payload, owner, company in conn.execute(query):
        record = payload or {}
        if record.get("approval_status") != APPROVED or not company:
            continue
        created = created_ms(record.get("created_at"))
        if created is not None and not chunk.lo <= created <= chunk.hi:
            continue
        project = record.get("project_no")
        yield Instance(str(code), str(company), str(project) if project else None, owner)


def created_ms(value: Any) -> int | None:
    """A canonical ``created_at`` (ISO text with offset, or epoch ms) as epoch ms; None when absent."""
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return None
    return None


def tallied(counts: Sequence[EntityCounts]) -> dict[str, int]:
    """The ``attachments_*`` figures of a run's OA chunks, summed (tests and the bench read them)."""
    out: dict[str, int] = {}
    for c in counts:
        for figures in c.examples.get("attachments", []):
            for name, n in figures.items():
                out[name] = out.get(name, 0) + int(n)
    return out


__all__ = ["Instance", "created_ms", "instances", "migrate_deal_files", "migrate_files", "tallied", "wanted"]

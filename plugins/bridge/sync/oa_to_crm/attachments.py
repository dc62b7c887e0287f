"""OA → CRM, a step of the activities load: the files of approved 费用报销 / 差旅申请 onto the customer and deal.

Where the files go: into the note the bridge already keeps for the instance
(:mod:`.activities`: one note per instance, upserted by instance code and
associated with the customer company and the deal). That note is already
exactly one per instance and already associated with both records, so adding
the files to its attachments needs no second note, no second idempotency key
and no association of its own; staff find the invoice on the 费用报销 note it
belongs to. The CRM files are PRIVATE, in one folder per customer
(``attachments.oa_to_crm.folder``).

Identity and de-duplication (hub :mod:`bridge.hub.documents`): a file of an
instance is known by its place (``<instance>/<widget>/<position>``) once read;
its content by SHA-256. The same content already in the CRM (a copy of that
hash) is linked, never uploaded again — a renamed copy in another instance
included; an upload answered with an MD5 other than ours is refused. An
upload whose answer was lost is retried with the CRM's return-existing rule.

A refused file (kind, size, executable, a download cut off twice, the CRM's
refusal) is quarantined on its own (:mod:`bridge.sync.transfer`); the note and
the other files go on. A vendor that stays unavailable re-queues the
instance (``attachments_deferred``): its next load tries the files again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from bridge.hooks.errors import AmbiguousWriteError, BadRequestError, VendorError
from bridge.hooks.feishu_files import OaFile
from bridge.hooks.hubspot_files import CrmFile
from bridge.hub import documents, store
from bridge.hub.audit import AuditEvent
from bridge.hub.documents import NewCopy, NewLink
from bridge.hub.store import PendingKey
from bridge.settings_model import AttachmentsSection
from bridge.sync import transfer
from bridge.sync.common import OA_TO_CRM
from bridge.sync.frame import write_audit
from bridge.sync.oa_to_crm.discovery import O2C
from bridge.sync.transfer import Fetched, Refusal, RefusedFile

log = logging.getLogger("bridge.sync.attachments")

FORM_LABELS = {"expense_claim": "费用报销", "travel_request": "差旅申请"}
DEPARTMENTS = {
    "expense_claim": "finance",
    "travel_request": "admin",
}  # who fixes a refused file (dictionary owners)


@dataclass(frozen=True)
class Holder:
    """An activity the CRM holds for an approved instance: where its files go."""

    entity: str
    code: str
    object_type: str
    object_id: str
    company_id: str
    deal_id: str | None = None
    owner: str | None = None
    content_hash: str | None = None


@dataclass
class _Files:
    """What one instance's files came to."""

    crm_ids: list[str] = field(default_factory=list)
    links: list[tuple[str, OaFile]] = field(default_factory=list)  # (sha256, the OA file)
    events: list[AuditEvent] = field(default_factory=list)


def wanted(run: O2C, holders: Sequence[Holder]) -> list[Holder]:
    """The holders whose files this load takes across (settings ``attachments``, an OA hook at hand)."""
    cfg = transfer.load_settings()
    chosen = [h for h in holders if cfg.enabled and h.entity in cfg.oa_to_crm.forms]
    if chosen and run.hooks.oa_hook is None:
        run.tally.add("attachments_skipped_no_oa", len(chosen))
        return []
    return chosen


def attach_approved(run: O2C, holders: Sequence[Holder]) -> None:
    """The files of each :func:`wanted` holder's instance into its CRM activity, completing the instance's
    pending change with them; an outage re-queues the rest of the holders."""
    cfg = transfer.load_settings()
    for n, holder in enumerate(holders):
        try:
            _instance(run, cfg, holder)
        except VendorError as exc:
            _defer(run, holders[n:], exc)
            return
    run.step("attachments_done")


def _pending_key(holder: Holder) -> PendingKey:
    return PendingKey(holder.entity, holder.code, holder.content_hash)


def _defer(run: O2C, holders: Sequence[Holder], exc: VendorError) -> None:
    """A vendor unavailable through its hook's retries: the instances are queued again for a later load."""
    log.warning(
        "attachments: %s unavailable (%s); %d instance(s) re-queued", exc.system, exc.status, len(holders)
    )
    with run.hub.begin() as conn:
        for h in holders:
            store.enqueue_change(
                conn,
                OA_TO_CRM,
                PendingKey(h.entity, h.code, h.content_hash),
                run.now,
                run.cfg.retry_delay_seconds,
                run.cfg.retry_delay_seconds,
            )
    run.tally.add("attachments_deferred", len(holders))


def _instance(run: O2C, cfg: AttachmentsSection, holder: Holder) -> None:
    """Read the instance, take each of its files across, then add them to the activity and link them."""
    oa = run.hooks.oa
    files = oa.instance_files(oa.get_instance(holder.code))
    if not files:
        with run.hub.begin() as conn:
            run.complete(conn, [_pending_key(holder)])
        return
    done = _Files()
    for file in files:
        _one_file(run, cfg, holder, file, done)
    problem = None
    if done.crm_ids:
        answer = run.hooks.crm.add_attachments(holder.object_type, {holder.object_id: done.crm_ids})
        problem = answer.get(holder.object_id)
    with run.hub.begin() as conn:
        if problem is None:
            for sha, file in done.links:
                _link(run, conn, holder, sha, file)
        else:
            log.warning("attachments: the CRM refused the activity's attachments (%s)", holder.object_type)
            run.tally.add("attachments_not_attached", len(done.links))
        write_audit(conn, run.ctx, done.events)
        run.complete(conn, [_pending_key(holder)])
    run.step("attachments_instance")


def _link(run: O2C, conn: Any, holder: Holder, sha: str, file: OaFile) -> None:
    """The content linked to the instance (OA), and to the company and the deal through the note (CRM)."""
    documents.add_link(
        conn,
        sha,
        NewLink("oa", holder.entity, holder.code, file.widget_id, holder.company_id),
        run_id=run.ctx.run_id,
        now=run.now,
    )
    records = [("company", holder.company_id)] + ([("deal", holder.deal_id)] if holder.deal_id else [])
    added = 0
    for record_type, record_id in records:
        _, new = documents.add_link(
            conn,
            sha,
            NewLink("crm", record_type, record_id, holder.object_id, holder.company_id),
            run_id=run.ctx.run_id,
            now=run.now,
        )
        added += new
    run.tally.add("attachments_linked", 1 if added else 0)


def _one_file(run: O2C, cfg: AttachmentsSection, holder: Holder, file: OaFile, done: _Files) -> None:
    """One file: known by its place (no download when the CRM has its content), else downloaded, checked,
    recorded and uploaded unless the CRM already holds the same bytes."""
    place = _place(holder, file)
    with run.hub.connect() as conn:
        if store.open_quarantine(conn, OA_TO_CRM, transfer.ENTITY, place) is not None:
            run.tally.add("attachments_held_in_quarantine")
            return
        known = documents.copy_by_ref(conn, "oa", place)
        in_crm = documents.copy_of(conn, known.sha256, "crm") if known is not None else None
    if known is not None and in_crm is not None:
        done.crm_ids.append(in_crm.file_ref)
        done.links.append((known.sha256, file))
        run.tally.add("attachments_known")
        return
    with transfer.temporary() as temp:
        taken = _take_across(run, cfg, holder, file, temp)
    if taken is None:
        return
    file_id, got, new = taken
    done.crm_ids.append(file_id)
    done.links.append((got.facts.sha256, file))
    done.events.append(
        run.audit(
            "attachment_transfer",
            ("crm", "file"),
            transfer.ids_with({"instance_code": holder.code, "file_id": file_id}, got.facts, got.kind),
            [],
            "ok" if new else "linked",
            detail=f"{holder.entity} -> {holder.object_type} {holder.object_id}",
        )
    )


def _take_across(
    run: O2C, cfg: AttachmentsSection, holder: Holder, file: OaFile, temp: BinaryIO
) -> tuple[str, Fetched, bool] | None:
    """Download, check and record the file, then upload it unless the CRM holds its content
    → (CRM file id, what was fetched, whether it was uploaded now); None when refused."""
    place = _place(holder, file)
    got = transfer.fetch(temp, lambda dest: run.hooks.oa.download_attachment(file, dest), cfg)
    if isinstance(got, Refusal):
        _refuse(run, holder, file, place, got, None)
        return None
    refusal = transfer.check_content(got.kind, got.facts.size, cfg.oa_to_crm.kinds, transfer.max_bytes(cfg))
    if refusal is not None:
        _refuse(run, holder, file, place, refusal, got)
        return None
    doc_class = cfg.oa_to_crm.doc_classes.get(holder.entity, "other")
    with run.hub.begin() as conn:
        facts = (got.facts.sha256, got.facts.size, got.kind)
        documents.record_document(conn, facts, doc_class, file.name, now=run.now)
        copy = NewCopy("oa", place, file.name, "source")
        documents.add_copy(conn, got.facts.sha256, copy, run_id=run.ctx.run_id, now=run.now)
        in_crm = documents.copy_of(conn, got.facts.sha256, "crm")
    if in_crm is not None:
        run.tally.add("attachments_deduplicated")
        return in_crm.file_ref, got, False
    uploaded = _upload(run, cfg, holder, file, (temp, got))
    return (uploaded.id, got, True) if uploaded is not None else None


def _upload(
    run: O2C, cfg: AttachmentsSection, holder: Holder, file: OaFile, fetched: tuple[BinaryIO, Fetched]
) -> CrmFile | None:
    """Upload PRIVATE into the customer's folder (a lost answer retried: the CRM returns the file holding
    the same bytes); the answer's MD5 must be ours. Recorded as the bridge's copy; None when refused."""
    temp, got = fetched
    folder = cfg.oa_to_crm.folder.format(company_id=holder.company_id)
    crm = run.hooks.crm
    try:
        try:
            stored = crm.upload_file(temp, name=file.name, folder_path=folder)
        except AmbiguousWriteError:
            temp.seek(0)
            stored = crm.upload_file(temp, name=file.name, folder_path=folder)
    except BadRequestError as exc:
        _refuse(
            run,
            holder,
            file,
            _place(holder, file),
            Refusal("vendor_refused", f"CRM 拒收（{exc.status} {exc.code or ''}）"),
            got,
        )
        return None
    if stored.md5 is not None and stored.md5 != got.facts.md5:
        detail = "CRM 返回的文件校验值（MD5）与下载内容不一致，文件可能已损坏"
        _refuse(run, holder, file, _place(holder, file), Refusal("checksum", detail), got)
        return None
    with run.hub.begin() as conn:
        documents.add_copy(
            conn,
            got.facts.sha256,
            NewCopy("crm", stored.id, file.name, "bridge"),
            run_id=run.ctx.run_id,
            now=run.now,
        )
    run.tally.add("attachments_uploaded")
    run.tally.add("attachments_bytes_uploaded", got.facts.size)
    return stored


def _place(holder: Holder, file: OaFile) -> str:
    return f"{holder.code}/{file.widget_id}/{file.index}"


def _refuse(
    run: O2C, holder: Holder, file: OaFile, place: str, refusal: Refusal, got: Fetched | None
) -> None:
    """Quarantine the file (the instance and its other files go on), with what to do in Chinese."""
    form = FORM_LABELS.get(holder.entity, holder.entity)
    where = f"OA {form}审批 {holder.code}，CRM 客户 {holder.company_id}"
    todo = (
        "网络不稳定时可稍后由管理员执行 `bridge quarantine release` 释放，该审批下次同步时会重试；反复出现请联系系统管理员。"
        if refusal.reason == "truncated"
        else "请申请人确认文件内容，必要时在 OA 中换用允许的文件（PDF、OFD、图片等）；确认无误后由管理员执行 "
        "`bridge quarantine release`，该审批下次同步时会重试。"
    )
    payload: dict[str, Any] = {
        "name": file.name,
        "instance_code": holder.code,
        "company_id": holder.company_id,
    }
    if got is not None:
        payload.update(sha256=got.facts.sha256, size=got.facts.size, kind=got.kind)
    refused = RefusedFile(
        "oa",
        place,
        transfer.refusal_message(file.name, where, refusal, todo),
        payload,
        (DEPARTMENTS.get(holder.entity), holder.owner),
    )
    with run.hub.begin() as conn:
        write_audit(conn, run.ctx, [transfer.quarantine(run, conn, refused, refusal)])
    log.warning("attachments: a file of an instance refused (%s)", refusal.reason)

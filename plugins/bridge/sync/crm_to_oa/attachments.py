"""CRM → OA, a step of filing a 立项申请: the deal's contract files go into its attachment widget.

When :mod:`.send` files a 立项申请, :func:`contract_widget` finds the deal's
contract files (attached to the deal through notes, chosen by the rule
``attachments.crm_to_oa``: folders, name pattern, kinds by content), takes each
across through a bounded temporary file and returns the form entry holding
their OA file codes; once the instance exists, :func:`link_filed` records the
links and the audit entries in one transaction.

Identity and de-duplication (hub :mod:`bridge.hub.documents`): a CRM file is
known by its file id; its content by SHA-256. Content already uploaded to the
OA by the bridge reuses its file code (no download, no upload); a file the
bridge itself brought from the OA is never sent back. The CRM's MD5 of the
file is checked against the bytes received. A refused file (kind, size,
executable, a download cut off twice, an MD5 mismatch, the OA's refusal) is
quarantined on its own and the 立项申请 is filed without it; a vendor
unavailable while the files are read files it without them too, counted
``attachments_pending`` (a contract file added after the filing is likewise
counted, never lost: see docs/attachments.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from bridge.hooks._files import FileRefusedError
from bridge.hooks.errors import AmbiguousWriteError, BadRequestError, NotFoundError, VendorError
from bridge.hooks.hubspot_files import AttachedFile, CrmFile
from bridge.hub import documents, store
from bridge.hub.audit import AuditEvent
from bridge.hub.documents import NewCopy, NewLink
from bridge.settings_model import AttachmentsSection, ContractFilesSection
from bridge.sync import transfer
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa.enrich import Due
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import Run, write_audit
from bridge.sync.transfer import Fetched, Refusal, RefusedFile

log = logging.getLogger("bridge.sync.attachments")

C2O = Run[CrmToOaSettings]
DEAL_OBJECT = "deals"
PROJECT_FORM = "project_initiation"
PROJECT_LINK = "deal_project"
SUPPLEMENT = "supplement_pending"  # a contract file added after the filing, waiting for a person
SUPPLEMENT_STREAM = "crm_to_oa.attachments.supplement_cursor"  # position: the last 立项申请 link checked
SUPPLEMENT_BATCH = 100


@dataclass(frozen=True)
class Carried:
    """A contract file in the 立项申请: its content, its OA code, the CRM file and note it came from."""

    sha256: str
    code: str
    file_id: str
    note_id: str
    kind: str
    size: int


@dataclass
class Prepared:
    """A deal's contract files taken across before its 立项申请 is created."""

    deal_id: str
    company_id: str | None
    widget: str
    carried: list[Carried] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(c.code for c in self.carried))


def bridge_folder(cfg: AttachmentsSection) -> str:
    """The CRM folder (prefix) where the OA → CRM step puts the files it brings: never contract files."""
    return cfg.oa_to_crm.folder.split("{", 1)[0].rstrip("/")


def is_contract_file(rule: ContractFilesSection, path: str | None, name: str, own_folder: str) -> bool:
    """Whether a CRM file is a contract file by the rule's folders and name pattern (its kind is checked on
    its bytes later); files in the bridge's own folder never are."""
    folder = (path or "").rsplit("/", 1)[0]

    def inside(prefix: str) -> bool:
        prefix = prefix.rstrip("/")
        return bool(prefix) and (folder == prefix or folder.startswith(prefix + "/"))

    if own_folder and inside(own_folder):
        return False
    if rule.folders and not any(inside(f) or f.strip() == "/" for f in rule.folders):
        return False
    return not rule.name_pattern or re.search(rule.name_pattern, name) is not None


def attached_to(run: C2O, dues: Sequence[Due]) -> dict[str, list[AttachedFile]] | None:
    """The files attached to each deal of a chunk of creates (one association read for all); None when the
    step is off, or the CRM is unavailable (those 立项申请 are filed without files: ``attachments_pending``)."""
    if not dues or not transfer.load_settings().enabled:
        return None
    try:
        return run.hooks.crm.attached_files(DEAL_OBJECT, [due.deal_id for due in dues])
    except VendorError as exc:
        log.warning("attachments: %s unavailable while reading deals' files (%s)", exc.system, exc.status)
        run.tally.add("attachments_pending", len(dues))
        return None


def contract_widget(
    run: C2O, due: Due, attached: Mapping[str, Sequence[AttachedFile]] | None
) -> tuple[list[dict[str, Any]], Prepared | None]:
    """The form entries carrying the deal's contract files (``attached``: :func:`attached_to`; none when
    there are none or the step is off), and what to link once the instance exists."""
    if attached is None:
        return [], None
    cfg = transfer.load_settings()
    company = (due.company or {}).get("crm_id")
    prepared = Prepared(due.deal_id, str(company) if company else None, cfg.crm_to_oa.widget)
    try:
        for file_id, note_id in dict.fromkeys(
            (a.file_id, a.holder_id) for a in attached.get(due.deal_id, [])
        ):
            if all(c.file_id != file_id for c in prepared.carried):
                _contract_file(run, cfg, due, (file_id, note_id), prepared)
    except VendorError as exc:
        log.warning("attachments: %s unavailable while taking a deal's files (%s)", exc.system, exc.status)
        run.tally.add("attachments_pending")
    if not prepared.carried:
        return [], prepared
    return [run.hooks.oa.file_widget(prepared.widget, prepared.codes)], prepared


@dataclass(frozen=True)
class DealRef:
    """The deal a file belongs to (and its owner, who fixes a refused file), and the 立项申请 if filed."""

    deal_id: str
    owner: str | None = None
    instance_code: str | None = None


def _deal_ref(due: Due) -> DealRef:
    owner = (due.payload or {}).get("owner_id")
    return DealRef(due.deal_id, str(owner) if owner else None)


def _known(run: C2O, file_id: str) -> tuple[documents.DocumentCopy | None, documents.DocumentCopy | None]:
    """The hub's copy of this CRM file, and the bridge's OA copy of the same content (a code to reuse)."""
    with run.hub.connect() as conn:
        known = documents.copy_by_ref(conn, "crm", file_id)
        in_oa = documents.copy_of(conn, known.sha256, "oa", origin="bridge") if known is not None else None
    return known, in_oa


def _candidate(run: C2O, cfg: AttachmentsSection, file_id: str) -> CrmFile | None:
    """The CRM file if it is a contract file by the rule (folders, name) and not held in quarantine."""
    try:
        meta = run.hooks.crm.file(file_id)
    except NotFoundError:
        return None  # deleted since the note named it
    if not is_contract_file(cfg.crm_to_oa, meta.path, meta.file_name, bridge_folder(cfg)):
        run.tally.add("attachments_not_contract")
        return None
    with run.hub.connect() as conn:
        if store.open_quarantine(conn, CRM_TO_OA, transfer.ENTITY, file_id) is not None:
            run.tally.add("attachments_held_in_quarantine")
            return None
    return meta


def _contract_file(
    run: C2O, cfg: AttachmentsSection, due: Due, ref: tuple[str, str], prepared: Prepared
) -> None:
    """One file attached to the deal: skipped unless a contract file, reused when the OA has its content,
    else downloaded, checked and uploaded."""
    file_id, note_id = ref
    known, in_oa = _known(run, file_id)
    if known is not None and known.origin == "bridge":
        return  # brought from the OA by the bridge
    meta = _candidate(run, cfg, file_id)
    if meta is None:
        return
    if known is not None and in_oa is not None:
        doc = _document(run, known.sha256)
        prepared.carried.append(Carried(known.sha256, in_oa.file_ref, file_id, note_id, doc[0], doc[1]))
        run.tally.add("attachments_reused")
        return
    deal = _deal_ref(due)
    with transfer.temporary() as temp:
        got = _fetch_checked(run, cfg, deal, meta, temp)
        code = _code_for(run, deal, meta, (temp, got)) if got is not None else None
    if got is not None and code is not None:
        prepared.carried.append(Carried(got.facts.sha256, code, file_id, note_id, got.kind, got.facts.size))


def _document(run: C2O, sha: str) -> tuple[str, int]:
    with run.hub.connect() as conn:
        doc = documents.get_document(conn, sha)
    return (doc.kind, doc.size_bytes) if doc is not None else ("unknown", 0)


def _fetch_checked(
    run: C2O, cfg: AttachmentsSection, deal: DealRef, meta: CrmFile, temp: BinaryIO
) -> Fetched | None:
    """The file downloaded into ``temp`` and checked (size first, then content and the CRM's MD5); a
    refused file is quarantined (None)."""
    limit = transfer.max_bytes(cfg)
    got: Fetched | Refusal = transfer.too_large(meta.size, limit)
    if meta.size <= limit:
        got = transfer.fetch(temp, lambda dest: run.hooks.crm.download(meta.id, dest), cfg)
    if isinstance(got, Refusal):
        _refuse(run, deal, meta, got, None)
        return None
    refusal = transfer.check_content(got.kind, got.facts.size, cfg.crm_to_oa.kinds, limit)
    if refusal is None and meta.md5 is not None and meta.md5 != got.facts.md5:
        refusal = Refusal("checksum", "CRM 记录的文件校验值（MD5）与下载内容不一致，文件可能已损坏")
    if refusal is not None:
        _refuse(run, deal, meta, refusal, got)
        return None
    return got


def _record(run: C2O, meta: CrmFile, got: Fetched) -> documents.DocumentCopy | None:
    """The content and its CRM copy in the hub → the bridge's OA copy of the same bytes, if any."""
    cfg = transfer.load_settings()
    with run.hub.begin() as conn:
        facts = (got.facts.sha256, got.facts.size, got.kind)
        documents.record_document(conn, facts, cfg.crm_to_oa.doc_class, meta.file_name, now=run.now)
        copy = NewCopy("crm", meta.id, meta.file_name, "source")
        documents.add_copy(conn, got.facts.sha256, copy, run_id=run.ctx.run_id, now=run.now)
        return documents.copy_of(conn, got.facts.sha256, "oa", origin="bridge")


def _code_for(run: C2O, deal: DealRef, meta: CrmFile, fetched: tuple[BinaryIO, Fetched]) -> str | None:
    """Record the content and the CRM copy; the OA code of the same bytes if the bridge uploaded them
    before, else a new upload (a lost answer uploaded once more: an unused code means nothing)."""
    temp, got = fetched
    in_oa = _record(run, meta, got)
    if in_oa is not None:
        run.tally.add("attachments_deduplicated")
        return in_oa.file_ref
    oa = run.hooks.oa
    try:
        try:
            code = oa.upload_attachment(temp, name=meta.file_name)
        except AmbiguousWriteError:
            temp.seek(0)
            code = oa.upload_attachment(temp, name=meta.file_name)
    except FileRefusedError as exc:
        _refuse(run, deal, meta, Refusal("too_large", exc.reason_zh), got)
        return None
    except BadRequestError as exc:
        _refuse(run, deal, meta, Refusal("vendor_refused", f"OA 拒收（{exc.status} {exc.code or ''}）"), got)
        return None
    with run.hub.begin() as conn:
        copy = NewCopy("oa", code, meta.file_name, "bridge")
        documents.add_copy(conn, got.facts.sha256, copy, run_id=run.ctx.run_id, now=run.now)
    run.tally.add("attachments_uploaded")
    run.tally.add("attachments_bytes_uploaded", got.facts.size)
    return code


def _todo(deal: DealRef, refusal: Refusal) -> tuple[str, str]:
    """(where, what to do) of a quarantine message."""
    if refusal.reason == SUPPLEMENT:
        return (
            f"CRM 商机 {deal.deal_id} 的合同文件，立项申请 {deal.instance_code} 提交后才上传",
            "请申请人在 OA 中打开该立项申请，在评论中上传此文件（补充附件）；完成后由管理员执行 "
            "`bridge quarantine release`。",
        )
    where = f"CRM 商机 {deal.deal_id} 的合同文件，随立项申请发往 OA"
    if refusal.reason == "truncated":
        return (
            where,
            "网络不稳定时可稍后由管理员执行 `bridge quarantine release` 释放后重试；反复出现请联系系统管理员。",
        )
    return where, (
        "请销售在 CRM 中换用允许的合同文件（PDF、OFD、Word、图片，单个不超过上限）重新上传；"
        "确认无误后由管理员执行 `bridge quarantine release`。"
    )


def _refuse(run: C2O, deal: DealRef, meta: CrmFile, refusal: Refusal, got: Fetched | None) -> None:
    """Quarantine the file (the 立项申请 is filed without it), with what to do in Chinese."""
    where, todo = _todo(deal, refusal)
    payload: dict[str, Any] = {"name": meta.file_name, "deal_id": deal.deal_id, "file_id": meta.id}
    if deal.instance_code:
        payload["instance_code"] = deal.instance_code
    if got is not None:
        payload.update(sha256=got.facts.sha256, size=got.facts.size, kind=got.kind)
    else:
        payload.update(size=meta.size)
    message = transfer.refusal_message(meta.file_name, where, refusal, todo)
    refused = RefusedFile("crm", meta.id, message, payload, ("sales", deal.owner))
    with run.hub.begin() as conn:
        write_audit(conn, run.ctx, [transfer.quarantine(run, conn, refused, refusal)])
    log.warning("attachments: a contract file of a deal refused (%s)", refusal.reason)


# ---------------------------------------------------------------- files added after the filing


def check_later_files(run: C2O) -> None:
    """Contract files attached to a deal after its 立项申请 was filed (a rotating check of at most
    ``SUPPLEMENT_BATCH`` filed 立项申请 per run, resumed from a cursor). Feishu does not let a filed
    instance's form change, so each such file is downloaded, checked and recorded (its content, its CRM
    copy and its link to the deal) and left as a *pending supplement*: a quarantine entry asking the
    applicant to add it to the instance's comments (counted ``attachments_supplement_pending``)."""
    cfg = transfer.load_settings()
    if not cfg.enabled:
        return
    with run.hub.connect() as conn:
        after = store.get_watermark(conn, SUPPLEMENT_STREAM) or 0
        links = documents.filed_links_after(conn, PROJECT_LINK, after, SUPPLEMENT_BATCH)
    # Those filed (or written back) by this run carried their files already; the next pass sees them.
    live = [lk for lk in links if _filed(lk.state or {}) and lk.run_id != run.ctx.run_id]
    try:
        attached = run.hooks.crm.attached_files(DEAL_OBJECT, [str(lk.crm_id) for lk in live]) if live else {}
        for link in live:
            deal = DealRef(str(link.crm_id), None, str(link.oa_id))
            for file_id in dict.fromkeys(a.file_id for a in attached.get(deal.deal_id, [])):
                _later_file(run, cfg, deal, file_id)
    except VendorError as exc:  # the next run checks the same 立项申请 again (the cursor stays)
        log.warning("attachments: %s unavailable during the later-files check (%s)", exc.system, exc.status)
        run.tally.add("attachments_supplement_deferred")
        return
    cursor = links[-1].id if len(links) == SUPPLEMENT_BATCH else 0  # from the start again after the last
    with run.hub.begin() as conn:
        store.set_watermark(conn, SUPPLEMENT_STREAM, cursor, run.ctx.run_id, force=True, now=run.now)
    run.tally.add("attachments_projects_checked", len(live))


def _filed(state: dict[str, Any]) -> bool:
    return state.get("phase") == "created" and not state.get("archived")


def _later_file(run: C2O, cfg: AttachmentsSection, deal: DealRef, file_id: str) -> None:
    """One file of a filed deal: nothing when the hub knows it (carried in the 立项申请, brought from the OA,
    or reported before); else taken across, recorded, quarantined as a pending supplement and the
    applicant told on the instance (a comment)."""
    with run.hub.connect() as conn:
        if documents.copy_by_ref(conn, "crm", file_id) is not None:
            return
        snap = store.get_snapshot(conn, "crm", "deal", deal.deal_id)
    meta = _candidate(run, cfg, file_id)
    if meta is None:
        return
    with transfer.temporary() as temp:
        got = _fetch_checked(run, cfg, deal, meta, temp)
    if got is None:
        return
    _record(run, meta, got)
    company = (snap.payload or {}).get("company_id") if snap is not None else None
    with run.hub.begin() as conn:
        link = NewLink("crm", "deal", deal.deal_id, None, str(company) if company else None)
        documents.add_link(conn, got.facts.sha256, link, run_id=run.ctx.run_id, now=run.now)
    _refuse(run, deal, meta, Refusal(SUPPLEMENT, "立项申请已提交，飞书不允许修改已提交审批的表单"), got)
    run.tally.add("attachments_supplement_pending")
    _tell_applicant(run, deal, meta)


def _tell_applicant(run: C2O, deal: DealRef, meta: CrmFile) -> None:
    """A comment on the 立项申请 asking its applicant to add the file (at most once: after the quarantine
    entry, so a crash in between loses the comment, never repeats it); a refusal is counted, not fatal."""
    assert deal.instance_code is not None
    text = (
        f"补充附件：合同文件「{meta.file_name}」在本立项申请提交后才上传到 CRM 商机 {deal.deal_id}。"
        "飞书不允许修改已提交审批的表单，请申请人在本审批的评论中上传该文件。"
    )
    outcome = "ok"
    try:
        detail = run.hooks.oa.get_instance(deal.instance_code)
        applicant = run.d.from_oa(PROJECT_FORM, detail).record.get("applicant_id")
        if not applicant:
            raise NotFoundError("the instance names no applicant", system="oa")
        run.hooks.oa.add_comment(deal.instance_code, str(applicant), text)
        run.tally.add("attachments_supplement_comments")
    except VendorError as exc:
        log.warning("attachments: the supplement comment was refused (%s %s)", exc.status, exc.code)
        run.tally.add("attachments_supplement_comment_failed")
        outcome = "failed"
    ids = {"deal_id": deal.deal_id, "instance_code": deal.instance_code, "file_id": meta.id}
    with run.hub.begin() as conn:
        write_audit(
            conn, run.ctx, [run.audit("attachment_supplement", ("oa", PROJECT_FORM), ids, [], outcome)]
        )


def _in_instance(conn: Any, sha: str, deal: DealRef) -> bool:
    return any(
        lk.system == "oa" and lk.record_type == PROJECT_FORM and lk.record_id == deal.instance_code
        for lk in documents.links_of(conn, sha)
    )


def link_filed(run: C2O, filed: Sequence[tuple[Prepared, str]]) -> None:
    """After the creates: each carried file linked to its 立项申请 (OA) and its deal (CRM), audited."""
    events: list[AuditEvent] = []
    with run.hub.begin() as conn:
        for prepared, instance_code in filed:
            for c in prepared.carried:
                oa_link = NewLink("oa", PROJECT_FORM, instance_code, prepared.widget, prepared.company_id)
                documents.add_link(conn, c.sha256, oa_link, run_id=run.ctx.run_id, now=run.now)
                crm_link = NewLink("crm", "deal", prepared.deal_id, c.note_id, prepared.company_id)
                documents.add_link(conn, c.sha256, crm_link, run_id=run.ctx.run_id, now=run.now)
                ids = {"deal_id": prepared.deal_id, "instance_code": instance_code, "file_code": c.code}
                ids.update(sha256=c.sha256, size=str(c.size), kind=c.kind)
                events.append(run.audit("attachment_transfer", ("oa", PROJECT_FORM), ids, [], "ok"))
                run.tally.add("attachments_filed")
        write_audit(conn, run.ctx, events)

"""What the CRM → OA load does with one deal: pure decisions, no I/O.

The load task reads the deal's snapshot, its company and primary contact, the
xref state of its 立项申请 and the owner's OA user, then asks
:func:`decide_deal`. The answer is one of: create the 立项申请, send a
合同金额变更通知, record the amount a migrated link was created with, quarantine
(with a Chinese message), or nothing. Keeping this pure makes the sync's
state machine testable with hypothesis and keeps the I/O in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

from bridge.dictionary import Dictionary, Problem
from bridge.hub.store import Link
from bridge.staging import PROBLEMS_KEY, canonical
from bridge.sync.common import idempotency_uuid

PROJECT_FORM = "project_initiation"
NOTICE_FORM = "contract_amount_notice"
VOID_FORM = "deal_void_notice"  # 商机作废通知: a deal deleted or merged away after its 立项申请 was approved
PROJECT_LINK = "deal_project"
NOTICE_LINK = "amount_notice"

Action = Literal["create", "notice", "baseline", "probe_intent", "quarantine", "nothing"]


@dataclass(frozen=True)
class ProjectLink:
    """What the hub knows about a deal's 立项申请 (the ``deal_project`` link).

    ``instance_code`` is None while the create is only an intent: the uuid was
    saved before the OA was called, and the outcome is not confirmed yet.
    """

    uuid: str | None
    instance_code: str | None
    amount_sent: str | None = None
    notices: int = 0
    project_no: str | None = None
    abandoned: bool = False

    @property
    def confirmed(self) -> bool:
        return self.instance_code is not None

    @classmethod
    def of(cls, link: Link | None) -> ProjectLink | None:
        if link is None:
            return None
        state = link.state or {}
        notices = state.get("notices", 0)
        return cls(
            uuid=link.oa_uuid,
            instance_code=link.oa_id,
            amount_sent=_text(state.get("amount_sent")),
            notices=int(notices) if isinstance(notices, int) and not isinstance(notices, bool) else 0,
            project_no=_text(state.get("project_no")),
            abandoned=state.get("phase") == "abandoned",
        )


@dataclass(frozen=True)
class NoticeIntent:
    """A 合同金额变更通知 whose create was started but not confirmed (an ``amount_notice`` half link)."""

    uuid: str
    seq: int
    old_amount: str
    new_amount: str
    changed_at: str | None = None

    @classmethod
    def of(cls, link: Link | None) -> NoticeIntent | None:
        if link is None or link.oa_id is not None or not link.oa_uuid:
            return None
        state = link.state or {}
        if state.get("phase") != "creating":
            return None
        try:
            return cls(
                uuid=link.oa_uuid,
                seq=int(state["seq"]),
                old_amount=str(state["old_amount"]),
                new_amount=str(state["new_amount"]),
                changed_at=_text(state.get("changed_at")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Owner:
    """A CRM owner and the OA user they map to (``user_id`` None: no OA account)."""

    owner_id: str
    email: str | None
    user_id: str | None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    uuid: str | None = None
    applicant: str | None = None
    notice: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def amount(value: Any) -> Decimal | None:
    """A canonical amount as a Decimal (None when empty or not a number)."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _problem(code: str, field_name: str | None, message: str, department: str | None = "sales") -> Problem:
    return Problem(code=code, entity="deal", field=field_name, message=message, department=department)


def owner_not_in_oa(deal_id: str, owner: Owner | None, owner_id: str | None) -> Problem:
    who = f"负责人（CRM 负责人编号 {owner_id or '空'}"
    who += f"，邮箱 {owner.email}）" if owner is not None and owner.email else "，CRM 中没有邮箱）"
    return _problem(
        "owner_not_in_oa",
        "owner_id",
        f"商机「{deal_id}」的{who}在 OA 中没有账号，无法以其名义提交立项申请。"
        f"请 OA 管理员为其开通飞书账号（邮箱或手机号须与 CRM 一致）后执行 "
        f"`bridge quarantine release` 释放此记录；或由销售主管在 CRM 中把商机转给在职负责人，保存后下次同步会自动重试。",
    )


def missing_customer(deal_id: str, company_id: str | None) -> Problem:
    return _problem(
        "missing_customer_link",
        "company_id",
        f"商机「{deal_id}」关联的客户（CRM 客户编号 {company_id or '空'}）在 CRM 中读取不到（已删除或无权访问），"
        f"立项申请无法填写客户信息。请销售在 CRM 中为商机关联正确的客户，保存后下次同步会自动重试。",
    )


def missing_form_value(dictionary: Dictionary, deal_id: str, form: str, source: str) -> Problem:
    head, _, name = source.partition(".")
    entity = dictionary.entities.get(head)
    f = entity.fields.get(name) if entity is not None else None
    label = f.label if f is not None else name
    owner = f.owner if f is not None else "sales"
    department = dictionary.departments.get(owner)
    dept_label = department.label if department is not None else owner
    what = {"company": "关联客户", "contact": "客户联系人", "deal": "商机"}.get(head, head)
    return Problem(
        code="missing_required",
        entity="deal",
        field=source,
        message=(
            f"商机「{deal_id}」的{dictionary.form(form).label}缺少必填项：{what}的「{label}」（{source}）为空或"
            f"不可用。请{dept_label}在 CRM 中补全后执行 `bridge quarantine release` 释放此记录，"
            f"或修改商机后自动重试。"
        ),
        department=owner,
    )


def required_sources(dictionary: Dictionary, form: str) -> list[str]:
    """``head.field`` sources of the form's required widgets (the widget says so, or the OA field is required)."""
    f = dictionary.form(form)
    entity = dictionary.entities.get(f.entity) if f.entity else None
    required_widgets = {
        fld.oa for fld in (entity.fields.values() if entity is not None else ()) if fld.required and fld.oa
    }
    return [w.source for w in f.widgets if w.source and (w.required or w.id in required_widgets)]


def needed_deal_fields(dictionary: Dictionary) -> frozenset[str]:
    """Deal fields the outbound forms need: an invalid format there blocks the deal."""
    names: set[str] = set()
    for form in (PROJECT_FORM, NOTICE_FORM):
        for source in required_sources(dictionary, form):
            head, _, name = source.partition(".")
            if head == "deal":
                names.add(name)
    names.add("contract_amount")
    return frozenset(names)


def primary_contact(contacts: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The company's contact for the form: the oldest (lowest CRM id) with a usable mobile, else the oldest."""

    def key(c: Mapping[str, Any]) -> tuple[int, int, str]:
        cid = str(c.get("crm_id") or "")
        return (0 if c.get("mobile") else 1, len(cid), cid)

    ordered = sorted((canonical(dict(c)) for c in contacts), key=key)
    return ordered[0] if ordered else None


def _missing_required(
    dictionary: Dictionary,
    deal_id: str,
    form: str,
    sources: Mapping[str, Mapping[str, Any] | None],
) -> Problem | None:
    for source in required_sources(dictionary, form):
        head, _, name = source.partition(".")
        record = sources.get(head)
        if head == "notice":
            continue
        if record is None or record.get(name) in (None, ""):
            return missing_form_value(dictionary, deal_id, form, source)
    return None


def contact_of_company(rule: str, company_id: str, primary: str | None, associated: Sequence[str]) -> bool:
    """Whether a contact counts as a contact of ``company_id`` (a deal's customer, whose 客户联系人 the form
    names) under ``crm_to_oa.contact_company``: ``primary`` — its primary company is it (the one the
    CRM labels Primary); ``deal_company`` — it is any of the contact's companies; ``first`` — it is the first
    company HubSpot lists for the contact (``associated``, in HubSpot's order; the primary when none)."""
    if rule == "deal_company":
        return company_id == primary or company_id in associated
    if rule == "first":
        return (associated[0] if associated else primary) == company_id
    return primary == company_id


@dataclass(frozen=True)
class DealFacts:
    """What the hub knows around a due deal: its company snapshot, its 立项申请 link, an unconfirmed notice,
    and its owner's OA user."""

    company: Mapping[str, Any] | None = None
    project: ProjectLink | None = None
    notice_intent: NoticeIntent | None = None
    owner: Owner | None = None


def decide_deal(
    dictionary: Dictionary,
    deal: Mapping[str, Any],
    facts: DealFacts,
    *,
    initiation_stages: Sequence[str] | frozenset[str],
    today: str,
) -> Decision:
    """The one thing to do for a due deal (see the module docstring).

    ``deal`` and ``facts.company`` are snapshot payloads; ``today`` is the Beijing
    date of the run (the notice's 变更日期).
    """
    record = canonical(dict(deal))
    blocking = [
        c
        for c in (deal.get(PROBLEMS_KEY) or [])
        if c in ("missing_required", "unmapped_value", "hostile_input")
    ]
    project, notice_intent = facts.project, facts.notice_intent

    # A notice whose create was started and not confirmed is finished first, as it was.
    if notice_intent is not None and project is not None and project.confirmed:
        return Decision(
            "notice",
            "resume_notice",
            uuid=notice_intent.uuid,
            notice={
                "seq": notice_intent.seq,
                "old_amount": notice_intent.old_amount,
                "new_amount": notice_intent.new_amount,
                "changed_at": notice_intent.changed_at or today,
            },
        )
    if project is None or not project.confirmed:
        if record.get("stage") not in initiation_stages:
            if project is not None and project.uuid and not project.abandoned:
                # A create was started while the deal qualified; did it reach the OA?
                return Decision("probe_intent", "intent_without_stage", uuid=project.uuid)
            return Decision("nothing", "not_initiation_stage")
        if blocking:
            return Decision("nothing", "blocked_by_problems")
        return _decide_initiation(dictionary, record, facts)
    return _decide_amount(dictionary, record, project, bool(blocking), today)


def _decide_initiation(dictionary: Dictionary, record: Mapping[str, Any], facts: DealFacts) -> Decision:
    """A deal in an initiation stage without a confirmed 立项申请: create it, or say what is missing."""
    deal_id = str(record.get("crm_id") or "")
    company, project, owner = facts.company, facts.project, facts.owner
    if company is None:
        return Decision(
            "quarantine",
            "missing_customer_link",
            problem=missing_customer(deal_id, _text(record.get("company_id"))),
        )
    problem = _missing_required(
        dictionary, deal_id, PROJECT_FORM, {"deal": record, "company": canonical(dict(company))}
    )
    if problem is not None:
        return Decision("quarantine", "missing_required", problem=problem)
    if owner is None or owner.user_id is None:
        return Decision(
            "quarantine",
            "owner_not_in_oa",
            problem=owner_not_in_oa(deal_id, owner, _text(record.get("owner_id"))),
        )
    uuid = (
        project.uuid
        if project is not None and project.uuid
        else idempotency_uuid(deal_id, PROJECT_FORM, dictionary.version)
    )
    return Decision("create", "initiation_stage", uuid=uuid, applicant=owner.user_id)


def _decide_amount(
    dictionary: Dictionary, record: Mapping[str, Any], project: ProjectLink, blocked: bool, today: str
) -> Decision:
    """Linked: tell finance when the contract amount moves (not for a project deleted in the OA)."""
    if record.get("approval_status") == "DELETED":
        return Decision("nothing", "project_deleted")
    current = amount(record.get("contract_amount"))
    if project.amount_sent is None:
        return (
            Decision("baseline", "link_without_amount")
            if current is not None
            else Decision("nothing", "no_amount")
        )
    sent = amount(project.amount_sent)
    if current is None or blocked:
        return Decision("nothing", "blocked_by_problems")
    if sent is not None and current == sent:
        return Decision("nothing", "amount_unchanged")
    seq = project.notices + 1
    new_amount = record.get("contract_amount")
    return Decision(
        "notice",
        "amount_changed",
        uuid=idempotency_uuid(
            str(record.get("crm_id") or ""), NOTICE_FORM, dictionary.version, seq, new_amount
        ),
        notice={"seq": seq, "old_amount": project.amount_sent, "new_amount": new_amount, "changed_at": today},
    )


def project_stage(dictionary: Dictionary, deal_stage: Any) -> str | None:
    """The OA project stage (立项/执行/结项 canonical value) a deal stage leads to, if any."""
    if deal_stage is None:
        return None
    vmap = dictionary.value_maps.get("project_stage")
    return vmap.derive("deal_stage", str(deal_stage)) if vmap is not None else None


def writeback_record(
    dictionary: Dictionary,
    deal: Mapping[str, Any],
    instance_code: str,
    project_no: str | None,
    approval_status: str | None,
) -> dict[str, Any]:
    """The OA-owned deal fields the bridge writes back to the CRM (canonical names)."""
    record: dict[str, Any] = {"crm_id": deal.get("crm_id"), "oa_instance_code": instance_code}
    if project_no:
        record["project_no"] = project_no
    if approval_status:
        record["approval_status"] = approval_status
    stage = project_stage(dictionary, deal.get("stage"))
    if stage:
        record["project_stage"] = stage
    return record


# ---------------------------------------------------------------- a deal archived (deleted) in the CRM

ARCHIVE_KEY = "archive"  # in a deal_project link's state: what the bridge did about the deal's archiving
VOID_PURPOSE = "deal_void_notice"  # idempotency purpose of the 商机作废通知 telling finance the deal is gone
HANDLED = frozenset({"withdrawn", "notified", "marked"})
ARCHIVED_HASH = "archived:"  # content hash prefix of the pending change that asks load to settle an archive
MERGED_INTO = "merged_into"  # in a settled deal_project link's archive state: the survivor of the merge

ArchiveAction = Literal["withdraw", "void_notice", "mark", "nothing"]


class ArchiveDecision(NamedTuple):
    """What to do about a 立项申请 whose deal was archived; ``comment`` is the Chinese reason recorded (and, for a
    withdrawal, posted on the instance); ``void_reason`` is the 作废原因 of a 商机作废通知."""

    action: ArchiveAction
    reason: str
    uuid: str | None = None
    comment: str | None = None
    void_reason: str | None = None


@dataclass(frozen=True)
class Survivor:
    """The deal a merged deal was merged into: its CRM id and, when the hub has it staged, its name."""

    deal_id: str
    name: str | None = None

    @property
    def shown(self) -> str:
        return f"「{self.name}」（ID {self.deal_id}）" if self.name else f"商机（ID {self.deal_id}）"


def void_reason(survivor: Survivor | None) -> str:
    """The 作废原因 of a 商机作废通知: 删除 (archived in the CRM) or 合并 (merged into another deal)."""
    return f"合并：已合并到{survivor.shown}" if survivor is not None else "删除：CRM 中的商机已删除（归档）"


def archive_comment(
    deal_id: str, archived_on: str, action: ArchiveAction, survivor: Survivor | None = None
) -> str:
    """The Chinese reason kept with the withdrawal or the notice (staff read it in the OA instance's comments,
    the hub pages and the audit). A merged deal says what it was merged into, not that it was deleted."""
    what = {
        "withdraw": "立项申请尚在审批中，由集成机器人自动撤回",
        "void_notice": "立项申请已通过，已发商机作废通知告知财务",
    }.get(action, "立项申请已结束，仅标记" + ("商机已合并" if survivor else "商机已删除"))
    if survivor is not None:
        event = f"已于 {archived_on} 合并到{survivor.shown}"
        after = "后续请在合并后的商机上处理。"
    else:
        event = f"已于 {archived_on} 被删除（归档）"
        after = "如商机被恢复，请销售与财务确认后处理。"
    return f"CRM 中的商机「{deal_id}」{event}：{what}。{after}"


def decide_archived(
    deal_id: str,
    project: ProjectLink | None,
    archive: Mapping[str, Any] | None,
    approval_status: str | None,
    *,
    dictionary_version: str,
    archived_on: str,
    survivor: Survivor | None = None,
) -> ArchiveDecision:
    """The one thing to do when a deal with a 立项申请 is archived (or merged away) in the CRM.

    ``archive`` is the link's :data:`ARCHIVE_KEY` state, ``approval_status`` the 立项申请's current canonical
    approval status (None: the OA no longer has it), ``survivor`` the deal it was merged into (None: deleted).
    Pending → withdraw; approved → a 商机作废通知 to finance, once (its uuid is kept in ``archive`` before the
    call, so a rerun sends the same one); ended → mark only. A withdrawal or notice started before a crash
    (phase ``withdrawing`` / ``notifying``) is finished as such.
    """
    if project is None or not project.confirmed:
        return ArchiveDecision("nothing", "no_project")
    state = archive or {}

    def said(action: ArchiveAction) -> str:
        return archive_comment(deal_id, archived_on, action, survivor)

    if state.get("phase") in HANDLED:
        return ArchiveDecision("nothing", "archive_already_handled")
    if state.get("phase") == "notifying" and state.get("void_uuid"):
        return ArchiveDecision(
            "void_notice",
            "resume_void_notice",
            uuid=str(state["void_uuid"]),
            comment=said("void_notice"),
            void_reason=void_reason(survivor),
        )
    if state.get("phase") == "withdrawing" and approval_status == "CANCELED":
        # The withdrawal reached the OA and the run stopped before recording it: record it now.
        return ArchiveDecision("withdraw", "resume_withdraw", comment=said("withdraw"))
    if approval_status == "PENDING":
        return ArchiveDecision("withdraw", "archived_pending", comment=said("withdraw"))
    if approval_status == "APPROVED":
        return ArchiveDecision(
            "void_notice",
            "archived_approved",
            uuid=idempotency_uuid(deal_id, VOID_PURPOSE, dictionary_version),
            comment=said("void_notice"),
            void_reason=void_reason(survivor),
        )
    reason = f"archived_{approval_status.lower()}" if approval_status else "archived_instance_missing"
    return ArchiveDecision("mark", reason, comment=said("mark"))


def live_projects(links: Mapping[str, Sequence[Link]]) -> list[str]:
    """The deals (of ``links``: deal id → its ``deal_project`` links) whose 立项申请 is live for the bridge:
    confirmed and not marked archived. Used when their customer company is archived in the CRM: the deals are
    alive, so their 立项申请 are not withdrawn, only counted and logged for a person."""
    return sorted(
        deal_id
        for deal_id, found in links.items()
        if any(lk.oa_id and not (lk.state or {}).get("archived") for lk in found)
    )


# ---------------------------------------------------------------- deals merged in the CRM


@dataclass(frozen=True)
class MergedProject:
    """A 立项申请 link of an absorbed deal: when it was filed (the link's creation, ISO 8601) and whether its
    deal's archiving is already being settled (the archived sweep saw the deal first)."""

    deal_id: str
    filed_at: str
    settling: bool = False


class MergeDecision(NamedTuple):
    """What a merge does with the absorbed deals' 立项申请: ``inherit`` is the absorbed deal whose 立项申请 the
    survivor takes over (None: it keeps its own, or none had one); ``settle`` are settled as archived deals'."""

    inherit: str | None
    settle: tuple[str, ...]


def decide_merge(survivor_has_project: bool, absorbed: Sequence[MergedProject]) -> MergeDecision:
    """The survivor keeps ONE 立项申请: its own when it has one (the CRM keeps the survivor's values, so the
    审批编号 it shows is its own), else the earliest filed of the absorbed deals' (ties: the lower deal id).
    Every other absorbed 立项申请 is settled as for an archived deal (withdrawn if pending, finance told if
    approved, marked if ended), so the survivor never has two live ones and never gets a new one."""
    open_ones = sorted(
        (p for p in absorbed if not p.settling), key=lambda p: (p.filed_at, _id_order(p.deal_id))
    )
    inherit = None if survivor_has_project or not open_ones else open_ones[0].deal_id
    settle = tuple(p.deal_id for p in absorbed if p.deal_id != inherit and not p.settling)
    return MergeDecision(inherit, settle)


def _id_order(deal_id: str) -> tuple[int, str]:
    return (int(deal_id), deal_id) if deal_id.isdigit() else (0, deal_id)

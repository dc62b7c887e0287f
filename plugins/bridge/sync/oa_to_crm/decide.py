"""What the OA → CRM sync does with one instance or deal: pure decisions, no I/O.

Discovery (which instances to re-read), the deal write-back (which OA-owned
deal fields differ from the CRM, and which of those differences are
conflicts), and the activities (upsert, void, nothing, quarantine) are decided
here from plain data, so the engine (:mod:`bridge.sync.oa_to_crm`) keeps the
I/O and these rules are tested directly and with hypothesis.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.dictionary import Dictionary, Problem, formats
from bridge.dictionary.mapping import Projector
from bridge.sync.common import ALWAYS_BLOCKING
from bridge.sync.crm_to_oa.decide import project_stage

PROJECT_FORM = "project_initiation"
PROJECT_LINK = "deal_project"  # CRM deal ⇄ 立项申请 (made by crm_to_oa or the history migration)
ACTIVITY_LINK = "activity"  # CRM note/meeting ⇄ OA expense/travel/visit instance
WRITEBACK_LINK = "deal_writeback"  # CRM deal: what this direction last wrote (state only, no OA id)
CUSTOMER_LINK = "company_customer"  # CRM company ⇄ OA instance (the history migration; merged customers)
PENDING, APPROVED, DELETED, REVERTED = "PENDING", "APPROVED", "DELETED", "REVERTED"
CLOSED = frozenset({"REJECTED", "CANCELED", "DELETED", REVERTED})
# An activity of an instance in these statuses can be archived (oa_to_crm.revoked_activities: remove): the
# instance can never be approved again (REVERTED can only be deleted, DELETED is final).
GONE = frozenset({DELETED, REVERTED})
SPAN_MS = 30 * 86_400_000  # instances/query: at most 30 days per query
# 立项申请 field → deal field (both in include/dictionary.yaml; the deal fields' system of record is the OA).
DEAL_FROM_PROJECT = {
    "oa_instance_code": "instance_code",
    "project_no": "project_no",
    "approval_status": "approval_status",
    "approval_decided_at": "decided_at",
}
PROJECT_NEEDED = frozenset({"instance_code", "approval_status", "project_no", "decided_at"})

ActivityAction = Literal["upsert", "void", "archive", "nothing", "quarantine"]
RevokedActivities = Literal["mark", "remove"]


# ---------------------------------------------------------------- forms and fields


def activity_forms(d: Dictionary) -> tuple[str, ...]:
    """The OA forms that become CRM activities (``crm_activities`` of the dictionary)."""
    return tuple(d.crm_activities)


def oa_owned_deal_fields(d: Dictionary) -> tuple[str, ...]:
    """Deal fields whose system of record is the OA (the ones this direction writes), in dictionary order."""
    return tuple(name for name, f in d.entity("deal").fields.items() if f.system_of_record == "oa" and f.crm)


def needed_fields(d: Dictionary, entity: str) -> frozenset[str]:
    """Fields whose problem stops the record: what the CRM write uses."""
    if entity == PROJECT_FORM:
        return PROJECT_NEEDED
    activity = d.crm_activities[entity]
    names = {"instance_code", "approval_status", "customer_id"}
    for prop in activity.properties:
        if prop.field:
            names.add(prop.field)
        if prop.template is not None:
            names.update(prop.template.refs)
    return frozenset(names)


def blocking(d: Dictionary, entity: str, problems: Iterable[Problem]) -> list[Problem]:
    """Problems that stop the CRM write (the customer link is judged on its own: :func:`customer_problem`).

    Activity forms: as in the CRM → OA direction, ``missing_required``,
    ``unmapped_value`` and ``hostile_input`` on any field, ``invalid_format``
    on a field the activity uses. 立项申请: only problems on the fields the deal
    write uses (a missing 客户名称, a CRM-owned copy in the form, does not stop
    the approval status from reaching the deal).
    """
    needed = needed_fields(d, entity)
    everywhere = entity != PROJECT_FORM
    out = []
    for p in problems:
        if p.field == "customer_id" and p.code == "missing_required":
            continue
        relevant = p.field is None or p.field in needed
        if (p.code in ALWAYS_BLOCKING and (everywhere or relevant)) or (
            p.code == "invalid_format" and p.field in needed
        ):
            out.append(p)
    return out


# ---------------------------------------------------------------- messages


def applicant_label(user_id: str | None, name: str | None = None) -> str:
    if not user_id:
        return "申请人（OA 中未记录）"
    return f"申请人{name}（OA 用户 {user_id}）" if name else f"申请人（OA 用户 {user_id}）"


def customer_problem(
    d: Dictionary, entity: str, record: Mapping[str, Any], *, unknown: bool, applicant: str
) -> Problem:
    """``missing_customer_link``: the form names no customer, or one the CRM does not have."""
    ent = d.entity(entity)
    f = ent.fields.get("customer_id")
    label = f.label if f is not None else "关联客户"
    owner = f.owner if f is not None else "sales"
    dept = d.departments[owner].label if owner in d.departments else owner
    what = (
        f"{applicant}提交的{ent.label}（审批单编号 {record.get('serial_number') or '无'}，"
        f"实例 {record.get('instance_code')}）"
    )
    if unknown:
        message = (
            f"{what}的「{label}」填写的客户编号 {record.get('customer_id')} 在 CRM 中不存在（已删除或填错），"
            f"无法记到客户名下。请申请人核对：审批中的单据可撤回后改正并重新提交，下次同步会自动重试；"
            f"如客户尚未在 CRM 建档，请{dept}先创建该客户，再执行 `bridge quarantine release` 释放此记录。"
        )
    else:
        message = (
            f"{what}没有选择「{label}」，无法记到 CRM 的客户名下。请申请人在 OA 中撤回该单据，"
            f"选择「{label}」后重新提交，下次同步会自动重试；已审批通过的单据无法修改，请联系{dept}"
            f"确认所属客户后处理（必要时作废重提）。"
        )
    return Problem(
        code="missing_customer_link", entity=entity, field="customer_id", message=message, department=owner
    )


def deal_rejected(deal_id: str, instance_code: str, message: str | None, category: str | None) -> Problem:
    return Problem(
        code="vendor_rejected",
        entity="deal",
        field=None,
        department="sales",
        message=(
            f"立项申请 {instance_code} 的审批状态无法写入 CRM 商机「{deal_id}」：{message or category}。"
            f"请确认商机仍存在且自定义属性已创建，然后执行 `bridge quarantine release` 重试。"
        ),
    )


def activity_rejected(
    d: Dictionary, entity: str, code: str, message: str | None, category: str | None
) -> Problem:
    label = d.entity(entity).label
    return Problem(
        code="vendor_rejected",
        entity=entity,
        field=None,
        department="sales",
        message=(
            f"{label} {code} 无法写入 CRM（{category or '错误'}：{message or ''}）。请按提示修正 CRM 的属性或客户后"
            f"执行 `bridge quarantine release` 重试。"
        ),
    )


# ---------------------------------------------------------------- discovery


def spans(created_ms: Iterable[int], until_ms: int, span_ms: int = SPAN_MS) -> list[tuple[int, int]]:
    """The fewest ``[lo, hi]`` creation-time spans of at most ``span_ms`` covering every time given.

    The last span reaches ``until_ms`` when it can (instances created since are seen too).
    """
    ordered = sorted(set(int(t) for t in created_ms))
    out: list[tuple[int, int]] = []
    for t in ordered:
        if out and t <= out[-1][1]:
            continue
        out.append((t, t + span_ms))
    if out:
        lo, hi = out[-1]
        out[-1] = (lo, max(lo, min(hi, max(until_ms, lo))))
    return out


def cold_spans(
    cursor: int | None,
    oldest: int | None,
    hot: Sequence[tuple[int, int]],
    now_ms: int,
    count: int,
    span_ms: int = SPAN_MS,
) -> tuple[list[tuple[int, int]], int | None]:
    """Up to ``count`` older spans to sweep this run, in rotation, skipping time the hot spans cover.

    Starts at ``cursor`` (or the oldest live instance when the rotation is new or
    wrapped); returns the spans and the next run's cursor (back to ``oldest``
    once ``now_ms`` is reached).
    """
    if oldest is None or count <= 0:
        return [], None
    start = cursor if cursor is not None and oldest <= cursor <= now_ms else oldest
    ordered = sorted(hot)
    out: list[tuple[int, int]] = []
    while len(out) < count and start <= now_ms:
        inside = next(((lo, hi) for lo, hi in ordered if lo <= start <= hi), None)
        if inside is not None:
            start = inside[1] + 1
            continue
        following = [lo for lo, _ in ordered if lo > start]
        hi = min(start + span_ms, now_ms, (following[0] - 1) if following else now_ms)
        out.append((start, hi))
        start = hi + 1
    return out, (start if start <= now_ms else oldest)


@dataclass(frozen=True)
class HubInstance:
    """What the hub holds of one instance, for the status sweep."""

    status: str | None
    created_ms: int
    decided_ms: int | None = None


@dataclass(frozen=True)
class SweepResult:
    """What one span's status queries say, compared with the hub."""

    changed: frozenset[str]  # known instances whose status (or decision time) differs: read them
    unknown: frozenset[str]  # pending instances the hub has never seen: read them


def sweep_statuses(hub_rows: Mapping[str, HubInstance]) -> list[str]:
    """Which ``instances/query`` status filters a span needs, given what the hub holds in it.

    A pending, rejected, withdrawn or approved instance is judged by its
    absence from the list of its own status (every way out of those statuses
    shows so: an approved one can be deleted or revoked, and Feishu's query has
    no filter for revoked ones); a revoked one can only be deleted, which the
    DELETED list shows. A span without such instances needs no query at all.
    """
    held = {row.status for row in hub_rows.values()}
    wanted = [s for s in (PENDING, "REJECTED", "CANCELED", APPROVED) if s in held]
    if REVERTED in held:
        wanted.append(DELETED)
    return wanted


def sweep_changes(
    hub_rows: Mapping[str, HubInstance],
    results: Mapping[str, Mapping[str, int | None]],
    lag_cutoff_ms: int,
) -> SweepResult:
    """Status changes in one span from the status lists Feishu gave (``status → {code: end_time ms}``).

    Changed: a listed code the hub holds in another status, or with another
    decision time (rejected or withdrawn again after a resubmit); a code the
    hub holds in a status that was queried but is not in that list (approved,
    rejected, withdrawn, resubmitted or deleted since). Hub-pending codes
    created after ``lag_cutoff_ms`` are not judged absent (the query index can
    lag behind creation). ``hub_rows`` holds every non-deleted instance of the
    span the hub knows.
    """
    changed: set[str] = set()
    unknown: set[str] = set()
    for status, items in results.items():
        for code, end_ms in items.items():
            row = hub_rows.get(code)
            if row is None:
                if status == PENDING:
                    unknown.add(code)
                continue
            if row.status != status or (
                status in ("REJECTED", "CANCELED")
                and end_ms
                and row.decided_ms is not None
                and row.decided_ms != end_ms
            ):
                changed.add(code)
    for code, row in hub_rows.items():
        listed = results.get(str(row.status))
        if listed is None or code in listed:
            continue
        if row.status == PENDING and row.created_ms > lag_cutoff_ms:
            continue
        changed.add(code)
    return SweepResult(frozenset(changed), frozenset(unknown))


# ---------------------------------------------------------------- deals


def primary_project(projects: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The 立项申请 a deal shows: the newest live one (not rejected, withdrawn, deleted), else the newest.

    The same rule as the history migration's write-back, so both write the same instance.
    """

    def rank(p: Mapping[str, Any]) -> tuple[bool, str, str]:
        return (
            p.get("approval_status") not in CLOSED,
            str(p.get("created_at") or ""),
            str(p.get("instance_code") or ""),
        )

    return max(projects, key=rank) if projects else None


def desired_deal(
    d: Dictionary, project: Mapping[str, Any], deal_stage: str | None, *, stage_known: bool = True
) -> dict[str, Any]:
    """The OA-owned deal fields as the OA says (canonical): status, number, decision time, project stage.

    The project stage follows the deal's stage through the value map ``project_stage``
    (as the CRM → OA write-back and the migration do); without the deal's stage it is left out.
    """
    owned = set(oa_owned_deal_fields(d))
    record: dict[str, Any] = {
        name: project.get(src) for name, src in DEAL_FROM_PROJECT.items() if name in owned
    }
    if "project_stage" in owned and stage_known:
        record["project_stage"] = project_stage(d, deal_stage)
    return record


def _norm(d: Dictionary, name: str, value: Any) -> str | None:
    """A canonical deal value as comparable text (datetimes as instants, empty as None)."""
    if value is None or value == "":
        return None
    f = d.entity("deal").fields.get(name)
    if f is not None and f.type == "datetime":
        cleaned, issue = formats.clean_datetime(value)
        return str(cleaned) if cleaned and not issue else str(value)
    return str(value)


def same_value(d: Dictionary, name: str, a: Any, b: Any) -> bool:
    return _norm(d, name, a) == _norm(d, name, b)


@dataclass(frozen=True)
class DealPlan:
    """What to write to one deal: the fields that differ, and which of them someone changed in the CRM."""

    deal_id: str
    instance_code: str
    desired: dict[str, Any]
    write: dict[str, Any]
    conflicts: tuple[str, ...] = ()

    @property
    def needed(self) -> bool:
        return bool(self.write)


def plan_deal(
    d: Dictionary,
    deal_id: str,
    desired: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    last_written: Mapping[str, Any] | None,
) -> DealPlan:
    """Compare the OA's values with the deal's current CRM values (``None``: not known, write all).

    A **conflict** is an OA-owned field whose CRM value is neither what the
    bridge last wrote (``last_written``) nor what the OA says now: someone
    edited it in the CRM. The dictionary makes the OA its system of record,
    so the OA value is written back; the caller records the conflict.
    """
    if current is None:
        write = {k: v for k, v in desired.items()}
        conflicts: list[str] = []
    else:
        write = {k: v for k, v in desired.items() if not same_value(d, k, v, current.get(k))}
        conflicts = [
            k
            for k in write
            if last_written is not None
            and k in last_written
            and not same_value(d, k, current.get(k), last_written.get(k))
        ]
    return DealPlan(
        deal_id=deal_id,
        instance_code=str(desired.get("oa_instance_code") or ""),
        desired=dict(desired),
        write=write,
        conflicts=tuple(sorted(conflicts)),
    )


def scan_needs_check(d: Dictionary, desired: Mapping[str, Any], staged: Mapping[str, Any]) -> bool:
    """Whether a deal the CRM → OA extract re-staged shows OA-owned values that differ from the OA."""
    return any(not same_value(d, k, v, staged.get(k)) for k, v in desired.items())


# ---------------------------------------------------------------- activities


@dataclass(frozen=True)
class ActivityPlan:
    action: ActivityAction
    reason: str
    crm_object: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    company_id: str | None = None
    deal_id: str | None = None
    problem: Problem | None = None
    written_hash: str | None = None


def written_hash(crm_object: str, properties: Mapping[str, str], pairs: Iterable[tuple[str, str]]) -> str:
    """Fingerprint of an activity write (object, properties, associations): equal means nothing to send."""
    text = json.dumps(
        [crm_object, sorted(properties.items()), sorted(set(pairs))],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def void_properties(d: Dictionary, entity: str, properties: Mapping[str, str], status: str) -> dict[str, str]:
    """The activity of an instance that was rejected, withdrawn, deleted or revoked after it reached the CRM.

    Text properties (templates) get a marker with the OA status, amounts are
    cleared: the record stays visible on the customer, never with an amount
    that no longer stands.
    """
    activity = d.crm_activities[entity]
    ent = d.entity(entity)
    label = d.label("approval_status", status) or status
    marker = f"【OA 审批状态：{label}，此记录已作废】"
    out = dict(properties)
    for prop in activity.properties:
        if prop.kind == "template":
            body = out.get(prop.name, "")
            out[prop.name] = body if body.startswith(marker) else marker + body
        elif prop.kind == "field" and prop.field and ent.fields[prop.field].type == "amount":
            out[prop.name] = ""
    return out


def activity_record(
    d: Dictionary, entity: str, record: Mapping[str, Any], policy: Projector
) -> tuple[str, dict[str, str]]:
    """``(crm object, properties)`` of the activity, keyed by ``oa_instance_code`` (the upsert's unique property)."""
    crm_object, props = d.activity_properties(entity, record, policy)
    props["oa_instance_code"] = str(record.get("instance_code"))
    return crm_object, props


@dataclass(frozen=True)
class ActivityFacts:
    """What the hub knows around an activity instance: its problems, its customer (and whether the CRM
    has it), the deal its project number links, the state of the activity written before, the applicant."""

    problems: Sequence[Problem]
    company_id: str | None
    company_known: bool
    deal_id: str | None
    link_state: Mapping[str, Any] | None
    applicant: str


def _undone(
    d: Dictionary,
    policy: Projector,
    entity: str,
    record: Mapping[str, Any],
    link_state: Mapping[str, Any],
    revoked: RevokedActivities,
) -> ActivityPlan:
    """An activity in the CRM whose instance left ``when_status``: void (mark) it, or archive it.

    Archived once, it stays so (the link's state is its tombstone); a void is sent again only when
    its text would differ (another status).
    """
    status = str(record.get("approval_status"))
    if link_state.get("phase") == "archived":
        return ActivityPlan("nothing", "already_archived")
    if revoked == "remove" and status in GONE:
        crm_object = str(link_state.get("crm_object") or d.crm_activities[entity].crm_object)
        return ActivityPlan("archive", f"status_{status.lower()}", crm_object)
    crm_object, props = activity_record(d, entity, record, policy)
    voided = void_properties(d, entity, props, status)
    digest = written_hash(crm_object, voided, ())
    if link_state.get("hash") == digest:
        return ActivityPlan("nothing", "already_voided")
    return ActivityPlan("void", f"status_{status.lower()}", crm_object, voided, written_hash=digest)


def plan_activity(
    d: Dictionary,
    policy: Projector,
    entity: str,
    record: Mapping[str, Any],
    facts: ActivityFacts,
    revoked: RevokedActivities = "mark",
) -> ActivityPlan:
    """The one thing to do with an expense / travel / visit instance whose state changed.

    * status in ``when_status``: upsert the activity (unless exactly this was written),
      associated with the customer and, when its project number links one, the deal;
    * it reached the CRM earlier and its status left ``when_status`` (rejected,
      withdrawn, deleted, revoked): void it (:func:`void_properties`), or with
      ``revoked="remove"`` archive it when the instance is deleted or revoked (:func:`_undone`);
    * no customer or one the CRM does not have: quarantine ``missing_customer_link``
      (no customer at all: already while pending, so the applicant can withdraw and fix it in time;
      a customer id is checked against the CRM once the form is due);
    * other blocking problems: quarantine with the dictionary's reason.
    """
    company_id, deal_id, link_state, applicant = (
        facts.company_id,
        facts.deal_id,
        facts.link_state,
        facts.applicant,
    )
    status = record.get("approval_status")
    due = d.activity_due(entity, record)
    written = link_state is not None and bool(link_state.get("crm_id"))
    if not due:
        if written and link_state is not None:
            return _undone(d, policy, entity, record, link_state, revoked)
        if status != PENDING:
            return ActivityPlan("nothing", "not_due")
    stop = blocking(d, entity, facts.problems)
    if stop:
        return ActivityPlan("quarantine", stop[0].code, problem=stop[0])
    if not company_id:
        return ActivityPlan(
            "quarantine",
            "missing_customer",
            problem=customer_problem(d, entity, record, unknown=False, applicant=applicant),
        )
    if not due:
        return ActivityPlan("nothing", "pending_not_due")
    if not facts.company_known:
        return ActivityPlan(
            "quarantine",
            "unknown_customer",
            problem=customer_problem(d, entity, record, unknown=True, applicant=applicant),
        )
    crm_object, props = activity_record(d, entity, record, policy)
    pairs = [("companies", company_id)] + ([("deals", deal_id)] if deal_id else [])
    digest = written_hash(crm_object, props, pairs)
    if link_state is not None and link_state.get("hash") == digest:
        return ActivityPlan("nothing", "unchanged")
    return ActivityPlan(
        "upsert", "due", crm_object, props, company_id=company_id, deal_id=deal_id, written_hash=digest
    )


__all__ = [
    "ACTIVITY_LINK",
    "CUSTOMER_LINK",
    "PROJECT_FORM",
    "PROJECT_LINK",
    "REVERTED",
    "WRITEBACK_LINK",
    "ActivityFacts",
    "ActivityPlan",
    "DealPlan",
    "HubInstance",
    "RevokedActivities",
    "SweepResult",
    "activity_forms",
    "activity_record",
    "blocking",
    "cold_spans",
    "customer_problem",
    "desired_deal",
    "needed_fields",
    "oa_owned_deal_fields",
    "plan_activity",
    "plan_deal",
    "primary_project",
    "same_value",
    "scan_needs_check",
    "spans",
    "sweep_changes",
    "sweep_statuses",
    "void_properties",
    "written_hash",
]

"""The data-health checks: generated from the data dictionary, plus the cross-system ones (pure).

A :class:`Check` is one Great Expectations expectation on one column of one
frame (see :mod:`bridge.quality.frames`), with the Chinese label and fix hint
staff see. Dictionary checks follow the field keys of ``include/dictionary.yaml``:

* ``required: true``  → ``required``  (the value, or its offending source value, is present)
* ``format: <rule>``  → ``format``    (the offending value if any, else the clean value, passes the rule)
* ``value_map: <map>`` → ``value_map`` (the value is a canonical value of the map)
* ``unique: true``    → ``unique``    (no two records share the value; text compared normalised)

so adding a rule to the dictionary adds the expectation at the next run.
Cross-system checks: duplicate customers, customer links of OA forms, 立项申请 ⇄
deal links, xref links left on archived or merged CRM records (orphaned), contacts
and deals associated with no live customer, CRM/OA contract amounts, sync
freshness, quarantine backlog, documents (attachments).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from bridge.dictionary import Dictionary
from bridge.quality.config import SYNC_DIRECTIONS, HealthSettings

# Frame column of the record id and of its data owner in every row frame.
ID_COLUMN = "source_id"
OWNER_COLUMN = "data_owner"

# Frames (data assets) that are not a dictionary entity.
LINKS_FRAME = "deal_project_links"
ORPHANS_FRAME = "orphaned_links"  # xref links whose CRM record is archived (tombstoned) or merged
AMOUNTS_FRAME = "contract_amounts"
SYNC_FRAME = "sync"
QUARANTINE_FRAME = "quarantine"
CALENDAR_FRAME = "calendar"  # the working-day calendar's coverage (bridge.quality.calendar_check)
# Attachments (issue 19): frames built by bridge.quality.documents_check from the hub's document tables.
DOCUMENT_COPIES_FRAME = "document_copies"
DOCUMENT_LINKS_FRAME = "document_links"
CONTRACT_DOCUMENTS_FRAME = "contract_documents"
ATTACHMENT_QUARANTINE_FRAME = "attachment_quarantine"
CONTRACT_STAGE_FRAME = "contract_stage_deals"

# GX expectation classes used (great_expectations.expectations.<name>).
NOT_NULL = "ExpectColumnValuesToNotBeNull"
IN_SET = "ExpectColumnValuesToBeInSet"
UNIQUE = "ExpectColumnValuesToBeUnique"
BETWEEN = "ExpectColumnValuesToBeBetween"

FORMAT_LABELS = {
    "mobile_cn": "手机号",
    "phone_cn": "电话号码",
    "email": "邮箱",
    "uscc": "统一社会信用代码（含校验位）",
    "cny_amount": "人民币金额（0 至 1 万亿，不能为负）",
    "date": "日期",
    "datetime_tz": "时间",
}
SYNC_LABELS = {"crm_to_oa": "CRM → OA", "oa_to_crm": "OA → CRM"}
SYSTEM_LABELS = {"crm": "CRM", "oa": "OA"}
REFERENCING_ENTITIES = ("expense_claim", "travel_request", "visit_plan")
# CRM records whose 所属客户 / 关联客户 (company_id, from the v4 associations) must name a live customer.
ASSOCIATED_ENTITIES = ("contact", "deal")
# xref link types checked for orphans -> the CRM entity of their crm_id (a link of these joins a CRM record to an
# OA record; the bridge marks a deal_project link {"archived": true} when it settles its archived deal).
ORPHAN_LINK_TYPES = {"deal_project": "deal", "company_customer": "company"}
LINK_LABELS = {"deal_project": "商机 ⇄ 立项申请", "company_customer": "客户 ⇄ OA 单据"}
# 立项申请 in these statuses are no longer a live claim on the deal's amount.
CLOSED_STATUSES = frozenset({"REJECTED", "CANCELED", "DELETED", "REVERTED"})


@dataclass(frozen=True)
class Check:
    """One expectation: what it checks, on which frame column, who owns it, what staff read."""

    check_id: str  # "<entity>.<field>.<kind>", stored as health_result.expectation
    suite: str  # GX expectation suite: "dictionary.<entity>" or "cross.<topic>"
    frame: str  # the frame (GX data asset) the suite validates
    entity: str  # health_result.entity: a dictionary entity, or "sync" / "quarantine"
    field: str | None
    kind: str
    department: str | None  # key of the dictionary's departments
    column: str
    expectation: str  # GX expectation class name
    kwargs: dict[str, Any] = dc_field(default_factory=dict)
    label: str = ""  # Chinese, what is checked
    fix: str = ""  # Chinese, how to fix a failure
    rule: str | None = None  # format rule or value map name
    row_level: bool = True  # False: one verdict for the whole table (freshness, backlog)


def _field_label(d: Dictionary, entity: str, name: str) -> str:
    e = d.entity(entity)
    return f"{e.label}「{e.fields[name].label}」"


def _dept_label(d: Dictionary, dept: str | None) -> str:
    if dept is None:
        return "数据责任部门"
    department = d.departments.get(dept)
    return department.label if department else dept


def dictionary_checks(d: Dictionary, entities: Iterable[str] | None = None) -> list[Check]:
    """The checks the dictionary's field rules ask for, in file order."""
    checks: list[Check] = []
    for name in entities if entities is not None else d.entities:
        entity = d.entity(name)
        system = SYSTEM_LABELS.get(entity.system, entity.system)
        suite = f"dictionary.{name}"
        for f in entity.fields.values():
            if f.derive is not None:
                continue  # computed from other fields: their rules cover it
            where = _field_label(d, name, f.name)
            dept = _dept_label(d, f.owner)
            if f.required:
                checks.append(Check(
                    check_id=f"{name}.{f.name}.required", suite=suite, frame=name, entity=name, field=f.name,
                    kind="required", department=f.owner, column=f.name, expectation=NOT_NULL,
                    label=f"{where}必填",
                    fix=f"请{dept}在 {system} 中为这些记录补全「{f.label}」，保存后下次同步即更新。",
                ))
            if f.format:
                rule_label = FORMAT_LABELS.get(f.format, f.format)
                checks.append(Check(
                    check_id=f"{name}.{f.name}.format", suite=suite, frame=name, entity=name, field=f.name,
                    kind="format", department=f.owner, column=f"{f.name}__format", expectation=IN_SET,
                    kwargs={"value_set": [True]}, rule=f.format,
                    label=f"{where}格式须为有效的{rule_label}",
                    fix=f"请{dept}在 {system} 中按「{rule_label}」的格式改正「{f.label}」"
                        f"（格式规则见数据字典 format: {f.format}）。",
                ))
            if f.value_map:
                vmap = d.value_maps[f.value_map]
                labels = "、".join(v.label for v in vmap.values)
                checks.append(Check(
                    check_id=f"{name}.{f.name}.value_map", suite=suite, frame=name, entity=name, field=f.name,
                    kind="value_map", department=f.owner, column=f"{f.name}__value", expectation=IN_SET,
                    kwargs={"value_set": list(vmap.canonical_values)}, rule=f.value_map,
                    label=f"{where}取值须为「{vmap.label}」中的值（{labels}）",
                    fix=f"请{dept}在 {system} 中改为已有的取值；若确需新值，由数据责任人在 "
                        f"include/dictionary.yaml 的 value_maps.{f.value_map} 中添加。",
                ))
            if f.unique:
                normalised = "（去空格、全角转半角、有限责任公司=有限公司后比较）" if not f.format else ""
                checks.append(Check(
                    check_id=f"{name}.{f.name}.unique", suite=suite, frame=name, entity=name, field=f.name,
                    kind="unique", department=f.owner, column=f"{f.name}__key", expectation=UNIQUE,
                    label=f"{where}不得重复{normalised}",
                    fix=f"请{dept}在 {system} 中核对这些记录：同一{entity.label}只保留一条，其余合并或更正。",
                ))
    return checks


def cross_checks(d: Dictionary, cfg: HealthSettings, reasons: Iterable[str] = ()) -> list[Check]:
    """Checks that join entities or systems; skipped where the dictionary lacks the entity or field."""
    return [*_customer_checks(d), *_association_checks(d), *_orphan_contact_checks(d), *_project_checks(d),
            *_orphan_checks(d),
            *_document_checks(d, cfg), *_table_checks(cfg, reasons)]


def _customer_checks(d: Dictionary) -> list[Check]:
    """No duplicate customers, and every referencing OA form names an existing CRM customer."""
    checks: list[Check] = []
    if "company" in d.entities:
        uscc_owner = d.entity("company").fields.get("uscc")
        dept = uscc_owner.owner if uscc_owner else None
        checks.append(Check(
            check_id="company.customer.duplicate_customer", suite="cross.customers", frame="company",
            entity="company", field=None, kind="duplicate_customer", department=dept,
            column="customer_key", expectation=UNIQUE,
            label="客户不得重复：规范化名称相同或统一社会信用代码相同的客户视为同一客户",
            fix="请销售部与财务部在 CRM 中合并重复客户（保留信息最完整的一条，其余合并到它）。",
        ))
    for name in REFERENCING_ENTITIES:
        entity = d.entities.get(name)
        if entity is None or "customer_id" not in entity.fields or "company" not in d.entities:
            continue
        f = entity.fields["customer_id"]
        checks.append(Check(
            check_id=f"{name}.customer_id.customer_exists", suite="cross.references", frame=name,
            entity=name, field="customer_id", kind="customer_exists", department=f.owner,
            column="customer_id__exists", expectation=IN_SET, kwargs={"value_set": [True]},
            label=f"{entity.label}须关联 CRM 中存在的客户（「{f.label}」）",
            fix=f"请申请人在 OA 中把「{f.label}」改为 CRM 客户编号；客户尚未建档的，请{_dept_label(d, f.owner)}"
                f"先在 CRM 中建立客户。",
        ))
    return checks


def _association_checks(d: Dictionary) -> list[Check]:
    """A contact's / deal's associated customer is one the CRM still has: not archived, not merged away.

    Distinct from ``<entity>.company_id.required`` (no association at all): a record without a company is
    left out here (not evaluated), so no record fails both checks.
    """
    checks: list[Check] = []
    if "company" not in d.entities:
        return checks
    for name in ASSOCIATED_ENTITIES:
        entity = d.entities.get(name)
        if entity is None or "company_id" not in entity.fields:
            continue
        f = entity.fields["company_id"]
        checks.append(Check(
            check_id=f"{name}.company_id.company_live", suite="cross.references", frame=name, entity=name,
            field="company_id", kind="company_live", department=f.owner, column="company_id__live",
            expectation=IN_SET, kwargs={"value_set": [True]},
            label=f"{entity.label}「{f.label}」须为 CRM 中现存的客户（未删除归档、未被合并）",
            fix=f"请{_dept_label(d, f.owner)}在 CRM 中把这些{entity.label}关联到现存的客户：客户已合并的，关联到保留的客户；"
                "客户误删的，可在 90 天内从 CRM 回收站恢复。",
        ))
    return checks


def _orphan_contact_checks(d: Dictionary) -> list[Check]:
    """Contacts left without any customer in the CRM (``contact.company_id.associated``).

    The sync stages 所属客户 from the v4 associations (the primary company first, which is all the CRM's
    primary-company property ever holds), so ``contact.company_id.required`` fails when the CRM had no company
    association at all when the contact was last read. This check asks what the CRM has *now*, as far as the
    hub knows: a contact fails when it names no company, or when its company was deleted (HubSpot hides an
    archived company from the contact's associations without touching the contact, so the snapshot still
    names it). A company merged away does not fail it (the merge moved the association to the survivor; the
    stale id is ``company_live``'s business). Such a contact can never be the 客户联系人 of a 立项申请: the CRM
    → OA sync chooses a deal's contact among its company's contacts.
    """
    entity = d.entities.get("contact")
    if entity is None or "company_id" not in entity.fields or "company" not in d.entities:
        return []
    f = entity.fields["company_id"]
    return [Check(
        check_id="contact.company_id.associated", suite="cross.references", frame="contact", entity="contact",
        field="company_id", kind="company_associated", department=f.owner, column="company_id__associated",
        expectation=IN_SET, kwargs={"value_set": [True]},
        label=f"联系人须在 CRM 中关联至少一个客户（没有任何客户关联，或「{f.label}」已被删除的联系人不能作为立项申请的客户联系人）",
        fix=f"请{_dept_label(d, f.owner)}在 CRM 中为这些联系人关联客户（设为主要客户）；客户误删的，可在 90 天内从回收站恢复。",
    )]


def _orphan_checks(d: Dictionary) -> list[Check]:
    """xref links still live on a CRM record that was archived (tombstoned) or merged into another."""
    checks: list[Check] = []
    for entity_name in dict.fromkeys(ORPHAN_LINK_TYPES.values()):
        entity = d.entities.get(entity_name)
        if entity is None:
            continue
        id_field = entity.fields.get(entity.id_field)
        links = "、".join(LINK_LABELS[t] for t, e in ORPHAN_LINK_TYPES.items() if e == entity_name)
        checks.append(Check(
            check_id=f"{entity_name}.xref.orphaned_link", suite="cross.links", frame=ORPHANS_FRAME,
            entity=entity_name, field=None, kind="orphaned_link", department=id_field.owner if id_field else None,
            column=f"{entity_name}__link_live", expectation=IN_SET, kwargs={"value_set": [True]},
            label=f"中枢库的关联（{links}）不得指向 CRM 中已删除归档或已被合并的{entity.label}",
            fix=f"{entity.label}在 CRM 中误删的，请{_dept_label(d, id_field.owner if id_field else None)}在 90 天内"
                "从回收站恢复，下次同步自动恢复关联；确已删除或已合并的，请联系系统管理员查看同步日志与隔离区，"
                "由同步撤回或标记相关 OA 单据。",
        ))
    return checks


def _project_checks(d: Dictionary) -> list[Check]:
    """立项申请 ⇄ 商机: the deal exists, the link is complete, the contract amounts agree."""
    checks: list[Check] = []
    pi = d.entities.get("project_initiation")
    if pi is not None and "deal_id" in pi.fields and "deal" in d.entities:
        f = pi.fields["deal_id"]
        checks.append(Check(
            check_id="project_initiation.deal_id.deal_exists", suite="cross.references",
            frame="project_initiation", entity="project_initiation", field="deal_id", kind="deal_exists",
            department=f.owner, column="deal_id__exists", expectation=IN_SET, kwargs={"value_set": [True]},
            label="立项申请关联的商机须存在于 CRM（「CRM商机编号」）",
            fix="请销售部核对立项申请上的 CRM 商机编号；商机已删除或编号填错的，请在 OA 中撤回并重新发起。",
        ))
        checks.append(Check(
            check_id="project_initiation.deal_project.link_complete", suite="cross.links", frame=LINKS_FRAME,
            entity="project_initiation", field="deal_id", kind="link_complete", department=f.owner,
            column="link__complete", expectation=IN_SET, kwargs={"value_set": [True]},
            label="立项申请 ⇄ 商机 的关联须完整（两端都有，且两端记录都存在）",
            fix="请销售部核对商机与立项申请：商机已删除的请撤回立项申请；立项申请缺失的，"
                "下次 CRM → OA 同步会补建，仍缺失请联系系统管理员查看隔离区。",
        ))
    deal = d.entities.get("deal")
    if deal is not None and pi is not None and "contract_amount" in deal.fields and "contract_amount" in pi.fields:
        f = deal.fields["contract_amount"]
        checks.append(Check(
            check_id="deal.contract_amount.amount_consistent", suite="cross.consistency", frame=AMOUNTS_FRAME,
            entity="deal", field="contract_amount", kind="amount_consistent", department=f.owner,
            column="contract_amount__matches", expectation=IN_SET, kwargs={"value_set": [True]},
            label="CRM 商机的合同金额须与 OA 立项申请（以最新的合同金额变更通知为准）一致",
            fix=f"请{_dept_label(d, f.owner)}核对合同金额：以 CRM 为准的，下次同步会发出合同金额变更通知；"
                "CRM 填错的，请在 CRM 中改正。",
        ))
    return checks


def _document_checks(d: Dictionary, cfg: HealthSettings) -> list[Check]:
    """Attachments (issue 19; frames in bridge.quality.documents_check): content registered, copies where
    linked, contracts of a deal on its 立项申请, refused files handled in time."""
    checks = [
        Check(
            check_id="document.copy.documented", suite="cross.documents", frame=DOCUMENT_COPIES_FRAME, entity="document",
            field=None, kind="documented", department=None, column="copy__documented", expectation=IN_SET,
            kwargs={"value_set": [True]},
            label="存放在 CRM / OA 中的每个文件副本，其内容（SHA-256）都须在中枢库登记",
            fix="请系统管理员查看对应同步运行的日志：文件已上传或已读到，但登记未完成；重新运行一次该方向的同步，"
                "仍失败请联系开发人员。",
        ),
        Check(
            check_id="document.link.copy_in_system", suite="cross.documents", frame=DOCUMENT_LINKS_FRAME,
            entity="document", field=None, kind="copy_in_system", department=None,
            column="link__copy_in_system", expectation=IN_SET, kwargs={"value_set": [True]},
            label="挂在某系统记录上的文件，须在该系统中有副本（否则文件在一个系统中有关联、却不在该系统中）",
            fix="请系统管理员查看隔离区（原因：附件被拒）和同步日志：文件未能上传到该系统；处理后下次同步会补传。",
        ),
        Check(
            check_id="attachment.quarantine.age", suite="cross.documents", frame=ATTACHMENT_QUARANTINE_FRAME,
            entity="attachment", field=None, kind="quarantine_age", department=None,
            column="quarantine__age_days", expectation=BETWEEN,
            kwargs={"min_value": 0, "max_value": cfg.attachment_quarantine_days},
            label=f"被隔离的附件（类型不允许、过大、下载中断等）须在 {cfg.attachment_quarantine_days} 天内处理",
            fix="请数据责任人在 Airflow「隔离区」页面（对象：附件）查看原因：在来源系统中换成允许的文件后会自动重试；"
                "确认不需要的可由有权限的人释放。",
        ),
    ]
    pi = d.entities.get("project_initiation")
    if pi is not None and "deal" in d.entities and "deal_id" in pi.fields:
        checks.append(Check(
            check_id="project_initiation.documents.contract_in_oa", suite="cross.documents",
            frame=CONTRACT_DOCUMENTS_FRAME, entity="project_initiation", field=None, kind="contract_in_oa",
            department=pi.fields["deal_id"].owner, column="contract__in_oa", expectation=IN_SET,
            kwargs={"value_set": [True]},
            label="商机在 CRM 中附有合同文件的，其立项申请在 OA 中也须附有合同文件",
            fix="请销售部确认 CRM 商机上的合同文件符合附件规则（文件夹、名称、类型，见 include/settings.yaml "
                "attachments.crm_to_oa）；被拒的文件在隔离区（对象：附件）说明原因，改正后下次同步会补充。",
        ))
    deal = d.entities.get("deal")
    if deal is not None and "stage" in deal.fields:
        checks.append(Check(
            check_id="deal.documents.contract_file", suite="cross.documents", frame=CONTRACT_STAGE_FRAME,
            entity="deal", field="stage", kind="contract_file", department=deal.fields["stage"].owner,
            column="contract__in_crm", expectation=IN_SET, kwargs={"value_set": [True]},
            label="到达合同阶段（立项阶段）的商机须在 CRM 中附有合同文件（附件同步开启时检查）",
            fix="请销售部把已签署的合同扫描件附到 CRM 商机上（放在附件规则允许的文件夹，名称与类型见 include/settings.yaml "
                "attachments.crm_to_oa）；下次 CRM → OA 同步登记并随立项申请送往 OA。",
        ))
    return checks


def _table_checks(cfg: HealthSettings, reasons: Iterable[str]) -> list[Check]:
    """Whole-table checks: each sync direction's freshness and each quarantine reason's backlog."""
    checks: list[Check] = []
    for direction in SYNC_DIRECTIONS:
        # The lag of bridge.sync.freshness: since the last successful run, or the oldest unsent change's wait.
        limit = cfg.freshness_limit(direction)
        checks.append(Check(
            check_id=f"sync.{direction}.freshness", suite="cross.freshness", frame=SYNC_FRAME, entity="sync",
            field=direction, kind="freshness", department=None, column=f"{direction}__age_minutes",
            expectation=BETWEEN, kwargs={"min_value": 0, "max_value": limit}, row_level=False,
            label=f"{SYNC_LABELS[direction]} 同步须在 {limit} 分钟内成功运行过，且没有等待超过 {limit} 分钟的待发送变更",
            fix="请系统管理员在 Airflow 中查看该同步 DAG 最近的运行日志（连接、配额、隔离区）和「同步」页面的待发送变更，"
                "修复后手动触发一次。",
        ))
    for reason in sorted(set(reasons)):
        limit = cfg.backlog_limit(reason)
        checks.append(Check(
            check_id=f"quarantine.{reason}.backlog", suite="cross.quarantine", frame=QUARANTINE_FRAME,
            entity="quarantine", field=reason, kind="quarantine_backlog", department=None,
            column=f"{reason}__open", expectation=BETWEEN, kwargs={"min_value": 0, "max_value": limit},
            row_level=False, label=f"隔离区中原因为「{reason_label(reason)}」的待处理记录不超过 {limit} 条",
            fix="请各责任部门在 Airflow「隔离区」页面或 `bridge quarantine list --reason "
                f"{reason}` 中逐条处理：在源系统改正后会自动解除，确认无误的可人工释放。",
        ))
    return checks


def reason_label(reason: str) -> str:
    from bridge.hub.store import REASON_LABELS

    return REASON_LABELS.get(reason, reason)


def calendar_checks() -> list[Check]:
    """The working-day calendar knows this year's and (from calendar.warn_from) next year's holidays."""
    return [Check(
        check_id="calendar.holidays.coverage", suite="cross.calendar", frame=CALENDAR_FRAME, entity="calendar",
        field="holidays", kind="calendar_coverage", department=None, column="calendar__known",
        expectation=IN_SET, kwargs={"value_set": [True]}, row_level=False,
        label="工作日历须含本年及下一年（每年 11 月 1 日起）的法定节假日与调休安排",
        fix="请系统管理员在国务院办公厅公布放假安排后升级 chinesecalendar（requirements.txt 与 constraints.txt），"
            "或在 include/settings.yaml 的 calendar 段补录 extra_days_off / extra_working_days 并把该年列入 "
            "confirmed_years；在此之前日报与数据健康按周一至周五加公司自定安排运行。",
    )]


def all_checks(d: Dictionary, cfg: HealthSettings, reasons: Iterable[str] = ()) -> list[Check]:
    return [*dictionary_checks(d), *cross_checks(d, cfg, reasons), *calendar_checks()]


def by_frame(checks: Iterable[Check]) -> dict[str, list[Check]]:
    grouped: dict[str, list[Check]] = {}
    for check in checks:
        grouped.setdefault(check.frame, []).append(check)
    return grouped

"""Pure presentation helpers of the bridge pages: times, durations, labels, masks, trends, paging.

No I/O: every function takes data and returns data, so the pages' wording and
the masking rules are tested without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge import runkinds
from bridge.hub.store import DIRECTION_LABELS, REASON_LABELS, RESOLUTION_LABELS
from bridge.permissions import mask_email, mask_mobile

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")

ENTITY_LABELS = {
    "company": "客户",
    "contact": "联系人",
    "deal": "商机",
    "owner": "负责人",
    "project_initiation": "立项申请",
    "expense_claim": "费用报销",
    "travel_request": "差旅申请",
    "visit_plan": "客户拜访计划",
    "contract_amount_notice": "合同金额变更通知",
}
SCOPE_LABELS = {"overall": "总体", "entity": "对象", "department": "部门", "data_owner": "数据责任人"}
RUN_KIND_LABELS = {
    **runkinds.LABELS,
    "crm_to_oa": "CRM → OA 同步",  # spellings of older rows
    "oa_to_crm": "OA → CRM 同步",
    "migration": "历史迁移",
    "report": "经营日报",
}
RUN_STATUS_LABELS = {
    "running": "运行中",
    "success": "成功",
    "failed": "失败",
    "queued": "排队中",
    "dry_run": "试运行",
    "aborted": "已中止",
}
# What a person does about each reason, shown next to the entry's own message.
REASON_ADVICE = {
    "missing_required": "请数据责任人在来源系统补齐该必填项，保存后下次同步会自动重试。",
    "invalid_format": "请按提示在来源系统更正格式（如手机号 11 位、统一社会信用代码 18 位），保存后自动重试。",
    "unmapped_value": "该取值在数据字典中没有对应项：请改用允许的取值，或请管理员在 include/dictionary.yaml 中补充值映射。",
    "invalid_transition": "状态不能这样变更：请确认来源系统中的状态是否填错，更正后自动重试。",
    "owner_not_in_oa": "该负责人在 OA 中找不到账号：请在 OA 开通账号（手机号或邮箱需一致），或在 CRM 中更换负责人。",
    "missing_customer_link": "记录没有关联客户：请在 CRM 中为商机关联公司后自动重试。",
    "vendor_rejected": "对方系统拒绝了写入：请按说明中的对方提示处理，确认可以重试后由管理员释放。",
    "duplicate_id": "发现重复记录：请在来源系统合并或删除重复项，确认后由管理员释放。",
    "hostile_input": "记录中有可疑内容（如超长文本或脚本）：请在来源系统清理后由管理员释放。",
    "expectation_failed": "历史数据未通过校验：请按说明更正来源数据后重新运行历史迁移。",
}

# Headline figures of the 08:00 report (report_run.figures), in the order the list shows them.
FIGURE_LABELS = {
    "won_amount_day": "当日成交金额",
    "won_amount_mtd": "本月成交金额",
    "won_amount_ytd": "本年成交金额",
    "new_deals_day": "当日新增商机",
    "new_deals_mtd": "本月新增商机",
    "open_pipeline_amount": "在途商机金额",
    "open_pipeline_deals": "在途商机数",
    "won_count_day": "当日赢单数",
    "contracts_not_approved": "已签约未审批",
    "quarantine_open": "隔离区待处理",
    "health_score": "数据健康得分",
    "as_of": "数据截至",
}

_MOBILE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d{9}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def local_time(at: datetime | None, with_seconds: bool = True) -> str:
    """A UTC datetime as Beijing time text; ``-`` when missing."""
    if at is None:
        return "-"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def business_today(now: datetime | None = None) -> date:
    """Today in Asia/Shanghai: the date of today's 08:00 report."""
    return (now or datetime.now(UTC)).astimezone(BUSINESS_TZ).date()


def duration_text(seconds: float | None) -> str:
    """``3 天 2 小时`` / ``5 分 12 秒``: the two largest units, Chinese."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 0:
        return "0 秒"
    if 0 < seconds < 1:
        return "不到 1 秒"
    total = int(seconds)
    units = (("天", 86400), ("小时", 3600), ("分", 60), ("秒", 1))
    parts: list[str] = []
    for label, size in units:
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append(f"{amount} {label}")
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0 ")) or "0 秒"


PARAM_LABELS = {
    "entry_id": "隔离记录编号",
    "page": "页码",
    "day": "日期",
    "run_id": "运行编号",
    "kind": "文件类型",
    "rel": "文件路径",
    "area_name": "文件目录",
}
VALIDATION_TEXT = {
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "missing": "不能缺少",
    "string_too_long": "太长",
    "string_too_short": "太短",
    "string_type": "应为文本",
    "bool_parsing": "应为是或否",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "greater_than_equal": "太小",
    "greater_than": "太小",
    "less_than_equal": "太大",
    "less_than": "太大",
    "enum": "不是允许的取值",
    "literal_error": "不是允许的取值",
}


def validation_problem(err: Mapping[str, Any]) -> str:
    """One FastAPI/pydantic validation error in Chinese: which parameter, what is wrong, what was received."""
    loc = [
        str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "form", "header", "cookie")
    ]
    name = loc[-1] if loc else ""
    label = PARAM_LABELS.get(name, f"参数 {name} " if name else "参数")
    text = VALIDATION_TEXT.get(str(err.get("type", "")), "取值不符合要求")
    got = err.get("input")
    received = ""
    if err.get("type") != "missing" and isinstance(got, str | int | float) and not isinstance(got, bool):
        received = f"（收到「{first_lines(str(got), 40)}」）"
    return f"{label}{text}{received}"


STREAM_PARTS = {"created": "按创建时间", "status": "状态", "updated": "按更新时间", "modified": "按修改时间",
                "sweep": "状态巡检", "archived_sweep": "归档巡检"}


def stream_label(stream: str) -> str:
    """``crm.deal`` → ``CRM 商机``; ``oa.expense_claim.created`` → ``OA 费用报销（按创建时间）``."""
    parts = stream.split(".")
    system = parts[0].upper() if parts and parts[0] in ("crm", "oa") else ""
    rest = parts[1:] if system else parts
    if not rest:
        return stream
    entity = ENTITY_LABELS.get(rest[0], rest[0])
    extra = "、".join(STREAM_PARTS.get(p, p) for p in rest[1:])
    return f"{system} {entity}".strip() + (f"（{extra}）" if extra else "")


def reason_label(code: str) -> str:
    label = REASON_LABELS.get(code)
    return f"{label}（{code}）" if label else code


def entity_label(entity: str) -> str:
    label = ENTITY_LABELS.get(entity)
    return f"{label}（{entity}）" if label else entity


def direction_label(direction: str) -> str:
    return DIRECTION_LABELS.get(direction, direction)


def resolution_label(resolution: str | None) -> str:
    if resolution is None:
        return "待处理"
    return RESOLUTION_LABELS.get(resolution, resolution)


def scrub_personal(text: str) -> str:
    """Mask anything shaped like a mobile number or an e-mail address inside free text.

    Defence in depth for the quarantine pages: the policy's ``mask_all`` masks
    the fields it knows; a phone number typed into a free-text field (a note,
    a vendor's error message) is caught here.
    """
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _MOBILE.sub(lambda m: mask_mobile(m.group(0)), text)


def show_value(value: Any) -> str:
    """A payload value as display text (already masked by the policy), personal patterns scrubbed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Mapping | list | tuple):
        import json

        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=isinstance(value, Mapping))
    else:
        text = str(value)
    return scrub_personal(text)


PERSONAL_FORMATS = frozenset({"mobile_cn", "phone_cn", "email"})
PERSON_FIELDS = frozenset({"owner_id", "applicant_id"})
STAGING_PROBLEMS, STAGING_INVALID, STAGING_MERGED = "_problems", "_invalid", "_merged_into"


@dataclass(frozen=True)
class PayloadRow:
    """One field of a quarantined record as the viewer's role may see it."""

    label: str  # the dictionary's Chinese label
    code: str  # the field name (secondary detail)
    text: str  # the value: masked by the policy, enum values as labels, amounts as ¥
    invalid: str | None = None  # the offending source value (``_invalid``), masked the same way
    detail: str = ""  # e.g. the id behind a person's name or the code behind a label


@dataclass(frozen=True)
class PayloadView:
    rows: list[PayloadRow]
    hidden: int  # fields left out because the role may not see them
    problems: list[str]  # reason labels of ``_problems``
    known_entity: bool = True


def payload_view(
    policy: Any,
    entity: str,
    payload: Mapping[str, Any],
    role: str,
    person_names: Mapping[str, str] | None = None,
) -> PayloadView:
    """A quarantined record (canonical fields + ``_invalid``) through ``role``'s policy: labelled, masked, filtered.

    A field the role may not see is left out, in the record and in ``_invalid``
    alike (the offending value of a contract amount is an amount). An entity the
    dictionary does not know shows nothing (fail closed).
    """
    d = policy.dictionary
    record = {k: v for k, v in payload.items() if not str(k).startswith("_")}
    raw_invalid = payload.get(STAGING_INVALID)
    invalid = dict(raw_invalid) if isinstance(raw_invalid, Mapping) else {}
    problems = [
        REASON_LABELS.get(str(code), str(code))
        for code in payload.get(STAGING_PROBLEMS) or []
        if isinstance(code, str)
    ]
    if entity not in d.entities:
        return PayloadView([], len(record) + len(invalid), problems, known_entity=False)
    spec = d.entities[entity]
    shown = policy.project(entity, record, role)
    shown_invalid = policy.project(entity, invalid, role)
    visibility = policy.visibility(entity, role)
    names = person_names or {}
    rows: list[PayloadRow] = []
    for name, f in spec.fields.items():
        if name not in shown and name not in shown_invalid:
            continue
        clear_personal = f.format in PERSONAL_FORMATS and visibility.get(name) is None
        text, detail = field_text(f, shown.get(name), d, names, clear_personal)
        bad = shown_invalid.get(name)
        bad_text = None if bad is None else (str(bad) if clear_personal else scrub_personal(str(bad)))
        rows.append(PayloadRow(f.label, name, text, bad_text, detail))
    hidden = len([k for k in record if k not in shown]) + len([k for k in invalid if k not in shown_invalid])
    merged = payload.get(STAGING_MERGED)
    if merged is not None:
        if spec.id_field in visibility:
            rows.append(PayloadRow("已合并到", STAGING_MERGED, show_value(merged)))
        else:
            hidden += 1
    return PayloadView(rows, hidden, problems)


def field_text(
    f: Any, value: Any, d: Any, names: Mapping[str, str], clear_personal: bool = False
) -> tuple[str, str]:
    """``(text, detail)`` of one canonical value: enum label, ¥ amount, person's name; detail = the code or id."""
    if value is None or value == "":
        return "（空）", ""
    if f.value_map and isinstance(value, str):
        vmap = d.value_maps.get(f.value_map)
        label = vmap.label_of(value) if vmap is not None else None
        return (label, value) if label else (value, "")
    if f.type == "amount":
        return yuan(value), ""
    if f.name in PERSON_FIELDS and str(value) in names:
        return names[str(value)], str(value)
    if f.name == "department_id" or f.name.endswith("department"):
        dept = d.departments.get(str(value))
        if dept is not None:
            return dept.label, str(value)
    text = show_value(value) if not clear_personal else str(value)
    return text, ""


def payload_text(view: PayloadView) -> str:
    """A record on one line (exports): ``客户名称：某某公司；合同金额：¥1,000.00（源值「-5」）``."""
    parts = [
        f"{row.label}：{row.text}" + (f"（源值「{row.invalid}」）" if row.invalid is not None else "")
        for row in view.rows
    ]
    if view.hidden:
        parts.append(f"另有 {view.hidden} 个字段按你的角色不显示")
    return "；".join(parts)


_QUOTED = re.compile(r"「[^」]*」")


def redact_message(message: str, field_visible_in_clear: bool, keep: Iterable[str] = ()) -> str:
    """The entry's message for a viewer: quoted source values 「…」 hidden when the field is not theirs to see.

    The dictionary quotes the offending value in 「」 (``「-172100.00」金额不能为负数``);
    quotes of ``keep`` (the record id, the field's label) stay. Personal
    patterns are scrubbed either way.
    """
    if not field_visible_in_clear:
        kept = {k for k in keep if k}
        message = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[1:-1] in kept else "「***」", message)
    return scrub_personal(message)


def field_visible_in_clear(policy: Any, entity: str, field: str | None, role: str) -> bool:
    """Whether ``role`` sees ``field`` of ``entity`` in clear; unknown entities and fields: no (fail closed)."""
    if field is None:
        return True
    if entity not in policy.dictionary.entities or field not in policy.dictionary.entities[entity].fields:
        return False
    return bool(policy.allowed(entity, field, role)) and policy.mask_of(entity, field, role) is None


def department_label(key: str | None, labels: Mapping[str, str]) -> str:
    """财务部 for ``finance`` (the dictionary's departments); an unknown value as it is."""
    if not key:
        return "-"
    return labels.get(key, key)


def field_label(entity: str, field: str | None, d: Any) -> str:
    """The dictionary's Chinese label of a field (``客户状态`` for ``customer_status``); the name when unknown."""
    if not field:
        return ""
    spec = d.entities.get(entity) if d is not None else None
    f = spec.fields.get(field) if spec is not None else None
    return f.label if f is not None else field


def yuan(value: Any) -> str:
    """An amount in yuan as staff read it: ``¥11,440,100.00`` (text that is no number is returned as is)."""
    if value is None or isinstance(value, bool):
        return "-"
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(amount) or math.isinf(amount):
        return "-"
    return f"-¥{-amount:,.2f}" if amount < 0 else f"¥{amount:,.2f}"


def number(value: Any) -> str:
    """A count with thousands separators (``1,303``); a fraction keeps one decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return show_value(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def is_amount_figure(key: str) -> bool:
    return "amount" in key


def headline(
    figures: Mapping[str, Any] | None, amounts_visible: bool, limit: int = 8
) -> list[tuple[str, str]]:
    """``(label, value)`` of a report's headline figures, known ones first in a fixed order.

    Amounts are ``¥`` with separators; a viewer whose role may not see contract
    amounts gets 「无权查看」 instead of the figure.
    """
    figures = figures or {}

    def text(key: str, value: Any) -> str:
        if is_amount_figure(key):
            return yuan(value) if amounts_visible else HIDDEN
        if key == "as_of":
            try:
                return local_time(datetime.fromisoformat(str(value)), with_seconds=False)
            except ValueError:
                return show_value(value)
        if key.startswith("sync_lag_minutes"):
            return f"{number(value)} 分钟"
        return number(value)

    rows = [
        (label, text(key, figures[key]))
        for key, label in FIGURE_LABELS.items()
        if key in figures and figures[key] is not None
    ]
    return rows[:limit]


HIDDEN = "无权查看"

# Counts of run summaries (sync, data health, report) and migration runs: what staff read.
COUNT_LABELS = {
    "read": "读取",
    "extracted": "读取",
    "staged": "入库快照",
    "changed": "有变化",
    "new": "新记录",
    "unchanged": "无变化",
    "created": "新建",
    "updated": "更新",
    "written": "写入",
    "sent": "发送",
    "skipped": "跳过",
    "deferred": "推迟",
    "quarantined": "隔离",
    "released": "释放",
    "failed": "失败",
    "api_calls": "接口调用",
    "api_calls_by_endpoint": "接口调用（按系统）",
    "cleaned": "清洗",
    "merged": "合并去重",
    "linked": "关联",
    "unlinked": "未关联",
    "written_back": "回写",
    "archived": "归档",
    "enqueued": "排队待发送",
    "due": "到期待处理",
    "debounced": "等待静默期",
    "retried": "重试",
    "held_in_quarantine": "仍在隔离区",
    "instances_created": "新建审批",
    "notices_sent": "发送通知",
    "writebacks": "回写",
    "writebacks_failed": "回写失败",
    "writebacks_deferred": "回写推迟",
    "writebacks_rejected": "回写被拒",
    "status_changed": "状态变化",
    "discovered": "新发现",
    "listed": "列出",
    "refreshed": "刷新",
    "checks": "规则",
    "failed_checks": "未通过规则",
    "evaluated": "校验行数",
    "failed_rows": "问题行数",
    "notices": "通知",
    "quarantined_owner_not_in_oa": "隔离：负责人不在 OA",
    "quarantined_vendor_rejected": "隔离：对方拒绝",
    "quarantined_hostile_input": "隔离：可疑内容",
    "skipped_no_id": "跳过：无编号",
    "conflicts": "冲突",
    "deals_read": "读取商机",
    "deals_scanned": "检查商机",
    # data health runs
    "planned": "计划检查",
    "unresolved_owners": "未找到的数据责任人",
    "departments_without_email": "无邮箱的部门",
    "overall_score": "总分",
    "seconds": "耗时（秒）",
    "rows": "行数",
    # CRM → OA extract and load decisions
    "baseline_only": "仅建基线（早于首次回补范围）",
    "problems_not_for_oa": "有问题但无需发往 OA",
    "decision_initiation_stage": "决定：到达立项阶段",
    "decision_not_initiation_stage": "决定：未到立项阶段",
    "decision_amount_unchanged": "决定：金额未变",
    "decision_amount_changed": "决定：金额变化，发通知",
    "decision_no_amount": "决定：尚无金额",
    "decision_blocked_by_problems": "决定：数据有问题暂缓",
    "decision_intent_without_stage": "决定：核对未完成的提交",
    "decision_link_without_amount": "决定：补记已发送金额",
    "decision_project_deleted": "决定：立项已删除",
    "decision_resume_notice": "决定：续发变更通知",
    # CRM → OA: deals archived or merged in the CRM
    "decision_no_project": "决定：无立项申请",
    "decision_archive_already_handled": "决定：归档已处理",
    "decision_archived_pending": "决定：商机已归档，撤回审批中的立项申请",
    "decision_archived_approved": "决定：商机已归档，通知财务立项作废",
    "decision_archived_rejected": "决定：商机已归档，立项已驳回（仅标记）",
    "decision_archived_canceled": "决定：商机已归档，立项已撤回（仅标记）",
    "decision_archived_deleted": "决定：商机已归档，立项已删除（仅标记）",
    "decision_archived_reverted": "决定：商机已归档，立项已撤销（仅标记）",
    "decision_archived_instance_missing": "决定：商机已归档，立项申请已不存在（仅标记）",
    "decision_resume_withdraw": "决定：续办撤回",
    "decision_resume_void_notice": "决定：续发作废通知",
    "archive_passes": "归档巡检轮次",
    "archived_read": "读取已归档商机",
    "archived_tombstoned": "标记为已归档",
    "archived_restored": "已恢复的商机",
    "archived_withdrawn": "撤回的立项申请",
    "archived_notices_sent": "发出的作废通知",
    "archived_marked": "仅标记的立项申请",
    "merged_projects_settled": "合并后处理的立项申请",
    "archive_passes_company": "归档巡检轮次（客户）",
    "archive_passes_contact": "归档巡检轮次（联系人）",
    "archived_read_company": "读取已归档客户",
    "archived_read_contact": "读取已归档联系人",
    "archived_tombstoned_company": "标记为已归档的客户",
    "archived_tombstoned_contact": "标记为已归档的联系人",
    "archived_restored_company": "已恢复的客户",
    "archived_restored_contact": "已恢复的联系人",
    "archived_company_live_projects": "客户已归档、立项申请仍有效的商机",
    "archive_comments_posted": "撤回原因已评论到审批实例",
    "archive_comments_failed": "撤回原因评论失败（撤回已完成）",
    "companies_read_on_demand": "按需读取客户",
    "deal_archived_in_crm": "跳过：商机已在 CRM 删除（归档）",
    "nothing": "无需处理",
    # attachments (docs/attachments.md)
    "attachments_uploaded": "附件：已上传",
    "attachments_bytes_uploaded": "附件：上传字节数",
    "attachments_deduplicated": "附件：内容已存在，仅关联",
    "attachments_reused": "附件：沿用已上传文件",
    "attachments_known": "附件：已识别，无需下载",
    "attachments_linked": "附件：已关联到记录",
    "attachments_filed": "附件：随立项申请提交",
    "attachments_not_contract": "附件：非合同文件，跳过",
    "attachments_held_in_quarantine": "附件：隔离中，跳过",
    "attachments_quarantined": "附件：隔离",
    "attachments_quarantined_executable": "附件隔离：可执行程序",
    "attachments_quarantined_wrong_kind": "附件隔离：类型不允许",
    "attachments_quarantined_too_large": "附件隔离：文件过大",
    "attachments_quarantined_truncated": "附件隔离：下载中断",
    "attachments_quarantined_unavailable": "附件隔离：源文件不可下载",
    "attachments_quarantined_vendor_refused": "附件隔离：对方系统拒收",
    "attachments_quarantined_checksum": "附件隔离：校验值不一致",
    "attachments_quarantined_supplement_pending": "附件隔离：待补充到已提交的立项申请",
    "attachments_supplement_pending": "附件：待补充到已提交的立项申请",
    "attachments_projects_checked": "附件：检查的已提交立项申请",
    "attachments_pending": "附件：系统不可用，立项申请未带附件",
    "attachments_deferred": "附件：系统不可用，稍后重试",
    "attachments_not_attached": "附件：未能加入备注",
    "attachments_supplement_deferred": "附件：补充检查推迟",
    "attachments_supplement_comments": "附件：已在立项申请评论中提醒补充",
    "attachments_supplement_comment_failed": "附件：补充提醒评论失败",
    "attachments_skipped_no_oa": "附件：未连接 OA，跳过",
}


COUNT_PREFIXES = {
    "read_": "读取",
    "quarantined_": "隔离：",
    "associated_": "关联",
    "skipped_": "跳过：",
    "decision_": "决定：",
    "merged_": "合并：",
    "archived_": "已归档：",
    "voided_": "已作废：",
    "written_": "写入",
}
PLURAL_LABELS = {"companies": "客户", "notes": "备注", "meetings": "会议"}


def count_label(code: str) -> str:
    """The Chinese label of a count: known names, then ``read_deal`` → 读取商机, else the code itself."""
    if code in COUNT_LABELS:
        return COUNT_LABELS[code]
    for prefix, word in COUNT_PREFIXES.items():
        rest = code[len(prefix) :]
        if code.startswith(prefix) and rest:
            thing = ENTITY_LABELS.get(rest) or REASON_LABELS.get(rest) or RUN_STATUS_LABELS.get(rest)
            if thing is None and rest.endswith("s"):
                thing = ENTITY_LABELS.get(rest[:-1]) or PLURAL_LABELS.get(rest)
            if thing:
                return word + thing
    return code


def count_rows(counts: Mapping[str, Any] | None, limit: int = 16) -> list[tuple[str, str, str]]:
    """``(label, code, value)`` rows of a run's counts for a small table; nested counts are summed per key.

    Never a Python repr: a nested mapping shows its total, a list its length.
    """
    rows: list[tuple[str, str, str]] = []
    for key, value in (counts or {}).items():
        code = str(key)
        label = count_label(code)
        if isinstance(value, Mapping):
            if code == "api_calls_by_endpoint":
                for system, calls in value.items():
                    total = _total(calls)
                    rows.append((f"接口调用（{str(system).upper()}）", f"{code}.{system}", number(total)))
                continue
            rows.append((label, code, number(_total(value))))
        elif isinstance(value, list | tuple):
            rows.append((label, code, number(len(value))))
        else:
            rows.append((label, code, number(value)))
    if len(rows) > limit:
        rest = len(rows) - limit
        rows = [*rows[:limit], ("其余项目", "", f"另 {rest} 项")]
    return rows


def _total(value: Any) -> float:
    if isinstance(value, Mapping):
        return sum(_total(v) for v in value.values())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def run_seconds(started: datetime | None, finished: datetime | None) -> float | None:
    """How long a run took; None while it runs or when the times are missing."""
    if started is None or finished is None:
        return None
    return max(0.0, (finished - started).total_seconds())


def counts_text(counts: Mapping[str, Any] | None, limit: int = 12) -> str:
    """``读取 42，新建 7`` for one line of text (the pages use :func:`count_rows` tables)."""
    rows = count_rows(counts, limit)
    return "，".join(f"{label} {value}" for label, _, value in rows) if rows else "-"


# ---------------------------------------------------------------- trends


@dataclass(frozen=True)
class Trend:
    """A 0..100 score over days, drawn as an SVG polyline (no script, no external asset)."""

    points: str  # "x,y x,y ..." for <polyline points=...>
    latest: float | None
    previous: float | None
    days: int  # days with a value

    @property
    def delta(self) -> float | None:
        if self.latest is None or self.previous is None:
            return None
        return round(self.latest - self.previous, 1)


def trend(
    series: Mapping[date, float], end: date, days: int = 30, width: int = 120, height: int = 28
) -> Trend:
    """The last ``days`` days up to ``end`` of a score series as polyline points.

    Days without a value are skipped (the line joins the neighbours); a score
    is clamped into 0..100 so a bad row cannot draw outside the box. The box
    spans ``floor`` (80, or lower in steps of 10 to fit the lowest score) to
    100, so the day-to-day movement of good scores stays visible.
    """
    start = end - timedelta(days=days - 1)
    values = sorted((d, min(100.0, max(0.0, float(v)))) for d, v in series.items() if start <= d <= end)
    step = width / max(days - 1, 1)
    floor = min([80.0] + [math.floor(v / 10) * 10.0 for _, v in values])
    span = max(100.0 - floor, 1.0)
    coords = []
    for day, score in values:
        x = (day - start).days * step
        y = height - (score - floor) / span * height
        coords.append(f"{x:.1f},{y:.1f}")
    latest = values[-1][1] if values else None
    previous = values[-2][1] if len(values) >= 2 else None
    return Trend(points=" ".join(coords), latest=latest, previous=previous, days=len(values))


# ---------------------------------------------------------------- paging


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_row(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """The query string of ``params`` with ``changes`` applied; empty values dropped."""
    from urllib.parse import urlencode

    merged = {**params, **changes}
    return urlencode([(k, str(v)) for k, v in merged.items() if v not in (None, "")])


def first_lines(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_class(score: float | None) -> str:
    """CSS class of a health score: good ≥ 95, fair ≥ 80, else poor."""
    if score is None:
        return "muted"
    if score >= 95:
        return "good"
    if score >= 80:
        return "fair"
    return "poor"


def lag_class(seconds: float | None, warn: float = 300, alarm: float = 3600) -> str:
    """CSS class of a lag: the sync promise is 5 minutes."""
    if seconds is None:
        return "muted"
    if seconds <= warn:
        return "good"
    if seconds <= alarm:
        return "fair"
    return "poor"

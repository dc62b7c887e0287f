"""Object types, property definitions and value rules of the simulated portal (pure).

HubSpot stores every property value as a string and validates writes against
the property's type: unknown names, read-only properties, enumeration values
that are not options, numbers and datetimes that do not parse are refused
with ``VALIDATION_ERROR``. Seeded data is *not* validated: the demo world's
dirty records (e.g. dealstage ``legacy_stage_7``) are stored and read back as
they are, because real portals hold such values too (options deleted after
use, imports, older integrations).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.common.world import Employee
from sandbox.crm.journey_model import (
    CONTACT_SOURCE_PROPERTIES,
    FEEDBACK_ASSOCIATIONS,
    FEEDBACK_DEFAULT_PROPERTIES,
    FEEDBACK_PROPERTIES,
    FEEDBACK_QUERY_PROPERTIES,
    FEEDBACK_TYPE,
    PropertySpec,
)

# ------------------------------------------------------------------ object types


@dataclass(frozen=True)
class ObjectType:
    name: str  # plural, as in the URL: deals
    code: int  # numeric part of HubSpot's object type id (0-3 -> 3); the storage key
    singular: str
    label: str

    @property
    def type_id(self) -> str:
        return f"0-{self.code}"


OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (
    ObjectType("contacts", 1, "contact", "联系人"),
    ObjectType("companies", 2, "company", "公司"),
    ObjectType("deals", 3, "deal", "交易"),
    ObjectType("tasks", 27, "task", "任务"),
    ObjectType("notes", 46, "note", "备注"),
    ObjectType("meetings", 47, "meeting", "会议"),
    ObjectType(*FEEDBACK_TYPE),  # read-only through the API: sandbox.crm.marketing
)}
BY_CODE = {t.code: t for t in OBJECT_TYPES.values()}
_ALIASES: dict[str, ObjectType] = {}
for _t in OBJECT_TYPES.values():
    for _alias in (_t.name, _t.singular, _t.type_id):
        _ALIASES[_alias] = _t
ENGAGEMENTS = {"notes", "meetings", "tasks", "feedback_submissions"}  # their create date is hs_createdate


def resolve_type(raw: str) -> ObjectType | None:
    """``deals``, ``deal`` and ``0-3`` all name the deals object, as on HubSpot."""
    return _ALIASES.get(raw.lower())


# ------------------------------------------------------------------ associations
# (from, to) -> (default unlabeled type id, primary type id or None); HubSpot-defined ids.
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1), ("companies", "contacts"): (280, 2),
    ("deals", "companies"): (341, 5), ("companies", "deals"): (342, 6),
    ("deals", "contacts"): (3, None), ("contacts", "deals"): (4, None),
    ("notes", "contacts"): (202, None), ("contacts", "notes"): (201, None),
    ("notes", "companies"): (190, None), ("companies", "notes"): (189, None),
    ("notes", "deals"): (214, None), ("deals", "notes"): (213, None),
    ("meetings", "contacts"): (200, None), ("contacts", "meetings"): (199, None),
    ("meetings", "companies"): (188, None), ("companies", "meetings"): (187, None),
    ("meetings", "deals"): (212, None), ("deals", "meetings"): (211, None),
    ("tasks", "contacts"): (204, None), ("contacts", "tasks"): (203, None),
    ("tasks", "companies"): (192, None), ("companies", "tasks"): (191, None),
    ("tasks", "deals"): (216, None), ("deals", "tasks"): (215, None),
    **FEEDBACK_ASSOCIATIONS,
}
# type id -> (from, to, is_primary)
ASSOCIATION_BY_ID: dict[int, tuple[str, str, bool]] = {}
for (_from, _to), (_default_id, _primary_id) in ASSOCIATION_TYPES.items():
    ASSOCIATION_BY_ID[_default_id] = (_from, _to, False)
    if _primary_id is not None:
        ASSOCIATION_BY_ID[_primary_id] = (_from, _to, True)


def association_types_v4(from_type: str, to_type: str, primary: bool,
                         labels: Iterable[tuple[int, str]] = ()) -> list[dict[str, Any]]:
    """``associationTypes`` of a v4 answer: the Primary label (if any), the unlabeled default, and the
    portal's own (USER_DEFINED) labels of this pair."""
    default, prim = ASSOCIATION_TYPES[(from_type, to_type)]
    out: list[dict[str, Any]] = []
    if primary and prim is not None:
        out.append({"category": "HUBSPOT_DEFINED", "typeId": prim, "label": "Primary"})
    out.append({"category": "HUBSPOT_DEFINED", "typeId": default, "label": None})
    out.extend({"category": "USER_DEFINED", "typeId": type_id, "label": label} for type_id, label in labels)
    return out


def association_names_v3(from_type: str, to_type: str, primary: bool) -> list[str]:
    """``type`` strings of the v3 ``associations`` block (``deal_to_company``, ``..._unlabeled``)."""
    f, t = OBJECT_TYPES[from_type].singular, OBJECT_TYPES[to_type].singular
    _, prim = ASSOCIATION_TYPES[(from_type, to_type)]
    if prim is None:
        return [f"{f}_to_{t}"]
    return ([f"{f}_to_{t}"] if primary else []) + [f"{f}_to_{t}_unlabeled"]


# ------------------------------------------------------------------ properties


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str  # string | number | datetime | date | enumeration | bool
    field_type: str  # text | textarea | number | date | select | radio | booleancheckbox | phonenumber
    group: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    unique: bool = False
    read_only: bool = False
    custom: bool = False
    description: str = ""
    column: str | None = None  # server-maintained column (id, created_ms, modified_ms)


DEAL_STAGES: tuple[tuple[str, str, str], ...] = (
    # HubSpot default pipeline internal values + the portal's custom "delivered" stage; (value, label, probability)
    ("appointmentscheduled", "已安排约见", "0.2"),
    ("qualifiedtobuy", "符合购买条件", "0.4"),
    ("presentationscheduled", "已安排演示", "0.6"),
    ("decisionmakerboughtin", "决策者认同", "0.8"),
    ("contractsent", "已发送合同", "0.9"),
    ("closedwon", "成交", "1.0"),
    ("delivered", "已交付", "1.0"),
    ("closedlost", "丢单", "0.0"),
)
LIFECYCLE = (("subscriber", "订阅者"), ("lead", "潜在客户"), ("marketingqualifiedlead", "营销认可潜在客户"),
             ("salesqualifiedlead", "销售认可潜在客户"), ("opportunity", "意向客户"), ("customer", "成交客户"),
             ("evangelist", "推广者"), ("other", "其他"))
APPROVAL_STATUS = (("PENDING", "审批中"), ("APPROVED", "已通过"), ("REJECTED", "已拒绝"),
                   ("CANCELED", "已撤回"), ("DELETED", "已删除"), ("REVERTED", "已撤销"))
PROJECT_STAGE = (("initiated", "立项"), ("executing", "执行"), ("closed", "结项"))
ACTIVITY_TYPES = (("expense_claim", "费用报销"), ("travel_request", "差旅申请"), ("visit_plan", "客户拜访计划"))


def _p(name: str, label: str, type_: str = "string", field_type: str = "text", group: str = "info",
       **kw: Any) -> PropertyDef:
    return PropertyDef(name, label, type_, field_type, group, **kw)


def _oa_common() -> list[PropertyDef]:
    return [
        _p("oa_instance_code", "OA 审批实例编号", group="oa", unique=True, custom=True,
           description="Feishu instance_code of the OA approval this activity came from (unique)"),
        _p("oa_activity_type", "OA 活动类型", "enumeration", "select", "oa", options=ACTIVITY_TYPES, custom=True),
        _p("oa_amount", "OA 金额", "number", "number", "oa", custom=True),
        _p("oa_applicant", "OA 申请人", group="oa", custom=True),
        _p("oa_purpose", "OA 事由", "string", "textarea", "oa", custom=True),
    ]


def _base(created: str) -> list[PropertyDef]:
    out = [
        _p("hs_object_id", "Record ID", "number", "number", read_only=True, column="id"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True, column="modified_ms"),
    ]
    if created == "createdate":  # companies, contacts, deals: HubSpot lists the ids a record absorbed by merges
        out.append(_p("hs_merged_object_ids", "Merged record IDs", "enumeration", "checkbox", read_only=True))
    out.append(_p(created, "Create Date", "datetime", "date", column="created_ms"))
    return out


def _journey(specs: Iterable[PropertySpec], group: str) -> list[PropertyDef]:
    """The journey's HubSpot-defined properties (``sandbox.crm.journey_model``)."""
    return [_p(name, label, type_, field, group, options=options, read_only=read_only)
            for name, label, type_, field, options, read_only in specs]


def build_properties(owners: list[Employee]) -> dict[str, dict[str, PropertyDef]]:
    """Default + custom properties per object type. ``hubspot_owner_id`` options are the owners."""
    owner_opts = tuple((e.owner_id or "", e.name) for e in owners if e.owner_id)
    owner = _p("hubspot_owner_id", "负责人", "enumeration", "select", options=owner_opts)
    companies = [
        *_base("createdate"), owner,
        _p("name", "公司名称"), _p("domain", "公司域名"), _p("website", "网站"),
        _p("industry", "行业", description="free text in this portal (HubSpot's default is an enumeration)"),
        _p("city", "城市"), _p("state", "省份"), _p("country", "国家"), _p("zip", "邮编"),
        _p("address", "地址"), _p("phone", "电话", field_type="phonenumber"), _p("description", "描述", field_type="textarea"),
        _p("lifecyclestage", "生命周期阶段", "enumeration", "radio", options=LIFECYCLE),
        _p("numberofemployees", "员工人数", "number", "number"), _p("annualrevenue", "年收入", "number", "number"),
        _p("uscc", "统一社会信用代码", group="company_information", custom=True,
           description="18-character unified social credit code"),
    ]
    contacts = [
        *_base("createdate"), owner,
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True, column="modified_ms"),
        _p("firstname", "名"), _p("lastname", "姓"), _p("email", "电子邮件"),
        _p("mobilephone", "手机号码", field_type="phonenumber"), _p("phone", "电话", field_type="phonenumber"),
        _p("jobtitle", "职位"), _p("company", "公司名称"), _p("city", "城市"),
        _p("associatedcompanyid", "主要公司 ID", "number", "number"),
        _p("lifecyclestage", "生命周期阶段", "enumeration", "radio", options=LIFECYCLE),
        *_journey(CONTACT_SOURCE_PROPERTIES, "analyticsinformation"),
    ]
    deals = [
        *_base("createdate"), owner,
        _p("dealname", "交易名称"),
        _p("dealstage", "交易阶段", "enumeration", "radio", options=tuple((v, lbl) for v, lbl, _ in DEAL_STAGES)),
        _p("pipeline", "渠道", "enumeration", "select", options=(("default", "销售渠道"),)),
        _p("amount", "金额", "number", "number"),
        _p("closedate", "成交日期", "datetime", "date"),
        _p("deal_currency_code", "货币", "enumeration", "select",
           options=(("CNY", "人民币"), ("USD", "美元"), ("EUR", "欧元"), ("HKD", "港币"))),
        _p("dealtype", "交易类型", "enumeration", "radio",
           options=(("newbusiness", "新业务"), ("existingbusiness", "现有业务"))),
        _p("description", "描述", field_type="textarea"),
        _p("oa_instance_code", "OA 立项审批实例编号", group="oa", custom=True),
        _p("oa_project_no", "OA 项目编号", group="oa", custom=True),
        _p("oa_approval_status", "OA 审批状态", "enumeration", "select", "oa", options=APPROVAL_STATUS, custom=True),
        _p("oa_decision_time", "OA 审批时间", "datetime", "date", "oa", custom=True),
        _p("oa_project_stage", "OA 项目阶段", "enumeration", "select", "oa", options=PROJECT_STAGE, custom=True),
    ]
    notes = [
        *_base("hs_createdate"), owner,
        _p("hs_timestamp", "活动日期", "datetime", "date"),
        _p("hs_note_body", "备注内容", field_type="textarea"),
        _p("hs_attachment_ids", "附件 ID"),
        *_oa_common(),
    ]
    meetings = [
        *_base("hs_createdate"), owner,
        _p("hs_timestamp", "活动日期", "datetime", "date"),
        _p("hs_meeting_title", "会议标题"), _p("hs_meeting_body", "会议描述", field_type="textarea"),
        _p("hs_internal_meeting_notes", "内部备注", field_type="textarea"),
        _p("hs_meeting_location", "会议地点"),
        _p("hs_meeting_start_time", "开始时间", "datetime", "date"),
        _p("hs_meeting_end_time", "结束时间", "datetime", "date"),
        _p("hs_meeting_outcome", "会议结果", "enumeration", "select",
           options=(("SCHEDULED", "已安排"), ("COMPLETED", "已完成"), ("RESCHEDULED", "已改期"),
                    ("NO_SHOW", "未出席"), ("CANCELED", "已取消"))),
        *_oa_common(),
    ]
    tasks = [
        *_base("hs_createdate"), owner,
        _p("hs_timestamp", "截止日期", "datetime", "date"),
        _p("hs_task_subject", "任务标题"), _p("hs_task_body", "任务说明", field_type="textarea"),
        _p("hs_task_status", "任务状态", "enumeration", "select",
           options=(("NOT_STARTED", "未开始"), ("IN_PROGRESS", "进行中"), ("WAITING", "等待中"),
                    ("COMPLETED", "已完成"), ("DEFERRED", "已推迟"))),
        _p("hs_task_priority", "优先级", "enumeration", "select",
           options=(("LOW", "低"), ("MEDIUM", "中"), ("HIGH", "高"))),
        _p("hs_task_type", "任务类型", "enumeration", "select",
           options=(("CALL", "电话"), ("EMAIL", "邮件"), ("TODO", "待办"))),
    ]
    return {name: {p.name: p for p in props} for name, props in (
        ("companies", companies), ("contacts", contacts), ("deals", deals),
        ("notes", notes), ("meetings", meetings), ("tasks", tasks),
        ("feedback_submissions", [*_base("hs_createdate"), *_journey(FEEDBACK_PROPERTIES, "feedback_submission_information")]),
    )}


# Properties returned when a request names none (HubSpot's defaults per object).
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "meetings": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "tasks": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "feedback_submissions": FEEDBACK_DEFAULT_PROPERTIES,
}
# Engagements cannot be created without a timestamp on HubSpot.
REQUIRED_ON_CREATE: dict[str, tuple[str, ...]] = {"notes": ("hs_timestamp",), "meetings": ("hs_timestamp",),
                                                  "tasks": ("hs_timestamp",)}
# Free-text search (``query``) looks at these, as HubSpot's default searchable properties.
QUERY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("name", "domain", "website", "phone"),
    "contacts": ("firstname", "lastname", "email", "phone", "mobilephone", "company"),
    "deals": ("dealname",),
    "notes": ("hs_note_body",), "meetings": ("hs_meeting_title", "hs_meeting_body"), "tasks": ("hs_task_subject",),
    "feedback_submissions": FEEDBACK_QUERY_PROPERTIES,
}


def property_json(p: PropertyDef, created_iso: str) -> dict[str, Any]:
    """One entry of ``GET /crm/v3/properties/{objectType}``."""
    return {
        "name": p.name, "label": p.label, "type": p.type, "fieldType": p.field_type,
        "description": p.description, "groupName": p.group,
        "options": [{"label": lbl, "value": v, "displayOrder": i, "hidden": False, "description": ""}
                    for i, (v, lbl) in enumerate(p.options)],
        "displayOrder": -1, "calculated": False, "externalOptions": p.name == "hubspot_owner_id",
        "hasUniqueValue": p.unique, "hidden": False, "hubspotDefined": not p.custom,
        "modificationMetadata": {"archivable": p.custom, "readOnlyDefinition": not p.custom,
                                 "readOnlyValue": p.read_only},
        "formField": not p.read_only, "createdAt": created_iso, "updatedAt": created_iso, "archived": False,
        "dataSensitivity": "non_sensitive",
    }


# ------------------------------------------------------------------ time

_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


_DAYS: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """HubSpot's datetime wire format: ISO 8601 UTC, milliseconds, ``Z``.

    Called three times per record on every read, so the calendar day is cached
    and the time of day is plain arithmetic.
    """
    day, rem = divmod(ms, 86_400_000)
    date = _DAYS.get(day)
    if date is None:
        date = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")
        if len(_DAYS) < 200_000:
            _DAYS[day] = date
    sec, milli = divmod(rem, 1000)
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return f"{date}{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"


def parse_time_ms(raw: str) -> int | None:
    """Epoch milliseconds from HubSpot's accepted inputs: epoch-ms digits or ISO 8601 (date or datetime)."""
    s = raw.strip()
    if not s:
        return None
    if s.lstrip("-").isdigit():
        return int(s)
    if not _ISO_RE.match(s):
        return None
    try:
        if len(s) == 10:
            dt = datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        return None
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def parse_number(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except (ValueError, AttributeError):
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


# ------------------------------------------------------------------ validation


@dataclass
class Validated:
    properties: dict[str, str] = field(default_factory=dict)  # stored (non-column) properties
    created_ms: int | None = None  # createdate written by the client
    errors: list[dict[str, Any]] = field(default_factory=list)


def _wire(value: Any) -> str:
    """A JSON value as HubSpot stores it: numbers and booleans as their strings, null clears."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _invalid(name: str, message: str, code: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name, "localizedErrorMessage": message}


def _options_text(p: PropertyDef) -> str:
    parts = [f'label: "{lbl}"\nvalue: "{v}"\ndisplay_order: {i}\nhidden: false\nread_only: false\n'
             for i, (v, lbl) in enumerate(p.options)]
    return "[" + ", ".join(parts) + "]"


def validate(defs: dict[str, PropertyDef], raw: Any, *, creating: bool, object_type: str) -> Validated:
    """Check and normalise written properties the way HubSpot does (errors collected, not raised)."""
    out = Validated()
    if not isinstance(raw, dict):
        out.errors.append(_invalid("properties", "properties must be an object of property names to values",
                                   "INVALID_INPUT"))
        return out
    for name, value in raw.items():
        p = defs.get(name)
        if p is None:
            out.errors.append(_invalid(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"))
            continue
        if isinstance(value, (dict, list)):
            out.errors.append(_invalid(name, f"{value!r} is not a valid value for {name}", "INVALID_INPUT"))
            continue
        text = _wire(value)
        if p.column == "created_ms":
            ms = parse_time_ms(text)
            if ms is None:
                out.errors.append(_invalid(name, f"{text} is not a valid datetime value", "INVALID_DATETIME"))
            else:
                out.created_ms = ms
            continue
        if p.read_only:
            out.errors.append(_invalid(name, f"{name} is a read only property; its value cannot be set.",
                                       "READ_ONLY_VALUE"))
            continue
        if text == "":
            out.properties[name] = ""
            continue
        if p.type == "enumeration":
            if text not in {v for v, _ in p.options}:
                out.errors.append(_invalid(name, f"{text} was not one of the allowed options: {_options_text(p)}",
                                           "INVALID_OPTION"))
                continue
        elif p.type == "number":
            if parse_number(text) is None:
                out.errors.append(_invalid(name, f"{text} was not a valid number.", "INVALID_DECIMAL"))
                continue
            text = text.strip()
        elif p.type in ("datetime", "date"):
            ms = parse_time_ms(text)
            if ms is None:
                out.errors.append(_invalid(name, f"{text} is not a valid {p.type} value", "INVALID_DATETIME"))
                continue
            text = iso_ms(ms) if p.type == "datetime" else iso_ms(ms)[:10]
        elif p.type == "bool":
            if text.lower() not in ("true", "false"):
                out.errors.append(_invalid(name, f"{text} is not a valid boolean", "INVALID_BOOLEAN"))
                continue
            text = text.lower()
        out.properties[name] = text
    if creating:
        for name in REQUIRED_ON_CREATE.get(object_type, ()):
            if not out.properties.get(name):
                out.errors.append(_invalid(name, f'Property "{name}" is required', "REQUIRED_FIELD"))
    return out

"""Vendor records ⇄ canonical records, driven by the dictionary (pure functions).

``compile_entity`` turns an entity into a flat list of readers once, at load
time; ``from_crm`` / ``from_oa`` then run a tight loop per record: look the
raw value up, clean it with the field's format rule, translate enums through
the value map, collect :class:`Problem` s instead of raising. Nothing a vendor
sends can make these functions raise: a malformed object becomes a
``hostile_input`` problem and the caller quarantines it with its payload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from bridge.dictionary import formats
from bridge.dictionary.model import (
    HOSTILE_INPUT,
    INVALID_TRANSITION,
    MISSING_REQUIRED,
    UNMAPPED_VALUE,
    Entity,
    Field,
    Form,
    MappingResult,
    Problem,
    Template,
    ValueMap,
    Widget,
)
from bridge.hooks import feishu_codec, hubspot_codec

if TYPE_CHECKING:
    from bridge.dictionary.core import Dictionary

SYSTEM_LABELS = {"crm": "CRM", "oa": "OA"}
MAX_FORM_JSON = 4 * 1024 * 1024  # a Feishu form is a few KiB; 4 MiB is an attack, not a form


class Projector(Protocol):
    """What ``fill_form`` needs of the permission policy (``bridge.permissions.Policy``)."""

    def project(self, entity: str, record: Mapping[str, Any], role: str) -> dict[str, Any]: ...


# ---------------------------------------------------------------- value maps
def to_canonical(vmap: ValueMap, system: str, value: str) -> str | None:
    """The canonical value of a CRM/OA spelling, or None when the map has no such value."""
    return vmap.to_canonical(system, value)


def from_canonical(vmap: ValueMap, system: str, value: str) -> str | None:
    """The CRM/OA spelling of a canonical value, or None."""
    return vmap.from_canonical(system, value)


def label(vmap: ValueMap, value: str) -> str | None:
    """The Chinese label staff see for a canonical value."""
    return vmap.label_of(value)


def allowed_transition(vmap: ValueMap, old: str | None, new: str | None) -> bool:
    """Whether a record may move from ``old`` to ``new`` (same value and unknown old are allowed)."""
    return vmap.allowed_transition(old, new)


# ---------------------------------------------------------------- compiled plans
READ_VALUE, READ_ASSOCIATION, READ_DERIVE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Reader:
    """How one canonical field is read from a vendor record."""

    name: str
    source: str  # CRM property, OA widget id, OA attribute (without "@"), or association object type
    kind: int
    clean: Callable[[object], formats.Cleaned]
    inbound: Mapping[str, str] | None  # enum: vendor spelling → canonical
    required: bool
    field: Field
    attribute: bool = False  # OA: an instance attribute, not a widget


@dataclass(frozen=True)
class EntityPlan:
    """Everything mapping needs about one entity, precomputed."""

    entity: Entity
    readers: tuple[Reader, ...]
    derives: tuple[tuple[str, Template], ...]
    crm_properties: tuple[str, ...]
    hash_fields: tuple[str, ...]
    writable: tuple[Field, ...]  # fields written by to_crm_properties


def compile_entity(entity: Entity, value_maps: Mapping[str, ValueMap]) -> EntityPlan:
    readers: list[Reader] = []
    derives: list[tuple[str, Template]] = []
    for f in entity.fields.values():
        clean = formats.FORMAT_CLEANERS[f.format] if f.format else formats.TYPE_CLEANERS[f.type]
        inbound = _inbound(value_maps[f.value_map], entity) if f.value_map else None
        if f.derive is not None:
            derives.append((f.name, f.derive))
        elif f.association:
            readers.append(Reader(f.name, f.association, READ_ASSOCIATION, clean, inbound, f.required, f))
        else:
            source = f.name if entity.read_by else (f.crm if entity.system == "crm" else f.oa) or ""
            attribute = source.startswith("@")
            readers.append(
                Reader(f.name, source.lstrip("@"), READ_VALUE, clean, inbound, f.required, f, attribute)
            )
    crm_props = sorted({f.crm for f in entity.fields.values() if f.crm})
    writable = tuple(
        f for f in entity.fields.values() if f.crm and hubspot_codec.is_writable(f.crm) and f.derive is None
    )
    return EntityPlan(entity, tuple(readers), tuple(derives), tuple(crm_props), entity.hash_fields, writable)


def _inbound(vmap: ValueMap, entity: Entity) -> Mapping[str, str]:
    """Spelling → canonical value: the system's spelling, or for a ``read_by`` entity (its hook already speaks
    canonical values; a spreadsheet may use the labels staff see) the canonical value and its label."""
    if not entity.read_by:
        return vmap.inbound(entity.system)
    return {**{v.label: v.canonical for v in vmap.values}, **{v.canonical: v.canonical for v in vmap.values}}


# ---------------------------------------------------------------- problems
def _show(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class _Problems:
    """Builds Chinese problem messages for one record (only when something is wrong)."""

    def __init__(self, d: Dictionary, entity: Entity, record_id: object) -> None:
        self.d = d
        self.entity = entity
        self.record_id = record_id
        self.system = SYSTEM_LABELS.get(entity.system, entity.system)
        self.items: list[Problem] = []

    @property
    def who(self) -> str:
        """「商机「5000…」」: the record as staff name it (built only when there is a problem)."""
        rid = self.record_id
        if isinstance(rid, str | int) and not isinstance(rid, bool) and rid != "":
            return f"{self.entity.label}「{_show(rid, 40)}」"
        return f"{self.entity.label}（编号未知）"

    def dept(self, f: Field | None) -> str:
        if f is None:
            return "数据责任人"
        department = self.d.departments.get(f.owner)
        return department.label if department else f.owner

    def add(self, code: str, f: Field | None, detail: str, value: object = None) -> None:
        shown = None if value is None else (value if isinstance(value, str) else repr(value))[:200]
        self.items.append(
            Problem(code, self.entity.name, f.name if f else None, detail, f.owner if f else None, shown)
        )

    def missing(self, f: Field) -> None:
        self.add(
            MISSING_REQUIRED,
            f,
            f"{self.who}缺少必填字段「{f.label}」（{f.name}）。请{self.dept(f)}在 {self.system} "
            "中补全，保存后下次同步会自动重试。",
        )

    def bad(self, f: Field, issue: formats.FormatIssue, value: object = None) -> None:
        if issue.code == HOSTILE_INPUT:
            self.add(HOSTILE_INPUT, f, f"{self.who}的「{f.label}」（{f.name}）收到异常数据：{issue.message}")
        else:
            self.add(
                issue.code,
                f,
                f"{self.who}的「{f.label}」（{f.name}）格式不对：{issue.message}请{self.dept(f)}在 "
                f"{self.system} 中改正。",
                value,
            )

    def unmapped(self, f: Field, value: str) -> None:
        vmap = self.d.value_maps[f.value_map or ""]
        known = "、".join(
            (getattr(v, self.entity.system) or v.canonical) + f"（{v.label}）" for v in vmap.values
        )
        self.add(
            UNMAPPED_VALUE,
            f,
            f"{self.who}的「{f.label}」（{f.name}）值「{_show(value)}」在值映射 {vmap.name} 中没有"
            f"对应项。请{self.dept(f)}改为已有的值（{known}），或由数据责任人在 include/dictionary.yaml 的 "
            f"value_maps.{vmap.name} 中添加此值。",
            value,
        )

    def hostile(self, f: Field | None, detail: str) -> None:
        where = f"的「{f.label}」（{f.name}）" if f else ""
        self.add(
            HOSTILE_INPUT, f, f"{self.who}{where}收到异常数据：{detail}记录已隔离，请检查来源系统或接口。"
        )


_SKIP = object()  # a reader already reported the value; leave the field empty without more problems


def _finish(
    plan: EntityPlan,
    record: dict[str, Any],
    problems: _Problems,
    raw: Mapping[str, Any],
    read: Callable[[Reader], Any],
) -> MappingResult:
    for r in plan.readers:
        value = read(r)
        if value is _SKIP:
            continue
        if value is None or value == "":
            if r.required:
                problems.missing(r.field)
            continue
        cleaned, issue = r.clean(value)
        if issue is not None:
            problems.bad(r.field, issue, value)
            continue
        if cleaned is None:
            if r.required:
                problems.missing(r.field)
            continue
        if r.inbound is not None:
            canonical = r.inbound.get(cleaned)
            if canonical is None:
                problems.unmapped(r.field, cleaned)
                continue
            cleaned = canonical
        record[r.name] = cleaned
    for name, template in plan.derives:
        text = template.render(lambda ref: _as_text(record.get(ref)))
        record[name] = text or None
    return MappingResult(record, problems.items)


def _as_text(value: object) -> str:
    return "" if value is None else str(value)


# ---------------------------------------------------------------- CRM → canonical
def _association_ids(associations: Any, obj: Mapping[str, Any], object_type: str) -> list[str]:
    """Associated ids from the caller's ``{to_type: [ids]}`` or the object's own v3 ``associations``."""
    if isinstance(associations, Mapping):
        found = associations.get(object_type)
    else:
        found = None
        embedded = obj.get("associations")
        if isinstance(embedded, Mapping):
            block = embedded.get(object_type)
            if isinstance(block, Mapping):
                found = [r.get("id") for r in block.get("results") or [] if isinstance(r, Mapping)]
    if isinstance(found, str | int) and not isinstance(found, bool):
        return [str(found)]
    if isinstance(found, list):
        return [str(x) for x in found if isinstance(x, str | int) and not isinstance(x, bool)]
    return []


def _not_an_object(d: Dictionary, entity: Entity, what: str, value: object) -> MappingResult:
    """The empty record and its one problem when a vendor sent something else than a JSON object."""
    problems = _Problems(d, entity, None)
    problems.hostile(None, f"{what}应为 JSON 对象，收到 {type(value).__name__}。")
    return MappingResult(dict.fromkeys(entity.fields), problems.items)


def from_crm(d: Dictionary, plan: EntityPlan, obj: Any, associations: Any = None) -> MappingResult:
    entity = plan.entity
    if not isinstance(obj, Mapping):
        return _not_an_object(d, entity, "CRM 对象", obj)
    record: dict[str, Any] = dict.fromkeys(entity.fields)
    props = hubspot_codec.object_properties(obj)
    problems = _Problems(d, entity, hubspot_codec.object_id(obj))
    if not isinstance(props, Mapping):
        problems.hostile(None, f"CRM 对象缺少 properties 或类型错误（{type(props).__name__}）。")
        props = {}

    def read(r: Reader) -> Any:
        if r.kind == READ_ASSOCIATION:
            ids = _association_ids(associations, obj, r.source)
            return ids[0] if ids else None
        value = hubspot_codec.property_value(obj, props, r.source)
        if value is None or type(value) is str:
            return value
        problems.hostile(r.field, f"HubSpot 属性 {r.source} 应为字符串，收到 {type(value).__name__}。")
        return _SKIP

    return _finish(plan, record, problems, props, read)


# ---------------------------------------------------------------- named values → canonical
def from_values(d: Dictionary, plan: EntityPlan, values: Any) -> MappingResult:
    """A ``read_by`` entity's record from ``{field name: value}`` (a hook's typed record, a spreadsheet row):
    the same cleaners, value maps and required checks as a vendor record."""
    entity = plan.entity
    if not isinstance(values, Mapping):
        return _not_an_object(d, entity, "记录", values)
    record: dict[str, Any] = dict.fromkeys(entity.fields)
    problems = _Problems(d, entity, values.get(entity.id_field))

    def read(r: Reader) -> Any:
        value = values.get(r.source)
        return str(value) if isinstance(value, Decimal) else value

    return _finish(plan, record, problems, values, read)


# ---------------------------------------------------------------- OA → canonical
_FORM_PROBLEMS = {  # feishu_codec.FormError kinds, as staff read them
    "missing": "审批实例缺少 form（控件值）。",
    "too_long": "form 长度 {} 字符，超出上限。",
    "not_json": "form 不是有效的 JSON 字符串。",
    "not_a_list": "form 应为控件列表，收到 {}。",
}


def _form_values(form: object, problems: _Problems) -> dict[str, object]:
    try:
        return feishu_codec.decode_form(form, MAX_FORM_JSON)
    except feishu_codec.FormError as exc:
        problems.hostile(None, _FORM_PROBLEMS[exc.kind].format(exc.detail))
        return {}


def from_oa(d: Dictionary, plan: EntityPlan, instance: Any) -> MappingResult:
    entity = plan.entity
    if not isinstance(instance, Mapping):
        return _not_an_object(d, entity, "审批实例", instance)
    record: dict[str, Any] = dict.fromkeys(entity.fields)
    problems = _Problems(d, entity, feishu_codec.instance_code(instance))
    widgets = _form_values(feishu_codec.instance_form(instance), problems)

    def read(r: Reader) -> Any:
        if not r.attribute:
            return widgets.get(r.source)
        return feishu_codec.instance_attribute(instance, r.source)

    return _finish(plan, record, problems, instance, read)


# ---------------------------------------------------------------- hash
def content_hash(plan: EntityPlan, record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the fields owned by the entity's system (modification time excluded)."""
    payload = {name: record.get(name) for name in plan.hash_fields}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- transitions
def check_transition(
    d: Dictionary, plan: EntityPlan, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[Problem]:
    """``invalid_transition`` problems for enum fields whose change the value map does not allow."""
    if not old:
        return []
    problems = _Problems(d, plan.entity, new.get(plan.entity.id_field))
    for f in plan.entity.fields.values():
        if not f.value_map:
            continue
        vmap = d.value_maps[f.value_map]
        before, after = old.get(f.name), new.get(f.name)
        if not vmap.allowed_transition(before, after):
            allowed = "、".join(
                vmap.label_of(v) or v for v in sorted((vmap.transitions or {}).get(str(before), ()))
            )
            problems.add(
                INVALID_TRANSITION,
                f,
                f"{problems.who}的「{f.label}」不能从「{vmap.label_of(str(before))}」"
                f"变为「{vmap.label_of(str(after))}」（允许: {allowed or '无，已是终态'}）。请{problems.dept(f)}在 "
                f"{problems.system} 中核对后改回或按流程推进；如流程已变，请数据责任人修改 value_maps.{vmap.name}"
                ".transitions。",
            )
    return problems.items


# ---------------------------------------------------------------- canonical → OA form
@dataclass(frozen=True, slots=True)
class WidgetPlan:
    widget: Widget
    head: str  # deal | company | contact | notice
    name: str
    field: Field


def compile_form(form: Form, entities: Mapping[str, Entity]) -> tuple[WidgetPlan, ...]:
    plans: list[WidgetPlan] = []
    for w in form.widgets:
        if not w.source:
            continue
        head, _, name = w.source.partition(".")
        entity = entities[form.entity] if head == "notice" and form.entity else entities.get(head)
        if entity is not None and name in entity.fields:
            plans.append(WidgetPlan(w, head, name, entity.fields[name]))
    return tuple(plans)


def _project_sources(
    d: Dictionary, form: Form, sources: Mapping[str, Any], policy: Projector, role: str
) -> dict[str, dict[str, Any]]:
    projected: dict[str, dict[str, Any]] = {}
    for head, record in sources.items():
        entity = form.entity if head == "notice" else head
        if entity in d.entities and isinstance(record, Mapping):
            projected[head] = policy.project(entity, record, role)
    return projected


def widget_value(d: Dictionary, plan: WidgetPlan, value: Any) -> Any:
    """A canonical value as the Feishu widget wants it; None when it cannot be rendered."""
    w, f = plan.widget, plan.field
    if w.value_map:
        vmap = d.value_maps[w.value_map]
        canonical = value if w.value_map == f.value_map else vmap.derive(f.value_map or "", str(value))
        if canonical is None:
            return None
        return vmap.from_canonical("oa", canonical) or vmap.label_of(canonical)
    if w.type in ("amount", "number"):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return int(number) if f.type == "integer" else float(number)
    if w.type == "date":
        day, issue = formats.clean_date(value)
        return formats.date_to_rfc3339(day) if day and not issue else None
    if f.type == "enum" and f.value_map:
        return d.value_maps[f.value_map].label_of(str(value)) or str(value)
    return str(value)


def fill_form(
    d: Dictionary, form: Form, plans: tuple[WidgetPlan, ...], sources: Mapping[str, Any], policy: Projector
) -> list[dict[str, Any]]:
    if form.direction != "crm_to_oa" or not form.audience:
        raise ValueError(f"form {form.name} is not an outbound (crm_to_oa) form with an audience")
    projected = _project_sources(d, form, sources, policy, form.audience)
    values: list[dict[str, Any]] = []
    for plan in plans:
        record = projected.get(plan.head)
        if record is None:
            continue
        value = record.get(plan.name)
        if value is None:
            continue
        rendered = widget_value(d, plan, value)
        if rendered is None:
            continue
        values.append(dict(feishu_codec.form_entry(plan.widget.id, plan.widget.type, rendered)))
    return values


def form_title(d: Dictionary, form: Form, sources: Mapping[str, Any], policy: Projector) -> str:
    if form.title is None:
        return form.label
    projected = _project_sources(d, form, sources, policy, form.audience or "")

    def lookup(ref: str) -> str:
        head, _, name = ref.partition(".")
        return _as_text(projected.get(head, {}).get(name))

    return form.title.render(lookup).strip() or form.label


# ---------------------------------------------------------------- canonical → CRM
def crm_value(d: Dictionary, f: Field, value: Any) -> str:
    """A canonical value as the HubSpot property string ("" clears the property)."""
    if value is None:
        return ""
    if f.value_map:
        spelled = d.value_maps[f.value_map].from_canonical("crm", str(value))
        if spelled is None:
            raise ValueError(f"field {f.name}: {value!r} is not a canonical value of value map {f.value_map}")
        return spelled
    if f.type == "amount":
        cleaned, issue = formats.clean_amount(value)
        if issue:
            raise ValueError(f"field {f.name}: {issue.message}")
        return cleaned or ""
    if f.type == "datetime":
        return formats.datetime_to_crm(str(value))
    if f.type == "date":
        return formats.date_to_crm(str(value))
    if f.type == "boolean":
        return "true" if value else "false"
    return str(value)


def to_crm_properties(d: Dictionary, plan: EntityPlan, record: Mapping[str, Any]) -> dict[str, str]:
    return {f.crm: crm_value(d, f, record[f.name]) for f in plan.writable if f.name in record and f.crm}


def activity_properties(
    d: Dictionary, oa_entity: str, record: Mapping[str, Any], policy: Projector
) -> tuple[str, dict[str, str]]:
    activity = d.crm_activities[oa_entity]
    entity = d.entities[oa_entity]
    visible = policy.project(oa_entity, record, activity.audience)

    def text(name: str) -> str:
        value = visible.get(name)
        f = entity.fields.get(name)
        if value is None or f is None:
            return ""
        if f.value_map:
            return d.value_maps[f.value_map].label_of(str(value)) or str(value)
        return str(value)

    props: dict[str, str] = {}
    for p in activity.properties:
        if p.kind == "literal":
            props[p.name] = p.literal or ""
        elif p.kind == "template" and p.template is not None:
            props[p.name] = p.template.render(text).strip()
        elif p.field is not None:
            value = visible.get(p.field)
            f = entity.fields[p.field]
            if value is None:
                continue
            if f.type == "date":  # activity times are HubSpot datetimes: midnight Asia/Shanghai
                props[p.name] = formats.date_to_crm_instant(str(value))
            elif f.type == "datetime":
                props[p.name] = formats.datetime_to_crm(str(value))
            else:
                props[p.name] = text(p.field)
    return activity.crm_object, props

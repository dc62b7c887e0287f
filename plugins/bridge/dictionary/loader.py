"""Load and validate ``include/dictionary.yaml`` into a :class:`Dictionary`.

Validation checks every reference (value maps, owners, widget sources,
widget ids, templates, activity fields), duplicates (two fields on one CRM
property or OA widget, repeated values) and types, collects *all* problems
and raises one :class:`DictionaryError` whose lines name the file, line,
entity and field and say what to change. ``load()`` caches the result per
(path, mtime, size), so a task may call it for every record batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.dictionary.core import Dictionary
from bridge.dictionary.errors import ConfigIssue, DictionaryError
from bridge.dictionary.formats import FORMAT_CLEANERS, FORMATS_FOR_TYPE
from bridge.dictionary.model import (
    FIELD_TYPES,
    SYSTEMS,
    Activity,
    ActivityProperty,
    Contents,
    Department,
    Entity,
    Field,
    Form,
    Template,
    ValueEntry,
    ValueMap,
    Widget,
)
from bridge.dictionary.yamlio import LineDict, load_yaml

# Feishu instance attributes a field may read with "@name" (approval v4 instance detail).
OA_ATTRIBUTES = frozenset(
    {
        "instance_code", "serial_number", "status", "user_id", "open_id", "department_id", "start_time",
        "end_time", "updated_at", "uuid", "approval_code", "approval_name", "reverted",
    }
)
# Feishu widget types the bridge can fill or read.
WIDGET_TYPES = frozenset(
    {"input", "textarea", "amount", "number", "date", "dateInterval", "radioV2", "checkboxV2", "contact", "department"}
)
# Widget type → field types a widget of that type can carry.
WIDGET_FIELD_TYPES: dict[str, frozenset[str]] = {
    "amount": frozenset({"amount", "integer"}),
    "number": frozenset({"amount", "integer"}),
    "date": frozenset({"date", "datetime"}),
    "radioV2": frozenset({"enum"}),
}
CRM_ACTIVITY_OBJECTS = frozenset({"notes", "meetings", "calls", "tasks", "emails"})
DIRECTIONS = ("crm_to_oa", "oa_to_crm")
CONTEXT_SOURCES = ("notice",)  # form sources that are not entities: the notice's own values

_TOP_KEYS = {"version", "timezone", "departments", "value_maps", "entities", "forms", "crm_activities"}
_ENTITY_KEYS = {
    "label", "system", "crm_object", "form", "id_field", "modified_field", "data_owner_field", "associations", "fields",
}
_FIELD_KEYS = {
    "label", "type", "format", "required", "unique", "owner", "system_of_record", "crm", "oa", "value_map",
    "derive", "association",
}
_FORM_KEYS = {"label", "direction", "audience", "title", "widgets"}
_WIDGET_KEYS = {"id", "type", "name", "source", "value_map", "required"}
_ACTIVITY_KEYS = {"crm_object", "audience", "when_status", "properties"}
_VALUE_KEYS = {"canonical", "label", "crm", "oa"}


def default_path() -> Path:
    from bridge import settings

    return settings.include_dir() / "dictionary.yaml"


def _line(node: Any, key: str | None = None) -> int | None:
    if isinstance(node, LineDict):
        return node.line_of(key) if key is not None else node.line
    return None


def _choices(names: Any) -> str:
    items = sorted(str(n) for n in names)
    return "、".join(items[:12]) + (" …" if len(items) > 12 else "") if items else "（无）"


class _Builder:
    """Builds the model and collects every issue; never raises on bad content."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)
        self.issues: list[ConfigIssue] = []
        self.broken: set[tuple[str, str]] = set()  # (entity, field) already reported: no follow-on errors

    def issue(
        self, line: int | None, message: str, entity: str | None = None, field: str | None = None
    ) -> None:
        self.issues.append(ConfigIssue(self.file, line, message, entity=entity, field=field))

    def mapping(self, node: Any, key: str, parent: Any, what: str, entity: str | None = None,
                field: str | None = None) -> LineDict | None:
        if node is None:
            return None
        if not isinstance(node, dict):
            self.issue(_line(parent, key), f"{what} 必须是映射（key: value），现在是 {type(node).__name__}。",
                       entity, field)
            return None
        return node if isinstance(node, LineDict) else LineDict(node)

    def unknown_keys(self, node: LineDict, allowed: set[str], what: str, entity: str | None = None,
                     field: str | None = None, extra_ok: tuple[str, ...] = ()) -> None:
        for key in node:
            if key not in allowed and not key.startswith(extra_ok or ("\x00",)):
                self.issue(node.line_of(key), f"{what} 中有未知的键 {key!r}；允许的键: {_choices(allowed)}（是否拼写错误？）",
                           entity, field)

    def text(self, node: LineDict, key: str, what: str, entity: str | None = None, field: str | None = None,
             required: bool = True) -> str | None:
        value = node.get(key)
        if value is None or value == "":
            if required:
                self.issue(node.line, f"{what} 缺少 {key}；请补上。", entity, field)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.issue(node.line_of(key), f"{what} 的 {key} 必须是文本，现在是 {type(value).__name__}。", entity, field)
            return None
        return str(value)

    def flag(self, node: LineDict, key: str, entity: str, field: str) -> bool:
        value = node.get(key, False)
        if not isinstance(value, bool):
            self.issue(node.line_of(key), f"{key} 必须是 true 或 false，现在是 {value!r}。", entity, field)
            return False
        return value

    # ------------------------------------------------------------ top level
    def build(self, raw: Any) -> Dictionary | None:
        if not isinstance(raw, dict):
            self.issue(None, "顶层必须是映射（version、departments、value_maps、entities、forms、crm_activities）。")
            return None
        root = raw if isinstance(raw, LineDict) else LineDict(raw)
        self.unknown_keys(root, _TOP_KEYS, "文件顶层")
        version = self.text(root, "version", "文件顶层")
        timezone = root.get("timezone", "Asia/Shanghai")
        if timezone != "Asia/Shanghai":
            self.issue(root.line_of("timezone"), f"timezone 只支持 Asia/Shanghai（业务日期按北京时间），现在是 {timezone!r}。")
        departments = self.departments(root)
        value_maps = self.value_maps(root)
        raw_forms = self.mapping(root.get("forms"), "forms", root, "forms") or LineDict()
        widget_ids = self.widget_ids(raw_forms)
        entities = self.entities(root, departments, value_maps, widget_ids)
        forms = self.forms(raw_forms, entities, value_maps)
        activities = self.activities(root, entities, value_maps)
        if self.issues or version is None:
            return None
        return Dictionary(Contents(
            path=Path(self.file), version=version, timezone=str(timezone), departments=departments,
            value_maps=value_maps, entities=entities, forms=forms, crm_activities=activities,
        ))

    def departments(self, root: LineDict) -> dict[str, Department]:
        node = self.mapping(root.get("departments"), "departments", root, "departments")
        result: dict[str, Department] = {}
        if not node:
            self.issue(root.line, "缺少 departments（数据责任部门）；每个字段的 owner 都要引用其中一个。")
            return result
        for key, spec in node.items():
            body = self.mapping(spec, key, node, f"部门 {key}")
            if body is None:
                continue
            self.unknown_keys(body, {"label", "email"}, f"部门 {key}")
            label = self.text(body, "label", f"部门 {key}")
            result[key] = Department(key, label or key, self.text(body, "email", f"部门 {key}", required=False))
        return result

    # ------------------------------------------------------------ value maps
    def value_maps(self, root: LineDict) -> dict[str, ValueMap]:
        node = self.mapping(root.get("value_maps"), "value_maps", root, "value_maps") or LineDict()
        pending: dict[str, tuple[LineDict, list[ValueEntry], LineDict | None]] = {}
        entry_lines: dict[tuple[str, str], int | None] = {}
        for name, spec in node.items():
            body = self.mapping(spec, name, node, f"值映射 {name}")
            if body is None:
                continue
            where = f"值映射 {name}"
            self.unknown_keys(body, {"label", "values", "transitions"}, where)
            self.text(body, "label", where)
            values = body.get("values")
            if not isinstance(values, list) or not values:
                self.issue(body.line_of("values"), f"{where} 的 values 必须是非空列表，每项形如 "
                           "{canonical: won, label: 成交客户, crm: customer}。")
                continue
            entries: list[ValueEntry] = []
            seen: dict[str, dict[str, int | None]] = {"canonical": {}, "label": {}, "crm": {}, "oa": {}}
            for item in values:
                if not isinstance(item, dict):
                    self.issue(body.line_of("values"), f"{where} 的每个值必须是映射，发现 {item!r}。")
                    continue
                entry = item if isinstance(item, LineDict) else LineDict(item)
                self.unknown_keys(entry, _VALUE_KEYS, where, extra_ok=("from_",))
                canonical = self.text(entry, "canonical", where)
                label = self.text(entry, "label", where)
                if canonical is None:
                    continue
                spellings = {"canonical": canonical, "label": label,
                             "crm": self.text(entry, "crm", where, required=False),
                             "oa": self.text(entry, "oa", where, required=False)}
                for key, spelled in spellings.items():
                    if spelled is None:
                        continue
                    if spelled in seen[key]:
                        self.issue(entry.line, f"{where} 中 {key} 值 {spelled!r} 重复（已在第 {seen[key][spelled]} 行）；"
                                   "每个值只能出现一次，请删除或改名。")
                    seen[key][spelled] = entry.line
                derived: dict[str, tuple[str, ...]] = {}
                for key, refs in entry.items():
                    if key.startswith("from_"):
                        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                            self.issue(entry.line_of(key), f"{where} 值 {canonical} 的 {key} 必须是值的列表，如 [contract]。")
                            continue
                        derived[key[5:]] = tuple(refs)
                entries.append(ValueEntry(canonical, label or canonical, spellings["crm"], spellings["oa"], derived))
                entry_lines[(name, canonical)] = entry.line
            transitions = self.mapping(body.get("transitions"), "transitions", body, f"{where} 的 transitions")
            pending[name] = (body, entries, transitions)
        result: dict[str, ValueMap] = {}
        for name, (body, entries, transitions) in pending.items():
            where = f"值映射 {name}"
            known = {e.canonical for e in entries}
            allowed: dict[str, frozenset[str]] | None = None
            if transitions is not None:
                allowed = {}
                for old, targets in transitions.items():
                    line = transitions.line_of(old)
                    if old not in known:
                        self.issue(line, f"{where} 的 transitions 引用了未知值 {old!r}；已知值: {_choices(known)}。")
                    if not isinstance(targets, list):
                        self.issue(line, f"{where} 的 transitions.{old} 必须是列表（终态写 []）。")
                        continue
                    for target in targets:
                        if target not in known:
                            self.issue(line, f"{where} 的 transitions.{old} 引用了未知值 {target!r}；已知值: {_choices(known)}。")
                    allowed[str(old)] = frozenset(str(t) for t in targets)
                for value in sorted(known - set(allowed)):
                    self.issue(transitions.line, f"{where} 的 transitions 缺少值 {value!r}；若它是终态请写 {value}: []。")
            for value_entry in entries:
                for source_map, source_values in value_entry.derived_from.items():
                    source = pending.get(source_map)
                    line = entry_lines.get((name, value_entry.canonical), body.line)
                    if source is None:
                        self.issue(line, f"{where} 值 {value_entry.canonical} 的 from_{source_map} 引用了不存在的值映射 "
                                   f"{source_map!r}；已有: {_choices(pending)}。")
                        continue
                    source_known = {e.canonical for e in source[1]}
                    for value in source_values:
                        if value not in source_known:
                            self.issue(line, f"{where} 值 {value_entry.canonical} 的 from_{source_map} 引用了 {source_map} "
                                       f"中不存在的值 {value!r}；已知值: {_choices(source_known)}。")
            claimed: dict[tuple[str, str], str] = {}
            for value_entry in entries:
                for source_map, source_values in value_entry.derived_from.items():
                    for value in source_values:
                        other = claimed.setdefault((source_map, value), value_entry.canonical)
                        if other != value_entry.canonical:
                            self.issue(entry_lines.get((name, value_entry.canonical), body.line), f"{where}: {source_map} 的值 {value!r} 同时对应 {other} 和 "
                                       f"{value_entry.canonical}；一个来源值只能对应一个值。")
            result[name] = ValueMap(name, str(body.get("label") or name), tuple(entries), allowed)
        return result

    # ------------------------------------------------------------ entities
    def widget_ids(self, raw_forms: LineDict) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for name, spec in raw_forms.items():
            widgets = spec.get("widgets") if isinstance(spec, dict) else None
            ids[name] = {str(w["id"]) for w in widgets or [] if isinstance(w, dict) and w.get("id")} \
                if isinstance(widgets, list) else set()
        return ids

    def entities(self, root: LineDict, departments: Mapping[str, Department], value_maps: Mapping[str, ValueMap],
                 widget_ids: Mapping[str, set[str]]) -> dict[str, Entity]:
        node = self.mapping(root.get("entities"), "entities", root, "entities")
        result: dict[str, Entity] = {}
        if not node:
            self.issue(root.line, "缺少 entities；至少要定义一个实体。")
            return result
        for name, spec in node.items():
            body = self.mapping(spec, name, node, f"实体 {name}", entity=name)
            if body is None:
                continue
            entity = self.entity(name, body, departments, value_maps, widget_ids)
            if entity is not None:
                result[name] = entity
        return result

    def entity(self, name: str, body: LineDict, departments: Mapping[str, Department],
               value_maps: Mapping[str, ValueMap], widget_ids: Mapping[str, set[str]]) -> Entity | None:
        where = f"实体 {name}"
        self.unknown_keys(body, _ENTITY_KEYS, where, entity=name)
        label = self.text(body, "label", where, entity=name)
        system = self.text(body, "system", where, entity=name)
        if system is not None and system not in SYSTEMS:
            self.issue(body.line_of("system"), f"system 必须是 crm 或 oa，现在是 {system!r}。", name)
            system = None
        crm_object = self.text(body, "crm_object", where, entity=name, required=system == "crm")
        form = self.text(body, "form", where, entity=name, required=system == "oa")
        if system == "crm" and form:
            self.issue(body.line_of("form"), "CRM 实体不能有 form；表单属于 OA 实体。", name)
        if system == "oa" and crm_object:
            self.issue(body.line_of("crm_object"), "OA 实体不能有 crm_object。", name)
        if form is not None and form not in widget_ids:
            self.issue(body.line_of("form"), f"表单 {form!r} 不存在；请在 forms 下定义，已有: {_choices(widget_ids)}。", name)
        raw_fields = self.mapping(body.get("fields"), "fields", body, f"{where} 的 fields", entity=name)
        if not raw_fields:
            self.issue(body.line, "缺少 fields（字段列表）。", name)
            return None
        fields: dict[str, Field] = {}
        for fname, fspec in raw_fields.items():
            fbody = self.mapping(fspec, fname, raw_fields, f"字段 {fname}", entity=name, field=fname)
            if fbody is None:
                continue
            built = self.field(name, system, form, fname, fbody, departments, value_maps, widget_ids)
            if built is not None:
                fields[fname] = built
            else:
                self.broken.add((name, fname))
        self.field_references(name, system, raw_fields, fields)
        for key in ("id_field", "modified_field", "data_owner_field"):
            ref = self.text(body, key, where, entity=name, required=key != "data_owner_field")
            if ref is not None and ref not in fields and ref in raw_fields:
                continue  # the field itself is broken and already reported
            if ref is not None and ref not in fields:
                self.issue(body.line_of(key), f"{key} 引用了不存在的字段 {ref!r}；已有字段: {_choices(fields)}。", name, ref)
        modified = body.get("modified_field")
        if isinstance(modified, str) and modified in fields and fields[modified].type != "datetime":
            self.issue(raw_fields.line_of(modified), "modified_field 指向的字段类型必须是 datetime。", name, modified)
        associations: dict[str, str] = {}
        raw_assoc = self.mapping(body.get("associations"), "associations", body, f"{where} 的 associations", entity=name)
        for fname, object_type in (raw_assoc or {}).items():
            target = fields.get(fname)
            if target is None:
                self.issue(raw_assoc.line_of(fname) if raw_assoc else None,
                           f"associations 引用了不存在的字段 {fname!r}。", name, fname)
            elif target.association != object_type:
                self.issue(raw_assoc.line_of(fname) if raw_assoc else None,
                           f"associations 写的是 {object_type!r}，但字段的 association 是 {target.association!r}；请改成一致。",
                           name, fname)
            associations[fname] = str(object_type)
        for fname, f in fields.items():
            if f.association and fname not in associations:
                associations[fname] = f.association
        if label is None or system is None or not fields:
            return None
        return Entity(
            name=name, label=label, system=system, id_field=str(body.get("id_field")),
            modified_field=str(body.get("modified_field")), fields=fields, crm_object=crm_object, form=form,
            data_owner_field=body.get("data_owner_field"), associations=associations, line=body.line,
        )

    def field(self, entity: str, system: str | None, form: str | None, name: str, body: LineDict,
              departments: Mapping[str, Department], value_maps: Mapping[str, ValueMap],
              widget_ids: Mapping[str, set[str]]) -> Field | None:
        where = f"字段 {name}"
        ok = True
        self.unknown_keys(body, _FIELD_KEYS, where, entity, name)
        label = self.text(body, "label", where, entity, name)
        ftype = self.text(body, "type", where, entity, name)
        if ftype is not None and ftype not in FIELD_TYPES:
            self.issue(body.line_of("type"), f"类型 {ftype!r} 未知；可用: {_choices(FIELD_TYPES)}。", entity, name)
            ok = False
        fmt = self.text(body, "format", where, entity, name, required=False)
        if fmt is not None:
            if fmt not in FORMAT_CLEANERS:
                self.issue(body.line_of("format"), f"格式 {fmt!r} 未知；可用: {_choices(FORMAT_CLEANERS)}。", entity, name)
                ok = False
            elif ftype in FORMATS_FOR_TYPE and fmt not in FORMATS_FOR_TYPE[ftype]:
                fits = _choices(FORMATS_FOR_TYPE[ftype]) if FORMATS_FOR_TYPE[ftype] else "（此类型不能带格式）"
                self.issue(body.line_of("format"), f"格式 {fmt} 不适用于类型 {ftype}；此类型可用: {fits}。", entity, name)
                ok = False
        owner = self.text(body, "owner", where, entity, name)
        if owner is not None and owner not in departments:
            self.issue(body.line_of("owner"), f"owner {owner!r} 不是 departments 中的部门；可用: {_choices(departments)}。",
                       entity, name)
            ok = False
        sor = self.text(body, "system_of_record", where, entity, name)
        if sor is not None and sor not in SYSTEMS:
            self.issue(body.line_of("system_of_record"), f"system_of_record 必须是 crm 或 oa，现在是 {sor!r}。", entity, name)
            ok = False
        vmap = self.text(body, "value_map", where, entity, name, required=ftype == "enum")
        if vmap is not None:
            if ftype != "enum":
                self.issue(body.line_of("value_map"), f"只有 enum 类型的字段才能有 value_map（现在类型是 {ftype}）。",
                           entity, name)
                ok = False
            elif vmap not in value_maps:
                self.issue(body.line_of("value_map"), f"值映射 {vmap!r} 不存在；请在 value_maps 下添加，或改用已有的: "
                           f"{_choices(value_maps)}。", entity, name)
                ok = False
        crm = self.text(body, "crm", where, entity, name, required=False)
        oa = self.text(body, "oa", where, entity, name, required=False)
        association = self.text(body, "association", where, entity, name, required=False)
        derive_src = self.text(body, "derive", where, entity, name, required=False)
        derive = None
        if derive_src is not None:
            try:
                derive = Template.parse(derive_src)
            except ValueError as exc:
                self.issue(body.line_of("derive"), f"derive 模板无效: {exc}。", entity, name)
                ok = False
        sources = [k for k, v in (("crm", crm), ("oa", oa), ("association", association), ("derive", derive_src)) if v]
        if system == "crm":
            if oa is not None:
                self.issue(body.line_of("oa"), "CRM 实体的字段不能有 oa；OA 表单控件写在 OA 实体里。", entity, name)
                ok = False
            if len([s for s in sources if s != "oa"]) != 1:
                self.issue(body.line, "CRM 实体的字段必须且只能有 crm、association、derive 中的一个来源。", entity, name)
                ok = False
        elif system == "oa":
            if crm is not None or association is not None:
                self.issue(body.line_of("crm") if crm else body.line_of("association"),
                           "OA 实体的字段不能有 crm 或 association；CRM 属性写在 CRM 实体里。", entity, name)
                ok = False
            if len([s for s in sources if s in ("oa", "derive")]) != 1:
                self.issue(body.line, "OA 实体的字段必须且只能有 oa、derive 中的一个来源。", entity, name)
                ok = False
            if oa is not None:
                if oa.startswith("@"):
                    if oa[1:] not in OA_ATTRIBUTES:
                        self.issue(body.line_of("oa"), f"OA 实例属性 {oa!r} 未知；可用: "
                                   f"{_choices('@' + a for a in OA_ATTRIBUTES)}。", entity, name)
                        ok = False
                elif form is not None and form in widget_ids and oa not in widget_ids[form]:
                    self.issue(body.line_of("oa"), f"控件 {oa!r} 不在表单 {form} 上；请在 forms.{form}.widgets 添加它，"
                               f"或改用已有控件: {_choices(widget_ids[form])}。", entity, name)
                    ok = False
        if ftype == "enum" and vmap is not None and vmap in value_maps and system is not None and (crm or oa):
            missing = [v.canonical for v in value_maps[vmap].values if getattr(v, system) is None]
            if missing:
                self.issue(body.line_of("value_map"), f"值映射 {vmap} 的值 {_choices(missing)} 缺少 {system} 写法；"
                           f"请在 value_maps.{vmap} 的这些值上补 {system}: …。", entity, name)
                ok = False
        required = self.flag(body, "required", entity, name)
        unique = self.flag(body, "unique", entity, name)
        if not ok or label is None or ftype is None or owner is None or sor is None:
            return None
        return Field(
            name=name, label=label, type=ftype, owner=owner, system_of_record=sor, format=fmt, required=required,
            unique=unique, crm=crm, oa=oa, value_map=vmap, derive=derive, association=association, line=body.line,
        )

    def field_references(self, entity: str, system: str | None, raw: LineDict, fields: Mapping[str, Field]) -> None:
        """Duplicate CRM properties / OA widgets and derive templates that name unknown fields."""
        for key in ("crm", "oa"):
            owners: dict[str, str] = {}
            for name, f in fields.items():
                target = getattr(f, key)
                if target is None:
                    continue
                if target in owners:
                    self.issue(raw.line_of(name), f"字段 {owners[target]} 和 {name} 映射到同一个 {key} 属性/控件 {target!r}；"
                               "一个属性只能对应一个字段，请删除或改正其中一个。", entity, name)
                owners.setdefault(target, name)
        for name, f in fields.items():
            if f.derive is None:
                continue
            for ref in f.derive.refs:
                if ref not in raw:
                    self.issue(raw.line_of(name), f"derive 模板引用了不存在的字段 {{{ref}}}；已有字段: {_choices(raw)}。",
                               entity, name)
                elif ref in fields and fields[ref].derive is not None:
                    self.issue(raw.line_of(name), f"derive 模板不能引用另一个派生字段 {{{ref}}}。", entity, name)

    # ------------------------------------------------------------ forms
    def forms(self, raw_forms: LineDict, entities: Mapping[str, Entity],
              value_maps: Mapping[str, ValueMap]) -> dict[str, Form]:
        result: dict[str, Form] = {}
        readers: dict[str, list[str]] = {}
        for ename, e in entities.items():
            if e.form:
                readers.setdefault(e.form, []).append(ename)
        for name, spec in raw_forms.items():
            body = self.mapping(spec, name, raw_forms, f"表单 {name}")
            if body is None:
                continue
            where = f"表单 {name}"
            self.unknown_keys(body, _FORM_KEYS, where)
            label = self.text(body, "label", where)
            direction = self.text(body, "direction", where)
            if direction is not None and direction not in DIRECTIONS:
                self.issue(body.line_of("direction"), f"{where} 的 direction 必须是 crm_to_oa 或 oa_to_crm。")
            outbound = direction == "crm_to_oa"
            audience = self.text(body, "audience", where, required=outbound)
            owners = readers.get(name, [])
            if len(owners) > 1:
                self.issue(body.line, f"{where} 被多个实体读取（{_choices(owners)}）；一个表单只能对应一个 OA 实体。")
            form_entity = entities.get(owners[0]) if owners else None
            title = None
            title_src = self.text(body, "title", where, required=False)
            if title_src is not None:
                try:
                    title = Template.parse(title_src)
                except ValueError as exc:
                    self.issue(body.line_of("title"), f"{where} 的 title 模板无效: {exc}。")
                else:
                    for ref in title.refs:
                        problem = self.source_problem(ref, entities, form_entity)
                        if problem:
                            self.issue(body.line_of("title"), f"{where} 的 title 引用 {{{ref}}}: {problem}")
            widgets = self.widgets(name, body, outbound, entities, value_maps, form_entity)
            if label is None or direction is None:
                continue
            result[name] = Form(name, label, direction, tuple(widgets), audience, title,
                                form_entity.name if form_entity else None, body.line)
        return result

    def source_problem(self, ref: str, entities: Mapping[str, Entity], form_entity: Entity | None) -> str | None:
        """Why ``entity.field`` / ``notice.field`` cannot be a form source (None when fine)."""
        head, _, tail = ref.partition(".")
        owner = form_entity.name if head in CONTEXT_SOURCES and form_entity else head
        if (owner, tail) in self.broken:
            return None
        if not tail:
            return f"来源必须写成 实体.字段（如 deal.deal_name）或 notice.字段，现在是 {ref!r}。"
        if head in CONTEXT_SOURCES:
            if form_entity is None:
                return f"{head}.* 只能用在有对应 OA 实体的表单上（实体的 form 指向此表单）。"
            if tail not in form_entity.fields:
                return (f"{head}.{tail} 必须是表单实体 {form_entity.name} 的字段；请在 entities.{form_entity.name}.fields "
                        f"添加 {tail}，已有: {_choices(form_entity.fields)}。")
            return None
        source = entities.get(head)
        if source is None:
            return f"实体 {head!r} 不存在；可用: {_choices(list(entities) + list(CONTEXT_SOURCES))}。"
        if tail not in source.fields:
            return f"实体 {head} 没有字段 {tail!r}；已有: {_choices(source.fields)}。"
        return None

    def source_field(self, ref: str, entities: Mapping[str, Entity], form_entity: Entity | None) -> Field | None:
        head, _, tail = ref.partition(".")
        entity = form_entity if head in CONTEXT_SOURCES else entities.get(head)
        return entity.fields.get(tail) if entity is not None else None

    def widgets(self, form: str, body: LineDict, outbound: bool, entities: Mapping[str, Entity],
                value_maps: Mapping[str, ValueMap], form_entity: Entity | None) -> list[Widget]:
        raw = body.get("widgets")
        result: list[Widget] = []
        if not isinstance(raw, list) or not raw:
            self.issue(body.line_of("widgets"), f"表单 {form} 的 widgets 必须是非空列表。")
            return result
        seen: set[str] = set()
        entity_by_widget = {f.oa: f for f in form_entity.fields.values() if f.oa} if form_entity else {}
        for item in raw:
            if not isinstance(item, dict):
                self.issue(body.line_of("widgets"), f"表单 {form} 的每个控件必须是映射，发现 {item!r}。")
                continue
            w = item if isinstance(item, LineDict) else LineDict(item)
            wid = self.text(w, "id", f"表单 {form} 的控件")
            where = f"表单 {form} 的控件 {wid}"
            self.unknown_keys(w, _WIDGET_KEYS, where, field=wid)
            wtype = self.text(w, "type", where, field=wid)
            wname = self.text(w, "name", where, field=wid)
            if wid is None:
                continue
            if wid in seen:
                self.issue(w.line, f"表单 {form} 中控件 id {wid!r} 重复；请改名或删除。", field=wid)
            seen.add(wid)
            if wtype is not None and wtype not in WIDGET_TYPES:
                self.issue(w.line_of("type"), f"{where}: 控件类型 {wtype!r} 未知；可用: {_choices(WIDGET_TYPES)}。", field=wid)
            vmap = self.text(w, "value_map", where, field=wid, required=wtype == "radioV2")
            if vmap is not None and vmap not in value_maps:
                self.issue(w.line_of("value_map"), f"{where}: 值映射 {vmap!r} 不存在；已有: {_choices(value_maps)}。",
                           field=wid)
                vmap = None
            source = self.text(w, "source", where, field=wid, required=outbound)
            if source is not None:
                problem = self.source_problem(source, entities, form_entity)
                if problem:
                    self.issue(w.line_of("source"), f"{where} 的 source: {problem}", field=wid)
                else:
                    self.widget_source(form, w, wid, wtype, vmap, self.source_field(source, entities, form_entity),
                                       value_maps)
            required_flag = w.get("required")
            if required_flag is not None and not isinstance(required_flag, bool):
                self.issue(w.line_of("required"), f"{where}: required 必须是 true 或 false。", field=wid)
                required_flag = None
            mapped = entity_by_widget.get(wid)
            required = bool(required_flag) if required_flag is not None else bool(mapped and mapped.required)
            result.append(Widget(wid, wtype or "input", wname or wid, source, vmap, required, w.line))
        return result

    def widget_source(self, form: str, w: LineDict, wid: str, wtype: str | None, vmap: str | None,
                      source: Field | None, value_maps: Mapping[str, ValueMap]) -> None:
        if source is None:
            return
        where = f"表单 {form} 的控件 {wid}"
        fits = WIDGET_FIELD_TYPES.get(wtype or "")
        if fits is not None and source.type not in fits:
            self.issue(w.line_of("source"), f"{where}: {wtype} 控件不能填入 {source.type} 类型的字段 {source.name}；"
                       f"可用类型: {_choices(fits)}。", field=wid)
        if vmap is None:
            return
        if source.type != "enum":
            self.issue(w.line_of("value_map"), f"{where}: 只有来源是 enum 字段时才能用 value_map（{source.name} 是 "
                       f"{source.type}）。", field=wid)
        elif source.value_map != vmap and not value_maps[vmap].derives_from(source.value_map or ""):
            self.issue(w.line_of("value_map"), f"{where}: 值映射 {vmap} 与来源字段的值映射 {source.value_map} 不同，"
                       f"且 {vmap} 的值没有 from_{source.value_map}；请在 value_maps.{vmap} 的值上写 "
                       f"from_{source.value_map}: [...]。", field=wid)

    # ------------------------------------------------------------ activities
    def activities(self, root: LineDict, entities: Mapping[str, Entity],
                   value_maps: Mapping[str, ValueMap]) -> dict[str, Activity]:
        node = self.mapping(root.get("crm_activities"), "crm_activities", root, "crm_activities") or LineDict()
        result: dict[str, Activity] = {}
        for name, spec in node.items():
            body = self.mapping(spec, name, node, f"CRM 活动 {name}", entity=name)
            if body is None:
                continue
            where = f"CRM 活动 {name}"
            self.unknown_keys(body, _ACTIVITY_KEYS, where, entity=name)
            entity = entities.get(name)
            if entity is None or entity.system != "oa":
                self.issue(body.line, f"crm_activities 的键必须是 OA 实体名；已有 OA 实体: "
                           f"{_choices(n for n, e in entities.items() if e.system == 'oa')}。", entity=name)
            crm_object = self.text(body, "crm_object", where, entity=name)
            if crm_object is not None and crm_object not in CRM_ACTIVITY_OBJECTS:
                self.issue(body.line_of("crm_object"), f"crm_object {crm_object!r} 不是 HubSpot 活动对象；可用: "
                           f"{_choices(CRM_ACTIVITY_OBJECTS)}。", entity=name)
            audience = self.text(body, "audience", where, entity=name)
            statuses = body.get("when_status")
            status_map = None
            if entity is not None and "approval_status" in entity.fields:
                status_map = value_maps.get(entity.fields["approval_status"].value_map or "")
            if not isinstance(statuses, list) or not statuses:
                self.issue(body.line_of("when_status"), f"{where} 的 when_status 必须是非空的审批状态列表，如 [APPROVED]。",
                           entity=name)
                statuses = []
            elif status_map is not None:
                for status in statuses:
                    if status not in status_map.canonical_values:
                        self.issue(body.line_of("when_status"), f"when_status 中的 {status!r} 不是审批状态；可用: "
                                   f"{_choices(status_map.canonical_values)}。", entity=name)
            props = self.mapping(body.get("properties"), "properties", body, f"{where} 的 properties", entity=name)
            built: list[ActivityProperty] = []
            if not props:
                self.issue(body.line, f"{where} 缺少 properties。", entity=name)
            for prop, value in (props or {}).items():
                line = props.line_of(prop) if props else None
                if not isinstance(value, str) or not value:
                    self.issue(line, f"属性 {prop} 的值必须是字段名、=常量 或 带 {{字段}} 的模板。", entity=name, field=prop)
                    continue
                fields = entity.fields if entity is not None else {}
                if value.startswith("="):
                    built.append(ActivityProperty(prop, "literal", literal=value[1:]))
                elif "{" in value or "}" in value:
                    try:
                        template = Template.parse(value)
                    except ValueError as exc:
                        self.issue(line, f"属性 {prop} 的模板无效: {exc}。", entity=name, field=prop)
                        continue
                    for ref in template.refs:
                        if entity is not None and ref not in fields and (name, ref) not in self.broken:
                            self.issue(line, f"属性 {prop} 的模板引用了实体 {name} 中不存在的字段 {{{ref}}}；已有: "
                                       f"{_choices(fields)}。", entity=name, field=prop)
                    built.append(ActivityProperty(prop, "template", template=template))
                else:
                    if entity is not None and value not in fields and (name, value) not in self.broken:
                        self.issue(line, f"属性 {prop} 引用了实体 {name} 中不存在的字段 {value!r}（常量请写成 ={value}）；"
                                   f"已有: {_choices(fields)}。", entity=name, field=prop)
                    built.append(ActivityProperty(prop, "field", field=value))
            if entity is None or crm_object is None or audience is None:
                continue
            result[name] = Activity(name, crm_object, audience, tuple(str(s) for s in statuses), tuple(built), body.line)
        return result


def build(path: Path) -> Dictionary:
    """Read and validate one dictionary file (no cache). Raises :class:`DictionaryError`."""
    raw, issues = load_yaml(path)
    builder = _Builder(path)
    builder.issues.extend(issues)
    dictionary = builder.build(raw) if raw is not None else None
    if builder.issues or dictionary is None:
        if not builder.issues:
            builder.issue(None, "文件为空。")
        raise DictionaryError(builder.issues)
    return dictionary


_cache: dict[Path, tuple[tuple[int, int], Dictionary]] = {}
_lock = threading.Lock()


def load(path: Path | str | None = None) -> Dictionary:
    """The validated dictionary, cached by (path, mtime, size). Raises :class:`DictionaryError`."""
    resolved = Path(path) if path is not None else default_path()
    try:
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return build(resolved)  # reports the missing file
    with _lock:
        hit = _cache.get(resolved)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    dictionary = build(resolved)
    with _lock:
        _cache[resolved] = (stamp, dictionary)
    return dictionary

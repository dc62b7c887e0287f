"""Checks of ``crm_activities``: an OA entity's approved instances as CRM activities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.dictionary.checking import Checker, Known
from bridge.dictionary.model import Activity, ActivityProperty, Entity, Field, Template, ValueMap
from bridge.dictionary.shape import ActivitySpec, Where, choices
from bridge.dictionary.yamlio import LineDict

CRM_ACTIVITY_OBJECTS = frozenset({"notes", "meetings", "calls", "tasks", "emails"})


class ActivityChecks(Checker):
    """``crm_activities`` of the dictionary."""

    def activities(self, root: LineDict, known: Known) -> dict[str, Activity]:
        node = (
            self.mapping(root.get("crm_activities"), "crm_activities", root, "crm_activities") or LineDict()
        )
        return self.each(node, "CRM 活动", lambda name, body: self.activity(name, body, known), scoped=True)

    def activity(self, name: str, body: LineDict, known: Known) -> Activity | None:
        where = f"CRM 活动 {name}"
        spec = self.parse(ActivitySpec, body, Where(where, entity=name))
        entity = known.entities.get(name)
        if entity is None or entity.system != "oa":
            self.issue(
                body.line,
                f"crm_activities 的键必须是 OA 实体名；已有 OA 实体: "
                f"{choices(n for n, e in known.entities.items() if e.system == 'oa')}。",
                entity=name,
            )
        if spec.crm_object is not None and spec.crm_object not in CRM_ACTIVITY_OBJECTS:
            self.issue(
                body.line_of("crm_object"),
                f"crm_object {spec.crm_object!r} 不是 HubSpot 活动对象；可用: "
                f"{choices(CRM_ACTIVITY_OBJECTS)}。",
                entity=name,
            )
        statuses = self.when_status(name, body, entity, known.value_maps)
        props = self.mapping(
            body.get("properties"), "properties", body, f"{where} 的 properties", entity=name
        )
        if not props:
            self.issue(body.line, f"{where} 缺少 properties。", entity=name)
        fields = entity.fields if entity is not None else None
        built: list[ActivityProperty] = []
        for prop, value in (props or LineDict()).items():
            built_one = self.activity_property(
                name, prop, value, props.line_of(prop) if props else None, fields
            )
            if built_one is not None:
                built.append(built_one)
        if entity is None or spec.crm_object is None or spec.audience is None:
            return None
        return Activity(
            name, spec.crm_object, spec.audience, tuple(str(s) for s in statuses), tuple(built), body.line
        )

    def when_status(
        self, name: str, body: LineDict, entity: Entity | None, value_maps: Mapping[str, ValueMap]
    ) -> list[Any]:
        """The approval statuses that make the activity: a non-empty list of the entity's status values."""
        statuses = body.get("when_status")
        if not isinstance(statuses, list) or not statuses:
            self.issue(
                body.line_of("when_status"),
                f"CRM 活动 {name} 的 when_status 必须是非空的审批状态列表，如 [APPROVED]。",
                entity=name,
            )
            return []
        status_field = entity.fields.get("approval_status") if entity is not None else None
        status_map = value_maps.get(status_field.value_map or "") if status_field is not None else None
        if status_map is None:
            return statuses
        for status in statuses:
            if status not in status_map.canonical_values:
                self.issue(
                    body.line_of("when_status"),
                    f"when_status 中的 {status!r} 不是审批状态；可用: "
                    f"{choices(status_map.canonical_values)}。",
                    entity=name,
                )
        return statuses

    def activity_property(
        self, name: str, prop: str, value: Any, line: int | None, fields: Mapping[str, Field] | None
    ) -> ActivityProperty | None:
        """One CRM property of an activity: ``=literal``, a field of the entity, or a ``{field}`` template."""
        if not isinstance(value, str) or not value:
            self.issue(
                line, f"属性 {prop} 的值必须是字段名、=常量 或 带 {{字段}} 的模板。", entity=name, field=prop
            )
            return None
        if value.startswith("="):
            return ActivityProperty(prop, "literal", literal=value[1:])
        if "{" in value or "}" in value:
            try:
                built = ActivityProperty(prop, "template", template=Template.parse(value))
            except ValueError as exc:
                self.issue(line, f"属性 {prop} 的模板无效: {exc}。", entity=name, field=prop)
                return None
        else:
            built = ActivityProperty(prop, "field", field=value)
        known = fields or {}
        for ref in built.template.refs if built.template else (value,):
            if fields is not None and ref not in known and (name, ref) not in self.broken:
                wrong = (
                    f"的模板引用了实体 {name} 中不存在的字段 {{{ref}}}"
                    if built.template
                    else f"引用了实体 {name} 中不存在的字段 {value!r}（常量请写成 ={value}）"
                )
                self.issue(line, f"属性 {prop} {wrong}；已有: {choices(known)}。", entity=name, field=prop)
        return built

"""Checks of ``forms``: widgets of known types, sources naming real fields, titles, value maps that fit."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.dictionary.checking import Checker, Known, Scope, text_or_none
from bridge.dictionary.model import Entity, Field, Form, Template, ValueMap, Widget
from bridge.dictionary.shape import FormSpec, Where, WidgetSpec, choices
from bridge.dictionary.yamlio import LineDict
from bridge.hooks.feishu_codec import CHOICE_WIDGET, WIDGET_FIELD_TYPES, WIDGET_TYPES

DIRECTIONS = ("crm_to_oa", "oa_to_crm")
CONTEXT_SOURCES = ("notice",)  # form sources that are not entities: the notice's own values


class FormChecks(Checker):
    """``forms`` of the dictionary (after the entities: sources name their fields)."""

    def widget_ids(self, raw_forms: LineDict) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for name, spec in raw_forms.items():
            widgets = spec.get("widgets") if isinstance(spec, dict) else None
            ids[name] = (
                {str(w["id"]) for w in widgets or [] if isinstance(w, dict) and w.get("id")}
                if isinstance(widgets, list)
                else set()
            )
        return ids

    def forms(self, raw_forms: LineDict, known: Known) -> dict[str, Form]:
        readers: dict[str, list[str]] = {}
        for ename, e in known.entities.items():
            if e.form:
                readers.setdefault(e.form, []).append(ename)
        return self.each(
            raw_forms, "表单", lambda name, body: self.form(name, body, readers.get(name, []), known)
        )

    def form(self, name: str, body: LineDict, owners: list[str], known: Known) -> Form | None:
        where = Where(f"表单 {name}")
        spec = self.parse(FormSpec, body, where)
        direction = spec.direction
        if direction is not None and direction not in DIRECTIONS:
            self.issue(
                body.line_of("direction"), f"{where.what} 的 direction 必须是 crm_to_oa 或 oa_to_crm。"
            )
        outbound = direction == "crm_to_oa"
        audience = self.require(spec.audience, body, "audience", where, outbound)
        if len(owners) > 1:
            self.issue(
                body.line,
                f"{where.what} 被多个实体读取（{choices(owners)}）；一个表单只能对应一个 OA 实体。",
            )
        form_entity = known.entities.get(owners[0]) if owners else None
        title = self.form_title(where.what, body, spec.title, known.entities, form_entity)
        widgets = self.widgets(Scope(name, outbound=outbound, form_entity=form_entity), body, known)
        if spec.label is None or direction is None:
            return None
        return Form(
            name,
            spec.label,
            direction,
            tuple(widgets),
            audience,
            title,
            form_entity.name if form_entity else None,
            body.line,
        )

    def form_title(
        self,
        where: str,
        body: LineDict,
        source: str | None,
        entities: Mapping[str, Entity],
        form_entity: Entity | None,
    ) -> Template | None:
        """The ``title`` template, each ``{entity.field}`` a real source."""
        if source is None:
            return None
        try:
            title = Template.parse(source)
        except ValueError as exc:
            self.issue(body.line_of("title"), f"{where} 的 title 模板无效: {exc}。")
            return None
        for ref in title.refs:
            problem = self.source_problem(ref, entities, form_entity)
            if problem:
                self.issue(body.line_of("title"), f"{where} 的 title 引用 {{{ref}}}: {problem}")
        return title

    def source_problem(
        self, ref: str, entities: Mapping[str, Entity], form_entity: Entity | None
    ) -> str | None:
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
                return (
                    f"{head}.{tail} 必须是表单实体 {form_entity.name} 的字段；请在 entities.{form_entity.name}.fields "
                    f"添加 {tail}，已有: {choices(form_entity.fields)}。"
                )
            return None
        source = entities.get(head)
        if source is None:
            return f"实体 {head!r} 不存在；可用: {choices(list(entities) + list(CONTEXT_SOURCES))}。"
        if tail not in source.fields:
            return f"实体 {head} 没有字段 {tail!r}；已有: {choices(source.fields)}。"
        return None

    def source_field(
        self, ref: str, entities: Mapping[str, Entity], form_entity: Entity | None
    ) -> Field | None:
        head, _, tail = ref.partition(".")
        entity = form_entity if head in CONTEXT_SOURCES else entities.get(head)
        return entity.fields.get(tail) if entity is not None else None

    def widgets(self, form: Scope, body: LineDict, known: Known) -> list[Widget]:
        raw = body.get("widgets")
        result: list[Widget] = []
        if not isinstance(raw, list) or not raw:
            self.issue(body.line_of("widgets"), f"表单 {form.name} 的 widgets 必须是非空列表。")
            return result
        seen: set[str] = set()
        for item in raw:
            if not isinstance(item, dict):
                self.issue(body.line_of("widgets"), f"表单 {form.name} 的每个控件必须是映射，发现 {item!r}。")
                continue
            widget = self.widget(form, item if isinstance(item, LineDict) else LineDict(item), seen, known)
            if widget is not None:
                result.append(widget)
        return result

    def widget(self, form: Scope, w: LineDict, seen: set[str], known: Known) -> Widget | None:
        wid = text_or_none(w.get("id"))
        where = Where(f"表单 {form.name} 的控件 {wid}", field=wid, what_of={"id": f"表单 {form.name} 的控件"})
        spec = self.parse(WidgetSpec, w, where)
        if wid is None:
            return None
        if wid in seen:
            self.issue(w.line, f"表单 {form.name} 中控件 id {wid!r} 重复；请改名或删除。", field=wid)
        seen.add(wid)
        wtype = spec.type
        if wtype is not None and wtype not in WIDGET_TYPES:
            self.issue(
                w.line_of("type"),
                f"{where.what}: 控件类型 {wtype!r} 未知；可用: {choices(WIDGET_TYPES)}。",
                field=wid,
            )
        vmap = self.require(spec.value_map, w, "value_map", where, wtype == CHOICE_WIDGET)
        if vmap is not None and vmap not in known.value_maps:
            self.issue(
                w.line_of("value_map"),
                f"{where.what}: 值映射 {vmap!r} 不存在；已有: {choices(known.value_maps)}。",
                field=wid,
            )
            vmap = None
        source = self.require(spec.source, w, "source", where, form.outbound)
        if source is not None:
            problem = self.source_problem(source, known.entities, form.form_entity)
            if problem:
                self.issue(w.line_of("source"), f"{where.what} 的 source: {problem}", field=wid)
            else:
                self.widget_source(
                    form.name,
                    w,
                    wtype,
                    vmap,
                    self.source_field(source, known.entities, form.form_entity),
                    known.value_maps,
                )
        mapped = (
            {f.oa: f for f in form.form_entity.fields.values() if f.oa}.get(wid) if form.form_entity else None
        )
        required = spec.required if spec.required is not None else bool(mapped and mapped.required)
        return Widget(wid, wtype or "input", spec.name or wid, source, vmap, required, w.line)

    def widget_source(
        self,
        form: str,
        w: LineDict,
        wtype: str | None,
        vmap: str | None,
        source: Field | None,
        value_maps: Mapping[str, ValueMap],
    ) -> None:
        if source is None:
            return
        wid = str(w.get("id"))
        where = f"表单 {form} 的控件 {wid}"
        fits = WIDGET_FIELD_TYPES.get(wtype or "")
        if fits is not None and source.type not in fits:
            self.issue(
                w.line_of("source"),
                f"{where}: {wtype} 控件不能填入 {source.type} 类型的字段 {source.name}；"
                f"可用类型: {choices(fits)}。",
                field=wid,
            )
        if vmap is None:
            return
        if source.type != "enum":
            self.issue(
                w.line_of("value_map"),
                f"{where}: 只有来源是 enum 字段时才能用 value_map（{source.name} 是 {source.type}）。",
                field=wid,
            )
        elif source.value_map != vmap and not value_maps[vmap].derives_from(source.value_map or ""):
            self.issue(
                w.line_of("value_map"),
                f"{where}: 值映射 {vmap} 与来源字段的值映射 {source.value_map} 不同，"
                f"且 {vmap} 的值没有 from_{source.value_map}；请在 value_maps.{vmap} 的值上写 "
                f"from_{source.value_map}: [...]。",
                field=wid,
            )

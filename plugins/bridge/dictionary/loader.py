"""Load ``include/dictionary.yaml`` into a :class:`Dictionary`: shapes by models, references by code.

The shape of every node (its keys, which are required, text or true/false)
is checked by the pydantic models of :mod:`bridge.dictionary.shape`; this
module checks what a schema cannot: every reference (value maps, owners,
widget sources, widget ids, templates, activity fields), duplicates (two
fields on one CRM property or OA widget, repeated values) and the rules
between keys. It collects *all* problems and raises one
:class:`DictionaryError` whose lines name the file, line, entity and field
and say what to change. ``load()`` caches the result per (path, mtime,
size), so a task may call it for every record batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge.dictionary.check_activities import ActivityChecks
from bridge.dictionary.check_forms import FormChecks
from bridge.dictionary.check_values import ValueMapChecks
from bridge.dictionary.checking import Known, Scope
from bridge.dictionary.core import Dictionary
from bridge.dictionary.errors import DictionaryError
from bridge.dictionary.formats import FORMAT_CLEANERS, FORMATS_FOR_TYPE
from bridge.dictionary.model import (
    FIELD_TYPES,
    SYSTEMS,
    Contents,
    Department,
    Entity,
    Field,
    Template,
)
from bridge.dictionary.shape import (
    DepartmentSpec,
    DictionaryTop,
    EntitySpec,
    FieldSpec,
    Where,
    choices,
)
from bridge.dictionary.yamlio import LineDict, build_file
from bridge.hooks.feishu_codec import INSTANCE_ATTRIBUTES

# Values of an entity's ``read_by``: "hook" = the typed records of a hook method (docs/dictionary.md).
READERS = ("hook",)


def default_path() -> Path:
    from bridge import settings

    return settings.include_dir() / "dictionary.yaml"


class _Builder(ValueMapChecks, FormChecks, ActivityChecks):
    """Builds the model and collects every issue; never raises on bad content."""

    def build(self, raw: Any) -> Dictionary | None:
        if not isinstance(raw, dict):
            self.issue(
                None, "顶层必须是映射（version、departments、value_maps、entities、forms、crm_activities）。"
            )
            return None
        root = raw if isinstance(raw, LineDict) else LineDict(raw)
        top = self.parse(DictionaryTop, root, Where("文件顶层"))
        if top.timezone != "Asia/Shanghai":
            self.issue(
                root.line_of("timezone"),
                f"timezone 只支持 Asia/Shanghai（业务日期按北京时间），现在是 {top.timezone!r}。",
            )
        raw_forms = self.mapping(root.get("forms"), "forms", root, "forms") or LineDict()
        known = Known(self.departments(root), self.value_maps(root), self.widget_ids(raw_forms))
        known = replace(known, entities=self.entities(root, known))
        forms = self.forms(raw_forms, known)
        activities = self.activities(root, known)
        if self.issues or top.version is None:
            return None
        return Dictionary(
            Contents(
                path=Path(self.file),
                version=top.version,
                timezone="Asia/Shanghai",
                departments=known.departments,
                value_maps=known.value_maps,
                entities=known.entities,
                forms=forms,
                crm_activities=activities,
            )
        )

    def departments(self, root: LineDict) -> dict[str, Department]:
        node = self.mapping(root.get("departments"), "departments", root, "departments")
        if not node:
            self.issue(root.line, "缺少 departments（数据责任部门）；每个字段的 owner 都要引用其中一个。")
            return {}
        return self.each(node, "部门", self.department)

    def department(self, key: str, body: LineDict) -> Department:
        department = self.parse(DepartmentSpec, body, Where(f"部门 {key}"))
        return Department(key, department.label or key, department.email)

    def entities(self, root: LineDict, known: Known) -> dict[str, Entity]:
        node = self.mapping(root.get("entities"), "entities", root, "entities")
        if not node:
            self.issue(root.line, "缺少 entities；至少要定义一个实体。")
            return {}
        return self.each(node, "实体", lambda name, body: self.entity(name, body, known), scoped=True)

    def entity(self, name: str, body: LineDict, known: Known) -> Entity | None:
        where = Where(f"实体 {name}", entity=name)
        spec = self.parse(EntitySpec, body, where)
        system = spec.system
        if system is not None and system not in SYSTEMS:
            self.issue(body.line_of("system"), f"system 必须是 crm 或 oa，现在是 {system!r}。", name)
            system = None
        read_by = self.read_by(name, body, spec)
        crm_object = self.require(spec.crm_object, body, "crm_object", where, system == "crm" and not read_by)
        form = self.require(spec.form, body, "form", where, system == "oa" and not read_by)
        if system == "crm" and form:
            self.issue(body.line_of("form"), "CRM 实体不能有 form；表单属于 OA 实体。", name)
        if system == "oa" and crm_object:
            self.issue(body.line_of("crm_object"), "OA 实体不能有 crm_object。", name)
        if form is not None and form not in known.widget_ids:
            self.issue(
                body.line_of("form"),
                f"表单 {form!r} 不存在；请在 forms 下定义，已有: {choices(known.widget_ids)}。",
                name,
            )
        raw_fields = self.mapping(body.get("fields"), "fields", body, f"{where.what} 的 fields", entity=name)
        if not raw_fields:
            self.issue(body.line, "缺少 fields（字段列表）。", name)
            return None
        scope = Scope(name, system, form, read_by=read_by)
        fields: dict[str, Field] = {}
        for fname, fspec in raw_fields.items():
            fbody = self.mapping(fspec, fname, raw_fields, f"字段 {fname}", entity=name, field=fname)
            if fbody is None:
                continue
            built = self.field(scope, fname, fbody, known)
            if built is not None:
                fields[fname] = built
            else:
                self.broken.add((name, fname))
        self.field_references(name, raw_fields, fields)
        self.entity_keys(name, body, spec, raw_fields, fields)
        associations = self.associations(name, body, fields)
        if spec.label is None or system is None or not fields:
            return None
        return Entity(
            name=name,
            label=spec.label,
            system=system,
            id_field=str(spec.id_field),
            modified_field=str(spec.modified_field),
            fields=fields,
            crm_object=crm_object,
            form=form,
            data_owner_field=spec.data_owner_field,
            associations=associations,
            line=body.line,
            read_by=read_by,
        )

    def read_by(self, name: str, body: LineDict, spec: EntitySpec) -> str | None:
        """``read_by: hook`` (fields read by name from a hook's typed records), without crm_object or form."""
        if spec.read_by is None:
            return None
        if spec.read_by not in READERS:
            self.issue(body.line_of("read_by"), f"read_by 只能是 {choices(READERS)}，现在是 {spec.read_by!r}。", name)
            return None
        for key in ("crm_object", "form"):
            if getattr(spec, key):
                self.issue(body.line_of(key), f"read_by: {spec.read_by} 的实体不能有 {key}。", name)
        return spec.read_by

    def entity_keys(
        self, name: str, body: LineDict, spec: EntitySpec, raw_fields: LineDict, fields: Mapping[str, Field]
    ) -> None:
        """``id_field``, ``modified_field`` and ``data_owner_field`` name fields of the entity."""
        for key in ("id_field", "modified_field", "data_owner_field"):
            ref = self.require(
                getattr(spec, key), body, key, Where(f"实体 {name}", entity=name), key != "data_owner_field"
            )
            if ref is not None and ref not in fields and ref not in raw_fields:
                self.issue(
                    body.line_of(key),
                    f"{key} 引用了不存在的字段 {ref!r}；已有字段: {choices(fields)}。",
                    name,
                    ref,
                )
        modified = spec.modified_field
        if modified is not None and modified in fields and fields[modified].type != "datetime":
            self.issue(
                raw_fields.line_of(modified), "modified_field 指向的字段类型必须是 datetime。", name, modified
            )

    def associations(self, name: str, body: LineDict, fields: Mapping[str, Field]) -> dict[str, str]:
        """CRM associations of the entity: the ``associations`` block agreeing with the fields' ``association``."""
        associations: dict[str, str] = {}
        raw = self.mapping(
            body.get("associations"), "associations", body, f"实体 {name} 的 associations", entity=name
        )
        for fname, object_type in (raw or {}).items():
            target = fields.get(fname)
            line = raw.line_of(fname) if raw else None
            if target is None:
                self.issue(line, f"associations 引用了不存在的字段 {fname!r}。", name, fname)
            elif target.association != object_type:
                self.issue(
                    line,
                    f"associations 写的是 {object_type!r}，但字段的 association 是 {target.association!r}；"
                    "请改成一致。",
                    name,
                    fname,
                )
            associations[fname] = str(object_type)
        for fname, f in fields.items():
            if f.association and fname not in associations:
                associations[fname] = f.association
        return associations

    def field(self, scope: Scope, name: str, body: LineDict, known: Known) -> Field | None:
        spec = self.parse(FieldSpec, body, Where(f"字段 {name}", scope.name, name))
        ok, vmap = self.field_kinds(scope, name, body, spec, known)
        derive = None
        if spec.derive is not None:
            try:
                derive = Template.parse(spec.derive)
            except ValueError as exc:
                self.issue(body.line_of("derive"), f"derive 模板无效: {exc}。", scope.name, name)
                ok = False
        ok = self.field_sources(scope, name, body, spec, known) and ok
        system = scope.system
        if (
            spec.type == "enum"
            and vmap is not None
            and vmap in known.value_maps
            and system is not None
            and (spec.crm or spec.oa)
        ):
            missing = [v.canonical for v in known.value_maps[vmap].values if getattr(v, system) is None]
            if missing:
                self.issue(
                    body.line_of("value_map"),
                    f"值映射 {vmap} 的值 {choices(missing)} 缺少 {system} 写法；"
                    f"请在 value_maps.{vmap} 的这些值上补 {system}: …。",
                    scope.name,
                    name,
                )
                ok = False
        if (
            not ok
            or spec.label is None
            or spec.type is None
            or spec.owner is None
            or spec.system_of_record is None
        ):
            return None
        return Field(
            name=name,
            label=spec.label,
            type=spec.type,
            owner=spec.owner,
            system_of_record=spec.system_of_record,
            format=spec.format,
            required=spec.required,
            unique=spec.unique,
            crm=spec.crm,
            oa=spec.oa,
            value_map=vmap,
            derive=derive,
            association=spec.association,
            line=body.line,
            sensitive=spec.sensitive,
        )

    def field_kinds(
        self, scope: Scope, name: str, body: LineDict, spec: FieldSpec, known: Known
    ) -> tuple[bool, str | None]:
        """Type, format, owner, system of record and value map name known things; (usable, value map)."""
        ftype, fmt, sor = spec.type, spec.format, spec.system_of_record
        wrong: list[tuple[str, str]] = []  # (key, message)
        if ftype is not None and ftype not in FIELD_TYPES:
            wrong.append(("type", f"类型 {ftype!r} 未知；可用: {choices(FIELD_TYPES)}。"))
        if fmt is not None and fmt not in FORMAT_CLEANERS:
            wrong.append(("format", f"格式 {fmt!r} 未知；可用: {choices(FORMAT_CLEANERS)}。"))
        elif fmt is not None and ftype in FORMATS_FOR_TYPE and fmt not in FORMATS_FOR_TYPE[ftype]:
            fits = choices(FORMATS_FOR_TYPE[ftype]) if FORMATS_FOR_TYPE[ftype] else "（此类型不能带格式）"
            wrong.append(("format", f"格式 {fmt} 不适用于类型 {ftype}；此类型可用: {fits}。"))
        if spec.owner is not None and spec.owner not in known.departments:
            wrong.append(
                (
                    "owner",
                    f"owner {spec.owner!r} 不是 departments 中的部门；可用: {choices(known.departments)}。",
                )
            )
        if sor is not None and sor not in SYSTEMS:
            wrong.append(("system_of_record", f"system_of_record 必须是 crm 或 oa，现在是 {sor!r}。"))
        for key, message in wrong:
            self.issue(body.line_of(key), message, scope.name, name)
        where = Where(f"字段 {name}", scope.name, name)
        vmap = self.require(spec.value_map, body, "value_map", where, ftype == "enum")
        if vmap is not None and ftype != "enum":
            message = f"只有 enum 类型的字段才能有 value_map（现在类型是 {ftype}）。"
        elif vmap is not None and vmap not in known.value_maps:
            message = (
                f"值映射 {vmap!r} 不存在；请在 value_maps 下添加，或改用已有的: {choices(known.value_maps)}。"
            )
        else:
            return not wrong, vmap
        self.issue(body.line_of("value_map"), message, scope.name, name)
        return False, vmap

    def field_sources(self, scope: Scope, name: str, body: LineDict, spec: FieldSpec, known: Known) -> bool:
        """Exactly one source per field, the one its entity's system allows, naming a real widget or attribute."""
        entity, crm, oa, association = scope.name, spec.crm, spec.oa, spec.association
        sources = [
            k
            for k, v in (("crm", crm), ("oa", oa), ("association", association), ("derive", spec.derive))
            if v
        ]
        ok = True
        if scope.read_by is not None:
            if [s for s in sources if s != "derive"]:
                self.issue(
                    body.line,
                    f"read_by: {scope.read_by} 的实体字段按字段名读取，不能有 crm、oa 或 association。",
                    entity,
                    name,
                )
                ok = False
        elif scope.system == "crm":
            if oa is not None:
                self.issue(
                    body.line_of("oa"), "CRM 实体的字段不能有 oa；OA 表单控件写在 OA 实体里。", entity, name
                )
                ok = False
            if len([s for s in sources if s != "oa"]) != 1:
                self.issue(
                    body.line,
                    "CRM 实体的字段必须且只能有 crm、association、derive 中的一个来源。",
                    entity,
                    name,
                )
                ok = False
        elif scope.system == "oa":
            if crm is not None or association is not None:
                self.issue(
                    body.line_of("crm") if crm else body.line_of("association"),
                    "OA 实体的字段不能有 crm 或 association；CRM 属性写在 CRM 实体里。",
                    entity,
                    name,
                )
                ok = False
            if len([s for s in sources if s in ("oa", "derive")]) != 1:
                self.issue(body.line, "OA 实体的字段必须且只能有 oa、derive 中的一个来源。", entity, name)
                ok = False
            if oa is not None:
                ok = self.oa_source(scope, name, body, oa, known) and ok
        return ok

    def oa_source(self, scope: Scope, name: str, body: LineDict, oa: str, known: Known) -> bool:
        """An OA field reads an instance attribute (``@status``) or a widget of its entity's form."""
        form = scope.form
        if oa.startswith("@"):
            if oa[1:] not in INSTANCE_ATTRIBUTES:
                self.issue(
                    body.line_of("oa"),
                    f"OA 实例属性 {oa!r} 未知；可用: {choices('@' + a for a in INSTANCE_ATTRIBUTES)}。",
                    scope.name,
                    name,
                )
                return False
        elif form is not None and form in known.widget_ids and oa not in known.widget_ids[form]:
            self.issue(
                body.line_of("oa"),
                f"控件 {oa!r} 不在表单 {form} 上；请在 forms.{form}.widgets 添加它，"
                f"或改用已有控件: {choices(known.widget_ids[form])}。",
                scope.name,
                name,
            )
            return False
        return True

    def field_references(self, entity: str, raw: LineDict, fields: Mapping[str, Field]) -> None:
        """Duplicate CRM properties / OA widgets and derive templates that name unknown fields."""
        for key in ("crm", "oa"):
            owners: dict[str, str] = {}
            for name, f in fields.items():
                target = getattr(f, key)
                if target is None:
                    continue
                if target in owners:
                    self.issue(
                        raw.line_of(name),
                        f"字段 {owners[target]} 和 {name} 映射到同一个 {key} 属性/控件 {target!r}；"
                        "一个属性只能对应一个字段，请删除或改正其中一个。",
                        entity,
                        name,
                    )
                owners.setdefault(target, name)
        for name, f in fields.items():
            if f.derive is None:
                continue
            for ref in f.derive.refs:
                if ref not in raw:
                    self.issue(
                        raw.line_of(name),
                        f"derive 模板引用了不存在的字段 {{{ref}}}；已有字段: {choices(raw)}。",
                        entity,
                        name,
                    )
                elif ref in fields and fields[ref].derive is not None:
                    self.issue(
                        raw.line_of(name), f"derive 模板不能引用另一个派生字段 {{{ref}}}。", entity, name
                    )


def build(path: Path) -> Dictionary:
    """Read and validate one dictionary file (no cache). Raises :class:`DictionaryError`."""
    return build_file(path, _Builder(path), DictionaryError)


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

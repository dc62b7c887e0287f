"""Shapes of the nodes of ``include/dictionary.yaml`` and ``include/permissions.yaml``: pydantic models.

One model (``extra="forbid"``) per node kind.

Each model checks one mapping's own keys — which keys may appear, which are
required, which are text or true/false. Nested collections (an entity's
``fields``, a form's ``widgets``) stay raw here and are validated node by node
by :mod:`bridge.dictionary.loader` (and :mod:`bridge.permissions`), so one
broken field does not hide the problems of the others; they also do every
cross-reference check.

:func:`parse` validates a node and turns pydantic's errors into
:class:`~bridge.dictionary.errors.ConfigIssue` lines in the loader's words
(file, line, entity, field, what to do), then returns the node with its
unusable keys set to None, so validation can go on and report everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from bridge.dictionary.yamlio import LineDict


def choices(names: Any) -> str:
    """Up to 12 names, sorted, for "可用: …" hints."""
    items = sorted(str(n) for n in names)
    return "、".join(items[:12]) + (" …" if len(items) > 12 else "") if items else "（无）"


def _salvaging(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("salvage"))


def _text(value: Any, info: ValidationInfo, *, required: bool) -> str | None:
    if value is None or value == "":
        if required and not _salvaging(info):
            raise PydanticCustomError("blank", "required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("text_type", "text expected", {"kind": type(value).__name__})
    return str(value)


def _required_text(value: Any, info: ValidationInfo) -> str | None:
    return _text(value, info, required=True)


def _optional_text(value: Any, info: ValidationInfo) -> str | None:
    return _text(value, info, required=False)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PydanticCustomError("flag_type", "true or false expected")
    return value


def _optional_flag(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise PydanticCustomError("optional_flag_type", "true or false expected")
    return value


# Required text: absent or empty is reported as missing; a number is read as its text.
Text = Annotated[str | None, BeforeValidator(_required_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]
OptionalFlag = Annotated[bool | None, BeforeValidator(_optional_flag)]


class Node(BaseModel):
    """One mapping of a configuration file: unknown keys refused, every field checked even when absent."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def keys(cls) -> frozenset[str]:
        """The keys the YAML node may have (shown when an unknown one is met)."""
        return frozenset(cls.model_fields)

    # The message for a key the node may not have; {what}, {key} (repr) and {allowed} are filled in.
    UNKNOWN_KEY: ClassVar[str] = "{what} 中有未知的键 {key!r}；允许的键: {allowed}（是否拼写错误？）"

    @classmethod
    def unknown_key(cls, what: str, key: str) -> str:
        return cls.UNKNOWN_KEY.format(what=what, key=key, allowed=choices(cls.keys()))


class DictionaryTop(Node):
    version: Text = None
    timezone: Any = "Asia/Shanghai"  # checked by the loader, which shows the value as written
    departments: Any = None
    value_maps: Any = None
    entities: Any = None
    forms: Any = None
    crm_activities: Any = None


class DepartmentSpec(Node):
    label: Text = None
    email: OptionalText = None


class ValueMapSpec(Node):
    label: Text = None
    values: Any = None
    transitions: Any = None


class ValueSpec(Node):
    """A value of a value map; ``from_<map>: [values]`` keys are collected into ``derived_from`` (raw)."""

    canonical: Text = None
    label: Text = None
    crm: OptionalText = None
    oa: OptionalText = None
    derived_from: dict[str, Any] = {}

    @classmethod
    def keys(cls) -> frozenset[str]:
        return frozenset({"canonical", "label", "crm", "oa"})

    @classmethod
    def collect_derived(cls, node: Mapping[str, Any]) -> dict[str, Any]:
        """The node with its ``from_*`` keys moved under ``derived_from`` (the map's name without ``from_``)."""
        plain = {k: v for k, v in node.items() if not k.startswith("from_") and k != "derived_from"}
        plain["derived_from"] = {k[5:]: v for k, v in node.items() if k.startswith("from_")}
        if "derived_from" in node:
            plain["derived_from_key"] = node["derived_from"]  # refused as an unknown key
        return plain


class EntitySpec(Node):
    label: Text = None
    system: Text = None
    crm_object: OptionalText = None
    form: OptionalText = None
    # Required, reported by the loader only for an entity that has fields (no follow-on noise).
    id_field: OptionalText = None
    modified_field: OptionalText = None
    data_owner_field: OptionalText = None
    associations: Any = None
    # "hook": the fields are read by their own names from the typed records a hook returns (the vendor's
    # spelling stays in the hook): no crm_object / form on the entity, no crm / oa / association on fields.
    read_by: OptionalText = None
    fields: Any = None


class FieldSpec(Node):
    label: Text = None
    type: Text = None
    format: OptionalText = None
    required: Flag = False
    unique: Flag = False
    owner: Text = None
    system_of_record: Text = None
    crm: OptionalText = None
    oa: OptionalText = None
    value_map: OptionalText = None
    derive: OptionalText = None
    association: OptionalText = None
    # Personal sensitive information (PIPL art. 28, e.g. performance ratings): masked in full wherever a
    # record is shown whole (quarantine, exports), and visible to a role only where the policy lists it.
    sensitive: Flag = False


class FormSpec(Node):
    label: Text = None
    direction: Text = None
    audience: OptionalText = None
    title: OptionalText = None
    widgets: Any = None


class WidgetSpec(Node):
    id: Text = None
    type: Text = None
    name: Text = None
    source: OptionalText = None
    value_map: OptionalText = None
    required: OptionalFlag = None


class ActivitySpec(Node):
    crm_object: Text = None
    audience: Text = None
    when_status: Any = None
    properties: Any = None


def _field_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PydanticCustomError("field_list_type", "a list of fields expected")
    return value


FieldList = Annotated[list[Any], BeforeValidator(_field_list)]


class PolicyTop(Node):
    """``include/permissions.yaml``; the version is checked by the policy loader (its own message)."""

    version: Any = None
    roles: Any = None
    entities: Any = None
    audiences: Any = None
    documents: Any = None  # document classes (bridge.permissions_documents)

    UNKNOWN_KEY: ClassVar[str] = "文件顶层有未知的键 {key!r}；允许: version、roles、entities、audiences、documents。"


class RoleSpec(Node):
    label: Any = None  # checked by the policy loader: a role needs its Chinese name

    UNKNOWN_KEY: ClassVar[str] = "未知的键 {key!r}；角色下只能有 label（中文名称）。"


class EntityRules(Node):
    masks: Any = None
    roles: Any = None

    UNKNOWN_KEY: ClassVar[str] = "未知的键 {key!r}；实体下只能有 masks 和 roles。"


class RoleRules(Node):
    fields: FieldList = []
    masked: FieldList = []

    UNKNOWN_KEY: ClassVar[str] = "未知的键 {key!r}；角色规则只能有 fields（明文）和 masked（脱敏）。"


NodeT = TypeVar("NodeT", bound=Node)


@dataclass(frozen=True)
class Where:
    """Whose node it is, for the messages: ``what`` names it ("实体 deal"); entity/field scope the issue."""

    what: str
    entity: str | None = None
    field: str | None = None
    role: str | None = None
    # Some keys are named differently before the node's own name is known (a widget's id).
    what_of: Mapping[str, str] | None = None

    def of(self, key: str) -> str:
        return (self.what_of or {}).get(key, self.what)


@dataclass(frozen=True)
class Complaint:
    """One problem of a node, not yet tied to a file: the loader adds the file."""

    line: int | None
    message: str
    entity: str | None
    field: str | None
    role: str | None = None


def parse(model: type[NodeT], node: LineDict, where: Where) -> tuple[NodeT, list[Complaint]]:
    """The node as ``model`` (unusable keys None) and its problems in the loader's words."""
    data: Mapping[str, Any] = ValueSpec.collect_derived(node) if model is ValueSpec else node
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
    bad = {str(e["loc"][0]) for e in errors if e["loc"]}
    kept = {k: v for k, v in data.items() if k not in bad}
    complaints = [_complaint(e, model, node, where) for e in errors]
    return model.model_validate(kept, context={"salvage": True}), complaints


def _complaint(error: Any, model: type[Node], node: LineDict, where: Where) -> Complaint:
    key = str(error["loc"][0]) if error["loc"] else ""
    kind = error["type"]
    what = where.of(key)
    line = node.line_of(key)
    if kind == "extra_forbidden":
        if key == "derived_from_key":
            key, line = "derived_from", node.line_of("derived_from")
        message = model.unknown_key(what, key)
    elif kind in {"missing", "blank"}:
        line, message = node.line, f"{what} 缺少 {key}；请补上。"
    elif kind == "text_type":
        message = f"{what} 的 {key} 必须是文本，现在是 {error['ctx']['kind']}。"
    elif kind == "flag_type":
        message = f"{key} 必须是 true 或 false，现在是 {error['input']!r}。"
    elif kind == "optional_flag_type":
        message = f"{what}: {key} 必须是 true 或 false。"
    elif kind == "field_list_type":
        message = f"{key} 必须是字段列表，如 [name, project_no]。"
    else:  # pragma: no cover - every field type above raises one of the kinds handled
        message = f"{what} 的 {key} 无效：{error['msg']}。"
    return Complaint(line, message, where.entity, where.field, where.role)

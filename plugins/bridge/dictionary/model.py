"""Typed model of ``include/dictionary.yaml`` (built and validated by ``loader``).

Everything here is immutable after loading and carries the lookups the
mappers need precomputed (value maps as dicts, templates pre-parsed), so
mapping a record costs no YAML, regex or template parsing.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEMS = ("crm", "oa")
FIELD_TYPES = ("string", "text", "enum", "integer", "amount", "date", "datetime", "boolean")

# Problem codes (docs/architecture.md "Quarantine reason codes") produced by the dictionary.
MISSING_REQUIRED = "missing_required"
INVALID_FORMAT = "invalid_format"
UNMAPPED_VALUE = "unmapped_value"
INVALID_TRANSITION = "invalid_transition"
HOSTILE_INPUT = "hostile_input"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a record (or one of its fields) cannot be synced as is; the quarantine reason.

    ``department`` is the data owner (key of ``departments``) who must fix it;
    ``message`` is Chinese and says what is wrong, where and what to do.
    """

    code: str
    entity: str
    field: str | None
    message: str
    department: str | None = None
    # The offending source value (invalid format / unmapped), as text and cut to
    # 200 characters: kept in the snapshot's ``_invalid`` so data-health checks
    # can show what is wrong; never logged.
    value: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "entity": self.entity,
            "field": self.field,
            "message": self.message,
            "department": self.department,
        }


@dataclass(slots=True)
class MappingResult:
    """A canonical record and the problems met while mapping it (empty list = clean)."""

    record: dict[str, Any]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]


@dataclass(frozen=True, slots=True)
class Template:
    """A ``{name}`` template, parsed once: ``parts`` is (literal text, reference or None) pairs."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """Raises ``ValueError`` on unbalanced braces or format specs (the loader reports it)."""
        parts: list[tuple[str, str | None]] = []
        for literal, name, spec, conversion in string.Formatter().parse(source):
            if spec or conversion:
                raise ValueError(f"占位符 {{{name}}} 不能带格式或转换（:{spec} !{conversion}）")
            if name is not None and not name.strip():
                raise ValueError("占位符 {} 里必须写字段名")
            parts.append((literal, name.strip() if name is not None else None))
        return cls(source, tuple(parts))

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(ref for _, ref in self.parts if ref is not None)

    def render(self, lookup: Callable[[str], str]) -> str:
        return "".join(literal + (lookup(ref) if ref is not None else "") for literal, ref in self.parts)


@dataclass(frozen=True, slots=True)
class Department:
    key: str
    label: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ValueEntry:
    """One value of a value map: canonical ⇄ CRM value ⇄ OA value, label for staff.

    ``derived_from`` maps another value map's name to the values of it that
    lead to this one (YAML ``from_deal_stage: [contract]``).
    """

    canonical: str
    label: str
    crm: str | None = None
    oa: str | None = None
    derived_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ValueMap:
    """Canonical values of an enum with their CRM/OA spellings and allowed transitions.

    ``transitions`` None means any change is allowed.
    """

    name: str
    label: str
    values: tuple[ValueEntry, ...]
    transitions: Mapping[str, frozenset[str]] | None = None
    _by_canonical: dict[str, ValueEntry] = field(init=False, repr=False, compare=False)
    _inbound: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False)
    _outbound: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False)
    _derived: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_canonical = {v.canonical: v for v in self.values}
        inbound: dict[str, dict[str, str]] = {"crm": {}, "oa": {}}
        outbound: dict[str, dict[str, str]] = {"crm": {}, "oa": {}}
        derived: dict[str, dict[str, str]] = {}
        for v in self.values:
            for system in SYSTEMS:
                spelled = getattr(v, system)
                if spelled is not None:
                    inbound[system].setdefault(spelled, v.canonical)
                    outbound[system][v.canonical] = spelled
            for source_map, source_values in v.derived_from.items():
                for source_value in source_values:
                    derived.setdefault(source_map, {}).setdefault(source_value, v.canonical)
        object.__setattr__(self, "_by_canonical", by_canonical)
        object.__setattr__(self, "_inbound", inbound)
        object.__setattr__(self, "_outbound", outbound)
        object.__setattr__(self, "_derived", derived)

    @property
    def canonical_values(self) -> tuple[str, ...]:
        return tuple(v.canonical for v in self.values)

    def entry(self, canonical: str) -> ValueEntry | None:
        return self._by_canonical.get(canonical)

    def inbound(self, system: str) -> Mapping[str, str]:
        """``{system value: canonical}``: the lookup table ``from_crm``/``from_oa`` use."""
        return self._inbound[system]

    def to_canonical(self, system: str, value: str) -> str | None:
        return self._inbound[system].get(value)

    def from_canonical(self, system: str, value: str) -> str | None:
        return self._outbound[system].get(value)

    def label_of(self, value: str) -> str | None:
        entry = self.entry(value)
        return entry.label if entry else None

    def derive(self, source_map: str, value: str) -> str | None:
        """This map's value for ``value`` of ``source_map`` (``from_<source_map>`` in YAML)."""
        return self._derived.get(source_map, {}).get(value)

    def derives_from(self, source_map: str) -> bool:
        return source_map in self._derived

    def allowed_transition(self, old: str | None, new: str | None) -> bool:
        if old is None or new is None or old == new or self.transitions is None:
            return True
        return new in self.transitions.get(old, frozenset())


@dataclass(frozen=True, slots=True)
class Field:
    """A canonical field of an entity and where it lives in each system."""

    name: str
    label: str
    type: str
    owner: str
    system_of_record: str
    format: str | None = None
    required: bool = False
    unique: bool = False
    crm: str | None = None
    oa: str | None = None
    value_map: str | None = None
    derive: Template | None = None
    association: str | None = None
    line: int | None = None
    sensitive: bool = False  # personal sensitive information (PIPL): masked in full when shown whole


@dataclass(frozen=True)
class Entity:
    """A canonical entity (company, deal, expense_claim, ...) of one system."""

    name: str
    label: str
    system: str
    id_field: str
    modified_field: str
    fields: Mapping[str, Field]
    crm_object: str | None = None
    form: str | None = None
    data_owner_field: str | None = None
    associations: Mapping[str, str] = field(default_factory=dict)
    line: int | None = None
    read_by: str | None = None  # "hook": fields read by their names from a hook's typed records

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    @property
    def hash_fields(self) -> tuple[str, ...]:
        """Fields in the content hash: mapped, owned by this system, not the modification time."""
        return tuple(
            sorted(
                f.name
                for f in self.fields.values()
                if f.system_of_record == self.system and f.derive is None and f.name != self.modified_field
            )
        )


@dataclass(frozen=True, slots=True)
class Widget:
    """A widget of an OA form; ``source`` is ``entity.field`` (outbound forms)."""

    id: str
    type: str
    name: str
    source: str | None = None
    value_map: str | None = None
    required: bool = False
    line: int | None = None


@dataclass(frozen=True)
class Form:
    """An OA approval definition the bridge fills (crm_to_oa) or reads (oa_to_crm)."""

    name: str
    label: str
    direction: str
    widgets: tuple[Widget, ...]
    audience: str | None = None
    title: Template | None = None
    entity: str | None = None  # the OA entity read from this form
    line: int | None = None

    def widget(self, widget_id: str) -> Widget | None:
        return next((w for w in self.widgets if w.id == widget_id), None)


@dataclass(frozen=True, slots=True)
class ActivityProperty:
    """One CRM property of an activity: a ``=literal``, a field, or a template."""

    name: str
    kind: str  # literal | field | template
    literal: str | None = None
    field: str | None = None
    template: Template | None = None


@dataclass(frozen=True)
class Activity:
    """How an approved OA form lands in the CRM as an activity (note, meeting)."""

    entity: str
    crm_object: str
    audience: str
    when_status: tuple[str, ...]
    properties: tuple[ActivityProperty, ...]
    line: int | None = None


@dataclass(frozen=True)
class Contents:
    """Everything a validated ``dictionary.yaml`` holds: what :class:`~bridge.dictionary.Dictionary` is built from."""

    path: Path
    version: str
    timezone: str
    departments: Mapping[str, Department]
    value_maps: Mapping[str, ValueMap]
    entities: Mapping[str, Entity]
    forms: Mapping[str, Form]
    crm_activities: Mapping[str, Activity]

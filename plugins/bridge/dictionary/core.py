"""The loaded data dictionary: model plus the mapping operations the bridge calls.

Built by ``bridge.dictionary.load()``; immutable. Per-entity and per-form
mapping plans are compiled once in the constructor, so the per-record
methods (``from_crm``, ``from_oa``, ``content_hash``) do no parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.dictionary import formats, mapping
from bridge.dictionary.model import Contents, Entity, Form, MappingResult, Problem


class Dictionary:
    """``include/dictionary.yaml``, validated. Use ``bridge.dictionary.load()`` to get one."""

    def __init__(self, contents: Contents) -> None:
        self.path = contents.path
        self.version = contents.version
        self.timezone = contents.timezone
        self.departments = dict(contents.departments)
        self.value_maps = dict(contents.value_maps)
        self.entities = dict(contents.entities)
        self.forms = dict(contents.forms)
        self.crm_activities = dict(contents.crm_activities)
        self._plans = {name: mapping.compile_entity(e, self.value_maps) for name, e in self.entities.items()}
        self._form_plans = {name: mapping.compile_form(f, self.entities) for name, f in self.forms.items()}

    def __repr__(self) -> str:
        return (
            f"Dictionary(version={self.version!r}, path={str(self.path)!r}, entities={list(self.entities)})"
        )

    # ------------------------------------------------------------ lookup
    def entity(self, name: str) -> Entity:
        """The entity, or a ``KeyError`` that lists the known ones."""
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"unknown dictionary entity {name!r}; known: {', '.join(self.entities)}") from None

    def form(self, name: str) -> Form:
        try:
            return self.forms[name]
        except KeyError:
            raise KeyError(f"unknown form {name!r}; known: {', '.join(self.forms)}") from None

    def _plan(self, entity: str) -> mapping.EntityPlan:
        plan = self._plans.get(entity)
        if plan is None:
            self.entity(entity)  # raises the explanatory KeyError
        return plan  # type: ignore[return-value]

    def crm_properties(self, entity: str) -> list[str]:
        """HubSpot properties to request for the entity (search/batch-read ``properties``)."""
        return list(self._plan(entity).crm_properties)

    def hash_fields(self, entity: str) -> tuple[str, ...]:
        """The fields ``content_hash`` covers."""
        return self._plan(entity).hash_fields

    # ------------------------------------------------------------ vendor → canonical
    def from_crm(self, entity: str, obj: Any, associations: Mapping[str, Any] | None = None) -> MappingResult:
        """A HubSpot object → canonical record and problems; never raises on bad input.

        ``associations`` is ``{object type: [ids]}`` for this object (e.g.
        ``{"companies": ["3001"]}`` from ``CrmHook.read_associations``); without
        it the object's own v3 ``associations`` block is used when present.
        """
        plan = self._plan(entity)
        if plan.entity.system != "crm":
            raise ValueError(f"entity {entity} is an OA entity; use from_oa")
        return mapping.from_crm(self, plan, obj, associations)

    def from_oa(self, entity: str, instance: Any) -> MappingResult:
        """A Feishu instance detail (``form`` a JSON string) → canonical record and problems; never raises on bad input."""
        plan = self._plan(entity)
        if plan.entity.system != "oa":
            raise ValueError(f"entity {entity} is a CRM entity; use from_crm")
        return mapping.from_oa(self, plan, instance)

    def from_values(self, entity: str, values: Mapping[str, Any]) -> MappingResult:
        """``{field name: value}`` of a ``read_by`` entity (a hook's typed record, a spreadsheet row) →
        canonical record and problems; enums accept the canonical value or its label; never raises on bad input."""
        plan = self._plan(entity)
        if not plan.entity.read_by:
            raise ValueError(f"entity {entity} is read from vendor records; use from_crm / from_oa")
        return mapping.from_values(self, plan, values)

    def sensitive_fields(self, entity: str) -> tuple[str, ...]:
        """The fields marked ``sensitive`` (personal sensitive information under PIPL)."""
        return tuple(f.name for f in self.entity(entity).fields.values() if f.sensitive)

    def content_hash(self, entity: str, record: Mapping[str, Any]) -> str:
        """sha256 over the fields owned by the entity's system, modification time excluded; stable across processes."""
        return mapping.content_hash(self._plan(entity), record)

    def check_transition(
        self, entity: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> list[Problem]:
        """``invalid_transition`` problems for enum changes the value maps do not allow (old = last snapshot)."""
        return mapping.check_transition(self, self._plan(entity), old, new)

    def record_id(self, entity: str, record: Mapping[str, Any]) -> str | None:
        value = record.get(self.entity(entity).id_field)
        return None if value is None else str(value)

    def modified_ms(self, entity: str, record: Mapping[str, Any]) -> int | None:
        """Source modification time of a canonical record in epoch milliseconds (watermarks, snapshots)."""
        value = record.get(self.entity(entity).modified_field)
        return formats.datetime_to_ms(value) if isinstance(value, str) else None

    def data_owner(self, entity: str, record: Mapping[str, Any]) -> str | None:
        """The owner/applicant id of the record (谁产生谁负责), or None."""
        name = self.entity(entity).data_owner_field
        value = record.get(name) if name else None
        return None if value is None else str(value)

    # ------------------------------------------------------------ canonical → vendor
    def fill_form(
        self, form: str, sources: Mapping[str, Mapping[str, Any] | None], policy: mapping.Projector
    ) -> list[dict[str, Any]]:
        """Feishu widget values ``[{id, type, value}]`` for an outbound form.

        ``sources`` maps ``deal``/``company``/``contact``/``notice`` to canonical
        records (``notice`` holds fields of the form's own OA entity). The
        policy for the form's audience is applied first: denied fields are
        left out, masked fields are sent masked; empty values are left out.
        """
        f = self.form(form)
        return mapping.fill_form(self, f, self._form_plans[form], sources, policy)

    def form_title(
        self, form: str, sources: Mapping[str, Mapping[str, Any] | None], policy: mapping.Projector
    ) -> str:
        """The instance title (``title`` template) with the policy of the form's audience applied.

        The policy is required, so a title never carries a value the audience may not see.
        """
        return mapping.form_title(self, self.form(form), sources, policy)

    def to_crm_properties(self, entity: str, record: Mapping[str, Any]) -> dict[str, str]:
        """HubSpot property strings for the fields present in ``record`` (read-only and derived ones skipped).

        Callers pass records already projected by the policy for the write's audience.
        """
        return mapping.to_crm_properties(self, self._plan(entity), record)

    def activity_properties(
        self, oa_entity: str, record: Mapping[str, Any], policy: mapping.Projector
    ) -> tuple[str, dict[str, str]]:
        """``(crm object type, properties)`` of the CRM activity for an approved OA record (``crm_activities``)."""
        return mapping.activity_properties(self, oa_entity, record, policy)

    def activity_due(self, oa_entity: str, record: Mapping[str, Any]) -> bool:
        """Whether the OA record's status is one that makes a CRM activity (``when_status``)."""
        activity = self.crm_activities.get(oa_entity)
        return activity is not None and record.get("approval_status") in activity.when_status

    # ------------------------------------------------------------ value maps
    def to_canonical(self, value_map: str, system: str, value: str) -> str | None:
        return self.value_maps[value_map].to_canonical(system, value)

    def from_canonical(self, value_map: str, system: str, value: str) -> str | None:
        return self.value_maps[value_map].from_canonical(system, value)

    def label(self, value_map: str, value: str) -> str | None:
        return self.value_maps[value_map].label_of(value)

    def allowed_transition(self, value_map: str, old: str | None, new: str | None) -> bool:
        return self.value_maps[value_map].allowed_transition(old, new)

"""What both sync directions share that is pure: directions, settings helpers, idempotency uuids, asset names.

The frame both directions run in (run object, lease, due changes, defer,
quarantine, audit, summaries) is :mod:`bridge.sync.frame`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge import settings as bridge_settings
from bridge.settings_model import DebounceSection, OaSection, Section

# Sync directions (watermarks, pending changes, quarantine, settings); the run kinds of
# run_summary are another spelling, in bridge.runkinds.
CRM_TO_OA = "crm_to_oa"
OA_TO_CRM = "oa_to_crm"

# Problems that stop a record from being sent: the target would get a wrong or
# empty value. ``invalid_format`` is blocking only on fields the target needs.
ALWAYS_BLOCKING = frozenset({"missing_required", "unmapped_value", "hostile_input"})
# The namespace of the bridge's idempotency uuids (uuid5 of purpose, record and version).
UUID_NAMESPACE = uuid.UUID("4b7c2f0e-9a51-5d3e-8c6a-b1d9e0f4a7c3")


class SyncSettingsError(ValueError):
    """A setting the sync needs is missing or unusable; the message names the key."""


SectionT = TypeVar("SectionT", bound=Section)


# ---------------------------------------------------------------- settings


def section(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One section of ``include/settings.yaml`` (empty when absent)."""
    value = settings.get(name) or {}
    if not isinstance(value, Mapping):
        raise SyncSettingsError(
            f"include/settings.yaml: {name} must be a section (key: value), not {value!r}"
        )
    return dict(value)


def direction_settings(
    settings: Mapping[str, Any] | None, name: str
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """All settings (``include/settings.yaml`` with its overrides unless given) and a direction's section."""
    if settings is None:
        settings = bridge_settings.load()
    return settings, section(settings, name)


def typed_section(settings: Mapping[str, Any], name: str, model: type[SectionT]) -> SectionT:
    """One section of ``include/settings.yaml`` as its typed model (:mod:`bridge.settings_model`)."""
    try:
        return bridge_settings.section_of(settings, name, model)
    except bridge_settings.SettingsError as exc:
        raise SyncSettingsError(str(exc)) from exc


def number(values: Mapping[str, Any], key: str, default: float, where: str, minimum: float = 0) -> float:
    """A numeric setting with its default; refuses text and values below ``minimum``."""
    raw = values.get(key, default)
    if raw is None:
        raw = default
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise SyncSettingsError(f"include/settings.yaml: {where}.{key} must be a number, not {raw!r}")
    if raw < minimum:
        raise SyncSettingsError(f"include/settings.yaml: {where}.{key} must be ≥ {minimum}, not {raw!r}")
    return float(raw)


@dataclass(frozen=True)
class DebounceSettings:
    """The debounce window: quiet for ``quiet_seconds``, never longer than ``max_delay_seconds``."""

    quiet_seconds: float = 60
    max_delay_seconds: float = 150

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DebounceSettings:
        values = typed_section(settings, "debounce", DebounceSection)
        return cls(quiet_seconds=values.quiet_seconds, max_delay_seconds=values.max_delay_seconds)


def approval_codes(settings: Mapping[str, Any]) -> dict[str, str]:
    """``oa.approval_codes``: form name → the tenant's approval code."""
    return typed_section(settings, "oa", OaSection).codes()


def approval_code(settings: Mapping[str, Any], form: str) -> str:
    code = approval_codes(settings).get(form)
    if not code:
        raise SyncSettingsError(
            f"include/settings.yaml: oa.approval_codes.{form} is not set: add the tenant's approval code "
            f"of the form {form} (Feishu admin console → approval → the definition's code)"
        )
    return code


# ---------------------------------------------------------------- idempotency


def idempotency_uuid(record_id: str, purpose: str, dictionary_version: str, *parts: object) -> str:
    """The Feishu ``uuid`` of a create: the same record, purpose, version and parts give the same uuid.

    A rerun of a crashed or cleared task sends the same uuid, so the OA refuses
    a second instance with it and the hook reads back the first one. Parts
    distinguish repeated writes of one purpose (e.g. the notice number and the
    new amount of a contract-amount notice).
    """
    name = "|".join([purpose, str(record_id), dictionary_version, *(str(p) for p in parts)])
    return str(uuid.uuid5(UUID_NAMESPACE, name))


# ---------------------------------------------------------------- assets


def asset_uri(system: str, entity: str) -> str:
    """The Airflow Asset URI of an entity the bridge writes, e.g. ``bridge://oa/project_initiation``."""
    return f"bridge://{system}/{entity}"

"""The settings of the CRM → OA sync: ``crm_to_oa``, ``debounce`` and ``oa`` of include/settings.yaml."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.dictionary import Dictionary
from bridge.settings_model import ContactCompanyRule
from bridge.sync.common import (
    DebounceSettings,
    SyncSettingsError,
    approval_code,
    direction_settings,
    number,
    section,
)

ENTITY_ORDER = ("company", "contact", "deal")
CONTACT_COMPANY_RULES: tuple[str, ...] = typing.get_args(ContactCompanyRule)


def _contact_company(value: Any) -> str:
    """``crm_to_oa.contact_company`` (empty: primary), refused with the allowed values when unknown."""
    if value is None or value == "":
        return "primary"
    if value not in CONTACT_COMPANY_RULES:
        raise SyncSettingsError(
            f"include/settings.yaml: crm_to_oa.contact_company must be one of {', '.join(CONTACT_COMPANY_RULES)} "
            f"(which of a contact's companies makes it a contact of a deal's customer); got {value!r}"
        )
    return str(value)


@dataclass(frozen=True)
class CrmToOaSettings:
    """``crm_to_oa``, ``debounce`` and ``oa`` of include/settings.yaml, checked."""

    entities: tuple[str, ...] = ENTITY_ORDER
    initiation_stages: frozenset[str] = frozenset({"contract", "won"})
    lookback_ms: int = 120_000
    page_size: int = 200
    debounce: DebounceSettings = field(default_factory=DebounceSettings)
    max_changes_per_run: int = 1000
    # First run (no watermark yet): records modified this long before it are
    # queued; older ones are only staged (history belongs to the migration).
    # None = queue everything.
    initial_backfill_seconds: float | None = 86_400
    create_chunk: int = 50
    writeback_batch: int = 100
    retry_delay_seconds: float = 60
    # The archived-deals sweep: a pass starts at most this often; list pages (of 100) read per run.
    archive_sweep_seconds: float = 900
    archive_sweep_pages: int = 5
    # Which of a contact's companies counts when a deal's 客户联系人 is chosen (settings_model.ContactCompanyRule).
    contact_company: str = "primary"
    approval_codes: Mapping[str, str] = field(default_factory=dict)
    notice_applicant_email: str | None = None
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> CrmToOaSettings:
        where = "crm_to_oa"
        settings, values = direction_settings(settings, where)
        entities = tuple(str(e) for e in values.get("entities") or ENTITY_ORDER)
        unknown = [e for e in entities if e not in ENTITY_ORDER]
        if unknown or "deal" not in entities:
            raise SyncSettingsError(
                f"include/settings.yaml: crm_to_oa.entities must list CRM entities of {list(ENTITY_ORDER)} "
                f"including deal; got {list(entities)}"
            )
        stages = values.get("initiation_stages") or ["contract", "won"]
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
            raise SyncSettingsError(
                "include/settings.yaml: crm_to_oa.initiation_stages must be a list of deal stages"
            )
        backfill = values.get("initial_backfill_hours", 24)
        sweep, sweep_at = section(values, "archive_sweep"), f"{where}.archive_sweep"
        oa = section(settings, "oa")
        codes = section(oa, "approval_codes")
        return cls(
            entities=tuple(e for e in ENTITY_ORDER if e in entities),
            initiation_stages=frozenset(stages),
            lookback_ms=int(number(values, "lookback_seconds", 120, where) * 1000),
            page_size=int(number(values, "page_size", 200, where, minimum=1)),
            debounce=DebounceSettings.from_settings(settings),
            max_changes_per_run=int(number(values, "max_changes_per_run", 1000, where, minimum=1)),
            initial_backfill_seconds=None
            if backfill is None
            else number(values, "initial_backfill_hours", 24, where) * 3600,
            create_chunk=int(number(values, "create_chunk", 50, where, minimum=1)),
            writeback_batch=int(min(100, number(values, "writeback_batch", 100, where, minimum=1))),
            retry_delay_seconds=number(values, "retry_delay_seconds", 60, where),
            archive_sweep_seconds=number(sweep, "every_minutes", 15, sweep_at) * 60,
            archive_sweep_pages=int(number(sweep, "max_pages", 5, sweep_at, minimum=1)),
            contact_company=_contact_company(values.get("contact_company")),
            approval_codes={str(k): str(v) for k, v in codes.items() if v},
            notice_applicant_email=str(oa["notice_applicant_email"])
            if oa.get("notice_applicant_email")
            else None,
        )

    def check(self, dictionary: Dictionary) -> None:
        """Refuse settings that name stages the dictionary does not know."""
        stages = set(dictionary.value_maps["deal_stage"].canonical_values)
        unknown = sorted(self.initiation_stages - stages)
        if unknown:
            raise SyncSettingsError(
                f"include/settings.yaml: crm_to_oa.initiation_stages has {unknown}, which are not canonical "
                f"values of value_maps.deal_stage in {dictionary.path} ({sorted(stages)})"
            )

    def code(self, form: str) -> str:
        return approval_code({"oa": {"approval_codes": dict(self.approval_codes)}}, form)

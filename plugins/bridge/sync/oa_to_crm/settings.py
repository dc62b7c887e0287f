"""The settings of the OA → CRM sync: ``oa_to_crm`` and ``oa.approval_codes`` of include/settings.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.dictionary import Dictionary
from bridge.sync.common import SyncSettingsError, approval_code, direction_settings, number, section
from bridge.sync.oa_to_crm import decide as rules

FORMS = ("project_initiation", "expense_claim", "travel_request", "visit_plan")


@dataclass(frozen=True)
class OaToCrmSettings:
    """``oa_to_crm`` and ``oa.approval_codes`` of include/settings.yaml, checked."""

    forms: tuple[str, ...] = FORMS
    max_instance_reads_per_run: int = 2000
    lookback_ms: int = 300_000
    status_query_page_size: int = 200
    # First run (no watermark): instances created this long before it are read; older ones only
    # through the status sweeps of instances the hub already holds, or a backfill.
    initial_backfill_seconds: float = 86_400
    # Decided (approved/rejected/withdrawn) this recently: swept every run like pending ones.
    recent_decision_ms: int = 30 * 86_400_000
    cold_spans_per_run: int = 1
    query_lag_ms: int = 60_000
    max_list_windows_per_run: int = 200
    max_changes_per_run: int = 2000
    write_batch: int = 100
    quiet_seconds: float = 0
    retry_delay_seconds: float = 60
    # An activity whose instance was revoked or deleted: marked (voided in place) or archived in the CRM.
    revoked_activities: rules.RevokedActivities = "mark"
    approval_codes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> OaToCrmSettings:
        where = "oa_to_crm"
        settings, values = direction_settings(settings, where)
        forms = tuple(str(f) for f in values.get("forms") or FORMS)
        page = int(number(values, "status_query_page_size", 200, where, minimum=5))
        if page > 200:
            raise SyncSettingsError(
                f"include/settings.yaml: {where}.status_query_page_size must be 5–200 "
                f"(Feishu's instances/query limit), not {page}"
            )
        backfill = values.get("initial_backfill_hours", 24)
        if backfill is None:
            raise SyncSettingsError(
                f"include/settings.yaml: {where}.initial_backfill_hours must be a number of "
                f"hours (history is the migration's job, or a run with backfill_days)"
            )
        codes = section(section(settings, "oa"), "approval_codes")
        return cls(
            forms=forms,
            max_instance_reads_per_run=int(
                number(values, "max_instance_reads_per_run", 2000, where, minimum=1)
            ),
            lookback_ms=int(number(values, "lookback_seconds", 300, where) * 1000),
            status_query_page_size=page,
            initial_backfill_seconds=number(values, "initial_backfill_hours", 24, where) * 3600,
            recent_decision_ms=int(number(values, "recent_decision_days", 30, where) * 86_400_000),
            cold_spans_per_run=int(number(values, "cold_spans_per_run", 1, where)),
            query_lag_ms=int(number(values, "query_lag_seconds", 60, where) * 1000),
            max_list_windows_per_run=int(number(values, "max_list_windows_per_run", 200, where, minimum=1)),
            max_changes_per_run=int(number(values, "max_changes_per_run", 2000, where, minimum=1)),
            write_batch=int(min(100, number(values, "write_batch", 100, where, minimum=1))),
            quiet_seconds=number(values, "quiet_seconds", 0, where),
            retry_delay_seconds=number(values, "retry_delay_seconds", 60, where),
            revoked_activities=_revoked(values.get("revoked_activities"), where),
            approval_codes={str(k): str(v) for k, v in codes.items() if v},
        )

    def check(self, dictionary: Dictionary) -> None:
        """Refuse forms the dictionary does not sync to the CRM, and forms without an approval code."""
        known = {rules.PROJECT_FORM, *rules.activity_forms(dictionary)}
        unknown = [f for f in self.forms if f not in known]
        if unknown:
            raise SyncSettingsError(
                f"include/settings.yaml: oa_to_crm.forms has {unknown}: only 立项申请 (project_initiation) and the "
                f"forms of crm_activities in {dictionary.path} ({sorted(known - {rules.PROJECT_FORM})}) go to the CRM"
            )
        for form in self.forms:
            self.code(form)

    def code(self, form: str) -> str:
        return approval_code({"oa": {"approval_codes": dict(self.approval_codes)}}, form)


def _revoked(raw: Any, where: str) -> rules.RevokedActivities:
    """``revoked_activities``: mark (the default, also for an empty value) or remove."""
    if raw in (None, "", "mark"):
        return "mark"
    if raw == "remove":
        return "remove"
    raise SyncSettingsError(
        f"include/settings.yaml: {where}.revoked_activities must be mark or remove, not {raw!r}"
    )

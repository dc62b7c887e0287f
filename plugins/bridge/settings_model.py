"""Typed shape of ``include/settings.yaml``: pydantic models, one per section the bridge's engines read.

:func:`bridge.settings.load_typed` validates the file (with its
``BRIDGE__SECTION__KEY`` overrides applied) into a frozen :class:`BridgeSettings`,
so no engine re-checks numbers, minimums or section shapes by hand. Unknown
keys of a typed section are refused (``extra="forbid"``): a misspelt key would
otherwise silently keep its default. Sections validated by their own modules
(``ui``, ``report``, ``data_health``, ``calendar``, ``wallboard``, ``events``)
are carried as plain mappings here.

An empty value in the YAML (``key:``) means "the default", as it always has;
only the settings whose ``None`` has a meaning of its own (documented on the
field) keep it.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


def _whole_number(value: Any) -> Any:
    """YAML ``200.0`` is the count 200; text, booleans and fractions stay invalid (strict ``int`` refuses them)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text(value: Any) -> Any:
    """A code or address written as a YAML number is still that text; booleans are not."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text)]
Seconds = Annotated[float, Field(strict=True, ge=0)]
Count = Annotated[int, BeforeValidator(_whole_number), Field(strict=True, ge=1)]
Amount = Annotated[int, BeforeValidator(_whole_number), Field(strict=True, ge=0)]


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(annotation)


class Section(BaseModel):
    """A section of settings.yaml: frozen, strict about unknown keys; ``key:`` (empty) means the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if value is not None or key not in fields or _allows_none(fields[key].annotation)
        }


class DebounceSection(Section):
    """``debounce``: a changed record is sent when quiet this long, never later than ``max_delay_seconds``."""

    quiet_seconds: Seconds = 60
    max_delay_seconds: Seconds = 150


class ArchiveSweepSection(Section):
    """``crm_to_oa.archive_sweep``: a pass over the CRM's archived deals at most every ``every_minutes``,
    at most ``max_pages`` list pages (100 records each) per run, resumed from a cursor."""

    every_minutes: Seconds = 15
    max_pages: Count = 5


# crm_to_oa.contact_company: which of a contact's companies makes it a contact of a deal's customer (the
# 客户联系人 of its 立项申请): its primary company (HubSpot's associatedcompanyid), any of its companies when
# one is the deal's, or the first HubSpot lists.
ContactCompanyRule = Literal["primary", "deal_company", "first"]


class CrmToOaSection(Section):
    """``crm_to_oa``: the CRM → OA sync (entity names and stages are checked against the dictionary by the engine)."""

    entities: tuple[str, ...] | None = None  # None: every CRM entity, in the engine's order
    initiation_stages: tuple[Annotated[str, Field(strict=True)], ...] | None = None  # None: contract, won
    lookback_seconds: Seconds = 120
    page_size: Count = 200
    max_changes_per_run: Count = 1000
    # None (written ``initial_backfill_hours: null``… or left empty) queues the whole history on a first run.
    initial_backfill_hours: Seconds | None = 24
    create_chunk: Count = 50
    writeback_batch: Count = 100
    retry_delay_seconds: Seconds = 60
    archive_sweep: ArchiveSweepSection = ArchiveSweepSection()
    contact_company: ContactCompanyRule = "primary"


class OaToCrmSection(Section):
    """``oa_to_crm``: the OA → CRM sync."""

    forms: tuple[str, ...] | None = None  # None: every form the dictionary sends to the CRM
    max_instance_reads_per_run: Count = 2000
    lookback_seconds: Seconds = 300
    status_query_page_size: Annotated[
        int, BeforeValidator(_whole_number), Field(strict=True, ge=5, le=200)
    ] = 200
    initial_backfill_hours: Seconds | None = 24  # None is refused (see the validator)
    recent_decision_days: Seconds = 30
    cold_spans_per_run: Amount = 1
    query_lag_seconds: Seconds = 60
    max_list_windows_per_run: Count = 200
    max_changes_per_run: Count = 2000
    write_batch: Count = 100
    quiet_seconds: Seconds = 0
    retry_delay_seconds: Seconds = 60
    revoked_activities: Literal["mark", "remove"] = "mark"  # activities of revoked or deleted instances

    @field_validator("initial_backfill_hours")
    @classmethod
    def _history_is_the_migrations_job(cls, value: float | None) -> float:
        if value is None:
            raise ValueError(
                "must be a number of hours (history is the migration's job, or a run with backfill_days)"
            )
        return value


class OaSection(Section):
    """``oa``: the tenant's approval codes per form and the applicant of bridge-made notices."""

    approval_codes: dict[Text, Text | None] = Field(default_factory=dict)
    notice_applicant_email: Text | None = None

    def codes(self) -> dict[str, str]:
        """Form name → approval code, forms without a code left out."""
        return {str(form): str(code) for form, code in self.approval_codes.items() if code}


class AuditSection(Section):
    """``audit``: the acting service principal written into every audit entry."""

    principal: Text | None = None


Scale = tuple[Annotated[int, Field(strict=True)], Annotated[int, Field(strict=True)]]


class JourneySection(Section):
    """``journey``: the customer-journey sources staged by ``journey_sync`` (docs/journey.md)."""

    # Folder of CSV/XLSX files to import (satisfaction answers, performance ratings); None: <data dir>/journey_import.
    import_dir: Text | None = None
    max_import_bytes: Count = 20 * 1024 * 1024
    max_import_rows: Count = 50_000
    # Lowest and highest rating of each survey type (value_maps.survey_type); an answer outside is quarantined.
    rating_scales: dict[Text, Scale] = Field(
        default_factory=lambda: {"NPS": (0, 10), "CSAT": (1, 5), "CES": (1, 7)}
    )
    # NPS buckets of a 0–10 answer: promoter from this value, passive from that one, detractor below.
    nps_promoter_from: Annotated[int, Field(strict=True, ge=0, le=10)] = 9
    nps_passive_from: Annotated[int, Field(strict=True, ge=0, le=10)] = 7
    # Re-read before the feedback watermark (ties on one millisecond, late commits).
    lookback_seconds: Seconds = 120
    # A review period's results are read again until this long after the period ended (results are
    # opened and corrected in the weeks after); then the period is settled and not read again.
    performance_settle_days: Seconds = 60
    # A dropped file changed this recently may still be being copied: it waits for the next run.
    import_quiet_seconds: Seconds = 60
    # Policy roles that may upload import files on the bridge page /journey/import (表格导入).
    upload_roles: tuple[Text, ...] = ("hr", "management")
    # Re-read the history of the sources from this date (Beijing time) back to now, whatever the watermarks say
    # (the migration path, docs/journey.md): normally empty; the journey_sync Param 起始日期 sets it for one run.
    history_since: date | None = None

    @model_validator(mode="after")
    def _scales_ordered(self) -> JourneySection:
        for kind, (low, high) in self.rating_scales.items():
            if low >= high:
                raise ValueError(f"rating_scales.{kind} must be [lowest, highest] with lowest < highest")
        if self.nps_passive_from > self.nps_promoter_from:
            raise ValueError("nps_passive_from must not be above nps_promoter_from")
        return self


DocClass = Literal["contract", "invoice", "other"]
_FORM_CLASSES: dict[str, DocClass] = {"expense_claim": "invoice", "travel_request": "other"}
_ACCEPTABLE_KINDS = ("pdf", "jpeg", "png", "ofd", "docx", "xlsx", "pptx", "office_legacy", "zip")


def _kinds(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = [k for k in value if k not in _ACCEPTABLE_KINDS]
    if bad:
        raise ValueError(f"kinds {bad} are not content kinds the bridge accepts {list(_ACCEPTABLE_KINDS)}")
    return value


class ContractFilesSection(Section):
    """``attachments.crm_to_oa``: which files of a deal are its contract files (into the 立项申请)."""

    folders: tuple[Text, ...] = ()  # CRM folder paths (a file in one of them or below); empty: any folder
    name_pattern: Text | None = None  # a regular expression searched in the file name; None: any name
    kinds: tuple[str, ...] = ("pdf", "ofd", "docx", "jpeg", "png")  # by content (magic bytes)
    doc_class: DocClass = "contract"
    widget: Text = "attachments"  # the 立项申请's attachment widget (include/dictionary.yaml forms)

    _check_kinds = field_validator("kinds")(_kinds)

    @field_validator("name_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a regular expression ({exc})") from None
        return value


class ApprovalFilesSection(Section):
    """``attachments.oa_to_crm``: the approved forms whose files go to the CRM, and where."""

    forms: tuple[Text, ...] = ("expense_claim", "travel_request")
    kinds: tuple[str, ...] = ("pdf", "ofd", "jpeg", "png", "docx", "xlsx")
    folder: Text = "/bridge/{company_id}"  # the CRM folder of a customer's files ({company_id})
    doc_classes: dict[Text, DocClass] = Field(default_factory=lambda: dict(_FORM_CLASSES))

    _check_kinds = field_validator("kinds")(_kinds)


class AttachmentsSection(Section):
    """``attachments``: files follow their records (docs/attachments.md); off until the scopes are granted."""

    enabled: bool = False
    # Largest file transferred, MiB (Feishu takes at most 50 MB attachments whatever this says).
    max_mb: Annotated[float, BeforeValidator(_whole_number), Field(strict=True, gt=0)] = 50
    download_attempts: Count = 2  # a download cut off half way is tried again this many times in all
    crm_to_oa: ContractFilesSection = ContractFilesSection()
    oa_to_crm: ApprovalFilesSection = ApprovalFilesSection()


class BridgeSettings(Section):
    """All of ``include/settings.yaml``, validated; every section present (defaults when the file omits it)."""

    crm_to_oa: CrmToOaSection = Field(default_factory=CrmToOaSection)
    debounce: DebounceSection = Field(default_factory=DebounceSection)
    oa_to_crm: OaToCrmSection = Field(default_factory=OaToCrmSection)
    oa: OaSection = Field(default_factory=OaSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    attachments: AttachmentsSection = Field(default_factory=AttachmentsSection)
    journey: JourneySection = Field(default_factory=JourneySection)
    # Validated where they are used (bridge.settings.ui_roles, quality.config, workdays, ui.wallboard, events.config).
    ui: dict[str, Any] = Field(default_factory=dict)
    report: dict[str, Any] = Field(default_factory=dict)
    data_health: dict[str, Any] = Field(default_factory=dict)
    calendar: dict[str, Any] = Field(default_factory=dict)
    wallboard: dict[str, Any] = Field(default_factory=dict)
    events: dict[str, Any] = Field(default_factory=dict)
    journey_views: dict[str, Any] = Field(default_factory=dict)  # checked by bridge.journey.view_settings


def explain(error: ValidationError, source: str, prefix: str = "") -> str:
    """pydantic's errors as one line per problem: ``<source>: <section>.<key> must …, not <value>``."""
    return "; ".join(_explain_one(item, source, prefix) for item in error.errors())


# pydantic error type → the phrase after "<source>: <section>.<key>" (the engines' old wording).
_PHRASES = {
    "float_type": "must be a number, not {value!r}",
    "int_type": "must be a whole number, not {value!r}",
    "greater_than_equal": "must be ≥ {ge:g}, not {value!r}",
    "less_than_equal": "must be ≤ {le:g}, not {value!r}",
    "value_error": "{error}",
    "extra_forbidden": "is not a known setting (misspelt?)",
    "model_type": "must be a section (key: value), not {value!r}",
    "dict_type": "must be a section (key: value), not {value!r}",
}


def _explain_one(item: Mapping[str, Any], source: str, prefix: str) -> str:
    key = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
    phrase = _PHRASES.get(item["type"], "— {msg}, not {value!r}")
    return f"{source}: {key} " + phrase.format(
        value=item.get("input"), msg=item["msg"], **(item.get("ctx") or {})
    )

"""Settings of the journey views (pages, report sections, people × satisfaction): ``journey_views:`` of
``include/settings.yaml`` (overrides ``BRIDGE__JOURNEY_VIEWS__<KEY>``).

A section of its own beside ``journey:`` (the staging's, :class:`bridge.settings_model.JourneySection`): each
is checked by its own model, so a mistake in one does not stop the readers of the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from bridge import settings
from bridge.settings_model import Section, explain

SECTION = "journey_views"


class JourneyViews(Section):
    """What the journey page, the people × satisfaction page and the report sections need to know."""

    # No CSAT/NPS figure (nor a correlation point) from fewer survey answers than this.
    min_responses: int = Field(default=5, ge=1)
    # Performance figures of people are shown to others only over groups at least this large (PIPL).
    min_group_size: int = Field(default=5, ge=2)
    correlation: Literal["spearman", "pearson"] = "spearman"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    # Performance levels as numbers (a result with a score uses the score).
    rating_points: dict[str, float] = Field(
        default_factory=lambda: {"S": 5.0, "A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}
    )
    # Who is who: Airflow user name → CRM owner id (their own customers; their place in the chain).
    user_owners: dict[str, str] = Field(default_factory=dict)
    # The management chain: CRM owner id → CRM owner id of that person's manager.
    managers: dict[str, str] = Field(default_factory=dict)
    # Roles that see every customer's journey; anyone else sees the customers of themselves and their reports.
    all_customers_roles: list[str] = Field(default_factory=lambda: ["management", "marketing"])
    # Roles that see the funnel per campaign.
    funnel_roles: list[str] = Field(default_factory=lambda: ["management", "marketing", "sales_manager"])
    # Roles that may open 绩效与满意度 at all (individual rows still follow the policy and the chain).
    people_page_roles: list[str] = Field(default_factory=lambda: ["hr", "management"])
    # The pages compute the whole-hub facts (funnel, people × satisfaction) at most this often (0: every view).
    cache_seconds: float = Field(default=300, ge=0)


def journey_views(raw: Mapping[str, Any] | None = None) -> JourneyViews:
    """``journey_views`` checked (defaults when absent); :class:`bridge.settings.SettingsError` names the key."""
    data = raw if raw is not None else settings.load()
    section = data.get(SECTION) or {}
    if not isinstance(section, Mapping):
        raise settings.SettingsError(f"include/settings.yaml: {SECTION} 必须是映射（key: value）。")
    try:
        return JourneyViews.model_validate(dict(section))
    except ValidationError as exc:
        raise settings.SettingsError(explain(exc, "include/settings.yaml", prefix=SECTION)) from exc


def chain_above(owner_id: str, managers: Mapping[str, str]) -> list[str]:
    """The managers of ``owner_id``, nearest first (a loop in the mapping stops at the repeat)."""
    out: list[str] = []
    seen = {owner_id}
    current = managers.get(owner_id)
    while current is not None and current not in seen:
        out.append(current)
        seen.add(current)
        current = managers.get(current)
    return out


def reports_of(owner_id: str, managers: Mapping[str, str]) -> set[str]:
    """``owner_id`` and everyone whose management chain includes them."""
    return {owner_id} | {person for person in managers if owner_id in chain_above(person, managers)}

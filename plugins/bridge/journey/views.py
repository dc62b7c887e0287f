"""What the journey pages and report sections show a viewer: scope, timeline, funnel, people × satisfaction.

The pages (:mod:`bridge.ui.routes.journey`) and the report (:mod:`bridge.report.journey_sections`) call these;
each takes a hub connection and returns plain data. The rules (docs/journey.md, *Pages* and *PIPL*):

* customers: roles of ``journey.all_customers_roles`` see every customer; anyone else the customers owned by
  themselves and the people below them in ``journey.managers`` (who they are: ``journey.user_owners``);
* funnel: roles of ``journey.funnel_roles``;
* people × satisfaction: a person's row only for the roles the permission policy lets see
  ``performance_review.rating`` (人力资源部) and that person's management chain; aggregates for everyone else.
  Every answer that shows a person's row is audited (operation ``view_personal_data``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from bridge import people
from bridge.context import RunContext
from bridge.hub import audit
from bridge.journey import funnel as funnel_mod
from bridge.journey import marts, people_csat, timeline
from bridge.journey.view_settings import JourneyViews, reports_of
from bridge.permissions import Policy
from bridge.permissions_documents import DocumentAccess

REVIEW = marts.REVIEW
AUDIT_OPERATION = "view_personal_data"


@dataclass(frozen=True)
class Looker:
    """Who is looking: Airflow user name, policy role, and the CRM owner id they are (if mapped)."""

    name: str
    role: str
    owner_id: str | None

    @classmethod
    def of(cls, name: str, role: str, views: JourneyViews) -> Looker:
        return cls(name, role, views.user_owners.get(name))


def customer_scope(looker: Looker, views: JourneyViews) -> set[str] | None:
    """Owner ids whose customers the looker sees; None = every customer."""
    if looker.role in views.all_customers_roles:
        return None
    return reports_of(looker.owner_id, views.managers) if looker.owner_id else set()


def may_see_customer(company: marts.store.Snapshot, scope: set[str] | None) -> bool:
    return scope is None or str(company.payload.get("owner_id")) in scope


# ---------------------------------------------------------------- funnel
@dataclass(frozen=True)
class FunnelView:
    rows: list[funnel_mod.FunnelRow]
    names: dict[str, str]

    def name(self, campaign_id: str) -> str:
        if not campaign_id:
            return marts.NO_CAMPAIGN
        return self.names.get(campaign_id) or f"营销活动 {campaign_id}"


class FactsCache:
    """Whole-hub facts computed at most every ``seconds`` per hub and kind, shared by every viewer of one app
    (a hub of 20,000 customers takes seconds to read; docs/journey.md *Marts*). Each viewer's projection,
    filtering and audit still happen per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, key: tuple[str, str], seconds: float, compute: Callable[[], Any]) -> tuple[Any, float]:
        """The facts and when they were computed (epoch seconds)."""
        with self._lock:
            hit = self._kept.get(key)
            if hit is not None and time.time() - hit[0] < seconds:
                return hit[1], hit[0]
        value, at = compute(), time.time()
        with self._lock:
            self._kept[key] = (at, value)
        return value, at


def funnel_view(
    conn: Connection, view: marts.Projection, facts: marts.FunnelFacts | None = None
) -> FunnelView:
    """The funnel per campaign; campaign names only when the role sees them (else the id)."""
    facts = facts if facts is not None else marts.funnel_facts(conn)
    names = facts.campaign_names if view.allowed(marts.CAMPAIGN, "name") else {}
    return FunnelView(funnel_mod.funnel(facts.touches, facts.deals), names)


# ---------------------------------------------------------------- people × satisfaction
def individual_roles(policy: Policy) -> list[str]:
    """Roles that see every person's rating: those the policy lets see ``performance_review.rating``."""
    if REVIEW not in policy.dictionary.entities:
        return ["hr"]
    return [r for r in policy.roles if policy.allowed(REVIEW, "rating", r)]


def rules_of(views: JourneyViews) -> people_csat.Rules:
    return people_csat.Rules(
        views.min_responses,
        views.min_group_size,
        views.correlation,
        views.confidence,
        dict(views.rating_points),
    )


@dataclass
class PeopleView:
    period_ids: list[str]
    period: people_csat.Period | None
    periods: dict[str, people_csat.Period]
    rows: list[people_csat.OwnerPeriod]  # the rows this looker may see individually
    hidden_people: int  # reviewed people of the period not shown individually
    groups: list[people_csat.GroupFigure]
    suppressed: int  # people in no shown group
    correlations: list[people_csat.TeamCorrelation]
    names: dict[str, str] = field(default_factory=dict)
    unlinked_reviews: int = 0
    individual: bool = False  # whether the looker sees some person's row


def _period_order(periods: dict[str, people_csat.Period]) -> list[str]:
    far = datetime.min.replace(tzinfo=UTC)
    return sorted(periods, key=lambda p: (periods[p].end or far, p), reverse=True)


def people_view(
    conn: Connection,
    looker: Looker,
    policy: Policy,
    views: JourneyViews,
    period_id: str | None = None,
    facts: marts.PeopleFacts | None = None,
) -> PeopleView:
    """The period's rows the looker may see, the groups and correlations for everyone; newest period by default."""
    facts = facts if facts is not None else marts.people_facts(conn)
    rules = rules_of(views)
    order = _period_order(facts.periods)
    chosen = period_id if period_id in facts.periods else (order[0] if order else None)
    all_rows = [
        r
        for r in people_csat.owner_periods(facts.reviews, facts.periods, facts.answers, facts.deals, rules)
        if r.period_id == chosen
    ]
    who = people_csat.Viewer(looker.role, looker.owner_id)
    every = individual_roles(policy)
    mine = [r for r in all_rows if people_csat.may_see_person(who, r.owner_id, every, views.managers)]
    # A team smaller than a group shows no correlation to anyone who does not see its rows anyway.
    team_ok = bool(mine) or len(all_rows) >= rules.min_group_size
    correlations = people_csat.team_correlations(all_rows, rules) if team_ok else []
    return PeopleView(
        order,
        facts.periods.get(chosen) if chosen else None,
        facts.periods,
        mine,
        len(all_rows) - len(mine),
        people_csat.group_figures(all_rows, rules),
        people_csat.suppressed_people(all_rows, rules).get(chosen or "", 0),
        correlations,
        people.names(conn, [r.owner_id for r in mine]),
        facts.unlinked_reviews,
        bool(mine),
    )


def audit_personal_view(
    conn: Connection, looker: Looker, policy: Policy, shown: Sequence[tuple[str, str]], where: str
) -> int:
    """One audit entry per (owner id, period id) whose performance figures ``looker`` was shown; the count."""
    if not shown:
        return 0
    ctx = RunContext.local(principal=looker.name[:120] or "unknown", dag_id="bridge-ui")
    events = [
        audit.AuditEvent(
            operation=AUDIT_OPERATION,
            system="oa",
            entity=REVIEW,
            record_ids={"owner_id": owner, "period_id": period},
            fields=["rating", "csat", "nps", "win_rate", "cycle_days"],
            outcome="shown",
            detail=f"{where}; role={looker.role}",
            policy_version=policy.version,
        )
        for owner, period in sorted(set(shown))
    ]
    return len(audit.record_many(conn, ctx, events))


# ---------------------------------------------------------------- timeline
def document_rule(policy: Policy, role: str) -> Callable[[str], bool]:
    """Whether the role sees that a customer's document of a class exists (listed or open, as on 客户文件)."""
    return lambda doc_class: policy.document_access(role, doc_class) is not DocumentAccess.NONE


def customer_timeline(
    conn: Connection,
    company_id: str,
    view: marts.Projection,
    *,
    now: datetime,
    may_see_document: Callable[[str], bool],
) -> timeline.Timeline | None:
    sources = marts.customer_sources(conn, company_id)
    if sources is None:
        return None
    spans = marts.stage_spans(conn, [d.source_id for d in sources.deals])
    labels = timeline.Labels.of(view.policy.dictionary)
    return timeline.build_timeline(sources, view, labels, spans, now=now, may_see_document=may_see_document)

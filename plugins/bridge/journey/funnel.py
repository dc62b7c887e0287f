"""The funnel per campaign (source → lead → deal → won) and new customers by source: pure, over plain facts.

Definitions (docs/journey.md, *Marts*):

* a **touch** is a contact's participation in a marketing event (dated by the participation, else the event's
  start; its campaign is the event's) or the contact's original source / first-touch campaign (dated when the
  bridge first saw the contact); a customer's **first touch** is the earliest touch of any of its contacts;
* **线索客户** of a campaign: customers whose first touch is that campaign; **触达联系人**: contacts with any
  touch of it;
* **商机客户**: of those, customers with a deal created on or after the first-touch day; **赢单客户**: with such a
  deal won (赢单 / 交付完成); conversions are the ratios of these counts;
* **周期** = median days from the first touch to the close date of the customer's first won deal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

WON = ("won", "delivered")
NO_CAMPAIGN = ""


@dataclass(frozen=True)
class Touch:
    company_id: str
    contact_id: str
    campaign_id: str | None
    source: str | None
    at: datetime


@dataclass(frozen=True)
class DealFact:
    company_id: str
    stage: str | None
    created: date | None
    closed: date | None


@dataclass(frozen=True)
class FunnelRow:
    campaign_id: str  # "" = first touch without a campaign (a source only)
    contacts: int
    leads: int
    with_deal: int
    won: int
    cycle_days: float | None

    def rate(self, num: int, den: int) -> float | None:
        return num / den if den else None

    @property
    def lead_to_deal(self) -> float | None:
        return self.rate(self.with_deal, self.leads)

    @property
    def deal_to_won(self) -> float | None:
        return self.rate(self.won, self.with_deal)

    @property
    def lead_to_won(self) -> float | None:
        return self.rate(self.won, self.leads)


def first_touches(touches: Iterable[Touch]) -> dict[str, Touch]:
    """company id → its earliest touch (a campaign touch wins a tie with a source-only one)."""
    best: dict[str, Touch] = {}
    for t in touches:
        current = best.get(t.company_id)
        key = (t.at, t.campaign_id is None, t.contact_id)
        if current is None or key < (current.at, current.campaign_id is None, current.contact_id):
            best[t.company_id] = t
    return best


def funnel(touches: Sequence[Touch], deals: Sequence[DealFact]) -> list[FunnelRow]:
    """One row per campaign that first-touched a customer or touched a contact, most leads first."""
    firsts = first_touches(touches)
    contacts: dict[str, set[str]] = defaultdict(set)
    for t in touches:
        contacts[t.campaign_id or NO_CAMPAIGN].add(t.contact_id)
    deals_of: dict[str, list[DealFact]] = defaultdict(list)
    for d in deals:
        deals_of[d.company_id].append(d)
    leads: dict[str, list[str]] = defaultdict(list)
    for company, t in firsts.items():
        leads[t.campaign_id or NO_CAMPAIGN].append(company)
    rows = []
    for campaign in set(contacts) | set(leads):
        with_deal = won = 0
        cycles: list[float] = []
        for company in leads.get(campaign, []):
            start = firsts[company].at.date()
            after = [d for d in deals_of.get(company, []) if d.created is not None and d.created >= start]
            with_deal += bool(after)
            closes = sorted(d.closed for d in after if d.stage in WON and d.closed is not None)
            if closes:
                won += 1
                cycles.append(float((closes[0] - start).days))
        rows.append(
            FunnelRow(
                campaign,
                len(contacts.get(campaign, ())),
                len(leads.get(campaign, [])),
                with_deal,
                won,
                float(median(cycles)) if cycles else None,
            )
        )
    return sorted(rows, key=lambda r: (-r.leads, -r.contacts, r.campaign_id))


def new_customers_by_source(
    created: Mapping[str, date | None], touches: Sequence[Touch], start: date, end: date
) -> dict[str, int]:
    """Customers created from ``start`` to ``end`` (inclusive), by the source of their first touch ("" unknown)."""
    firsts = first_touches(touches)
    out: dict[str, int] = defaultdict(int)
    for company, day in created.items():
        if day is None or not start <= day <= end:
            continue
        first = firsts.get(company)
        out[(first.source or "") if first else ""] += 1
    return dict(out)

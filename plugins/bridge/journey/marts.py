"""Customer journey marts: one timeline per customer across both systems, the funnel per campaign, deal stage
history, and the inputs of people × satisfaction — read from the hub's snapshots, computed on demand.

Everything here reads staged snapshots (the CRM → OA sync stages companies, contacts and deals; the OA → CRM
sync the OA approvals; the journey staging the campaigns, events, participations, survey answers and
performance results) and the hub tables ``xref`` (owner ⇄ OA user), ``document_link`` (attachments) and
``deal_stage_history`` (written here, by :func:`record_stage_changes`). Values leave only through the
permission policy (:class:`Projection`): an entity the viewer's role sees nothing of leaves no event, and
each event shows only the fields the role sees (masked where the policy masks them).

Stage durations come from ``deal_stage_history``: the CRM can hand out each property's history, but the CRM
hook does not request it and the simulator keeps none (docs/journey.md, *Marts*), so the history is recorded
from snapshot changes: each call of :func:`record_stage_changes` (the daily report's build calls it) adds a
row when a deal's staged stage differs from the last one recorded, dated by the deal's source modification
time. Two stage changes between two calls show as one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select

from bridge.chunks import chunked
from bridge.clock import from_ms
from bridge.hub import store
from bridge.hub.schema import deal_stage_history, document, document_link, snapshot
from bridge.permissions import Policy

TZ = ZoneInfo("Asia/Shanghai")
WON = ("won", "delivered")
LOST = ("lost",)
NO_CAMPAIGN = "（无营销活动）"
NO_SOURCE = "（来源未知）"

# The journey sources as staged (entity keys and canonical fields; docs/journey.md).
CAMPAIGN, EVENT, PARTICIPATION = "campaign", "marketing_event", "event_participation"
SOURCE = "contact_source"  # one per contact (source id = contact id): original source, first-touch campaign
FEEDBACK, REVIEW = "feedback_submission", "performance_review"
OA_FORMS = ("project_initiation", "expense_claim", "travel_request", "visit_plan")


# ---------------------------------------------------------------- values
def parse_time(value: Any) -> datetime | None:
    """A canonical datetime (ISO with offset) or date (YYYY-MM-DD, taken at 00:00 Beijing time) as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), TZ).astimezone(UTC)
    if isinstance(value, int | float):
        return from_ms(int(value))
    text = str(value)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), TZ).astimezone(UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def business_date(value: Any) -> date | None:
    if isinstance(value, str) and len(value) == 10:  # a canonical date is already a business date
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    at = parse_time(value)
    return at.astimezone(TZ).date() if at is not None else None


def number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- policy
@dataclass(frozen=True)
class Projection:
    """The viewer's role through the permission policy; entities the dictionary does not know are hidden."""

    policy: Policy
    role: str

    def sees(self, entity: str) -> bool:
        if entity not in self.policy.dictionary.entities:
            return False
        return bool(self.policy.visibility(entity, self.role))

    def shown(self, entity: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record as the role sees it; None when the role sees nothing of the entity."""
        if not self.sees(entity):
            return None
        return self.policy.project(entity, record, self.role)

    def allowed(self, entity: str, field_name: str) -> bool:
        return self.sees(entity) and bool(self.policy.allowed(entity, field_name, self.role))


# ---------------------------------------------------------------- stage history
def record_stage_changes(conn: Connection, *, now: datetime | None = None, batch: int = 5000) -> int:
    """Add a ``deal_stage_history`` row for every live staged deal whose stage differs from its last recorded
    one (a whole pass, no cursor: a deal staged late with an old modification time is not missed; a rerun adds
    nothing). The caller owns the transaction. Returns the rows added."""
    at = now or datetime.now(UTC)
    last = _last_stages(conn)
    query = select(
        snapshot.c.source_id, snapshot.c.source_modified_ms, snapshot.c.payload["stage"].as_string()
    ).where(snapshot.c.system == "crm", snapshot.c.entity == "deal", snapshot.c.deleted.is_(False))
    rows: list[dict[str, Any]] = []
    for deal_id, modified_ms, stage in conn.execute(query):
        known = last.get(str(deal_id))
        if known is not None and (known[0] == stage or known[1] >= int(modified_ms)):
            continue  # the same stage, or an older read than the recorded change
        basis = "snapshot" if known is not None else "first_seen"
        rows.append(
            {
                "deal_id": str(deal_id),
                "stage": stage,
                "entered_ms": int(modified_ms),
                "basis": basis,
                "recorded_at": at,
            }
        )
    for part in chunked(rows, batch):
        conn.execute(deal_stage_history.insert(), list(part))
    return len(rows)


def _last_stages(conn: Connection) -> dict[str, tuple[str | None, int]]:
    """deal id → (stage, entered_ms) of its latest recorded row."""
    out: dict[str, tuple[str | None, int]] = {}
    query = select(
        deal_stage_history.c.deal_id, deal_stage_history.c.stage, deal_stage_history.c.entered_ms
    ).order_by(deal_stage_history.c.deal_id, deal_stage_history.c.entered_ms, deal_stage_history.c.id)
    for deal_id, stage, entered in conn.execute(query):
        out[str(deal_id)] = (stage, int(entered))
    return out


@dataclass(frozen=True)
class StageSpan:
    """A deal's time in one stage: from ``start`` to ``end`` (None: still there)."""

    deal_id: str
    stage: str | None
    start: datetime
    end: datetime | None
    basis: str

    def days(self, now: datetime) -> float:
        return ((self.end or now) - self.start).total_seconds() / 86400


def stage_spans(conn: Connection, deal_ids: Iterable[str] | None = None) -> dict[str, list[StageSpan]]:
    """The recorded stages of the deals (all deals when None), oldest first, each ending where the next starts."""
    query = select(
        deal_stage_history.c.deal_id,
        deal_stage_history.c.stage,
        deal_stage_history.c.entered_ms,
        deal_stage_history.c.basis,
    )
    if deal_ids is not None:
        query = query.where(deal_stage_history.c.deal_id.in_(list(deal_ids)))
    rows: dict[str, list[tuple[str | None, int, str]]] = defaultdict(list)
    for deal_id, stage, entered, basis in conn.execute(
        query.order_by(deal_stage_history.c.deal_id, deal_stage_history.c.entered_ms)
    ):
        rows[str(deal_id)].append((stage, int(entered), str(basis)))
    return {deal_id: spans_of(deal_id, history) for deal_id, history in rows.items()}


def spans_of(deal_id: str, history: Sequence[tuple[str | None, int, str]]) -> list[StageSpan]:
    """(stage, entered_ms, basis) rows in time order → spans; a closing stage (won, lost) has no end."""
    spans = []
    for i, (stage, entered, basis) in enumerate(history):
        end = from_ms(history[i + 1][1]) if i + 1 < len(history) else None
        spans.append(StageSpan(deal_id, stage, from_ms(entered), end, basis))
    return spans


def slowest_stages(
    spans: Mapping[str, Sequence[StageSpan]], *, now: datetime
) -> list[tuple[str, float, int]]:
    """(stage, median days, deals) of the finished spans of open stages, slowest first."""
    by_stage: dict[str, list[float]] = defaultdict(list)
    for deal_spans in spans.values():
        for span in deal_spans:
            if span.end is not None and span.stage is not None and span.stage not in WON + LOST:
                by_stage[span.stage].append(span.days(now))
    ranked = [(stage, float(median(days)), len(days)) for stage, days in by_stage.items()]
    return sorted(ranked, key=lambda r: (-r[1], r[0]))


# ---------------------------------------------------------------- customers
def find_customers(
    conn: Connection, query: str, *, owners: set[str] | None, by_uscc: bool, limit: int = 20
) -> list[store.Snapshot]:
    """Live companies whose name contains ``query`` (or whose USCC is it, when ``by_uscc``), owners' only."""
    text = query.strip()
    if not text:
        return []
    name, uscc = snapshot.c.payload["name"].as_string(), snapshot.c.payload["uscc"].as_string()
    match = (
        or_(name.contains(text, autoescape=True), uscc == text.upper())
        if by_uscc
        else name.contains(text, autoescape=True)
    )
    stmt = (
        select(snapshot)
        .where(
            snapshot.c.system == "crm", snapshot.c.entity == "company", snapshot.c.deleted.is_(False), match
        )
        .order_by(name, snapshot.c.source_id)
        .limit(limit * 5 if owners is not None else limit)
    )
    found = [store.get_snapshot(conn, "crm", "company", str(row.source_id)) for row in conn.execute(stmt)]
    live = [s for s in found if s is not None]
    if owners is not None:
        live = [s for s in live if str(s.payload.get("owner_id")) in owners]
    return live[:limit]


@dataclass(frozen=True)
class Event:
    """One step of a customer's journey, as the viewer may see it."""

    at: datetime
    kind: str  # first_touch | event | contact | deal | stage | won | approval | visit | trip | expense | document | survey
    title: str  # Chinese
    detail: str  # Chinese, built from the fields the role sees only
    system: str  # crm | oa | hub
    days: float | None = None  # time in a stage


@dataclass
class Timeline:
    company_id: str
    name: str | None
    events: list[Event] = field(default_factory=list)
    hidden: dict[str, int] = field(default_factory=dict)  # entity → records left out for the role
    first_touch: Event | None = None


def _related(
    conn: Connection, entity: str, system: str, key: str, values: Iterable[str]
) -> list[store.Snapshot]:
    wanted = [str(v) for v in values if v]
    if not wanted:
        return []
    found = store.snapshots_by_field(conn, system, entity, key, wanted)
    return [snap for snaps in found.values() for snap in snaps]


@dataclass(frozen=True)
class Sources:
    """The staged records around one customer."""

    company: store.Snapshot
    contacts: list[store.Snapshot]
    contact_sources: dict[str, store.Snapshot]  # contact id → its original source
    deals: list[store.Snapshot]
    approvals: dict[str, list[store.Snapshot]]
    participations: list[store.Snapshot]
    events: dict[str, store.Snapshot]
    campaigns: dict[str, store.Snapshot]
    answers: list[store.Snapshot]
    documents: list[dict[str, Any]]


def customer_sources(conn: Connection, company_id: str) -> Sources | None:
    """Everything the hub holds around one customer; None when no live company has that id."""
    company = store.get_snapshot(conn, "crm", "company", company_id)
    if company is None or company.deleted:
        return None
    contacts = _related(conn, "contact", "crm", "company_id", [company_id])
    contact_ids = [c.source_id for c in contacts]
    origins = store.get_snapshots(conn, "crm", SOURCE, contact_ids)
    participations = _related(conn, PARTICIPATION, "crm", "contact_id", contact_ids)
    events = store.get_snapshots(conn, "crm", EVENT, [str(p.payload.get("event_id")) for p in participations])
    campaign_ids = {
        str(e.payload.get("campaign_id")) for e in events.values() if e.payload.get("campaign_id")
    }
    campaign_ids |= {
        str(o.payload["first_touch_campaign_id"])
        for o in origins.values()
        if o.payload.get("first_touch_campaign_id")
    }
    answers = {a.source_id: a for a in _related(conn, FEEDBACK, "crm", "contact_id", contact_ids)}
    answers.update({a.source_id: a for a in _related(conn, FEEDBACK, "crm", "company_id", [company_id])})
    return Sources(
        company=company,
        contacts=contacts,
        contact_sources=origins,
        deals=_related(conn, "deal", "crm", "company_id", [company_id]),
        approvals={form: _related(conn, form, "oa", "customer_id", [company_id]) for form in OA_FORMS},
        participations=participations,
        events=events,
        campaigns=store.get_snapshots(conn, "crm", CAMPAIGN, sorted(campaign_ids)),
        answers=list(answers.values()),
        documents=company_documents(conn, company_id),
    )


def company_documents(conn: Connection, company_id: str) -> list[dict[str, Any]]:
    """Attachments linked to the customer's records (hub ``document_link``), with their class and first name."""
    query = (
        select(
            document_link.c.record_type,
            document_link.c.created_at,
            document.c.doc_class,
            document.c.first_name,
            document.c.kind,
        )
        .join(document, document.c.sha256 == document_link.c.sha256)
        .where(document_link.c.company_id == company_id)
        .order_by(document_link.c.created_at)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def count_rows(conn: Connection, table_name: str) -> int:
    table = {"document_link": document_link, "deal_stage_history": deal_stage_history}[table_name]
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def iter_live(conn: Connection, entity: str, system: str = "crm") -> Iterator[store.Snapshot]:
    for part in store.iter_snapshots(conn, entity, system=system, batch=5000):
        yield from part


def fields_of(
    conn: Connection, entity: str, names: Sequence[str], system: str = "crm", *, seen: bool = False
) -> dict[str, dict[str, Any]]:
    """source id → the named payload fields (and ``first_seen_at`` when ``seen``) of every live snapshot of an
    entity: a whole-hub pass reads a few JSON fields of each row, several times faster than whole snapshots."""
    extra = [snapshot.c.first_seen_at] if seen else []
    columns = [snapshot.c.payload[n].as_string() for n in names]
    query = select(snapshot.c.source_id, *extra, *columns).where(
        snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(False)
    )
    keys = (*(["first_seen_at"] if seen else []), *names)
    return {str(row[0]): dict(zip(keys, row[1:], strict=True)) for row in conn.execute(query)}


# ---------------------------------------------------------------- funnel facts
@dataclass
class FunnelFacts:
    """What the funnel and the new-customer figures are computed from (whole hub, no person's data)."""

    touches: list[Any]  # funnel.Touch
    deals: list[Any]  # funnel.DealFact
    created: dict[str, date | None]  # company id → business date of creation
    campaign_names: dict[str, str]


def funnel_facts(conn: Connection) -> FunnelFacts:
    """Touches, deals and company creation dates of the live staged records (one pass per entity)."""
    from bridge.journey.funnel import Touch

    contacts = fields_of(conn, "contact", ["company_id"], seen=True)
    events = fields_of(conn, EVENT, ["campaign_id", "start_at"])
    touches: list[Touch] = []
    for part in fields_of(conn, PARTICIPATION, ["contact_id", "event_id", "occurred_at"]).values():
        contact_id = str(part.get("contact_id"))
        company = (contacts.get(contact_id) or {}).get("company_id")
        event = events.get(str(part.get("event_id"))) or {}
        at = parse_time(part.get("occurred_at")) or parse_time(event.get("start_at"))
        if company and at is not None:
            touches.append(Touch(str(company), contact_id, _opt(event.get("campaign_id")), None, at))
    for contact_id, origin in fields_of(
        conn, SOURCE, ["company_id", "source", "first_touch_campaign_id"]
    ).items():
        contact = contacts.get(contact_id)
        company = origin.get("company_id") or (contact or {}).get("company_id")
        source, campaign = _opt(origin.get("source")), _opt(origin.get("first_touch_campaign_id"))
        if company and (source or campaign):
            seen = (contact or origin)["first_seen_at"]
            touches.append(Touch(str(company), contact_id, campaign, source, seen))
    created = {
        k: business_date(v["created_at"]) for k, v in fields_of(conn, "company", ["created_at"]).items()
    }
    names = {k: str(v["name"] or k) for k, v in fields_of(conn, CAMPAIGN, ["name"]).items()}
    return FunnelFacts(touches, _funnel_deals(conn), created, names)


def _funnel_deals(conn: Connection) -> list[Any]:
    from bridge.journey.funnel import DealFact

    deals = fields_of(conn, "deal", ["company_id", "stage", "created_at", "close_date"])
    return [
        DealFact(
            str(d["company_id"]), d["stage"], business_date(d["created_at"]), business_date(d["close_date"])
        )
        for d in deals.values()
        if d["company_id"]
    ]


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# ---------------------------------------------------------------- people × satisfaction facts
@dataclass
class PeopleFacts:
    reviews: list[Any]  # people_csat.Review
    periods: dict[str, Any]  # period id → people_csat.Period
    answers: list[Any]  # people_csat.Answer
    deals: list[Any]  # people_csat.DealFact
    unlinked_reviews: int  # results of OA users linked to no CRM owner (not shown)


def people_facts(conn: Connection) -> PeopleFacts:
    """Performance results by CRM owner (through the owner ⇄ OA user links), survey answers by the owner of the
    answering customer, deals by owner."""
    from bridge.journey.people_csat import DealFact

    reviews, periods, unlinked = _reviews(conn)
    deals = fields_of(conn, "deal", ["owner_id", "stage", "created_at", "close_date"])
    facts = [
        DealFact(
            str(d["owner_id"]), d["stage"], business_date(d["created_at"]), business_date(d["close_date"])
        )
        for d in deals.values()
        if d["owner_id"]
    ]
    return PeopleFacts(reviews, periods, _answers(conn), facts, unlinked)


def _reviews(conn: Connection) -> tuple[list[Any], dict[str, Any], int]:
    """(reviews of linked people, periods, results of people linked to no CRM owner)."""
    from bridge.journey.people_csat import Period, Review

    owner_of_user = {
        str(lk.oa_id): str(lk.crm_id) for lk in store.links(conn, "owner_user") if lk.oa_id and lk.crm_id
    }
    reviews: list[Review] = []
    periods: dict[str, Period] = {}
    unlinked = 0
    names = ["person_id", "period_id", "period_name", "period_start", "period_end", "rating", "score"]
    for p in fields_of(conn, REVIEW, names, system="oa").values():
        period_id = _opt(p["period_id"])
        if period_id is None:
            continue
        periods.setdefault(
            period_id,
            Period(
                period_id,
                str(p["period_name"] or period_id),
                parse_time(p["period_start"]),
                _period_end(p["period_end"]),
            ),
        )
        owner = owner_of_user.get(str(p["person_id"]))
        if owner is None:
            unlinked += 1
        else:
            reviews.append(Review(owner, period_id, _opt(p["rating"]), number(p["score"])))
    return reviews, periods, unlinked


def _answers(conn: Connection) -> list[Any]:
    """Survey answers by the owner of the answering customer (the answer's company, else its contact's)."""
    from bridge.journey.people_csat import Answer

    company_owner = {k: _opt(v["owner_id"]) for k, v in fields_of(conn, "company", ["owner_id"]).items()}
    contact_company = {
        k: _opt(v["company_id"]) for k, v in fields_of(conn, "contact", ["company_id"]).items()
    }
    answers = []
    names = ["company_id", "contact_id", "survey_type", "value", "submitted_at", "nps_group"]
    for p in fields_of(conn, FEEDBACK, names).values():
        owner = company_owner.get(_opt(p["company_id"]) or contact_company.get(str(p["contact_id"])) or "")
        if owner:
            answers.append(
                Answer(
                    owner,
                    str(p["survey_type"] or ""),
                    number(p["value"]),
                    parse_time(p["submitted_at"]),
                    _opt(p["nps_group"]),
                )
            )
    return answers


def _period_end(value: Any) -> datetime | None:
    """A period's end: a bare date covers that whole day."""
    at = parse_time(value)
    if at is not None and isinstance(value, str) and len(value) == 10:
        return at + timedelta(days=1) - timedelta(microseconds=1)
    return at

"""The journey's vendor sources read through the hooks and staged (one hub transaction per batch).

* Campaigns, marketing events and participations: HubSpot lists them without a modified-since filter and
  they are few (tens to hundreds), so each run reads the whole list and stages only what changed (content
  hash); the stream's watermark (the newest modification seen) is set with the listing's last batch, so an
  interrupted listing leaves it where it was.
* Contacts' original source: the contacts the hub staged (CRM → OA extract) since the watermark, 100 per
  batch read, oldest first; the watermark follows the contacts' modification time batch by batch.
* Feedback submissions: the keyset search from the watermark (minus ``journey.lookback_seconds``), page by page.
* Performance results: every ended review period not yet settled (``journey.performance_settle_days`` after
  its end) is read whole; the watermark is the end of the last settled period read, so a settled period
  is never read again and an open one is read every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bridge.chunks import chunked
from bridge.clock import to_ms
from bridge.dictionary import formats
from bridge.hub import store
from bridge.hub.schema import snapshot
from bridge.journey import ORIGIN_VENDOR, stream_of
from bridge.journey.stage import Candidate, JourneyRun, stage_batch

if TYPE_CHECKING:
    from bridge.hooks.feishu_performance import ReviewPeriod, ReviewResult
    from bridge.hooks.hubspot_marketing import FeedbackResponse, MarketingEvent, Participation

SOURCE_BATCH = 100  # contacts per original-source batch read (HubSpot's batch read limit)
DAY_MS = 86_400_000


def epoch_ms(value: object) -> int | None:
    """Epoch ms of a source time (ISO text or ms); None when absent or unreadable (the record's problem)."""
    cleaned, issue = formats.clean_datetime(value)
    return formats.datetime_to_ms(cleaned) if cleaned and issue is None else None


def _top(values: Iterable[int | None], floor: int | None = None) -> int | None:
    present = [v for v in values if v is not None]
    if floor is not None:
        present.append(floor)
    return max(present) if present else None


def _mark(run: JourneyRun, entity: str) -> int | None:
    """Where the entity's read starts: its watermark, or ``journey.history_since`` (the Param 起始日期) when that is
    earlier — a re-read of the history from that date; None (no watermark yet) reads the whole history."""
    with run.hub.connect() as conn:
        mark = store.get_watermark(conn, stream_of(entity))
    since = run.cfg.history_since
    if mark is None or since is None:
        return mark
    return min(mark, to_ms(datetime.combine(since, time(0), tzinfo=ZoneInfo("Asia/Shanghai"))))


def _company_of_contacts(run: JourneyRun, contact_ids: Iterable[str | None]) -> dict[str, str]:
    """The customer (CRM company id) of each contact the hub staged with one."""
    wanted = [c for c in dict.fromkeys(contact_ids) if c]
    if not wanted:
        return {}
    with run.hub.connect() as conn:
        found = store.get_snapshots(conn, "crm", "contact", wanted)
    return {cid: str(s.payload["company_id"]) for cid, s in found.items() if s.payload.get("company_id")}


# ---------------------------------------------------------------- full listings
def _stage_listing(run: JourneyRun, entity: str, pages: Iterator[list[Candidate]], modified: str) -> None:
    """Stage each page; the watermark (newest ``modified`` seen) with the last page."""
    seen: int | None = None
    pending: list[Candidate] | None = None
    for page in pages:
        if pending is not None:
            stage_batch(run, entity, pending)
        seen = _top((epoch_ms(c.values.get(modified)) for c in page), seen)
        pending = page
    stage_batch(run, entity, pending or [], watermark=seen)


def stage_campaigns(run: JourneyRun) -> None:
    """Every campaign (task ``campaigns``)."""
    pages = (
        [Candidate({**asdict(c), "campaign_id": c.id}) for c in page] for page in run.hooks.crm.iter_campaigns()
    )
    _stage_listing(run, "campaign", pages, "updated_at")


def _event_campaigns(run: JourneyRun, campaign_ids: Sequence[str]) -> dict[str, str]:
    """Event id → the campaign it is an asset of (one call per campaign)."""
    out: dict[str, str] = {}
    for cid in campaign_ids:
        for asset in run.hooks.crm.campaign_assets(cid, "marketing_event"):
            out.setdefault(asset.id, cid)
    return out


def _event(e: MarketingEvent, campaigns: Mapping[str, str]) -> Candidate:
    return Candidate({**asdict(e), "event_id": e.id, "campaign_id": campaigns.get(e.id)})


def _participation(p: Participation, companies: Mapping[str, str]) -> Candidate:
    values: dict[str, Any] = {**asdict(p), "participation_id": p.id, "occurred_at": p.occurred_ms}
    values["company_id"] = companies.get(p.contact_id)
    return Candidate(values)


def stage_events(run: JourneyRun) -> None:
    """Every marketing event with its campaign, then every event's participations (task ``events``)."""
    with run.hub.connect() as conn:
        campaign_ids = [s.source_id for page in store.iter_snapshots(conn, "campaign", system="crm") for s in page]
    campaigns = _event_campaigns(run, campaign_ids)
    events = [e for page in run.hooks.crm.iter_marketing_events() for e in page]
    _stage_listing(run, "marketing_event", iter([[_event(e, campaigns) for e in events]]), "updated_at")

    def participations() -> Iterator[list[Candidate]]:
        for e in events:
            found = run.hooks.crm.event_participations(e.id)
            companies = _company_of_contacts(run, (p.contact_id for p in found))
            yield [_participation(p, companies) for p in found]

    _stage_listing(run, "event_participation", participations(), "occurred_at")


# ---------------------------------------------------------------- contacts' original source
def _changed_contacts(run: JourneyRun, since: int | None) -> list[tuple[str, int, str | None]]:
    """(contact id, modified ms, company id) of the hub's live contacts modified since ``since``, oldest first."""
    query = (
        select(snapshot.c.source_id, snapshot.c.source_modified_ms, snapshot.c.payload["company_id"].as_string())
        .where(snapshot.c.system == "crm", snapshot.c.entity == "contact", snapshot.c.deleted.is_(False))
        .order_by(snapshot.c.source_modified_ms, snapshot.c.source_id)
    )
    if since is not None:
        query = query.where(snapshot.c.source_modified_ms >= since)
    with run.hub.connect() as conn:
        return [(str(r[0]), int(r[1]), r[2]) for r in conn.execute(query)]


def stage_contact_sources(run: JourneyRun) -> None:
    """The original source of the contacts changed since the watermark (task ``contact_sources``)."""
    for batch in chunked(_changed_contacts(run, _mark(run, "contact_source")), SOURCE_BATCH):
        sources = run.hooks.crm.contact_sources([cid for cid, _ms, _co in batch])
        candidates = [
            Candidate({**asdict(sources[cid]), "company_id": company, "contact_modified_at": ms})
            for cid, ms, company in batch
            if cid in sources
        ]
        stage_batch(run, "contact_source", candidates, watermark=batch[-1][1])


# ---------------------------------------------------------------- survey answers
def _feedback(r: FeedbackResponse, companies: Mapping[str, str]) -> Candidate:
    values: dict[str, Any] = {**asdict(r), "response_id": r.id, "origin": ORIGIN_VENDOR["crm"]}
    values["modified_at"] = r.modified_ms
    values["company_id"] = companies.get(r.contact_id or "")
    return Candidate(values)


def stage_feedback(run: JourneyRun) -> None:
    """Survey answers changed since the watermark, page by page (task ``feedback``)."""
    mark = _mark(run, "feedback_submission")
    since = max(0, mark - int(run.cfg.lookback_seconds * 1000)) if mark is not None else 0
    for page in run.hooks.crm.iter_feedback_changed(since):
        companies = _company_of_contacts(run, (r.contact_id for r in page))
        top = _top(r.modified_ms for r in page)
        stage_batch(run, "feedback_submission", [_feedback(r, companies) for r in page], watermark=top)


# ---------------------------------------------------------------- performance results
def _review(result: ReviewResult, period: ReviewPeriod) -> Candidate:
    values: dict[str, Any] = {**asdict(result), "origin": ORIGIN_VENDOR["oa"]}
    values.update(
        review_id=f"{result.period_id}:{result.user_id}",
        person_id=result.user_id,
        reviewer_id=result.reviewer_user_id,
        period_name=period.name,
        period_start=period.start_ms,
        period_end=period.end_ms,
        submitted_at=result.submitted_ms,
    )
    return Candidate(values)


def stage_reviews(run: JourneyRun) -> None:
    """Results of every ended period not settled yet; settled periods advance the watermark (task ``reviews``)."""
    mark, now_ms = _mark(run, "performance_review"), to_ms(run.now)
    settle_ms = int(timedelta(days=run.cfg.performance_settle_days).total_seconds() * 1000)
    periods = sorted(
        (p for p in run.hooks.oa.performance_semesters() if p.end_ms is not None and p.end_ms < now_ms),
        key=lambda p: p.end_ms or 0,
    )
    for period in periods:
        end = period.end_ms or 0
        if mark is not None and end <= mark:
            continue  # settled and read
        settled = end + settle_ms < now_ms
        batches = [[_review(r, period) for r in page] for page in run.hooks.oa.iter_review_results(period.id)]
        for batch in batches[:-1]:
            stage_batch(run, "performance_review", batch)
        stage_batch(run, "performance_review", batches[-1] if batches else [], watermark=end if settled else None)
        run.tally.add("periods_read")

"""The customer journey's HubSpot sources: campaigns, marketing events, feedback submissions, original source.

Vendor knowledge kept here (docs/sim_crm.md, docs/journey.md): Campaigns v3 (``/marketing/v3/campaigns``,
its assets one type per call), Marketing Events v3 (the event list and the participation breakdowns per
event and per contact; states ``REGISTERED``/``ATTENDED``/``CANCELLED``/``NO_SHOW``), feedback submissions
(object ``feedback_submissions``, read-only, through the CRM objects search and the v4 associations to
contacts) and the contact's original source properties (``hs_analytics_source`` and its drill-downs, which
HubSpot computes). All of them page by an ``after`` cursor the client only echoes.

``CrmMarketing`` is a mixin of :class:`bridge.hooks.crm.CrmHook`; it returns frozen dataclasses in
business terms, so nothing above the hooks reads a HubSpot name. The pure decoders (``*_of``) are
tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from bridge.hooks._base import chunked
from bridge.hooks._reading import PagedCalls, decimal, epoch_ms, iso_epoch_ms, lower, part, text
from bridge.hooks.hubspot_codec import CrmObject

Reader = Callable[[object], Any]  # reads one wire value into our field's type

CAMPAIGNS = "/marketing/v3/campaigns"
CAMPAIGN_ASSETS = "/marketing/v3/campaigns/{campaign_id}/assets/{asset_type}"
EVENTS = "/marketing/marketing-events/v3"
EVENT_PARTICIPATIONS = "/marketing/v3/marketing-events/participations/{event_id}/breakdown"
CONTACT_PARTICIPATIONS = "/marketing/v3/marketing-events/participations/contacts/{contact}/breakdown"
CONTACTS_BATCH_READ = "/crm/v3/objects/contacts/batch/read"

FEEDBACK_OBJECT = "feedback_submissions"
CONTACT_OBJECT = "contacts"
PAGE_MAX = 100  # campaigns, assets, events and breakdowns: limit ≤ 100
BATCH_READ_MAX = 100
FEEDBACK_PROPERTIES = (
    "hs_survey_id",
    "hs_survey_name",
    "hs_survey_type",
    "hs_survey_channel",
    "hs_value",
    "hs_response_group",
    "hs_sentiment",
    "hs_content",
    "hs_submission_timestamp",
    "hs_contact_id",
)
ASSET_TYPES = frozenset({"marketing_event", "landing_page", "form", "marketing_email"})


@dataclass(frozen=True)
class Campaign:
    """A marketing campaign (dates ``YYYY-MM-DD``; budget as HubSpot's decimal text, in ``currency``)."""

    id: str
    name: str
    start_date: str | None
    end_date: str | None
    status: str | None
    budget: Decimal | None
    currency: str | None
    utm: str | None
    audience: str | None
    created_at: str | None
    updated_at: str | None


@dataclass(frozen=True)
class CampaignAsset:
    """One asset of a campaign (an event, a landing page, a form, an e-mail)."""

    id: str
    name: str
    asset_type: str  # marketing_event | landing_page | form | marketing_email


@dataclass(frozen=True)
class MarketingEvent:
    """A marketing event with its participation counters."""

    id: str
    external_id: str | None
    name: str
    event_type: str | None
    organizer: str | None
    url: str | None
    start_at: str | None  # ISO 8601
    end_at: str | None
    cancelled: bool
    registrants: int
    attendees: int
    cancellations: int
    no_shows: int
    updated_at: str | None = None  # ISO 8601: when the event last changed (the watermark of a staging read)


@dataclass(frozen=True)
class Participation:
    """One contact in one event: the latest state (registered, attended, cancelled, no_show) and when."""

    id: str
    event_id: str
    contact_id: str
    state: str
    occurred_ms: int | None


@dataclass(frozen=True)
class FeedbackResponse:
    """One survey answer: type CSAT / NPS / CES (or CUSTOM), the rating, when, by which contact."""

    id: str
    survey_type: str | None
    survey_id: str | None
    survey_name: str | None
    value: Decimal | None
    submitted_at: str | None  # ISO 8601
    contact_id: str | None
    nps_group: str | None  # promoter | passive | detractor (NPS only)
    sentiment: str | None  # positive | neutral | negative
    comment: str | None
    modified_ms: int | None  # the watermark of an incremental read


@dataclass(frozen=True)
class ContactSource:
    """Where a contact came from first: the original source, its two drill-downs, the first-touch campaign."""

    contact_id: str
    source: str | None
    source_detail_1: str | None
    source_detail_2: str | None
    first_touch_campaign_id: str | None


# ------------------------------------------------------------------ pure decoding
def _props(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return part(obj, "properties")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def next_after(body: Mapping[str, Any]) -> str | None:
    """The cursor of the next page (``paging.next.after``), None on the last page."""
    paging = body.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


def _decoded(source: Mapping[str, Any], spec: Mapping[str, tuple[str, Reader]]) -> dict[str, Any]:
    """Our field name → its value read from ``source`` (a wire name and how to read it, per field)."""
    return {name: read(source.get(wire)) for name, (wire, read) in spec.items()}


def _text_or_empty(value: object) -> str:
    return text(value) or ""


# Our field → (HubSpot's name, reader), for the objects decoded field by field.
CAMPAIGN_READERS: dict[str, tuple[str, Reader]] = {
    "name": ("hs_name", _text_or_empty),
    "start_date": ("hs_start_date", text),
    "end_date": ("hs_end_date", text),
    "status": ("hs_campaign_status", lower),
    "budget": ("hs_budget_items_sum_amount", decimal),
    "currency": ("hs_currency_code", text),
    "utm": ("hs_utm", text),
    "audience": ("hs_audience", text),
}
EVENT_FIELDS: dict[str, tuple[str, Reader]] = {
    "external_id": ("externalEventId", text),
    "name": ("eventName", _text_or_empty),
    "event_type": ("eventType", text),
    "organizer": ("eventOrganizer", text),
    "url": ("eventUrl", text),
    "start_at": ("startDateTime", text),
    "end_at": ("endDateTime", text),
    "cancelled": ("eventCancelled", lambda v: v is True),
    "registrants": ("registrants", _count),
    "attendees": ("attendees", _count),
    "cancellations": ("cancellations", _count),
    "no_shows": ("noShows", _count),
    "updated_at": ("updatedAt", text),
}
FEEDBACK_READERS: dict[str, tuple[str, Reader]] = {
    "survey_type": ("hs_survey_type", text),
    "survey_id": ("hs_survey_id", text),
    "survey_name": ("hs_survey_name", text),
    "value": ("hs_value", decimal),
    "submitted_at": ("hs_submission_timestamp", text),
    "nps_group": ("hs_response_group", lower),
    "sentiment": ("hs_sentiment", lower),
    "comment": ("hs_content", text),
    "modified_ms": ("hs_lastmodifieddate", iso_epoch_ms),
}
SOURCE_READERS: dict[str, tuple[str, Reader]] = {
    "source": ("hs_analytics_source", text),
    "source_detail_1": ("hs_analytics_source_data_1", text),
    "source_detail_2": ("hs_analytics_source_data_2", text),
    "first_touch_campaign_id": ("hs_analytics_first_touch_converting_campaign", text),
}
CAMPAIGN_PROPERTIES = tuple(wire for wire, _ in CAMPAIGN_READERS.values())  # what a campaign read asks for
SOURCE_PROPERTIES = tuple(wire for wire, _ in SOURCE_READERS.values())


def campaign_of(obj: Mapping[str, Any]) -> Campaign:
    return Campaign(
        id=str(obj.get("id")),
        created_at=text(obj.get("createdAt")),
        updated_at=text(obj.get("updatedAt")),
        **_decoded(_props(obj), CAMPAIGN_READERS),
    )


def asset_of(obj: Mapping[str, Any], asset_type: str) -> CampaignAsset:
    return CampaignAsset(id=str(obj.get("id")), name=text(obj.get("name")) or "", asset_type=asset_type)


def event_of(obj: Mapping[str, Any]) -> MarketingEvent:
    return MarketingEvent(id=str(obj.get("objectId") or obj.get("id")), **_decoded(obj, EVENT_FIELDS))


def participation_of(obj: Mapping[str, Any]) -> Participation:
    """A breakdown item; ``occurredAt`` is epoch ms (a number, or digits as text)."""
    props, assoc = _props(obj), part(obj, "associations")
    contact, event = part(assoc, "contact"), part(assoc, "marketingEvent")
    return Participation(
        id=str(obj.get("id")),
        event_id=str(event.get("marketingEventId") or ""),
        contact_id=str(contact.get("contactId") or ""),
        state=lower(props.get("attendanceState")) or "",
        occurred_ms=epoch_ms(props.get("occurredAt")),
    )


def feedback_of(obj: Mapping[str, Any], contact_ids: Sequence[str] = ()) -> FeedbackResponse:
    """A feedback submission; its contact from the v4 association (``hs_contact_id`` when there is none)."""
    props = _props(obj)
    return FeedbackResponse(
        id=str(obj.get("id")),
        contact_id=contact_ids[0] if contact_ids else text(props.get("hs_contact_id")),
        **_decoded(props, FEEDBACK_READERS),
    )


def contact_source_of(obj: Mapping[str, Any]) -> ContactSource:
    return ContactSource(contact_id=str(obj.get("id")), **_decoded(_props(obj), SOURCE_READERS))


# ------------------------------------------------------------------ the mixin
class _Crm(PagedCalls, Protocol):
    """What the mixin needs of CrmHook besides the calls (structural, so this module does not import crm.py)."""

    def iter_changed(
        self, object_type: str, since: int | datetime, properties: Sequence[str]
    ) -> Iterator[list[CrmObject]]: ...

    def read_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]: ...


@dataclass(frozen=True)
class _Listing:
    """One cursor-paged GET: the endpoint, its path and query parameters, and what to call it in logs."""

    template: str
    what: str
    path_params: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None


def _objects(hook: _Crm, listing: _Listing) -> Iterator[list[CrmObject]]:
    """Pages of the ``results`` of a listing (``limit`` 100, ``after`` echoed; repeats dropped)."""

    def fetch(cursor: str | None) -> tuple[list[CrmObject], str | None]:
        params: dict[str, Any] = {**(listing.params or {}), "limit": PAGE_MAX}
        if cursor:
            params["after"] = cursor
        kw: dict[str, Any] = {"params": params}
        if listing.path_params:
            kw["path_params"] = dict(listing.path_params)
        body = hook.call("GET", listing.template, **kw).body
        body = body if isinstance(body, dict) else {}
        items = [o for o in body.get("results") or [] if isinstance(o, dict)]
        return items, next_after(body)

    def key(obj: CrmObject) -> str:
        return str(obj.get("id") or obj.get("objectId"))

    return hook._cursor_pages(fetch, key, listing.what)


class CrmMarketing:
    """Campaigns, marketing events, participations, feedback and original source: CrmHook's journey reads."""

    def iter_campaigns(self: _Crm) -> Iterator[list[Campaign]]:
        """Pages of every campaign (oldest first, as HubSpot lists them)."""
        listing = _Listing(CAMPAIGNS, "crm campaigns", params={"properties": ",".join(CAMPAIGN_PROPERTIES)})
        for page in _objects(self, listing):
            yield [campaign_of(o) for o in page]

    def campaign_assets(self: _Crm, campaign_id: str, asset_type: str) -> list[CampaignAsset]:
        """Every asset of one type (``marketing_event``, ``landing_page``, ``form``, ``marketing_email``) of a
        campaign; HubSpot answers one type per call. An unknown campaign raises NotFoundError."""
        kind = asset_type.lower()
        if kind not in ASSET_TYPES:
            raise ValueError(
                f"asset_type must be one of {', '.join(sorted(ASSET_TYPES))}, not {asset_type!r}"
            )
        path = {"campaign_id": campaign_id, "asset_type": kind.upper()}
        listing = _Listing(CAMPAIGN_ASSETS, f"crm campaign {campaign_id} assets", path_params=path)
        return [asset_of(o, kind) for page in _objects(self, listing) for o in page]

    def iter_marketing_events(self: _Crm) -> Iterator[list[MarketingEvent]]:
        """Pages of every marketing event with its counters."""
        for page in _objects(self, _Listing(EVENTS, "crm marketing events")):
            yield [event_of(o) for o in page]

    def event_participations(self: _Crm, event_id: str) -> list[Participation]:
        """Every contact's participation in one event (all pages)."""
        listing = _Listing(
            EVENT_PARTICIPATIONS, f"crm event {event_id} participations", {"event_id": event_id}
        )
        return [participation_of(o) for page in _objects(self, listing) for o in page]

    def contact_participations(self: _Crm, contact: str) -> list[Participation]:
        """One contact's participations across events; ``contact`` is its id or its e-mail."""
        listing = _Listing(CONTACT_PARTICIPATIONS, "crm contact participations", {"contact": contact})
        return [participation_of(o) for page in _objects(self, listing) for o in page]

    def iter_feedback_changed(self: _Crm, since: int | datetime) -> Iterator[list[FeedbackResponse]]:
        """Pages of the survey answers modified since ``since`` (keyset search, as every incremental read),
        each with its contact from the v4 associations (one batch read per page)."""
        for page in self.iter_changed(FEEDBACK_OBJECT, since, FEEDBACK_PROPERTIES):
            ids = [str(o.get("id")) for o in page]
            contacts = self.read_associations(FEEDBACK_OBJECT, CONTACT_OBJECT, ids)
            yield [feedback_of(o, contacts.get(str(o.get("id")), [])) for o in page]

    def contact_sources(self: _Crm, ids: Sequence[str]) -> dict[str, ContactSource]:
        """The original source of each contact found (unknown ids are left out), 100 per batch read."""
        out: dict[str, ContactSource] = {}
        for chunk in chunked(list(dict.fromkeys(str(i) for i in ids)), BATCH_READ_MAX):
            body = self.call(
                "POST",
                CONTACTS_BATCH_READ,
                json={
                    "properties": list(SOURCE_PROPERTIES),
                    "propertiesWithHistory": [],
                    "inputs": [{"id": i} for i in chunk],
                },
            ).body
            for obj in (body.get("results") or []) if isinstance(body, dict) else []:
                if isinstance(obj, dict) and obj.get("id") is not None:
                    source = contact_source_of(obj)
                    out[source.contact_id] = source
        return out

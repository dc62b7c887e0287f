"""CrmHook's customer-journey reads over the CRM simulator (real HTTP): campaigns and their assets, marketing
events and participations, feedback submissions with their contact, the contacts' original source — the
seeded world's values, paging over several pages, refusals as the hook's error types — and the pure
decoders of bridge.hooks.hubspot_marketing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, Sim, crm_hook, sim_fixture

from bridge.hooks import hubspot_marketing as mkt
from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import AuthError, NotFoundError, PermissionDeniedError
from sandbox.common.world import World
from sandbox.crm.journey_seed import CAMPAIGNS, EVENTS, campaign_guid, contact_source

WORLD_SEED = 11
NOW_MS = 1_795_000_000_000
WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)
CAMPAIGN_LIST = "GET /marketing/v3/campaigns"
STATES = {"registered", "attended", "cancelled", "no_show"}
SCALES = {"NPS": (0, 10), "CSAT": (1, 5), "CES": (1, 7)}

crm = sim_fixture("crm", "crm_marketing", *RATE_LIMITS_OFF)


@pytest.fixture(scope="module")
def seeded(crm: Sim) -> dict[str, Any]:
    """The world of seed 11 once for the module; the seed's answer counts what it wrote."""
    crm.admin("POST", "/reset")
    counts: dict[str, Any] = crm.admin("POST", "/seed", {"seed": WORLD_SEED, "now_ms": NOW_MS})
    return counts


@pytest.fixture
def hook(crm: Sim, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> CrmHook:
    crm.reset()
    return crm_hook(crm, monkeypatch)


def test_campaigns_are_the_seeded_ones_over_several_pages(
    crm: Sim, hook: CrmHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mkt, "PAGE_MAX", 2)
    pages = list(hook.iter_campaigns())
    assert [len(p) for p in pages] == [2, 2, 1]
    by_id = {c.id: c for page in pages for c in page}
    assert set(by_id) == {campaign_guid(WORLD_SEED, c.index) for c in CAMPAIGNS}
    for seeded in CAMPAIGNS:
        campaign = by_id[campaign_guid(WORLD_SEED, seeded.index)]
        assert (campaign.name, campaign.budget, campaign.currency) == (
            seeded.name,
            Decimal(seeded.budget),
            "CNY",
        )
        assert campaign.audience == seeded.audience
        assert campaign.start_date
        assert campaign.end_date
    assert crm.requests_to(CAMPAIGN_LIST) == 3 == hook.api_calls[CAMPAIGN_LIST]


def test_campaign_assets_one_type_all_pages(crm: Sim, hook: CrmHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mkt, "PAGE_MAX", 1)
    guid = campaign_guid(WORLD_SEED, 0)
    events = hook.campaign_assets(guid, "marketing_event")
    assert {a.name for a in events} == {e.name for e in EVENTS if e.campaign == 0}
    assert {a.asset_type for a in events} == {"marketing_event"}
    assert hook.api_calls[f"GET {mkt.CAMPAIGN_ASSETS}"] == len(events)
    pages = hook.campaign_assets(guid, "LANDING_PAGE")
    assert pages
    assert all(a.name.startswith(CAMPAIGNS[0].name) for a in pages)
    with pytest.raises(NotFoundError):
        hook.campaign_assets("00000000-0000-4000-8000-000000000000", "form")
    with pytest.raises(ValueError, match="asset_type"):
        hook.campaign_assets(guid, "video")


def test_marketing_events_and_their_counters(hook: CrmHook, seeded: dict[str, Any]) -> None:
    events = [e for page in hook.iter_marketing_events() for e in page]
    assert [(e.external_id, e.name, e.event_type) for e in events] == [
        (e.external_id, e.name, e.event_type) for e in EVENTS
    ]
    assert sum(e.registrants for e in events) == seeded["participations"]
    assert all(e.attendees + e.cancellations + e.no_shows <= e.registrants for e in events)
    assert not any(e.cancelled for e in events)


def test_participations_by_event_and_by_contact(
    hook: CrmHook, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [e for page in hook.iter_marketing_events() for e in page]
    monkeypatch.setattr(mkt, "PAGE_MAX", 10)
    by_event = {e.id: hook.event_participations(e.id) for e in events}
    assert sum(len(p) for p in by_event.values()) == seeded["participations"]
    for event in events:
        taken = by_event[event.id]
        assert len(taken) == event.registrants
        assert {p.event_id for p in taken} == {event.id}
        assert sum(p.state == "attended" for p in taken) == event.attendees
    every = [p for taken in by_event.values() for p in taken]
    assert {p.state for p in every} <= STATES
    assert all(p.occurred_ms for p in every)
    one = every[0]
    assert one in hook.contact_participations(one.contact_id)
    # an event-sourced contact registered for its event (the seed's rule)
    index = next(i for i in range(400) if contact_source(WORLD_SEED, i).event is not None)
    source_event = contact_source(WORLD_SEED, index).event
    assert source_event is not None
    names = {e.id: e.name for e in events}
    mine = hook.contact_participations(WORLD.contact_id(index))
    assert source_event.name in {names[p.event_id] for p in mine}


def test_feedback_responses_with_their_contact(hook: CrmHook, seeded: dict[str, Any]) -> None:
    answers = [a for page in hook.iter_feedback_changed(0) for a in page]
    assert len(answers) == seeded["feedback_submissions"]
    assert len({a.id for a in answers}) == len(answers)
    for answer in answers:
        assert answer.survey_type in SCALES
        assert answer.value is not None
        low, high = SCALES[answer.survey_type]
        assert low <= answer.value <= high
        assert answer.contact_id
        assert answer.submitted_at
        assert (answer.nps_group is not None) == (answer.survey_type == "NPS")
    assert any(a.comment for a in answers)
    assert hook.api_calls["POST /crm/v4/associations/{from_type}/{to_type}/batch/read"] >= 1


def test_feedback_incremental_finds_a_new_answer(crm: Sim, hook: CrmHook) -> None:
    """A survey answered later (HubSpot creates it; the API cannot) is all a read from the watermark finds."""
    seeded = [a for page in hook.iter_feedback_changed(0) for a in page]
    watermark = max(a.modified_ms or 0 for a in seeded)
    assert watermark <= NOW_MS
    contact = WORLD.contact_id(3)
    crm.admin(
        "POST",
        "/act/create",
        {
            "object_type": "feedback_submissions",
            "properties": {"hs_survey_type": "CSAT", "hs_survey_name": "实施交付满意度回访", "hs_value": "4"},
            "associations": {"contacts": [contact]},
        },
    )
    fresh = [a for page in hook.iter_feedback_changed(watermark + 1) for a in page]
    assert [(a.survey_type, a.value, a.contact_id) for a in fresh] == [("CSAT", Decimal(4), contact)]


def test_contact_sources_as_seeded(hook: CrmHook) -> None:
    ids = {WORLD.contact_id(i): i for i in range(0, 400, 7)}
    sources = hook.contact_sources([*ids, "999999"])
    assert set(sources) == set(ids)
    for contact_id, index in ids.items():
        expected = contact_source(WORLD_SEED, index).properties
        got = sources[contact_id]
        assert (got.source, got.source_detail_1, got.source_detail_2 or "") == (
            expected["hs_analytics_source"],
            expected["hs_analytics_source_data_1"],
            expected["hs_analytics_source_data_2"],
        )
        assert got.first_touch_campaign_id == expected.get("hs_analytics_first_touch_converting_campaign")


def test_auth_refusal_is_an_auth_error(
    crm: Sim, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    crm.reset()
    hook = crm_hook(crm, monkeypatch, refresh_token="not-a-token", max_attempts=1)
    with pytest.raises(AuthError):
        next(hook.iter_campaigns())
    with pytest.raises(AuthError):
        hook.contact_sources([WORLD.contact_id(0)])


def test_feedback_submissions_are_read_only(hook: CrmHook) -> None:
    """HubSpot offers no write to feedback submissions: the refusal is the hook's permission error."""
    with pytest.raises(PermissionDeniedError):
        hook.batch_create("feedback_submissions", [{"hs_survey_type": "NPS", "hs_value": "9"}])


# ------------------------------------------------------------------ pure decoding
def test_campaign_and_asset_decoding() -> None:
    campaign = mkt.campaign_of(
        {
            "id": "g-1",
            "properties": {
                "hs_name": "峰会",
                "hs_budget_items_sum_amount": "1200.5",
                "hs_campaign_status": "ACTIVE",
            },
            "createdAt": "2026-01-01T00:00:00Z",
        }
    )
    assert (campaign.id, campaign.name, campaign.budget, campaign.status) == (
        "g-1",
        "峰会",
        Decimal("1200.5"),
        "active",
    )
    assert campaign.start_date is None
    assert campaign.updated_at is None
    assert mkt.campaign_of({"id": "g-2", "properties": {"hs_budget_items_sum_amount": "n/a"}}).budget is None
    assert mkt.asset_of({"id": 7, "name": "表单"}, "form") == mkt.CampaignAsset("7", "表单", "form")


def test_event_and_participation_decoding() -> None:
    event = mkt.event_of({"objectId": "62", "eventName": "研讨会", "registrants": 3, "noShows": True})
    assert (event.id, event.name, event.registrants, event.no_shows, event.cancelled) == (
        "62",
        "研讨会",
        3,
        0,
        False,
    )
    item = {
        "id": "9",
        "properties": {"attendanceState": "NO_SHOW", "occurredAt": "1774264000000"},
        "associations": {"contact": {"contactId": "401"}, "marketingEvent": {"marketingEventId": "62"}},
    }
    assert mkt.participation_of(item) == mkt.Participation("9", "62", "401", "no_show", 1774264000000)
    bare = mkt.participation_of({"id": "10", "properties": {"occurredAt": "soon"}, "associations": None})
    assert (bare.contact_id, bare.event_id, bare.state, bare.occurred_ms) == ("", "", "", None)


def test_feedback_and_source_decoding() -> None:
    props = {"hs_survey_type": "NPS", "hs_value": "9", "hs_response_group": "PROMOTER", "hs_contact_id": "7"}
    answer = mkt.feedback_of({"id": "1", "properties": props}, ["8"])
    assert (answer.value, answer.nps_group, answer.contact_id) == (Decimal(9), "promoter", "8")
    assert mkt.feedback_of({"id": "1", "properties": props}).contact_id == "7"
    odd = mkt.feedback_of({"id": "2", "properties": {"hs_value": "NaN", "hs_lastmodifieddate": "yesterday"}})
    assert (odd.value, odd.modified_ms) == (None, None)
    stamped = mkt.feedback_of({"id": "3", "properties": {"hs_lastmodifieddate": "2026-01-01T00:00:00.001Z"}})
    assert stamped.modified_ms == 1_767_225_600_001
    source = mkt.contact_source_of({"id": "5", "properties": {"hs_analytics_source": "PAID_SEARCH"}})
    assert source == mkt.ContactSource("5", "PAID_SEARCH", None, None, None)
    assert mkt.next_after({"paging": {"next": {"after": 20}}}) == "20"
    assert mkt.next_after({"paging": {"next": {}}}) is None
    assert mkt.next_after({}) is None

"""The customer-journey endpoints of the CRM simulator over real HTTP: Campaigns v3, Marketing Events v3,
feedback submissions (read-only) and the contacts' original source — every answer validated against
HubSpot's OpenAPI files, paging, refusals as HubSpot answers them, and a deterministic seed."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm  # noqa: F401
from tests.sandbox.test_crm_sim_conformance import SPECS, Spec, check, specs  # noqa: F401

from sandbox.common.world import World
from sandbox.crm.journey_seed import CAMPAIGNS, EVENT_ACCOUNT, EVENTS, campaign_guid, contact_source

pytestmark = pytest.mark.skipif(SPECS is None, reason="HubSpot OpenAPI files not found: set BRIDGE_SPECS_DIR")
WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)
CAMPAIGNS_SPEC, EVENTS_SPEC, FEEDBACK_SPEC = "campaigns-v3", "marketing-events-v3", "feedback-submissions-v3"
FEEDBACK = "/crm/v3/objects/feedback_submissions"
SOURCE_NAMES = (
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    "hs_analytics_source_data_2",
    "hs_analytics_first_touch_converting_campaign",
)


@pytest.fixture(scope="module", autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def test_campaigns_list_page_and_read_with_assets(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    first = check(
        specs,
        CAMPAIGNS_SPEC,
        "/marketing/v3/campaigns",
        crm.call(
            "GET", "/marketing/v3/campaigns", params={"limit": 2, "properties": "hs_name,hs_start_date,nope"}
        ),
        200,
    )
    assert first["total"] == len(CAMPAIGNS)
    oldest = sorted(CAMPAIGNS, key=lambda c: -c.start_day)[:2]  # listed by creation time
    assert [c["properties"]["hs_name"] for c in first["results"]] == [c.name for c in oldest]
    assert "nope" not in first["results"][0]["properties"]
    ids = [c["id"] for c in first["results"]]
    after = first["paging"]["next"]["after"]
    while after:
        page = crm.ok("GET", "/marketing/v3/campaigns", params={"limit": 2, "after": after})
        ids += [c["id"] for c in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
    assert sorted(ids) == sorted(campaign_guid(WORLD_SEED, c.index) for c in CAMPAIGNS)
    guid = campaign_guid(WORLD_SEED, 0)
    one = check(
        specs,
        CAMPAIGNS_SPEC,
        "/marketing/v3/campaigns/{campaignGuid}",
        crm.call(
            "GET",
            f"/marketing/v3/campaigns/{guid}",
            params={"properties": "hs_name,hs_budget_items_sum_amount"},
        ),
        200,
    )
    assert one["properties"]["hs_name"] == CAMPAIGNS[0].name
    events = {a["name"] for a in one["assets"]["MARKETING_EVENT"]["results"]}
    assert events == {e.name for e in EVENTS if e.campaign == 0}
    assets = check(
        specs,
        CAMPAIGNS_SPEC,
        "/marketing/v3/campaigns/{campaignGuid}/assets/{assetType}",
        crm.call("GET", f"/marketing/v3/campaigns/{guid}/assets/MARKETING_EVENT", params={"limit": 1}),
        200,
    )
    assert len(assets["results"]) == 1
    assert assets["paging"]["next"]["after"] == "1"
    crm.ok("GET", "/marketing/v3/campaigns/00000000-0000-4000-8000-000000000000", status=404)


def test_campaign_batch_read(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    path = "/marketing/v3/campaigns/batch/read"
    guid = campaign_guid(WORLD_SEED, 1)
    full = check(
        specs, CAMPAIGNS_SPEC, path, crm.call("POST", path, {"inputs": [{"id": guid}, {"id": guid}]}), 200
    )
    assert [c["id"] for c in full["results"]] == [guid]  # duplicates ignored
    partial = check(
        specs, CAMPAIGNS_SPEC, path, crm.call("POST", path, {"inputs": [{"id": guid}, {"id": "x"}]}), 207
    )
    assert partial["errors"][0]["context"]["ids"] == ["x"]
    assert crm.call("POST", path, {"inputs": [{"id": str(n)} for n in range(51)]}).status_code == 400


def test_marketing_events_and_participations(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    listed = check(
        specs,
        EVENTS_SPEC,
        "/marketing/marketing-events/v3",
        crm.call("GET", "/marketing/marketing-events/v3", params={"limit": 3}),
        200,
    )
    assert len(listed["results"]) == 3
    assert listed["paging"]["next"]["after"] == "3"
    event = listed["results"][0]
    assert event["eventName"] == EVENTS[0].name
    check(
        specs,
        EVENTS_SPEC,
        "/marketing/v3/marketing-events/{objectId}",
        crm.call("GET", f"/marketing/v3/marketing-events/{event['objectId']}"),
        200,
    )
    by_external = check(
        specs,
        EVENTS_SPEC,
        "/marketing/v3/marketing-events/events/{externalEventId}",
        crm.call(
            "GET",
            f"/marketing/v3/marketing-events/events/{EVENTS[0].external_id}",
            params={"externalAccountId": EVENT_ACCOUNT},
        ),
        200,
    )
    assert by_external["id"] == event["objectId"]
    counters = check(
        specs,
        EVENTS_SPEC,
        "/marketing/v3/marketing-events/participations/{marketingEventId}",
        crm.call("GET", f"/marketing/v3/marketing-events/participations/{event['objectId']}"),
        200,
    )
    assert counters["attended"] == event["attendees"] > 0
    template = "/marketing/v3/marketing-events/participations/{marketingEventId}/breakdown"
    attended = check(
        specs,
        EVENTS_SPEC,
        template,
        crm.call(
            "GET",
            f"/marketing/v3/marketing-events/participations/{event['objectId']}/breakdown",
            params={"state": "ATTENDED", "limit": 100},
        ),
        200,
    )
    assert attended["total"] == counters["attended"]
    assert {r["properties"]["attendanceState"] for r in attended["results"]} == {"ATTENDED"}
    contact = attended["results"][0]["associations"]["contact"]
    template = "/marketing/v3/marketing-events/participations/contacts/{contactIdentifier}/breakdown"
    for identifier in (contact["contactId"], contact["email"].strip().upper()):
        mine = check(
            specs,
            EVENTS_SPEC,
            template,
            crm.call("GET", f"/marketing/v3/marketing-events/participations/contacts/{identifier}/breakdown"),
            200,
        )
        assert {r["associations"]["contact"]["contactId"] for r in mine["results"]} == {contact["contactId"]}
    crm.ok("GET", "/marketing/v3/marketing-events/999", status=404)


def test_event_created_and_attendance_recorded(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    body = {
        "externalAccountId": EVENT_ACCOUNT,
        "externalEventId": "evt-test-1",
        "eventName": "客户答谢会",
        "eventOrganizer": "市场部",
        "eventType": "CONFERENCE",
        "customProperties": [],
    }
    made = check(
        specs,
        EVENTS_SPEC,
        "/marketing/v3/marketing-events/events",
        crm.call("POST", "/marketing/v3/marketing-events/events", body),
        200,
    )
    assert crm.call("POST", "/marketing/v3/marketing-events/events", body).status_code == 409
    contact = int(WORLD.contact_id(0))
    path = "/marketing/v3/marketing-events/{objectId}/attendance/{subscriberState}/create"
    done = check(
        specs,
        EVENTS_SPEC,
        path,
        crm.call(
            "POST",
            f"/marketing/v3/marketing-events/{made['objectId']}/attendance/attend/create",
            {
                "inputs": [
                    {"vid": contact, "interactionDateTime": NOW_MS, "properties": {}},
                    {"vid": 1, "interactionDateTime": NOW_MS, "properties": {}},
                ]
            },
        ),
        200,
    )
    assert done["results"] == [{"vid": contact}]
    assert done["errors"][0]["context"]["vids"] == ["1"]
    counters = crm.ok("GET", f"/marketing/v3/marketing-events/participations/{made['objectId']}")
    assert counters == {"registered": 1, "attended": 1, "cancelled": 0, "noShows": 0}


def test_marketing_needs_a_token(crm: Crm) -> None:  # noqa: F811
    for path in ("/marketing/v3/campaigns", "/marketing/marketing-events/v3"):
        resp = crm.call("GET", path, token="garbage")
        assert resp.status_code == 401
        assert resp.json()["category"] == "INVALID_AUTHENTICATION"


def _feedback(crm: Crm) -> list[dict[str, Any]]:  # noqa: F811
    return crm.dump("feedback_submissions")


def test_feedback_reads_conform(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    names = "hs_survey_type,hs_value,hs_response_group,hs_submission_timestamp,hs_contact_id"
    listed = check(
        specs,
        FEEDBACK_SPEC,
        FEEDBACK,
        crm.call("GET", FEEDBACK, params={"limit": 5, "properties": names, "associations": "contacts"}),
        200,
    )
    check(
        specs,
        "objects-v3",
        "/crm/v3/objects/{objectType}",
        crm.call("GET", "/crm/v3/objects/0-19", params={"limit": 5, "properties": names}),
        200,
    )
    first = listed["results"][0]
    assert first["properties"]["hs_survey_type"] in ("NPS", "CSAT", "CES")
    contact_id = first["associations"]["contacts"]["results"][0]["id"]
    assert contact_id == first["properties"]["hs_contact_id"]
    check(
        specs,
        FEEDBACK_SPEC,
        FEEDBACK + "/{feedbackSubmissionId}",
        crm.call("GET", f"{FEEDBACK}/{first['id']}", params={"properties": names}),
        200,
    )
    found = check(
        specs,
        FEEDBACK_SPEC,
        FEEDBACK + "/search",
        crm.search(
            "feedback_submissions",
            {
                "filterGroups": [
                    {"filters": [{"propertyName": "hs_survey_type", "operator": "EQ", "value": "NPS"}]}
                ],
                "properties": ["hs_value", "hs_response_group"],
                "limit": 200,
            },
        ),
        200,
    )
    nps = [r for r in _feedback(crm) if r["properties"]["hs_survey_type"] == "NPS"]
    assert found["total"] == len(nps) > 0
    for r in found["results"]:
        value, group = int(r["properties"]["hs_value"]), r["properties"]["hs_response_group"]
        assert group == ("PROMOTER" if value >= 9 else "PASSIVE" if value >= 7 else "DETRACTOR")
    check(
        specs,
        FEEDBACK_SPEC,
        FEEDBACK + "/batch/read",
        crm.call(
            "POST",
            FEEDBACK + "/batch/read",
            {"inputs": [{"id": first["id"]}, {"id": "1"}], "properties": [], "propertiesWithHistory": []},
        ),
        207,
    )
    back = check(
        specs,
        "associations-v4",
        "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
        crm.call("GET", f"/crm/v4/objects/contacts/{contact_id}/associations/feedback_submissions"),
        200,
    )
    assert first["id"] in {str(r["toObjectId"]) for r in back["results"]}


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "", {"properties": {"hs_survey_type": "NPS"}}),
        ("PATCH", "/{id}", {"properties": {"hs_value": "10"}}),
        ("DELETE", "/{id}", None),
        ("POST", "/batch/create", {"inputs": [{"properties": {"hs_value": "10"}}]}),
        ("POST", "/batch/update", {"inputs": [{"id": "{id}", "properties": {"hs_value": "10"}}]}),
        ("POST", "/batch/archive", {"inputs": [{"id": "{id}"}]}),
    ],
)
def test_feedback_is_read_only(crm: Crm, method: str, suffix: str, body: Any) -> None:  # noqa: F811
    before = _feedback(crm)[0]
    ident = before["id"]
    for alias in ("feedback_submissions", "0-19"):
        payload = None if body is None else _fill(body, ident)
        resp = crm.call(method, f"/crm/v3/objects/{alias}" + suffix.replace("{id}", ident), payload)
        assert resp.status_code == 403, resp.text
        assert resp.json()["category"] == "MISSING_SCOPES"
    assert _feedback(crm)[0] == before


def _fill(body: Any, ident: str) -> Any:
    if isinstance(body, dict):
        return {k: _fill(v, ident) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, ident) for v in body]
    return ident if body == "{id}" else body


def test_contacts_carry_their_original_source(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    contact = WORLD.contact(3)
    got = check(
        specs,
        "contacts-v3",
        "/crm/v3/objects/contacts/{contactId}",
        crm.call(
            "GET", f"/crm/v3/objects/contacts/{contact.id}", params={"properties": ",".join(SOURCE_NAMES)}
        ),
        200,
    )
    expected = contact_source(WORLD_SEED, 3).properties
    assert {k: v for k, v in got["properties"].items() if v is not None} == expected
    events = crm.search(
        "contacts",
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "hs_analytics_source_data_1",
                            "operator": "EQ",
                            "value": "INTEGRATION",
                        }
                    ]
                }
            ],
            "limit": 1,
        },
    ).json()
    assert events["total"] > 0
    refused = crm.call(
        "PATCH", f"/crm/v3/objects/contacts/{contact.id}", {"properties": {"hs_analytics_source": "OFFLINE"}}
    )
    assert refused.status_code == 400
    assert "READ_ONLY_VALUE" in refused.text


def test_journey_seed_is_deterministic(crm: Crm) -> None:  # noqa: F811
    def snapshot() -> tuple[Any, ...]:
        events = crm.ok("GET", "/marketing/marketing-events/v3", params={"limit": 100})["results"]
        parts = [
            crm.ok(
                "GET",
                f"/marketing/v3/marketing-events/participations/{e['objectId']}/breakdown",
                params={"limit": 100},
            )["results"]
            for e in events
        ]
        campaigns = crm.ok("GET", "/marketing/v3/campaigns", params={"properties": "hs_name,hs_start_date"})
        return events, parts, campaigns["results"], _feedback(crm)

    crm.reset()
    first = snapshot()
    crm.reset()
    assert snapshot() == first
    crm.admin("POST", "/reset")
    assert crm.ok("GET", "/marketing/v3/campaigns")["total"] == 0
    crm.reset()


def test_a_new_survey_answer_is_found_by_an_incremental_search(crm: Crm) -> None:  # noqa: F811
    """A customer answers a survey (HubSpot creates the record: here the admin act): a reader searching by
    ``hs_lastmodifieddate`` from its watermark finds it, associated to the contact."""
    newest = crm.search(
        "feedback_submissions",
        {
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
            "limit": 1,
            "properties": ["hs_lastmodifieddate"],
        },
    ).json()["results"][0]
    watermark = newest["properties"]["hs_lastmodifieddate"]
    contact = WORLD.contact_id(7)
    made = crm.admin(
        "POST",
        "/act/create",
        {
            "object_type": "feedback_submissions",
            "associations": {"contacts": [contact]},
            "properties": {
                "hs_survey_type": "NPS",
                "hs_value": "3",
                "hs_response_group": "DETRACTOR",
                "hs_sentiment": "NEGATIVE",
                "hs_contact_id": contact,
            },
        },
        status=201,
    )
    found = crm.search(
        "feedback_submissions",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": watermark}]}
            ],
            "properties": ["hs_value", "hs_contact_id"],
        },
    ).json()
    assert [r["id"] for r in found["results"]] == [made["id"]]
    links = crm.ok("GET", f"/crm/v4/objects/feedback_submissions/{made['id']}/associations/contacts")
    assert [str(r["toObjectId"]) for r in links["results"]] == [contact]


def test_journey_properties_are_described(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    """The properties API describes the journey's properties (a reader builds its value maps from it)."""
    feedback = check(
        specs,
        "properties-v3",
        "/crm/v3/properties/{objectType}",
        crm.call("GET", "/crm/v3/properties/feedback_submissions"),
        200,
    )
    by_name = {p["name"]: p for p in feedback["results"]}
    assert [o["value"] for o in by_name["hs_survey_type"]["options"]] == ["NPS", "CSAT", "CES", "CUSTOM"]
    assert by_name["hs_value"]["type"] == "number"
    assert by_name["hs_value"]["modificationMetadata"]["readOnlyValue"] is True
    source = check(
        specs,
        "properties-v3",
        "/crm/v3/properties/{objectType}/{propertyName}",
        crm.call("GET", "/crm/v3/properties/contacts/hs_analytics_source"),
        200,
    )
    assert "OFFLINE" in {o["value"] for o in source["options"]}

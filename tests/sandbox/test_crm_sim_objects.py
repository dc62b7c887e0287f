"""Basic object endpoints: get, list, create, update, archive; validation; owners, properties, pipelines."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm  # noqa: F401

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)


@pytest.fixture(scope="module", autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def _new_deal(crm: Crm, **props: str) -> dict[str, Any]:  # noqa: F811
    body = {"properties": {"dealname": "测试商机", "dealstage": "qualifiedtobuy", "amount": "1000", **props}}
    return crm.ok("POST", "/crm/v3/objects/deals", body, status=201)  # type: ignore[no-any-return]


def test_get_returns_seeded_record_with_string_values(crm: Crm) -> None:  # noqa: F811
    seed = WORLD.deal(7)
    obj = crm.ok("GET", f"/crm/v3/objects/deals/{seed.id}",
                 params={"properties": "dealname,amount,dealstage,hubspot_owner_id,oa_project_no"})
    assert obj["id"] == seed.id
    props = obj["properties"]
    for name in ("dealname", "amount", "dealstage", "hubspot_owner_id"):
        assert props[name] == seed.properties[name]
    assert props["oa_project_no"] is None  # an existing property without a value reads as null
    assert all(v is None or isinstance(v, str) for v in props.values())
    assert obj["createdAt"] == seed.properties["createdate"]
    assert obj["updatedAt"] == seed.properties["hs_lastmodifieddate"]
    assert obj["archived"] is False


def test_default_properties_and_unknown_requested_names(crm: Crm) -> None:  # noqa: F811
    seed = WORLD.company(3)
    obj = crm.ok("GET", f"/crm/v3/objects/companies/{seed.id}")
    assert set(obj["properties"]) == {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}
    obj = crm.ok("GET", f"/crm/v3/objects/companies/{seed.id}", params={"properties": "uscc,no_such_prop"})
    assert obj["properties"] == {"uscc": seed.properties["uscc"]}  # unknown names are ignored


def test_dirty_seeded_values_are_read_back_as_stored(crm: Crm) -> None:  # noqa: F811
    dirty = [d for d in WORLD.iter_deals() if d.properties.get("_defect") == "unmapped_stage"]
    assert dirty, "the demo world has deals in a legacy stage"
    obj = crm.ok("GET", f"/crm/v3/objects/deals/{dirty[0].id}", params={"properties": "dealstage"})
    assert obj["properties"]["dealstage"] == "legacy_stage_7"


def test_missing_object_is_404_object_not_found(crm: Crm) -> None:  # noqa: F811
    resp = crm.call("GET", "/crm/v3/objects/deals/123")
    assert resp.status_code == 404
    body = resp.json()
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["context"] == {"id": ["123"]}


def test_object_type_aliases_and_unknown_type(crm: Crm) -> None:  # noqa: F811
    seed = WORLD.deal(1)
    for alias in ("deals", "deal", "0-3"):
        assert crm.ok("GET", f"/crm/v3/objects/{alias}/{seed.id}")["id"] == seed.id
    resp = crm.call("GET", "/crm/v3/objects/widgets")
    assert resp.status_code == 400
    assert resp.json()["message"] == "Unable to infer object type from: widgets"


def test_unknown_route_is_404_in_hubspot_shape(crm: Crm) -> None:  # noqa: F811
    resp = crm.call("GET", "/crm/v3/nothing/here")
    assert resp.status_code == 404
    body = resp.json()
    assert body["status"] == "error"
    assert {"message", "correlationId", "category"} <= set(body)


def test_list_pages_through_every_record_once(crm: Crm) -> None:  # noqa: F811
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, "properties": "dealname"}
        if after:
            params["after"] = after
        page = crm.ok("GET", "/crm/v3/objects/deals", params=params)
        seen.extend(r["id"] for r in page["results"])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].endswith(f"after={after}")
    live = {d["id"] for d in crm.dump("deals")}
    assert len(seen) == len(set(seen)) == len(live)
    assert set(seen) == live


@pytest.mark.parametrize("limit", ["0", "101", "abc"])
def test_list_limit_out_of_range_is_refused(crm: Crm, limit: str) -> None:  # noqa: F811
    resp = crm.call("GET", "/crm/v3/objects/deals", params={"limit": limit})
    assert resp.status_code == 400
    assert resp.json()["category"] == "VALIDATION_ERROR"


def test_create_update_archive_lifecycle(crm: Crm) -> None:  # noqa: F811
    created = _new_deal(crm, oa_approval_status="PENDING", oa_decision_time="1795000000000")
    deal_id = created["id"]
    assert created["properties"]["oa_approval_status"] == "PENDING"
    # datetimes written as epoch ms read back in HubSpot's ISO format
    assert created["properties"]["oa_decision_time"] == "2026-11-18T11:06:40.000Z"
    assert created["properties"]["hs_object_id"] == deal_id
    updated = crm.ok("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                     {"properties": {"amount": 2500.5, "oa_approval_status": "APPROVED"}})
    assert updated["properties"]["amount"] == "2500.5"  # numbers are strings on the wire
    assert updated["updatedAt"] > created["updatedAt"]
    assert crm.call("DELETE", f"/crm/v3/objects/deals/{deal_id}").status_code == 204
    assert crm.call("GET", f"/crm/v3/objects/deals/{deal_id}").status_code == 404
    gone = crm.ok("GET", f"/crm/v3/objects/deals/{deal_id}", params={"archived": "true"})
    assert gone["archived"] is True
    assert "archivedAt" in gone
    assert crm.call("PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"amount": "1"}}).status_code == 404
    assert crm.call("DELETE", "/crm/v3/objects/deals/999").status_code == 204  # as HubSpot: no error


def test_hs_lastmodifieddate_moves_on_every_write_strictly_increasing(crm: Crm) -> None:  # noqa: F811
    deal_id = _new_deal(crm)["id"]
    stamps = []
    for n in range(15):
        obj = crm.ok("PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"amount": str(n)}})
        stamps.append(obj["properties"]["hs_lastmodifieddate"])
    assert all(len(s) == len("2026-11-18T08:26:40.123Z") for s in stamps)  # millisecond precision
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


@pytest.mark.parametrize(("props", "error", "fragment"), [
    ({"no_such_prop": "x"}, "PROPERTY_DOESNT_EXIST", 'Property \\"no_such_prop\\" does not exist'),
    ({"dealstage": "legacy_stage_7"}, "INVALID_OPTION", "was not one of the allowed options"),
    ({"oa_approval_status": "approved"}, "INVALID_OPTION", "was not one of the allowed options"),
    ({"amount": "12,000"}, "INVALID_DECIMAL", "was not a valid number"),
    ({"oa_decision_time": "yesterday"}, "INVALID_DATETIME", "not a valid datetime"),
    ({"hs_object_id": "1"}, "READ_ONLY_VALUE", "read only"),
    ({"hubspot_owner_id": "1"}, "INVALID_OPTION", "was not one of the allowed options"),
])
def test_invalid_writes_are_refused_like_hubspot(crm: Crm, props: dict[str, str], error: str,  # noqa: F811
                                                 fragment: str) -> None:
    before = len(crm.dump("deals"))
    resp = crm.call("POST", "/crm/v3/objects/deals", {"properties": props})
    assert resp.status_code == 400
    body = resp.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert f'"error":"{error}"' in body["message"]
    assert fragment in body["message"]
    assert len(crm.dump("deals")) == before


def test_engagements_need_hs_timestamp(crm: Crm) -> None:  # noqa: F811
    resp = crm.call("POST", "/crm/v3/objects/notes", {"properties": {"hs_note_body": "差旅"}})
    assert resp.status_code == 400
    assert "hs_timestamp" in resp.json()["message"]
    note = crm.ok("POST", "/crm/v3/objects/notes", {"properties": {
        "hs_note_body": "差旅", "hs_timestamp": "2026-11-01T08:00:00Z", "oa_activity_type": "travel_request",
        "oa_amount": "1280.50"}}, status=201)
    assert note["properties"]["hs_timestamp"] == "2026-11-01T08:00:00.000Z"
    assert "hs_createdate" in note["properties"]


def test_properties_endpoint_lists_custom_properties_and_options(crm: Crm) -> None:  # noqa: F811
    deals = {p["name"]: p for p in crm.ok("GET", "/crm/v3/properties/deals")["results"]}
    stages = [o["value"] for o in deals["dealstage"]["options"]]
    assert stages[:7] == ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                          "decisionmakerboughtin", "contractsent", "closedwon", "delivered"]
    assert "closedlost" in stages
    assert [o["value"] for o in deals["oa_approval_status"]["options"]] == [
        "PENDING", "APPROVED", "REJECTED", "CANCELED", "DELETED", "REVERTED"]
    assert deals["oa_decision_time"]["type"] == "datetime"
    assert [o["value"] for o in deals["oa_project_stage"]["options"]] == ["initiated", "executing", "closed"]
    assert deals["oa_project_no"]["hubspotDefined"] is False
    notes = {p["name"]: p for p in crm.ok("GET", "/crm/v3/properties/notes")["results"]}
    assert notes["oa_instance_code"]["hasUniqueValue"] is True
    for name in ("oa_activity_type", "oa_amount", "oa_applicant", "oa_purpose"):
        assert name in notes
    meetings = {p["name"] for p in crm.ok("GET", "/crm/v3/properties/meetings")["results"]}
    assert "oa_instance_code" in meetings
    companies = {p["name"] for p in crm.ok("GET", "/crm/v3/properties/companies")["results"]}
    assert "uscc" in companies
    one = crm.ok("GET", "/crm/v3/properties/deals/oa_project_no")
    assert one["name"] == "oa_project_no"
    assert crm.call("GET", "/crm/v3/properties/deals/nope").status_code == 404


def test_owners_match_the_world_and_page(crm: Crm) -> None:  # noqa: F811
    expected = {e.owner_id: e for e in WORLD.owners}
    got: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 5}
        if after:
            params["after"] = after
        page = crm.ok("GET", "/crm/v3/owners", params=params)
        got.extend(page["results"])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert {o["id"] for o in got} == set(expected)
    for o in got:
        e = expected[o["id"]]
        assert o["email"] == e.email
        assert o["lastName"] + o["firstName"] == e.name
    one = crm.ok("GET", "/crm/v3/owners", params={"email": WORLD.owners[2].email.upper()})
    assert [o["id"] for o in one["results"]] == [WORLD.owners[2].owner_id]


def test_deal_pipeline_has_the_default_stages_and_delivered(crm: Crm) -> None:  # noqa: F811
    pipelines = crm.ok("GET", "/crm/v3/pipelines/deals")["results"]
    assert [p["id"] for p in pipelines] == ["default"]
    stage_ids = [s["id"] for s in pipelines[0]["stages"]]
    assert "delivered" in stage_ids
    assert "appointmentscheduled" in stage_ids

"""A record's later life on the CRM simulator, as HubSpot behaves: archive without a modified-date bump,
restore (admin: HubSpot has no restore API), merge with ``hs_merged_object_ids``, labelled and primary
associations with ``associatedcompanyid`` following the primary company, and unique-value properties
created through the properties API. Answers validated against the OpenAPI files in ``sandbox/specs``."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm, specs_dir  # noqa: F401
from tests.sandbox.test_crm_sim_conformance import Spec

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)
SPECS = specs_dir()


@pytest.fixture(autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


@pytest.fixture(scope="module")
def specs() -> dict[str, Spec]:
    assert SPECS is not None, "sandbox/specs is part of the repository"
    return {p.stem: Spec(p) for p in (SPECS / "hubspot").glob("*.json")}


def _conforms(specs: dict[str, Spec], spec: str, method: str, template: str, resp: Any) -> None:
    problems = specs[spec].errors(method, template, resp)
    assert not problems, f"{spec} {template}: {problems[:5]}"


def _searchable(crm: Crm, object_type: str, object_id: str) -> bool:  # noqa: F811
    """Whether search finds the record (by id, and by the incremental modified-date query the bridge runs)."""
    by_id = crm.search(object_type, {"filterGroups": [{"filters": [
        {"propertyName": "hs_object_id", "operator": "EQ", "value": object_id}]}]})
    assert by_id.status_code == 200, by_id.text
    return by_id.json()["total"] == 1


def test_archive_keeps_the_modified_date_and_restore_brings_the_record_back(crm: Crm) -> None:  # noqa: F811
    deal = WORLD.deal(4)
    before = crm.ok("GET", f"/crm/v3/objects/deals/{deal.id}")
    crm.admin("POST", "/act/archive", {"object_type": "deals", "id": deal.id})
    gone = crm.ok("GET", f"/crm/v3/objects/deals/{deal.id}", params={"archived": "true"})
    assert gone["archived"] is True
    assert "archivedAt" in gone
    # HubSpot: archiving does not change hs_lastmodifieddate, so an incremental search cannot see it
    assert gone["updatedAt"] == before["updatedAt"]
    assert not _searchable(crm, "deals", deal.id)
    assert crm.call("GET", f"/crm/v3/objects/deals/{deal.id}").status_code == 404
    listed = crm.ok("GET", "/crm/v3/objects/deals", params={"archived": "true", "limit": 100})
    assert [r["id"] for r in listed["results"]] == [deal.id]

    assert crm.admin("POST", "/act/restore", {"object_type": "deals", "id": deal.id}) == {"restored": [deal.id]}
    back = crm.ok("GET", f"/crm/v3/objects/deals/{deal.id}")
    assert back["archived"] is False
    assert back["updatedAt"] == before["updatedAt"]
    assert _searchable(crm, "deals", deal.id)
    # restoring a live record does nothing
    assert crm.admin("POST", "/act/restore", {"object_type": "deals", "id": deal.id}) == {"restored": []}


def test_restore_refuses_a_unique_value_taken_meanwhile(crm: Crm) -> None:  # noqa: F811
    note = {"hs_timestamp": "2026-11-01T00:00:00Z", "oa_instance_code": "INST-R1"}
    a = crm.ok("POST", "/crm/v3/objects/notes", {"properties": note}, status=201)["id"]
    crm.admin("POST", "/act/archive", {"object_type": "notes", "id": a})
    crm.ok("POST", "/crm/v3/objects/notes", {"properties": note}, status=201)  # the value is free again
    crm.admin("POST", "/act/restore", {"object_type": "notes", "id": a}, status=409)
    assert crm.call("GET", f"/crm/v3/objects/notes/{a}").status_code == 404


@pytest.mark.parametrize("object_type", ["deals", "companies", "contacts"])
def test_merge_keeps_the_survivor_and_answers_the_absorbed_id_with_it(
        crm: Crm, specs: dict[str, Spec], object_type: str) -> None:  # noqa: F811
    first = {"deals": WORLD.deal, "companies": WORLD.company, "contacts": WORLD.contact}[object_type]
    primary, absorbed = first(3).id, first(5).id
    resp = crm.call("POST", f"/crm/v3/objects/{object_type}/merge",
                    {"objectIdToMerge": absorbed, "primaryObjectId": primary})
    assert resp.status_code == 200, resp.text
    survivor = resp.json()
    if object_type == "companies":
        _conforms(specs, "companies-v3", "POST", "/crm/v3/objects/companies/merge", resp)
    assert survivor["id"] == primary
    assert survivor["properties"]["hs_merged_object_ids"] == absorbed
    # the absorbed id answers with the survivor; search knows only the survivor
    again = crm.ok("GET", f"/crm/v3/objects/{object_type}/{absorbed}",
                   params={"properties": "hs_merged_object_ids"})
    assert again["id"] == primary
    assert _searchable(crm, object_type, primary)
    assert not _searchable(crm, object_type, absorbed)
    batch = crm.ok("POST", f"/crm/v3/objects/{object_type}/batch/read",
                   {"inputs": [{"id": absorbed}], "properties": [], "propertiesWithHistory": []})
    assert [r["id"] for r in batch["results"]] == [primary]
    # a second merge appends to the list
    third = first(7).id
    crm.ok("POST", f"/crm/v3/objects/{object_type}/merge", {"objectIdToMerge": third, "primaryObjectId": primary})
    merged = crm.ok("GET", f"/crm/v3/objects/{object_type}/{primary}", params={"properties": "hs_merged_object_ids"})
    assert merged["properties"]["hs_merged_object_ids"].split(";") == [absorbed, third]


def test_merge_moves_associations_to_the_survivor(crm: Crm) -> None:  # noqa: F811
    keep, lose = WORLD.company(0).id, WORLD.company(1).id
    lost_contacts = {str(c["toObjectId"]) for c in crm.ok(
        "GET", f"/crm/v4/objects/companies/{lose}/associations/contacts")["results"]}
    assert lost_contacts, "the world gives every company contacts"
    crm.ok("POST", "/crm/v3/objects/companies/merge", {"objectIdToMerge": lose, "primaryObjectId": keep})
    now = {str(c["toObjectId"]) for c in crm.ok(
        "GET", f"/crm/v4/objects/companies/{keep}/associations/contacts")["results"]}
    assert lost_contacts <= now
    contact = sorted(lost_contacts)[0]
    companies = crm.ok("GET", f"/crm/v4/objects/contacts/{contact}/associations/companies")["results"]
    assert [str(c["toObjectId"]) for c in companies] == [keep]


@pytest.mark.parametrize(("body", "status"), [
    ({"objectIdToMerge": "1", "primaryObjectId": "2"}, 404),
    ({"primaryObjectId": "2"}, 400),
])
def test_merge_refusals(crm: Crm, body: dict[str, str], status: int) -> None:  # noqa: F811
    resp = crm.call("POST", "/crm/v3/objects/deals/merge", body)
    assert resp.status_code == status
    assert resp.json()["status"] == "error"
    same = WORLD.deal(0).id
    resp = crm.call("POST", "/crm/v3/objects/deals/merge", {"objectIdToMerge": same, "primaryObjectId": same})
    assert resp.status_code == 400


def test_an_unlabeled_company_leaves_associatedcompanyid_empty(crm: Crm) -> None:  # noqa: F811
    """HubSpot: ``associatedcompanyid`` is the primary company only; other companies come from v4."""
    contact = crm.ok("POST", "/crm/v3/objects/contacts", {"properties": {"lastname": "王", "firstname": "五"}},
                     status=201)["id"]
    company = WORLD.company(2).id
    crm.ok("PUT", f"/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}")
    got = crm.ok("GET", f"/crm/v3/objects/contacts/{contact}", params={"properties": "associatedcompanyid"})
    assert got["properties"]["associatedcompanyid"] is None
    links = crm.ok("GET", f"/crm/v4/objects/contacts/{contact}/associations/companies")["results"]
    assert [(str(r["toObjectId"]), [t["typeId"] for t in r["associationTypes"]]) for r in links] == [(company, [279])]

    # the primary label (type 1) makes it the primary company, and the property follows
    crm.ok("PUT", f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}",
           [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}], status=201)
    got = crm.ok("GET", f"/crm/v3/objects/contacts/{contact}", params={"properties": "associatedcompanyid"})
    assert got["properties"]["associatedcompanyid"] == company
    # a second primary replaces the first, which stays associated unlabeled
    other = WORLD.company(3).id
    crm.ok("PATCH", f"/crm/v3/objects/contacts/{contact}", {"properties": {"associatedcompanyid": other}})
    links = {str(r["toObjectId"]): {t["typeId"] for t in r["associationTypes"]} for r in crm.ok(
        "GET", f"/crm/v4/objects/contacts/{contact}/associations/companies")["results"]}
    assert links == {company: {279}, other: {1, 279}}
    # removing the primary association empties the property
    resp = crm.call("DELETE", f"/crm/v4/objects/contacts/{contact}/associations/companies/{other}")
    assert resp.status_code == 204
    got = crm.ok("GET", f"/crm/v3/objects/contacts/{contact}", params={"properties": "associatedcompanyid"})
    assert got["properties"]["associatedcompanyid"] in (None, "")


def test_user_defined_labels(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    label = crm.admin("POST", "/act/label", {"from_type": "deals", "to_type": "contacts", "label": "决策人",
                                             "name": "decision_maker"})
    deal, contact = WORLD.deal(0).id, WORLD.contact(9).id
    resp = crm.call("PUT", f"/crm/v4/objects/deals/{deal}/associations/contacts/{contact}",
                    [{"associationCategory": "USER_DEFINED", "associationTypeId": label["typeId"]}])
    assert resp.status_code == 201
    assert resp.json()["labels"] == ["决策人"]
    listed = crm.call("GET", f"/crm/v4/objects/deals/{deal}/associations/contacts")
    _conforms(specs, "associations-v4", "GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
              listed)
    types = {str(r["toObjectId"]): r["associationTypes"] for r in listed.json()["results"]}
    assert {"category": "USER_DEFINED", "typeId": label["typeId"], "label": "决策人"} in types[contact]
    # the inverse direction carries the inverse type id
    back = crm.ok("POST", "/crm/v4/associations/contacts/deals/batch/read", {"inputs": [{"id": contact}]})
    back_types = [t for r in back["results"][0]["to"] if str(r["toObjectId"]) == deal for t in r["associationTypes"]]
    assert {"category": "USER_DEFINED", "typeId": label["inverseTypeId"], "label": "决策人"} in back_types
    # removing the label keeps the association
    resp = crm.call("POST", "/crm/v4/associations/deals/contacts/batch/labels/archive", {"inputs": [
        {"from": {"id": deal}, "to": {"id": contact},
         "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": label["typeId"]}]}]})
    assert resp.status_code == 204
    types = {str(r["toObjectId"]): r["associationTypes"] for r in crm.ok(
        "GET", f"/crm/v4/objects/deals/{deal}/associations/contacts")["results"]}
    assert [t["typeId"] for t in types[contact]] == [3]
    # a type id of another pair is refused
    resp = crm.call("PUT", f"/crm/v4/objects/deals/{deal}/associations/contacts/{contact}",
                    [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])
    assert resp.status_code == 400
    labels = crm.ok("GET", "/crm/v4/associations/deals/contacts/labels")["results"]
    assert {"category": "USER_DEFINED", "typeId": label["typeId"], "label": "决策人"} in labels


def test_properties_api_creates_a_unique_property_for_upserts(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    # before: the property does not exist, and the answer says so (not "non-unique")
    missing = crm.call("POST", "/crm/v3/objects/meetings/batch/upsert", {"inputs": [
        {"id": "INST-9", "idProperty": "bridge_instance_code", "properties": {"hs_timestamp": "0"}}]})
    assert missing.status_code == 400
    assert "does not exist" in missing.json()["message"]
    assert "non-unique" not in missing.json()["message"]
    made = crm.call("POST", "/crm/v3/properties/meetings", {
        "name": "bridge_instance_code", "label": "OA 审批实例编号", "type": "string", "fieldType": "text",
        "groupName": "meetinginformation", "hasUniqueValue": True})
    assert made.status_code == 201, made.text
    _conforms(specs, "properties-v3", "POST", "/crm/v3/properties/{objectType}", made)
    assert made.json()["hasUniqueValue"] is True
    again = crm.call("POST", "/crm/v3/properties/meetings", {
        "name": "bridge_instance_code", "label": "x", "type": "string", "fieldType": "text", "groupName": "g"})
    assert again.status_code == 409
    up = {"inputs": [{"id": "INST-9", "idProperty": "bridge_instance_code",
                      "properties": {"hs_timestamp": "2026-11-01T00:00:00Z", "hs_meeting_title": "拜访"}}]}
    first = crm.ok("POST", "/crm/v3/objects/meetings/batch/upsert", up)
    second = crm.ok("POST", "/crm/v3/objects/meetings/batch/upsert", up)
    assert first["results"][0]["new"] is True
    assert second["results"][0]["new"] is False
    assert first["results"][0]["id"] == second["results"][0]["id"]
    listed = {p["name"] for p in crm.ok("GET", "/crm/v3/properties/meetings")["results"]}
    assert "bridge_instance_code" in listed
    # the property survives a restart of the store (persisted), but not a reset
    crm.admin("POST", "/reset")
    assert "bridge_instance_code" not in {p["name"] for p in crm.ok("GET", "/crm/v3/properties/meetings")["results"]}

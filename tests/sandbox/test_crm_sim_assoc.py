"""Associations v4 (and the v3 ``associations`` block): seeded links, both directions, batch read/associate."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm  # noqa: F401

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)


@pytest.fixture(autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def _new_note(crm: Crm) -> str:  # noqa: F811
    note = crm.ok("POST", "/crm/v3/objects/notes", {"properties": {
        "hs_timestamp": "2026-11-01T00:00:00Z", "hs_note_body": "拜访"}}, status=201)
    return str(note["id"])


def test_seeded_deals_and_contacts_point_at_their_companies(crm: Crm) -> None:  # noqa: F811
    deal = WORLD.deal(12)
    company_id = deal.associations["companies"][0]
    got = crm.ok("GET", f"/crm/v4/objects/deals/{deal.id}/associations/companies")
    assert [r["toObjectId"] for r in got["results"]] == [int(company_id)]
    types = got["results"][0]["associationTypes"]
    assert {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"} in types
    assert {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None} in types
    back = crm.ok("GET", f"/crm/v4/objects/companies/{company_id}/associations/deals")
    assert int(deal.id) in [r["toObjectId"] for r in back["results"]]
    contact = WORLD.contact(3)
    got = crm.ok("GET", f"/crm/v4/objects/contacts/{contact.id}/associations/companies")
    assert [str(r["toObjectId"]) for r in got["results"]] == contact.associations["companies"]


def test_every_seeded_deal_has_exactly_its_company(crm: Crm) -> None:  # noqa: F811
    deals = list(WORLD.iter_deals())
    body = crm.ok("POST", "/crm/v4/associations/deals/companies/batch/read",
                  {"inputs": [{"id": d.id} for d in deals]})
    got = {r["from"]["id"]: [str(t["toObjectId"]) for t in r["to"]] for r in body["results"]}
    assert got == {d.id: d.associations["companies"] for d in deals}


def test_put_default_association_creates_both_directions(crm: Crm) -> None:  # noqa: F811
    note = _new_note(crm)
    deal = WORLD.deal(2).id
    body = crm.ok("PUT", f"/crm/v4/objects/notes/{note}/associations/default/deals/{deal}")
    assert body["status"] == "COMPLETE"
    specs = {(r["from"]["id"], r["to"]["id"]): r["associationSpec"]["associationTypeId"] for r in body["results"]}
    assert specs == {(note, deal): 214, (deal, note): 213}
    assert [r["toObjectId"] for r in crm.ok("GET", f"/crm/v4/objects/deals/{deal}/associations/notes")["results"]] \
        == [int(note)]
    # idempotent: a second PUT leaves one link
    crm.ok("PUT", f"/crm/v4/objects/notes/{note}/associations/default/deals/{deal}")
    assert len(crm.ok("GET", f"/crm/v4/objects/notes/{note}/associations/deals")["results"]) == 1


def test_batch_read_reports_objects_without_associations_as_errors(crm: Crm) -> None:  # noqa: F811
    note = _new_note(crm)
    company = WORLD.company(0).id
    crm.ok("PUT", f"/crm/v4/objects/notes/{note}/associations/default/companies/{company}")
    lonely = _new_note(crm)
    resp = crm.call("POST", "/crm/v4/associations/notes/companies/batch/read",
                    {"inputs": [{"id": note}, {"id": lonely}]})
    assert resp.status_code == 207
    body = resp.json()
    assert [r["from"]["id"] for r in body["results"]] == [note]
    assert body["errors"][0]["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert body["errors"][0]["context"]["fromObjectId"] == [lonely]


def test_batch_associate_default(crm: Crm) -> None:  # noqa: F811
    notes = [_new_note(crm) for _ in range(3)]
    company = WORLD.company(1).id
    body = crm.ok("POST", "/crm/v4/associations/notes/companies/batch/associate/default",
                  {"inputs": [{"from": {"id": n}, "to": {"id": company}} for n in notes]})
    assert len(body["results"]) == 6  # both directions per input
    linked = crm.ok("GET", f"/crm/v4/objects/companies/{company}/associations/notes")
    assert sorted(str(r["toObjectId"]) for r in linked["results"]) == sorted(notes)


def test_create_with_associations_and_the_v3_block(crm: Crm) -> None:  # noqa: F811
    company = WORLD.company(4).id
    deal = crm.ok("POST", "/crm/v3/objects/deals", {
        "properties": {"dealname": "新商机"},
        "associations": [{"to": {"id": company},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}],
    }, status=201)
    got = crm.ok("GET", f"/crm/v3/objects/deals/{deal['id']}", params={"associations": "companies,contacts"})
    block: dict[str, Any] = got["associations"]
    assert set(block) == {"companies"}  # empty association types are left out
    assert {r["type"] for r in block["companies"]["results"]} == {"deal_to_company", "deal_to_company_unlabeled"}
    assert {r["id"] for r in block["companies"]["results"]} == {company}


@pytest.mark.parametrize(("path", "status"), [
    ("/crm/v4/objects/notes/1/associations/default/deals/2", 404),  # objects that do not exist
    ("/crm/v4/objects/widgets/1/associations/default/deals/2", 400),  # unknown type
])
def test_bad_association_requests(crm: Crm, path: str, status: int) -> None:  # noqa: F811
    resp = crm.call("PUT", path)
    assert resp.status_code == status
    assert resp.json()["status"] == "error"


def test_invalid_association_type_on_create_is_refused(crm: Crm) -> None:  # noqa: F811
    resp = crm.call("POST", "/crm/v3/objects/deals", {
        "properties": {"dealname": "x"},
        "associations": [{"to": {"id": WORLD.company(0).id},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]})
    assert resp.status_code == 400
    assert resp.json()["subCategory"] == "crm.associations.INVALID_ASSOCIATION_TYPE"


def test_archived_targets_are_hidden(crm: Crm) -> None:  # noqa: F811
    deal = WORLD.deal(20)
    company = deal.associations["companies"][0]
    crm.admin("POST", "/act/archive", {"object_type": "companies", "id": company})
    got = crm.ok("GET", f"/crm/v4/objects/deals/{deal.id}/associations/companies")
    assert got["results"] == []

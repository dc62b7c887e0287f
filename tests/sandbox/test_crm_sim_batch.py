"""Batch read/create/update/upsert/archive: limits, 207 multi-status, upsert by a unique property."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm  # noqa: F401

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)


@pytest.fixture(autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def _note(code: str, **props: str) -> dict[str, Any]:
    return {"idProperty": "oa_instance_code", "id": code, "properties": {
        "hs_timestamp": "2026-11-01T08:00:00.000Z", "hs_note_body": f"报销 {code}",
        "oa_activity_type": "expense_claim", "oa_amount": "300.00", **props}}


def test_batch_read_returns_207_with_errors_for_missing_ids(crm: Crm) -> None:  # noqa: F811
    ids = [WORLD.deal(i).id for i in range(3)]
    resp = crm.call("POST", "/crm/v3/objects/deals/batch/read",
                    {"inputs": [{"id": i} for i in [*ids, "404404"]], "properties": ["dealname", "amount"],
                     "propertiesWithHistory": []})
    assert resp.status_code == 207
    body = resp.json()
    assert body["status"] == "COMPLETE"
    assert sorted(r["id"] for r in body["results"]) == sorted(ids)
    assert body["numErrors"] == 1
    err = body["errors"][0]
    assert err["category"] == "OBJECT_NOT_FOUND"
    assert err["context"] == {"ids": ["404404"]}
    full = crm.call("POST", "/crm/v3/objects/deals/batch/read", {"inputs": [{"id": i} for i in ids],
                                                                  "propertiesWithHistory": []})
    assert full.status_code == 200
    assert "errors" not in full.json()
    # HubSpot's published request schema requires propertiesWithHistory ([] for none)
    bare = crm.call("POST", "/crm/v3/objects/deals/batch/read", {"inputs": [{"id": i} for i in ids]})
    assert bare.status_code == 400
    assert "propertiesWithHistory" in bare.json()["message"]


def test_more_than_100_inputs_are_refused(crm: Crm) -> None:  # noqa: F811
    for op, item in (("read", {"id": "1"}), ("create", {"properties": {"dealname": "x"}}),
                     ("update", {"id": "1", "properties": {}}), ("archive", {"id": "1"})):
        resp = crm.call("POST", f"/crm/v3/objects/deals/batch/{op}",
                        {"inputs": [dict(item, id=str(n)) if "id" in item else item for n in range(101)]})
        assert resp.status_code == 400, op
        assert resp.json()["category"] == "VALIDATION_ERROR"
    assert crm.call("POST", "/crm/v3/objects/deals/batch/read",
                    {"inputs": [{"id": str(n)} for n in range(100)], "propertiesWithHistory": []}).status_code == 207


def test_batch_create_is_all_or_nothing(crm: Crm) -> None:  # noqa: F811
    before = len(crm.dump("deals"))
    good = {"properties": {"dealname": "甲", "dealstage": "closedwon", "amount": "10"}}
    bad = {"properties": {"dealname": "乙", "dealstage": "won_maybe"}}
    resp = crm.call("POST", "/crm/v3/objects/deals/batch/create", {"inputs": [good, bad]})
    assert resp.status_code == 400
    assert "INVALID_OPTION" in resp.json()["message"]
    assert len(crm.dump("deals")) == before
    body = crm.ok("POST", "/crm/v3/objects/deals/batch/create", {"inputs": [good, good]}, status=201)
    assert body["status"] == "COMPLETE"
    assert len(body["results"]) == 2
    assert len(crm.dump("deals")) == before + 2


def test_batch_update_partial_failure_is_207_and_commits_the_rest(crm: Crm) -> None:  # noqa: F811
    real = WORLD.deal(5).id
    resp = crm.call("POST", "/crm/v3/objects/deals/batch/update", {"inputs": [
        {"id": real, "properties": {"oa_project_stage": "executing"}},
        {"id": "777", "properties": {"oa_project_stage": "closed"}},
    ]})
    assert resp.status_code == 207
    body = resp.json()
    assert [r["id"] for r in body["results"]] == [real]
    assert body["errors"][0]["context"] == {"ids": ["777"]}
    stored = crm.ok("GET", f"/crm/v3/objects/deals/{real}", params={"properties": "oa_project_stage"})
    assert stored["properties"]["oa_project_stage"] == "executing"


def test_duplicate_ids_in_a_batch_are_refused(crm: Crm) -> None:  # noqa: F811
    real = WORLD.deal(5).id
    resp = crm.call("POST", "/crm/v3/objects/deals/batch/update", {"inputs": [
        {"id": real, "properties": {"amount": "1"}}, {"id": real, "properties": {"amount": "2"}}]})
    assert resp.status_code == 400
    assert resp.json()["message"] == f"Duplicate IDs found in batch input: [{real}]. IDs must be unique"


def test_upsert_by_unique_property_creates_then_updates(crm: Crm) -> None:  # noqa: F811
    first = crm.ok("POST", "/crm/v3/objects/notes/batch/upsert", {"inputs": [_note("INST-1"), _note("INST-2")]})
    assert [r["new"] for r in first["results"]] == [True, True]
    ids = {r["properties"]["oa_instance_code"]: r["id"] for r in first["results"]}
    second = crm.ok("POST", "/crm/v3/objects/notes/batch/upsert",
                    {"inputs": [_note("INST-1", oa_amount="450.00"), _note("INST-3")]})
    by_code = {r["properties"]["oa_instance_code"]: r for r in second["results"]}
    assert by_code["INST-1"]["new"] is False
    assert by_code["INST-1"]["id"] == ids["INST-1"]
    assert by_code["INST-3"]["new"] is True
    notes = {n["properties"]["oa_instance_code"]: n for n in crm.dump("notes")}
    assert set(notes) == {"INST-1", "INST-2", "INST-3"}
    assert notes["INST-1"]["properties"]["oa_amount"] == "450.00"
    stats = crm.admin("GET", "/stats")
    assert stats["writes"]["notes"]["upserted"] == 4
    # read back by the unique property, as HubSpot allows
    got = crm.ok("GET", "/crm/v3/objects/notes/INST-2", params={"idProperty": "oa_instance_code"})
    assert got["id"] == ids["INST-2"]


def test_upsert_by_non_unique_property_is_refused(crm: Crm) -> None:  # noqa: F811
    resp = crm.call("POST", "/crm/v3/objects/deals/batch/upsert", {"inputs": [
        {"idProperty": "oa_project_no", "id": "P-1", "properties": {"dealname": "x"}}]})
    assert resp.status_code == 400
    assert "non-unique 0-3 property oa_project_no" in resp.json()["message"]


def test_unique_value_conflict_on_create_is_409(crm: Crm) -> None:  # noqa: F811
    crm.ok("POST", "/crm/v3/objects/notes/batch/upsert", {"inputs": [_note("INST-9")]})
    resp = crm.call("POST", "/crm/v3/objects/notes", {"properties": _note("INST-9")["properties"]
                                                       | {"oa_instance_code": "INST-9"}})
    assert resp.status_code == 409
    assert resp.json()["category"] == "CONFLICT"
    assert len(crm.dump("notes")) == 1


def test_batch_archive_is_204_and_hides_records(crm: Crm) -> None:  # noqa: F811
    ids = [WORLD.company(i).id for i in range(4)]
    resp = crm.call("POST", "/crm/v3/objects/companies/batch/archive",
                    {"inputs": [{"id": i} for i in [*ids, "12345"]]})
    assert resp.status_code == 204
    live = {c["id"] for c in crm.dump("companies")}
    assert not live & set(ids)
    archived = {c["id"] for c in crm.dump("companies", archived="true")}
    assert set(ids) <= archived
    stats = crm.admin("GET", "/stats")
    assert stats["writes"]["companies"]["archived"] == 4

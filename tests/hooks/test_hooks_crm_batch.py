"""CrmHook batch calls, associations, owners and properties over real HTTP: per-record outcomes, 207 partial
failures, a refused chunk that does not stop the others."""

from __future__ import annotations

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, SEEDED, Sim, crm_hook, sim_fixture

from bridge.hooks.crm import CrmHook, _parse_ms
from bridge.hooks.errors import RecordErrorKind

crm = sim_fixture("crm", "crm_batch", *RATE_LIMITS_OFF, *SEEDED)


@pytest.fixture
def hook(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> CrmHook:
    crm.reset()
    return crm_hook(crm, monkeypatch)


@pytest.fixture(scope="module")
def deal_ids(crm: Sim) -> list[str]:
    page = crm.admin("GET", "/objects/deals", params={"limit": 1000})
    return [str(o["id"]) for o in page["results"]]


def test_batch_read_reports_missing_ids_from_a_207(hook: CrmHook, deal_ids: list[str]) -> None:
    wanted = [*deal_ids[:150], "59999999998", "59999999999"]
    outcomes = hook.batch_read("deals", wanted, properties=["dealname"])
    assert [o.key for o in outcomes] == wanted
    assert [o.status for o in outcomes] == ["read"] * 150 + ["error"] * 2
    assert all(
        o.object and o.object["properties"].get("dealname") is not None
        for o in outcomes[:150]
        if o.object and "dealname" in o.object["properties"]
    )
    assert {o.category for o in outcomes[150:]} == {"OBJECT_NOT_FOUND"}
    assert {o.kind for o in outcomes[150:]} == {RecordErrorKind.NOT_FOUND}
    assert {o.kind for o in outcomes[:150]} == {None}
    assert hook.api_calls["POST /crm/v3/objects/{object_type}/batch/read"] == 2


def test_existing_ids_keeps_only_the_ids_the_crm_has(hook: CrmHook, deal_ids: list[str]) -> None:
    wanted = [*deal_ids[:120], "59999999998"]
    assert hook.existing_ids("deals", wanted) == set(deal_ids[:120])
    assert hook.api_calls["POST /crm/v3/objects/{object_type}/batch/read"] == 2
    assert hook.existing_ids("deals", []) == set()


def test_count_modified_counts_the_half_open_range(crm: Sim, hook: CrmHook) -> None:
    page = crm.admin("GET", "/objects/deals", params={"limit": 10000})["results"]
    stamps = sorted(int(_ms(o["properties"]["hs_lastmodifieddate"])) for o in page)
    assert hook.count_modified("deals", 0, stamps[-1] + 1) == len(stamps)
    middle = stamps[len(stamps) // 2]
    assert hook.count_modified("deals", 0, middle) == sum(1 for s in stamps if s < middle)
    assert hook.count_modified("deals", stamps[-1] + 1, stamps[-1] + 2) == 0
    assert hook.api_calls["POST /crm/v3/objects/{object_type}/search"] == 3


def test_batch_update_partial_207(crm: Sim, hook: CrmHook, deal_ids: list[str]) -> None:
    records = [{"hs_object_id": i, "description": "批量更新"} for i in deal_ids[:3]]
    records.insert(1, {"hs_object_id": "59999999997", "description": "不存在"})
    outcomes = hook.batch_update("deals", records)
    assert [(o.key, o.status) for o in outcomes] == [
        (deal_ids[0], "updated"),
        ("59999999997", "error"),
        (deal_ids[1], "updated"),
        (deal_ids[2], "updated"),
    ]
    assert outcomes[1].category == "OBJECT_NOT_FOUND"
    assert outcomes[0].modified("deals") is not None
    assert outcomes[1].modified("deals") is None
    assert "Could not get some deals" in (outcomes[1].message or "")
    assert crm.stats()["writes"]["deals"]["updated"] == 3


def test_a_refused_chunk_does_not_stop_the_others(crm: Sim, hook: CrmHook) -> None:
    records = [{"dealname": f"批量新建 {n}", "amount": "1000"} for n in range(230)]
    records[120]["amount"] = "一千元"  # refused by HubSpot: the whole second chunk is refused
    outcomes = hook.batch_create("deals", records)
    assert [o.key for o in outcomes] == [str(n) for n in range(230)]
    assert [o.status for o in outcomes[:100]] == ["created"] * 100
    assert {o.status for o in outcomes[100:200]} == {"error"}
    assert all(
        "INVALID_DECIMAL" in (o.message or "") and o.category == "VALIDATION_ERROR" for o in outcomes[100:200]
    )
    assert {o.kind for o in outcomes[100:200]} == {RecordErrorKind.VALIDATION}
    assert [o.status for o in outcomes[200:]] == ["created"] * 30
    assert crm.stats()["writes"]["deals"]["created"] == 130
    assert len({o.id for o in outcomes if o.ok}) == 130


def test_upsert_creates_then_updates_by_unique_property(hook: CrmHook) -> None:
    meetings = [
        {
            "oa_instance_code": f"INST-UP-{n}",
            "hs_timestamp": "2026-11-21T02:00:00.000Z",
            "hs_meeting_title": f"客户拜访 {n}",
        }
        for n in range(3)
    ]
    first = hook.batch_upsert("meetings", meetings, "oa_instance_code")
    assert [(o.key, o.status) for o in first] == [(m["oa_instance_code"], "created") for m in meetings]
    meetings[1]["hs_meeting_title"] = "客户拜访（改期）"
    again = hook.batch_upsert("meetings", [*meetings, {"hs_meeting_title": "no key"}], "oa_instance_code")
    assert [o.status for o in again] == ["updated"] * 3 + ["error"]
    assert again[3].category == "MISSING_ID"
    assert again[3].kind is RecordErrorKind.MISSING_ID
    assert [o.id for o in again[:3]] == [o.id for o in first]


def test_duplicate_keys_in_one_call_write_the_last_one(hook: CrmHook) -> None:
    notes = [
        {"oa_instance_code": "INST-DUP", "hs_timestamp": "2026-11-21T02:00:00.000Z", "hs_note_body": body}
        for body in ("旧", "新")
    ]
    outcomes = hook.batch_upsert("notes", notes, "oa_instance_code")
    assert [o.status for o in outcomes] == ["error", "created"]
    assert outcomes[0].category == "DUPLICATE_INPUT"
    assert outcomes[0].kind is RecordErrorKind.DUPLICATE_INPUT
    read = hook.batch_read("notes", ["INST-DUP"], id_property="oa_instance_code", properties=["hs_note_body"])
    assert read[0].object is not None
    assert read[0].object["properties"]["hs_note_body"] == "新"


def test_create_with_a_unique_property_is_an_upsert(crm: Sim, hook: CrmHook) -> None:
    note = {
        "oa_instance_code": "INST-CREATE-1",
        "hs_timestamp": "2026-11-21T02:00:00.000Z",
        "hs_note_body": "x",
    }
    assert [o.status for o in hook.batch_create("notes", [note], "oa_instance_code")] == ["created"]
    assert [o.status for o in hook.batch_create("notes", [note], "oa_instance_code")] == ["updated"]
    assert crm.requests_to("POST /crm/v3/objects/notes/batch/create") == 0


def test_associations_read_write(hook: CrmHook, deal_ids: list[str]) -> None:
    wanted = deal_ids[:400] + [str(59_000_000_000 + n) for n in range(800)]  # 1,200 ids: two calls
    links = hook.read_associations("deals", "companies", wanted)
    assert list(links) == wanted
    assert sum(1 for v in links.values() if v) == 400
    assert all(not links[i] for i in wanted[400:])
    assert hook.api_calls["POST /crm/v4/associations/{from_type}/{to_type}/batch/read"] == 2
    lonely = next(i for i, v in links.items() if len(v) == 1)
    other_company = next(v[0] for v in links.values() if v and v[0] != links[lonely][0])
    hook.associate("deals", lonely, "companies", other_company)
    hook.associate("deals", lonely, "companies", other_company)  # idempotent
    after = hook.read_associations("deals", "companies", [lonely])[lonely]
    assert sorted(after) == sorted([links[lonely][0], other_company])
    outcomes = hook.associate_many(
        "companies", "deals", [(other_company, deal_ids[5]), (other_company, deal_ids[6])]
    )
    assert [o.status for o in outcomes] == ["created", "created"]
    back = hook.read_associations("companies", "deals", [other_company])[other_company]
    assert {deal_ids[5], deal_ids[6], lonely} <= set(back)
    refused = hook.associate_many("companies", "deals", [(other_company, "59999999999")])
    assert refused[0].status == "error"
    assert refused[0].category == "OBJECT_NOT_FOUND"


def test_owners_and_properties(hook: CrmHook) -> None:
    owners = hook.owners()
    assert len(owners) == 16
    assert len({o["id"] for o in owners}) == 16
    typed = hook.owner_records()
    assert [o.id for o in typed] == [str(o["id"]) for o in owners]
    assert all(
        t.family_name == (o.get("lastName") or "").strip() and t.email == (o.get("email") or "")
        for t, o in zip(typed, owners, strict=True)
    )
    assert any(t.family_name for t in typed)
    names = {p["name"] for p in hook.properties("deals")}
    assert {"oa_instance_code", "dealstage", "amount", "hs_lastmodifieddate"} <= names


def _ms(raw: str) -> int:
    value = _parse_ms(raw)
    assert value is not None
    return value

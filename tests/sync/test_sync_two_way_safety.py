"""Two-way safety: no echo between the directions, the system of record wins a conflict and it is recorded."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.hub import store
from bridge.sync import oa_to_crm


def _deal_hash(o2c: O2C, deal: str) -> str:  # noqa: F811
    with o2c.hub.connect() as conn:
        snap = store.get_snapshot(conn, "crm", "deal", deal)
    assert snap is not None
    return snap.content_hash


def test_the_crm_write_back_of_oa_fields_never_comes_back_to_the_oa(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.sync()
    before_hash = _deal_hash(o2c, deal)
    created_before = o2c.oa_created_by_api()
    o2c.act("approve", code)
    assert o2c.sync()["written_deal"] == 1
    extracted, loaded = o2c.c2o_sync()
    # The deal was modified (its hs_lastmodifieddate moved) and re-read ...
    assert extracted.counts["read_deal"] >= 1
    # ... but its content hash covers CRM-owned fields only: unchanged, nothing queued, nothing sent.
    assert extracted.counts.get("enqueued", 0) == 0
    assert _deal_hash(o2c, deal) == before_hash
    assert loaded.counts.get("written", 0) == 0
    assert o2c.oa_created_by_api() == created_before
    with o2c.hub.connect() as conn:
        snap = store.get_snapshot(conn, "crm", "deal", deal)
    assert snap is not None
    assert snap.payload["approval_status"] == "APPROVED", "the staged payload still shows the OA-owned value"
    # And the OA → CRM run after it finds the deal as it left it: no second write.
    assert o2c.sync().get("written", 0) == 0


def test_a_crm_edit_of_an_oa_owned_field_is_a_conflict_the_oa_wins(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.act("approve", code)
    o2c.sync()
    project_no = o2c.deal(deal)["oa_project_no"]
    o2c.c2o.edit("deals", deal, {"oa_project_no": "手改-001", "oa_approval_status": "REJECTED"})
    extracted, loaded = o2c.c2o_sync()
    assert extracted.counts.get("enqueued", 0) == 0, "an OA-owned field is no change for the CRM → OA direction"
    assert loaded.counts.get("written", 0) == 0
    counts = o2c.sync()
    assert counts["deals_flagged"] == 1, "found from the hub, without reading the OA"
    assert counts["conflicts"] == 1
    assert counts["conflict_fields"] == 2
    assert counts["written_deal"] == 1
    props = o2c.deal(deal)
    assert props["oa_project_no"] == project_no
    assert props["oa_approval_status"] == "APPROVED"
    conflicts = o2c.audit("conflict")
    assert len(conflicts) == 1
    assert conflicts[0]["fields"] == ["approval_status", "project_no"]
    assert conflicts[0]["outcome"] == "oa_wins"
    assert conflicts[0]["record_ids"] == {"deal_id": deal, "instance_code": code}
    assert "手改" not in str(conflicts[0]), "field names only, never values"
    summary = oa_to_crm.summarise(o2c.hub, o2c.ctx("summarise"), {
        "discover": o2c.last["discover"].as_dict(), "load": o2c.last["load"].as_dict()}, datetime.now(UTC))
    assert summary["counts"]["conflicts"] == 1
    with o2c.hub.connect() as conn:
        stored = store.recent_runs(conn, kind="oa_to_crm_sync", limit=1)[0]
    assert stored.counts["conflicts"] == 1
    assert stored.counts["written_deal"] == 1
    # Settled: both directions quiet.
    o2c.c2o_sync()
    assert o2c.sync().get("written", 0) == 0


def test_the_project_stage_follows_the_deal_stage_without_a_conflict(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.act("approve", code)
    o2c.sync()
    assert o2c.deal(deal)["oa_project_stage"] == "initiated"
    o2c.c2o.edit("deals", deal, {"dealstage": "closedwon"})
    o2c.c2o_sync()
    counts = o2c.sync()
    assert counts["written_deal"] == 1
    assert counts.get("conflicts", 0) == 0
    assert o2c.deal(deal)["oa_project_stage"] == "executing"


def test_the_bridge_own_notices_are_no_work_for_the_crm(o2c: O2C) -> None:  # noqa: F811
    _, deal, _ = o2c.linked_deal()
    o2c.sync()
    o2c.c2o.edit("deals", deal, {"amount": "150000.00"})
    o2c.c2o_sync()
    assert any(n["widgets"].get("deal_id") == deal for n in o2c.c2o.instances("contract_amount_notice"))
    before = o2c.crm_writes()
    counts = o2c.sync()
    assert counts.get("written", 0) == 0
    assert o2c.crm_writes() == before

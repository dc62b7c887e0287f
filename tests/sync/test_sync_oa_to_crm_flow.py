"""OA → CRM end to end against the simulators: statuses on the deal, activities on the customer, reruns."""

from __future__ import annotations

from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.hub import store
from bridge.staging import snapshot_row
from bridge.sync import oa_to_crm


def test_project_status_follows_the_oa_on_the_deal(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    assert o2c.deal(deal)["oa_approval_status"] == "PENDING"  # the CRM → OA write-back
    first = o2c.sync()
    # The bridge's own 立项申请 is staged, but the deal already shows what the OA says: no write.
    assert first["read"] >= 1
    assert first.get("written_deal", 0) == 0
    assert first.get("deals_unchanged", 0) == 1

    o2c.act("approve", code)
    second = o2c.sync()
    assert second["status_changed"] == 1
    assert second["written_deal"] == 1
    props = o2c.deal(deal)
    assert props["oa_approval_status"] == "APPROVED"
    assert props["oa_decision_time"]
    assert props["oa_instance_code"] == code
    assert props["oa_project_no"] == o2c.instance(code)["serial_number"]
    assert props["oa_project_stage"] == "initiated"  # contractsent → 立项 (value map project_stage)
    updates = [a for a in o2c.audit("update") if a["system"] == "crm" and a["record_ids"].get("instance_code") == code
               and a["outcome"] == "ok" and a["task_id"] == "load"]
    assert updates, "the write is audited"
    assert "approval_status" in updates[-1]["fields"]

    o2c.act("delete", code)
    third = o2c.sync()
    assert third["written_deal"] == 1
    assert o2c.deal(deal)["oa_approval_status"] == "DELETED"


def test_reject_withdraw_resubmit_as_feishu_models_them(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.sync()
    seen = []
    for action in ("reject", "resubmit", "withdraw", "resubmit", "approve"):
        if action == "resubmit":
            o2c.resubmit(code)
        else:
            o2c.act(action, code)
        o2c.sync()
        props = o2c.deal(deal)
        seen.append(props["oa_approval_status"])
        if props["oa_approval_status"] == "PENDING":
            assert not props.get("oa_decision_time"), "a resubmitted instance has no decision yet"
        else:
            assert props.get("oa_decision_time")
    assert seen == ["REJECTED", "PENDING", "CANCELED", "PENDING", "APPROVED"]


def test_expenses_and_trips_become_notes_on_company_and_deal(o2c: O2C) -> None:  # noqa: F811
    company, deal, code = o2c.linked_deal()
    o2c.act("approve", code)
    o2c.sync()
    project_no = o2c.deal(deal)["oa_project_no"]
    expense = o2c.expense(company, amount=2345.6, project_no=project_no)
    trip = o2c.trip(company)
    o2c.sync()
    assert o2c.activity("notes", expense) is None, "a pending expense is not on the customer yet"
    o2c.act("approve", expense)
    o2c.act("approve", trip)
    counts = o2c.sync()
    assert counts["written_notes"] == 2
    note = o2c.activity("notes", expense)
    assert note is not None
    props = note["properties"]
    assert props["oa_activity_type"] == "expense_claim"
    assert float(props["oa_amount"]) == 2345.6
    assert props["oa_applicant"] == "u00011038"
    assert "2345.60" in props["hs_note_body"]
    assert o2c.associations("notes", note["id"], "companies") == [company]
    assert o2c.associations("notes", note["id"], "deals") == [deal]
    trip_note = o2c.activity("notes", trip)
    assert trip_note is not None
    assert trip_note["properties"]["oa_activity_type"] == "travel_request"
    assert o2c.associations("notes", trip_note["id"], "companies") == [company]
    assert o2c.associations("notes", trip_note["id"], "deals") == []


def test_visit_plans_become_meetings_and_a_later_deletion_voids_the_note(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    visit = o2c.visit(company)
    expense = o2c.expense(company, amount=999)
    o2c.act("approve", expense)
    o2c.sync()
    meeting = o2c.activity("meetings", visit)
    assert meeting is not None, "a pending visit plan is already a meeting (when_status PENDING, APPROVED)"
    assert meeting["properties"]["hs_meeting_title"] == "客户拜访"
    assert o2c.associations("meetings", meeting["id"], "companies") == [company]

    o2c.act("withdraw", visit)
    o2c.act("delete", expense)
    counts = o2c.sync()
    assert counts["voided_meetings"] == 1
    assert counts["voided_notes"] == 1
    note = o2c.activity("notes", expense)
    assert note is not None
    assert not note["properties"].get("oa_amount"), "no amount that no longer stands stays on the customer"
    assert note["properties"]["hs_note_body"].startswith("【OA 审批状态：已删除")
    meeting = o2c.activity("meetings", visit)
    assert meeting is not None
    assert meeting["properties"]["hs_meeting_body"].startswith("【OA 审批状态：已撤回")

    o2c.resubmit(visit)
    o2c.sync()
    meeting = o2c.activity("meetings", visit)
    assert meeting is not None
    assert meeting["properties"]["hs_meeting_body"].startswith("拜访目的")


def test_a_rerun_writes_nothing(o2c: O2C) -> None:  # noqa: F811
    company, _, code = o2c.linked_deal()
    o2c.act("approve", code)
    expense = o2c.expense(company)
    o2c.act("approve", expense)
    o2c.visit(company)
    o2c.sync()
    before = o2c.crm_writes()
    for _ in range(3):
        counts = o2c.sync()
        assert counts.get("written", 0) == 0
        assert counts.get("read", 0) == 0, "nothing changed: no instance is read again"
        assert counts.get("enqueued", 0) == 0
        assert counts["crm_calls"] == 0
    assert o2c.crm_writes() == before
    assert o2c.pending() == []


def test_several_steps_between_two_runs_are_seen(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.act("reject", code)
    o2c.sync()
    first_decision = o2c.deal(deal)["oa_decision_time"]
    assert o2c.deal(deal)["oa_approval_status"] == "REJECTED"
    # Resubmitted and rejected again before the next run: same status, a new decision time.
    o2c.resubmit(code)
    o2c.act("reject", code)
    counts = o2c.sync()
    assert counts["status_changed"] == 1
    assert o2c.deal(deal)["oa_decision_time"] != first_decision
    # Resubmitted and approved before the next run: REJECTED → APPROVED on the deal.
    o2c.resubmit(code)
    o2c.act("approve", code)
    o2c.sync()
    assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"


def test_a_bounded_read_budget_loses_nothing(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    codes = [o2c.expense(company, amount=10 + n) for n in range(5)]
    for code in codes:
        o2c.act("approve", code)
    small = oa_to_crm.with_overrides(o2c.cfg, max_instance_reads_per_run=2)
    reads = []
    for _ in range(3):
        counts = o2c.sync(cfg=small)
        reads.append(counts.get("read", 0))
    assert reads == [2, 2, 1], "two reads per run at most, the rest in later runs"
    assert all(o2c.activity("notes", code) is not None for code in codes)
    assert o2c.sync(cfg=small).get("read", 0) == 0


def test_history_the_migration_staged_reaches_the_crm_only_through_a_backfill(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    old = o2c.expense(company, amount=4321)
    o2c.act("approve", old)
    # The history migration stages it (snapshot, system oa) before this direction's first run.
    d = o2c.c2o.d
    row = snapshot_row(d, "expense_claim", d.from_oa("expense_claim", o2c.c2o.oa.get_instance(old)))
    assert row is not None
    with o2c.hub.begin() as conn:
        store.upsert_snapshots(conn, "oa", "expense_claim", [row])
    counts = o2c.sync()
    assert counts.get("written", 0) == 0, "staged history is not re-sent by the first run"
    assert o2c.activity("notes", old) is None
    counts = o2c.sync(backfill_days=1)
    assert counts["backfill_enqueued"] == 1
    assert counts["written_notes"] == 1
    note = o2c.activity("notes", old)
    assert note is not None
    assert float(note["properties"]["oa_amount"]) == 4321
    before = o2c.crm_writes()
    counts = o2c.sync(backfill_days=1)
    assert counts.get("written", 0) == 0, "a second backfill writes nothing again"
    assert o2c.crm_writes() == before

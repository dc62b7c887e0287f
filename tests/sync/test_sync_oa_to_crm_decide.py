"""The pure rules of the OA → CRM sync: status sweeps, deal plans and conflicts, activities, settings."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.dictionary
from bridge import permissions
from bridge.sync.common import SyncSettingsError
from bridge.sync.oa_to_crm import OaToCrmSettings
from bridge.sync.oa_to_crm import decide as rules

D = bridge.dictionary.load()
P = permissions.load(dictionary=D)
TRANSITIONS = {k: list(v) for k, v in (D.value_maps["approval_status"].transitions or {}).items()}
EXPENSE = {
    "instance_code": "I-1",
    "serial_number": "202611260007",
    "approval_status": "APPROVED",
    "applicant_id": "u00011038",
    "created_at": "2026-11-20T01:00:00.000+00:00",
    "reason": "拜访客户",
    "expense_type": "transport",
    "amount": "1280.50",
    "expense_date": "2026-11-20",
    "customer_id": "30000000001",
    "project_no": None,
}


# ---------------------------------------------------------------- spans


@given(st.lists(st.integers(min_value=0, max_value=400 * 86_400_000), max_size=60))
def test_spans_cover_every_instance_with_few_legal_queries(times: list[int]) -> None:
    until = 401 * 86_400_000
    spans = rules.spans(times, until)
    for t in times:
        assert any(lo <= t <= hi for lo, hi in spans)
    for lo, hi in spans:
        assert 0 <= hi - lo <= rules.SPAN_MS, "Feishu refuses a query span over 30 days"
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans)), "disjoint, in order"
    # Greedy from the earliest uncovered time is optimal: no two spans could be merged into one.
    assert all(b[0] - a[0] > rules.SPAN_MS for a, b in itertools.pairwise(spans))


# ---------------------------------------------------------------- status sweep


def _walk(
    status: str, steps: int, rnd: random.Random, clock: list[int], decided: int | None
) -> tuple[str, int | None]:
    for _ in range(steps):
        options = TRANSITIONS.get(status, [])
        if not options:
            break
        new = rnd.choice(options)
        clock[0] += 1
        if new == rules.PENDING:
            decided = None
        elif not (new == rules.DELETED and decided):
            decided = clock[0]
        status = new
    return status, decided


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["PENDING", "APPROVED", "REJECTED", "CANCELED", "REVERTED"]),
            st.integers(min_value=0, max_value=4),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=0, max_value=2**32),
)
def test_the_status_queries_find_every_change_the_hub_can_tell(
    held: list[tuple[str, int]], seed: int
) -> None:
    """Whatever people did between two runs (any path through Feishu's transitions), the instances whose
    status or decision time now differs from the hub are exactly the ones the sweep reads."""
    rnd = random.Random(seed)
    clock = [1000]
    hub: dict[str, rules.HubInstance] = {}
    oa: dict[str, tuple[str, int | None]] = {}
    for n, (status, steps) in enumerate(held):
        code = f"I-{n}"
        decided = None if status == rules.PENDING else 500 + n
        hub[code] = rules.HubInstance(status, created_ms=n, decided_ms=decided)
        oa[code] = _walk(status, steps, rnd, clock, decided)
    results = {s: {c: d for c, (now, d) in oa.items() if now == s} for s in rules.sweep_statuses(hub)}
    found = rules.sweep_changes(hub, results, lag_cutoff_ms=10**12)
    expected = {
        c
        for c, row in hub.items()
        if oa[c][0] != row.status or (row.status in ("REJECTED", "CANCELED") and oa[c][1] != row.decided_ms)
    }
    assert set(found.changed) == expected
    assert not found.unknown


def test_a_young_pending_instance_is_not_judged_absent_while_the_index_lags() -> None:
    hub = {
        "old": rules.HubInstance("PENDING", created_ms=100),
        "young": rules.HubInstance("PENDING", created_ms=900),
    }
    found = rules.sweep_changes(hub, {"PENDING": {}}, lag_cutoff_ms=500)
    assert found.changed == {"old"}


def test_a_pending_instance_the_hub_never_saw_is_read() -> None:
    found = rules.sweep_changes(
        {"a": rules.HubInstance("PENDING", 1)}, {"PENDING": {"a": None, "b": None}}, 10
    )
    assert found.unknown == {"b"}
    assert not found.changed


def test_approved_instances_are_judged_by_absence_revoked_ones_by_the_deleted_list() -> None:
    # Feishu's instances/query has no filter for revoked (REVERTED) instances: an approved instance that was
    # revoked or deleted is missing from the APPROVED list; a revoked one can only be deleted.
    assert rules.sweep_statuses({"a": rules.HubInstance("APPROVED", 1)}) == ["APPROVED"]
    assert rules.sweep_statuses({"a": rules.HubInstance("REVERTED", 1)}) == ["DELETED"]
    assert rules.sweep_statuses({}) == []
    held = {
        "a": rules.HubInstance("APPROVED", 1, 5),
        "b": rules.HubInstance("APPROVED", 2, 6),
        "c": rules.HubInstance("REVERTED", 3, 7),
        "d": rules.HubInstance("REVERTED", 4, 8),
    }
    found = rules.sweep_changes(held, {"APPROVED": {"a": 5}, "DELETED": {"d": 8}}, lag_cutoff_ms=10**12)
    assert found.changed == {"b", "d"}, "b revoked or deleted, d deleted after its revoke"
    assert rules.sweep_statuses(
        {"a": rules.HubInstance("REJECTED", 1), "b": rules.HubInstance("PENDING", 2)}
    ) == ["PENDING", "REJECTED"]


# ---------------------------------------------------------------- deals


def test_the_primary_project_is_the_newest_live_one() -> None:
    old_live = {
        "instance_code": "A",
        "approval_status": "APPROVED",
        "created_at": "2026-01-01T00:00:00.000+00:00",
    }
    new_dead = {
        "instance_code": "B",
        "approval_status": "REJECTED",
        "created_at": "2026-06-01T00:00:00.000+00:00",
    }
    assert rules.primary_project([new_dead, old_live]) == old_live
    assert rules.primary_project([new_dead]) == new_dead
    assert rules.primary_project([]) is None


DECIDED_AT = "2026-11-26T08:00:00.000+00:00"


def test_desired_deal_fields_come_from_the_oa_and_the_stage_map() -> None:
    project = dict(
        instance_code="I-9", project_no="202611260001", approval_status="APPROVED", decided_at=DECIDED_AT
    )
    desired = rules.desired_deal(D, project, "won")
    assert desired == {
        "oa_instance_code": "I-9",
        "project_no": "202611260001",
        "approval_status": "APPROVED",
        "approval_decided_at": DECIDED_AT,
        "project_stage": "executing",
    }
    assert set(desired) == set(rules.oa_owned_deal_fields(D))
    assert "project_stage" not in rules.desired_deal(D, project, None, stage_known=False)


def test_a_crm_edit_is_a_conflict_only_when_it_is_neither_ours_nor_the_oa() -> None:
    desired = dict(
        oa_instance_code="I-9", project_no="P-1", approval_status="APPROVED", approval_decided_at=DECIDED_AT
    )
    last = {**desired, "approval_status": "PENDING", "approval_decided_at": None}
    # The OA moved on (approved) and the CRM still shows our last write: an update, no conflict.
    plan = rules.plan_deal(D, "9", desired, {**last, "approval_decided_at": None}, last)
    assert plan.write == {
        "approval_status": "APPROVED",
        "approval_decided_at": "2026-11-26T08:00:00.000+00:00",
    }
    assert plan.conflicts == ()
    # Someone typed another project number in the CRM: a conflict, the OA value is written.
    plan = rules.plan_deal(D, "9", desired, {**desired, "project_no": "手改"}, desired)
    assert plan.write == {"project_no": "P-1"}
    assert plan.conflicts == ("project_no",)
    # The same instant spelled by HubSpot is no difference.
    plan = rules.plan_deal(
        D, "9", desired, {**desired, "approval_decided_at": "2026-11-26T08:00:00.000Z"}, desired
    )
    assert not plan.needed
    # Nothing known about the deal: write everything, no conflict claimed.
    plan = rules.plan_deal(D, "9", desired, None, None)
    assert plan.write == desired
    assert plan.conflicts == ()


# ---------------------------------------------------------------- activities


def _plan(record: Mapping[str, object], **kw: object) -> rules.ActivityPlan:
    args: dict[str, object] = {
        "problems": [],
        "company_id": "30000000001",
        "company_known": True,
        "deal_id": None,
        "link_state": None,
        "applicant": rules.applicant_label("u00011038", "彭明"),
    }
    args.update(kw)
    return rules.plan_activity(D, P, "expense_claim", record, rules.ActivityFacts(**args))  # type: ignore[arg-type]


def test_an_approved_expense_is_upserted_once() -> None:
    plan = _plan(EXPENSE, deal_id="90000000001")
    assert plan.action == "upsert"
    assert plan.crm_object == "notes"
    assert plan.properties["oa_instance_code"] == "I-1"
    assert plan.properties["oa_amount"] == "1280.50"
    assert plan.properties["oa_activity_type"] == "expense_claim"
    assert (plan.company_id, plan.deal_id) == ("30000000001", "90000000001")
    again = _plan(EXPENSE, deal_id="90000000001", link_state={"crm_id": "1", "hash": plan.written_hash})
    assert again.action == "nothing"


def test_a_deleted_expense_that_reached_the_crm_is_voided_without_its_amount() -> None:
    written = _plan(EXPENSE)
    state = {"crm_id": "1", "hash": written.written_hash}
    plan = _plan({**EXPENSE, "approval_status": "DELETED"}, link_state=state)
    assert plan.action == "void"
    assert plan.properties["oa_amount"] == ""
    assert plan.properties["hs_note_body"].startswith("【OA 审批状态：已删除，此记录已作废】费用报销")
    assert plan.properties["oa_instance_code"] == "I-1"
    assert (
        _plan(
            {**EXPENSE, "approval_status": "DELETED"}, link_state={"crm_id": "1", "hash": plan.written_hash}
        ).action
        == "nothing"
    )
    assert _plan({**EXPENSE, "approval_status": "REJECTED"}).action == "nothing", (
        "never written, nothing to void"
    )


def test_a_revoked_expense_is_marked_once_by_default() -> None:
    written = _plan(EXPENSE)
    state = {"crm_id": "1", "hash": written.written_hash, "phase": "written", "crm_object": "notes"}
    plan = _plan({**EXPENSE, "approval_status": "REVERTED"}, link_state=state)
    assert plan.action == "void"
    assert plan.reason == "status_reverted"
    assert plan.properties["hs_note_body"].startswith("【OA 审批状态：已撤销，此记录已作废】费用报销")
    assert plan.properties["oa_amount"] == ""
    marked = {**state, "phase": "voided", "hash": plan.written_hash}
    assert _plan({**EXPENSE, "approval_status": "REVERTED"}, link_state=marked).action == "nothing"
    deleted = _plan({**EXPENSE, "approval_status": "DELETED"}, link_state=marked)
    assert deleted.action == "void", "deleted after its revoke: the marker says so"
    assert deleted.properties["hs_note_body"].startswith("【OA 审批状态：已删除，此记录已作废】费用报销")


def _removing(record: Mapping[str, object], link_state: Mapping[str, object]) -> rules.ActivityPlan:
    facts = rules.ActivityFacts(
        problems=[],
        company_id="30000000001",
        company_known=True,
        deal_id=None,
        link_state=link_state,
        applicant=rules.applicant_label("u00011038"),
    )
    return rules.plan_activity(D, P, "expense_claim", record, facts, "remove")


@pytest.mark.parametrize("status", ["REVERTED", "DELETED"])
def test_with_remove_a_revoked_or_deleted_activity_is_archived_once(status: str) -> None:
    state = {"crm_id": "1", "hash": _plan(EXPENSE).written_hash, "phase": "written"}
    plan = _removing({**EXPENSE, "approval_status": status}, state)
    assert (plan.action, plan.crm_object, plan.reason) == ("archive", "notes", f"status_{status.lower()}")
    tombstone = {**state, "phase": "archived", "status": status}
    assert _removing({**EXPENSE, "approval_status": status}, tombstone).action == "nothing"
    assert _removing({**EXPENSE, "approval_status": "DELETED"}, tombstone).reason == "already_archived"
    # The default (mark) never re-creates an archived activity by upserting its marked copy.
    assert _plan({**EXPENSE, "approval_status": status}, link_state=tombstone).action == "nothing"


def test_with_remove_a_rejected_or_withdrawn_activity_is_still_only_marked() -> None:
    state = {"crm_id": "1", "hash": _plan(EXPENSE).written_hash, "phase": "written"}
    assert _removing({**EXPENSE, "approval_status": "CANCELED"}, state).action == "void", "it can come back"


@pytest.mark.parametrize("status", ["PENDING", "APPROVED"])
def test_a_form_without_customer_is_quarantined_naming_the_applicant(status: str) -> None:
    plan = _plan(
        {**EXPENSE, "approval_status": status, "customer_id": None}, company_id=None, company_known=False
    )
    assert plan.action == "quarantine"
    assert plan.problem is not None
    assert plan.problem.code == "missing_customer_link"
    assert plan.problem.field == "customer_id"
    assert "申请人彭明（OA 用户 u00011038）提交的费用报销" in plan.problem.message
    assert "202611260007" in plan.problem.message


def test_an_unknown_customer_is_quarantined_and_says_so() -> None:
    plan = _plan(EXPENSE, company_known=False)
    assert plan.action == "quarantine"
    assert plan.problem is not None
    assert "30000000001 在 CRM 中不存在" in plan.problem.message


def test_blocking_problems_follow_the_other_direction_except_for_deal_copies() -> None:
    project = D.from_oa(
        "project_initiation",
        {
            "instance_code": "I-7",
            "status": "APPROVED",
            "user_id": "u1",
            "start_time": "1795694933135",
            "end_time": "1795694933135",
            "serial_number": "202611260001",
            "form": "[]",
        },
    )
    assert any(p.code == "missing_required" for p in project.problems), "the form has no 客户名称 etc."
    assert rules.blocking(D, "project_initiation", project.problems) == [], (
        "the status still reaches the deal"
    )
    expense = D.from_oa(
        "expense_claim",
        {
            "instance_code": "I-8",
            "status": "APPROVED",
            "user_id": "u1",
            "start_time": "1795694933135",
            "form": "[]",
        },
    )
    codes = {(p.code, p.field) for p in rules.blocking(D, "expense_claim", expense.problems)}
    assert ("missing_required", "amount") in codes
    assert ("missing_required", "customer_id") not in codes, "judged as missing_customer_link instead"


# ---------------------------------------------------------------- settings


def test_settings_refuse_what_cannot_work() -> None:
    base = {
        "oa": {
            "approval_codes": {
                "project_initiation": "A",
                "expense_claim": "B",
                "travel_request": "C",
                "visit_plan": "D",
            }
        }
    }
    cfg = OaToCrmSettings.from_settings({**base, "oa_to_crm": {"max_instance_reads_per_run": 10}})
    assert cfg.max_instance_reads_per_run == 10
    cfg.check(D)
    with pytest.raises(SyncSettingsError, match="status_query_page_size"):
        OaToCrmSettings.from_settings({**base, "oa_to_crm": {"status_query_page_size": 500}})
    assert cfg.revoked_activities == "mark"
    remove = OaToCrmSettings.from_settings({**base, "oa_to_crm": {"revoked_activities": "remove"}})
    assert remove.revoked_activities == "remove"
    with pytest.raises(SyncSettingsError, match="revoked_activities"):
        OaToCrmSettings.from_settings({**base, "oa_to_crm": {"revoked_activities": "delete"}})
    with pytest.raises(SyncSettingsError, match="max_instance_reads_per_run"):
        OaToCrmSettings.from_settings({**base, "oa_to_crm": {"max_instance_reads_per_run": "many"}})
    with pytest.raises(SyncSettingsError, match="contract_amount_notice"):
        OaToCrmSettings.from_settings({**base, "oa_to_crm": {"forms": ["contract_amount_notice"]}}).check(D)
    with pytest.raises(SyncSettingsError, match=r"oa\.approval_codes\.expense_claim"):
        OaToCrmSettings.from_settings(
            {"oa": {"approval_codes": {"project_initiation": "A"}}, "oa_to_crm": {}}
        ).check(D)


@given(
    st.lists(st.integers(min_value=0, max_value=200 * 86_400_000), max_size=12),
    st.integers(min_value=0, max_value=200 * 86_400_000),
    st.integers(min_value=1, max_value=3),
)
def test_the_rotation_visits_all_time_the_hot_spans_leave(
    hot_times: list[int], oldest: int, count: int
) -> None:
    now = 201 * 86_400_000
    hot = rules.spans(hot_times, now)
    covered: list[tuple[int, int]] = []
    cursor: int | None = None
    for _ in range(400):
        spans, cursor = rules.cold_spans(cursor, oldest, hot, now, count)
        assert len(spans) <= count
        for lo, hi in spans:
            assert hi - lo <= rules.SPAN_MS
            assert not any(a <= lo <= b for a, b in hot), "hot time is swept every run already"
        covered += spans
        if cursor == oldest and covered:
            break
    for t in range(oldest, now, 86_400_000 // 3):
        assert any(lo <= t <= hi for lo, hi in [*hot, *covered]), f"{t} never swept"


def test_every_reader_of_a_live_project_initiation_closes_the_same_statuses() -> None:
    """The deal write-back, the history migration's write-back and the data-health checks agree on which 立项申请
    is no longer live (withdrawn, rejected, deleted, revoked), so they pick the same primary instance."""
    from bridge.migration import writeback
    from bridge.quality import checks

    assert rules.CLOSED == writeback.CLOSED == checks.CLOSED_STATUSES
    assert "REVERTED" in rules.CLOSED
    assert set(D.value_maps["approval_status"].transitions or {}) == rules.CLOSED | {"PENDING", "APPROVED"}

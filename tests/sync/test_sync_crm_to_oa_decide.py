"""The pure parts of CRM → OA: decisions, uuids, settings, contact choice (no simulators)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.dictionary
from bridge import clock
from bridge.dictionary import Problem
from bridge.sync import common, crm_to_oa, frame
from bridge.sync.crm_to_oa import decide as rules

D = bridge.dictionary.load()
STAGES = frozenset({"contract", "won"})
ROOT = Path(__file__).resolve().parents[2]


def deal(**overrides: Any) -> dict[str, Any]:
    base = {"crm_id": "50000000001", "deal_name": "星辰科技数据平台项目", "stage": "contract",
            "contract_amount": "100000.00", "close_date": "2026-12-31", "owner_id": "70000001",
            "company_id": "30000000001", "modified_at": "2026-11-26T10:00:00.000+00:00"}
    return {**base, **overrides}


COMPANY = {"crm_id": "30000000001", "name": "北京星辰科技有限公司", "uscc": "91110000MA01ABCD2X"}
OWNER = rules.Owner("70000001", "peng.01@example.com", "u0001")


def decide(record: dict[str, Any], project: rules.ProjectLink | None = None, *,
           company: dict[str, Any] | None = COMPANY, owner: rules.Owner | None = OWNER,
           intent: rules.NoticeIntent | None = None) -> rules.Decision:
    facts = rules.DealFacts(company=company, project=project, notice_intent=intent, owner=owner)
    return rules.decide_deal(D, record, facts, initiation_stages=STAGES, today="2026-11-26")


def linked(amount: str | None = "100000.00", notices: int = 0) -> rules.ProjectLink:
    return rules.ProjectLink(uuid="u", instance_code="I-1", amount_sent=amount, notices=notices, project_no="P1")


def test_a_deal_in_an_initiation_stage_without_a_link_is_created_by_its_owner() -> None:
    decision = decide(deal())
    assert decision.action == "create"
    assert decision.applicant == "u0001"
    assert decision.uuid == common.idempotency_uuid("50000000001", "project_initiation", D.version)


@pytest.mark.parametrize("stage", ["lead", "qualified", "proposal", "negotiation", "delivered", "lost", None])
def test_other_stages_create_nothing(stage: str | None) -> None:
    assert decide(deal(stage=stage)).action == "nothing"


def test_an_unconfirmed_create_reuses_its_saved_uuid() -> None:
    intent = rules.ProjectLink(uuid="saved-uuid", instance_code=None)
    assert decide(deal(), intent).uuid == "saved-uuid"
    assert decide(deal(stage="negotiation"), intent).action == "probe_intent"
    abandoned = rules.ProjectLink(uuid="saved-uuid", instance_code=None, abandoned=True)
    assert decide(deal(stage="negotiation"), abandoned).action == "nothing"


def test_owner_without_oa_account_is_quarantined_with_the_email_and_what_to_do() -> None:
    decision = decide(deal(owner_id="70000999"), owner=rules.Owner("70000999", "former.sales@example.com", None))
    assert decision.action == "quarantine"
    assert decision.problem is not None
    assert decision.problem.code == "owner_not_in_oa"
    assert "former.sales@example.com" in decision.problem.message
    assert "bridge quarantine release" in decision.problem.message


def test_missing_company_and_missing_customer_name_are_quarantined() -> None:
    gone = decide(deal(), company=None)
    assert gone.problem is not None
    assert gone.problem.code == "missing_customer_link"
    nameless = decide(deal(), company={**COMPANY, "name": None})
    assert nameless.problem is not None
    assert (nameless.problem.code, nameless.problem.field) == ("missing_required", "company.name")


def test_linked_deal_amount_change_is_a_notice_with_old_and_new_amounts() -> None:
    decision = decide(deal(contract_amount="120000.00"), linked())
    assert decision.action == "notice"
    assert decision.notice == {"seq": 1, "old_amount": "100000.00", "new_amount": "120000.00",
                               "changed_at": "2026-11-26"}
    assert decide(deal(contract_amount="100000.0"), linked()).action == "nothing", "compared as amounts"
    assert decide(deal(), linked(amount=None)).action == "baseline"
    deleted = decide(deal(contract_amount="120000.00", approval_status="DELETED"), linked())
    assert (deleted.action, deleted.reason) == ("nothing", "project_deleted")


def test_an_unconfirmed_notice_is_finished_first_as_it_was() -> None:
    intent = rules.NoticeIntent(uuid="n-uuid", seq=1, old_amount="1.00", new_amount="2.00", changed_at="2026-11-25")
    decision = decide(deal(contract_amount="3.00"), linked(amount="1.00"), intent=intent)
    assert (decision.action, decision.uuid, decision.reason) == ("notice", "n-uuid", "resume_notice")
    assert decision.notice["new_amount"] == "2.00"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["100000.00", "120000.00", "90000.50", "100000.0"]), min_size=1, max_size=12))
def test_notices_follow_every_amount_change_and_never_repeat_a_uuid(amounts: list[str]) -> None:
    """The sync's state machine for a linked deal: one notice per change of the amount, uuids unique."""
    project = linked()
    uuids: list[str] = []
    sent = [Decimal("100000.00")]
    for value in amounts:
        decision = decide(deal(contract_amount=value), project)
        if decision.action == "notice":
            assert decision.uuid is not None
            uuids.append(decision.uuid)
            assert Decimal(decision.notice["old_amount"]) == sent[-1]
            sent.append(Decimal(decision.notice["new_amount"]))
            project = rules.ProjectLink(uuid="u", instance_code="I-1", amount_sent=decision.notice["new_amount"],
                                        notices=decision.notice["seq"])
        else:
            assert decision.action == "nothing"
            assert Decimal(value) == sent[-1]
        # Deciding again on the same state (a rerun) gives the same answer: a notice keeps its uuid.
        again = decide(deal(contract_amount=value), project)
        assert again.action == "nothing"
    changes = sum(1 for a, b in zip([Decimal("100000.00")] + [Decimal(a) for a in amounts],
                                    [Decimal(a) for a in amounts], strict=False) if a != b)
    assert len(uuids) == changes
    assert len(set(uuids)) == len(uuids)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30), st.sampled_from(["project_initiation", "contract_amount_notice"]),
       st.integers(min_value=1, max_value=10_000))
def test_idempotency_uuids_are_deterministic_and_fit_feishu(record_id: str, purpose: str, seq: int) -> None:
    first = common.idempotency_uuid(record_id, purpose, D.version, seq)
    assert first == common.idempotency_uuid(record_id, purpose, D.version, seq)
    assert 1 <= len(first) <= 64
    assert first != common.idempotency_uuid(record_id, purpose, D.version + "x", seq)
    assert first != common.idempotency_uuid(record_id, purpose, D.version, seq + 1)


def test_primary_contact_is_the_oldest_with_a_mobile() -> None:
    contacts = [{"crm_id": "40000000010", "mobile": None}, {"crm_id": "40000000012", "mobile": "13800000000"},
                {"crm_id": "40000000011", "mobile": "13900000000", "_problems": ["invalid_format"]}]
    chosen = rules.primary_contact(contacts)
    assert chosen is not None
    assert chosen["crm_id"] == "40000000011"
    assert "_problems" not in chosen
    assert rules.primary_contact([]) is None


def test_blocking_problems() -> None:
    def problem(code: str, field: str) -> Problem:
        return Problem(code, "deal", field, "…")

    needed = rules.needed_deal_fields(D)
    assert {"contract_amount", "deal_name", "crm_id"} <= needed
    found = frame.blocking_problems([problem("invalid_format", "close_date"), problem("invalid_format",
                                                                                        "contract_amount"),
                                      problem("unmapped_value", "stage")], needed)
    assert [(p.code, p.field) for p in found] == [("invalid_format", "contract_amount"), ("unmapped_value", "stage")]


def test_writeback_record_derives_the_project_stage() -> None:
    record = rules.writeback_record(D, deal(stage="won"), "I-1", "202611260001", "PENDING")
    assert record == {"crm_id": "50000000001", "oa_instance_code": "I-1", "project_no": "202611260001",
                      "approval_status": "PENDING", "project_stage": "executing"}
    assert D.to_crm_properties("deal", {k: v for k, v in record.items() if k != "crm_id"}) == {
        "oa_instance_code": "I-1", "oa_project_no": "202611260001", "oa_approval_status": "PENDING",
        "oa_project_stage": "executing"}


def test_settings_are_read_and_checked() -> None:
    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    assert cfg.entities == ("company", "contact", "deal")
    assert cfg.initiation_stages == {"contract", "won"}
    assert cfg.debounce.quiet_seconds == 60
    assert cfg.debounce.max_delay_seconds == 150
    assert cfg.code("project_initiation").endswith("1001")
    overridden = crm_to_oa.CrmToOaSettings.from_settings({"debounce": {"quiet_seconds": 0},
                                                          "crm_to_oa": {"initial_backfill_hours": None}})
    assert overridden.debounce.quiet_seconds == 0
    assert overridden.initial_backfill_seconds is None
    with pytest.raises(common.SyncSettingsError, match="initiation_stages"):
        crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {"initiation_stages": ["signed"]}}).check(D)
    with pytest.raises(common.SyncSettingsError, match="quiet_seconds"):
        crm_to_oa.CrmToOaSettings.from_settings({"debounce": {"quiet_seconds": "soon"}})
    with pytest.raises(common.SyncSettingsError, match=r"approval_codes\.contract_amount_notice"):
        crm_to_oa.with_overrides(cfg, approval_codes={}).code("contract_amount_notice")


def test_summary_line_and_tally_round_trip() -> None:
    tally = frame.Tally()
    tally.add("read", 3)
    tally.add("written", 0)
    tally.api_calls = {"crm": {"POST /search": 2}}
    again = frame.Tally.from_dict(tally.as_dict())
    assert again.counts == {"read": 3}
    assert frame.summary_line("k", again.counts, again.api_calls) == "k: read=3 crm_calls=2"
    assert frame.total_calls({"crm": {"POST /oauth/v3/token": 1, "POST /x": 2}}) == 2
    assert clock.to_ms(clock.from_ms(1_764_152_701_123)) == 1_764_152_701_123
    assert clock.from_ms(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_the_dag_publishes_the_engine_assets() -> None:
    tree = ast.parse((ROOT / "dags" / "crm_to_oa_sync.py").read_text(encoding="utf-8"))
    uris = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Asset" and isinstance(node.args[0], ast.Constant)}
    inlets = {u for u in uris if u.startswith("bridge://events/")}  # the schedule's event inlet (docs/events.md)
    assert inlets == {"bridge://events/crm"}
    assert uris - inlets == set(crm_to_oa.ASSETS.values())


# ---------------------------------------------------------------- a deal archived in the CRM

LINKED = rules.ProjectLink(uuid="u-1", instance_code="INST-1", amount_sent="100000.00")


def archived(project: rules.ProjectLink | None, status: str | None, state: dict[str, Any] | None = None
             ) -> rules.ArchiveDecision:
    return rules.decide_archived("50000000001", project, state, status, dictionary_version=D.version,
                                 archived_on="2026-12-07")


def test_archived_deal_with_a_pending_project_initiation_is_withdrawn_with_a_chinese_reason() -> None:
    decision = archived(LINKED, "PENDING", {"phase": "found"})
    assert (decision.action, decision.reason) == ("withdraw", "archived_pending")
    assert decision.comment is not None
    assert "50000000001" in decision.comment
    assert "2026-12-07" in decision.comment
    assert "自动撤回" in decision.comment


def test_archived_deal_with_an_approved_project_initiation_tells_finance_with_a_stable_uuid() -> None:
    decision = archived(LINKED, "APPROVED", {"phase": "found"})
    assert (decision.action, decision.reason) == ("void_notice", "archived_approved")
    assert decision.uuid == common.idempotency_uuid("50000000001", rules.VOID_PURPOSE, D.version)
    assert decision.uuid != common.idempotency_uuid("50000000001", rules.PROJECT_FORM, D.version)
    assert decision.comment is not None
    assert "财务" in decision.comment


def test_a_merged_deal_is_said_merged_into_its_survivor_not_deleted() -> None:
    survivor = rules.Survivor("50000000009", "华东项目")
    pending = rules.decide_archived("50000000001", LINKED, {"phase": "found"}, "PENDING",
                                    dictionary_version=D.version, archived_on="2026-12-07", survivor=survivor)
    assert pending.comment is not None
    assert "合并到「华东项目」（ID 50000000009）" in pending.comment
    assert "由集成机器人自动撤回" in pending.comment
    assert "删除" not in pending.comment
    approved = rules.decide_archived("50000000001", LINKED, {"phase": "found"}, "APPROVED",
                                     dictionary_version=D.version, archived_on="2026-12-07", survivor=survivor)
    assert approved.void_reason == "合并：已合并到「华东项目」（ID 50000000009）"
    assert archived(LINKED, "APPROVED", {"phase": "found"}).void_reason == "删除：CRM 中的商机已删除（归档）"
    unnamed = rules.void_reason(rules.Survivor("50000000009"))
    assert unnamed == "合并：已合并到商机（ID 50000000009）"
    marked = rules.decide_archived("50000000001", LINKED, {}, "REJECTED", dictionary_version=D.version,
                                   archived_on="2026-12-07", survivor=survivor)
    assert marked.comment is not None
    assert "仅标记商机已合并" in marked.comment


def test_the_void_notice_is_its_own_outbound_form_for_finance() -> None:
    form = D.form(rules.VOID_FORM)
    assert (form.label, form.direction, form.audience) == ("商机作废通知", "crm_to_oa", "finance")
    assert {w.id for w in form.widgets if w.required} == {"deal_id", "project_instance", "void_reason", "voided_at"}
    assert rules.VOID_PURPOSE != rules.NOTICE_FORM


def test_a_started_void_notice_is_resumed_with_its_saved_uuid_whatever_the_status() -> None:
    decision = archived(LINKED, "APPROVED", {"phase": "notifying", "void_uuid": "saved-uuid"})
    assert (decision.action, decision.reason, decision.uuid) == ("void_notice", "resume_void_notice", "saved-uuid")


@pytest.mark.parametrize("status", ["REJECTED", "CANCELED", "DELETED", "REVERTED", None])
def test_archived_deal_with_an_ended_project_initiation_is_only_marked(status: str | None) -> None:
    decision = archived(LINKED, status)
    assert decision.action == "mark"
    assert decision.reason == (f"archived_{status.lower()}" if status else "archived_instance_missing")


@pytest.mark.parametrize("phase", sorted(rules.HANDLED))
def test_an_archive_already_settled_is_not_settled_twice(phase: str) -> None:
    assert archived(LINKED, "PENDING", {"phase": phase}).action == "nothing"


@pytest.mark.parametrize("project", [None, rules.ProjectLink(uuid="u-1", instance_code=None)])
def test_archived_deal_without_a_confirmed_project_initiation_needs_no_oa_action(
    project: rules.ProjectLink | None,
) -> None:
    assert archived(project, "PENDING") == rules.ArchiveDecision("nothing", "no_project")


def test_archive_sweep_settings_default_and_override() -> None:
    cfg = crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {}})
    assert (cfg.archive_sweep_seconds, cfg.archive_sweep_pages) == (900, 5)
    cfg = crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {"archive_sweep": {"every_minutes": 2,
                                                                                   "max_pages": 1}}})
    assert (cfg.archive_sweep_seconds, cfg.archive_sweep_pages) == (120, 1)
    with pytest.raises(common.SyncSettingsError, match=r"archive_sweep\.max_pages"):
        crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {"archive_sweep": {"max_pages": 0}}})


def test_a_withdrawal_that_reached_the_oa_before_a_crash_is_recorded_not_repeated() -> None:
    decision = archived(LINKED, "CANCELED", {"phase": "withdrawing"})
    assert (decision.action, decision.reason) == ("withdraw", "resume_withdraw")
    assert archived(LINKED, "PENDING", {"phase": "withdrawing"}).reason == "archived_pending", "not sent yet"
    assert archived(LINKED, "CANCELED", {"phase": "found"}).action == "mark", "withdrawn by a person"


def test_the_void_notice_never_goes_back_to_the_crm() -> None:
    from bridge.sync.oa_to_crm.settings import OaToCrmSettings

    shipped = OaToCrmSettings.from_settings()
    shipped.check(D)
    assert rules.VOID_FORM not in shipped.forms
    wrong = OaToCrmSettings.from_settings({"oa_to_crm": {"forms": ["project_initiation", rules.VOID_FORM]},
                                           "oa": {"approval_codes": {"project_initiation": "A",
                                                                     rules.VOID_FORM: "B"}}})
    with pytest.raises(common.SyncSettingsError, match="deal_void_notice"):
        wrong.check(D)

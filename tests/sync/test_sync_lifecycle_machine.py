"""Records live and die on both sides while both syncs run: a hypothesis state machine (issue 16).

People edit deals (up to 合同签订, the 立项 stage), delete (archive) them, restore
them from the recycle bin and merge them in the CRM; in the OA they approve,
reject, withdraw and revoke 立项申请 and expense claims (whose approval puts a
note on the customer in the CRM). CRM → OA and OA → CRM runs interleave at
random (the CRM → OA clock moves past the debounce window, a pass over the
archived deals on every run). After every step:

- no deal has two live (PENDING/APPROVED) 立项申请;
- after a CRM → OA run, every live 立项申请 names a live deal, or its deal was
  deleted or merged away and the bridge settled it with a 商机作废通知 to finance
  (the link marked, a notice filed); a pending one of a dead deal was withdrawn;
- after an OA → CRM run, every note the bridge made names an approved instance
  or is marked void (已撤销/已撤回/已删除);
- the audit chain verifies, and every instance the bridge filed in the OA and
  every note it made in the CRM has its audit entry.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from tests.hub_support import HubCopies
from tests.sync.sync_o2c_world import O2C, make_o2c
from tests.sync.test_sync_crm_to_oa_merge import _merge

from bridge.hub import audit, store
from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_log
from bridge.sync import crm_to_oa
from bridge.sync.crm_to_oa import decide as rules
from sandbox import launcher

LIVE = frozenset({"PENDING", "APPROVED"})
PROJECT_ACTIONS = ("approve", "reject", "withdraw", "revoke")
EXPENSE_ACTIONS = ("approve", "withdraw", "revoke", "delete")
ALLOWED = {"approve": {"PENDING"}, "reject": {"PENDING"}, "withdraw": {"PENDING"}, "revoke": {"APPROVED"},
           "delete": {"PENDING", "APPROVED", "REJECTED", "CANCELED", "REVERTED"}}
VOID_MARK = "【OA 审批状态："  # the start of a note the bridge voided (已撤销 / 已撤回 / 已删除)


def _machine(sims: launcher.Simulators, hubs: HubCopies, monkeypatch: pytest.MonkeyPatch) -> type:
    """The machine class over the session's simulators; each example gets ``hubs.next_url()``."""

    class Lifecycle(RuleBasedStateMachine):
        """The model: which deals people deleted or merged, and which sync ran last."""

        expenses = Bundle("expenses")
        deals = Bundle("deals")

        def __init__(self) -> None:
            super().__init__()
            self.company: dict[str, str] = {}  # deal → its company
            self.archived: set[str] = set()  # deleted by a person (until restored)
            self.merged: dict[str, str] = {}  # absorbed deal → survivor
            self.last_run = ""  # "c2o" / "o2c" right after that sync ran, else ""
            self.url = hubs.next_url()  # both simulators emptied, a fresh hub: one world per example
            self.w: O2C = make_o2c(sims, self.url, monkeypatch)
            # every CRM → OA run passes over the archived deals (a deletion is noticed by the next run)
            self.w.c2o.cfg = crm_to_oa.with_overrides(self.w.c2o.cfg, archive_sweep_seconds=0)

        def _live(self, deal: str) -> bool:
            return deal not in self.archived and deal not in self.merged

        def _step(self) -> None:
            self.last_run = ""

        # ------------------------------------------------------------ people in the CRM
        @initialize(target=deals)
        def signed_deals(self) -> Any:
            """Two deals at 合同签订 with their 立项申请 (one approved) and one before it: the lives below start there."""
            made = [self._new_deal(signed=True), self._new_deal(signed=True), self._new_deal(signed=False)]
            self.run_crm_to_oa()
            self.act_on_project(made[0], "approve")  # one approved: its end goes to finance
            self.w.sync()
            return multiple(*made)

        def _new_deal(self, signed: bool) -> str:
            company, _ = self.w.c2o.customer()
            deal = self.w.c2o.create_deal(company, stage="contractsent" if signed else "decisionmakerboughtin")
            self.company[deal] = company
            return deal

        @rule(target=deals, signed=st.booleans())
        def create_deal(self, signed: bool) -> str:
            self._step()
            return self._new_deal(signed)

        @rule(deal=deals, amount=st.sampled_from(["80000.00", "150000.00"]))
        def sign(self, deal: str, amount: str) -> None:
            """The deal reaches 合同签订 (the 立项 stage) or, already there, changes its amount."""
            self._step()
            if self._live(deal):
                self.w.c2o.edit("deals", deal, {"dealstage": "contractsent", "amount": amount})

        @rule(deal=deals)
        def archive(self, deal: str) -> None:
            self._step()
            if self._live(deal):
                self.w.c2o.archive("deals", deal)
                self.archived.add(deal)

        @precondition(lambda self: bool(self.archived - set(self.merged)))
        @rule(pick=st.integers(min_value=0, max_value=9))
        def restore(self, pick: int) -> None:
            self._step()
            restorable = sorted(self.archived - set(self.merged))
            deal = restorable[pick % len(restorable)]
            self.w.c2o.restore("deals", deal)
            self.archived.discard(deal)

        @rule(absorbed=deals, survivor=deals)
        def merge(self, absorbed: str, survivor: str) -> None:
            self._step()
            if absorbed != survivor and self._live(absorbed) and self._live(survivor):
                _merge(self.w.c2o, "deals", absorbed, survivor)
                self.merged[absorbed] = survivor
                for old, into in list(self.merged.items()):
                    if into == absorbed:
                        self.merged[old] = survivor

        # ------------------------------------------------------------ people in the OA
        @rule(deal=deals, action=st.sampled_from(PROJECT_ACTIONS))
        def act_on_project(self, deal: str, action: str) -> None:
            self._step()
            for instance in self.w.c2o.instances_of(deal):
                self._act(str(instance["instance_code"]), action)

        def _act(self, code: str, action: str) -> None:
            if self.w.instance(code)["status"] in ALLOWED[action]:
                self.w.act(action, code)

        @rule(target=expenses, deal=deals, approve=st.booleans())
        def submit_expense(self, deal: str, approve: bool) -> str:
            self._step()
            code = self.w.expense(self.company[deal], amount=321.5)
            if approve:
                self.w.act("approve", code)
            return code

        @rule(code=expenses, action=st.sampled_from(EXPENSE_ACTIONS))
        def act_on_expense(self, code: str, action: str) -> None:
            self._step()
            self._act(code, action)

        # ------------------------------------------------------------ the bridge
        @rule(directions=st.sampled_from(["c2o", "o2c", "o2c c2o", "c2o o2c"]))
        def run_syncs(self, directions: str) -> None:
            for direction in directions.split():
                if direction == "c2o":
                    self.run_crm_to_oa()
                else:
                    self.w.sync()
                    self.last_run = "o2c"

        @rule()
        def crm_to_oa_after_people(self) -> None:
            """A second sync rule: syncs are as frequent as people's acts (hypothesis draws rules evenly)."""
            self.run_crm_to_oa()

        def run_crm_to_oa(self) -> None:
            self.w.c2o.tick(61)  # past the debounce window (the o2c world's is 0 already)
            self.w.c2o_sync()
            self.last_run = "c2o"

        # ------------------------------------------------------------ invariants
        @invariant()
        def lifecycle_invariants(self) -> None:
            """The bridge writes only in sync runs: what it wrote is checked right after the run that wrote it
            (one listing per form, so a step costs a few simulator calls)."""
            projects = self.w.c2o.instances()
            with self.w.hub.connect() as conn:
                links = {lk.oa_id: lk for lk in store.links(conn, rules.PROJECT_LINK) if lk.oa_id}
            live = Counter(self._deal_of(i, links) for i in projects if i["status"] in LIVE)
            assert all(n == 1 for n in live.values()), f"a deal with two live 立项申请: {live}"
            if self.last_run == "c2o":
                notices = launcher.oa_instances(self.w.sims.oa, rules.VOID_FORM, "api")
                self._dead_deals_are_settled(projects, links, notices)
                filed = [*projects, *notices, *launcher.oa_instances(self.w.sims.oa, rules.NOTICE_FORM, "api")]
                self._audited(filed, [])
            elif self.last_run == "o2c":
                notes = [n for n in self.w.objects("notes") if n["properties"].get("oa_instance_code")]
                self._notes_name_approved_instances_or_are_void(notes)
                self._audited([], notes)

        @staticmethod
        def _deal_of(instance: dict[str, Any], links: dict[str | None, store.Link]) -> str:
            """The deal a 立项申请 belongs to: its link's (a merge's survivor inherits the absorbed deal's 立项申请,
            whose form still names the absorbed id), else the one its form names."""
            link = links.get(instance["instance_code"])
            return str(link.crm_id) if link is not None and link.crm_id else str(instance["widgets"].get("deal_id"))

        def _dead_deals_are_settled(
            self, projects: list[dict[str, Any]], links: dict[str | None, store.Link], notices: list[dict[str, Any]]
        ) -> None:
            """A live 立项申请 of a deleted or merged-away deal was withdrawn, or told to finance once approved."""
            for instance in projects:
                deal, code, status = self._deal_of(instance, links), instance["instance_code"], instance["status"]
                if status not in LIVE or self._live(deal):
                    continue
                assert status == "APPROVED", f"立项申请 {code} of dead deal {deal} is still {status}: not withdrawn"
                link = links.get(code)
                state = (link.state or {}) if link is not None else {}
                assert state.get("archived"), f"立项申请 {code} of dead deal {deal}: link not marked"
                assert (state.get(rules.ARCHIVE_KEY) or {}).get("phase") == "notified", state
                assert any(str(n["widgets"].get("deal_id")) == deal for n in notices), f"no 商机作废通知 for {deal}"

        def _notes_name_approved_instances_or_are_void(self, notes: list[dict[str, Any]]) -> None:
            statuses = {i["instance_code"]: i["status"] for i in launcher.oa_instances(self.w.sims.oa, "expense_claim")}
            for note in notes:
                code = note["properties"]["oa_instance_code"]
                status = statuses.get(code)
                body = str(note["properties"].get("hs_note_body") or "")
                assert status == "APPROVED" or body.startswith(VOID_MARK), (code, status, body[:40])
                if status != "APPROVED":
                    assert not note["properties"].get("oa_amount"), f"void note {note['id']} keeps its amount"

        def _audited(self, filed: list[dict[str, Any]], notes: list[dict[str, Any]]) -> None:
            """The chain verifies; every instance the bridge filed and every note it made or voided is audited."""
            with self.w.hub.connect() as conn:
                checked = audit.verify(conn)
                entries = [dict(r._mapping) for r in conn.execute(select(audit_log))]
            assert checked.ok, checked

            def codes(system: str, operation: str) -> set[str]:
                return {str(e["record_ids"].get("instance_code")) for e in entries
                        if e["system"] == system and e["operation"] == operation and e["outcome"] == "ok"}

            created = codes("oa", "create_instance")
            missing = [i["instance_code"] for i in filed if i["instance_code"] not in created]
            assert not missing, f"OA instances filed without an audit entry: {missing}"
            upserted, voided = codes("crm", "upsert"), codes("crm", "void")
            for note in notes:
                code = str(note["properties"]["oa_instance_code"])
                assert code in upserted, f"note {note['id']} of {code} not audited"
                if str(note["properties"].get("hs_note_body") or "").startswith(VOID_MARK):
                    assert code in voided, f"note {note['id']} voided without an audit entry"

        def teardown(self) -> None:
            self.w.c2o.crm.close()
            self.w.c2o.oa.close()
            hub_engine.get_engine(self.url).dispose()

    return Lifecycle


def test_a_restored_deal_inherits_the_approved_project_of_the_deal_merged_into_it(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An example the machine found (shrunk): a deal deleted, restored, and then the survivor of a merge with a
    deal whose 立项申请 was approved. The survivor has none, so it inherits that 立项申请: it is live and its form
    still names the absorbed deal, but it belongs to a live deal (its link moved) and needs no notice. The
    invariants must judge a 立项申请 by the deal its link names."""
    machine = _machine(c2o_sims, HubCopies(c2o_hub_template, tmp_path), monkeypatch)()
    try:
        deal_0, deal_1, deal_2 = machine.signed_deals().values
        machine.archive(deal_2)  # deleted before it reached the 立项 stage
        machine.run_syncs("c2o")
        machine.lifecycle_invariants()
        machine.act_on_project(deal_1, "approve")
        machine.restore(1)  # the only restorable deal
        assert not machine.archived
        machine.merge(deal_1, deal_2)
        machine.crm_to_oa_after_people()
        machine.lifecycle_invariants()
        inherited = machine.w.c2o.project_link(deal_2)
        assert inherited is not None, "the survivor inherited the absorbed deal's 立项申请"
        assert machine.w.instance(str(inherited.oa_id))["status"] == "APPROVED"
        assert machine.w.c2o.instances_of(deal_2) == [], "and no 立项申请 of its own was filed"
        assert len(machine.w.c2o.instances_of(deal_0)) == 1
    finally:
        machine.teardown()


def test_lifecycle_interleavings_keep_the_invariants(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine = _machine(c2o_sims, HubCopies(c2o_hub_template, tmp_path), monkeypatch)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=15, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], database=None))

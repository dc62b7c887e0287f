"""Both sync directions, alternately, over a data set people keep changing: they converge, with no echo
writes and no duplicates (a hypothesis state machine against the simulators).

People create deals and sign them (→ 立项申请), change amounts (→ notices), approve, reject, withdraw,
resubmit and delete in the OA, submit expenses (with and without customer) and edit OA-owned fields in
the CRM; sync runs interleave. ``settle`` then runs both directions until a round writes nothing and
checks the end state: one 立项申请 per signed deal, the deal shows the OA's status, one note per approved
expense with a customer (voided once deleted), none for the others, the OA's values back where someone
edited them in the CRM, and a further round writes nothing anywhere (no echo).
"""

from __future__ import annotations

import shutil
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
    rule,
    run_state_machine_as_test,
)
from tests.sync.sync_o2c_world import O2C, make_o2c

from bridge.hub import engine as hub_engine
from sandbox import launcher

OA_ACTIONS = ("approve", "reject", "withdraw", "resubmit", "delete")


def _machine(sims: launcher.Simulators, template: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    counter = [0]

    class TwoWay(RuleBasedStateMachine):
        deals = Bundle("deals")
        expenses = Bundle("expenses")

        def __init__(self) -> None:
            super().__init__()
            counter[0] += 1
            target = base / f"hub{counter[0]}.sqlite"
            shutil.copyfile(template, target)
            self.url = f"sqlite:///{target}"
            self.w: O2C = make_o2c(sims, self.url, monkeypatch)
            self.companies: list[str] = []
            self.signed: set[str] = set()
            self.expense_customer: dict[str, str | None] = {}
            self.was_approved: set[str] = set()

        # ------------------------------------------------------------ people in the CRM
        @initialize(target=deals)
        def first_deal(self) -> str:
            return self._new_deal()

        def _new_deal(self) -> str:
            company, _ = self.w.c2o.customer()
            self.companies.append(company)
            return self.w.c2o.create_deal(company)

        @rule(target=deals)
        def create_deal(self) -> str:
            return self._new_deal()

        @rule(deal=deals)
        def sign(self, deal: str) -> None:
            self.w.c2o.edit("deals", deal, {"dealstage": "contractsent"})
            self.signed.add(deal)

        @rule(deal=deals, amount=st.integers(min_value=50_000, max_value=500_000))
        def change_amount(self, deal: str, amount: int) -> None:
            self.w.c2o.edit("deals", deal, {"amount": f"{amount}.00"})

        @rule(deal=deals)
        def edit_oa_field_in_crm(self, deal: str) -> None:
            self.w.c2o.edit("deals", deal, {"oa_project_no": "手改", "oa_approval_status": "REJECTED"})

        # ------------------------------------------------------------ people in the OA
        @rule(deal=deals, action=st.sampled_from(OA_ACTIONS))
        def act_on_project(self, deal: str, action: str) -> None:
            link = self.w.c2o.project_link(deal)
            if link is None or not link.oa_id:
                return
            self._act(str(link.oa_id), action)

        def _act(self, code: str, action: str) -> None:
            status = self.w.instance(code)["status"]
            allowed = {"approve": {"PENDING"}, "reject": {"PENDING"}, "withdraw": {"PENDING"},
                       "resubmit": {"REJECTED", "CANCELED"}, "delete": {"PENDING", "APPROVED", "REJECTED", "CANCELED"}}
            if status not in allowed[action]:
                return
            if action == "resubmit":
                self.w.resubmit(code)
            else:
                self.w.act(action, code)

        @rule(target=expenses, with_customer=st.booleans(), approve=st.booleans())
        def submit_expense(self, with_customer: bool, approve: bool) -> str:
            customer = self.companies[-1] if with_customer and self.companies else None
            code = self.w.expense(customer, amount=321.5)
            self.expense_customer[code] = customer
            if approve:
                self.w.act("approve", code)
            return code

        @rule(code=expenses)
        def sync_then_delete(self, code: str) -> None:
            """The expense reaches the CRM (if approved), then its applicant deletes it in the OA."""
            self.w.sync()
            self._remember_approvals()
            self._act(code, "delete")

        @rule(code=expenses, action=st.sampled_from(OA_ACTIONS))
        def act_on_expense(self, code: str, action: str) -> None:
            self._act(code, action)

        # ------------------------------------------------------------ the bridge
        @rule()
        def run_crm_to_oa(self) -> None:
            self.w.c2o_sync()

        @rule()
        def run_oa_to_crm(self) -> None:
            self.w.sync()
            self._remember_approvals()

        def _remember_approvals(self) -> None:
            for code in self.expense_customer:
                if self.w.instance(code)["status"] == "APPROVED":
                    self.was_approved.add(code)

        @invariant()
        def no_duplicates(self) -> None:
            per_code = Counter(n["properties"].get("oa_instance_code") for n in self.w.objects("notes"))
            assert all(n == 1 for n in per_code.values()), f"duplicate notes: {per_code}"
            per_deal = Counter(i["widgets"].get("deal_id") for i in self.w.c2o.instances())
            assert all(n == 1 for n in per_deal.values()), f"duplicate 立项申请: {per_deal}"

        # ------------------------------------------------------------ convergence
        def teardown(self) -> None:
            try:
                self._settle()
            finally:
                self.w.c2o.crm.close()
                self.w.c2o.oa.close()
                hub_engine.get_engine(self.url).dispose()

        def _snapshot(self) -> tuple[Any, int]:
            return self.w.crm_writes(), self.w.oa_created_by_api()

        def _settle(self) -> None:
            for _ in range(4):
                before = self._snapshot()
                self.w.c2o_sync()
                self.w.sync()
                self._remember_approvals()
                if self._snapshot() == before:
                    break
            else:
                raise AssertionError("the two directions did not settle in 4 rounds")
            quiet = self._snapshot()
            self.w.c2o_sync()
            self.w.sync()
            assert self._snapshot() == quiet, "a round over unchanged data wrote something: an echo"
            self._check_end_state()

        def _check_end_state(self) -> None:
            created = Counter(i["widgets"].get("deal_id") for i in self.w.c2o.instances())
            for deal in self.signed:
                assert created[deal] == 1, f"deal {deal}: {created[deal]} 立项申请"
                code = self.w.project_of(deal)
                props = self.w.deal(deal)
                instance = self.w.instance(code)
                assert props["oa_approval_status"] == instance["status"]
                assert props["oa_instance_code"] == code
                assert props["oa_project_no"] == instance["serial_number"]
            notes = {n["properties"].get("oa_instance_code"): n for n in self.w.objects("notes")}
            for code, customer in self.expense_customer.items():
                status = self.w.instance(code)["status"]
                note = notes.get(code)
                if customer and status == "APPROVED":
                    assert note is not None, f"approved expense {code} has no note"
                    assert note["properties"].get("oa_amount")
                    assert self.w.associations("notes", note["id"], "companies") == [customer]
                elif customer and code in self.was_approved:
                    assert note is not None
                    assert not note["properties"].get("oa_amount"), "a deleted expense keeps no amount"
                elif not customer:
                    assert note is None
                    if status in ("PENDING", "APPROVED"):
                        entry = self.w.quarantine("expense_claim", code)
                        assert entry is not None
                        assert entry.reason_code == "missing_customer_link"
                else:
                    assert note is None, f"expense {code} ({status}) was never approved but has a note"

    return TwoWay


def _run(sims: launcher.Simulators, template: Path, base: Path, monkeypatch: pytest.MonkeyPatch,
         examples: int, steps: int) -> None:
    machine = _machine(sims, template, base, monkeypatch)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], database=None))


def test_both_directions_converge_without_echo_or_duplicates(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(c2o_sims, c2o_hub_template, tmp_path, monkeypatch, examples=8, steps=15)


@pytest.mark.slow
def test_both_directions_converge_soak(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(c2o_sims, c2o_hub_template, tmp_path, monkeypatch, examples=25, steps=30)

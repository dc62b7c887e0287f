"""A hypothesis state machine over create / update / delete / sync / crash / retry / token expiry.

People create deals (some names with emoji or right-to-left text), sign
them, move them back, change amounts and names, rename customers, delete
deals, submit and approve expenses; the bridge runs, crashes at a random
checkpoint (then the next run is the retry), and finds its tokens expired.

Invariant — every source record appears in the target exactly once, as the
permission policy projects it:
- after every run: no deal has two 立项申请; every 立项申请 carries the values
  ``fill_form`` gives for the records as they were when a run started to send
  it, under the policy (the credit code masked, the amount and names the
  CRM's); no instance for a deal that was never live and signed at a run;
- after settling: every live signed deal has exactly one 立项申请 and its
  write-back, the amount last sent (form or notice) is the deal's current
  amount, every approved expense with a customer exactly one note with its
  amount, and one more round writes nothing anywhere.

Bounded: a few short examples in ``make test``, more and longer ones in ``make soak``.
"""

from __future__ import annotations

import re
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
    rule,
    run_state_machine_as_test,
)
from tests.hub_support import HubCopies
from tests.reliability.reliability_support import Crash, CrashAt, crm_objects, oa_instances, say
from tests.reliability.test_reliability_crash import C2O_STEPS, O2C_STEPS
from tests.sync.sync_c2o_world import valid_uscc
from tests.sync.sync_o2c_world import O2C, make_o2c

from bridge.hooks._auth import TokenCache
from bridge.hub import engine as hub_engine
from bridge.staging import canonical
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.crm_to_oa.decide import primary_contact
from sandbox import launcher

NAMES = ["华东区数据平台升级", "智慧园区二期🚀", "مشروع التحول الرقمي", "‏项目‎ mixed עברית", "普通项目"]
CUSTOMER_NAMES = ["星河数据科技有限公司", "北辰智能🌟有限公司", "شركة الأفق للتقنية"]
EARLY, SIGNED = "decisionmakerboughtin", "contractsent"
USCC_MASKED = re.compile(r"^[0-9A-Z]{4}\*+[0-9A-Z]{4}$")
DEAL_EDITS = ("sign", "unsign", "change amount", "rename deal")
PEOPLE = ["create deal", "create deal", *DEAL_EDITS, "delete deal", "rename customer", "approved expense", "nobody"]
RUNS = ["crm_to_oa", "crm_to_oa", "oa_to_crm", "crash crm_to_oa", "crash crm_to_oa", "crash oa_to_crm",
        "expire tokens", "none", "none"]
SUMMARY: Counter[str] = Counter()


def _machine(sims: launcher.Simulators, template: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    hubs = HubCopies(template, base)

    class Bridge(RuleBasedStateMachine):
        deals = Bundle("deals")
        companies = Bundle("companies")

        def __init__(self) -> None:
            super().__init__()
            self.url = hubs.next_url()
            TokenCache.clear_all()
            self.w: O2C = make_o2c(sims, self.url, monkeypatch)
            self.c = self.w.c2o
            # deal id -> the forms a run computed for it when it started to send it (any may have landed)
            self.candidates: dict[str, list[dict[str, Any]]] = {}
            self.seen_codes: set[str] = set()
            self.archived: set[str] = set()
            self.expenses: dict[str, tuple[str, float]] = {}
            SUMMARY["examples"] += 1

        # ------------------------------------------------------------ people
        @initialize(target=companies)
        def first_customer(self) -> str:
            return self._customer(0)

        @rule(target=companies, n=st.integers(0, len(CUSTOMER_NAMES) - 1))
        def new_customer(self, n: int) -> str:
            return self._customer(n)

        def _customer(self, n: int) -> str:
            uid = self.c._uid()
            company = self.c.create_company(name=f"{CUSTOMER_NAMES[n]}{uid}", uscc=valid_uscc(uid))
            self.c.create_contact(company, mobilephone=f"139{uid % 100_000_000:08d}")
            return company

        @initialize(target=deals)
        def first_deal(self) -> str:
            return self.c.create_deal(self._customer(1), stage=SIGNED, amount="100000.00", dealname=NAMES[0])

        @rule(target=deals, deal=deals, company=companies, person=st.sampled_from(PEOPLE),
              run=st.sampled_from(RUNS), name=st.sampled_from(NAMES), amount=st.integers(10_000, 900_000),
              c2o_step=st.sampled_from(C2O_STEPS), o2c_step=st.sampled_from(O2C_STEPS), occurrence=st.integers(1, 2))
        def step(self, deal: str, company: str, person: str, run: str, name: str, amount: int, c2o_step: str,
                 o2c_step: str, occurrence: int) -> Any:
            """Someone does something (or nothing), then the bridge does something (or nothing)."""
            created = self._person(person, deal, company, name, amount)
            self._bridge(run, c2o_step, o2c_step, occurrence)
            return multiple(created) if created else multiple()

        def _person(self, person: str, deal: str, company: str, name: str, amount: int) -> str | None:
            if person == "create deal":
                SUMMARY["create"] += 1
                stage = SIGNED if amount % 2 else EARLY
                return self.c.create_deal(company, stage=stage, amount=f"{amount}.00", dealname=name)
            if person == "approved expense":
                SUMMARY["create"] += 1
                code = self.w.expense(company, amount=amount % 5000 + 1)
                self.w.act("approve", code)
                self.expenses[code] = (company, float(amount % 5000 + 1))
            elif person == "rename customer":
                SUMMARY["update"] += 1
                self.c.edit("companies", company, {"name": f"{CUSTOMER_NAMES[amount % 3]}（更名）{self.c._uid()}"})
            elif person == "delete deal" and deal not in self.archived:
                SUMMARY["delete"] += 1
                self.c.crm_act("/_sim/act/archive", {"object_type": "deals", "id": int(deal)})
                self.archived.add(deal)
            elif person in DEAL_EDITS and deal not in self.archived:
                SUMMARY["update"] += 1
                props = {"sign": {"dealstage": SIGNED}, "unsign": {"dealstage": EARLY},
                         "change amount": {"amount": f"{amount}.00"}, "rename deal": {"dealname": name}}[person]
                self.c.edit("deals", deal, props)
            return None

        def _bridge(self, kind: str, c2o_step: str, o2c_step: str, occurrence: int) -> None:
            """A run of either direction; one that dies at a checkpoint (the next run is its retry); or every
            access token expiring before the next run."""
            if kind == "expire tokens":
                SUMMARY["token_expiries"] += 1
                self.w.sims.crm.admin("POST", "/_sim/tokens/expire", {})
                self.w.sims.oa.admin("POST", "/_sim/tokens/expire", {})
            elif kind == "crm_to_oa":
                SUMMARY["sync"] += 1
                self._c2o_run(None)
            elif kind == "crash crm_to_oa":
                SUMMARY["crash_attempts"] += 1
                self._c2o_run(CrashAt(c2o_step, occurrence))
            elif kind == "oa_to_crm":
                SUMMARY["sync"] += 1
                self.w.sync()
            elif kind == "crash oa_to_crm":
                SUMMARY["crash_attempts"] += 1
                crash = CrashAt(o2c_step, 1)
                try:
                    self.w.discover(checkpoint=crash)
                    self.w.load(checkpoint=crash)
                except Crash:
                    SUMMARY["crashes"] += 1

        def _c2o_run(self, crash: CrashAt | None) -> None:
            self._remember_expected_forms()
            self.c.tick(1)
            try:
                self.c.extract(checkpoint=crash)
                self.c.load(checkpoint=crash)
            except Crash:
                SUMMARY["crashes"] += 1
            self._check_new_instances()

        # ------------------------------------------------------------ the model
        def _remember_expected_forms(self) -> None:
            """The form a run starting now would send for each live signed deal without a 立项申请 yet."""
            d, p = self.c.d, self.c.p
            have = {str(i["widgets"]["deal_id"]) for i in oa_instances(self.c, "project_initiation")}
            companies = {str(o["id"]): o for o in crm_objects(self.c, "companies")}
            contacts = crm_objects(self.c, "contacts")
            for obj in crm_objects(self.c, "deals"):
                deal = str(obj["id"])
                if deal in have or obj["properties"].get("dealstage") != SIGNED:
                    continue
                company_id = next(iter(self.c.crm.read_associations("deals", "companies", [deal]).get(deal, [])),
                                  None)
                record = canonical(d.from_crm("deal", obj, {"companies": [company_id]} if company_id else {}).record)
                company = canonical(d.from_crm("company", companies[company_id]).record) if company_id else {}
                people = [d.from_crm("contact", c).record for c in contacts
                          if str(c["properties"].get("associatedcompanyid")) == str(company_id)]
                sources = {"deal": record, "company": company, "contact": primary_contact(people)}
                form = {w["id"]: w["value"] for w in d.fill_form("project_initiation", sources, p)}
                self.candidates.setdefault(deal, []).append(form)

        def _check_new_instances(self) -> None:
            projects = oa_instances(self.c, "project_initiation")
            per = Counter(str(i["widgets"]["deal_id"]) for i in projects)
            assert all(n == 1 for n in per.values()), f"a deal with two 立项申请: {per.most_common(2)}"
            for item in projects:
                if item["instance_code"] in self.seen_codes:
                    continue
                self.seen_codes.add(item["instance_code"])
                deal = str(item["widgets"]["deal_id"])
                assert deal in self.candidates, f"立项申请 for deal {deal}, which no run found live and signed"
                widgets = {k: v for k, v in item["widgets"].items()}
                assert widgets in self.candidates[deal], (
                    f"deal {deal}: the 立项申请 is not what fill_form gives for the records of any run that sent "
                    f"it under the policy: {widgets} vs {self.candidates[deal][-1]}")
                assert USCC_MASKED.match(str(widgets["customer_uscc"])), "the credit code is masked (销售主管)"
                SUMMARY["instances_checked"] += 1

        @invariant()
        def no_duplicate_notes(self) -> None:
            per = Counter(n["properties"].get("oa_instance_code") for n in self.w.objects("notes"))
            assert all(n == 1 for n in per.values()), f"duplicate notes: {per.most_common(2)}"

        # ------------------------------------------------------------ settle and check
        def teardown(self) -> None:
            try:
                self._settle()
            finally:
                self.c.crm.close()
                self.c.oa.close()
                hub_engine.get_engine(self.url).dispose()

        def _writes(self) -> tuple[Any, int]:
            return self.w.crm_writes(), self.w.oa_created_by_api()

        def _settle(self) -> None:
            for _ in range(5):
                before = self._writes()
                try:
                    self._c2o_run(None)
                    self.w.sync()
                except (crm_to_oa.SyncIncomplete, oa_to_crm.SyncIncomplete):
                    continue
                if self._writes() == before:
                    break
            else:
                raise AssertionError("the bridge did not settle in 5 rounds")
            quiet = self._writes()
            self._c2o_run(None)
            self.w.sync()
            assert self._writes() == quiet, "a round over unchanged data wrote something"
            self._check_end_state()

        def _check_end_state(self) -> None:
            projects = {str(i["widgets"]["deal_id"]): i for i in oa_instances(self.c, "project_initiation")}
            notices: dict[str, list[dict[str, Any]]] = {}
            for n in oa_instances(self.c, "contract_amount_notice"):
                notices.setdefault(str(n["widgets"]["deal_id"]), []).append(n)
            for obj in crm_objects(self.c, "deals"):
                deal, props = str(obj["id"]), obj["properties"]
                if props.get("dealstage") == SIGNED:
                    assert deal in projects, f"live signed deal {deal} has no 立项申请"
                if deal not in projects:
                    continue
                assert props.get("oa_instance_code") == projects[deal]["instance_code"], "write-back"
                sent = [projects[deal]["widgets"]["contract_amount"]]
                sent += [n["widgets"]["new_amount"] for n in sorted(notices.get(deal, []),
                                                                     key=lambda n: int(n["start_time"]))]
                assert sent[-1] == float(props["amount"]), f"deal {deal}: last amount sent {sent[-1]}"
                SUMMARY["deals_checked"] += 1
            notes = {n["properties"].get("oa_instance_code"): n for n in self.w.objects("notes")}
            for code, (_company, amount) in self.expenses.items():
                assert code in notes, f"approved expense {code} has no note"
                assert float(notes[code]["properties"]["oa_amount"]) == amount
                SUMMARY["notes_checked"] += 1

    return Bridge


def _run(sims: launcher.Simulators, template: Path, base: Path, monkeypatch: pytest.MonkeyPatch,
         examples: int, steps: int) -> None:
    SUMMARY.clear()
    machine = _machine(sims, template, base, monkeypatch)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert SUMMARY["instances_checked"] > 0, "the machine sent something"
    say(f"state machine ({examples} examples × ≤{steps} steps)",
        {k: SUMMARY[k] for k in ("examples", "create", "update", "delete", "sync", "crash_attempts", "crashes",
                                 "token_expiries")},
        {k: SUMMARY[k] for k in ("instances_checked", "deals_checked", "notes_checked")}
        | {"duplicates": 0, "lost": 0})


def test_every_record_appears_once_as_the_policy_projects_it(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(c2o_sims, c2o_hub_template, tmp_path, monkeypatch, examples=15, steps=25)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_record_appears_once_as_the_policy_projects_it_soak(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(c2o_sims, c2o_hub_template, tmp_path, monkeypatch, examples=40, steps=30)

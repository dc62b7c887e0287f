"""429 storms and token expiry mid-run end in the same OA and CRM state as a clean run."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.sync.sync_c2o_world import C2O, FORMER_OWNER, OWNER_2, valid_uscc

from bridge.sync import crm_to_oa

State = list[tuple[Any, ...]]


def scenario(c2o: C2O, checkpoint: Callable[[str], None] | None = None, max_rounds: int = 12) -> State:
    """The same business day every time: 6 deals signed, one owner who left, one amount change."""
    company = c2o.create_company(name="风暴测试科技有限公司", uscc=valid_uscc(424242))
    c2o.create_contact(company)
    deals = [c2o.create_deal(company, stage="contractsent", amount=f"{100000 * (n + 1)}.00",
                             owner=FORMER_OWNER if n == 5 else OWNER_2, dealname=f"风暴项目{n}") for n in range(6)]
    rounds = 0
    done = False
    while not done and rounds < max_rounds:
        rounds += 1
        c2o.extract(checkpoint=checkpoint)
        c2o.tick(61)
        try:
            c2o.load(checkpoint=checkpoint)
        except crm_to_oa.SyncIncomplete:
            c2o.tick(900)  # the deferred changes wait; the next run takes them
            continue
        if rounds == 1:
            c2o.edit("deals", deals[0], {"amount": "150000.00"})
        done = rounds > 1 and not c2o.pending()
    assert done, f"not converged after {rounds} rounds"
    return observed(c2o, deals)


def observed(c2o: C2O, deals: list[str]) -> State:
    """What a person sees in the OA and the CRM, without codes and times that differ between runs."""
    index = {deal: n for n, deal in enumerate(deals)}
    state: State = []
    for form in ("project_initiation", "contract_amount_notice"):
        for item in c2o.instances(form):
            widgets = {k: v for k, v in item["widgets"].items() if k not in ("deal_id", "customer_id", "project_no",
                                                                             "changed_at")}
            state.append((form, index[item["widgets"]["deal_id"]], item["user_id"], sorted(widgets.items())))
    for deal in deals:
        props = c2o.crm_object("deals", deal)
        state.append(("crm", index[deal], bool(props.get("oa_instance_code")), props.get("oa_approval_status"),
                      props.get("oa_project_stage")))
        entry = c2o.open_quarantine(deal)
        state.append(("quarantine", index[deal], entry.reason_code if entry else None))
    return sorted(state, key=repr)


def test_rate_limit_storms_and_token_expiry_end_like_a_clean_run(
    c2o: C2O, c2o_factory: Callable[..., C2O], tmp_path: Path
) -> None:
    clean = scenario(c2o)
    assert sum(1 for s in clean if s[0] == "project_initiation") == 5
    assert sum(1 for s in clean if s[0] == "contract_amount_notice") == 1
    assert ("quarantine", 5, "owner_not_in_oa") in clean
    notice = next(s for s in clean if s[0] == "contract_amount_notice")
    assert dict(notice[3])["new_amount"] == float(Decimal("150000.00"))

    stormy = c2o_factory(f"sqlite:///{tmp_path / 'stormy.sqlite'}")
    storm = {"kind": "rate_limit", "rate": 0.4, "retry_after": 0.05, "seed": 7}
    stormy.sims.crm.admin("PUT", "/_sim/faults", {"rules": [{**storm, "path": "^/crm/"}]})
    stormy.sims.oa.admin("PUT", "/_sim/faults", {"rules": [{**storm, "path": "^/open-apis/approval/"},
                                                            {**storm, "path": "^/open-apis/contact/"}]})
    expired: list[str] = []

    def expire_tokens(step: str) -> None:
        if step in ("instance_created", "writeback_sent") and step not in expired:
            expired.append(step)
            stormy.sims.crm.admin("POST", "/_sim/tokens/expire", {})
            stormy.sims.oa.admin("POST", "/_sim/tokens/expire", {})

    result = scenario(stormy, checkpoint=expire_tokens)
    fired = [stormy.sims.crm.admin("GET", "/_sim/stats"), stormy.sims.oa.admin("GET", "/_sim/stats")]
    assert all(isinstance(s, dict) and s["faults_fired"] for s in fired), "the storm happened"
    assert expired == ["instance_created", "writeback_sent"], "tokens expired mid-run"
    assert result == clean

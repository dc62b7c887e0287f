"""Forms without a usable customer wait in quarantine (missing_customer_link), naming the applicant; fixing or
releasing them lets them through; other blocking problems are quarantined like in the other direction."""

from __future__ import annotations

from pathlib import Path

from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

import bridge.dictionary
from bridge.context import RunContext
from bridge.hub import store

ROOT = Path(__file__).resolve().parents[2]


def _release(o2c: O2C, entry_id: int) -> None:  # noqa: F811
    with o2c.hub.begin() as conn:
        store.release(conn, RunContext.local(principal="test"), entry_id, "王芳")



def _travel_expense_form(reason: str, amount: int, company: str) -> list[dict[str, object]]:
    """A 费用报销 form (交通, 2026-11-20) as the applicant resubmits it, this time with the customer selected."""
    return [{"id": "reason", "type": "textarea", "value": reason},
            {"id": "expense_type", "type": "radioV2", "value": "交通"},
            {"id": "amount", "type": "amount", "value": amount},
            {"id": "expense_date", "type": "date", "value": "2026-11-20T00:00:00+08:00"},
            {"id": "customer_id", "type": "input", "value": company}]

def test_a_form_without_customer_waits_and_goes_through_once_resubmitted(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    expense = o2c.expense(None, amount=560)
    counts = o2c.sync()
    assert counts["quarantined_missing_customer_link"] == 1
    entry = o2c.quarantine("expense_claim", expense)
    assert entry is not None
    assert entry.reason_code == "missing_customer_link"
    assert entry.field == "customer_id"
    assert entry.data_owner == "u00011038"
    assert "u00011038" in entry.message, "the message names the applicant"
    assert "费用报销" in entry.message
    assert "没有选择「关联客户」" in entry.message
    assert "撤回" in entry.message, "and says what to do"
    assert o2c.activity("notes", expense) is None
    # the pages show the applicant by name: the sync kept it from the OA's contact directory
    from bridge import people

    oa_users = {u["user_id"]: u["name"] for u in o2c.c2o.sims.oa.admin("GET", "/_sim/users")["users"]}
    with o2c.hub.connect() as conn:
        assert people.names(conn, ["u00011038"]) == {"u00011038": oa_users["u00011038"]}

    # The applicant withdraws and resubmits with the customer: retried automatically, approved → a note.
    o2c.act("withdraw", expense)
    o2c.act("resubmit", expense, form=_travel_expense_form("拜访客户交通费", 560, company))
    o2c.act("approve", expense)
    counts = o2c.sync()
    assert counts["retried"] == 1
    assert o2c.quarantine("expense_claim", expense) is None
    note = o2c.activity("notes", expense)
    assert note is not None
    assert o2c.associations("notes", note["id"], "companies") == [company]


def test_the_applicant_is_named_when_the_hub_knows_the_person(o2c: O2C) -> None:  # noqa: F811
    o2c.linked_deal()  # the CRM → OA sync matched CRM owner 70000001 (彭明) to OA user u00011038
    visit = o2c.visit(None)
    o2c.sync()
    entry = o2c.quarantine("visit_plan", visit)
    assert entry is not None
    assert "申请人彭明（OA 用户 u00011038）" in entry.message
    assert "拜访客户" in entry.message


def test_an_unknown_customer_waits_until_the_crm_has_it_and_someone_releases_it(o2c: O2C) -> None:  # noqa: F811
    first = o2c.c2o.create_company()
    upcoming = str(int(first) + 1)  # the CRM simulator numbers records in sequence: the next company's id
    trip = o2c.trip(upcoming)
    o2c.act("approve", trip)
    counts = o2c.sync()
    assert counts["quarantined_missing_customer_link"] == 1
    entry = o2c.quarantine("travel_request", trip)
    assert entry is not None
    assert "在 CRM 中不存在" in entry.message
    assert upcoming in entry.message
    # Released before the CRM has the customer: back in quarantine, nothing written.
    _release(o2c, entry.id)
    counts = o2c.sync()
    assert counts["quarantined_missing_customer_link"] == 1
    again = o2c.quarantine("travel_request", trip)
    assert again is not None
    assert o2c.activity("notes", trip) is None
    # Sales create the customer, someone releases the form: it lands on that customer.
    created = o2c.c2o.create_company()
    assert created == upcoming
    _release(o2c, again.id)
    counts = o2c.sync()
    assert counts["written_notes"] == 1
    note = o2c.activity("notes", trip)
    assert note is not None
    assert o2c.associations("notes", note["id"], "companies") == [upcoming]
    assert o2c.quarantine("travel_request", trip) is None


def test_a_rejected_expense_without_customer_leaves_quarantine_by_itself(o2c: O2C) -> None:  # noqa: F811
    expense = o2c.expense(None)
    o2c.sync()
    assert o2c.quarantine("expense_claim", expense) is not None
    o2c.act("reject", expense)
    counts = o2c.sync()
    assert counts["retried"] == 1, "the instance changed: the entry is closed as fixed"
    assert o2c.quarantine("expense_claim", expense) is None
    assert counts.get("quarantined", 0) == 0, "a rejected expense never reaches the CRM: nothing to hold"


def test_hostile_input_is_quarantined_and_a_fix_in_the_oa_retries_it(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    code = o2c.submit("expense_claim", reason="交通费\x00", expense_type="交通", amount=12, customer_id=company,
                      expense_date="2026-11-20T00:00:00+08:00")
    counts = o2c.sync()
    assert counts["quarantined_hostile_input"] == 1
    entry = o2c.quarantine("expense_claim", code)
    assert entry is not None
    assert entry.field == "reason"
    o2c.act("withdraw", code)
    o2c.act("resubmit", code, form=_travel_expense_form("交通费", 12, company))
    o2c.act("approve", code)
    counts = o2c.sync()
    assert counts["retried"] == 1
    assert counts["written_notes"] == 1
    assert o2c.quarantine("expense_claim", code) is None


def test_an_unmapped_value_is_released_after_the_dictionary_learns_it(o2c: O2C, tmp_path: Path) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    code = o2c.expense(company)
    o2c.act("approve", code)
    # A dictionary that does not know the label 交通 (as if the OA admin added an option first).
    text = (ROOT / "include" / "dictionary.yaml").read_text(encoding="utf-8")
    old = "      - {canonical: transport,     label: 交通, oa: 交通}\n"
    assert old in text
    path = tmp_path / "dictionary.yaml"
    path.write_text(text.replace(old, ""), encoding="utf-8")
    real = o2c.c2o.d
    o2c.c2o.d = bridge.dictionary.load(path)
    try:
        counts = o2c.sync()
    finally:
        o2c.c2o.d = real
    assert counts["quarantined_unmapped_value"] == 1
    entry = o2c.quarantine("expense_claim", code)
    assert entry is not None
    assert entry.field == "expense_type"
    assert o2c.activity("notes", code) is None
    # The dictionary learns the value (the real one), a person releases: re-read, mapped, written.
    _release(o2c, entry.id)
    counts = o2c.sync()
    assert counts["read"] == 1, "the released instance is read again and mapped with today's dictionary"
    assert counts["written_notes"] == 1
    note = o2c.activity("notes", code)
    assert note is not None
    assert o2c.quarantine("expense_claim", code) is None

"""Each cleaning rule, de-duplication and linking end to end on hand-made dirty records in the simulators.

The records are what people type: full-width digits, +86 mobiles with dashes,
upper-case e-mails with spaces, one customer entered three times (有限责任公司 vs
有限公司, the city in brackets, a lower-case credit code), a credit code with a
wrong check character, a ¥-formatted amount; OA forms pointing at the
duplicate customer, at an unknown one and at none.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bridge.hub.schema import audit_log, migration_run
from bridge.migration import dedupe
from sandbox.common.world import uscc_check_char

OWNER = "70000001"


def valid_uscc(n: int) -> str:
    first17 = f"91110105{n:09d}"[:17]
    return first17 + uscc_check_char(first17)


def bad_check_digit(code: str) -> str:
    return code[:-1] + ("1" if code[-1] != "1" else "2")


@pytest.fixture
def dirty(mig: Any) -> dict[str, Any]:
    mig.empty()
    users = mig.sims.oa.admin("GET", "/_sim/users")["users"]
    applicant = next(u["user_id"] for u in users if str(u.get("department_id", "")).startswith("od-sales"))
    code = valid_uscc(42)
    ids: dict[str, Any] = {"applicant": applicant, "uscc": code}
    base = {
        "lifecyclestage": "customer",
        "industry": "软件",
        "city": "北京",
        "phone": "010-62345678",
        "hubspot_owner_id": OWNER,
    }
    ids["kept"] = mig.create("companies", {**base, "name": "北京星辰科技有限公司", "uscc": code})
    ids["by_name"] = mig.create("companies", {**base, "name": " 星辰科技（北京）有限责任公司 ", "uscc": ""})
    ids["by_code"] = mig.create(
        "companies",
        {**base, "name": "北京星辰科技有限责任公司", "uscc": f"{code[:9].lower()} {code[9:].lower()}"},
    )
    ids["bad_code"] = mig.create(
        "companies", {**base, "name": "上海宏达贸易有限公司", "uscc": bad_check_digit(valid_uscc(43))}
    )
    contact = {
        "lastname": "张",
        "firstname": "伟",
        "jobtitle": "采购经理",
        "associatedcompanyid": ids["kept"],
        "hubspot_owner_id": OWNER,
        "email": "zhang.wei@example.cn",
        "mobilephone": "13800000001",
    }
    link = {"companies": [ids["kept"]]}
    ids["full_width"] = mig.create("contacts", {**contact, "mobilephone": "１３８１２３４５６７８"}, link)
    ids["plus86"] = mig.create("contacts", {**contact, "mobilephone": "+86 139-1234-5678"}, link)
    ids["upper_email"] = mig.create("contacts", {**contact, "email": "  LI.NA@EXAMPLE.COM "}, link)
    ids["bad_mobile"] = mig.create("contacts", {**contact, "mobilephone": "1381234"}, link)
    ids["deal"] = mig.create(
        "deals",
        {
            "dealname": "星辰科技数据平台项目",
            "dealstage": "contractsent",
            "amount": "¥1,200,000",
            "pipeline": "default",
            "closedate": "2026-12-31T00:00:00.000Z",
            "hubspot_owner_id": OWNER,
        },
        link,
    )
    day = "2026-10-08T00:00:00+08:00"
    ids["project"] = mig.submit(
        "project_initiation",
        applicant,
        {
            "project_name": "星辰科技数据平台项目",
            "deal_id": ids["deal"],
            "customer_id": ids["kept"],
            "customer_name": "北京星辰科技有限公司",
            "customer_uscc": code,
            "contract_amount": 1200000,
            "close_date": day,
            "project_stage": "立项",
            "contact_name": "张伟",
            "contact_mobile": "13812345678",
        },
    )
    expense = {
        "reason": "客户拜访交通费",
        "expense_type": "交通",
        "amount": 320.5,
        "expense_date": day,
        "project_no": "",
    }
    ids["expense_dup"] = mig.submit("expense_claim", applicant, {**expense, "customer_id": ids["by_name"]})
    ids["expense_unknown"] = mig.submit("expense_claim", applicant, {**expense, "customer_id": "39999999999"})
    ids["expense_none"] = mig.submit("expense_claim", applicant, {**expense, "customer_id": ""})
    return ids


def test_every_cleaning_rule_dedupe_and_links_end_to_end(mig: Any, dirty: dict[str, Any]) -> None:
    result = mig.run("manual__cleaning", chunk_size=100)
    assert result["status"] == "success"

    # cleaning: full-width and +86 mobiles, upper-case e-mail with spaces, ¥ amount
    snap = mig.snapshot("crm", "contact", dirty["full_width"])
    assert snap.payload["mobile"] == "13812345678"
    assert mig.snapshot("crm", "contact", dirty["plus86"]).payload["mobile"] == "13912345678"
    assert mig.snapshot("crm", "contact", dirty["upper_email"]).payload["email"] == "li.na@example.com"
    assert mig.snapshot("crm", "deal", dirty["deal"]).payload["contract_amount"] == "1200000.00"
    assert (
        mig.snapshot("crm", "company", dirty["by_name"]).payload["name"] == "星辰科技（北京）有限责任公司"
    )  # trimmed

    # validation gate: bad check character and bad mobile are quarantined with the expectation named, not loaded
    for entity, record, check in (
        ("company", "bad_code", "company.uscc.format"),
        ("contact", "bad_mobile", "contact.mobile.format"),
    ):
        assert mig.snapshot("crm", entity, dirty[record]) is None
        entry = mig.open_entry(entity, dirty[record])
        assert entry is not None
        assert entry.reason_code == "expectation_failed"
        assert check in entry.message
        assert entry.content_hash
    bad = mig.open_entry("contact", dirty["bad_mobile"])
    assert "1381234" not in bad.message  # a masked field's value is never quoted
    assert bad.payload["_invalid"]["mobile"] != "1381234"  # the offending value is kept masked
    assert "请" in bad.message

    # de-duplication: both variants merged into the record created first, nothing dropped
    merges = {m["merged_id"]: m for m in mig.merges()}
    assert set(merges) == {dirty["by_name"], dirty["by_code"]}
    assert merges[dirty["by_name"]]["kept_id"] == dirty["kept"]
    assert merges[dirty["by_name"]]["rule"] == dedupe.NAME_USCC
    assert merges[dirty["by_code"]]["rule"] == dedupe.EXACT_KEY
    assert merges[dirty["by_code"]]["detail"]["merged_name"] == "北京星辰科技有限责任公司"
    assert merges[dirty["by_code"]]["detail"]["kept_uscc"] == dirty["uscc"]
    for merged in (dirty["by_name"], dirty["by_code"]):
        snap = mig.snapshot("crm", "company", merged)
        assert snap is not None
        assert snap.archived
        assert snap.payload["_merged_into"] == dirty["kept"]
    assert not mig.snapshot("crm", "company", dirty["kept"]).archived

    # links: 立项申请 → deal; an expense of the duplicate → the kept customer; unknown/missing → quarantine
    [project] = [lk for lk in mig.links("deal_project") if lk.oa_id == dirty["project"]]
    assert project.crm_id == dirty["deal"]
    assert project.state["source"] == "migration"
    assert project.state["writeback"] == "done"
    [expense] = [lk for lk in mig.links("company_customer") if lk.oa_id == dirty["expense_dup"]]
    assert expense.crm_id == dirty["kept"]
    assert expense.state["merged_from"] == dirty["by_name"]
    for key in ("expense_unknown", "expense_none"):
        entry = mig.open_entry("expense_claim", dirty[key])
        assert entry.reason_code == "missing_customer_link"
        assert dirty["applicant"] in entry.message
        assert mig.snapshot("oa", "expense_claim", dirty[key]) is None

    # write-back: the deal carries its 立项申请 in the CRM, audited
    props = mig.crm_properties("deals", dirty["deal"])
    instance = mig.sims.oa.admin("GET", f"/_sim/instances/{dirty['project']}")
    assert props["oa_instance_code"] == dirty["project"]
    assert props["oa_project_no"] == instance["serial_number"]
    assert props["oa_approval_status"] == "PENDING"
    assert props["oa_project_stage"] == "initiated"  # contractsent → 合同签订 → 立项
    with mig.hub.connect() as conn:
        audits = conn.execute(
            select(audit_log).where(audit_log.c.operation == "update", audit_log.c.entity == "deal")
        ).all()
        run = conn.execute(select(migration_run)).one()
    assert [a.record_ids["deal_id"] for a in audits] == [dirty["deal"]]
    assert "oa_instance_code" in audits[0].fields

    # the report: counts per rule, files recorded for the UI relative to the data folder
    counts = result["counts"]
    assert counts["merged"] == 2
    assert counts["written_back"] == 1
    assert run.report_html == "migration/manual__cleaning/report.html"
    assert (mig.data_dir / run.report_csv).read_text(encoding="utf-8-sig").count("客户合并") == 2
    html = (mig.data_dir / run.report_html).read_text(encoding="utf-8")
    assert "手机" in html
    assert "邮箱" in html
    assert "contact.mobile.format" in html
    assert dirty["uscc"] not in html  # credit codes are masked in the report

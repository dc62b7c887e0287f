"""CRM → OA against the simulators: deal → 立项申请 → write-back, debounce, no echo, reruns, notices."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.sync.sync_c2o_world import C2O, OWNER

from bridge.hub import store
from bridge.sync import crm_to_oa


def test_deal_reaching_contract_becomes_one_project_initiation_with_write_back(c2o: C2O) -> None:
    company, _contact = c2o.customer()
    deal = c2o.create_deal(company, stage="decisionmakerboughtin", amount="120000.00")
    extracted, loaded = c2o.sync()
    assert extracted.counts["enqueued"] == 1
    assert loaded.counts["instances_created"] == 0, "a deal in negotiation is not a project yet"
    assert c2o.pending() == []

    c2o.edit("deals", deal, {"dealstage": "contractsent"})
    c2o.tick(5)
    _, loaded = c2o.sync()
    assert loaded.counts["instances_created"] == 1
    assert loaded.counts["writebacks"] == 1

    [instance] = c2o.instances_of(deal)
    assert instance["user_id"] == c2o.oa_user("peng.01@example.com"), "applicant = the deal owner's OA user"
    widgets = instance["widgets"]
    company_props = c2o.crm_object("companies", company)
    assert widgets["project_name"] == c2o.crm_object("deals", deal)["dealname"]
    assert widgets["customer_id"] == company
    assert widgets["customer_name"] == company_props["name"]
    assert Decimal(str(widgets["contract_amount"])) == Decimal("120000.00")
    assert widgets["project_stage"] == "立项", "value map project_stage from deal stage contract"
    # Audience sales_manager: USCC masked (id_number), contact mobile in clear.
    uscc = company_props["uscc"]
    assert widgets["customer_uscc"] == uscc[:4] + "*" * 10 + uscc[-4:]
    assert widgets["contact_mobile"] == "13812345678"
    assert widgets["contact_name"] == "张伟"

    props = c2o.crm_object("deals", deal)
    assert props["oa_instance_code"] == instance["instance_code"]
    assert props["oa_project_no"] == instance["serial_number"]
    assert props["oa_approval_status"] == "PENDING"
    assert props["oa_project_stage"] == "initiated"

    link = c2o.project_link(deal)
    assert link is not None
    assert link.oa_id == instance["instance_code"]
    assert link.state is not None
    assert link.state["writeback"] == "done"
    assert link.state["amount_sent"] == "120000.00"
    assert link.dictionary_version == c2o.d.version
    creates = [a for a in c2o.audit("create_instance") if a["record_ids"].get("deal_id") == deal]
    assert len(creates) == 1
    assert "contract_amount" in creates[0]["fields"]
    assert "120000" not in str(creates[0]), "the audit holds field names, never values"
    updates = [a for a in c2o.audit("update") if a["record_ids"].get("deal_id") == deal]
    assert [u["outcome"] for u in updates] == ["ok"]
    assert set(updates[0]["fields"]) >= {"oa_instance_code", "project_no", "approval_status", "project_stage"}

    # The write-back moved hs_lastmodifieddate: the next extract reads the deal again, no echo.
    c2o.tick(60)
    extracted, loaded = c2o.sync()
    assert extracted.counts["read_deal"] >= 1
    assert extracted.counts.get("enqueued", 0) == 0
    assert loaded.counts.get("due", 0) == 0
    assert len(c2o.instances_of(deal)) == 1


def test_twelve_edits_inside_the_window_give_one_write_with_the_latest_state(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="100000.00")
    for n in range(12):
        c2o.edit("deals", deal, {"amount": f"{100001 + n}.00"})
        c2o.extract()
        c2o.tick(9)  # 12 edits in 108 s: always quiet for less than 60 s, first seen < 150 s ago
        assert c2o.load().counts.get("instances_created", 0) == 0
    [pending] = c2o.pending()
    assert pending.changes == 12
    c2o.tick(60)
    loaded = c2o.load()
    assert loaded.counts["instances_created"] == 1
    [instance] = c2o.instances_of(deal)
    assert Decimal(str(instance["widgets"]["contract_amount"])) == Decimal("100012.00"), "the latest state"
    assert c2o.instances("contract_amount_notice") == []


def test_max_delay_sends_a_record_that_never_goes_quiet(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="100000.00")
    sent_at = None
    for n in range(8):
        c2o.edit("deals", deal, {"amount": f"{200000 + n}.00"})
        c2o.extract()
        if c2o.load().counts.get("instances_created", 0):
            sent_at = n
            break
        c2o.tick(30)
    assert sent_at == 5, "edited every 30 s, never quiet for 60 s: sent 150 s (max_delay) after first seen"
    [instance] = c2o.instances_of(deal)
    assert Decimal(str(instance["widgets"]["contract_amount"])) == Decimal("200005.00")


def test_notes_only_edits_write_nothing(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent")
    c2o.sync()
    assert len(c2o.instances_of(deal)) == 1
    c2o.edit("deals", deal, [{"description": f"跟进记录 {n}"} for n in range(12)], times=12)
    c2o.edit("companies", company, {"description": "客户备注"})
    c2o.tick(5)
    extracted, loaded = c2o.sync()
    assert extracted.counts["read_deal"] >= 1
    assert extracted.counts.get("enqueued", 0) == 0
    assert loaded.counts.get("written", 0) == 0
    assert len(c2o.instances_of(deal)) == 1
    assert c2o.instances("contract_amount_notice") == []


def test_rerun_and_clear_change_nothing_in_the_oa(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deals = [c2o.create_deal(company, stage="contractsent", amount=f"{300000 + n}.00") for n in range(3)]
    c2o.sync()
    before = {i["instance_code"]: i["widgets"] for i in c2o.instances()}
    assert len(before) == 3
    audit_before = len(c2o.audit())
    # A rerun of the same minute (a cleared task) and a later run: nothing new anywhere.
    for _ in range(2):
        extracted, loaded = c2o.sync()
        assert loaded.counts.get("written", 0) == 0
    # Clearing the hub's watermark forces a full re-read: still nothing new.
    with c2o.hub.begin() as conn:
        store.set_watermark(conn, "crm.deal", 0, "test", force=True)
    extracted, loaded = c2o.sync()
    assert extracted.counts["read_deal"] >= 3
    assert loaded.counts.get("written", 0) == 0
    assert {i["instance_code"]: i["widgets"] for i in c2o.instances()} == before
    assert len(c2o.audit("create_instance")) == 3
    assert len(c2o.audit()) == audit_before
    for deal in deals:
        assert c2o.crm_object("deals", deal)["oa_instance_code"]


def test_amount_change_on_a_linked_deal_sends_one_finance_notice_per_change(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="500000.00")
    c2o.sync()
    [project] = c2o.instances_of(deal)
    c2o.edit("deals", deal, {"amount": "550000.00"})
    c2o.tick(5)
    _, loaded = c2o.sync()
    assert loaded.counts["notices_sent"] == 1
    [notice] = c2o.instances("contract_amount_notice")
    widgets = notice["widgets"]
    assert Decimal(str(widgets["old_amount"])) == Decimal("500000.00")
    assert Decimal(str(widgets["new_amount"])) == Decimal("550000.00")
    assert widgets["deal_id"] == deal
    assert widgets["project_no"] == project["serial_number"]
    assert widgets["changed_at"].startswith(c2o.now.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat())
    assert notice["user_id"] == c2o.oa_user("finance-bot@example.com"), "notices are filed by the finance bot"
    # A → B → A → B: three notices (each change is news to finance), never a duplicate.
    for value in ("500000.00", "550000.00"):
        c2o.edit("deals", deal, {"amount": value})
        c2o.tick(5)
        c2o.sync()
    notices = c2o.instances("contract_amount_notice")
    assert [(Decimal(str(n["widgets"]["old_amount"])), Decimal(str(n["widgets"]["new_amount"]))) for n in
            sorted(notices, key=lambda n: int(n["start_time"]))] == [
        (Decimal("500000.00"), Decimal("550000.00")),
        (Decimal("550000.00"), Decimal("500000.00")),
        (Decimal("500000.00"), Decimal("550000.00")),
    ]
    assert len(c2o.instances_of(deal)) == 1, "still one 立项申请"
    link = c2o.project_link(deal)
    assert link is not None
    assert link.state is not None
    assert link.state["notices"] == 3
    assert link.state["amount_sent"] == "550000.00"


def test_customer_data_on_new_forms_is_the_current_one(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="decisionmakerboughtin")
    c2o.sync()
    c2o.edit("companies", company, {"name": "改名后的客户科技有限公司"})
    c2o.edit("deals", deal, {"dealstage": "closedwon"})
    c2o.tick(5)
    c2o.sync()
    [instance] = c2o.instances_of(deal)
    assert instance["widgets"]["customer_name"] == "改名后的客户科技有限公司"
    assert instance["widgets"]["project_stage"] == "执行", "won → 执行"
    assert c2o.crm_object("deals", deal)["oa_project_stage"] == "executing"


def test_run_summary_is_stored_with_counts_and_api_calls(c2o: C2O) -> None:
    company, _ = c2o.customer()
    c2o.create_deal(company, stage="contractsent")
    result = crm_to_oa.run_cycle(c2o.crm, c2o.oa, c2o.hub, c2o.ctx(), c2o.cfg, c2o.now,
                                 load_at=c2o.tick(61), dictionary=c2o.d, policy=c2o.p)
    assert result["status"] == "success"
    assert set(result["updated"]) == {"project_initiation", "deal"}
    with c2o.hub.connect() as conn:
        [summary] = store.recent_runs(conn, kind=crm_to_oa.KIND, limit=1)
    assert summary.status == "success"
    assert summary.counts["instances_created"] == 1
    assert summary.counts["read"] >= 3
    assert summary.counts["api_calls"] > 0
    assert "POST /open-apis/approval/v4/instances" in summary.counts["api_calls_by_endpoint"]["oa"]
    assert summary.watermarks is not None
    assert set(summary.watermarks) == {"crm.company", "crm.contact", "crm.deal"}
    assert OWNER not in str(summary.counts)

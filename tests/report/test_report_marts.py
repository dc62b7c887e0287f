"""Every table of the report against an independent computation on the same staged data.

The oracle below reads the snapshots with ``store.iter_snapshots`` (not the
report's loader), works on the canonical records as plain Python values
(ISO date strings, ``Decimal`` amounts, loops) and hard-codes the periods of
2026-11-26's report, so a mistake in the marts, the loader or the periods
cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bridge.hub import store
from bridge.staging import canonical

SH = ZoneInfo("Asia/Shanghai")
DAY = ("2026-11-25", "2026-11-25")
DAY_PREV = ("2026-11-24", "2026-11-24")
MTD = ("2026-11-01", "2026-11-25")
MTD_PREV = ("2026-10-01", "2026-10-25")
YTD = ("2026-01-01", "2026-11-25")
YTD_PREV = ("2025-01-01", "2025-11-25")
WON = {"won", "delivered"}
OPEN = ["lead", "qualified", "proposal", "negotiation", "contract"]


def cents(value: Any) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def local_day(iso: str | None) -> str | None:
    if iso is None:
        return None
    return datetime.fromisoformat(iso).astimezone(SH).date().isoformat()


def inside(day: str | None, span: tuple[str, str]) -> bool:
    return day is not None and span[0] <= day <= span[1]


@pytest.fixture(scope="module")
def raw(report_hub):  # type: ignore[no-untyped-def]
    out: dict[str, list[dict[str, Any]]] = {}
    with report_hub.engine.connect() as conn:
        for system, entity in (("crm", "deal"), ("crm", "company"), ("oa", "project_initiation"),
                               ("oa", "expense_claim"), ("oa", "travel_request"), ("oa", "visit_plan"),
                               ("oa", "contract_amount_notice")):
            out[entity] = [canonical(s.payload) for batch in store.iter_snapshots(conn, entity, system=system)
                           for s in batch]
        out["links"] = [{"crm_id": link.crm_id, "oa_id": link.oa_id, "updated_at": link.updated_at}
                        for link in store.links(conn, "deal_project")]
    return out


@pytest.fixture(scope="module")
def owner_name(report_hub):  # type: ignore[no-untyped-def]
    return {o["id"]: o["lastName"] + o["firstName"] for o in report_hub.owners}


@pytest.fixture(scope="module")
def customer_name(raw):  # type: ignore[no-untyped-def]
    return {c["crm_id"]: c["name"] for c in raw["company"] if c["name"]}


def rows(built_report, key: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return built_report.marts.table(key).records()


def test_world_gives_every_table_something_to_count(raw, built_report) -> None:  # type: ignore[no-untyped-def]
    assert len(raw["deal"]) > 3000
    assert len(raw["expense_claim"]) > 500
    won_day = [d for d in raw["deal"] if d["stage"] in WON and d["close_date"] == DAY[1]]
    assert len(won_day) >= 3, "the fixture must have deals won on the report's last day"
    for key in ("won_deals", "new_deals", "pipeline_stage", "pipeline_owner", "contracts_approval",
                "contracts_open", "approval_cycle", "expense_customer", "visits_customer", "top_customers",
                "sync_status", "sync_writes", "quarantine_backlog", "health_scores"):
        assert len(built_report.marts.table(key).frame) > 0, key


def test_new_and_won_deals_per_period(raw, built_report) -> None:  # type: ignore[no-untyped-def]
    def figures(span: tuple[str, str]) -> tuple[int, Decimal, int, Decimal]:
        new = [d for d in raw["deal"] if inside(local_day(d["created_at"]), span)]
        won = [d for d in raw["deal"] if d["stage"] in WON and inside(d["close_date"], span)]
        return (len(new), sum((cents(d["contract_amount"]) for d in new), Decimal(0)),
                len(won), sum((cents(d["contract_amount"]) for d in won), Decimal(0)))

    new_rows, won_rows = rows(built_report, "new_deals"), rows(built_report, "won_deals")
    for i, (cur, prev) in enumerate([(DAY, DAY_PREV), (MTD, MTD_PREV), (YTD, YTD_PREV)]):
        nc, na, wc, wa = figures(cur)
        pnc, pna, pwc, pwa = figures(prev)
        assert (new_rows[i]["count"], Decimal(str(new_rows[i]["amount"]))) == (nc, na)
        assert (new_rows[i]["prev_count"], Decimal(str(new_rows[i]["prev_amount"]))) == (pnc, pna)
        assert (won_rows[i]["count"], Decimal(str(won_rows[i]["amount"]))) == (wc, wa)
        assert (won_rows[i]["prev_count"], Decimal(str(won_rows[i]["prev_amount"]))) == (pwc, pwa)
        if pwa:
            assert won_rows[i]["amount_change"] == pytest.approx(float((wa - pwa) / pwa))
        else:
            assert won_rows[i]["amount_change"] is None
    assert built_report.figures["won_amount_day"] == float(figures(DAY)[3])
    assert new_rows[0]["period"] == "昨日（11月25日）"
    assert new_rows[0]["compare"] == "前日（11月24日）"


def test_pipeline_by_stage_and_owner(raw, built_report, owner_name) -> None:  # type: ignore[no-untyped-def]
    by_stage: dict[str, list[Decimal]] = defaultdict(list)
    for d in raw["deal"]:
        by_stage[d["stage"] or ""].append(cents(d["contract_amount"]))
    got = {r["stage"]: (r["deals"], Decimal(str(r["amount"]))) for r in rows(built_report, "pipeline_stage")}
    labels = {"lead": "初步接洽", "qualified": "需求确认", "proposal": "方案报价", "negotiation": "商务谈判",
              "contract": "合同签订", "won": "赢单", "delivered": "交付完成", "lost": "输单", "": "（阶段无效）"}
    assert got == {labels[s]: (len(v), sum(v, Decimal(0))) for s, v in by_stage.items()}
    assert sum(n for n, _ in got.values()) == len(raw["deal"])

    expected: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: Counter[str] = Counter()
    for d in raw["deal"]:
        if d["stage"] in OPEN:
            name = owner_name.get(d["owner_id"]) or f"负责人 {d['owner_id']}" if d["owner_id"] else "（无负责人）"
            expected[name][d["stage"]] += cents(d["contract_amount"])
            counts[name] += 1
    table = rows(built_report, "pipeline_owner")
    assert {r["owner"] for r in table} == set(expected)
    for r in table:
        for s in OPEN:
            assert Decimal(str(r[f"stage_{s}"])) == expected[r["owner"]][s], (r["owner"], s)
        assert Decimal(str(r["open_amount"])) == sum(expected[r["owner"]].values(), Decimal(0))
        assert r["open_deals"] == counts[r["owner"]]
    assert [r["open_amount"] for r in table] == sorted((r["open_amount"] for r in table), reverse=True)


def _approval_state(raw: dict[str, list[dict[str, Any]]], deal: dict[str, Any]) -> str:
    status_of = {p["instance_code"]: p["approval_status"] for p in raw["project_initiation"]}
    links = sorted((link for link in raw["links"] if link["crm_id"] == deal["crm_id"]), key=lambda x: x["updated_at"])
    if links and status_of.get(links[-1]["oa_id"]):
        return str(status_of[links[-1]["oa_id"]])
    forms = sorted((p for p in raw["project_initiation"] if p["deal_id"] == deal["crm_id"]),
                   key=lambda p: datetime.fromisoformat(p["created_at"]))
    if forms and forms[-1]["approval_status"]:
        return str(forms[-1]["approval_status"])
    return deal["approval_status"] or "NONE"


def test_contracts_against_oa_approvals(raw, built_report, customer_name) -> None:  # type: ignore[no-untyped-def]
    won = [d for d in raw["deal"] if d["stage"] in WON and inside(d["close_date"], YTD)]
    states = {d["crm_id"]: _approval_state(raw, d) for d in won}
    labels = {"APPROVED": "已通过", "PENDING": "审批中", "REJECTED": "已拒绝", "CANCELED": "已撤回", "DELETED": "已删除",
              "NONE": "未发起立项"}
    got = {r["state"]: (r["deals"], Decimal(str(r["amount"]))) for r in rows(built_report, "contracts_approval")}
    for code, label in labels.items():
        part = [d for d in won if states[d["crm_id"]] == code]
        assert got[label] == (len(part), sum((cents(d["contract_amount"]) for d in part), Decimal(0))), label
    assert len({s for s in states.values()}) >= 3, "links, form deal ids and missing approvals are all exercised"
    linked = {link["crm_id"] for link in raw["links"]}
    assert linked & set(states), "some won deals are linked through xref"

    open_rows = rows(built_report, "contracts_open")
    not_approved = sorted((d for d in won if states[d["crm_id"]] != "APPROVED"),
                          key=lambda d: (-cents(d["contract_amount"]), d["crm_id"]))
    assert [r["crm_id"] for r in open_rows] == [d["crm_id"] for d in not_approved][: len(open_rows)]
    first = {d["crm_id"]: d for d in not_approved}
    for r in open_rows[:20]:
        d = first[r["crm_id"]]
        assert r["state"] == labels[states[d["crm_id"]]]
        assert r["customer"] == customer_name.get(d["company_id"], f"未知客户（{d['company_id']}）")
    names = {d["crm_id"]: d["deal_name"] for d in raw["deal"]}
    assert all(r["deal"] == names[r["crm_id"]] for r in open_rows)


def test_approval_cycle_times(raw, built_report) -> None:  # type: ignore[no-untyped-def]
    start, end = date(2026, 10, 27), date(2026, 11, 25)
    cutoff = datetime(2026, 11, 26, tzinfo=SH) - timedelta(days=3)
    got = {r["form"]: r for r in rows(built_report, "approval_cycle")}
    labels = {"project_initiation": "立项申请", "expense_claim": "费用报销", "travel_request": "差旅申请",
              "visit_plan": "客户拜访计划", "contract_amount_notice": "合同金额变更通知"}
    for entity, label in labels.items():
        hours = []
        for r in raw[entity]:
            if r.get("approval_status") in ("APPROVED", "REJECTED") and r.get("decided_at"):
                decided = datetime.fromisoformat(r["decided_at"])
                if start <= decided.astimezone(SH).date() <= end:
                    h = (decided - datetime.fromisoformat(r["created_at"])).total_seconds() / 3600
                    if h >= 0:
                        hours.append(h)
        row = got[label]
        assert row["decided"] == len(hours), label
        if hours:
            assert row["median_hours"] == round(statistics.median(hours), 1)
            assert row["p90_hours"] == round(float(np.percentile(hours, 90)), 1)
        pending = [r for r in raw[entity] if r["approval_status"] == "PENDING"]
        assert row["pending"] == len(pending)
        assert row["pending_old"] == sum(datetime.fromisoformat(r["created_at"]) < cutoff for r in pending)
    assert got["立项申请"]["decided"] > 0


def test_expenses_and_travel_by_customer_and_project(raw, built_report, customer_name) -> None:  # type: ignore[no-untyped-def]
    def totals(key: str) -> dict[str, dict[str, Any]]:
        acc: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(Decimal))
        for kind, entity, amount, when in (("expense", "expense_claim", "amount", "expense_date"),
                                           ("travel", "travel_request", "estimated_cost", "start_date")):
            for r in raw[entity]:
                if r["approval_status"] != "APPROVED":
                    continue
                k = r[key] or ""
                if inside(r[when], MTD):
                    acc[k][f"{kind}_mtd"] += cents(r[amount])
                if inside(r[when], YTD):
                    acc[k][f"{kind}_ytd"] += cents(r[amount])
                    acc[k]["claims"] += 1
        return {k: v for k, v in acc.items() if v["expense_ytd"] + v["travel_ytd"] or v["expense_mtd"] or v["travel_mtd"]}

    expected = totals("customer_id")
    table = rows(built_report, "expense_customer")
    assert len(table) == len(expected)
    by_name = {}
    for k, v in expected.items():
        name = "（未关联客户）" if not k else customer_name.get(k, f"未知客户（{k}）")
        by_name[name] = v
    for r in table:
        v = by_name[r["name"]]
        assert Decimal(str(r["expense_mtd"])) == v["expense_mtd"]
        assert Decimal(str(r["expense_ytd"])) == v["expense_ytd"]
        assert Decimal(str(r["travel_mtd"])) == v["travel_mtd"]
        assert Decimal(str(r["travel_ytd"])) == v["travel_ytd"]
        assert Decimal(str(r["total_ytd"])) == v["expense_ytd"] + v["travel_ytd"]
        assert r["claims_ytd"] == v["claims"]
    assert any(r["name"].startswith("未知客户") or r["name"] == "（未关联客户）" for r in table), \
        "instances without a valid customer link are shown, not dropped"

    projects = totals("project_no")
    ptable = rows(built_report, "expense_project")
    assert {r["name"] for r in ptable} == {k or "（未关联项目）" for k in projects}
    assert sum(Decimal(str(r["total_ytd"])) for r in ptable) == \
        sum((v["expense_ytd"] + v["travel_ytd"] for v in projects.values()), Decimal(0))


def test_visits_per_customer(raw, built_report, customer_name) -> None:  # type: ignore[no-untyped-def]
    acc: dict[str, dict[str, Any]] = defaultdict(lambda: {"mtd": 0, "ytd": 0, "last": ""})
    for r in raw["visit_plan"]:
        if r["approval_status"] in ("PENDING", "APPROVED") and r["visit_date"] and r["visit_date"] <= YTD[1]:
            a = acc[r["customer_id"] or ""]
            a["mtd"] += inside(r["visit_date"], MTD)
            a["ytd"] += inside(r["visit_date"], YTD)
            a["last"] = max(a["last"], r["visit_date"])
    expected = {("（未关联客户）" if not k else customer_name.get(k, f"未知客户（{k}）")): v
                for k, v in acc.items() if v["ytd"] > 0}
    table = rows(built_report, "visits_customer")
    assert {r["customer"]: (r["visits_mtd"], r["visits_ytd"], r["last_visit"].isoformat()) for r in table} == \
        {k: (v["mtd"], v["ytd"], v["last"]) for k, v in expected.items()}


def test_top_customers(raw, built_report, customer_name) -> None:  # type: ignore[no-untyped-def]
    cur: dict[str, Decimal] = defaultdict(Decimal)
    prev: dict[str, Decimal] = defaultdict(Decimal)
    n: Counter[str] = Counter()
    for d in raw["deal"]:
        if d["stage"] in WON:
            if inside(d["close_date"], YTD):
                cur[d["company_id"] or ""] += cents(d["contract_amount"])
                n[d["company_id"] or ""] += 1
            if inside(d["close_date"], YTD_PREV):
                prev[d["company_id"] or ""] += cents(d["contract_amount"])
    ranked = sorted((k for k, v in cur.items() if v > 0), key=lambda k: (-cur[k], k))[:10]
    table = rows(built_report, "top_customers")
    assert [r["customer"] for r in table] == [customer_name.get(k, f"未知客户（{k}）") for k in ranked]
    for r, k in zip(table, ranked, strict=True):
        assert Decimal(str(r["won_amount"])) == cur[k]
        assert r["won_deals"] == n[k]
        assert Decimal(str(r["prev_amount"])) == prev[k]


def test_sync_health_and_quarantine(built_report) -> None:  # type: ignore[no-untyped-def]
    status = {r["direction"]: r for r in rows(built_report, "sync_status")}
    assert (status["CRM → OA"]["runs"], status["CRM → OA"]["succeeded"], status["CRM → OA"]["failed"]) == (3, 2, 1)
    assert (status["OA → CRM"]["runs"], status["OA → CRM"]["succeeded"]) == (1, 1)
    assert status["CRM → OA"]["since_success"] == pytest.approx(3 * 60 - 1)  # finished 1 min after 3 h ago
    assert status["OA → CRM"]["since_success"] == pytest.approx(6 * 60 - 1)
    # Unsent changes: CRM → OA one due (25 min), one still in its debounce window; OA → CRM one for 400 min.
    assert (status["CRM → OA"]["unsent"], status["CRM → OA"]["due"], status["CRM → OA"]["oldest_unsent"]) == (2, 1, 25.0)
    assert (status["OA → CRM"]["unsent"], status["OA → CRM"]["due"], status["OA → CRM"]["oldest_unsent"]) == (1, 1, 400.0)
    # The lag is the larger of the two, never a watermark's age (crm.company is 576 minutes old: no edits).
    assert status["CRM → OA"]["lag"] == pytest.approx(3 * 60 - 1)
    assert status["OA → CRM"]["lag"] == 400.0
    assert built_report.figures["sync_lag_minutes_crm_to_oa"] == pytest.approx(3 * 60 - 1)
    streams = {r["stream"]: r for r in rows(built_report, "sync_watermarks")}
    assert "lag" not in streams["crm.company"]
    writes = {(r["direction"], r["code"]): r["total"] for r in rows(built_report, "sync_writes")}
    assert writes[("CRM → OA", "created")] == 6
    assert writes[("CRM → OA", "updated")] == 12
    assert writes[("CRM → OA", "read")] == 210, "the 3-day-old run is outside the 24 h window"
    assert writes[("OA → CRM", "created")] == 5
    backlog = {r["code"]: r["open"] for r in rows(built_report, "quarantine_backlog")}
    assert backlog == {"invalid_format": 2, "missing_customer_link": 1, "owner_not_in_oa": 1}
    assert built_report.figures["quarantine_open"] == 4


def test_health_scores_and_trend(built_report) -> None:  # type: ignore[no-untyped-def]
    table = {(r["scope_type"], r["scope"]): r for r in rows(built_report, "health_scores")}
    assert table[("总体", "全部数据")]["score"] == 80.0
    assert table[("数据对象", "商机")]["score"] == 70.0
    assert table[("数据对象", "商机")]["week_change"] == 1.0
    trend = built_report.marts.series["health_trend"]
    assert len(trend) == 31
    assert trend["day"].iloc[-1] == date(2026, 11, 26)
    # fixture: score of day (2026-11-26 − i) is 80 + i % 7
    for day, score in zip(trend["day"], trend["score"], strict=True):
        assert score == 80.0 + ((date(2026, 11, 26) - day).days % 7)
    assert built_report.figures["health_score"] == 80.0

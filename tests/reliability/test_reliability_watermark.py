"""Watermarks under ties, late arrivals, clock skew and records that move while the sync pages.

- Ties: 300 deals on one millisecond (the CRM clock frozen), pages of 50, a
  crash after the second page: the watermark stops at the tie and the rerun
  reads the rest; one 立项申请 each.
- Late arrivals: a deal committed with a modification time 90 s older than
  the watermark (the CRM clock set back) is read by the next run (lookback
  120 s). One committed 180 s late — beyond the lookback — is the documented
  limit: it is seen at its next change, and then sent.
- Clock skew ±2 min: the CRM and the OA clocks ahead of or behind the
  bridge's, and a CRM clock that jumps back 2 min between two runs.
- Inserts, edits and archives between pages of the CRM extract, and OA
  instances submitted and deleted between the OA listing and the reads.
The hook-level paging cases (edits, archives and inserts between search pages,
10,000-result cap, ties past a page) are ``tests/hooks/test_hooks_crm_paging.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.reliability.reliability_support import (
    Crash,
    CrashAt,
    c2o_cycle,
    c2o_setup,
    crm_objects,
    oa_instances,
    open_quarantine,
    per_deal,
    say,
    unstaged_below_watermark,
    watermark,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C

from bridge.sync import crm_to_oa


def _now_ms() -> int:
    return int(time.time() * 1000)


def _signed(w: C2O, company: str, n: int, tag: str) -> list[str]:
    return [w.create_deal(company, stage="contractsent", amount=f"{40_000 + k}.00", dealname=f"{tag}{k}")
            for k in range(n)]


def test_three_hundred_deals_on_one_millisecond_with_a_crash_between_pages(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    tie = _now_ms()
    w.sims.crm.admin("POST", "/_sim/clock", {"freeze_ms": tie})
    try:
        deals = _signed(w, work.companies[0], 300, "同一毫秒项目")
        stamps = {o["properties"]["hs_lastmodifieddate"] for o in crm_objects(w, "deals")}
        assert len(stamps) == 1, "every deal was written on the same millisecond"
        crash = CrashAt("extract_page_committed:deal", 2)
        try:
            w.tick(1)
            w.extract(checkpoint=crash)
        except Crash:
            pass
        assert crash.fired
        staged_before = watermark(w, "crm.deal")
        assert staged_before == tie, "the watermark stopped at the tie"
        assert unstaged_below_watermark(w) == {}
        c2o_cycle(w)
        c2o_cycle(w)
    finally:
        w.sims.crm.admin("POST", "/_sim/clock", {"freeze_ms": None})
    per = per_deal(oa_instances(w, "project_initiation"))
    assert per == Counter(deals), "one 立项申请 per deal across the tie"
    assert w.pending() == []
    say("watermark ties", {"deals_on_one_ms": 300, "page_size": 50, "crash": "after page 2"},
        {"instances": sum(per.values()), "lost": 0, "duplicates": 0, "watermark_after_crash": "= the tie"})


def test_a_late_commit_within_the_lookback_is_read_and_one_beyond_waits_for_its_next_change(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    early = _signed(w, work.companies[0], 5, "准时项目")
    c2o_cycle(w)
    mark = watermark(w, "crm.deal")
    assert mark is not None
    # A commit that lands with a modification time 90 s before the watermark (a slow transaction, a lagging
    # search index): the CRM clock is set back for it.
    w.sims.crm.admin("POST", "/_sim/clock", {"offset_ms": -90_000})
    [late] = _signed(w, work.companies[0], 1, "迟到项目")
    w.sims.crm.admin("POST", "/_sim/clock", {"offset_ms": -180_000})
    [too_late] = _signed(w, work.companies[0], 1, "太迟项目")
    w.sims.crm.admin("POST", "/_sim/clock", {"offset_ms": 0})
    behind = unstaged_below_watermark(w).get("deal", [])
    assert sorted(behind) == sorted([late, too_late]), "both really arrived behind the watermark"
    c2o_cycle(w)
    per = per_deal(oa_instances(w, "project_initiation"))
    assert per[late] == 1, "late by 90 s (< lookback 120 s): read by the next run"
    assert per[too_late] == 0, "late by 180 s (> lookback): not seen yet"
    w.edit("deals", too_late, {"amount": "41234.00"})  # its next change
    c2o_cycle(w)
    c2o_cycle(w)
    per = per_deal(oa_instances(w, "project_initiation"))
    assert per == Counter([*early, late, too_late])
    say("late arrivals", {"late_by_s": "90 (in lookback), 180 (beyond)", "lookback_s": 120},
        {"late_90s": "sent by the next run", "late_180s": "sent after its next change", "duplicates": 0})


def test_crm_clock_behind_ahead_and_jumping_back_two_minutes(c2o: C2O) -> None:
    w = c2o_world(c2o)
    work = c2o_setup(w, linked=0)
    sent: list[str] = []
    # Behind the bridge by 2 min, right, ahead by 2 min, then back to right: the last step is the CRM clock
    # jumping back 2 min between two runs (an NTP correction) — its writes carry times up to 120 s before
    # the watermark, exactly the lookback.
    for offset in (-120_000, 0, +120_000, 0):
        w.sims.crm.admin("POST", "/_sim/clock", {"offset_ms": offset})
        sent += _signed(w, work.companies[0], 20, f"时钟偏差{offset}项目")
        c2o_cycle(w)
        c2o_cycle(w)
    per = per_deal(oa_instances(w, "project_initiation"))
    assert per == Counter(sent), f"lost {[d for d in sent if not per[d]]}"
    assert w.pending() == []
    say("CRM clock skew ±2 min", {"crm_offsets_s": "-120, 0, +120, back to 0", "deals": len(sent)},
        {"instances": sum(per.values()), "lost": 0, "duplicates": 0})


def test_oa_clock_two_minutes_ahead_or_behind_delays_but_loses_nothing(o2c: O2C) -> None:
    company, _ = o2c.c2o.customer()
    expected: list[str] = []
    delays: dict[str, int] = {}
    for offset in (+120_000, -120_000):
        o2c.sims.oa.admin("POST", "/_sim/clock", {"offset_ms": offset})
        codes = [o2c.expense(company, amount=300 + n) for n in range(10)]
        for code in codes:
            o2c.act("approve", code)
        expected += codes
        # Runs every minute of the bridge's clock until every note is there (the OA stamps creation times
        # with its own clock; a run lists up to the bridge's now).
        start = datetime.now(UTC)
        for minute in range(5):
            at = start + timedelta(minutes=minute)
            o2c.discover(now=at)
            o2c.load(now=at + timedelta(milliseconds=1))
            notes = {n["properties"].get("oa_instance_code") for n in o2c.objects("notes")}
            if set(codes) <= notes:
                delays[f"{offset // 1000:+d}s"] = minute
                break
        else:
            raise AssertionError(f"OA clock {offset:+d} ms: notes missing after 5 runs")
    o2c.sims.oa.admin("POST", "/_sim/clock", {"offset_ms": 0})
    notes = Counter(n["properties"].get("oa_instance_code") for n in o2c.objects("notes"))
    assert notes == Counter(expected), "one note per approved expense"
    assert delays["-120s"] == 0, "an OA clock behind the bridge is covered by the listing lookback"
    assert delays["+120s"] <= 3, "an OA clock ahead delays by about the skew"
    say("OA clock skew ±2 min", {"oa_offsets_s": "+120, -120", "expenses": len(expected)},
        {"notes": sum(notes.values()), "lost": 0, "duplicates": 0,
         "runs_of_delay": delays})


def test_inserts_edits_and_archives_between_extract_pages(c2o: C2O) -> None:
    w = c2o_world(c2o)
    # 20 a page: when the first page is committed the read-ahead has fetched at most three more pages
    # (deals up to #80), so the deals archived at #150–#159 are truly not read yet
    w.cfg = crm_to_oa.with_overrides(w.cfg, page_size=20)
    work = c2o_setup(w, linked=0)
    deals = _signed(w, work.companies[0], 200, "翻页中项目")
    changed: dict[str, Any] = {"inserted": [], "archived_unread": [], "archived_read": [], "edited": []}

    def people_act(step: str) -> None:
        if step != "extract_page_committed:deal" or changed["inserted"]:
            return
        # After the first page (20 deals read, at most 80 fetched): new deals, edits and archives on both
        # sides of the cursor.
        changed["inserted"] = _signed(w, work.companies[1], 20, "翻页中新项目")
        changed["archived_unread"] = deals[150:160]
        changed["archived_read"] = deals[0:5]
        changed["edited"] = deals[100:110]
        w.crm_act("/_sim/act/archive", {"object_type": "deals", "ids": [int(d) for d in
                                                                        changed["archived_unread"]
                                                                        + changed["archived_read"]]})
        for n, deal in enumerate(changed["edited"]):
            w.edit("deals", deal, {"amount": f"{90_000 + n}.00"})

    w.tick(1)
    w.extract(checkpoint=people_act)
    w.tick(61)
    w.load()
    c2o_cycle(w)
    c2o_cycle(w)
    projects = oa_instances(w, "project_initiation")
    per = per_deal(projects)
    live = {str(o["id"]) for o in crm_objects(w, "deals")}
    assert all(per[d] == 1 for d in live), "every live signed deal: one 立项申请"
    assert all(per[d] == 0 for d in changed["archived_unread"]), "archived before it was read: nothing sent"
    assert all(per[d] <= 1 for d in changed["archived_read"])
    amounts = {str(i["widgets"]["deal_id"]): i["widgets"]["contract_amount"] for i in projects}
    assert all(amounts[d] == 90_000 + n for n, d in enumerate(changed["edited"])), "the edit mid-extract was sent"
    held = {q["source_id"]: q["reason_code"] for q in open_quarantine(w)}
    sent_then_gone = [d for d in changed["archived_read"] if per[d]]
    assert held == dict.fromkeys(sent_then_gone, "vendor_rejected"), "the write-back to a deleted deal waits"
    say("inserts/edits/archives between pages", {"deals": 200, "inserted": 20, "edited": 10,
                                                 "archived_unread": 10, "archived_read": 5},
        {"instances": len(projects), "lost": 0, "duplicates": 0, "edits_sent_latest": 10,
         "archived_read_sent_then_writeback_quarantined": len(sent_then_gone)})


def test_instances_submitted_and_deleted_between_the_oa_listing_and_the_reads(o2c: O2C) -> None:
    company, _ = o2c.c2o.customer()
    first = [o2c.expense(company, amount=500 + n) for n in range(30)]
    for code in first:
        o2c.act("approve", code)
    added: list[str] = []
    deleted = first[:5]

    def people_act(step: str) -> None:
        if step == "discovered" and not added:
            for code in deleted:
                o2c.act("delete", code)
            for n in range(10):
                code = o2c.expense(company, amount=700 + n)
                o2c.act("approve", code)
                added.append(code)

    o2c.discover(checkpoint=people_act)
    o2c.load()
    o2c.sync()
    o2c.sync()
    notes = Counter(n["properties"].get("oa_instance_code") for n in o2c.objects("notes"))
    assert notes == Counter(first[5:] + added), "deleted before read: no note; submitted meanwhile: one note"
    assert o2c.pending() == []
    say("OA inserts/deletes between listing and reads", {"instances": 30, "deleted": 5, "inserted": 10},
        {"notes": sum(notes.values()), "lost": 0, "duplicates": 0})



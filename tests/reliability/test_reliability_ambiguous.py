"""Ambiguous writes × 100: the server commits, the answer is lost (``drop_after``) → exactly one record each.

Three kinds of writes the bridge repeats after a lost answer:
- Feishu creates (立项申请): resent with the same ``uuid``; Feishu answers 60012 and the
  hook reads the instance back by uuid;
- HubSpot upserts of notes and meetings by the unique ``oa_instance_code``;
- HubSpot batch updates of deals (the CRM → OA write-back and the OA → CRM status).

Each write is its own request here (batch size 1) so the 100 drops hit 100
requests. A drop on a first send is a real ambiguous write (the server
committed); a drop on a resend hit an answer that was already committed —
both are counted and printed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.reliability.reliability_support import (
    Recorder,
    c2o_cycle,
    c2o_setup,
    crm_objects,
    fired_rules,
    oa_instances,
    open_quarantine,
    per_deal,
    say,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.reliability.test_reliability_faults import POLICY
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C

from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.sync import crm_to_oa, oa_to_crm

DROPS = 100


def _quick_retries(w: C2O) -> None:
    """The hooks' retries with short waits (the waits themselves are checked in the faults suite)."""
    w.crm.close()
    w.oa.close()
    w.crm, w.oa = CrmHook(retry_policy=POLICY), OaHook(retry_policy=POLICY)


def _drop(sim: Any, path: str, seed: int, method: str = "POST") -> None:
    sim.admin("POST", "/_sim/faults", {"kind": "drop_after", "path": path, "method": method, "rate": 0.6,
                                       "count": DROPS, "seed": seed})


def _fired(sim: Any) -> dict[str, int]:
    return {r["path"]: int(r["fired"]) for r in fired_rules(sim)}


def _first_send_drops(recorder: Recorder, template_end: str) -> int:
    """Calls whose first send was dropped after the server handled it (a committed, unanswered write)."""
    return sum(1 for call in recorder.calls()
               if call[0].template.endswith(template_end) and call[0].error == "TransportError")


def _until_settled(run: Any, pending: Any, rounds: int = 12) -> int:
    """Run until nothing is queued (a call that exhausted its retries defers the rest: next run)."""
    for n in range(1, rounds + 1):
        try:
            run()
        except (crm_to_oa.SyncIncomplete, oa_to_crm.SyncIncomplete):
            continue
        if not pending():
            return n
    raise AssertionError(f"still {len(pending())} change(s) queued after {rounds} runs")


def test_lost_answers_of_oa_creates_and_crm_writebacks_leave_exactly_one_of_each(c2o: C2O) -> None:
    w = c2o_world(c2o)
    w.cfg = crm_to_oa.with_overrides(w.cfg, create_chunk=10, writeback_batch=1)
    work = c2o_setup(w, linked=0)
    deals = [w.create_deal(work.companies[n % len(work.companies)], stage="contractsent", amount=f"{50_000 + n}.00",
                           dealname=f"含糊写入项目{n}") for n in range(DROPS)]
    _quick_retries(w)
    recorder = Recorder()
    recorder.watch(w.crm, "crm")
    recorder.watch(w.oa, "oa")
    _drop(w.sims.oa, "^/open-apis/approval/v4/instances$", seed=11)
    _drop(w.sims.crm, "^/crm/v3/objects/deals/batch/update$", seed=12)
    runs = _until_settled(lambda: c2o_cycle(w), w.pending)
    c2o_cycle(w)  # a settling run
    fired = {**_fired(w.sims.oa), **_fired(w.sims.crm)}
    assert fired == {"^/open-apis/approval/v4/instances$": DROPS, "^/crm/v3/objects/deals/batch/update$": DROPS}
    projects = oa_instances(w, "project_initiation")
    assert per_deal(projects) == Counter(deals), "exactly one 立项申请 per deal"
    created = w.sims.oa.admin("GET", "/_sim/stats")
    assert isinstance(created, dict)
    assert created["instances_created"]["api_total"] == DROPS, "the OA created one instance per deal, no more"
    codes = {str(i["widgets"]["deal_id"]): i["instance_code"] for i in projects}
    props = {str(o["id"]): o["properties"] for o in crm_objects(w, "deals")}
    assert all(props[d]["oa_instance_code"] == codes[d] for d in deals), "every write-back landed"
    assert open_quarantine(w) == []
    oa_committed = _first_send_drops(recorder, "/approval/v4/instances")
    crm_committed = _first_send_drops(recorder, "/batch/update")
    assert oa_committed >= DROPS // 3, "many first sends were committed and unanswered"
    assert crm_committed >= DROPS // 3
    say("ambiguous writes: OA creates + CRM write-backs",
        {"drop_after_oa_create": fired["^/open-apis/approval/v4/instances$"],
         "drop_after_crm_update": fired["^/crm/v3/objects/deals/batch/update$"]},
        {"deals": len(deals), "instances": len(projects), "duplicates": len(projects) - len(set(codes.values())),
         "lost": len(deals) - len(codes), "committed_unanswered_creates": oa_committed,
         "committed_unanswered_updates": crm_committed, "runs": runs})


def test_lost_answers_of_note_and_meeting_upserts_leave_exactly_one_per_instance(o2c: O2C) -> None:
    # One write per request; a call that exhausts its retries defers the rest, due again at once.
    o2c.cfg = oa_to_crm.with_overrides(o2c.cfg, write_batch=1, retry_delay_seconds=0)
    company, _ = o2c.c2o.customer()
    expenses = []
    for n in range(70):
        code = o2c.expense(company, amount=200 + n)
        o2c.act("approve", code)
        expenses.append(code)
    visits = [o2c.visit(company) for _ in range(30)]
    _quick_retries(o2c.c2o)
    recorder = Recorder()
    recorder.watch(o2c.c2o.crm, "crm")
    _drop(o2c.sims.crm, "/batch/upsert$", seed=21)
    _drop(o2c.sims.crm, "/batch/associate/default$", seed=22)
    runs = _until_settled(lambda: o2c.sync(), o2c.pending)
    before = o2c.crm_writes()
    assert o2c.sync().get("written", 0) == 0
    assert o2c.crm_writes() == before, "a settled run writes nothing"
    fired = _fired(o2c.sims.crm)
    assert fired["/batch/upsert$"] == DROPS
    notes = Counter(n["properties"].get("oa_instance_code") for n in o2c.objects("notes"))
    meetings = Counter(m["properties"].get("oa_instance_code") for m in o2c.objects("meetings"))
    assert notes == Counter(expenses), "exactly one note per approved expense"
    assert meetings == Counter(visits), "exactly one meeting per visit plan"
    ids = [str(n["id"]) for n in o2c.objects("notes")]
    linked = o2c.c2o.crm.read_associations("notes", "companies", ids)
    assert all(linked.get(i) == [company] for i in ids), "every note on its customer once"
    committed = _first_send_drops(recorder, "/batch/upsert")
    say("ambiguous writes: CRM note/meeting upserts + associations",
        {"drop_after_upsert": fired["/batch/upsert$"], "drop_after_associate": fired["/batch/associate/default$"]},
        {"instances": len(expenses) + len(visits), "notes": sum(notes.values()), "meetings": sum(meetings.values()),
         "duplicates": 0, "lost": 0, "committed_unanswered_upserts": committed, "runs": runs})

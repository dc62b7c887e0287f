"""Reruns and overlapping runs end in the same target state as one clean run.

- Clear and rerun: the same run (same run id, as Airflow's *Clear* does) of both
  directions executed three more times after it succeeded: not one more write
  in either system, the same OA instances, CRM objects, links and audit.
- Overlap: a manual run started while the scheduled one runs — two cycles on
  the same hub at the same time, each with its own hooks (threads, as two
  workers would) — ends exactly like one run: one 立项申请 per deal, one
  notice per amount change, one note per expense, one audit entry per write.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.hub_support import hub_copy
from tests.reliability.reliability_support import (
    audit_rows,
    c2o_cycle,
    c2o_exact,
    c2o_setup,
    c2o_state,
    c2o_the_run,
    crm_writes,
    o2c_exact,
    o2c_setup,
    o2c_the_run,
    oa_created_by_form,
    say,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.sync.sync_c2o_world import C2O, FAST_RETRY
from tests.sync.sync_o2c_world import O2C, make_o2c

from bridge.context import RunContext
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from bridge.sync import crm_to_oa, oa_to_crm
from sandbox import launcher


def _target(w: C2O) -> dict[str, Any]:
    """Everything the bridge wrote, as the simulators and the hub hold it."""
    audit = Counter((a["operation"], a["system"], a["entity"], a["outcome"]) for a in audit_rows(w))
    notes = sorted((n["properties"].get("oa_instance_code"), n["properties"].get("oa_amount"))
                   for n in w.sims.crm.admin("GET", "/_sim/objects/notes?limit=10000")["results"])  # type: ignore[index]
    return {"crm_writes": crm_writes(w), "oa_created": oa_created_by_form(w), "audit": audit, "notes": notes}


def test_clearing_a_finished_run_three_times_changes_nothing(o2c: O2C) -> None:
    w = c2o_world(o2c.c2o)
    work = c2o_setup(w, linked=20)
    c2o_the_run(w, work, fresh=80)
    o_work = o2c_setup(o2c, deals=5)
    o2c_the_run(o2c, o_work, expenses=60, visits=20)
    # The run: both directions, one RunContext each (what Airflow's run id and task ids are).
    w.tick(1)
    at = w.now
    c2o_ctx = RunContext(dag_id="crm_to_oa_sync", run_id="scheduled__cleared", task_id="extract_stage",
                         try_number=1, principal="bridge-test")
    o2c_ctx = RunContext(dag_id="oa_to_crm_sync", run_id="scheduled__cleared", task_id="discover",
                         try_number=1, principal="bridge-test")

    def the_run(try_number: int) -> None:
        for task in ("extract_stage", "load"):
            ctx = replace(c2o_ctx, task_id=task, try_number=try_number)
            if task == "extract_stage":
                crm_to_oa.extract_stage(w.crm, w.hub, ctx, w.cfg, at, dictionary=w.d)
            else:
                crm_to_oa.load(w.crm, w.oa, w.hub, ctx, w.cfg, at, dictionary=w.d, policy=w.p)
        now = datetime.now(UTC)
        ctx = replace(o2c_ctx, try_number=try_number)
        oa_to_crm.discover(w.oa, w.hub, ctx, o2c.cfg, now, dictionary=w.d, policy=w.p)
        ctx = replace(o2c_ctx, task_id="load", try_number=try_number)
        oa_to_crm.load(w.crm, w.hub, ctx, o2c.cfg, now, dictionary=w.d, policy=w.p)

    the_run(1)
    c2o_exact(w, work, also=o_work.deals, extracted_last=False)
    o2c_exact(o2c, o_work)
    first = _target(w)
    state = c2o_state(w, work)
    for try_number in (2, 3, 4):  # Clear → the same run again, three times
        the_run(try_number)
        assert _target(w) == first, f"clear #{try_number - 1} changed the target"
        assert c2o_state(w, work) == state
    say("clear and rerun ×3", {"records": len(work.deals) + o_work.records, "clears": 3},
        {"new_crm_writes": 0, "new_oa_instances": 0, "new_audit_rows": 0, "state": "identical"})


def _worker(dag_id: str, run_id: str, cycle: Callable[[CrmHook, OaHook, RunContext], Any]) -> Callable[[], Any]:
    """One overlapping run as a second worker would do it: hooks of its own (closed after), its own run id."""

    def run() -> Any:
        crm, oa = CrmHook(retry_policy=FAST_RETRY), OaHook(retry_policy=FAST_RETRY)
        try:
            ctx = RunContext(dag_id=dag_id, run_id=run_id, task_id="cycle", try_number=1, principal="bridge-test")
            return cycle(crm, oa, ctx)
        finally:
            crm.close()
            oa.close()

    return run


def _in_parallel(*jobs: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    """Start the jobs at the same moment; return what they returned and what they raised."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results.append(job())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return results, errors


def test_a_manual_run_overlapping_the_scheduled_one_ends_like_one_run(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: Any,
) -> None:
    from tests.sync.sync_c2o_world import make_c2o

    # The reference: the same workload, one run after the other.
    ref_url = hub_copy(c2o_hub_template, tmp_path / "ref.sqlite")
    ref = c2o_world(make_c2o(c2o_sims, ref_url, monkeypatch))
    ref_work = c2o_setup(ref)
    c2o_the_run(ref, ref_work)
    c2o_cycle(ref)
    c2o_cycle(ref)
    c2o_exact(ref, ref_work)
    reference = c2o_state(ref, ref_work)
    ref.crm.close()
    ref.oa.close()
    hub_engine.get_engine(ref_url).dispose()

    url = hub_copy(c2o_hub_template, tmp_path / "hub.sqlite")
    w = c2o_world(make_c2o(c2o_sims, url, monkeypatch))
    work = c2o_setup(w)
    c2o_the_run(w, work)
    w.sims.oa.admin("POST", "/_sim/faults", {"kind": "latency", "latency_ms": 5, "path": "^/open-apis/approval/"})
    w.tick(1)
    at = w.now
    w.tick(61)
    load_at = w.now

    def cycle(crm: CrmHook, oa: OaHook, ctx: RunContext) -> Any:
        return crm_to_oa.run_cycle(crm, oa, w.hub, ctx, w.cfg, at, load_at=load_at, dictionary=w.d, policy=w.p)

    results, errors = _in_parallel(*(_worker("crm_to_oa_sync", name, cycle)
                                     for name in ("scheduled__overlap", "manual__overlap")))
    w.sims.oa.admin("DELETE", "/_sim/faults")
    assert not errors, [f"{type(e).__name__}: {str(e)[:300]}" for e in errors]
    skipped = sum(r["counts"].get("skipped_other_load", 0) for r in results)
    created = sum(r["counts"].get("instances_created", 0) for r in results)
    c2o_cycle(w)  # the next scheduled run
    c2o_cycle(w)
    found = c2o_exact(w, work)
    assert c2o_state(w, work) == reference, "the overlapping runs ended unlike one run"
    links = Counter(a["record_ids"].get("deal_id") for a in audit_rows(w)
                    if a["operation"] == "create_instance" and a["entity"] == "project_initiation")
    assert all(n == 1 for n in links.values()), "one audit entry per instance"
    say("overlapping runs crm_to_oa (2 threads, same hub)", {"records": 200, "concurrent_cycles": 2},
        {**found, "run_errors": 0, "loads_left_to_the_other_run": skipped, "created_by_the_two_runs": created,
         "same_as_one_run": True})


def test_overlapping_oa_to_crm_runs_write_each_activity_once(
    c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path, monkeypatch: Any,
) -> None:
    url = hub_copy(c2o_hub_template, tmp_path / "hub.sqlite")
    o2c = make_o2c(c2o_sims, url, monkeypatch)
    work = o2c_setup(o2c)
    o2c_the_run(o2c, work)
    o2c.sims.crm.admin("POST", "/_sim/faults", {"kind": "latency", "latency_ms": 5, "path": "^/crm/"})

    def cycle(crm: CrmHook, oa: OaHook, ctx: RunContext) -> Any:
        return oa_to_crm.run_cycle(oa, crm, o2c.hub, ctx, o2c.cfg, datetime.now(UTC), dictionary=o2c.c2o.d,
                                   policy=o2c.c2o.p)

    results, errors = _in_parallel(*(_worker("oa_to_crm_sync", name, cycle)
                                     for name in ("scheduled__o2c", "manual__o2c")))
    o2c.sims.crm.admin("DELETE", "/_sim/faults")
    assert not errors, [f"{type(e).__name__}: {str(e)[:300]}" for e in errors]
    skipped = sum(r["counts"].get("skipped_other_load", 0) for r in results)
    o2c.sync()
    before = o2c.crm_writes()
    o2c.sync()
    assert o2c.crm_writes() == before
    found = o2c_exact(o2c, work)
    audits = Counter(a["entity"] for a in audit_rows(o2c.c2o) if a["operation"] == "upsert" and a["outcome"] == "ok")
    writes = crm_writes(o2c.c2o)
    seen = {t: writes.get(t, {}).get("upserted", 0) for t in ("notes", "meetings")}
    assert seen == {"notes": audits["notes"], "meetings": audits["meetings"]}, "each upsert once, audited once"
    say("overlapping runs oa_to_crm (2 threads, same hub)", {"records": work.records, "concurrent_cycles": 2},
        {**found, "run_errors": 0, "loads_left_to_the_other_run": skipped, "upserts_seen_by_crm": seen,
         "upsert_audits": dict(audits)})

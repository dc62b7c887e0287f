"""Real process kills: SIGKILL of a subprocess running a sync cycle, then the runs that follow.

No ``finally`` runs, no transaction is rolled back politely, no connection is
closed: the hub (SQLite, WAL) and the simulators see what a worker killed by
the OOM killer or a lost node leaves. The child reports each checkpoint on
stdout; at the chosen one it blocks and the parent sends SIGKILL (a kill at
a known point), or the parent kills it after a random delay (anywhere).

Then, as Airflow goes on: the next scheduled run (another run id) — whose load
finds the dead worker's load lease and leaves the due changes alone — and
Airflow's retry of the killed task instance (same run and task id: it takes
the lease over at once and finishes the work); then a settling run.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.reliability_support import (
    c2o_cycle,
    c2o_exact,
    c2o_setup,
    c2o_the_run,
    o2c_exact,
    o2c_setup,
    o2c_the_run,
    oa_unstaged_below_watermark,
    say,
    unstaged_below_watermark,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C

from bridge.context import RunContext
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.frame import LOAD_LEASE_TTL_SECONDS

ROOT = Path(__file__).resolve().parents[2]
RUNNER = r"""
import json, sys
from datetime import UTC, datetime
from bridge.context import RunContext
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.frame import LOAD_LEASE_TTL_SECONDS

spec = json.loads(sys.argv[1])
hub = hub_engine.get_engine(spec["hub"])
seen = {}

def checkpoint(name):
    seen[name] = seen.get(name, 0) + 1
    print("STEP", name, seen[name], flush=True)
    if name == spec.get("step") and seen[name] == spec.get("occurrence"):
        print("KILLME", flush=True)
        sys.stdin.readline()  # the parent sends SIGKILL while we wait here

policy = RetryPolicy(max_attempts=6, max_total_wait=20, backoff_base=0.05, backoff_max=0.5)
ctx = RunContext(dag_id=spec["direction"] + "_sync", run_id=spec["run_id"], task_id="cycle", try_number=1,
                 principal="bridge-test")
crm, oa = CrmHook(retry_policy=policy), OaHook(retry_policy=policy)
print("RUNNING", flush=True)
if spec["direction"] == "crm_to_oa":
    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), **spec["overrides"])
    crm_to_oa.extract_stage(crm, hub, ctx, cfg, datetime.fromisoformat(spec["now"]), checkpoint=checkpoint)
    crm_to_oa.load(crm, oa, hub, ctx, cfg, datetime.fromisoformat(spec["load_at"]), checkpoint=checkpoint)
else:
    cfg = oa_to_crm.with_overrides(oa_to_crm.OaToCrmSettings.from_settings(), query_lag_ms=0)
    oa_to_crm.discover(oa, hub, ctx, cfg, datetime.now(UTC), checkpoint=checkpoint)
    oa_to_crm.load(crm, hub, ctx, cfg, datetime.now(UTC), checkpoint=checkpoint)
print("DONE", flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}


def kill_cycle(spec: dict[str, Any], *, after: str | None = None, delay: float | None = None,
               timeout: float = 180) -> dict[str, Any]:
    """Run one cycle in a child process and SIGKILL it: at ``spec['step']`` (the child waits there), or
    ``delay`` seconds after it printed ``after``. Returns where it was and how it ended."""
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(spec)], cwd=ROOT, env=_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    last_step = None
    kill_at: float | None = None
    try:
        while True:
            wait = max(0.01, (kill_at if kill_at is not None else deadline) - time.monotonic())
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                if kill_at is not None and time.monotonic() >= kill_at:
                    break
                raise AssertionError(f"the child did not reach its kill point in {timeout} s") from None
            if line is None:
                raise AssertionError(f"the child ended before it was killed (last step {last_step})")
            if line.startswith("STEP "):
                last_step = line[5:]
            if line == "KILLME":
                break
            if after is not None and delay is not None and kill_at is None and line.startswith(f"STEP {after} "):
                kill_at = time.monotonic() + delay
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the child ended with {proc.returncode}, not by SIGKILL"
    return {"killed_after": last_step, "returncode": proc.returncode}


def c2o_spec(w: C2O, hub_url: str, step: str | None, occurrence: int | None = None) -> dict[str, Any]:
    w.tick(1)
    now = w.now
    w.tick(61)
    return {"direction": "crm_to_oa", "hub": hub_url, "run_id": f"killed__{w.runs}", "step": step,
            "occurrence": occurrence, "now": now.isoformat(), "load_at": w.now.isoformat(),
            "overrides": {"page_size": w.cfg.page_size, "create_chunk": w.cfg.create_chunk,
                          "writeback_batch": w.cfg.writeback_batch, "initial_backfill_seconds": None}}


def _hub_url(w: C2O) -> str:
    return w.hub.url.render_as_string(hide_password=False)


def _c2o_killed_then_rerun(c2o: C2O, step: str | None, occurrence: int | None = None,
                           random_delay: float | None = None, resume: str = "retry") -> dict[str, Any]:
    w = c2o_world(c2o)
    work = c2o_setup(w)
    c2o_the_run(w, work)
    spec = c2o_spec(w, _hub_url(w), step, occurrence)
    if random_delay is not None:
        # Slow creates so the kill lands inside the OA writes, at no chosen step.
        w.sims.oa.admin("POST", "/_sim/faults", {"kind": "latency", "latency_ms": 15, "method": "POST",
                                                 "path": "^/open-apis/approval/v4/instances$"})
        ended = kill_cycle(spec, after="intents_saved", delay=random_delay)
        w.sims.oa.admin("DELETE", "/_sim/faults")
    else:
        ended = kill_cycle(spec)
    w.hub.dispose()  # the parent's pooled connections knew nothing of the dead writer
    assert unstaged_below_watermark(w) == {}, "the watermark passed a change the hub does not hold"
    in_load = not str(ended["killed_after"]).startswith("extract_page_committed")
    _, nxt = c2o_cycle(w)  # the next scheduled run
    assert nxt.counts.get("skipped_other_load", 0) == (1 if in_load else 0), nxt.counts
    if resume == "retry":  # Airflow's retry of the killed task instance
        retry = RunContext(dag_id="crm_to_oa_sync", run_id=spec["run_id"], task_id="cycle", try_number=2,
                           principal="bridge-test")
        w.tick(1)
        crm_to_oa.extract_stage(w.crm, w.hub, retry, w.cfg, w.now, dictionary=w.d)
        w.tick(61)
        crm_to_oa.load(w.crm, w.oa, w.hub, retry, w.cfg, w.now, dictionary=w.d, policy=w.p)
    else:  # no retry left: a later run takes the lease once the dead holder's has expired
        w.tick(LOAD_LEASE_TTL_SECONDS)
        c2o_cycle(w)
    c2o_cycle(w)
    found = c2o_exact(w, work)
    return {**ended, "next_run_left_it_to_the_lease_holder": in_load, "finished_by": resume, **found}


def test_sigkill_of_a_crm_to_oa_run_mid_creates_then_rerun_is_exact(c2o: C2O) -> None:
    found = _c2o_killed_then_rerun(c2o, "instance_created", 25)
    say("SIGKILL crm_to_oa at instance_created #25", {"records": 200, "kill": "SIGKILL subprocess"}, found)


def test_sigkill_of_an_oa_to_crm_run_between_upsert_and_commit_then_rerun_is_exact(o2c: O2C) -> None:
    found = _o2c_killed_then_rerun(o2c, "activities_upserted", 1)
    say("SIGKILL oa_to_crm at activities_upserted #1", {"records": 200, "kill": "SIGKILL subprocess"}, found)


def _o2c_killed_then_rerun(o2c: O2C, step: str, occurrence: int) -> dict[str, Any]:
    work = o2c_setup(o2c)
    o2c_the_run(o2c, work)
    spec = {"direction": "oa_to_crm", "hub": _hub_url(o2c.c2o), "run_id": "killed__o2c", "step": step,
            "occurrence": occurrence}
    ended = kill_cycle(spec)
    o2c.hub.dispose()
    assert oa_unstaged_below_watermark(o2c, o2c.cfg.forms) == {}
    in_load = step not in ("discovered", "instances_staged", "watermarks_committed")
    counts = o2c.sync()  # the next scheduled run
    assert counts.get("skipped_other_load", 0) == (1 if in_load else 0), counts
    retry = RunContext(dag_id="oa_to_crm_sync", run_id="killed__o2c", task_id="cycle", try_number=2,
                       principal="bridge-test")
    now = datetime.now(UTC)
    oa_to_crm.discover(o2c.c2o.oa, o2c.hub, retry, o2c.cfg, now, dictionary=o2c.c2o.d, policy=o2c.c2o.p)
    oa_to_crm.load(o2c.c2o.crm, o2c.hub, retry, o2c.cfg, now, dictionary=o2c.c2o.d, policy=o2c.c2o.p)
    o2c.sync()
    before = o2c.crm_writes()
    o2c.sync()
    assert o2c.crm_writes() == before, "a settled run writes nothing"
    return {**ended, "next_run_left_it_to_the_lease_holder": in_load, "finished_by": "retry",
            **o2c_exact(o2c, work)}


@pytest.mark.slow
@pytest.mark.parametrize(("step", "occurrence"), [("extract_page_committed:deal", 2), ("links_committed", 1),
                                                  ("notice_created", 20), ("writeback_sent", 1),
                                                  ("writeback_committed", 2)])
def test_sigkill_of_a_crm_to_oa_run_at_more_points(c2o: C2O, step: str, occurrence: int) -> None:
    found = _c2o_killed_then_rerun(c2o, step, occurrence)
    say(f"SIGKILL crm_to_oa at {step} #{occurrence}", {"records": 200, "kill": "SIGKILL subprocess"}, found)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_of_a_crm_to_oa_run_at_a_random_moment(c2o: C2O, seed: int) -> None:
    delay = random.Random(seed).uniform(0.2, 2.0)
    found = _c2o_killed_then_rerun(c2o, None, random_delay=delay, resume="lease expiry")
    say(f"SIGKILL crm_to_oa {delay:.2f} s into the creates", {"records": 200, "kill": "SIGKILL at a random time"},
        found)


@pytest.mark.slow
@pytest.mark.parametrize(("step", "occurrence"), [("watermarks_committed", 1), ("deals_written", 1),
                                                  ("associations_sent", 2)])
def test_sigkill_of_an_oa_to_crm_run_at_more_points(o2c: O2C, step: str, occurrence: int) -> None:
    found = _o2c_killed_then_rerun(o2c, step, occurrence)
    say(f"SIGKILL oa_to_crm at {step} #{occurrence}", {"records": 200, "kill": "SIGKILL subprocess"}, found)



"""Change-to-OA latency over a simulated working day, the CRM → OA DAG on its schedule (issue 11, scenario 3).

Time is virtual. A clock walks through a working day (default 09:00–18:00
Asia/Shanghai, then a drain) minute by minute, as ``crm_to_oa_sync``'s
``CronTriggerTimetable("* * * * *")`` fires. People's edits happen at random
virtual instants between the ticks (seeded, so a run is repeatable):

- ``qualifying``: a deal reaches 合同签订 (``contractsent``, with its amount);
  some keep editing the amount every 10–50 s (up to 12 edits: the debounce
  stretches to its maximum delay, and later amount edits become notices);
- ``burst``: many deals reach 合同签订 in the same minute (a bulk import);
- ``repeated``: deals in other stages edited several times (queued, no OA write);
- ``notes``: notes-only edits (no mapped field changes, no OA write).

Each edit is made through the CRM simulator's admin API with the CRM clock
frozen at its virtual instant, so ``hs_lastmodifieddate`` is virtual. At each
tick both simulators' clocks are set to the tick (and then run in real time),
and the sync cycle runs exactly as the DAG's tasks call it: ``extract_stage``,
``load`` and ``summarise`` with ``now`` = tick + the real time spent so far in
the run (a run that overruns delays the next one: ``max_active_runs=1``).
Latency of a deal = the OA's create time of its 立项申请 (virtual) − the
virtual instant it reached the stage. Airflow's own scheduling and task-start
delay is not simulated (``task_start_s`` adds a fixed delay per task if you
want to model it).

    .venv/bin/python bench/latency.py                         # full day
    .venv/bin/python bench/latency.py --quick --json /tmp/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.common import percentile, simulators  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 26)  # a Thursday: a fixed day keeps the run repeatable
SEED = 20261126
# dags/crm_to_oa_sync.py: CronTriggerTimetable("* * * * *") — one run a minute.
SCHEDULE_SECONDS = 60
FORMER_OWNER, ACTIVE_OWNER = "70000999", "70000001"
# Stages a deal can reach 合同签订 from (dictionary transitions: proposal/negotiation → contract).
BEFORE_CONTRACT = {"presentationscheduled", "decisionmakerboughtin"}
OTHER_STAGES = {"appointmentscheduled", "qualifiedtobuy", "closedlost"}
QUALIFY_STAGE = "contractsent"


@dataclass(frozen=True)
class Edit:
    """A person's edit at a virtual instant (epoch ms)."""

    at_ms: int
    deal_id: str
    properties: dict[str, str]
    kind: str  # qualify | follow_up | burst | repeated | notes


@dataclass(frozen=True)
class DayPlan:
    edits: list[Edit]
    qualify_at: dict[str, int]  # deal id → the instant it reached the stage
    kind_of: dict[str, str]  # qualifying deal id → single | edited_on | burst
    untouched_for_oa: set[str]  # deals whose edits must not give an OA write


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def plan_day(eligible: Sequence[str], others: Sequence[str], start_ms: int, end_ms: int, *, qualifying: int,
             burst: int, repeated: int, notes: int, seed: int) -> DayPlan:
    """People's edits of one day, deterministic for a seed (pure)."""
    rng = random.Random(seed)
    pool = list(eligible)
    rng.shuffle(pool)
    if qualifying + burst > len(pool):
        raise ValueError(f"only {len(pool)} deals can reach the stage; asked for {qualifying} + {burst}")
    rest = list(others)
    rng.shuffle(rest)
    if repeated + notes > len(rest):
        raise ValueError(f"only {len(rest)} other deals; asked for {repeated} repeated + {notes} notes")
    edits: list[Edit] = []
    qualify_at: dict[str, int] = {}
    kind_of: dict[str, str] = {}
    last_start = end_ms - 15 * 60_000  # the last qualifying edits leave time for follow-ups
    for deal in pool[:qualifying]:
        at = rng.randrange(start_ms, last_start)
        amount = rng.randrange(50_000, 2_000_000, 100)
        edits.append(Edit(at, deal, {"dealstage": QUALIFY_STAGE, "amount": f"{amount}.00"}, "qualify"))
        qualify_at[deal] = at
        kind_of[deal] = "single"
        if rng.random() < 0.4:  # the salesperson keeps correcting the amount
            kind_of[deal] = "edited_on"
            for _ in range(rng.randint(1, 11)):
                at += rng.randint(10_000, 50_000)
                amount += rng.randrange(-20_000, 20_000, 100)
                edits.append(Edit(at, deal, {"amount": f"{max(amount, 1000)}.00"}, "follow_up"))
    if burst:
        minute = start_ms + (end_ms - start_ms) * 7 // 9 // 60_000 * 60_000  # 16:00 in a 09:00–18:00 day
        for deal in pool[qualifying:qualifying + burst]:
            at = minute + rng.randrange(0, 60_000)
            edits.append(Edit(at, deal, {"dealstage": QUALIFY_STAGE}, "burst"))
            qualify_at[deal] = at
            kind_of[deal] = "burst"
    untouched: set[str] = set()
    for deal in rest[:repeated]:
        at = rng.randrange(start_ms, end_ms)
        untouched.add(deal)
        for n in range(rng.randint(2, 12)):
            edits.append(Edit(at, deal, {"amount": f"{rng.randrange(10_000, 900_000, 100)}.00"}
                              if n % 2 == 0 else {"closedate": f"{DAY.year + 1}-0{1 + n % 9}-15"}, "repeated"))
            at += rng.randint(5_000, 300_000)
    for deal in rest[repeated:repeated + notes]:
        untouched.add(deal)
        for _ in range(rng.randint(1, 3)):
            edits.append(Edit(rng.randrange(start_ms, end_ms), deal,
                              {"description": rng.choice(["跟进记录：客户电话沟通", "已发送报价单", "约下周拜访"])},
                              "notes"))
    edits.sort(key=lambda e: (e.at_ms, e.deal_id))
    return DayPlan(edits, qualify_at, kind_of, untouched)


def worst_case_seconds(schedule_s: float, quiet_s: float, max_delay_s: float, run_s: float) -> dict[str, float]:
    """docs/sync_crm_to_oa.md's arithmetic: seen by the next extract, due after the debounce, sent by the next run."""
    return {"single_edit_s": round(schedule_s + quiet_s + schedule_s + run_s, 1),
            "edited_without_pause_s": round(schedule_s + max_delay_s + schedule_s + run_s, 1)}


# ---------------------------------------------------------------- the simulated day


class _Clocks:
    """Sets both simulators' clocks (admin API) over one keep-alive session."""

    def __init__(self, crm_url: str, oa_url: str) -> None:
        self.crm_url, self.oa_url = crm_url, oa_url
        self.http = requests.Session()

    def freeze_crm(self, at_ms: int) -> None:
        self._post(self.crm_url + "/_sim/clock", {"freeze_ms": at_ms})

    def run_from(self, at_ms: int) -> None:
        """Both clocks at ``at_ms`` now, running in real time."""
        offset = at_ms - int(time.time() * 1000)
        self._post(self.crm_url + "/_sim/clock", {"freeze_ms": None, "offset_ms": offset})
        self._post(self.oa_url + "/_sim/clock", {"offset_ms": offset})

    def edit(self, deal_id: str, props: dict[str, str]) -> None:
        self._post(self.crm_url + "/_sim/act/update", {"object_type": "deals", "id": int(deal_id),
                                                       "properties": props})

    def _post(self, url: str, body: dict[str, Any]) -> None:
        r = self.http.post(url, json=body, timeout=60)
        r.raise_for_status()


def _all_deals(crm_admin: Callable[..., Any]) -> list[dict[str, Any]]:
    deals: list[dict[str, Any]] = []
    after = 0
    while True:
        page = crm_admin("GET", f"/_sim/objects/deals?after={after}&limit=10000")
        deals.extend(page["results"])
        nxt = page.get("paging", {}).get("next", {}).get("after")
        if not nxt:
            return deals
        after = int(nxt)


def _instances(oa_admin: Callable[..., Any], form: str) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = oa_admin("GET", f"/_sim/instances?approval={form}&origin=api&offset={offset}&limit=1000")
        yield from page["items"]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return


def _deal_of(item: dict[str, Any]) -> str:
    widgets = {w["id"]: w.get("value") for w in json.loads(item["form"])}
    return str(widgets.get("deal_id"))


def run_latency(deals: int = 3000, *, qualifying: int = 300, burst: int = 100, repeated: int = 600,
                notes: int = 300, start: str = "09:00", end: str = "18:00", drain_minutes: int = 10,
                seed: int = SEED, task_start_s: float = 0.0, base: Path | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Simulate the day; return latency percentiles (virtual seconds), run times and write counts."""
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.hub import engine
    from bridge.sync import crm_to_oa

    say = progress or (lambda _msg: None)
    base = base or Path(tempfile.mkdtemp(prefix="bench_latency_"))
    h0, m0 = (int(x) for x in start.split(":"))
    h1, m1 = (int(x) for x in end.split(":"))
    day_start = datetime(DAY.year, DAY.month, DAY.day, h0, m0, tzinfo=SHANGHAI)
    day_end = datetime(DAY.year, DAY.month, DAY.day, h1, m1, tzinfo=SHANGHAI)
    start_ms, end_ms = _ms(day_start), _ms(day_end)
    wall_started = time.perf_counter()
    with simulators(base, max_lifetime=4 * 3600) as sims:
        for key, value in sims.connection_env().items():
            os.environ[key] = value
        clocks = _Clocks(sims.crm.url, sims.oa.url)
        # The company's CRM as it was the evening before.
        sims.crm.admin("POST", "/_sim/seed", {"seed": seed, "companies": max(50, deals // 10),
                                               "contacts_per_company": 2, "deals": deals, "dirty_share": 0.0,
                                               "now_ms": start_ms - 14 * 3600_000}, timeout=1800)
        clocks.freeze_crm(start_ms - 13 * 3600_000)
        world = _all_deals(sims.crm.admin)
        for d in world:  # every deal must be syncable (the left owner's deals are the tests' business)
            if d["properties"].get("hubspot_owner_id") == FORMER_OWNER:
                clocks.edit(str(d["id"]), {"hubspot_owner_id": ACTIVE_OWNER})
        eligible = sorted(str(d["id"]) for d in world if d["properties"].get("dealstage") in BEFORE_CONTRACT)
        others = sorted(str(d["id"]) for d in world if d["properties"].get("dealstage") in OTHER_STAGES)
        plan = plan_day(eligible, others, start_ms, end_ms, qualifying=qualifying, burst=burst,
                        repeated=repeated, notes=notes, seed=seed)

        hub = engine.ensure_schema(f"sqlite:///{base / 'hub.sqlite'}")
        cfg = crm_to_oa.CrmToOaSettings.from_settings()  # the DAG's settings

        def cycle(tick: datetime, run_cfg: Any) -> tuple[float, dict[str, Any]]:
            """One DAG run starting at virtual ``tick``; returns its virtual duration and tallies."""
            clocks.run_from(_ms(tick))
            t0 = time.perf_counter()

            def now(tasks_started: int) -> datetime:
                return tick + timedelta(seconds=time.perf_counter() - t0 + task_start_s * tasks_started)

            run_id = f"scheduled__{tick.astimezone(UTC).isoformat()}"
            ctx = RunContext(dag_id="crm_to_oa_sync", run_id=run_id, task_id="extract_stage", try_number=1,
                             principal="bench")
            if task_start_s:
                clocks.run_from(_ms(now(1)))
            crm = CrmHook()
            try:
                extracted = crm_to_oa.extract_stage(crm, hub, ctx, run_cfg, now(1))
            finally:
                crm.close()
            if task_start_s:
                clocks.run_from(_ms(now(2)))
            ctx_load = RunContext(dag_id=ctx.dag_id, run_id=run_id, task_id="load", try_number=1, principal="bench")
            crm, oa = CrmHook(), OaHook()
            try:
                loaded = crm_to_oa.load(crm, oa, hub, ctx_load, run_cfg, now(2))
            finally:
                crm.close()
                oa.close()
            ctx_sum = RunContext(dag_id=ctx.dag_id, run_id=run_id, task_id="summarise", try_number=1,
                                 principal="bench")
            crm_to_oa.summarise(hub, ctx_sum, {"extract_stage": extracted.as_dict(), "load": loaded.as_dict()},
                                now(3))
            return (now(3) - tick).total_seconds(), loaded.counts

        # The runs before the day: everything staged, nothing queued (what earlier runs left).
        cycle(day_start - timedelta(minutes=30), crm_to_oa.with_overrides(cfg, initial_backfill_seconds=0))
        say(f"latency: {len(plan.edits):,} edits planned over {start}–{end}, {len(plan.qualify_at):,} deals "
            f"reach the stage; simulating {((end_ms - start_ms) // 60_000) + drain_minutes} scheduled runs")

        run_seconds: list[float] = []
        load_counts: Counter[str] = Counter()
        edits = iter(plan.edits)
        pending = next(edits, None)
        tick = day_start
        busy_until = day_start
        last_tick = day_end + timedelta(minutes=drain_minutes)
        delayed_runs = 0
        loop_started = time.perf_counter()
        while tick <= last_tick:
            begin = max(tick, busy_until)  # max_active_runs=1: an overrunning run delays the next
            if begin > tick:
                delayed_runs += 1
            while pending is not None and pending.at_ms <= _ms(begin):
                clocks.freeze_crm(pending.at_ms)
                clocks.edit(pending.deal_id, pending.properties)
                pending = next(edits, None)
            took, counts = cycle(begin, cfg)
            run_seconds.append(took)
            load_counts.update(counts)
            busy_until = begin + timedelta(seconds=took)
            tick += timedelta(seconds=SCHEDULE_SECONDS)
            if len(run_seconds) % 60 == 0:
                say(f"latency: virtual {begin.astimezone(SHANGHAI):%H:%M}, {len(run_seconds)} runs, "
                    f"{load_counts.get('instances_created', 0)} 立项申请 so far "
                    f"({time.perf_counter() - loop_started:.0f} s real)")
        loop_s = time.perf_counter() - loop_started

        created: dict[str, list[int]] = {}
        for item in _instances(sims.oa.admin, "project_initiation"):
            created.setdefault(_deal_of(item), []).append(int(item["start_time"]))
        notices = sum(1 for _ in _instances(sims.oa.admin, "contract_amount_notice"))

    latencies: dict[str, list[float]] = {"single": [], "edited_on": [], "burst": []}
    missing = []
    for deal, at in plan.qualify_at.items():
        times = created.get(deal)
        if not times:
            missing.append(deal)
            continue
        latencies[plan.kind_of[deal]].append((min(times) - at) / 1000)
    everything = [x for values in latencies.values() for x in values]
    unexpected = sorted(d for d in created if d not in plan.qualify_at)
    max_run = max(run_seconds) if run_seconds else 0.0

    def stats(values: list[float]) -> dict[str, Any]:
        return {"n": len(values), "p50_s": _r(percentile(values, 50)), "p95_s": _r(percentile(values, 95)),
                "max_s": _r(max(values) if values else None), "min_s": _r(min(values) if values else None)}

    return {
        "day": DAY.isoformat(), "window": f"{start}–{end} Asia/Shanghai", "deals": deals, "seed": seed,
        "edits": len(plan.edits), "edits_by_kind": dict(Counter(e.kind for e in plan.edits)),
        "qualifying_deals": len(plan.qualify_at),
        "latency": stats(everything),
        "latency_by_kind": {k: stats(v) for k, v in latencies.items()},
        "instances_created": sum(len(v) for v in created.values()),
        "missing": len(missing), "duplicates": sum(len(v) - 1 for v in created.values() if len(v) > 1),
        "unexpected_instances": len(unexpected),
        "notices_sent": notices,
        "quarantined": load_counts.get("quarantined", 0),
        "runs": len(run_seconds), "delayed_runs": delayed_runs,
        "run_seconds": {"p50": _r(percentile(run_seconds, 50)), "p95": _r(percentile(run_seconds, 95)),
                        "max": _r(max_run)},
        "settings": {"schedule_seconds": SCHEDULE_SECONDS, "quiet_seconds": cfg.debounce.quiet_seconds,
                     "max_delay_seconds": cfg.debounce.max_delay_seconds, "lookback_ms": cfg.lookback_ms,
                     "task_start_s": task_start_s},
        "worst_case": worst_case_seconds(SCHEDULE_SECONDS, cfg.debounce.quiet_seconds,
                                         cfg.debounce.max_delay_seconds, max_run),
        "simulation_real_s": round(loop_s, 1),
        "wall_s": round(time.perf_counter() - wall_started, 1),
    }


# ---------------------------------------------------------------- through a real Airflow (issue 18)
AIRFLOW_DAGS = ("crm_to_oa_sync", "oa_to_crm_sync")


def _stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_s": _r(percentile(values, 50)), "p95_s": _r(percentile(values, 95)),
            "max_s": _r(max(values) if values else None), "values_s": [_r(v) for v in values]}


def _airflow_ready(api: Any, say: Callable[[str], None], timeout_s: float) -> None:
    """Both sync DAGs parsed, unpaused, and one run of each finished (the first runs read the demo world)."""
    for dag_id in AIRFLOW_DAGS:
        api.wait_dag(dag_id, timeout=timeout_s)
        api.set_paused(dag_id, False)
    deadline = time.monotonic() + timeout_s
    for dag_id in AIRFLOW_DAGS:
        while not api._call("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=success&limit=1")["dag_runs"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id}: no successful run within {timeout_s:.0f} s")
            time.sleep(2)
        say(f"airflow latency: {dag_id} unpaused, first run done")


def _new_deals(sims: Any, n: int) -> list[str]:
    """``n`` clean customers with a deal one stage before 合同签订 (their webhooks stage nothing to file)."""
    from sandbox.common.world import uscc_check_char

    deals = []
    stamp = int(time.time()) % 1_000_000
    for i in range(n):
        first17 = f"91310000{stamp * 100 + i:09d}"[-17:]
        company = sims.crm.admin("POST", "/_sim/act/create", {"object_type": "companies", "properties": {
            "name": f"时延测试客户{stamp}{i:02d}有限公司", "uscc": first17 + uscc_check_char(first17),
            "lifecyclestage": "opportunity", "industry": "软件", "city": "上海", "phone": "021-62345678",
            "hubspot_owner_id": ACTIVE_OWNER}})["id"]
        sims.crm.admin("POST", "/_sim/act/create", {"object_type": "contacts", "properties": {
            "lastname": "李", "firstname": "娜", "mobilephone": "13912345678", "email": f"li.na{i}@example.cn",
            "jobtitle": "采购经理", "associatedcompanyid": str(company), "hubspot_owner_id": ACTIVE_OWNER},
            "associations": {"companies": [str(company)]}})
        deals.append(str(sims.crm.admin("POST", "/_sim/act/create", {"object_type": "deals", "properties": {
            "dealname": f"时延测试项目{stamp}{i:02d}", "dealstage": "decisionmakerboughtin", "amount": "150000.00",
            "pipeline": "default", "closedate": "2026-12-31T00:00:00.000Z", "hubspot_owner_id": ACTIVE_OWNER},
            "associations": {"companies": [str(company)]}})["id"]))
    return deals


def _filed_after_stage(sims: Any, deals: list[str], spacing_s: float,
                       timeout_s: float) -> dict[str, tuple[float, str]]:
    """Each deal moved to 合同签订 in turn; per deal (seconds until its 立项申请 was filed, instance code)."""
    from sandbox import launcher

    staged: dict[str, int] = {}
    for deal in deals:
        staged[deal] = int(time.time() * 1000)
        sims.crm.admin("POST", "/_sim/act/update", {"object_type": "deals", "id": int(deal),
                                                     "properties": {"dealstage": QUALIFY_STAGE}})
        time.sleep(spacing_s)
    filed: dict[str, tuple[float, str]] = {}
    deadline = time.monotonic() + timeout_s
    while len(filed) < len(deals) and time.monotonic() < deadline:
        for item in launcher.oa_instances(sims.oa, "project_initiation", "api"):
            deal = str(item["widgets"].get("deal_id"))
            if deal in staged and deal not in filed:
                filed[deal] = ((int(item["start_time"]) - staged[deal]) / 1000, str(item["instance_code"]))
        time.sleep(1)
    return filed


def _decided_to_deal(sims: Any, filed: dict[str, tuple[float, str]], spacing_s: float,
                     timeout_s: float) -> dict[str, float]:
    """Each 立项申请 approved in the OA in turn; per deal, seconds until the deal's 审批状态 said so."""
    approved: dict[str, int] = {}
    for deal, (_, code) in filed.items():
        approved[deal] = int(time.time() * 1000)
        sims.oa.admin("POST", "/_sim/act/approve", {"instance_code": code})
        time.sleep(spacing_s)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(approved) and time.monotonic() < deadline:
        for deal, at_ms in approved.items():
            if deal in seen:
                continue
            page = sims.crm.admin("GET", f"/_sim/objects/deals?after={int(deal) - 1}&limit=2")
            props = next(r["properties"] for r in page["results"] if str(r["id"]) == deal)
            if props.get("oa_approval_status") == "APPROVED":
                written = datetime.fromisoformat(props["hs_lastmodifieddate"].replace("Z", "+00:00"))
                seen[deal] = (written.timestamp() * 1000 - at_ms) / 1000
        time.sleep(0.5)
    return seen


def run_through_airflow(events: int = 5, spacing_s: float = 8.0, timeout_s: float = 600.0,
                        feishu_events: str = "long_connection",
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``make airflow``'s stack (scheduler, triggerer, dag-processor, API server, LocalExecutor, Redis, the
    receiver; Feishu events over ``feishu_events``) in a temporary directory, bounded, stopped by PID; the
    two event paths measured on ``events`` new deals, end to end through real DAG runs."""
    from bridge.sync import crm_to_oa
    from sandbox import airflow_local, launcher, localenv
    from sandbox.celery_stack import AirflowApi

    say = progress or (lambda _msg: None)
    base = Path(tempfile.mkdtemp(prefix="bench_latency_airflow_"))
    started = time.perf_counter()
    with airflow_local.local_stack(data_dir=base / "data", home=base / "airflow", sim_lifetime=3600,
                                   extra_env={"BRIDGE_FEISHU_EVENTS": feishu_events}) as (stack, sims, _):
        api = AirflowApi(stack.url, localenv.ADMIN_USER, stack.admin_password())
        _airflow_ready(api, say, timeout_s)
        deals = _new_deals(sims, events)
        time.sleep(5)  # their creation webhooks' runs come and go
        say(f"airflow latency: {events} deals move to 合同签订, {spacing_s:.0f} s apart")
        filed = _filed_after_stage(sims, deals, spacing_s, timeout_s)
        say(f"airflow latency: {len(filed)} 立项申请 filed; approving them, {spacing_s:.0f} s apart")
        decided = _decided_to_deal(sims, filed, spacing_s, timeout_s)
        runs = {dag_id: Counter(str(r["run_type"]) for r in api._call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=200")["dag_runs"]) for dag_id in AIRFLOW_DAGS}
        filings = launcher.oa_instances(sims.oa, "project_initiation", "api")
        instances = Counter(str(i["widgets"].get("deal_id")) for i in filings)
    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    return {
        "deals": events, "feishu_events": feishu_events, "spacing_s": spacing_s,
        "stage_to_filed": _stats([filed[d][0] for d in deals if d in filed]),
        "approval_to_deal": _stats([decided[d] for d in deals if d in decided]),
        "not_filed": len(deals) - len(filed), "not_decided": len(filed) - len(decided),
        "filings_per_deal_max": max((instances[d] for d in deals), default=0),
        "dag_runs_by_type": {k: dict(v) for k, v in runs.items()},
        "quiet_seconds": cfg.debounce.quiet_seconds,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


QUICK = {"deals": 600, "qualifying": 40, "burst": 15, "repeated": 60, "notes": 40, "start": "09:00",
         "end": "10:30", "drain_minutes": 8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 90-minute morning, fewer deals")
    parser.add_argument("--deals", type=int)
    parser.add_argument("--qualifying", type=int)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--task-start-s", type=float, default=0.0, help="model Airflow's task-start delay")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--airflow", type=int, metavar="N", help="instead: N deals through a real Airflow (events)")
    parser.add_argument("--feishu-events", choices=["long_connection", "webhook"], default="long_connection")
    args = parser.parse_args(argv)
    if args.airflow:
        result = run_through_airflow(args.airflow, feishu_events=args.feishu_events,
                                     progress=lambda m: print(m, flush=True))
        print(json.dumps(result, ensure_ascii=False, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    kwargs: dict[str, Any] = dict(QUICK) if args.quick else {}
    for key in ("deals", "qualifying", "burst"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    result = run_latency(**kwargs, seed=args.seed, task_start_s=args.task_start_s,
                         progress=lambda m: print(m, flush=True))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

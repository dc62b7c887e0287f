"""
### OA → CRM incremental sync (`oa_to_crm_sync`)

Sales see in the CRM where the project approval stands without phoning
finance: the status of each linked **立项申请** (审批中/已通过/已拒绝/已撤回/已删除,
withdraw → resubmit as Feishu models it), its project number and the time of
the last decision are written to the deal; approved **费用报销** and **差旅申请**
become notes and **客户拜访计划** meetings on the customer (and on the deal when
the form's project number links one). A form without a customer, or with one
the CRM does not have, waits in quarantine (`missing_customer_link`) naming
the applicant.

| task | pool | what |
|---|---|---|
| `poll_gate` | – | polling safety net: a *scheduled* run goes ahead while the event receiver is silent, every `events.healthy_poll_minutes` while it is healthy, or when changes are due; skips the rest otherwise (`bridge.events.health`) |
| `discover` | `oa_api` | new instances by creation-time windows from the hub watermark; status changes by `instances/query` (PENDING and DELETED) over the spans holding open instances; `get_instance` only for new or moved ones (≤ `max_instance_reads_per_run`) → snapshots, queue, quarantine; linked deals whose OA-owned fields were edited in the CRM (hub only) |
| `load` | `crm_api` | due 立项申请 → read the deals (batches of 100), write only differing OA-owned fields (conflicts audited, the OA wins); due expenses/trips/visits → notes/meetings upserted by `oa_instance_code`, associated with company and deal, voided when later rejected/withdrawn/deleted |
| `summarise` | – | run summary (read, discovered, unchanged, written by kind, quarantined, conflicts, API calls by endpoint) stored in the hub and logged; picks the assets to publish |
| `publish_*` | – | Asset events `bridge://crm/deal`, `bridge://crm/notes`, `bridge://crm/meetings`, only when something of that kind was written |

**Timetable: `CronTriggerTimetable("* * * * *", timezone="Asia/Shanghai")`.**
What a run reads is decided by the hub's watermarks (creation windows) and by
the hub's open instances (status sweeps), not by the run's logical dates: a
skipped, failed or cleared run loses nothing, the next one finds it. Every
minute, `max_active_runs=1`, `catchup=False`: a slow run delays the next one.
Latency: a status change shows on the deal within a minute plus the run.
**Or an event** (`AssetOrTimeSchedule`): a verified Feishu `approval_instance`
event wakes the DAG through the asset `bridge://events/oa` (an `AssetWatcher`
on Redis, `docs/events.md`): the decision reaches the deal in seconds; the run
still reads through the hook from the hub's state, so a lost, late or
duplicated event changes nothing.

**API-call budget per run** (Feishu has no "changed since" listing):
per approval code (4) one list call per 10-hour creation window since the
watermark (1 in steady state) + per 30-day span holding open instances one
`instances/query` page per 200 pending instances + one for deleted ones, plus
one older span in rotation; then one `get_instance` per new or changed
instance, at most `oa_to_crm.max_instance_reads_per_run` (2,000; the rest are
found again next run). CRM: one batch read + at most one batch update per 100
changed deals; one upsert + ≤ 2 association calls per 100 activities. With
10,000 open instances and nothing changed that is about 60 OA calls and no CRM
call (see `docs/sync_oa_to_crm.md` for the measured figures). Feishu's
limits (1,000 query/get calls per minute, 50/s; 100 list calls per minute)
bound a burst: the hook waits out 429s.

Params (manual runs): `backfill_days` queues instances the hub already holds
(e.g. staged by the history migration) created within that many days, so
their approved expenses/trips/visits and linked 立项申请 reach the CRM; writes
are upserts and comparisons, so running it twice writes nothing twice.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, Param, dag, task

from bridge.events.watch import WakeTrigger
from bridge.sync import tasks

# Must match bridge.sync.oa_to_crm.ASSETS (checked by tests/sync); literal here so parsing imports nothing.
ASSETS = {
    "deal": Asset("bridge://crm/deal"),
    "notes": Asset("bridge://crm/notes"),
    "meetings": Asset("bridge://crm/meetings"),
}
# Verified vendor events (bridge.events) wake this DAG through Redis; see docs/events.md.
EVENTS = Asset("bridge://events/oa", watchers=[AssetWatcher(name="feishu_approval_events", trigger=WakeTrigger("bridge.events.oa"))])


@dag(
    dag_id="oa_to_crm_sync",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="Asia/Shanghai"), assets=EVENTS),
    params={
        "backfill_days": Param(0, type="number", minimum=0, title="补录历史天数",
                               description="把中枢库中最近这么多天内提交的 OA 历史单据排入本次同步，写到 CRM（0 = 不补录）。"),
    },
    tags=["bridge", "sync", "oa", "crm"],
    doc_md=__doc__,
    **tasks.SYNC_DAG_ARGS,
)
def oa_to_crm_sync() -> None:
    found = task(task_id="discover", pool="oa_api", multiple_outputs=False)(tasks.oa_to_crm_discover)
    loaded = task(task_id="load", pool="crm_api", multiple_outputs=False)(tasks.oa_to_crm_load)
    summary = task.branch(task_id="summarise", trigger_rule="all_done")(tasks.oa_to_crm_summarise)
    tasks.chain("oa", [found(), loaded()], summary(), ASSETS)


oa_to_crm_sync_dag = oa_to_crm_sync()

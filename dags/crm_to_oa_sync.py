"""
### CRM → OA incremental sync (`crm_to_oa_sync`)

A deal that reaches a configured stage (`include/settings.yaml`
`crm_to_oa.initiation_stages`, e.g. 合同签订/赢单) becomes a **立项申请** in the OA,
filed in the name of its owner, within five minutes, exactly once; a later
change of the contract amount sends a **合同金额变更通知** to finance. The OA
instance code and project number are written back to the deal.

| task | pool | what |
|---|---|---|
| `poll_gate` | – | polling safety net: a *scheduled* run goes ahead while the event receiver is silent, every `events.healthy_poll_minutes` while it is healthy, or when changes are due; skips the rest otherwise (`bridge.events.health`) |
| `extract_stage` | `crm_api` | companies, contacts, deals changed since the hub watermark (minus a lookback) → snapshots, debounce queue, quarantine; watermark in the same transaction |
| `load` | `oa_api` | due deals → 立项申请 / 合同金额变更通知 (deterministic Feishu `uuid`, intent saved first) → xref, audit → CRM write-back in batches of 100 |
| `summarise` | – | run summary (read, unchanged, staged, debounced, written, quarantined, retried, API calls) stored in the hub and logged; picks the assets to publish |
| `publish_*` | – | Asset events: `bridge://oa/project_initiation`, `bridge://oa/contract_amount_notice`, `bridge://crm/deal` (only when something was written) |

**Timetable: `CronTriggerTimetable("* * * * *", timezone="Asia/Shanghai")`.**
A *trigger* timetable, not a data-interval one, because what a run reads is
decided by the watermark in the hub, not by the run's logical dates: a run
that was skipped, failed or cleared loses nothing, the next one reads from
where the last committed page ended. Every minute, aligned on the wall-clock
minute so operators can predict it. `max_active_runs=1` and `catchup=False`:
a slow run delays the next one instead of racing it, and missed minutes are
not replayed (there is nothing to replay). **Or an event**
(`AssetOrTimeSchedule`): a verified HubSpot webhook wakes the DAG through the
asset `bridge://events/crm` (an `AssetWatcher` on Redis, `docs/events.md`);
the run reads from the watermark exactly as a polling run does, so lost,
late or duplicated webhooks change nothing, and the debounce below still
decides when a deal is sent.

**Latency (goal: p95 ≤ 5 min).** A change is seen by the next extract
(≤ 60 s), is due when the record has been quiet for `debounce.quiet_seconds`
(60 s) or at the latest `debounce.max_delay_seconds` (150 s) after it was
first seen, and is sent by the first run after that (≤ 60 s) plus the run
itself: ≤ 60 + 60 + 60 s for a single edit, ≤ 60 + 150 + 60 s + run time for
a record edited without pause — under 5 minutes while a run takes < 30 s.
Twelve edits inside the window give one OA write with the latest state; an
edit of an unmapped property (notes) changes no content hash and gives none.

Exactly once: a cleared task, a crash between the OA call and the hub commit,
or a lost answer never creates a second instance (see `docs/sync_crm_to_oa.md`).
Records that cannot be sent go to quarantine (`bridge quarantine list`).
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, dag, task

from bridge.events.watch import WakeTrigger
from bridge.sync import tasks

# Must match bridge.sync.crm_to_oa.ASSETS (checked by tests/sync); literal here so parsing imports nothing.
ASSETS = {
    "project_initiation": Asset("bridge://oa/project_initiation"),
    "contract_amount_notice": Asset("bridge://oa/contract_amount_notice"),
    "deal": Asset("bridge://crm/deal"),
}
# Verified vendor events (bridge.events) wake this DAG through Redis; see docs/events.md.
EVENTS = Asset("bridge://events/crm", watchers=[AssetWatcher(name="hubspot_webhooks", trigger=WakeTrigger("bridge.events.crm"))])


@dag(
    dag_id="crm_to_oa_sync",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="Asia/Shanghai"), assets=EVENTS),
    tags=["bridge", "sync", "crm", "oa"],
    doc_md=__doc__,
    **tasks.SYNC_DAG_ARGS,
)
def crm_to_oa_sync() -> None:
    extracted = task(task_id="extract_stage", pool="crm_api", multiple_outputs=False)(tasks.crm_to_oa_extract_stage)
    loaded = task(task_id="load", pool="oa_api", multiple_outputs=False)(tasks.crm_to_oa_load)
    summary = task.branch(task_id="summarise", trigger_rule="all_done")(tasks.crm_to_oa_summarise)
    tasks.chain("crm", [extracted(), loaded()], summary(), ASSETS)


crm_to_oa_sync_dag = crm_to_oa_sync()

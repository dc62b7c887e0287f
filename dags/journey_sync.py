"""
### 客户旅程数据接入 (`journey_sync`)

Stages the customer journey's sources in the hub, every hour: what 市场部 runs in HubSpot (campaigns,
marketing events and who took part, each contact's original source), what customers answered in
satisfaction surveys (HubSpot feedback submissions, read-only there), and the performance results 人力资源部
keeps in Feishu 绩效 — plus the CSV/XLSX files of survey answers and ratings dropped in
`journey.import_dir`. Read-only towards both systems: nothing is written to HubSpot or Feishu.

| task | pool | what |
|---|---|---|
| `campaigns` | `crm_api` | every campaign → snapshots `crm/campaign` (only changed ones written); watermark `crm.campaign` |
| `events` | `crm_api` | every marketing event with its campaign, and each event's participations → `crm/marketing_event`, `crm/event_participation` |
| `contact_sources` | `crm_api` | original source of the contacts the CRM → OA extract staged since the watermark → `crm/contact_source` |
| `feedback` | `crm_api` | survey answers (CSAT / NPS / CES) changed since the watermark → `crm/feedback_submission` |
| `reviews` | `oa_api` | results of every ended review period not yet settled → `oa/performance_review` (personal sensitive data: PIPL) |
| `imports` | `oa_api` | spreadsheets in `journey.import_dir` → the same entities (origin `import`); files moved to `done/` or `failed/` |
| `summarise` | – | run summary (read, staged, unchanged, quarantined, fixed, files, API calls) stored in the hub (kind `journey_sync`) and logged |

Records with a blocking problem go to quarantine (direction `journey`, Chinese message naming the
department that fixes it; `bridge quarantine list`); bad rows of a spreadsheet name their row number.

**Why a DAG of its own, hourly.** These sources feed the journey page, the people × satisfaction table and
the 08:00 report, none of which needs minutes: campaigns, events and surveys change a few times a day and
review results a few times a year. Kept out of the two minute-by-minute sync DAGs, their reads never
delay a 立项申请, a HubSpot outage of the marketing endpoints never turns a sync run red, and the DAG list
says at a glance which runs move data between the systems (`*_sync` with a load) and which only stage it.
**Timetable: `CronTriggerTimetable("17 * * * *", timezone="Asia/Shanghai")`** — a trigger timetable (the
hub's watermarks say what to read, not the run's dates), at minute 17 so it does not meet the full-hour
peaks; `catchup=False`, `max_active_runs=1`. Docs: `docs/journey.md`.

**History (migration).** The first run reads each source's whole history, one hub transaction per batch with
the watermark advanced in the same transaction: a run stopped half-way resumes on the next run where it
stopped (nothing lost, nothing staged twice). Trigger with `{"since": "YYYY-MM-DD"}` (起始日期) to re-read
the history from that date on demand (unchanged records are not written again).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, task

from bridge.journey import tasks


@dag(
    dag_id="journey_sync",
    schedule=CronTriggerTimetable("17 * * * *", timezone="Asia/Shanghai"),
    start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    doc_md=__doc__,
    tags=["bridge", "journey", "crm", "oa"],
    params={
        "since": Param(None, type=["null", "string"], format="date", title="起始日期",
                       description="留空 = 从各数据的水位线继续读取；填写日期（YYYY-MM-DD）则从该日起重新读取"
                                   "营销、满意度和绩效三类数据的历史（迁移历史数据用，可重复运行，不会重复入库）。"),
    },
    default_args={
        "owner": "bridge",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=40),
    },
)
def journey_sync() -> None:
    campaigns = task(task_id="campaigns", pool="crm_api", multiple_outputs=False)(tasks.campaigns)()
    events = task(task_id="events", pool="crm_api", multiple_outputs=False, trigger_rule="all_done")(tasks.events)()
    crm = [
        task(task_id="contact_sources", pool="crm_api", multiple_outputs=False)(tasks.contact_sources)(),
        task(task_id="feedback", pool="crm_api", multiple_outputs=False)(tasks.feedback)(),
    ]
    oa = [
        task(task_id="reviews", pool="oa_api", multiple_outputs=False)(tasks.reviews)(),
        task(task_id="imports", pool="oa_api", multiple_outputs=False)(tasks.imports)(),
    ]
    summary = task(task_id="summarise", trigger_rule="all_done", multiple_outputs=False)(tasks.summarise)()
    chain(campaigns, events, summary)
    for step in (*crm, *oa):
        step >> summary


journey_sync_dag = journey_sync()

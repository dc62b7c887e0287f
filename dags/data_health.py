"""
### 数据健康报告 (data health)

Checks the quality of the data the bridge holds in its hub — at **07:00
Asia/Shanghai on every Chinese working day** (`WorkdayTimetable(7, 0)`:
statutory holidays skipped, 调休 make-up days run, company days from
`include/settings.yaml` `calendar:`), before the 07:30 build of the 08:00
management report, and whenever someone triggers it by hand (e.g. after
fixing data, to see the score move). One check warns from 1 November when the
holiday calendar has no data for the coming year.

1. **validate** — Great Expectations 1.x suites over the hub's snapshot
   tables: suites generated from `include/dictionary.yaml` (required fields,
   formats, value sets, uniqueness) plus cross-system suites (duplicate
   customers, customer and 立项申请 ⇄ deal links, CRM/OA contract amounts,
   sync freshness, quarantine backlog). Stores each check's result with the
   ids of failing records and the count per data owner (`health_result`),
   the scores per entity, department and data owner (`health_score`), and
   rebuilds the Data Docs in `<data dir>/data_docs/`.
2. **publish_summary** — the day's Chinese summary page and JSON in
   `<data dir>/data_health/<day>/` (score, 30-day trend, failing checks).
3. **notify_owners** — e-mails each owning department and each data owner
   their failing checks (ids and counts only) through `smtp_default`.
   Param `notify=false` (or settings `data_health.notify: false`) skips it.

Read-only towards the CRM and the OA except one `GET /crm/v3/owners` for
the owners' e-mail addresses. Docs: `docs/data_health.md`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import Param, dag, task

from bridge.timetables import WorkdayTimetable

SHANGHAI = timezone(timedelta(hours=8))


@dag(
    dag_id="data_health",
    schedule=WorkdayTimetable(7, 0, timezone="Asia/Shanghai"),
    start_date=datetime(2026, 1, 1, tzinfo=SHANGHAI),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["bridge", "data_health", "great_expectations"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=50),
    },
    params={
        "notify": Param(True, type="boolean", title="发送通知邮件",
                        description="向未通过检查的责任部门和数据责任人发送邮件"),
    },
)
def data_health() -> None:
    @task(multiple_outputs=False)
    def validate(**context: object) -> dict[str, object]:
        from bridge.quality import tasks

        return tasks.validate(context)

    @task(multiple_outputs=False)
    def publish_summary(outcome: dict[str, object], **context: object) -> dict[str, object]:
        from bridge.quality import tasks

        return tasks.publish(context, outcome)

    @task(multiple_outputs=False)
    def notify_owners(outcome: dict[str, object], **context: object) -> dict[str, object]:
        from bridge.quality import tasks

        return tasks.notify(context, outcome)

    outcome = validate()
    publish_summary(outcome) >> notify_owners(outcome)


data_health_dag = data_health()

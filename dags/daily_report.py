"""
### 经营日报 daily_report — the 08:00 consolidated management report

Builds the day's report from the hub (CRM and OA snapshots, sync runs,
quarantine, data-health scores), applies the permission policy for its
audience (管理层), stores a self-contained HTML page and an XLSX workbook under
`<BRIDGE_DATA_DIR>/reports/<YYYY-MM-DD>/`, records it in `report_run` and mails
it through the Airflow Connection `smtp_default` to `report.recipients`.
Each `report.editions` entry (e.g. `{audience: hr, recipients: [...]}`) is one
more edition, read through that role's policy, with its own files (suffix =
the role) and its own mail list.

**Timetable.** `WorkdayTimetable(7, 30)` (registered by the bridge plugin):
07:30 Asia/Shanghai (23:30 UTC the day before; no daylight saving time) on
Chinese working days — statutory holidays skipped, 调休 make-up Saturdays and
Sundays run, plus the company's own days off and working days from
`include/settings.yaml` `calendar:` (read by the scheduler when it plans the
next run, never when this file is parsed). It runs after `data_health`
(07:00, same days), so the mail is in managers' hands by 08:00. The report of
day R covers up to R−1 24:00; 昨日 is the last working day before R (Friday in
Monday's report, the last day before a holiday after it), compared with the
working day before that. A year the holiday package has no data for runs
Monday–Friday plus the overrides, with a warning in the report.

**Reruns.** Clearing a run rebuilds that day's files; the mail is sent once per
day (trigger with `{"resend": true}` to send again). `{"day": "YYYY-MM-DD"}`
builds a given day. Details: `docs/report.md`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import Param, dag, task

from bridge.report.timetable import daily_report_timetable


@dag(
    dag_id="daily_report",
    schedule=daily_report_timetable(),
    start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["bridge", "report"],
    default_args={"owner": "bridge-report", "retries": 3, "retry_delay": timedelta(minutes=2)},
    params={
        "day": Param(None, type=["null", "string"], format="date", title="报告日期",
                     description="留空 = 本次运行的日期（北京时间）；填写则重建该日的日报。"),
        "resend": Param(False, type="boolean", title="重新发送邮件",
                        description="该日日报已发送过时，是否再次发送。"),
    },
)
def daily_report() -> None:
    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=20))
    def build(**context: Any) -> dict[str, Any]:
        """Marts, charts, HTML, XLSX and the mail, stored by date and recorded in report_run."""
        from bridge.report.tasks import run_build

        return run_build(context)

    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=5))
    def send(built: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Mail the report through smtp_default, once per day."""
        from bridge.report.tasks import run_send

        return run_send(built, context)

    send(build())


daily_report_dag = daily_report()

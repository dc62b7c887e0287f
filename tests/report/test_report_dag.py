"""One whole run of the daily_report DAG with ``dag.test()``: real metadata DB, hub, CRM simulator, SMTP.

The run happens in a subprocess with its own AIRFLOW_HOME (migrated once per
session) so that this test's Airflow configuration cannot leak into others.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date

from tests.dag_support import dag_file_loader

from bridge.report import archive
from sandbox import localenv, mailsink
from sandbox.airflow_local import smtp_connection_env
from sandbox.common.world import World

RUN = dag_file_loader("daily_report") + textwrap.dedent("""
    from datetime import datetime, timezone
    run = module.daily_report_dag.test(logical_date=datetime(2026, 11, 25, 23, 30, tzinfo=timezone.utc))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"state": str(run.state), "tasks": states}))
""")


def test_dag_test_builds_records_and_mails_the_report(hub_copy, sims, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outbox = tmp_path / "outbox"
    mail = mailsink.start(outbox)
    try:
        data_dir = tmp_path / "data"
        env = localenv.airflow_env(
            connections={**sims.connection_env(), **smtp_connection_env(mail.port)},
            home=tmp_path / "airflow", data_dir=data_dir,
            extra={"AIRFLOW_CONN_BRIDGE_HUB": json.dumps({"conn_type": "sqlite",
                                                          "host": hub_copy.url.removeprefix("sqlite:///")}),
                   "BRIDGE__REPORT__RECIPIENTS": "[boss@example.com, cfo@example.com]"},
        )
        localenv.prepare_home(env, tmp_path / "setup.log")
        done = subprocess.run([sys.executable, "-c", RUN, str(localenv.ROOT / "dags" / "daily_report.py")],
                              env=env, cwd=localenv.ROOT, capture_output=True, text=True, timeout=300)
    finally:
        mail.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"].endswith("success"), (result, done.stderr[-3000:])
    assert set(result["tasks"]) == {"build", "send"}

    day = date(2026, 11, 26)  # 2026-11-25 23:30 UTC is 07:30 on the 26th in Shanghai
    with hub_copy.engine.connect() as conn:
        record = archive.get_report(conn, day)
    assert record is not None
    assert record.sent_at is not None
    assert record.html_path == data_dir / "reports" / "2026-11-26" / "daily_report_2026-11-26.html"
    assert record.html_path.exists()
    assert record.xlsx_path.exists()
    assert record.recipients == ["boss@example.com", "cfo@example.com"]
    [msg] = mailsink.read_mailbox(outbox)
    assert msg["Subject"] == "经营日报 2026-11-26"
    html = msg.get_body(preferencelist=("html",)).get_content()
    # owner names come from the CRM simulator's /crm/v3/owners through CrmHook
    crm_owner = next(e for e in World(seed=20261126, companies=0, deals=0).owners if e.owner_id == "70000001")
    assert crm_owner.name in html
    assert "负责人名单暂时无法读取" not in html
    assert any((p.get_filename() or "").endswith(".xlsx") for p in msg.iter_attachments())

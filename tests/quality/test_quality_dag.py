"""One whole ``data_health`` DAG run (``dag.test()``) against a seeded hub, the simulators and a real SMTP server.

Runs in a subprocess with its own AIRFLOW_HOME (migrated SQLite metadata
database), the Connections as environment variables (``bridge_hub`` → the
seeded hub, ``crm_default`` → the CRM simulator for the owners' addresses,
``smtp_default`` → the local mail sink), so it proves the wiring: task order,
XComs, settings, the CrmHook owner lookup, SmtpHook delivery, Data Docs and
summary files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.dag_support import dag_file_loader

from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import health_result
from bridge.quality import failing_checks, latest_scores
from sandbox import localenv, mailsink
from sandbox.airflow_local import smtp_connection_env
from sandbox.common.world import World

from .conftest import DAY, NOW, Seeded

ROOT = Path(__file__).resolve().parents[2]
RUNNER = dag_file_loader("data_health") + """
from datetime import datetime
run = module.data_health_dag.test(logical_date=datetime.fromisoformat(sys.argv[2]))
print("DAGRUN", run.run_id, run.state)
"""


def test_the_dag_runs_end_to_end(seeded_template: Seeded, sims: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(seeded_template.url.removeprefix("sqlite:///"), data / "hub.sqlite")
    outbox = tmp_path / "outbox"
    mail = mailsink.start(outbox)
    try:
        env = localenv.airflow_env(connections={**sims.connection_env(), **smtp_connection_env(mail.port)},
                                   home=tmp_path / "airflow", data_dir=data)
        log = tmp_path / "airflow.log"
        localenv.prepare_home(env, log)
        done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "dags" / "data_health.py"), NOW.isoformat()],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        mail.stop()
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    line = next(x for x in done.stdout.splitlines() if x.startswith("DAGRUN"))
    _, run_id, state = line.split()
    assert state == "success", tail

    hub = hub_engine.get_engine(f"sqlite:///{data / 'hub.sqlite'}")
    with hub.connect() as conn:
        run_ids = set(conn.execute(select(health_result.c.run_id).where(health_result.c.day == DAY)).scalars())
        failing = {r.check_id: r for r in failing_checks(conn, DAY)}
        overall = latest_scores(conn, "overall", DAY)
        summaries = [r for r in store.recent_runs(conn, "data_health") if r.run_id == run_id]
    assert run_ids == {run_id}
    assert seeded_template.mismatch_deal in failing["deal.contract_amount.amount_consistent"].failing_ids
    assert 0 < overall[0].score < 100
    assert {(r.task_id, r.status) for r in summaries} == {("validate", "success"), ("notify_owners", "success")}
    notify = next(r for r in summaries if r.task_id == "notify_owners")
    assert len(notify.counts["sent"]) == notify.counts["planned"] > 4

    assert (data / "data_docs" / "index.html").is_file()
    summary = json.loads((data / "data_health" / DAY.isoformat() / "summary.json").read_text(encoding="utf-8"))
    assert summary["overall"]["score"] == overall[0].score
    assert "数据健康报告" in (data / "data_health" / DAY.isoformat() / "summary.html").read_text(encoding="utf-8")

    messages = mailsink.read_mailbox(outbox)
    recipients = {str(m["To"]) for m in messages}
    assert {"sales-data@example.com", "finance-data@example.com"} <= recipients
    # The owner's address came from the CRM simulator (GET /crm/v3/owners), whose people are World(seed=20261126)'s.
    crm_people = {e.owner_id: e.email for e in World(seed=20261126).owners}
    to_owner = [m for m in messages if str(m["To"]) == crm_people[seeded_template.mismatch_owner]]
    assert len(to_owner) == 1
    assert seeded_template.mismatch_deal in str(to_owner[0].get_body(preferencelist=("html",)).get_content())

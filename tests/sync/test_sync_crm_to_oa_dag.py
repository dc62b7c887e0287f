"""One whole-DAG run of ``crm_to_oa_sync`` with ``dag.test()``: the wiring (Connections, hub, XCom, branch, assets).

Runs in a subprocess with its own AIRFLOW_HOME (metadata database migrated
there), the simulators' Connections as environment variables and a hub file
of its own, exactly as ``make demo`` runs DAGs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine
from tests.dag_support import dag_file_loader
from tests.sync.sync_c2o_world import C2O

from bridge.hub import store
from sandbox import localenv

ROOT = Path(__file__).resolve().parents[2]
RUNNER = dag_file_loader("crm_to_oa_sync") + (
    "run = module.crm_to_oa_sync_dag.test()\n"
    'print("RESULT " + json.dumps({"state": str(run.state), '
    '"tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}))\n'
)


def test_whole_dag_run_creates_the_project_initiation_and_publishes_its_assets(c2o: C2O, tmp_path: Path) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="66000.00")
    data = tmp_path / "data"
    env = localenv.airflow_env(connections=c2o.sims.connection_env(), home=tmp_path / "airflow", data_dir=data,
                               extra={"BRIDGE__DEBOUNCE__QUIET_SECONDS": "0"})
    log = tmp_path / "airflow.log"
    localenv.prepare_home(env, log)
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "dags" / "crm_to_oa_sync.py")], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["state"] == "success", result
    assert result["tasks"]["extract_stage"] == "success"
    assert result["tasks"]["load"] == "success"
    assert result["tasks"]["summarise"] == "success"
    assert result["tasks"]["publish_project_initiation"] == "success"
    assert result["tasks"]["publish_deal"] == "success"
    assert result["tasks"]["publish_contract_amount_notice"] == "skipped", "no notice, no asset event"

    [instance] = c2o.instances_of(deal)
    assert c2o.crm_object("deals", deal)["oa_instance_code"] == instance["instance_code"]
    hub = create_engine(f"sqlite:///{data / 'hub.sqlite'}")
    try:
        with hub.connect() as conn:
            [summary] = store.recent_runs(conn, kind="crm_to_oa_sync")
            link = store.find_link(conn, "deal_project", crm_id=deal)
    finally:
        hub.dispose()
    assert summary.status == "success"
    assert summary.dag_id == "crm_to_oa_sync"
    assert summary.counts["instances_created"] == 1
    assert summary.counts["writebacks"] == 1
    assert link is not None
    assert link.oa_id == instance["instance_code"]
    assert link.run_id == summary.run_id
    assert "13812345678" not in done.stdout + done.stderr, "no personal data in task logs"

"""One whole-DAG run of ``oa_to_crm_sync`` with ``dag.test()``: Connections, hub, XCom, branch, assets.

Runs in a subprocess with the pre-migrated AIRFLOW_HOME of ``tests/conftest.py`` (``airflow_home``), the
simulators' Connections as environment variables and a hub file of its own, as ``make demo`` runs DAGs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine
from tests.dag_support import dag_file_loader
from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.hub import store
from bridge.sync import oa_to_crm
from sandbox import localenv

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "oa_to_crm_sync.py"
RUNNER = dag_file_loader("oa_to_crm_sync") + (
    "run = module.oa_to_crm_sync_dag.test()\n"
    'print("RESULT " + json.dumps({"state": str(run.state), '
    '"tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}))\n'
)


def test_the_dag_file_names_the_engine_assets() -> None:
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"))
    uris = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Asset" and node.args and isinstance(node.args[0], ast.Constant)}
    uris -= {u for u in uris if u.startswith("bridge://events/")}  # the schedule's event inlet (docs/events.md)
    assert uris == set(oa_to_crm.ASSETS.values())


def test_whole_dag_run_lands_the_approval_and_the_expense(o2c: O2C, tmp_path: Path,  # noqa: F811
                                                          airflow_home: Path) -> None:
    company, _ = o2c.c2o.customer()
    expense = o2c.expense(company, amount=888)
    o2c.act("approve", expense)
    data = tmp_path / "data"
    env = localenv.airflow_env(connections=o2c.sims.connection_env(), home=airflow_home, data_dir=data,
                               extra={"BRIDGE__OA_TO_CRM__QUERY_LAG_SECONDS": "0"})
    localenv.prepare_home(env, tmp_path / "airflow.log")
    done = subprocess.run([sys.executable, "-c", RUNNER, str(DAG_FILE)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["state"] == "success", result
    tasks = result["tasks"]
    assert tasks["discover"] == "success"
    assert tasks["load"] == "success"
    assert tasks["summarise"] == "success"
    assert tasks["publish_notes"] == "success"
    assert tasks["publish_deal"] == "skipped", "no deal written, no asset event"
    assert tasks["publish_meetings"] == "skipped"

    note = o2c.activity("notes", expense)
    assert note is not None
    assert o2c.associations("notes", note["id"], "companies") == [company]
    hub = create_engine(f"sqlite:///{data / 'hub.sqlite'}")
    try:
        with hub.connect() as conn:
            [summary] = store.recent_runs(conn, kind="oa_to_crm_sync")
            [link] = store.links(conn, "activity", oa_id=expense)
    finally:
        hub.dispose()
    assert summary.status == "success"
    assert summary.dag_id == "oa_to_crm_sync"
    assert summary.counts["written_notes"] == 1
    assert summary.counts["read"] >= 1
    calls = summary.counts["api_calls_by_endpoint"]
    assert calls["oa"]["GET /open-apis/approval/v4/instances/{instance_id}"] >= 1
    assert calls["crm"]["POST /crm/v3/objects/{object_type}/batch/upsert"] == 1
    assert link.crm_id == note["id"]
    assert link.run_id == summary.run_id

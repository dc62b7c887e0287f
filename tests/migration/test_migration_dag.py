"""One whole ``history_migration`` run with ``dag.test()``: Params, mapped chunks, XCom, pools, hub, report.

Runs in a subprocess with a pre-migrated AIRFLOW_HOME (the ``airflow_home``
fixture), the simulators' Connections and a hub file of its own as
environment variables, as ``make demo`` runs DAGs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from tests.dag_support import dag_file_loader

from bridge.hub.schema import lease, migration_chunk, migration_run, snapshot
from bridge.migration.params import CONFIRM_TEXT
from sandbox import localenv

ROOT = Path(__file__).resolve().parents[2]
RUNNER = (
    dag_file_loader("history_migration")
    + """
run = module.history_migration_dag.test(run_conf=json.loads(sys.argv[2]))
tis = [[ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()]
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tis}))
"""
)


def _dag_test(
    runner: str, mig: Any, airflow_home: Path, tmp_path: Path, conf: dict[str, Any]
) -> dict[str, Any]:
    """Run ``runner`` (the DAG file and the conf as arguments) with the simulators' Connections and a hub
    file of its own (``tmp_path/dag_hub.sqlite``, data under ``tmp_path/dag_data``); its RESULT line."""
    env = localenv.airflow_env(
        connections=mig.sims.connection_env(),
        home=airflow_home,
        data_dir=tmp_path / "dag_data",
        extra={
            "AIRFLOW_CONN_BRIDGE_HUB": json.dumps(
                {"conn_type": "sqlite", "host": str(tmp_path / "dag_hub.sqlite")}
            ),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        },
    )
    env.pop("BRIDGE_HUB_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", runner, str(ROOT / "dags" / "history_migration.py"), json.dumps(conf)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def test_whole_dag_run_migrates_in_mapped_chunks_and_records_the_run(
    mig: Any, airflow_home: Path, tmp_path: Path
) -> None:
    mig.seed(seed=5, companies=40, deals=90, oa_instances=90, dirty_share=0.2)
    data = tmp_path / "dag_data"
    hub_file = tmp_path / "dag_hub.sqlite"
    conf = {
        "chunk_size": 40,
        "entities": ["company", "deal", "project_initiation", "expense_claim"],
        "dry_run": False,
        "confirm_load": CONFIRM_TEXT,
    }  # a real load: dry run off and confirmed
    result = _dag_test(RUNNER, mig, airflow_home, tmp_path, conf)
    assert result["state"] == "success", result
    states: dict[str, list[str]] = {}
    for task_id, _map_index, state in result["tasks"]:
        states.setdefault(task_id, []).append(state)
    assert set(states) == {
        "plan",
        "crm_chunk_list",
        "oa_chunk_list",
        "dedupe_customers",
        "migrate_crm_chunk",
        "migrate_oa_chunk",
        "write_back",
        "report",
        "close_run",
    }
    assert all(s == "success" for ss in states.values() for s in ss), states
    assert len(states["migrate_crm_chunk"]) >= 3  # companies and deals in several mapped tasks
    assert len(states["migrate_oa_chunk"]) >= 2

    hub = create_engine(f"sqlite:///{hub_file}")
    try:
        with hub.connect() as conn:
            run = conn.execute(select(migration_run)).one()
            chunks = conn.execute(select(migration_chunk)).all()
            entities = {r.entity for r in conn.execute(select(snapshot.c.entity).distinct())}
            leases = conn.execute(select(lease)).all()
    finally:
        hub.dispose()
    assert run.run_id == result["run_id"]  # the 历史迁移 page finds the run by its Airflow run id
    assert run.status == "success"
    assert leases == []  # nothing held after the run
    assert run.params["dry_run"] is False
    assert run.params["chunk_size"] == 40
    forms = sum(
        1 for i in mig.oa_world.iter_oa_instances() if i.approval in ("project_initiation", "expense_claim")
    )
    assert run.counts["read"] == 40 + 90 + forms
    assert all(c.status == "done" for c in chunks)
    data_chunks = [c for c in chunks if c.entity not in ("dedupe.company", "writeback.deal")]
    assert len(data_chunks) >= len(states["migrate_crm_chunk"]) + len(
        states["migrate_oa_chunk"]
    )  # tiny ones share
    # the migrated entities, plus the applicants' names the pages show (bridge.people's pseudo-entity "user")
    assert entities == {"company", "deal", "project_initiation", "expense_claim", "user"}
    report = data / run.report_html
    assert report.is_file()
    assert report.parent.parent == data / "migration"
    assert "历史迁移报告" in report.read_text(encoding="utf-8")
    assert (data / run.report_csv).is_file()


RUNNER_FAILING = (
    dag_file_loader("history_migration")
    + """
from airflow.sdk.exceptions import AirflowFailException
from bridge.migration import steps
real = steps.migrate_crm_chunk

def broken(crm, t, entity, *args, **kwargs):
    if entity == "deal":  # a worker's failure no retry can fix, in the middle of the run
        raise AirflowFailException("CRM connection lost (injected)")
    return real(crm, t, entity, *args, **kwargs)

out = {}
for name, patch in (("failed", broken), ("next", real)):
    steps.migrate_crm_chunk = patch
    run = module.history_migration_dag.test(run_conf=json.loads(sys.argv[2]))
    out[name] = {"state": str(run.state), "run_id": run.run_id,
                 "tasks": {f"{ti.task_id}#{ti.map_index}": str(ti.state) for ti in run.get_task_instances()}}
print("RESULT " + json.dumps(out))
"""
)


def test_a_dag_run_whose_task_fails_is_aborted_by_its_teardown_and_the_next_run_succeeds(
    mig: Any, airflow_home: Path, tmp_path: Path
) -> None:
    from bridge.ui import queries

    mig.seed(seed=6, companies=20, deals=40, oa_instances=20, dirty_share=0.1)
    conf = {"chunk_size": 20, "entities": ["company", "deal"], "dry_run": False, "confirm_load": CONFIRM_TEXT}
    result = _dag_test(RUNNER_FAILING, mig, airflow_home, tmp_path, conf)
    failed, after = result["failed"], result["next"]
    assert failed["state"] == "failed", failed
    assert "failed" in {s for t, s in failed["tasks"].items() if t.startswith("migrate_crm_chunk")}
    assert failed["tasks"]["close_run#-1"] == "success"  # the teardown ran after the failure
    assert after["state"] == "success", after  # the next run was not refused

    hub = create_engine(f"sqlite:///{tmp_path / 'dag_hub.sqlite'}")
    try:
        with hub.connect() as conn:
            shown = {r.run_id: r for r in queries.migration_runs(conn)}
            leases = conn.execute(select(lease)).all()
    finally:
        hub.dispose()
    assert leases == []
    aborted = shown[failed["run_id"]]
    assert aborted.status == "aborted"
    assert aborted.finished_at is not None
    reason = aborted.abort_reason or ""
    assert "任务 migrate_crm_chunk_" in reason  # what Airflow said about the run's tasks (Execution API)
    assert "CRM connection lost (injected)" in reason  # the failed chunk's own error
    assert shown[after["run_id"]].status == "success"

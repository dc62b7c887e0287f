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

from bridge.hub.schema import migration_chunk, migration_run, snapshot
from sandbox import localenv

ROOT = Path(__file__).resolve().parents[2]
RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("history_migration_dagfile", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = module.history_migration_dag.test(run_conf=json.loads(sys.argv[2]))
tis = [[ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()]
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tis}))
"""


def test_whole_dag_run_migrates_in_mapped_chunks_and_records_the_run(mig: Any, airflow_home: Path,
                                                                      tmp_path: Path) -> None:
    mig.seed(seed=5, companies=40, deals=90, oa_instances=90, dirty_share=0.2)
    data = tmp_path / "dag_data"
    hub_file = tmp_path / "dag_hub.sqlite"
    env = localenv.airflow_env(
        connections=mig.sims.connection_env(), home=airflow_home, data_dir=data,
        extra={"AIRFLOW_CONN_BRIDGE_HUB": json.dumps({"conn_type": "sqlite", "host": str(hub_file)}),
               "AIRFLOW__CORE__UNIT_TEST_MODE": "False"},
    )
    env.pop("BRIDGE_HUB_URL", None)
    conf = {"chunk_size": 40, "entities": ["company", "deal", "project_initiation", "expense_claim"]}
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "dags" / "history_migration.py"),
                           json.dumps(conf)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["state"] == "success", result
    states: dict[str, list[str]] = {}
    for task_id, _map_index, state in result["tasks"]:
        states.setdefault(task_id, []).append(state)
    assert set(states) == {"plan", "crm_chunk_list", "oa_chunk_list", "dedupe_customers", "migrate_crm_chunk",
                           "migrate_oa_chunk", "write_back", "report"}
    assert all(s == "success" for ss in states.values() for s in ss), states
    assert len(states["migrate_crm_chunk"]) >= 3  # companies and deals in several mapped tasks
    assert len(states["migrate_oa_chunk"]) >= 2

    hub = create_engine(f"sqlite:///{hub_file}")
    try:
        with hub.connect() as conn:
            run = conn.execute(select(migration_run)).one()
            chunks = conn.execute(select(migration_chunk)).all()
            entities = {r.entity for r in conn.execute(select(snapshot.c.entity).distinct())}
    finally:
        hub.dispose()
    assert run.run_id == result["run_id"]  # the 历史迁移 page finds the run by its Airflow run id
    assert run.status == "success"
    assert run.params["dry_run"] is False
    assert run.params["chunk_size"] == 40
    forms = sum(1 for i in mig.oa_world.iter_oa_instances() if i.approval in ("project_initiation", "expense_claim"))
    assert run.counts["read"] == 40 + 90 + forms
    assert all(c.status == "done" for c in chunks)
    data_chunks = [c for c in chunks if c.entity not in ("dedupe.company", "writeback.deal")]
    assert len(data_chunks) >= len(states["migrate_crm_chunk"]) + len(states["migrate_oa_chunk"])  # tiny ones share
    assert entities == {"company", "deal", "project_initiation", "expense_claim"}
    report = data / run.report_html
    assert report.is_file()
    assert report.parent.parent == data / "migration"
    assert "历史迁移报告" in report.read_text(encoding="utf-8")
    assert (data / run.report_csv).is_file()

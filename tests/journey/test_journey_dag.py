"""One whole-DAG run of ``journey_sync`` with ``dag.test()``: the wiring (Connections, hub, settings override of
the import folder, XCom, the all_done summary), as ``make demo`` runs DAGs."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import create_engine, select
from tests.dag_support import run_dag_test
from tests.journey.journey_world import Journey

from bridge.hub import store
from bridge.hub.schema import snapshot
from sandbox import localenv

ROOT = Path(__file__).resolve().parents[2]


def test_whole_dag_run_stages_every_source_and_the_dropped_file(journey: Journey, tmp_path: Path) -> None:
    users = journey.sims.oa.admin("GET", "/_sim/users")
    assert isinstance(users, dict)
    person = sorted(str(u["user_id"]) for u in users["users"])[0]
    drop = tmp_path / "drop"
    drop.mkdir()
    with (drop / "绩效.csv").open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([["被评估人", "评估周期", "周期开始日期", "周期结束日期", "绩效等级"],
                                 [person, "2024年下半年", "2024-07-01", "2024-12-31", "良好"]])
    data = tmp_path / "data"
    env = localenv.airflow_env(connections=journey.sims.connection_env(), home=tmp_path / "airflow", data_dir=data,
                               extra={"BRIDGE__JOURNEY__IMPORT_DIR": str(drop),
                                      "BRIDGE__JOURNEY__IMPORT_QUIET_SECONDS": "0"})
    localenv.prepare_home(env, tmp_path / "airflow.log")
    result = run_dag_test("journey_sync", env, ROOT)
    assert result["state"] == "success", result
    assert set(result["tasks"].values()) == {"success"}
    assert len(result["tasks"]) == 7

    hub = create_engine(f"sqlite:///{data / 'hub.sqlite'}")
    try:
        with hub.connect() as conn:
            [summary] = store.recent_runs(conn, kind="journey_sync")
            entities = set(conn.execute(select(snapshot.c.entity).distinct()).scalars())
            reviews = [r[0] for r in conn.execute(select(snapshot.c.payload).where(
                snapshot.c.system == "oa", snapshot.c.entity == "performance_review"))]
    finally:
        hub.dispose()
    assert summary.status == "success"
    assert summary.dag_id == "journey_sync"
    assert {"campaign", "marketing_event", "event_participation", "feedback_submission",
            "performance_review"} <= entities
    assert summary.counts["import_files_done"] == 1
    assert summary.counts["staged_performance_review"] > 1  # Feishu's results and the imported row
    assert set(summary.watermarks or {}) >= {"crm.campaign", "crm.feedback_submission", "oa.performance_review"}
    assert [(r["person_id"], r["rating"], r["period_end"]) for r in reviews if r["origin"] == "import"] == [
        (person, "B", "2024-12-31")]
    assert (drop / "done" / "绩效.csv").exists()

"""DAG integrity and policy: every DAG file imports fast, offline, and follows the house rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
SYNC_DAGS = {"crm_to_oa_sync", "oa_to_crm_sync", "history_migration", "journey_sync"}
EXPECTED_DAGS = {"crm_to_oa_sync", "oa_to_crm_sync", "history_migration", "data_health", "daily_report",
                 "journey_sync"}


def _guarded_import(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_import_guarded.py")), str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "AIRFLOW_HOME": str(ROOT / ".airflow"),
             "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_offline_and_fast(path: Path) -> None:
    facts = _guarded_import(path)
    assert facts["error"] is None, f"{path.name} failed to import: {facts['error']}"
    assert facts["attempts"] == [], f"{path.name} touched the network or a database at parse time: {facts['attempts']}"
    assert facts["seconds"] < 1.0, f"{path.name} took {facts['seconds']:.2f}s to parse"
    assert facts["dags"] == [path.stem], "one DAG per file, file name = dag_id"


DAGBAG_FACTS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
facts = {"import_errors": {k: str(v)[:500] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    facts["dags"][dag_id] = {
        "tags": sorted(dag.tags), "doc_md": dag.doc_md or "", "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tasks": [{"task_id": t.task_id, "owner": t.owner, "retries": t.retries} for t in dag.tasks],
    }
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def dagbag(airflow_home_template: Path) -> dict:
    """What a DagBag of dags/ holds, read in a subprocess against a migrated metadata DB."""
    from sandbox import localenv

    env = localenv.airflow_env(home=airflow_home_template, data_dir=airflow_home_template / "data")
    out = subprocess.run([sys.executable, "-c", DAGBAG_FACTS, str(ROOT / "dags")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dagbag_has_no_import_errors(dagbag: dict) -> None:
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) <= EXPECTED_DAGS | {p.stem for p in DAG_FILES}
    assert len(dagbag["dags"]) == len(DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_follows_house_rules(dagbag: dict, path: Path) -> None:
    dag = dagbag["dags"].get(path.stem)
    assert dag is not None, f"no DAG {path.stem} in {path.name}"
    assert dag["tags"], "every DAG has tags"
    assert len(dag["doc_md"]) > 80, "every DAG has a real doc_md (the module docstring)"
    assert dag["catchup"] is False
    for task in dag["tasks"]:
        assert task["owner"] not in ("", "airflow", None), f"{task['task_id']}: set an owner in default_args"
        assert task["retries"] >= 2, f"{task['task_id']}: retries >= 2"
    if path.stem in SYNC_DAGS:
        assert dag["max_active_runs"] == 1, "sync DAGs never run twice at once"

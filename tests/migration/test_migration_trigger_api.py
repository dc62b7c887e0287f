"""Bad Params are refused by Airflow's REST trigger endpoint before a run exists, with the field named.

``POST /api/v2/dags/history_migration/dagRuns`` is what the trigger form (and
any API client) calls. A subprocess (``_trigger_api.py``) runs Airflow's real
API app in-process over a migrated SQLite metadata DB with the DAG parsed into
it; each bad conf must get a 4xx whose ``detail`` names the field (key and
Chinese name) and what is allowed, and no dag run may be created — while a
valid conf creates exactly one run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bridge.migration.params import CONFIRM_TEXT

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("_trigger_api.py")

CASES = [
    (
        {"chunk_size": -5, "dry_run": False, "confirm_load": CONFIRM_TEXT},
        ["chunk_size", "每批记录数", "20 到 200000"],
    ),
    ({"date_from": "2025-02-30"}, ["date_from", "起始日期", "YYYY-MM-DD"]),
    ({"date_to": "2025/06/30"}, ["date_to", "截止日期", "YYYY-MM-DD"]),
    ({"dry_run": False, "confirm_load": "yes"}, ["confirm_load", CONFIRM_TEXT]),
]
VALID = {"chunk_size": 500, "date_from": "2025-01-01"}


def _env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "BRIDGE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        }
    )
    return env


def test_rest_trigger_refuses_bad_params_with_the_field_and_creates_no_run(
    airflow_home: Path, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy2(ROOT / "dags" / "history_migration.py", dags / "history_migration.py")
    confs = [conf for conf, _ in CASES] + [VALID]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(confs, ensure_ascii=False)],
        env=_env(airflow_home, dags),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    facts = json.loads(lines[-1][len("RESULT ") :])
    answers = facts["answers"]
    for (conf, words), answer in zip(CASES, answers, strict=False):
        assert 400 <= answer["status"] < 500, (conf, answer)
        for word in words:
            assert word in str(answer["detail"]), (word, answer["detail"])
    valid = answers[-1]
    assert valid["status"] == 200, valid  # the endpoint works: a good conf makes a run
    assert [r["run_id"] for r in facts["runs"]] == [valid["run_id"]]  # and no refused conf left one behind
    assert facts["runs"][0]["conf"] == VALID

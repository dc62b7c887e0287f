"""Trigger ``history_migration`` through Airflow's own REST API in-process; print JSON facts.

Run as a subprocess by test_migration_trigger_api.py with AIRFLOW_HOME (a
migrated SQLite metadata DB), a DAGs folder holding the DAG file and the
plugins folder set in the environment, so Airflow's configuration never leaks
into the test process. The DAG is parsed and written to the metadata DB as
the DAG processor does; then ``POST /api/v2/dags/history_migration/dagRuns``
— the call the trigger form makes — is sent with each conf given on the
command line (a JSON list), as admin with a JWT from ``POST /auth/token``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _sync_dags() -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if bag.import_errors:
            raise SystemExit(f"import errors: {bag.import_errors}")
        sync_bag_to_db(bag, bundle.name, bundle.version)


def main(confs: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    _sync_dags()
    client = TestClient(create_app(), base_url="http://127.0.0.1:8080", follow_redirects=False)
    with open(os.path.join(os.environ["AIRFLOW_HOME"], "simple_auth_manager_passwords.json.generated")) as fh:
        password = json.load(fh)["admin"]
    r = client.post("/auth/token", json={"username": "admin", "password": password})
    r.raise_for_status()
    auth = {"Authorization": "Bearer " + r.json()["access_token"]}
    url = "/api/v2/dags/history_migration/dagRuns"
    answers = []
    for conf in confs:
        r = client.post(url, json={"logical_date": None, "conf": conf}, headers=auth)
        body = r.json()
        answers.append(
            {"status": r.status_code, "detail": body.get("detail"), "run_id": body.get("dag_run_id")}
        )
    runs = client.get(url, headers=auth).json()
    return {
        "answers": answers,
        "runs": [{"run_id": x["dag_run_id"], "conf": x["conf"]} for x in runs["dag_runs"]],
    }


if __name__ == "__main__":
    result = main(json.loads(sys.argv[1]))
    print("RESULT " + json.dumps(result, ensure_ascii=False))

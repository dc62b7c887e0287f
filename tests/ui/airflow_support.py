"""Airflow's own API server app in a subprocess, for the tests of the plugin inside Airflow.

Airflow's configuration must not leak into the test process, so a test runs a
script (``python SCRIPT ARGS…``) in an AIRFLOW_HOME of its own with
:func:`airflow_env`; the script prints its findings as one ``RESULT {json}``
line, which :func:`run_facts` returns. The metadata database (token revocation
lives there) is the session's migrated copy (``airflow_home`` of ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandbox.localenv import project_airflow

ROOT = Path(__file__).resolve().parents[2]


def airflow_env(home: Path, hub_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of Airflow's app with the project's plugins, simple-auth users and the test's hub.

    ``home`` is a migrated AIRFLOW_HOME: the ``airflow_home`` fixture of ``tests/conftest.py``.
    """
    (home / "dags").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "BRIDGE_"))}
    env.update(
        {
            **project_airflow(home, home / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,op1:op",
            "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "BRIDGE_HUB_URL": hub_url,
            "BRIDGE_DATA_DIR": str(data_dir),
        }
    )
    return env


def run_facts(script: Path, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``script`` in a subprocess; the JSON of its last ``RESULT`` line (its exit and output asserted)."""
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    found = [line.removeprefix("RESULT ") for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert found, proc.stdout[-3000:]
    facts: dict[str, Any] = json.loads(found[-1])
    return facts

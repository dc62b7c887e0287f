"""The project-local Airflow environment used by ``make demo``, ``make airflow`` and tests.

Everything lives inside the checkout: ``.airflow/`` (AIRFLOW_HOME, SQLite
metadata, logs) and ``data/`` (hub database, reports, Data Docs). The API
server binds 127.0.0.1, parallelism is small, no example DAGs are loaded.
Connections come from environment variables (``AIRFLOW_CONN_*``) so nothing
has to be clicked in the UI for the local set-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = ROOT / ".airflow"
DATA_DIR = ROOT / "data"
BIN = Path(sys.executable).parent


# Pools that bound the concurrent API tasks of all DAGs (the tenant's quota).
POOLS = [
    ("crm_api", 4, "HubSpot API quota shared by all bridge DAGs"),
    ("oa_api", 4, "Feishu API quota shared by all bridge DAGs"),
]


def airflow_env(
    connections: Mapping[str, str] | None = None,
    home: Path = AIRFLOW_HOME,
    data_dir: Path = DATA_DIR,
    api_port: int = 8080,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for every Airflow command of the local set-up."""
    home.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
            "BRIDGE_DATA_DIR": str(data_dir),
            "AIRFLOW_CONN_BRIDGE_HUB": json.dumps({"conn_type": "sqlite", "host": str(data_dir / "hub.sqlite")}),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "NO_PROXY": "127.0.0.1,localhost",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(connections or {})
    env.update(extra or {})
    return env


def airflow(args: list[str], env: Mapping[str, str], log_path: Path | None = None,
            timeout: float | None = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an ``airflow`` CLI command of the local venv; output to ``log_path`` when given."""
    cmd = [str(BIN / "airflow"), *args]
    if log_path is None:
        return subprocess.run(cmd, env=dict(env), cwd=ROOT, check=check, timeout=timeout,  # noqa: S603
                              capture_output=True, text=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n")
        log.flush()
        return subprocess.run(cmd, env=dict(env), cwd=ROOT, check=check, timeout=timeout,  # noqa: S603
                              stdout=log, stderr=subprocess.STDOUT, text=True)


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def prepare_home(env: Mapping[str, str], log_path: Path) -> bool:
    """Migrate the metadata database once per Airflow version. Returns True when it ran."""
    home = Path(env["AIRFLOW_HOME"])
    stamp = home / ".migrated"
    want = f"{_airflow_version()}+pools"
    if stamp.exists() and stamp.read_text() == want and (home / "airflow.db").exists():
        return False
    airflow(["db", "migrate"], env, log_path)
    # The API pools every bridge DAG shares (docs/connections.md).
    for pool, slots, what in POOLS:
        airflow(["pools", "set", pool, str(slots), what], env, log_path)
    stamp.write_text(want)
    return True


def prepare_hub(env: Mapping[str, str], log_path: Path) -> None:
    """Migrate the hub database (``bridge hub upgrade``) of this environment; idempotent."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write("\n$ bridge hub upgrade\n")
        log.flush()
        subprocess.run([str(BIN / "bridge"), "hub", "upgrade"], env=dict(env), cwd=ROOT, check=True,  # noqa: S603
                       timeout=300, stdout=log, stderr=subprocess.STDOUT, text=True)

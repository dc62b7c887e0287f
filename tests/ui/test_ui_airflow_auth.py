"""The plugin inside Airflow's real API server app, with Airflow's own login (simple auth manager).

A subprocess (``_ui_airflow_app.py``) builds ``airflow.api_fastapi.app.create_app()``
with the project's plugins folder, logs in as admin / viewer / op1 through
``POST /auth/token`` and uses the JWT as the UI does. Checked here: the plugin is
mounted and listed with its navigation entries, anonymous and forged requests get
no data, a viewer cannot release, an Op can, and the release is audited under
the Op's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.hub import engine as hub_engine
from bridge.hub import store

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("_ui_airflow_app.py")


def _airflow_env(home: Path, hub_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "BRIDGE_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,op1:op",
        "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BRIDGE_HUB_URL": hub_url,
        "BRIDGE_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    })
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME with a migrated metadata database (token revocation lives there)."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    env = _airflow_env(home, "sqlite://", home)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=180)
    return home


def test_bridge_pages_behind_airflow_login(airflow_home: Path, hub_url: str, ui_data: Path, seed) -> None:
    entry_id = seed.quarantine("C-1001")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(entry_id)], env=_airflow_env(airflow_home, hub_url, ui_data),
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines, proc.stdout[-3000:]
    facts = json.loads(lines[-1][len("RESULT "):])

    # the plugin is mounted, and its pages are listed for the navigation
    assert facts["plugin"]["fastapi_apps"][0]["url_prefix"] == "/bridge"
    views = {v["name"]: v for v in facts["plugin"]["external_views"]}
    assert set(views) == {"经营日报", "数据健康", "隔离区", "同步状态", "历史迁移", "大屏"}
    assert views["隔离区"]["href"] == "/bridge/quarantine"
    assert views["隔离区"]["url_route"] == "bridge-quarantine"
    assert {v["category"] for v in views.values()} == {"OA ⇄ CRM"}

    # no login, or a forged token: refused, nothing leaks
    assert facts["anonymous"] == {"status": 401, "leaks": False}
    assert facts["anonymous_browser"]["status"] == 302
    assert facts["anonymous_browser"]["location"].startswith("/auth/login?next=")
    assert facts["forged"]["status"] == 401
    assert facts["forged"]["leaks"] is False
    assert facts["static_anonymous"]["status"] == 200

    # logged in: pages answer with the user's policy role (admin → 管理层: contact phone masked;
    # an Airflow user not in ui.user_roles → 普通员工, who sees no contact field at all)
    assert facts["admin_sync"]["status"] == 200
    assert facts["bearer_admin"] == {"status": 200, "form": True, "role": True, "masked": True, "raw": False}
    assert facts["viewer_page"] == {"status": 200, "form": False, "role": True, "masked": False, "raw": False}

    # the viewer role may not release, even with a valid CSRF token; the Op role may
    assert facts["viewer_release"]["status"] == 403
    assert facts["op_page"] == {"status": 200, "form": True, "csrf": True}
    assert facts["op_release"] == {"status": 303, "location": f"/bridge/quarantine/{entry_id}?released=1"}

    from bridge import audit

    with hub_engine.get_engine(hub_url).connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
        last = audit.tail(conn, 1)[0]
    # without BRIDGE_HUB_URL / AIRFLOW_CONN_BRIDGE_HUB the API server finds the Connection in the metadata DB
    assert facts["hub_url_from_metadata"] == f"sqlite:///{airflow_home / 'hub_in_metadata.sqlite'}"
    assert entry is not None
    assert entry.resolution == "released"
    assert entry.resolved_by == "op1"
    assert (last.operation, last.principal, last.detail) == ("quarantine_release", "op1", "released_by=op1")

"""The kiosk link inside Airflow's own API server app (with the bridge plugin): no login for the wall, nothing else.

Airflow's configuration must not leak into the test process, so this file runs
itself as a subprocess (``python test_ui_wallboard_airflow.py TOKEN``) in an
AIRFLOW_HOME of its own, as ``test_ui_airflow_auth.py`` does, and prints the
statuses it saw as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.ui.airflow_support import airflow_env, run_facts
from tests.ui.page_paths import NAV_PAGES, WALLBOARD_LOGIN_PAGES

from bridge.hub import engine as hub_engine
from bridge.ui import kiosk

SECRET = "wallboard-airflow-test-secret-0123456789"

# Airflow's API and UI routes a kiosk token must not open (as a Bearer token, a cookie or a query parameter).
AIRFLOW_PATHS = (
    "/api/v2/dags",
    "/api/v2/connections",
    "/api/v2/variables",
    "/api/v2/plugins",
    "/api/v2/pools",
    "/api/v2/config",
)
BRIDGE_PATHS = (*NAV_PAGES, *WALLBOARD_LOGIN_PAGES)


def probe(token: str) -> dict[str, Any]:
    """In the subprocess: Airflow's app, requests with and without the token."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app(), base_url="http://127.0.0.1:8080", follow_redirects=False)
    out: dict[str, Any] = {}
    page = client.get(f"/bridge/wallboard/kiosk/{token}")
    data = client.get(f"/bridge/wallboard/kiosk/{token}/data")
    out["kiosk"] = {
        "page": page.status_code,
        "data": data.status_code,
        "role": data.json().get("role") if data.status_code == 200 else None,
        "csp": page.headers.get("content-security-policy", ""),
    }
    refused: dict[str, list[int]] = {}
    for path in (*AIRFLOW_PATHS, *BRIDGE_PATHS):
        statuses = []
        for kwargs in ({"headers": {"Authorization": f"Bearer {token}"}}, {"params": {"token": token}}):
            statuses.append(client.get(path, **kwargs).status_code)  # type: ignore[arg-type]
        client.cookies.set("_token", token)
        statuses.append(client.get(path).status_code)
        client.cookies.clear()
        refused[path] = statuses
    out["other"] = refused
    out["anonymous_wallboard"] = client.get("/bridge/wallboard").status_code
    return out


def test_kiosk_token_in_airflow_opens_the_wall_and_nothing_else(
    airflow_home: Path, hub_url: str, ui_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(kiosk.KEY_ENV, SECRET)
    with hub_engine.get_engine(hub_url).begin() as conn:
        token, _ = kiosk.create(conn, kiosk.signing_key(), "admin", label="测试")  # type: ignore[arg-type]
    env = {**airflow_env(airflow_home, hub_url, ui_data), kiosk.KEY_ENV: SECRET}
    facts = run_facts(Path(__file__), [token], env, timeout=240)
    assert facts["kiosk"]["page"] == 200
    assert facts["kiosk"]["data"] == 200
    assert facts["kiosk"]["role"] == "wallboard"
    assert "script-src 'self'" in facts["kiosk"]["csp"]
    assert facts["anonymous_wallboard"] == 401
    opened = {path: s for path, s in facts["other"].items() if any(code < 400 for code in s)}
    assert opened == {}, opened
    assert set(facts["other"]) == {*AIRFLOW_PATHS, *BRIDGE_PATHS}


if __name__ == "__main__":
    print("RESULT " + json.dumps(probe(sys.argv[1]), ensure_ascii=False))

"""Drive Airflow's own API server app (with the bridge plugin) in-process; print JSON facts.

Run as a subprocess by test_ui_airflow_auth.py with AIRFLOW_HOME, the plugins
folder and the hub set in the environment, so Airflow's configuration never
leaks into the test process: ``python _ui_airflow_app.py ENTRY_ID``.
Logs in through ``POST /auth/token`` of the simple auth manager, exactly as a
client of the Airflow API does, and uses the JWT as the UI does (cookie).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any


def main(entry_id: int) -> dict[str, Any]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app(), base_url="http://127.0.0.1:8080", follow_redirects=False)
    home = os.environ["AIRFLOW_HOME"]
    with open(os.path.join(home, "simple_auth_manager_passwords.json.generated")) as fh:
        passwords = json.load(fh)
    tokens = {}
    for user in ("admin", "viewer", "op1"):
        r = client.post("/auth/token", json={"username": user, "password": passwords[user]})
        r.raise_for_status()
        tokens[user] = r.json()["access_token"]
    page = f"/bridge/quarantine/{entry_id}"
    out: dict[str, Any] = {}

    def get(path: str, token: str | None = None, **headers: str) -> Any:
        client.cookies.clear()
        if token:
            client.cookies.set("_token", token)
        return client.get(path, headers=headers)

    def post(path: str, token: str, data: dict[str, str], **headers: str) -> Any:
        client.cookies.clear()
        client.cookies.set("_token", token)
        return client.post(path, data=data, headers=headers)

    def csrf(html: str) -> str | None:
        m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
        return m.group(1) if m else None

    r = get(page)
    out["anonymous"] = {"status": r.status_code, "leaks": "C-1001" in r.text}
    r = get(page, Accept="text/html")
    out["anonymous_browser"] = {"status": r.status_code, "location": r.headers.get("location")}
    r = get(page, token="not.a.jwt")
    out["forged"] = {"status": r.status_code, "leaks": "C-1001" in r.text}
    r = client.get(page, headers={"Authorization": "Bearer " + tokens["admin"]})
    out["bearer_admin"] = {
        "status": r.status_code,
        "form": 'id="release-form"' in r.text,
        "role": "admin（管理层）" in r.text,
        "masked": "138****5678" in r.text,
        "raw": "13812345678" in r.text,
    }
    r = get(page, token=tokens["viewer"])
    viewer_html = r.text
    out["viewer_page"] = {
        "status": r.status_code,
        "form": 'id="release-form"' in viewer_html,
        "role": "viewer（普通员工）" in viewer_html,  # not in ui.user_roles: the default role
        "masked": "138****5678" in viewer_html,
        "raw": "13812345678" in viewer_html,
    }
    # a viewer who forges a form post with the CSRF token of their own session
    from bridge.ui.auth import CsrfGuard, airflow_secret

    viewer_token = CsrfGuard(airflow_secret()).token("viewer")
    r = post(
        page + "/release",
        tokens["viewer"],
        {"csrf_token": viewer_token, "confirm": "yes"},
        Origin="http://127.0.0.1:8080",
    )
    out["viewer_release"] = {"status": r.status_code}
    r = get(page, token=tokens["op1"])
    op_token = csrf(r.text)
    out["op_page"] = {"status": r.status_code, "form": 'id="release-form"' in r.text, "csrf": bool(op_token)}
    r = post(
        page + "/release",
        tokens["op1"],
        {"csrf_token": op_token or "", "confirm": "yes"},
        Origin="http://127.0.0.1:8080",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    out["op_release"] = {"status": r.status_code, "location": r.headers.get("location")}
    r = get("/bridge/sync", token=tokens["admin"])
    out["admin_sync"] = {"status": r.status_code}
    r = get("/bridge/static/bridge.css")
    out["static_anonymous"] = {"status": r.status_code}
    r = client.get("/api/v2/plugins", headers={"Authorization": "Bearer " + tokens["admin"]})
    plugins = r.json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "oa_crm_bridge")
    out["plugin"] = {"fastapi_apps": ours["fastapi_apps"], "external_views": ours["external_views"]}
    # a bridge_hub Connection stored in the metadata database (as created in the UI)
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from bridge.ui.queries import server_hub_url

    with create_session() as session:
        session.add(
            Connection(
                conn_id="bridge_hub", conn_type="sqlite", host=os.path.join(home, "hub_in_metadata.sqlite")
            )
        )
    saved = os.environ.pop("BRIDGE_HUB_URL")
    try:
        out["hub_url_from_metadata"] = server_hub_url()
    finally:
        os.environ["BRIDGE_HUB_URL"] = saved
    return out


if __name__ == "__main__":
    result = main(int(sys.argv[1]))
    print("RESULT " + json.dumps(result, ensure_ascii=False))

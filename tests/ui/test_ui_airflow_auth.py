"""The plugin inside Airflow's real API server app, with Airflow's own login (simple auth manager).

A subprocess (``_ui_airflow_app.py``) builds ``airflow.api_fastapi.app.create_app()``
with the project's plugins folder, logs in as admin / viewer / op1 through
``POST /auth/token`` and uses the JWT as the UI does. Checked here: the plugin is
mounted and listed with its navigation entries, anonymous and forged requests get
no data, a viewer cannot release, an Op can, and the release is audited under
the Op's name.
"""

from __future__ import annotations

from pathlib import Path

from tests.ui.airflow_support import airflow_env, run_facts

from bridge.hub import engine as hub_engine
from bridge.hub import store

SCRIPT = Path(__file__).with_name("_ui_airflow_app.py")


def test_bridge_pages_behind_airflow_login(airflow_home: Path, hub_url: str, ui_data: Path, seed) -> None:
    entry_id = seed.quarantine("C-1001")
    facts = run_facts(SCRIPT, [str(entry_id)], airflow_env(airflow_home, hub_url, ui_data), timeout=180)

    # the plugin is mounted, and its pages are listed for the navigation
    assert facts["plugin"]["fastapi_apps"][0]["url_prefix"] == "/bridge"
    views = {v["name"]: v for v in facts["plugin"]["external_views"]}
    assert set(views) == {"经营日报", "数据健康", "隔离区", "同步状态", "历史迁移", "大屏", "客户文件", "客户旅程", "绩效与满意度"}
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

    from bridge.hub import audit

    with hub_engine.get_engine(hub_url).connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
        last = audit.tail(conn, 1)[0]
    # without BRIDGE_HUB_URL / AIRFLOW_CONN_BRIDGE_HUB the API server finds the Connection in the metadata DB
    assert facts["hub_url_from_metadata"] == f"sqlite:///{airflow_home / 'hub_in_metadata.sqlite'}"
    assert entry is not None
    assert entry.resolution == "released"
    assert entry.resolved_by == "op1"
    assert (last.operation, last.principal, last.detail) == ("quarantine_release", "op1", "released_by=op1")

"""``make airflow``'s environment: the user's own AIRFLOW_* settings win, one demo user per policy role with its
demo password in the simple auth manager's passwords file, the UI port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox import airflow_local, localenv

CONTRACT_ROLES = ["employee", "project_manager", "sales_manager", "finance", "management", "hr"]


def test_user_airflow_settings_win_over_the_defaults(tmp_path: Path) -> None:
    environ = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,emp:viewer",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW_CONN_CRM_DEFAULT": '{"conn_type": "hubspot_crm", "host": "https://api.hubapi.com"}',
        "AIRFLOW_VAR_REGION": "cn",
        "AIRFLOW_HOME": "/elsewhere",  # not a setting: the local home stays
        "HOME": "/home/x",
    }
    user = localenv.user_airflow_env(environ)
    assert set(user) == {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__CORE__PARALLELISM",
                         "AIRFLOW_CONN_CRM_DEFAULT", "AIRFLOW_VAR_REGION"}
    env = localenv.airflow_env(home=tmp_path / "home", data_dir=tmp_path / "data", extra=user)
    assert env[localenv.USERS_VAR] == "admin:admin,emp:viewer"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert env["AIRFLOW_CONN_CRM_DEFAULT"].startswith('{"conn_type": "hubspot_crm"')
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    # without settings of the user's, the defaults: the demo users
    plain = localenv.airflow_env(home=tmp_path / "home", data_dir=tmp_path / "data")
    assert plain[localenv.USERS_VAR] == localenv.users_setting(localenv.demo_users())


def test_launcher_keeps_the_users_settings_but_follows_the_chosen_port(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,emp:viewer", "AIRFLOW__API__PORT": "9091",
               "AIRFLOW__API__BASE_URL": "http://127.0.0.1:9091"}
    assert airflow_local.api_port(environ) == 9091
    assert airflow_local.launch_env(environ) == {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,emp:viewer"}
    assert airflow_local.api_port({"BRIDGE_AIRFLOW_PORT": "8090", "AIRFLOW__API__PORT": "9091"}) == 8090
    assert airflow_local.api_port({}) == 8080
    for bad in ("eighty", "70000"):
        with pytest.raises(SystemExit) as info:
            airflow_local.api_port({"BRIDGE_AIRFLOW_PORT": bad})
        assert "BRIDGE_AIRFLOW_PORT=8090 make airflow" in str(info.value)


def test_one_demo_user_per_policy_role() -> None:
    users = {u.name: u for u in localenv.demo_users()}
    policy = localenv._yaml_mapping(localenv.PERMISSIONS, "policy")["roles"]
    assert set(users) == {"admin", *policy} - {"wallboard"}, "the wall opens a kiosk link; nobody logs in as it"
    assert set(CONTRACT_ROLES) <= set(users)
    assert (users["admin"].airflow_role, users["admin"].policy_role) == ("admin", "management")
    assert {n: u.airflow_role for n, u in users.items() if u.airflow_role != "viewer"} == {
        "admin": "admin", "project_manager": "user", "sales_manager": "user"}
    assert all(u.password == f"{u.name}-demo" for u in users.values())
    assert users["hr"].label == "人力资源部"
    setting = localenv.users_setting(list(users.values()))
    assert localenv.configured_users(setting) == [(u.name, u.airflow_role) for u in users.values()]


def test_settings_map_each_demo_user_to_its_policy_role() -> None:
    """The printed policy role is what the pages apply: include/settings.yaml ui.user_roles."""
    mapping, default = localenv.policy_roles()
    assert default == "employee"
    for name in CONTRACT_ROLES:
        assert mapping.get(name) == name
    assert mapping.get("admin") == "management"


def test_demo_passwords_written_before_start_and_others_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = home / localenv.PASSWORDS_FILE_NAME
    path.write_text(json.dumps({"admin": "generated-earlier", "emp": "emp-secret"}))
    env = {"AIRFLOW_HOME": str(home), localenv.USERS_VAR: "admin:admin,emp:viewer,finance:viewer"}
    written = localenv.write_demo_passwords(env)
    assert written == {"admin": "admin-demo", "finance": "finance-demo"}  # only configured demo users
    assert json.loads(path.read_text()) == {"admin": "admin-demo", "emp": "emp-secret", "finance": "finance-demo"}
    assert path.stat().st_mode & 0o077 == 0
    # a passwords file of the user's choosing
    own = tmp_path / "own.json"
    localenv.write_demo_passwords({**env, localenv.PASSWORDS_FILE_VAR: str(own)})
    assert json.loads(own.read_text())["admin"] == "admin-demo"
    # a broken file: a clear error naming it, not a crash of the API server later
    path.write_text("{not json")
    with pytest.raises(RuntimeError) as info:
        localenv.write_demo_passwords(env)
    assert str(path) in str(info.value)
    assert "delete it" in str(info.value)


def test_users_table_lists_passwords_and_roles(tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), localenv.USERS_VAR: "admin:admin,employee:viewer,emp:viewer"}
    lines = airflow_local.users_table(env, {"admin": "admin-demo", "employee": "employee-demo"})
    assert len(lines) == 4
    assert lines[1].split() == ["admin", "admin-demo", "admin", "management", "管理层"]
    assert lines[2].split() == ["employee", "employee-demo", "viewer", "employee", "普通员工"]
    assert lines[3].split()[0] == "emp"
    assert lines[3].split()[-2:] == ["employee", "普通员工"]


def test_stored_connections_have_the_forms_shape() -> None:
    conns = airflow_local.stored_connections(41001, 41002, 41003)
    assert set(conns) == set(airflow_local.STORED_CONNECTIONS)
    for cid, port in (("crm_default", 41001), ("oa_default", 41002), ("smtp_default", 41003)):
        assert conns[cid]["port"] == port
        assert ":" not in str(conns[cid]["host"]).split("//")[-1], "the port lives in its own field"

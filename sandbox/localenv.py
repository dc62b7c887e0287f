"""The project-local Airflow environment used by ``make demo``, ``make airflow`` and tests.

Everything lives inside the checkout: ``.airflow/`` (AIRFLOW_HOME, SQLite
metadata, logs) and ``data/`` (hub database, reports, Data Docs). The API
server binds 127.0.0.1, parallelism is small, no example DAGs are loaded.
Connections come from environment variables (``AIRFLOW_CONN_*``), except where
``make airflow`` stores them in the metadata database (:func:`store_connections`)
so that the Connections page shows and tests them.

Users: one demo user per policy role of ``include/permissions.yaml`` plus
``admin`` (:func:`demo_users`), with fixed demo passwords written into the
simple auth manager's passwords file before the API server starts
(:func:`write_demo_passwords`). ``make airflow`` applies the user's own
``AIRFLOW__*`` / ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` variables over these
defaults (:func:`user_airflow_env`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = ROOT / ".airflow"
DATA_DIR = ROOT / "data"
BIN = Path(sys.executable).parent
PERMISSIONS = ROOT / "include" / "permissions.yaml"
SETTINGS = ROOT / "include" / "settings.yaml"

USERS_VAR = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
PASSWORDS_FILE_VAR = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"  # Airflow's default, in AIRFLOW_HOME
USER_ENV_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
ADMIN_USER = "admin"
ADMIN_POLICY_ROLE = "management"
# Airflow role of each demo user (docs: README "Users and roles"); a policy role not listed gets viewer.
AIRFLOW_ROLE_OF = {ADMIN_USER: "admin", "project_manager": "user", "sales_manager": "user"}


# Pools that bound the concurrent API tasks of all DAGs (the tenant's quota).
POOLS = [
    ("crm_api", 4, "HubSpot API quota shared by all bridge DAGs"),
    ("oa_api", 4, "Feishu API quota shared by all bridge DAGs"),
]


def project_airflow(home: Path, dags_folder: Path) -> dict[str, str]:
    """What every Airflow process of this checkout needs: its home and metadata database, our plugins and code."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }


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
            **project_airflow(home, ROOT / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            USERS_VAR: users_setting(demo_users()),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
            "BRIDGE_DATA_DIR": str(data_dir),
            "AIRFLOW_CONN_BRIDGE_HUB": json.dumps({"conn_type": "sqlite", "host": str(data_dir / "hub.sqlite")}),
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


# ---------------------------------------------------------------------------- the user's own settings


def user_airflow_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's own Airflow settings (``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``) from ``environ``.

    ``make airflow`` passes them as ``extra`` to :func:`airflow_env`, so they win over the defaults
    (e.g. ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,emp:viewer``). Empty values are kept:
    an empty variable is how a user switches a default off."""
    return {k: v for k, v in environ.items() if k.startswith(USER_ENV_PREFIXES)}


# ---------------------------------------------------------------------------- demo users


@dataclass(frozen=True)
class DemoUser:
    """A login of the local Airflow: named after the policy role it shows (admin: Airflow Admin)."""

    name: str
    airflow_role: str  # simple auth manager role: viewer | user | op | admin
    policy_role: str  # role of include/permissions.yaml
    label: str  # Chinese label of the policy role

    @property
    def password(self) -> str:
        return f"{self.name}-demo"


def _yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuntimeError(f"{path}: cannot read {what} ({exc})") from exc
    if not isinstance(data, dict):
        raise RuntimeError(f"{path}: expected a mapping at the top ({what})")
    return data


KIOSK_ROLE = "wallboard"


def demo_users(permissions: Path = PERMISSIONS) -> list[DemoUser]:
    """``admin`` plus one user per role of ``permissions.yaml`` (``roles:``), in the file's order; not for
    the ``wallboard`` role, which no person logs in as (the TV opens a kiosk link: ``bridge kiosk``)."""
    roles = _yaml_mapping(permissions, "the permission policy").get("roles")
    if not isinstance(roles, dict) or not roles:
        raise RuntimeError(f"{permissions}: no 'roles:' mapping; the demo users are named after its roles")
    labels = {str(k): str((v or {}).get("label", k)) if isinstance(v, dict) else str(k) for k, v in roles.items()}
    if ADMIN_POLICY_ROLE not in labels:
        raise RuntimeError(f"{permissions}: role {ADMIN_POLICY_ROLE!r} is missing; the admin demo user shows it")
    users = [DemoUser(ADMIN_USER, AIRFLOW_ROLE_OF[ADMIN_USER], ADMIN_POLICY_ROLE, labels[ADMIN_POLICY_ROLE])]
    for role, label in labels.items():
        if role not in (ADMIN_USER, KIOSK_ROLE):
            users.append(DemoUser(role, AIRFLOW_ROLE_OF.get(role, "viewer"), role, label))
    return users


def users_setting(users: Sequence[DemoUser]) -> str:
    """The ``[core] simple_auth_manager_users`` value: ``name:role,name:role``."""
    return ",".join(f"{u.name}:{u.airflow_role}" for u in users)


def configured_users(setting: str) -> list[tuple[str, str]]:
    """``(name, airflow role)`` of a ``simple_auth_manager_users`` value (as Airflow splits it)."""
    out = []
    for item in setting.split(","):
        parts = item.strip().split(":")
        if parts[0]:
            out.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return out


def passwords_file(env: Mapping[str, str]) -> Path:
    """Where the simple auth manager of ``env`` keeps its passwords."""
    configured = env.get(PASSWORDS_FILE_VAR)
    return Path(configured) if configured else Path(env["AIRFLOW_HOME"]) / PASSWORDS_FILE_NAME


def write_demo_passwords(env: Mapping[str, str], users: Sequence[DemoUser] | None = None) -> dict[str, str]:
    """Give every demo user that ``env`` configures its demo password, in the passwords file, before the API
    server starts. Airflow keeps the passwords it finds there and generates one only for a user it does not
    find; other users' entries are left as they are. Returns the demo passwords written."""
    path = passwords_file(env)
    wanted = {name for name, _ in configured_users(env.get(USERS_VAR, ""))}
    demo = {u.name: u.password for u in (demo_users() if users is None else users) if u.name in wanted}
    current: dict[str, Any] = {}
    if path.exists() and path.read_text().strip():
        try:
            current = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path} is not JSON ({exc}); it is the simple auth manager's passwords file: "
                               f"fix it or delete it (the passwords are written again at start)") from exc
        if not isinstance(current, dict):
            raise RuntimeError(f"{path}: expected a JSON object of user → password; fix it or delete it")
    if all(current.get(k) == v for k, v in demo.items()):
        return demo
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**current, **demo}) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return demo


def policy_roles(settings: Path = SETTINGS) -> tuple[dict[str, str], str | None]:
    """``ui.user_roles`` and ``ui.default_role`` of the settings: which policy role an Airflow user sees."""
    ui = _yaml_mapping(settings, "the settings").get("ui") or {}
    mapping = ui.get("user_roles") or {} if isinstance(ui, dict) else {}
    default = ui.get("default_role") if isinstance(ui, dict) else None
    return {str(k): str(v) for k, v in mapping.items()}, (str(default) if default else None)


# ---------------------------------------------------------------------------- connections in the metadata DB


def store_connections(env: Mapping[str, str], connections: Mapping[str, Mapping[str, Any]],
                      log_path: Path) -> list[str]:
    """Create or replace ``connections`` (conn id → fields) in the metadata database of ``env`` with
    ``airflow connections import --overwrite``, so the Connections page lists, edits and tests them.

    A conn id that ``env`` also defines as ``AIRFLOW_CONN_<ID>`` is skipped: the environment variable would
    win over the stored row (Airflow reads environment variables first), and the page would show a
    Connection the DAGs do not use. Returns the ids stored."""
    wanted = {cid: dict(fields) for cid, fields in connections.items()
              if f"AIRFLOW_CONN_{cid.upper()}" not in env}
    if not wanted:
        return []
    records = {cid: {**f, "extra": json.dumps(f["extra"]) if isinstance(f.get("extra"), dict) else f.get("extra")}
               for cid, f in wanted.items()}
    fd, name = tempfile.mkstemp(prefix="connections-", suffix=".json", dir=env["AIRFLOW_HOME"])
    try:
        with os.fdopen(fd, "w") as fh:  # simulator credentials; removed right after the import
            json.dump(records, fh)
        result = airflow(["connections", "import", "--overwrite", name], env, timeout=300, check=False)
    finally:
        Path(name).unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write(f"\n$ airflow connections import --overwrite <{', '.join(records)}>\n{result.stdout}{result.stderr}")
    missing = [cid for cid in records if f"Imported connection {cid}" not in result.stdout]
    if result.returncode != 0 or missing:
        raise RuntimeError(f"airflow connections import did not store {missing or list(records)} "
                           f"(exit {result.returncode}); see {log_path}")
    return list(records)

"""Where the hub database is, how to connect to it, and its Alembic migrations.

The hub is reached through the Airflow Connection ``bridge_hub``. Resolution
order of :func:`hub_url`:

1. ``BRIDGE_HUB_URL`` (an SQLAlchemy URL) — tests and tools;
2. ``AIRFLOW_CONN_BRIDGE_HUB`` (Airflow's JSON or URI form), parsed by Airflow's
   ``Connection`` without a lookup, so the CLI and the init container need no
   Airflow metadata database;
3. the Airflow Connection itself (secrets backends, metadata DB, the Execution
   API in a task) — only asked when Airflow is already loaded in the process,
   so the CLI does not pay Airflow's import time;
4. the embedded default ``sqlite:///<BRIDGE_DATA_DIR>/hub.sqlite``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from bridge import settings

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "bridge_hub"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Key of the PostgreSQL advisory lock that serialises migrations ("bridgehub").
MIGRATION_LOCK_KEY = 0x62726964676568

# libpq parameters passed through from a Connection's extras; other extras
# (Airflow's own, e.g. "cursor") are not connection parameters.
_LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
    }
)


class HubConfigError(ValueError):
    """The hub Connection cannot be turned into a database URL; the message says why."""


class HubSchemaError(RuntimeError):
    """The hub's schema revision is unknown to this code (e.g. a newer release migrated it)."""


# ---------------------------------------------------------------- URL


def _parse_airflow_conn(raw: str, conn_id: str) -> dict[str, Any]:
    """An ``AIRFLOW_CONN_*`` value (JSON or URI) as Connection fields, parsed by Airflow's own ``Connection``.

    Airflow is imported here, when the variable is set, not with this module:
    the CLI and the simulators import the hub engine without Airflow configured.
    """
    raw = raw.strip()
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    is_json = raw.startswith("{")
    if not is_json and not urlsplit(raw).scheme:
        raise HubConfigError(
            f"{name}: neither JSON nor a URI "
            "(expected e.g. postgresql://user:pass@host:5432/hub or sqlite:////path/hub.sqlite)"
        )
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowException

    try:
        conn = (
            Connection.from_json(raw, conn_id=conn_id)
            if is_json
            else Connection.from_uri(raw, conn_id=conn_id)
        )
    except json.JSONDecodeError as exc:
        raise HubConfigError(f"{name}: invalid JSON ({exc})") from exc
    except (AirflowException, TypeError, ValueError) as exc:
        raise HubConfigError(f"{name}: not an Airflow Connection ({exc})") from exc
    try:
        extra = json.loads(conn.extra) if conn.extra and conn.extra.strip() else {}
    except json.JSONDecodeError as exc:
        raise HubConfigError(f"{name}: extra is not JSON ({exc})") from exc
    return _fields(conn, extra)


def _fields(conn: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an Airflow ``Connection`` the hub URL is made of."""
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "schema": conn.schema,
        "extra": extra,
    }


def _sqlite_url(path: str) -> str:
    if path == ":memory:":
        return "sqlite://"
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = settings.PROJECT_ROOT / file
    return f"sqlite:///{file}"


def url_from_connection(fields: Mapping[str, Any], conn_id: str = DEFAULT_CONN_ID) -> str:
    """An SQLAlchemy URL from Airflow Connection fields (conn_type sqlite or postgres)."""
    conn_type = str(fields.get("conn_type") or "").lower()
    host = fields.get("host") or ""
    schema = fields.get("schema") or ""
    if conn_type == "sqlite":
        path = host or schema
        if not path:
            raise HubConfigError(f"Connection {conn_id}: sqlite needs the database file path in host")
        return _sqlite_url(path)
    if conn_type in {"postgres", "postgresql"}:
        if not host:
            raise HubConfigError(f"Connection {conn_id}: postgres needs a host")
        extra = fields.get("extra") or {}
        query = {k: str(v) for k, v in extra.items() if k in _LIBPQ_EXTRAS and v is not None}
        url = URL.create(
            "postgresql+psycopg2",
            username=fields.get("login") or None,
            password=fields.get("password") or None,
            host=host,
            port=int(fields["port"]) if fields.get("port") else None,
            database=schema or "postgres",
            query=query,
        )
        return url.render_as_string(hide_password=False)
    raise HubConfigError(
        f"Connection {conn_id}: conn_type {conn_type!r} is not supported for the hub; use sqlite or postgres"
    )


def _airflow_connection(conn_id: str) -> dict[str, Any] | None:
    """The Connection from Airflow's own lookup, or None when it is not defined.

    Inside the API server (the bridge's UI pages) the task SDK's lookup does not
    see Connections stored in the metadata database, so the server-side lookup
    (environment, secrets backends, metadata database) is used there.
    """
    conn: Any
    if "airflow.api_fastapi.app" in sys.modules:
        from airflow.models.connection import Connection

        try:
            conn = Connection.get_connection_from_secrets(conn_id)
        except Exception as exc:
            if type(exc).__name__ == "AirflowNotFoundException":
                return None
            raise
    else:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None
    return _fields(conn, conn.extra_dejson)


def default_url() -> str:
    """The embedded default: a SQLite file in the project's data folder."""
    return f"sqlite:///{settings.data_dir() / 'hub.sqlite'}"


def hub_url(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The SQLAlchemy URL of the hub database (see the module docstring for the order)."""
    override = os.environ.get("BRIDGE_HUB_URL")
    if override:
        return override
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return url_from_connection(_parse_airflow_conn(raw, conn_id), conn_id)
    if "airflow.sdk" in sys.modules or "airflow.api_fastapi.app" in sys.modules:
        fields = _airflow_connection(conn_id)
        if fields is not None:
            return url_from_connection(fields, conn_id)
    return default_url()


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for logs and CLI output."""
    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- engines

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    common: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **common,
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, **common)


def get_engine(url: str | None = None) -> Engine:
    """The engine of the hub at ``url`` (default :func:`hub_url`), one per URL per process."""
    key = url or hub_url()
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(key)
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests, and before a process hands over its work)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _schema_ok.clear()


def _after_fork_in_child() -> None:
    # A forked worker must not share pooled connections with its parent.
    for engine in list(_engines.values()):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _as_engine(url_or_engine: str | Engine | None) -> Engine:
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    return get_engine(url_or_engine)


# ---------------------------------------------------------------- migrations


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the migration lock of the database.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock first (and makes the DDL
    atomic); PostgreSQL: ``env.py`` takes an advisory transaction lock. A
    second process waits, then finds the schema current and does nothing.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


# Alembic's ``context``/``op`` are module-level proxies: one migration per process at a time.
_alembic_lock = threading.Lock()


def _run_alembic(url_or_engine: str | Engine | None, action: Callable[[Any], None]) -> None:
    engine = _as_engine(url_or_engine)
    with _alembic_lock, _migration_connection(engine) as conn:
        action(_alembic_config(conn))
    _schema_ok.discard(engine.url.render_as_string(hide_password=False))


def upgrade(url_or_engine: str | Engine | None = None, revision: str = "head") -> None:
    """Migrate the hub up to ``revision`` (default: the newest)."""
    from alembic import command

    _run_alembic(url_or_engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url_or_engine: str | Engine | None = None, revision: str = "base") -> None:
    """Migrate the hub down to ``revision``; ``base`` drops every hub table (and its data)."""
    from alembic import command

    _run_alembic(url_or_engine, lambda cfg: command.downgrade(cfg, revision))


def _scripts() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def known_revisions() -> set[str]:
    """Every revision shipped with this code."""
    return {script.revision for script in _scripts().walk_revisions()}


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no Alembic revisions found in " + str(MIGRATIONS_DIR))
    return head


def current_revision(url_or_engine: str | Engine | None = None) -> str | None:
    """The revision the hub is at, None for an empty (never migrated) database."""
    from alembic.runtime.migration import MigrationContext

    engine = _as_engine(url_or_engine)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_schema_ok: set[str] = set()


def ensure_schema(url_or_engine: str | Engine | None = None) -> Engine:
    """Make sure the hub is at the head revision; cheap after the first call in a process.

    Every task may call it: the check is one query, and concurrent upgrades
    serialise on the migration lock (the loser finds nothing left to do).
    """
    engine = _as_engine(url_or_engine)
    key = engine.url.render_as_string(hide_password=False)
    if key in _schema_ok:
        return engine
    head = head_revision()
    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise HubSchemaError(
            f"hub {masked(engine.url)} is at revision {current}, unknown to this code (newest {head}): "
            "deploy the release that migrated it, or downgrade the hub with that release"
        )
    if current != head:
        log.info("Upgrading hub schema at %s to %s", masked(engine.url), head)
        upgrade(engine, "head")
    _schema_ok.add(key)
    return engine

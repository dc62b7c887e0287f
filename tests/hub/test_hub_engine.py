"""Where the hub is (bridge_hub Connection), engines, and UTC timestamps on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from bridge import settings
from bridge.hub import engine as hub_engine
from bridge.hub.schema import watermark


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("BRIDGE_HUB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_BRIDGE_HUB", raising=False)
    return monkeypatch


def test_hub_url_defaults_to_sqlite_in_the_data_folder(clean_env: pytest.MonkeyPatch, data_dir: Path) -> None:
    assert hub_engine.hub_url() == f"sqlite:///{data_dir / 'hub.sqlite'}"


def test_hub_url_override_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AIRFLOW_CONN_BRIDGE_HUB", '{"conn_type": "sqlite", "host": "/srv/a.sqlite"}')
    clean_env.setenv("BRIDGE_HUB_URL", "sqlite:////tmp/override.sqlite")
    assert hub_engine.hub_url() == "sqlite:////tmp/override.sqlite"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"conn_type": "sqlite", "host": "/srv/bridge/hub.sqlite"}', "sqlite:////srv/bridge/hub.sqlite"),
        ("sqlite:////srv/bridge/hub.sqlite", "sqlite:////srv/bridge/hub.sqlite"),
        ("sqlite://%2Fsrv%2Fbridge%2Fhub.sqlite", "sqlite:////srv/bridge/hub.sqlite"),
        (
            '{"conn_type": "sqlite", "host": "data/hub.sqlite"}',
            f"sqlite:///{settings.PROJECT_ROOT / 'data/hub.sqlite'}",
        ),
    ],
)
def test_hub_url_from_sqlite_connection(clean_env: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    clean_env.setenv("AIRFLOW_CONN_BRIDGE_HUB", raw)
    assert hub_engine.hub_url() == expected


def test_hub_url_from_postgres_uri_keeps_encoded_credentials_and_libpq_extras(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(
        "AIRFLOW_CONN_BRIDGE_HUB",
        "postgres://bridge%40corp:p%2Fss%3Aw%40rd@db.internal:6432/hub?sslmode=require&cursor=realdictcursor",
    )
    url = make_url(hub_engine.hub_url())
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "bridge@corp",
        "p/ss:w@rd",
        "db.internal",
        6432,
        "hub",
    )
    assert dict(url.query) == {"sslmode": "require"}  # Airflow-only extras are not libpq parameters
    assert "p/ss" not in hub_engine.masked(url)


def test_hub_url_from_postgres_json_with_string_extra(clean_env: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "login": "postgres",
        "password": None,
        "port": 5432,
        "schema": "bridge",
        "extra": json.dumps({"application_name": "bridge", "connect_timeout": 5}),
    }
    clean_env.setenv("AIRFLOW_CONN_BRIDGE_HUB", json.dumps(conn))
    url = make_url(hub_engine.hub_url())
    assert (url.host, url.database, url.password) == ("127.0.0.1", "bridge", None)
    assert dict(url.query) == {"application_name": "bridge", "connect_timeout": "5"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"conn_type": "mysql", "host": "db"}', "use sqlite or postgres"),
        ('{"conn_type": "sqlite"}', "file path"),
        ('{"conn_type": "postgres"', "invalid JSON"),
        ("just-a-host-name", "neither JSON nor a URI"),
        ('{"conn_type": "postgres"}', "needs a host"),
        ('{"conn_type": "postgres", "host": "db", "extra": "{sslmode"}', "extra is not JSON"),
        ('{"conn_type": "postgres", "host": "db", "port": "five"}', "not an Airflow Connection"),
    ],
)
def test_hub_url_bad_connections_say_what_to_fix(
    clean_env: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    clean_env.setenv("AIRFLOW_CONN_BRIDGE_HUB", raw)
    with pytest.raises(hub_engine.HubConfigError, match=message):
        hub_engine.hub_url()


def test_hub_url_parser_agrees_with_airflow(clean_env: pytest.MonkeyPatch) -> None:
    """Airflow's own Connection lookup (used inside tasks) and our fast parser give the same URL."""
    raws = [
        "postgres://bridge%40corp:p%2Fss@db.internal:6432/hub?sslmode=require",
        '{"conn_type": "postgres", "host": "h", "login": "u", "password": "pw:x", "port": 5433, "schema": "s"}',
        "sqlite:////srv/bridge/hub.sqlite",
        '{"conn_type": "sqlite", "host": "/srv/hub.sqlite"}',
    ]
    for i, raw in enumerate(raws):
        conn_id = f"bridge_hub_alt{i}"
        clean_env.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", raw)
        ours = hub_engine.url_from_connection(hub_engine._parse_airflow_conn(raw, conn_id))
        fields = hub_engine._airflow_connection(conn_id)
        assert fields is not None
        assert hub_engine.url_from_connection(fields) == ours, raw
    assert hub_engine._airflow_connection("bridge_hub_not_defined") is None


def test_hub_engine_is_cached_and_sqlite_is_tuned(sqlite_url: str) -> None:
    engine = hub_engine.get_engine(sqlite_url)
    assert hub_engine.get_engine(sqlite_url) is engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == hub_engine.SQLITE_BUSY_TIMEOUT_MS
    hub_engine.dispose_engines()
    assert hub_engine.get_engine(sqlite_url) is not engine


def test_hub_timestamps_are_utc_aware_and_naive_ones_refused(hub: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=shanghai)
    with hub.begin() as conn:
        conn.execute(insert(watermark).values(stream="s", value_ms=1, updated_at=local))
        stored = conn.execute(select(watermark.c.updated_at)).scalar_one()
        assert stored == local
        assert stored.tzinfo is not None
        assert stored.utcoffset() == timedelta(0)
        assert stored == datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=UTC)
        # Comparisons in SQL use the same instant, whatever the offset of the parameter.
        found = conn.execute(
            select(watermark.c.stream).where(watermark.c.updated_at < local + timedelta(seconds=1))
        )
        assert found.scalars().all() == ["s"]
    with pytest.raises(StatementError, match="naive datetime"), hub.begin() as conn:
        conn.execute(insert(watermark).values(stream="n", value_ms=1, updated_at=datetime(2026, 1, 1)))


def test_the_engine_module_and_the_default_url_do_not_import_airflow(data_dir: Path) -> None:
    """The CLI and the simulators import the hub engine; Airflow is imported only to parse an AIRFLOW_CONN_*."""
    code = (
        "import os, sys; os.environ.pop('BRIDGE_HUB_URL', None); os.environ.pop('AIRFLOW_CONN_BRIDGE_HUB', None)\n"
        "from bridge.hub import engine\n"
        "assert engine.hub_url().startswith('sqlite:///')\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(settings.PROJECT_ROOT / "plugins"), str(settings.PROJECT_ROOT)]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout

"""Hub fixtures: a migrated SQLite file per test, and a PostgreSQL database per session.

SQLite tests copy a template migrated once per session (fast, isolated). The
PostgreSQL database is ``bridge_hubtest_<pid>`` (unique per xdist worker),
migrated once, emptied between tests and dropped at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from tests.hub_support import migrated_sqlite_hub
from tests.pg_support import create_pg_database, drop_pg_database

from bridge.hub import engine as hub_engine
from bridge.hub.schema import metadata


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_hub(tmp_path_factory.mktemp("hub_template") / "hub.sqlite")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "hub.sqlite"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def pg_hub_url(pg_dsn: str) -> Iterator[str]:
    name = f"bridge_hubtest_{os.getpid()}"
    url = create_pg_database(pg_dsn, name)
    hub_engine.upgrade(url)
    yield url
    drop_pg_database(pg_dsn, name)


def _empty_pg(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture
def pg_hub(pg_hub_url: str) -> Engine:
    """The session's PostgreSQL hub, emptied (mark the test ``pg``)."""
    engine = hub_engine.get_engine(pg_hub_url)
    _empty_pg(engine)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def hub(request: pytest.FixtureRequest) -> Engine:
    """A hub at head, empty, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return hub_engine.get_engine(request.getfixturevalue("sqlite_url"))
    engine: Engine = request.getfixturevalue("pg_hub")
    return engine


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    """Each test's SQLite file is its own; do not keep their connections open."""
    yield
    hub_engine.dispose_engines()

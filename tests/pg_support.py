"""A scratch PostgreSQL database per test module or fixture (tests marked ``pg``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url

from bridge.hub import engine as hub_engine
from sandbox.celery_stack import pg_admin


def pg_url(pg_dsn: str, database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the server of ``pg_dsn``."""
    return make_url(pg_dsn).set(drivername="postgresql+psycopg2", database=database).render_as_string(
        hide_password=False)


def create_pg_database(pg_dsn: str, name: str) -> str:
    pg_admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(pg_dsn, f'CREATE DATABASE "{name}"')
    return pg_url(pg_dsn, name)


def drop_pg_database(pg_dsn: str, name: str) -> None:
    hub_engine.dispose_engines()
    pg_admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(pg_dsn: str, purpose: str) -> Iterator[str]:
    """An empty database ``bridge_<purpose>test_<pid>`` (one per xdist worker), dropped afterwards."""
    name = f"bridge_{purpose}test_{os.getpid()}"
    url = create_pg_database(pg_dsn, name)
    try:
        yield url
    finally:
        drop_pg_database(pg_dsn, name)

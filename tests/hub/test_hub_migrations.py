"""Alembic migrations of the hub: up from empty, down to base, schema equals schema.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, select, text
from tests.pg_support import create_pg_database, drop_pg_database

from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_head, metadata

ALL_TABLES = {t.name for t in metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'hub.sqlite'}"
        return
    pg_dsn = request.getfixturevalue("pg_dsn")
    name = f"bridge_hubtest_{os.getpid()}_mig"
    yield create_pg_database(pg_dsn, name)
    drop_pg_database(pg_dsn, name)


def diff(engine: Engine, target: MetaData = metadata) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, target))


def test_hub_upgrade_from_empty_matches_schema_and_downgrade_to_base(empty_url: str) -> None:
    engine = hub_engine.get_engine(empty_url)
    assert hub_engine.current_revision(engine) is None
    hub_engine.upgrade(engine)
    assert hub_engine.current_revision(engine) == hub_engine.head_revision()
    assert set(inspect(engine).get_table_names()) == ALL_TABLES | {"alembic_version"}
    assert diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(audit_head)).all() == [(1, 0, "0" * 64)]

    # The comparison is not vacuous: a column the migrations lack is reported.
    changed = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["watermark"].append_column(Column("extra_column", Integer))
    assert any("extra_column" in repr(d) for d in diff(engine, changed))

    hub_engine.downgrade(engine, "base")
    assert hub_engine.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    hub_engine.upgrade(engine)  # and back up again
    assert diff(engine) == []


_TASK = """
import sys, time
sys.path.insert(0, {plugins!r})
from bridge.hub import engine
start_at = float(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.005)
engine.ensure_schema(sys.argv[1])
print(engine.current_revision(sys.argv[1]))
"""


def test_hub_ensure_schema_is_safe_for_tasks_starting_at_once(empty_url: str) -> None:
    """Three task processes start together on an empty hub: one migrates, the others wait and find it done."""
    plugins = str(Path(hub_engine.__file__).resolve().parents[2])
    script = _TASK.format(plugins=plugins)
    start_at = f"{time.time() + 2.5:.3f}"  # after every process has imported alembic
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_url, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [proc.communicate(timeout=120) for proc in procs]
    head = hub_engine.head_revision()
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == head
    engine = hub_engine.get_engine(empty_url)
    with engine.connect() as conn:
        assert conn.execute(select(audit_head)).all() == [(1, 0, "0" * 64)]  # genesis inserted once
    assert diff(engine) == []


def test_hub_ensure_schema_in_threads_and_again_is_cheap(empty_url: str) -> None:
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def task() -> None:
        try:
            start.wait()
            hub_engine.ensure_schema(empty_url)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=task) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    engine = hub_engine.get_engine(empty_url)
    assert hub_engine.current_revision(engine) == hub_engine.head_revision()
    assert hub_engine.ensure_schema(empty_url) is engine


def test_hub_ensure_schema_refuses_an_unknown_revision(sqlite_url: str) -> None:
    engine = hub_engine.get_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(hub_engine.HubSchemaError, match="from_the_future"):
        hub_engine.ensure_schema(engine)


def test_hub_failed_sqlite_migration_leaves_nothing_half_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite migrations run in one transaction: a failure rolls every table back."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    from alembic import op

    real = op.create_table
    calls = {"n": 0}

    def failing_create_table(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(op, "create_table", failing_create_table)
    with pytest.raises(RuntimeError, match="disk full"):
        hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert hub_engine.current_revision(engine) is None
    monkeypatch.setattr(op, "create_table", real)
    hub_engine.upgrade(url)
    assert diff(engine) == []

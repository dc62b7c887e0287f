"""The main CRM → OA path on a PostgreSQL hub (the production database)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from sqlalchemy import make_url
from tests.sync.sync_c2o_world import C2O, FORMER_OWNER

from bridge.hub import engine as hub_engine


def _admin(pg_dsn: str, sql: str) -> None:
    conn = psycopg2.connect(pg_dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def pg_hub(pg_dsn: str) -> Iterator[str]:
    name = f"bridge_c2otest_{os.getpid()}"
    _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(pg_dsn, f'CREATE DATABASE "{name}"')
    url = make_url(pg_dsn).set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        hub_engine.dispose_engines()
        _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.pg
def test_main_path_on_postgresql(pg_hub: str, c2o_factory: Callable[..., C2O]) -> None:
    c2o = c2o_factory(pg_hub)
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="70000.00")
    lost = c2o.create_deal(company, stage="contractsent", owner=FORMER_OWNER)
    _, loaded = c2o.sync()
    assert loaded.counts["instances_created"] == 1
    assert loaded.counts["writebacks"] == 1
    [instance] = c2o.instances_of(deal)
    assert c2o.crm_object("deals", deal)["oa_project_no"] == instance["serial_number"]
    entry = c2o.open_quarantine(lost)
    assert entry is not None
    assert entry.reason_code == "owner_not_in_oa"
    c2o.edit("deals", deal, {"amount": "75000.00"})
    c2o.tick(5)
    _, loaded = c2o.sync()
    assert loaded.counts["notices_sent"] == 1
    c2o.tick(61)
    _, loaded = c2o.sync()
    assert loaded.counts.get("written", 0) == 0
    assert len(c2o.instances_of(deal)) == 1
    assert len(c2o.instances("contract_amount_notice")) == 1
    assert c2o.pending() == []

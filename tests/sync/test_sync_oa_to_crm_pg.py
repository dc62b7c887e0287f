"""The OA → CRM path on a PostgreSQL hub (the production database): sweeps over JSON payloads, links, conflicts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import make_url
from tests.sync.sync_o2c_world import make_o2c

from bridge.hub import engine as hub_engine
from sandbox import launcher


def _admin(pg_dsn: str, sql: str) -> None:
    conn = psycopg2.connect(pg_dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def o2c_pg_hub(pg_dsn: str) -> Iterator[str]:
    name = f"bridge_o2ctest_{os.getpid()}"
    _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(pg_dsn, f'CREATE DATABASE "{name}"')
    url = make_url(pg_dsn).set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        hub_engine.dispose_engines()
        _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.pg
def test_main_path_on_postgresql(o2c_pg_hub: str, c2o_sims: launcher.Simulators,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    o2c = make_o2c(c2o_sims, o2c_pg_hub, monkeypatch)
    company, deal, code = o2c.linked_deal()
    expense = o2c.expense(company, amount=77)
    o2c.sync()
    o2c.act("approve", code)
    o2c.act("approve", expense)
    counts = o2c.sync()
    assert counts["status_changed"] == 2, "the sweep's JSON queries work on PostgreSQL"
    assert counts["written_deal"] == 1
    assert counts["written_notes"] == 1
    assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
    o2c.c2o.edit("deals", deal, {"oa_project_no": "手改"})
    o2c.c2o_sync()
    counts = o2c.sync()
    assert counts["conflicts"] == 1
    assert o2c.deal(deal)["oa_project_no"] == o2c.instance(code)["serial_number"]
    o2c.act("delete", expense)
    assert o2c.sync()["voided_notes"] == 1
    assert o2c.sync().get("written", 0) == 0
    o2c.c2o.crm.close()
    o2c.c2o.oa.close()

"""The pages on a PostgreSQL hub (production): same reads, same release, same refusals."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import make_url

from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.ui.app import UiConfig

pytestmark = pytest.mark.pg


def _admin(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pg_hub(pg_dsn: str) -> Iterator[str]:
    name = f"bridge_uitest_{os.getpid()}"
    _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(pg_dsn, f'CREATE DATABASE "{name}"')
    url = make_url(pg_dsn).set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    hub_engine.upgrade(url)
    yield url
    hub_engine.get_engine(url).dispose()
    _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pages_and_release_on_postgres(pg_hub: str, ui_data: Path, auth, make_client, seeder_for) -> None:
    seed = seeder_for(pg_hub)
    entry_id = seed.quarantine("C-1001")
    seed.quarantine("D-7", entity="deal", reason="owner_not_in_oa", owner="owner-9")
    seed.watermark("crm.deal", 1_764_000_000_000)
    seed.run("crm_to_oa")
    seed.report("2026-11-26")
    seed.score("2026-11-26", "overall", "overall", 88.0)
    seed.score("2026-11-25", "overall", "overall", 90.0)
    seed.migration("manual__pg")
    config = UiConfig(authenticator=auth, csrf_secret=b"k", hub_url=pg_hub, data_dir=ui_data, page_size=1)
    with make_client(config) as client:
        for path in ("/bridge/", "/bridge/reports", "/bridge/health", "/bridge/sync", "/bridge/migration",
                     "/bridge/quarantine", "/bridge/quarantine?reason=owner_not_in_oa&page=1",
                     f"/bridge/quarantine/{entry_id}"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
        listing = client.get("/bridge/quarantine", params={"page": 2}).text
        assert "第 2 / 2 页" in listing
        detail = client.get(f"/bridge/quarantine/{entry_id}").text
        assert "138****5678" in detail
        assert "13812345678" not in detail
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', detail)
        assert token is not None
        released = client.post(f"/bridge/quarantine/{entry_id}/release",
                               data={"csrf_token": token.group(1), "confirm": "yes"})
        assert released.status_code == 303
        again = client.post(f"/bridge/quarantine/{entry_id}/release",
                            data={"csrf_token": token.group(1), "confirm": "yes"})
        assert again.status_code == 409
    with hub_engine.get_engine(pg_hub).connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
    assert entry is not None
    assert entry.resolved_by == "wangfang"

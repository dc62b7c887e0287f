"""The pages on a PostgreSQL hub (production): same reads, same release, same refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_support import scratch_database

from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.ui.app import UiConfig

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pg_hub(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "ui") as url:
        hub_engine.upgrade(url)
        yield url


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
    from bridge.settings import UiRoles

    roles = UiRoles({"wangfang": "project_manager"}, "employee", "tests")  # 项目经理: contact phone masked
    config = UiConfig(
        authenticator=auth, csrf_secret=b"k", hub_url=pg_hub, data_dir=ui_data, page_size=1, roles=roles
    )
    with make_client(config) as client:
        for path in (
            "/bridge/",
            "/bridge/reports",
            "/bridge/health",
            "/bridge/sync",
            "/bridge/migration",
            "/bridge/quarantine",
            "/bridge/quarantine?reason=owner_not_in_oa&page=1",
            f"/bridge/quarantine/{entry_id}",
        ):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
        listing = client.get("/bridge/quarantine", params={"page": 2}).text
        assert "第 2 / 2 页" in listing
        detail = client.get(f"/bridge/quarantine/{entry_id}").text
        assert "138****5678" in detail
        assert "13812345678" not in detail
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', detail)
        assert token is not None
        released = client.post(
            f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token.group(1), "confirm": "yes"}
        )
        assert released.status_code == 303
        again = client.post(
            f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token.group(1), "confirm": "yes"}
        )
        assert again.status_code == 409
    with hub_engine.get_engine(pg_hub).connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
    assert entry is not None
    assert entry.resolved_by == "wangfang"

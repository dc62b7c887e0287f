"""The OA → CRM path on a PostgreSQL hub (the production database): sweeps over JSON payloads, links, conflicts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.pg_support import scratch_database
from tests.sync.sync_o2c_world import make_o2c

from sandbox import launcher


@pytest.fixture
def o2c_pg_hub(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "o2c") as url:
        yield url


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

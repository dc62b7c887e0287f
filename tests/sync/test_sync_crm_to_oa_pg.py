"""The main CRM → OA path on a PostgreSQL hub (the production database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from tests.pg_support import scratch_database
from tests.sync.sync_c2o_world import C2O, FORMER_OWNER


@pytest.fixture
def pg_hub(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "c2o") as url:
        yield url


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


@pytest.mark.pg
def test_a_bulk_extract_keeps_the_planner_statistics_fresh(pg_hub: str, c2o_factory: Callable[..., C2O],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A never-analysed snapshot table looks empty to PostgreSQL's planner, which then scans a whole
    entity for every staging page; the extract runs ANALYZE as the table grows (here at 2, 4, … rows)."""
    from sqlalchemy import text

    from bridge.sync.crm_to_oa import extract

    monkeypatch.setattr(extract, "ANALYZE_FIRST_AT", 2)
    c2o = c2o_factory(pg_hub)
    company, _ = c2o.customer()
    for _ in range(3):
        c2o.create_deal(company)
    analysed = text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'snapshot'")
    with c2o.hub.connect() as conn:
        before = conn.execute(analysed).scalar_one()
    tally = c2o.extract()
    assert tally.counts["staged"] >= 4
    with c2o.hub.connect() as conn:
        after = conn.execute(analysed).scalar_one()
    assert after > before, "ANALYZE ran during the extract"

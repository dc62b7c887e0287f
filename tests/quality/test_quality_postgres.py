"""The suites read a PostgreSQL hub the same way (server-side cursor) and store the same results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_support import scratch_database

from bridge.hub import engine as hub_engine
from bridge.quality import failing_checks, score_trend
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, run_checks
from sandbox.scenario.data_health import stage_world

from .conftest import DAY, NOW, Seeded, inject, small_world

pytestmark = pytest.mark.pg


@pytest.fixture
def pg_seeded(pg_dsn: str, dictionary, tmp_path: Path) -> Iterator[Seeded]:  # type: ignore[no-untyped-def]
    with scratch_database(pg_dsn, "quality") as url:
        hub = hub_engine.ensure_schema(url)
        seeded = Seeded(world=small_world(), dictionary=dictionary, url=url)
        stage_world(hub, seeded.world, dictionary)
        inject(seeded)
        yield seeded


def test_the_suites_run_on_postgresql(pg_seeded: Seeded, tmp_path: Path) -> None:
    run = run_checks(pg_seeded.engine(), day=DAY, run_id="pg", now=NOW, dictionary=pg_seeded.dictionary,
                     cfg=HealthSettings(failing_ids_kept=500, snapshot_batch=100),
                     output=HealthOutput(tmp_path, build_docs=False))
    assert pg_seeded.mismatch_deal in run.outcome("deal.contract_amount.amount_consistent").failing_ids
    assert pg_seeded.duplicate_company in run.outcome("company.customer.duplicate_customer").failing_ids
    assert run.outcome("project_initiation.deal_id.deal_exists").failing_ids == [pg_seeded.unlinked_project]
    assert not run.outcome("quarantine.unmapped_value.backlog").success
    assert all(o.gx_unexpected == o.failed for o in run.outcomes if o.check.row_level)
    with pg_seeded.engine().connect() as conn:
        stored = {r.check_id for r in failing_checks(conn, DAY)}
        trend = score_trend(conn)
    assert stored == {o.check.check_id for o in run.failing}
    assert [t.score for t in trend] == [run.overall]


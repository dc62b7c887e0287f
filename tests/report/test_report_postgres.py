"""The same report from a PostgreSQL hub: every table equals the one built from SQLite."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.pg_support import scratch_database

from bridge.report import load, marts
from bridge.report.build import owner_names
from bridge.report.periods import report_periods

from .conftest import BUILT_AT, REPORT_DAY, stage_hub

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pg_hub(pg_dsn, report_hub):  # type: ignore[no-untyped-def]
    with scratch_database(pg_dsn, "report") as url:
        yield stage_hub(url, report_hub.world, report_hub.oa_details, report_hub.dictionary)


def _marts(hub, policy):  # type: ignore[no-untyped-def]
    periods = report_periods(REPORT_DAY)
    with hub.engine.connect() as conn:
        data = load.load_report_data(conn, hub.dictionary, policy, role="management", built_at=BUILT_AT,
                                     health_until=REPORT_DAY, reading=load.ReportReading(batch=700))
    companies = data.frames["company"].dropna()
    names = marts.Names(owners=owner_names(hub.owners),
                        customers=dict(zip(companies["crm_id"].astype(str), companies["name"].astype(str), strict=True)))
    return marts.build_marts(data, periods, marts.Labels.from_dictionary(hub.dictionary), names)


def test_postgres_hub_gives_the_same_report(pg_hub, report_hub, policy) -> None:  # type: ignore[no-untyped-def]
    on_pg, on_sqlite = _marts(pg_hub, policy), _marts(report_hub, policy)
    assert on_pg.headline == on_sqlite.headline
    for a, b in zip(on_pg.tables(), on_sqlite.tables(), strict=True):
        assert a.key == b.key
        pd.testing.assert_frame_equal(a.frame.reset_index(drop=True), b.frame.reset_index(drop=True), obj=a.key)

"""The same migration into a PostgreSQL hub: the same hub state as on SQLite, a rerun adds nothing, the lease holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.pg_support import scratch_database

from bridge.hub import engine as hub_engine
from bridge.hub.schema import merge_record, quarantine, snapshot, xref
from bridge.migration import runs, steps
from bridge.migration.params import CONFIRM_TEXT

REAL_LOAD = {"dry_run": False, "confirm_load": CONFIRM_TEXT}

pytestmark = pytest.mark.pg

WORLD = {"seed": 13, "companies": 40, "deals": 80, "oa_instances": 90, "dirty_share": 0.3}


@pytest.fixture
def pg_hub(pg_dsn: str) -> Iterator[Engine]:
    with scratch_database(pg_dsn, "mig") as url:
        yield hub_engine.ensure_schema(url)


def _state(hub: Engine) -> dict[str, set[tuple[Any, ...]]]:
    with hub.connect() as conn:
        return {
            "snapshots": set(
                conn.execute(
                    select(
                        snapshot.c.entity, snapshot.c.source_id, snapshot.c.content_hash, snapshot.c.archived
                    )
                ).all()
            ),
            "links": set(conn.execute(select(xref.c.link_type, xref.c.crm_id, xref.c.oa_id)).all()),
            "quarantine": set(
                conn.execute(
                    select(quarantine.c.entity, quarantine.c.source_id, quarantine.c.reason_code)
                ).all()
            ),
            "merges": set(
                conn.execute(
                    select(merge_record.c.kept_id, merge_record.c.merged_id, merge_record.c.rule)
                ).all()
            ),
        }


def test_postgres_hub_ends_like_sqlite_and_reruns_add_nothing(
    mig: Any, pg_hub: Engine, tmp_path: Any
) -> None:
    now_ms = mig.seed(**WORLD).now_ms
    start = (datetime.fromtimestamp(now_ms / 1000, tz=UTC) - timedelta(days=800)).date().isoformat()
    params = {"chunk_size": 30, "date_from": start, **REAL_LOAD}
    on_pg = steps.Migration.create(
        "manual__pg", mig.migration("manual__pg").ctx, hub=pg_hub, data_dir=tmp_path / "pg_data"
    )
    first = steps.run_all(on_pg, params, mig.crm(), mig.oa())
    assert first["status"] == "success"
    pg_state = _state(pg_hub)
    assert pg_state["merges"]
    assert pg_state["quarantine"]

    intruder = steps.Migration.create("manual__pg_other", hub=pg_hub, data_dir=tmp_path / "pg_data")
    runs.take_lease(pg_hub, "manual__pg_holder", on_pg.now())
    with pytest.raises(runs.MigrationLocked):
        steps.start(intruder, {}, mig.crm(), mig.oa())
    assert runs.release_lease(pg_hub, "manual__pg_holder")

    again = steps.run_all(
        steps.Migration.create("manual__pg_again", hub=pg_hub, data_dir=tmp_path / "pg_data"),
        params,
        mig.crm(),
        mig.oa(),
    )
    assert again["counts"]["written_back"] == 0
    assert _state(pg_hub) == pg_state

    mig.seed(**WORLD, now_ms=now_ms)  # the CRM before the write-back, for the SQLite run
    on_sqlite = mig.run("manual__sqlite", **params)
    assert on_sqlite["counts"] == first["counts"]
    assert _state(mig.hub) == pg_state

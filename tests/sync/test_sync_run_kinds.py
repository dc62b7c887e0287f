"""The real syncs, then the real data-health freshness check and the report's sync section, on one hub.

Issue 14: the syncs wrote ``run_summary.kind = "crm_to_oa_sync"`` while data
health and the report read ``"crm_to_oa"``; their tests seeded the reader's
spelling by hand and passed. Here nothing is seeded: the run summaries and the
unsent changes are written by the sync functions a DAG run calls
(``run_cycle``: extract/discover + load + summarise) against the simulators.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine
from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge import runkinds
from bridge.hub import store
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, HealthRun, run_checks
from bridge.report.build import BuiltReport, ReportRequest, build_report
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.common import DebounceSettings

TZ = ZoneInfo("Asia/Shanghai")


def _health(o2c: O2C, now: datetime, tmp: Path, **limits: int) -> HealthRun:  # noqa: F811
    cfg = HealthSettings(freshness_max_minutes={"crm_to_oa": 60, "oa_to_crm": 60, **limits})
    return run_checks(o2c.hub, day=now.astimezone(TZ).date(), run_id="test__health", now=now, dictionary=o2c.c2o.d,
                      cfg=cfg, output=HealthOutput(tmp / "data", build_docs=False, save=False))


def _report(o2c: O2C, now: datetime, tmp: Path) -> BuiltReport:  # noqa: F811
    return build_report(o2c.hub, o2c.c2o.d, o2c.c2o.p, ReportRequest(report_day=now.astimezone(TZ).date(), owners={},
                        recipients=[], built_at=now, out_root=tmp / "reports", run_id="test__report"))


def _sync_status(built: BuiltReport) -> dict[str, dict[str, Any]]:
    return {r["direction"]: r for r in built.marts.table("sync_status").records()}


def _local(at: datetime) -> datetime:
    return at.astimezone(TZ).replace(tzinfo=None)


def _last_run(hub: Engine, kind: str) -> store.RunSummary:
    with hub.connect() as conn:
        [run] = store.recent_runs(conn, kind=kind, limit=1)
    return run


def _crm_to_oa_cycle(o2c: O2C) -> dict[str, Any]:  # noqa: F811
    c2o = o2c.c2o
    return crm_to_oa.run_cycle(c2o.crm, c2o.oa, o2c.hub, c2o.ctx("cycle"), c2o.cfg, c2o.now, dictionary=c2o.d,
                               policy=c2o.p)


def test_after_real_sync_runs_freshness_passes_and_the_report_counts_them(o2c: O2C, tmp_path: Path) -> None:  # noqa: F811
    c2o = o2c.c2o
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent")
    c2o.tick(1)
    assert _crm_to_oa_cycle(o2c)["status"] == "success"
    code = o2c.project_of(deal)  # the run created the 立项申请
    o2c.act("approve", code)
    o2c_summary = oa_to_crm.run_cycle(c2o.oa, c2o.crm, o2c.hub, o2c.ctx("cycle"), o2c.cfg, datetime.now(UTC),
                                      dictionary=c2o.d, policy=c2o.p)
    assert o2c_summary["status"] == "success"
    assert o2c_summary["counts"]["written_deal"] == 1

    c2o_run, o2c_run = _last_run(o2c.hub, runkinds.CRM_TO_OA), _last_run(o2c.hub, runkinds.OA_TO_CRM)
    assert (c2o_run.kind, o2c_run.kind) == ("crm_to_oa_sync", "oa_to_crm_sync")  # the DAG ids
    assert c2o_run.finished_at is not None
    assert o2c_run.finished_at is not None
    now = max(c2o.now, datetime.now(UTC)) + timedelta(minutes=2)

    health = _health(o2c, now, tmp_path)
    for direction in ("crm_to_oa", "oa_to_crm"):
        outcome = health.outcome(f"sync.{direction}.freshness")
        assert outcome.success, (direction, outcome.observed)

    built = _report(o2c, now, tmp_path)
    status = _sync_status(built)
    for label, run in (("CRM → OA", c2o_run), ("OA → CRM", o2c_run)):
        row = status[label]
        assert (row["runs"], row["succeeded"], row["failed"]) == (1, 1, 0), label
        assert row["last_success"] == _local(run.finished_at), label
        assert row["unsent"] == 0, label
        assert row["lag"] == row["since_success"] < 10, label
    writes = {(r["direction"], r["code"]): r["total"] for r in built.marts.table("sync_writes").records()}
    assert writes[("OA → CRM", "written_deal")] == 1
    html = built.paths["html"].read_text(encoding="utf-8")
    assert "同步运行状况" in html


def test_a_change_left_waiting_shows_in_the_report_and_fails_freshness(o2c: O2C, tmp_path: Path) -> None:  # noqa: F811
    """Runs keep succeeding, but one change has waited 9 minutes: that is the lag a manager sees."""
    c2o = o2c.c2o
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, debounce=DebounceSettings(900, 3600))  # a 15-minute quiet window
    company, _ = c2o.customer()
    deal = c2o.create_deal(company)
    c2o.tick(1)
    first_seen = c2o.now
    assert _crm_to_oa_cycle(o2c)["status"] == "success"
    c2o.tick(9 * 60)
    c2o.edit("deals", deal, {"amount": "130000.00"})  # edited again: the quiet window starts again
    assert _crm_to_oa_cycle(o2c)["status"] == "success"
    with o2c.hub.connect() as conn:
        [waiting] = store.pending_changes(conn, "crm_to_oa")
    assert (waiting.source_id, waiting.first_seen_at) == (deal, first_seen)
    now = c2o.now

    built = _report(o2c, now, tmp_path)
    row = _sync_status(built)["CRM → OA"]
    assert (row["runs"], row["succeeded"], row["since_success"]) == (2, 2, 0.0)
    assert (row["unsent"], row["due"], row["oldest_unsent"], row["lag"]) == (1, 0, 9.0, 9.0)
    never = _sync_status(built)["OA → CRM"]
    assert pd.isna(never["last_success"])  # never ran: empty, not "0 minutes ago"
    assert pd.isna(never["lag"])

    strict = _health(o2c, now, tmp_path, crm_to_oa=5)
    assert not strict.outcome("sync.crm_to_oa.freshness").success  # the last run succeeded 0 minutes ago
    assert not strict.outcome("sync.oa_to_crm.freshness").success  # never ran
    assert _health(o2c, now, tmp_path, crm_to_oa=10).outcome("sync.crm_to_oa.freshness").success

"""A migration that ends unfinished gives its lease up at once and shows as 已中止 (when, why).

The writers are the real steps over the simulators (a CRM that breaks in the
middle of a chunk), the teardown ``close_run`` (:func:`steps.close`) and the
lease take-over of :func:`runs.take_lease`; the reader is the 历史迁移 page of
the bridge UI app (its real query and template). A refused run's first log
line names the holder and the time in Chinese, short enough to read without
scrolling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request

from bridge.hooks.crm import CrmHook
from bridge.hub import store
from bridge.hub.schema import migration_run
from bridge.migration import runs, steps, tasks
from bridge.migration.params import CONFIRM_TEXT, SHANGHAI
from bridge.ui import queries
from bridge.ui.app import UiConfig, create_app
from bridge.ui.auth import Viewer

SMALL = {"seed": 21, "companies": 25, "deals": 50, "oa_instances": 40, "dirty_share": 0.2}
REAL_LOAD = {"dry_run": False, "confirm_load": CONFIRM_TEXT}


class BreakingCrm(CrmHook):
    """A CRM whose connection is lost in the middle of the first deal chunk (every retry too)."""

    def iter_changed(
        self, object_type: str, since: int, properties: Any, *, until: int | None = None, page_size: int = 100
    ) -> Iterator[Any]:
        for n, page in enumerate(
            super().iter_changed(object_type, since, properties, until=until, page_size=10)
        ):
            if object_type == "deals" and n == 1:
                raise ConnectionError("CRM connection lost (injected)")
            yield page


def _params(mig: Any) -> dict[str, Any]:
    start = datetime.fromtimestamp(mig.world.now_ms / 1000, tz=UTC) - timedelta(days=800)
    return {
        "chunk_size": 20,
        "entities": ["company", "deal"],
        "date_from": start.date().isoformat(),
        **REAL_LOAD,
    }


def _page(mig: Any) -> str:
    async def admin(request: Request) -> Viewer:
        return Viewer("admin", may_release=False)

    app = FastAPI()
    app.mount(
        "/bridge",
        create_app(
            UiConfig(authenticator=admin, csrf_secret=b"test", hub_url=mig.hub_url, data_dir=mig.data_dir)
        ),
    )
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        r = client.get("/bridge/migration")
    assert r.status_code == 200, r.text[:500]
    return r.text


def _lease(mig: Any) -> store.Lease | None:
    with mig.hub.connect() as conn:
        return store.get_lease(conn, runs.LEASE)


def test_a_run_failed_mid_way_is_aborted_at_once_and_the_next_run_succeeds(mig: Any) -> None:
    mig.seed(**SMALL)
    params = _params(mig)
    broken = mig.migration("manual__broken")
    crm = BreakingCrm(retry_policy=None)
    mig.hooks.append(crm)
    with pytest.raises(ConnectionError, match="injected"):
        steps.run_all(broken, params, crm, mig.oa())  # the task fails for good (retries fail alike)
    report = steps.finish(mig.migration("manual__broken"))  # `report` runs after a failure (all_done) ...
    assert report["status"] == "failed"
    assert _lease(mig) is not None
    assert _lease(mig).holder == "manual__broken"

    # the teardown close_run, with what Airflow says about the run's tasks
    why = tasks.why_from_states(
        {"plan": "success", "migrate_crm_chunk_2": "failed", "report": "failed", "close_run": "running"}
    )
    closed = steps.close(mig.migration("manual__broken"), why)
    assert closed == {"status": "aborted", "released": True, "why": closed["why"]}
    assert _lease(mig) is None  # released at once, not 15 minutes later

    with mig.hub.connect() as conn:
        shown = queries.migration_runs(conn)
    assert [(r.run_id, r.status) for r in shown] == [("manual__broken", "aborted")]
    assert shown[0].finished_at is not None
    reason = shown[0].abort_reason or ""
    assert "任务 migrate_crm_chunk_2, report 失败" in reason
    assert "首个失败的批次 deal #" in reason
    assert "CRM connection lost (injected)" in reason

    page = _page(mig)
    assert "已中止" in page
    assert "CRM connection lost (injected)" in page
    finished = shown[0].finished_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    assert finished in page  # when

    after = mig.run("manual__after", **params)  # the next run is not refused
    assert after["status"] == "success"
    assert steps.close(mig.migration("manual__after"), None)["status"] == "success"
    page = _page(mig)
    assert page.count("已中止") == 1  # the aborted run stays aborted after a later success
    assert "运行中" not in page


def test_a_run_marked_failed_in_airflow_before_its_report_is_aborted_by_the_teardown(mig: Any) -> None:
    mig.seed(**SMALL)
    m = mig.migration("manual__marked")
    steps.start(m, _params(mig), mig.crm(), mig.oa())  # then a person marks the run failed: report is skipped
    why = tasks.why_from_states({"plan": "success", "dedupe_customers": "failed", "report": "skipped"})
    assert steps.close(mig.migration("manual__marked"), why)["released"] is True
    with mig.hub.connect() as conn:
        run = queries.get_migration_run(conn, "manual__marked")
    assert run is not None
    assert run.status == "aborted"
    assert "报告任务 report 没有运行（运行在 Airflow 中被标记为失败或被停止）" in (run.abort_reason or "")
    assert "个批次或步骤未完成" in (run.abort_reason or "")
    # clearing the run later: its tasks take the lease again and it is running once more
    steps.dedupe(mig.migration("manual__marked"), mig.crm())
    with mig.hub.connect() as conn:
        again = queries.get_migration_run(conn, "manual__marked")
    assert again is not None
    assert again.status == "running"
    assert again.abort_reason is None
    assert _lease(mig) is not None
    assert _lease(mig).holder == "manual__marked"


def test_a_run_refused_at_plan_does_not_touch_the_holder(mig: Any) -> None:
    mig.seed(**SMALL)
    steps.start(mig.migration("manual__holder"), _params(mig), mig.crm(), mig.oa())
    with pytest.raises(runs.MigrationLocked):
        steps.start(mig.migration("manual__second"), _params(mig), mig.crm(), mig.oa())
    assert steps.close(mig.migration("manual__second"), "任务 plan 失败。") == {
        "status": "not_started",
        "released": False,
    }
    assert _lease(mig) is not None
    assert _lease(mig).holder == "manual__holder"
    with mig.hub.connect() as conn:
        assert runs.get_run(conn, "manual__holder")["status"] == "running"


def test_a_new_run_takes_over_the_lease_of_a_run_airflow_has_ended(mig: Any) -> None:
    mig.seed(**SMALL)
    steps.start(mig.migration("manual__dead"), _params(mig), mig.crm(), mig.oa())  # then its worker died

    for state in ("running", "queued", None):  # alive, or not an Airflow run: wait for the expiry
        refused = mig.migration("manual__next")
        refused.run_state = {"manual__dead": state}.get
        with pytest.raises(runs.MigrationLocked, match="运行 manual__dead 持有迁移租约"):
            steps.start(refused, _params(mig), mig.crm(), mig.oa())

    taker = mig.migration("manual__next")
    taker.run_state = {"manual__dead": "failed"}.get
    steps.start(taker, _params(mig), mig.crm(), mig.oa())
    assert _lease(mig) is not None
    assert _lease(mig).holder == "manual__next"
    with mig.hub.connect() as conn:
        dead = queries.get_migration_run(conn, "manual__dead")
    assert dead is not None
    assert dead.status == "aborted"
    assert (
        dead.abort_reason
        == "Airflow 运行已结束（状态 failed），没有释放迁移租约；租约由运行 manual__next 接管。"
    )
    assert "已中止" in _page(mig)


class _Ti:
    """What a task's ``ti`` offers for asking Airflow about another run (Task SDK ``RuntimeTaskInstance``)."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def get_dr_count(self, dag_id: str, run_ids: list[str]) -> int:
        return sum(1 for r in run_ids if r in self.states)

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        return self.states[run_id]


def test_a_refused_run_says_first_who_holds_the_lease_and_until_when(
    mig: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    mig.seed(**SMALL)
    steps.start(mig.migration("manual__holder"), _params(mig), mig.crm(), mig.oa())
    lease = _lease(mig)
    assert lease is not None
    until = lease.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    context = {"run_id": "manual__refused", "params": _params(mig), "ti": _Ti({"manual__holder": "running"})}
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(AirflowFailException) as caught:
        tasks.plan(context)
    first = caplog.messages[0].splitlines()[0]
    assert first == f"历史迁移未开始：运行 manual__holder 持有迁移租约，到 {until}（北京时间）。"
    assert len(first) <= 80  # readable without scrolling sideways
    assert str(caught.value).splitlines()[0] == first
    with mig.hub.connect() as conn:
        assert conn.execute(select(migration_run.c.run_id)).scalars().all() == ["manual__holder"]

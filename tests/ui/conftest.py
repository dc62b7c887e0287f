"""UI fixtures: a migrated SQLite hub and a data folder per test, the app mounted as Airflow mounts it.

The app is mounted under ``/bridge`` in a parent FastAPI app, like the plugin in
Airflow's API server, so links and redirects are checked with the real prefix.
Authentication is a stand-in (:class:`FakeAuth`) except in
``test_ui_airflow_auth.py``, which uses Airflow's own auth manager.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request
from tests.sync.sync_c2o_world import c2o, c2o_hub_template, c2o_sims  # noqa: F401  (real sync runs)

from bridge.hub import engine as hub_engine
from bridge.ui.app import UiConfig, create_app
from bridge.ui.auth import NotAuthenticated, Viewer

CSRF_SECRET = b"test-secret-for-ui-csrf"


class FakeAuth:
    """Who is logged in for the next requests; None = nobody."""

    def __init__(self) -> None:
        self.viewer: Viewer | None = Viewer("wangfang", may_release=True)

    def login(self, name: str, may_release: bool) -> None:
        self.viewer = Viewer(name, may_release)

    def logout(self) -> None:
        self.viewer = None

    async def __call__(self, request: Request) -> Viewer:
        if self.viewer is None:
            raise NotAuthenticated("Not authenticated", f"/auth/login?next={request.url}")
        return self.viewer


@pytest.fixture
def hub_url(c2o_hub_template: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A migrated, empty hub per test: a copy of the session's template (the sync tests' one)."""
    target = tmp_path / "hub.sqlite"
    shutil.copyfile(c2o_hub_template, target)
    url = f"sqlite:///{target}"
    yield url
    hub_engine.get_engine(url).dispose()


@pytest.fixture
def ui_data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def auth() -> FakeAuth:
    return FakeAuth()


def mounted(config: UiConfig) -> FastAPI:
    parent = FastAPI()
    parent.mount("/bridge", create_app(config))
    return parent


@pytest.fixture
def ui_config(hub_url: str, ui_data: Path, auth: FakeAuth) -> UiConfig:
    return UiConfig(
        authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=hub_url, data_dir=ui_data, page_size=5
    )


@pytest.fixture
def client(ui_config: UiConfig) -> Iterator[TestClient]:
    with TestClient(mounted(ui_config), base_url="http://127.0.0.1:8080", follow_redirects=False) as c:
        yield c


# ---------------------------------------------------------------- seeding

PERSON_MOBILE = "13812345678"
PERSON_EMAIL = "zhang.san@example.com"


class Seeder:
    """Stages hub rows and data files the way the DAGs write them."""

    def __init__(self, hub_url: str, data_dir: Path) -> None:
        self.url = hub_url
        self.data_dir = data_dir
        self.engine = hub_engine.get_engine(hub_url)

    def quarantine(
        self,
        source_id: str = "C-1001",
        *,
        entity: str = "contact",
        reason: str = "invalid_format",
        direction: str = "crm_to_oa",
        department: str | None = "销售部",
        owner: str | None = "owner-7",
        payload: dict | None = None,
        message: str | None = None,
        field: str | None = "mobile",
    ) -> int:
        from bridge.context import RunContext
        from bridge.hub import store

        if payload is None:
            payload = {
                "crm_id": source_id,
                "full_name": "张三",
                "mobile": PERSON_MOBILE,
                "email": PERSON_EMAIL,
                "job_title": "采购经理",
            }
        with self.engine.begin() as conn:
            return store.quarantine_record(
                conn,
                RunContext.local(principal="bridge-service"),
                store.QuarantineItem(
                    direction,
                    "crm",
                    entity,
                    source_id,
                    reason,
                    message or "联系人手机号格式不正确（应为 11 位手机号），请销售在 CRM 中更正后自动重试。",
                    field=field,
                    payload=payload,
                    content_hash="h-" + source_id,
                    department=department,
                    data_owner=owner,
                ),
            )

    def run(
        self,
        kind: str = "crm_to_oa",
        status: str = "success",
        counts: dict | None = None,
        message: str | None = None,
        dag_id: str = "crm_to_oa_sync",
    ) -> int:
        """A finished run as the sync writes it: ``kind`` is a direction, stored as its run kind."""
        from bridge import runkinds
        from bridge.context import RunContext
        from bridge.hub import store

        ctx = RunContext(
            dag_id=dag_id,
            run_id=f"scheduled__{kind}",
            task_id="load",
            try_number=1,
            principal="bridge-service",
        )
        with self.engine.begin() as conn:
            pk = store.start_run(conn, ctx, runkinds.SYNC_BY_DIRECTION.get(kind, kind))
            store.finish_run(conn, pk, status, counts or {"extracted": 12, "created": 3}, message=message)
        return pk

    def watermark(self, stream: str, value_ms: int) -> None:
        from bridge.hub import store

        with self.engine.begin() as conn:
            store.set_watermark(conn, stream, value_ms, "scheduled__x")

    def report(
        self,
        day: str,
        *,
        html: str | None = "<html><body><h1>经营日报</h1></body></html>",
        xlsx: bytes | None = b"PK\x03\x04fake-xlsx",
        html_path: str | None = None,
        xlsx_path: str | None = None,
        recipients: list[str] | None = None,
    ) -> None:
        from datetime import UTC, date, datetime

        from bridge.hub.schema import report_run

        folder = self.data_dir / "reports" / day
        folder.mkdir(parents=True, exist_ok=True)
        if html is not None:
            (folder / "daily_report.html").write_text(html, encoding="utf-8")
        if xlsx is not None:
            (folder / "daily_report.xlsx").write_bytes(xlsx)
        with self.engine.begin() as conn:
            conn.execute(
                report_run.insert().values(
                    day=date.fromisoformat(day),
                    run_id=f"scheduled__{day}",
                    built_at=datetime.now(UTC),
                    html_path=html_path or str(folder / "daily_report.html"),
                    xlsx_path=xlsx_path or str(folder / "daily_report.xlsx"),
                    recipients=recipients if recipients is not None else ["boss@example.com"],
                    sent_at=datetime.now(UTC),
                    figures={"won_amount_day": "120000.00", "new_deals_day": 4, "report_day": day},
                )
            )

    def score(
        self, day: str, scope_type: str, scope: str, score: float, checks: int = 10, failed: int = 1
    ) -> None:
        from datetime import date

        from bridge.hub.schema import health_score

        with self.engine.begin() as conn:
            conn.execute(
                health_score.insert().values(
                    day=date.fromisoformat(day),
                    scope_type=scope_type,
                    scope=scope,
                    score=score,
                    checks=checks,
                    failed_checks=failed,
                    evaluated=1000,
                    failed_rows=failed * 7,
                    run_id="scheduled__h",
                )
            )

    def health_result(self, day: str, expectation: str, entity: str, field: str, failed: int) -> None:
        from datetime import UTC, date, datetime

        from bridge.hub.schema import health_result

        with self.engine.begin() as conn:
            conn.execute(
                health_result.insert().values(
                    run_id="scheduled__h",
                    day=date.fromisoformat(day),
                    suite=f"{entity}_suite",
                    expectation=expectation,
                    entity=entity,
                    field=field,
                    department="销售部",
                    success=failed == 0,
                    evaluated=1000,
                    failed=failed,
                    failing_ids=["C-1"],
                    failing_owners={"owner-7": failed},
                    at=datetime.now(UTC),
                )
            )

    def migration(
        self,
        run_id: str,
        *,
        dry_run: bool = True,
        status: str = "success",
        html: str | None = "<html><body>迁移报告</body></html>",
        csv: str | None = "entity,count\n",
    ) -> None:
        from datetime import UTC, datetime

        from bridge.hub.schema import migration_run

        folder = self.data_dir / "migration" / "run1"
        folder.mkdir(parents=True, exist_ok=True)
        html_path = csv_path = None
        if html is not None:
            (folder / "report.html").write_text(html, encoding="utf-8")
            html_path = str(folder / "report.html")
        if csv is not None:
            (folder / "report.csv").write_text(csv, encoding="utf-8")
            csv_path = str(folder / "report.csv")
        with self.engine.begin() as conn:
            conn.execute(
                migration_run.insert().values(
                    run_id=run_id,
                    params={"dry_run": dry_run, "entities": ["company"]},
                    status=status,
                    started_at=datetime.now(UTC),
                    finished_at=datetime.now(UTC),
                    report_html=html_path,
                    report_csv=csv_path,
                    counts={"read": 100, "clean": 97, "quarantined": 3},
                )
            )


@pytest.fixture
def seed(hub_url: str, ui_data: Path) -> Seeder:
    return Seeder(hub_url, ui_data)


@pytest.fixture
def make_client():  # type: ignore[no-untyped-def]
    """A TestClient for another configuration (a broken hub, real auth, …)."""

    def make(config: UiConfig) -> TestClient:
        return TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False)

    return make


@pytest.fixture
def seeder_for(ui_data: Path):  # type: ignore[no-untyped-def]
    """A Seeder for another hub (PostgreSQL)."""
    return lambda url: Seeder(url, ui_data)

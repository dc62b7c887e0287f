"""The pages through each viewer's policy role, on rows the real writers produced (a real CRM → OA sync run,
the real run-summary, migration and report writers): amounts and phones per role, names not ids, labels not
codes, no Python reprs, no English errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.sync.sync_c2o_world import C2O, OWNER
from tests.ui.conftest import CSRF_SECRET, FakeAuth, mounted

from bridge import people
from bridge.dictionary import Problem
from bridge.hub import store
from bridge.sync import tasks
from bridge.sync.frame import QuarantinedRecord, RecordPlace, quarantine_problem
from bridge.ui.app import UiConfig

BAD_AMOUNT = "-172100.00"
GOOD_AMOUNT = "11440100.00"
CONTACT_MOBILE = "13912345678"
OWNER_NAME = "彭明"  # OWNER in the simulated CRM (sandbox world, seed 20261126)
ENGLISH_ERRORS = (
    "Input should be",
    "Not Found",
    "Internal Server Error",
    "Traceback",
    "Method Not Allowed",
    "value is not a valid",
    "Field required",
    "Error",
)


def visible_text(html: str) -> str:
    """What a person reads: tags and attributes dropped."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def assert_clean_page(html: str) -> None:
    """No Python dict/list repr and no English error text anywhere in the page."""
    body = html.replace("&#34;", '"').replace("&#39;", "'").replace("&quot;", '"')
    for opening in ("{'", '{"', "['", '["'):
        assert opening not in body, f"a Python/JSON dict or list reaches the page ({opening})"
    for needle in ENGLISH_ERRORS:
        assert needle not in body, f"English error text {needle!r} on the page"


@dataclass
class Scene:
    """A hub written by a real sync run, and the ids that matter."""

    world: C2O
    good_deal: str
    bad_deal: str
    contact: str
    oa_user: str

    @property
    def hub_url(self) -> str:
        return self.world.hub.url.render_as_string(hide_password=False)

    def entry_id(self, entity: str, source_id: str) -> int:
        with self.world.hub.connect() as conn:
            entry = store.open_quarantine(conn, "crm_to_oa", entity, source_id)
        assert entry is not None, f"{entity} {source_id} is not quarantined"
        return entry.id


@pytest.fixture
def scene(c2o: C2O) -> Scene:
    company, _ = c2o.customer()
    good = c2o.create_deal(company, stage="contractsent", amount=GOOD_AMOUNT)
    bad = c2o.create_deal(company, stage="contractsent", amount=BAD_AMOUNT)
    contact = c2o.create_contact(company, lastname="", mobilephone=CONTACT_MOBILE)  # 姓 missing
    extracted, loaded = c2o.sync()
    assert extracted.counts["quarantined_invalid_format"] == 1  # the negative amount
    assert loaded.counts["instances_created"] == 1  # owners resolved: names stored by the sync
    with c2o.hub.begin() as conn:  # the contact as the sync staged it, quarantined with the syncs' own writer
        snap = store.get_snapshot(conn, "crm", "contact", contact)
        assert snap is not None
        assert "missing_required" in snap.payload["_problems"]
        problem = Problem(
            code="missing_required",
            entity="contact",
            field="last_name",
            department="sales",
            message=f"联系人「{contact}」缺少必填项「姓」，请销售部在 CRM 中补齐。",
        )
        quarantine_problem(
            conn,
            c2o.ctx(),
            RecordPlace("crm_to_oa", "crm", "contact", contact),
            problem,
            QuarantinedRecord(snap.payload, snap.content_hash, snap.data_owner),
            now=c2o.now,
        )
    return Scene(c2o, good, bad, contact, c2o.oa_user("peng.01@example.com"))


@pytest.fixture
def pages(scene: Scene, auth: FakeAuth, tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "ui_data"
    data.mkdir()
    config = UiConfig(authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=scene.hub_url, data_dir=data)
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as client:
        yield client


def as_user(auth: FakeAuth, name: str) -> None:
    auth.login(name, may_release=False)


# ---------------------------------------------------------------- quarantine


def test_quarantined_amount_follows_the_viewers_role(pages: TestClient, auth: FakeAuth, scene: Scene) -> None:
    entry = scene.entry_id("deal", scene.bad_deal)
    as_user(auth, "employee")
    html = pages.get(f"/bridge/quarantine/{entry}").text
    assert "当前用户：employee（普通员工）" in visible_text(html)
    assert "172100" not in html, "the offending amount reaches an employee"
    assert "172,100" not in html
    assert "「***」" in html  # the message says a value was hidden
    assert "个字段按你的角色不显示" in html
    assert_clean_page(html)

    as_user(auth, "sales_manager")
    html = pages.get(f"/bridge/quarantine/{entry}").text
    text = visible_text(html)
    assert "当前用户：sales_manager（销售主管）" in text
    assert BAD_AMOUNT in text  # the source value, where it belongs: its own column
    assert "合同金额" in text
    assert "商机阶段" in text
    assert "合同签订" in text  # ... and value labels (stage "contract")
    assert "财务部" in text  # department label, not "finance"
    assert OWNER_NAME in text  # the owner's name, the id only as detail
    assert_clean_page(html)

    as_user(auth, "admin")  # Airflow admin = policy role management
    html = pages.get(f"/bridge/quarantine/{entry}").text
    assert "当前用户：admin（管理层）" in visible_text(html)
    assert BAD_AMOUNT in html
    assert_clean_page(html)


def test_quarantined_phone_follows_the_viewers_role(pages: TestClient, auth: FakeAuth, scene: Scene) -> None:
    entry = scene.entry_id("contact", scene.contact)
    as_user(auth, "employee")
    html = pages.get(f"/bridge/quarantine/{entry}").text
    assert CONTACT_MOBILE not in html
    assert "139****5678" not in html  # an employee sees no contact field at all
    assert "没有你的角色可以查看的字段" in html
    as_user(auth, "project_manager")
    html = pages.get(f"/bridge/quarantine/{entry}").text
    assert CONTACT_MOBILE not in html
    assert "139****5678" in html
    as_user(auth, "sales_manager")
    html = pages.get(f"/bridge/quarantine/{entry}").text
    assert CONTACT_MOBILE in visible_text(html)  # 销售主管 sees the contact phone
    assert "手机" in visible_text(html)
    assert_clean_page(html)


def test_quarantine_list_shows_names_labels_and_hides_what_the_role_may_not_see(
    pages: TestClient, auth: FakeAuth, scene: Scene
) -> None:
    as_user(auth, "employee")
    html = pages.get("/bridge/quarantine").text
    text = visible_text(html)
    assert "172100" not in html
    assert OWNER_NAME in text
    assert "财务部" in text
    assert "字段 合同金额" in text
    assert re.search(r">\s*finance\s*<", html) is None, "a department key shown as text"
    assert_clean_page(html)
    # the owner filter offers names
    assert re.search(rf'<option value="{OWNER}"[^>]*>{OWNER_NAME}（{OWNER}）</option>', html)
    as_user(auth, "sales_manager")
    assert BAD_AMOUNT in pages.get("/bridge/quarantine").text


def test_quarantine_export_is_built_for_the_viewers_role(
    pages: TestClient, auth: FakeAuth, scene: Scene
) -> None:
    as_user(auth, "employee")
    employee = pages.get("/bridge/quarantine/export")
    assert employee.status_code == 200
    assert "attachment" in employee.headers["content-disposition"]
    body = employee.content.decode("utf-8-sig")
    assert "172100" not in body
    assert CONTACT_MOBILE not in body
    assert "139****" not in body
    assert OWNER_NAME in body
    assert "财务部" in body
    assert "{'" not in body
    assert '{"' not in body
    as_user(auth, "sales_manager")
    body = pages.get("/bridge/quarantine/export", params={"entity": "contact"}).content.decode("utf-8-sig")
    assert CONTACT_MOBILE in body
    assert "172100" not in body  # filtered to contacts


def test_owner_names_come_from_what_the_sync_read(scene: Scene) -> None:
    with scene.world.hub.connect() as conn:
        names = people.names(conn, [OWNER, scene.oa_user, "70000999", None])
    # the OA user through its owner link; the owner who left the company is still a CRM owner with a name
    assert names == {OWNER: OWNER_NAME, scene.oa_user: OWNER_NAME, "70000999": "离职销售"}


# ---------------------------------------------------------------- health, sync, migration


def test_health_page_shows_owner_names_and_department_labels(
    pages: TestClient, auth: FakeAuth, scene: Scene
) -> None:
    from bridge.hub.schema import health_score

    day = date.today()
    with scene.world.hub.begin() as conn:  # the scopes data health scores by (owner ids, department keys)
        for scope_type, scope in (
            ("overall", "overall"),
            ("data_owner", OWNER),
            ("data_owner", scene.oa_user),
            ("department", "finance"),
        ):
            conn.execute(
                health_score.insert().values(
                    day=day,
                    scope_type=scope_type,
                    scope=scope,
                    score=90.0,
                    checks=4,
                    failed_checks=1,
                    evaluated=10,
                    failed_rows=1,
                )
            )
    as_user(auth, "employee")
    html = pages.get("/bridge/health").text
    scores = visible_text(html[html.index('data-scope-type="data_owner"') :])
    assert scores.count(OWNER_NAME) == 2  # the CRM owner and the OA applicant are the same person
    assert "财务部" in visible_text(html)
    assert_clean_page(html)


def test_sync_page_shows_real_durations_and_labelled_counts(
    pages: TestClient, auth: FakeAuth, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = scene.world
    monkeypatch.setenv("BRIDGE_HUB_URL", scene.hub_url)
    extracted, loaded = world.extract(), world.load()

    class TaskInstance:
        dag_id, run_id, task_id, try_number = "crm_to_oa_sync", "scheduled__ui", "summarise", 1

        @staticmethod
        def xcom_pull(task_ids: str) -> dict[str, Any]:
            return {"extract_stage": extracted, "load": loaded}[task_ids].as_dict()

    class DagRun:
        dag_id, run_id = "crm_to_oa_sync", "scheduled__ui"
        start_date = datetime.now(UTC) - timedelta(minutes=1, seconds=23)

    tasks.crm_to_oa_summarise(**{"ti": TaskInstance(), "dag_run": DagRun(), "run_id": "scheduled__ui"})
    as_user(auth, "employee")
    html = pages.get("/bridge/sync").text
    latest = html[html.index('id="latest-runs"') : html.index('id="backlog-table"')]
    assert re.search(r"1 分 2[34] 秒", visible_text(latest)), visible_text(latest)[:400]
    assert '<table class="counts">' in latest
    assert "读取" in visible_text(latest)
    assert "接口调用（CRM）" in visible_text(latest)
    assert "read=" not in latest, "counts as key=value text"
    assert "read_" not in visible_text(latest), "counts as codes"
    assert "读取客户 1" in visible_text(latest)
    assert "CRM 商机" in visible_text(html)  # the watermark stream, labelled
    assert_clean_page(html)


def test_migration_page_shows_counts_as_a_labelled_table(
    pages: TestClient, auth: FakeAuth, scene: Scene
) -> None:
    from bridge.migration import counts as migration_counts
    from bridge.migration import runs

    started = datetime.now(UTC) - timedelta(seconds=95)
    company = migration_counts.EntityCounts("company", read=1303, cleaned=1200, merged=3, written=1290)
    company.quarantined["expectation_failed"] += 7
    with scene.world.hub.begin() as conn:
        runs.begin_run(conn, "manual__ui", {"dry_run": True}, started)
        runs.finish_run(
            conn,
            "manual__ui",
            "success",
            migration_counts.totals([company]),
            report_html=None,
            report_csv=None,
            now=started + timedelta(seconds=95),
        )
    as_user(auth, "employee")
    html = pages.get("/bridge/migration").text
    table = visible_text(html[html.index('id="migration-table"') :])
    assert "读取 1,303" in table
    assert "清洗 1,200" in table
    assert "隔离 7" in table
    assert "read=" not in table
    assert "1 分 35 秒" in table
    assert_clean_page(html)


# ---------------------------------------------------------------- the daily report


def test_report_figures_and_files_follow_the_viewers_role(
    pages: TestClient, auth: FakeAuth, scene: Scene, tmp_path: Path
) -> None:
    import bridge.dictionary
    from bridge import permissions
    from bridge.report.build import ReportRequest, build_report

    built = build_report(
        scene.world.hub,
        bridge.dictionary.load(),
        permissions.load(),
        ReportRequest(
            report_day=date.today(),
            owners={OWNER: OWNER_NAME},
            recipients=["boss@example.com"],
            out_root=tmp_path / "ui_data" / "reports",
        ),
    )
    assert built.figures["open_pipeline_amount"] > 0
    as_user(auth, "employee")
    html = pages.get("/bridge/reports").text
    row = visible_text(html[html.index('id="report-table"') :])
    assert "¥" not in row
    assert "无权查看" in row
    assert "无权打开" in row  # no link to a file built for 管理层
    assert "/xlsx" not in html
    assert "11440100" not in html
    xlsx = pages.get(f"/bridge/reports/{date.today().isoformat()}/xlsx")
    assert xlsx.status_code == 403
    assert "管理层" in xlsx.text
    assert "ui.user_roles" in xlsx.text
    assert_clean_page(html)

    as_user(auth, "sales_manager")
    row = visible_text(pages.get("/bridge/reports").text)
    assert re.search(r"在途商机金额：\s*¥\d{1,3}(,\d{3})+\.\d\d", row), row[:600]
    assert (
        pages.get(f"/bridge/reports/{date.today().isoformat()}/xlsx").status_code == 403
    )  # built for 管理层

    as_user(auth, "admin")
    assert pages.get(f"/bridge/reports/{date.today().isoformat()}/html").status_code == 200


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/bridge/quarantine/abc", 422, "隔离记录编号应为整数（收到「abc」）"),
        ("/bridge/nothing-here", 404, "没有这个页面"),
        ("/bridge/quarantine/99999", 404, "没有编号为 99999 的隔离记录"),
        ("/bridge/migration/report", 422, "运行编号不能缺少"),
    ],
)
def test_error_pages_are_chinese(pages: TestClient, path: str, status: int, needle: str) -> None:
    response = pages.get(path)
    assert response.status_code == status
    assert needle in response.text
    assert_clean_page(response.text)


def test_an_unexpected_error_is_a_chinese_500(
    scene: Scene, auth: FakeAuth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.ui import queries

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom in English")

    monkeypatch.setattr(queries, "watermarks", broken)
    config = UiConfig(authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=scene.hub_url, data_dir=tmp_path)
    with TestClient(mounted(config), raise_server_exceptions=False) as client:
        response = client.get("/bridge/sync")
    assert response.status_code == 500
    assert "页面出错" in response.text
    assert "boom" not in response.text
    assert "KeyError" not in response.text
    assert_clean_page(response.text)


# ---------------------------------------------------------------- e-mails


def test_the_report_mail_carries_only_what_its_audience_may_see(scene: Scene, tmp_path: Path) -> None:
    """The 08:00 mail is built through ``audiences.report.daily_report``: with a narrower audience the amounts,
    contact data and owner ids are gone from the mail body and its XLSX attachment."""
    import email
    from email import policy as email_policy

    import bridge.dictionary
    from bridge import permissions
    from bridge.report.build import ReportRequest, build_report

    d = bridge.dictionary.load()
    shipped = permissions.default_path().read_text(encoding="utf-8")
    narrow_file = tmp_path / "permissions.yaml"
    narrow_file.write_text(
        shipped.replace("daily_report: management", "daily_report: employee"), encoding="utf-8"
    )
    results = {}
    for name, policy in (
        ("management", permissions.load(dictionary=d)),
        ("employee", permissions.load(narrow_file, dictionary=d)),
    ):
        built = build_report(
            scene.world.hub,
            d,
            policy,
            ReportRequest(
                report_day=date.today(),
                owners={OWNER: OWNER_NAME},
                recipients=["boss@example.com"],
                out_root=tmp_path / name,
            ),
        )
        message = email.message_from_bytes(built.paths["eml"].read_bytes(), policy=email_policy.default)
        parts = [
            p.get_content() for p in message.walk() if p.get_content_type() in ("text/plain", "text/html")
        ]
        results[name] = " ".join(parts)
    assert re.search(r"11,?440,?100", results["management"])
    assert not re.search(r"11,?440,?100", results["employee"])
    assert "13812345678" not in results["management"]
    assert "13812345678" not in results["employee"]

"""Every bridge page: empty hub, seeded hub, broken hub, bad parameters, headers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.ui.app import UiConfig

from .page_paths import NAV_PAGES

PAGES = [*NAV_PAGES, "/bridge/data-docs"]

EMPTY_STATES = {
    "/bridge/reports": "还没有经营日报",
    "/bridge/health": "还没有数据健康得分",
    "/bridge/quarantine": "隔离区没有待处理的记录",
    "/bridge/sync": "还没有水位线",
    "/bridge/migration": "还没有历史迁移记录",
    "/bridge/documents": "输入客户名称",
    "/bridge/data-docs": "还没有生成数据文档",
}


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_on_an_empty_hub(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in response.text
    if path in EMPTY_STATES:
        assert EMPTY_STATES[path] in response.text
    # the in-page navigation carries the mount prefix
    assert 'href="/bridge/quarantine"' in response.text


def test_pages_send_protective_headers(client: TestClient) -> None:
    response = client.get("/bridge/sync")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp
    assert "script-src 'none'" in csp


def test_static_assets_need_no_login_and_carry_no_data(client: TestClient, auth) -> None:
    auth.logout()
    css = client.get("/bridge/static/bridge.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]
    assert client.get("/bridge/static/bridge.svg").status_code == 200
    assert client.get("/bridge/sync").status_code == 401


def test_sync_page_shows_watermarks_lag_runs_and_backlog(client: TestClient, seed) -> None:
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10, seconds=5)
    seed.watermark("crm.deal", int(ten_minutes_ago.timestamp() * 1000))
    seed.watermark("oa.expense_claim.created", int(datetime.now(UTC).timestamp() * 1000))
    seed.run("crm_to_oa", counts={"extracted": 42, "created": 7})
    seed.run("oa_to_crm", status="failed", message="OA 接口 503，稍后重试", dag_id="oa_to_crm_sync")
    seed.quarantine("C-1")
    seed.quarantine("C-2", reason="owner_not_in_oa")
    seed.quarantine("C-3", reason="owner_not_in_oa")

    with seed.engine.begin() as conn:  # one change read 7 minutes ago, not sent yet (the sync's own writer)
        from bridge.hub import store

        store.enqueue_changes(
            conn, "crm_to_oa", [("deal", "D-7", "h7")], datetime.now(UTC) - timedelta(minutes=7), 60, 150
        )

    html = client.get("/bridge/sync").text
    text = _text(html)
    freshness = " ".join(
        _text(html[html.index('id="freshness-table"') : html.index('id="watermark-table"')]).split()
    )
    assert re.search(r"CRM → OA 同步 \d{4}-\d\d-\d\d [\d:]+ \d+ 秒前 1 1 7 分 7 分", freshness), freshness
    assert "OA → CRM 同步 从未成功 0 0 无 未知" in freshness, freshness
    assert "不代表同步延迟" in text
    assert "crm.deal" in text
    assert "oa.expense_claim.created" in text
    assert re.search(r"10 分 \d+ 秒", text), "the lag of crm.deal is shown in minutes"
    assert re.search(r"读取\s+42\s+新建\s+7", text), "counts as a labelled table"
    assert "失败" in text
    assert "OA 接口 503" in text
    assert "负责人不在 OA 中（owner_not_in_oa）" in text
    backlog = html[html.index('id="backlog-table"') :]
    assert re.search(r"合计</td><td class=\"num\">3<", backlog)
    # which Airflow run did it (no link: the Airflow UI frames the page without top navigation)
    assert "<code>oa_to_crm_sync</code><br>scheduled__oa_to_crm" in html
    assert "target=" not in html


def test_reports_page_lists_days_with_links(client: TestClient, seed, auth) -> None:
    auth.login("admin", may_release=False)
    seed.report("2026-11-25")
    seed.report("2026-11-26", xlsx=None)
    html = client.get("/bridge/reports").text
    assert 'href="/bridge/reports/2026-11-25/html"' in html
    assert 'href="/bridge/reports/2026-11-25/xlsx"' in html
    assert 'href="/bridge/reports/2026-11-26/html"' in html
    assert "XLSX 缺失" in html  # the 26th has no workbook on disk
    assert re.search(r"当日成交金额：<span[^>]*>¥120,000.00<", html)
    # recipients are e-mail addresses: masked
    assert "boss@example.com" not in html
    assert "b***@example.com" in html
    one_day = client.get("/bridge/reports", params={"day": "2026-11-25"}).text
    assert "2026-11-25/html" in one_day
    assert "2026-11-26/html" not in one_day


def test_report_files_open_and_download(client: TestClient, seed, auth) -> None:
    auth.login("admin", may_release=False)
    seed.report("2026-11-26")
    page = client.get("/bridge/reports/2026-11-26/html")
    assert page.status_code == 200
    assert "经营日报" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    book = client.get("/bridge/reports/2026-11-26/xlsx")
    assert book.status_code == 200
    assert book.content.startswith(b"PK")
    assert "attachment" in book.headers["content-disposition"]
    assert "spreadsheetml" in book.headers["content-type"]
    missing = client.get("/bridge/reports/2026-11-20/html")
    assert missing.status_code == 404
    assert "daily_report" in missing.text


def test_report_folder_without_a_hub_row_is_still_listed(client: TestClient, ui_data: Path, auth) -> None:
    auth.login("admin", may_release=False)
    folder = ui_data / "reports" / "2026-11-24"
    folder.mkdir(parents=True)
    (folder / "daily_report.html").write_text("<p>半成品</p>", encoding="utf-8")
    html = client.get("/bridge/reports").text
    assert "未登记的日报文件" in html
    assert 'href="/bridge/files/reports/2026-11-24/daily_report.html"' in html
    assert client.get("/bridge/files/reports/2026-11-24/daily_report.html").text == "<p>半成品</p>"
    # the unregistered day's only HTML also opens through the day link
    assert client.get("/bridge/reports/2026-11-24/html").status_code == 200


def test_health_page_shows_scores_trend_failures_and_daily_summaries(
    client: TestClient, seed, ui_data: Path
) -> None:
    today = date(2026, 11, 26)
    for back in range(5):
        day = (today - timedelta(days=back)).isoformat()
        seed.score(day, "overall", "overall", 90.0 + back)
        seed.score(day, "entity", "contact", 80.0 - back)
        seed.score(day, "department", "销售部", 70.0)
        seed.score(day, "data_owner", "owner-7", 60.0)
    seed.score((today - timedelta(days=40)).isoformat(), "entity", "deal", 10.0)  # outside the 30 days
    seed.health_result(today.isoformat(), "expect_column_values_to_match_regex", "contact", "mobile", 17)
    (ui_data / "data_health" / today.isoformat()).mkdir(parents=True)
    (ui_data / "data_health" / today.isoformat() / "summary.html").write_text("<p>汇总</p>", encoding="utf-8")

    html = client.get("/bridge/health").text
    text = _text(html)
    assert "2026-11-26 总体得分" in text
    assert "90.0" in text
    assert "-1.0" in text  # 90 today vs 91 the day before
    assert "联系人（contact）" in text
    assert "销售部" in text
    assert "owner-7" in text
    assert html.count("<polyline") == 4  # overall + entity + department + owner; deal is too old
    assert "expect_column_values_to_match_regex" in text
    assert "17 / 1000" in text
    assert 'href="/bridge/files/data_health/2026-11-26/summary.html"' in html
    assert "数据文档尚未生成" in text


def test_data_docs_are_served_from_the_data_folder(client: TestClient, ui_data: Path) -> None:
    site = ui_data / "data_docs" / "local_site"
    (site / "validations").mkdir(parents=True)
    (site / "index.html").write_text("<h1>Data Docs</h1>", encoding="utf-8")
    (site / "validations" / "run.html").write_text("<p>run</p>", encoding="utf-8")
    root = client.get("/bridge/data-docs")
    assert root.status_code == 302
    assert root.headers["location"] == "/bridge/data-docs/local_site/index.html"
    assert client.get(root.headers["location"]).text == "<h1>Data Docs</h1>"
    assert client.get("/bridge/data-docs/local_site/validations/run.html").text == "<p>run</p>"
    assert 'href="/bridge/data-docs/local_site/index.html"' in client.get("/bridge/health").text
    assert client.get("/bridge/data-docs/local_site/nope.html").status_code == 404


def test_migration_page_lists_runs_and_serves_their_reports(client: TestClient, seed, auth) -> None:
    auth.login("admin", may_release=False)
    seed.migration("manual__2026-11-26T02:00:00+00:00", dry_run=True)
    html = client.get("/bridge/migration").text
    assert "试运行" in html
    assert re.search(r"读取</th><td class=\"num\">100<", html)
    assert "kind=html" in html
    assert "kind=csv" in html
    report = client.get(
        "/bridge/migration/report", params={"run_id": "manual__2026-11-26T02:00:00+00:00", "kind": "html"}
    )
    assert report.status_code == 200
    assert "迁移报告" in report.text
    csv = client.get(
        "/bridge/migration/report", params={"run_id": "manual__2026-11-26T02:00:00+00:00", "kind": "csv"}
    )
    assert csv.status_code == 200
    assert csv.text.startswith("entity,count")
    assert client.get("/bridge/migration/report", params={"run_id": "nope"}).status_code == 404
    assert client.get("/bridge/migration/report", params={"run_id": "x", "kind": "exe"}).status_code == 400


def test_migration_run_without_report_files_shows_that(client: TestClient, seed) -> None:
    seed.migration("manual__1", html=None, csv=None, status="running")
    html = client.get("/bridge/migration").text
    assert "报告未生成" in html
    assert "运行中" in html


def test_overview_summarises_each_area(client: TestClient, seed) -> None:
    seed.quarantine("C-9")
    seed.report("2026-11-26")
    seed.score("2026-11-26", "overall", "overall", 97.5)
    seed.run("crm_to_oa")
    text = _text(client.get("/bridge/").text)
    assert "待处理 1 条" in " ".join(text.split())
    assert "2026-11-26" in text
    assert "97.5" in text
    assert "CRM → OA 同步" in text


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/bridge/quarantine?page=abc", "页码"),
        ("/bridge/quarantine?page=0", "页码"),
        ("/bridge/quarantine?reason=nonsense", "原因"),
        ("/bridge/quarantine?status=maybe", "状态"),
        ("/bridge/quarantine?entity=%3Cscript%3E", "对象"),
        ("/bridge/quarantine?direction=sideways", "方向"),
        ("/bridge/reports?day=2026-13-45", "日期"),
        ("/bridge/reports?day=yesterday", "日期"),
        ("/bridge/reports/26-11-2026/html", "日期"),
        ("/bridge/quarantine/0", "正整数"),
    ],
)
def test_bad_parameters_answer_400_with_a_message(client: TestClient, path: str, needle: str, auth) -> None:
    auth.login("admin", may_release=False)  # sees every page and file link
    response = client.get(path)
    assert response.status_code == 400, response.text[:300]
    assert needle in response.text
    assert "<script>" not in response.text


def test_unknown_page_is_a_chinese_404(client: TestClient) -> None:
    response = client.get("/bridge/nothing-here")
    assert response.status_code == 404
    assert "没有这个页面" in response.text


def page_on_hub(make_client: Any, auth: Any, ui_data: Path, hub_url: str, path: str) -> Any:
    """One page of an app whose hub is ``hub_url`` (missing, blank, too old, unreachable)."""
    config = UiConfig(authenticator=auth, csrf_secret=b"k", hub_url=hub_url, data_dir=ui_data)
    with make_client(config) as client:
        return client.get(path)


def test_hub_not_migrated_shows_what_to_do(tmp_path: Path, ui_data: Path, auth, make_client) -> None:
    config = UiConfig(
        authenticator=auth,
        csrf_secret=b"k",
        hub_url=f"sqlite:///{tmp_path / 'empty.sqlite'}",
        data_dir=ui_data,
    )
    with make_client(config) as client:
        for path in NAV_PAGES:
            response = client.get(path)
            assert response.status_code == 503, path
            assert "尚未初始化" in response.text
            assert "不存在" in response.text
            assert "bridge hub upgrade" in response.text
        # Data Docs need no hub; looking did not create an empty hub file
        assert client.get("/bridge/data-docs").status_code == 200
    assert not (tmp_path / "empty.sqlite").exists()


def test_empty_hub_file_says_upgrade(tmp_path: Path, ui_data: Path, auth, make_client) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "blank.sqlite").close()
    response = page_on_hub(
        make_client, auth, ui_data, f"sqlite:///{tmp_path / 'blank.sqlite'}", "/bridge/sync"
    )
    assert response.status_code == 503
    assert "没有任何表" in response.text
    assert "bridge hub upgrade" in response.text


def test_hub_behind_an_older_revision_says_upgrade(tmp_path: Path, ui_data: Path, auth, make_client) -> None:
    from sqlalchemy import text

    from bridge.hub import engine as hub_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    hub_engine.upgrade(url)
    with hub_engine.get_engine(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    response = page_on_hub(make_client, auth, ui_data, url, "/bridge/sync")
    assert response.status_code == 503
    assert "ffff" in response.text
    assert "不认识" in response.text
    hub_engine.get_engine(url).dispose()


def test_unreachable_hub_names_the_problem(ui_data: Path, auth, make_client) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg2://bridge:secret-pw@127.0.0.1:{port}/hub?connect_timeout=2"
    response = page_on_hub(make_client, auth, ui_data, url, "/bridge/quarantine")
    assert response.status_code == 503
    assert "无法连接中枢库" in response.text
    assert "bridge_hub" in response.text
    assert "secret-pw" not in response.text  # the password is masked


# ---------------------------------------------------------------- viewer → policy role


def test_every_page_names_the_viewer_and_their_role(client: TestClient, auth) -> None:
    for name, shown in (
        ("wangfang", "wangfang（普通员工）"),
        ("sales_manager", "sales_manager（销售主管）"),
        ("admin", "admin（管理层）"),
        ("hr", "hr（人力资源部）"),
    ):
        auth.login(name, may_release=False)
        for path in NAV_PAGES:
            assert f"当前用户：{shown}" in _text(client.get(path).text), (name, path)


def test_user_roles_are_checked_against_the_policy() -> None:
    from bridge import permissions, settings

    shipped = settings.ui_roles()
    assert shipped.role_of("admin") == "management"
    assert shipped.role_of("someone-new") == "employee"  # fail closed
    shipped.check(permissions.load().roles, "include/permissions.yaml")
    bad = settings.ui_roles(
        {"ui": {"user_roles": {"zhangsan": "boss"}, "default_role": "employee"}},
        source="include/settings.yaml",
    )
    with pytest.raises(settings.SettingsError) as caught:
        bad.check(permissions.load().roles, "include/permissions.yaml")
    assert "include/settings.yaml" in str(caught.value)
    assert "ui.user_roles.zhangsan = 'boss'" in str(caught.value)
    assert "sales_manager" in str(caught.value)  # the roles that exist
    for broken, key in (
        ({"user_roles": ["admin"]}, "ui.user_roles"),
        ({"user_roles": {"a": 3}}, "ui.user_roles.a"),
        ({"default_role": ""}, "ui.default_role"),
    ):
        with pytest.raises(settings.SettingsError, match=key.replace(".", r"\.")):
            settings.ui_roles({"ui": broken}, source="include/settings.yaml")


def test_an_unknown_role_in_the_settings_closes_every_page(ui_config: UiConfig, make_client, seed) -> None:
    from bridge import settings

    seed.quarantine("C-1")
    ui_config.roles = settings.UiRoles({"wangfang": "sales_director"}, "employee", "include/settings.yaml")
    with make_client(ui_config) as client:
        for path in NAV_PAGES:
            response = client.get(path)
            assert response.status_code == 503, path
            import html

            assert "ui.user_roles.wangfang = 'sales_director'" in html.unescape(response.text)
            assert "C-1" not in response.text

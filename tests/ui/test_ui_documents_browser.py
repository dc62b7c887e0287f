"""客户文件 in Debian's Chromium: two roles search the same customer; one downloads the contract, the other is refused.

The hub is the one the real attachment transfers filled (``test_ui_documents.filed``). The bridge app runs
alone under uvicorn on a free 127.0.0.1 port (``browser_support.bridge_app_served``, stopped by its process
group) with the simulators' Connections, so a download is streamed from the CRM simulator through the hooks.
The viewer of each browser context is named by a cookie (``_bridge_server.py`` with
``BRIDGE_TEST_VIEWER_COOKIE=1``; the real login is tested in ``test_ui_airflow_auth.py``).
Screenshots: ``tests/artifacts/browser/documents_*.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.sync.sync_o2c_world import o2c  # noqa: F401  (the world's fixtures)
from tests.ui.browser_support import ARTIFACTS, bridge_app_served, launch_chromium
from tests.ui.browser_support import missing as browser_missing
from tests.ui.test_ui_documents import CONTRACT, SHA, FiledWorld, filed  # noqa: F401

from bridge.hub.schema import audit_log

REQUIRE_BROWSER = os.environ.get("BRIDGE_REQUIRE_BROWSER") == "1"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _chromium_or_skip(reason: str | None) -> None:
    """No usable Chromium here: skipped, or failed when ``BRIDGE_REQUIRE_BROWSER=1`` (CI)."""
    if reason and REQUIRE_BROWSER:
        pytest.fail(f"BRIDGE_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(reason)


def _context(browser: Any, origin: str, role: str) -> Any:
    context = browser.new_context(
        viewport={"width": 1400, "height": 900},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        accept_downloads=True,
    )
    context.add_cookies([{"name": "bridge_test_viewer", "value": role, "url": origin}])
    context.set_default_timeout(30_000)
    return context


def _watch(page: Any, origin: str, problems: list[str]) -> None:
    """Console errors (other than a failed load, told by its response below), page errors, requests to other
    hosts and error answers (the browser's own favicon probe aside) are problems."""
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: problems.append(f"foreign request: {r.url}") if not r.url.startswith(origin) else None,
    )
    page.on(
        "response",
        lambda r: (
            problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )


def _search(page: Any, base: str, name: str) -> None:
    """Open 客户文件 and search the customer as a person would (type, press 搜索)."""
    page.goto(f"{base}/documents")
    page.locator("h1", has_text="客户文件").wait_for()
    page.fill("input[name=q]", name)
    page.get_by_role("button", name="搜索").click()
    page.locator("#documents-table").wait_for()


def test_two_roles_search_a_customer_one_downloads_the_contract_the_other_is_refused(
    filed: FiledWorld,  # noqa: F811
    tmp_path: Path,
) -> None:
    _chromium_or_skip(browser_missing())
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data").mkdir()
    problems: list[str] = []
    env = {"BRIDGE_TEST_VIEWER_COOKIE": "1", **filed.o2c.sims.connection_env()}
    with (
        bridge_app_served(
            str(filed.o2c.hub.url), tmp_path / "data", tmp_path / "server.log", env=env
        ) as origin,
        sync_playwright() as driver,
    ):
        base = f"{origin}/bridge"
        browser = launch_chromium(driver)
        try:
            manager = _context(browser, origin, "sales_manager").new_page()
            _watch(manager, origin, problems)
            _search(manager, base, filed.name)
            assert "当前用户：sales_manager（销售主管）" in manager.locator("#viewer").inner_text()
            contract = manager.locator("a.document-link", has_text="合同-文件页测试.pdf").first
            href = str(contract.get_attribute("href"))
            assert SHA["contract"] in href
            assert manager.locator(".document-locked").count() >= 1  # the invoice: listed, no link
            manager.screenshot(path=str(ARTIFACTS / "documents_sales_manager.png"), full_page=True)
            with manager.expect_download() as download:
                contract.click()
            assert Path(download.value.path()).read_bytes() == CONTRACT
            assert download.value.suggested_filename == "合同-文件页测试.pdf"

            employee = _context(browser, origin, "employee").new_page()
            _watch(employee, origin, problems)
            _search(employee, base, filed.name)
            assert "当前用户：employee（普通员工）" in employee.locator("#viewer").inner_text()
            shown = employee.locator("#documents-table").inner_text()
            assert "行程单.pdf" in shown
            assert "合同" not in shown  # no contract row at all
            assert "发票" not in shown  # no invoice row either
            employee.screenshot(path=str(ARTIFACTS / "documents_employee.png"), full_page=True)
            refused = employee.goto(origin + href)  # the manager's link, shared with a colleague
            assert refused is not None
            assert refused.status == 403
            text = employee.locator("body").inner_text()
            assert "「合同」类文件只有以下角色可以打开：销售主管、财务、管理层" in text
            employee.screenshot(path=str(ARTIFACTS / "documents_refused.png"), full_page=True)
        finally:
            browser.close()
    assert problems == [f"HTTP 403: {origin}{href}"], problems  # the refusal, and nothing else
    with filed.o2c.hub.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.principal, audit_log.c.outcome).where(
                audit_log.c.operation == "document_download"
            )
        ).all()
    assert sorted(rows) == [("employee", "denied"), ("sales_manager", "ok")]
    logged = (tmp_path / "server.log").read_text(encoding="utf-8")
    assert filed.o2c.sims.crm.url not in logged  # no download URL (signed or not) in the server's log
    assert filed.o2c.sims.oa.url not in logged

"""客户旅程 and 绩效与满意度 per viewer role, on a hub the real writers filled (tests/journey/marts_scene.py):
what each role sees of a customer's timeline and of the funnel, whose customers a salesperson may open, who sees
a person's performance row (audited) and who only the groups; and Chromium checks (marker ``browser``) of both
pages as 人力资源部 and as 普通员工, and of the journey page as 市场部, 销售主管 and 人力资源部."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.journey.journey_world import Journey, journey, journey_sims  # noqa: F401
from tests.journey.marts_scene import Scene, build_scene
from tests.ui.browser_support import bridge_app_served, launch_chromium
from tests.ui.browser_support import missing as browser_missing
from tests.ui.conftest import CSRF_SECRET, FakeAuth, mounted

from bridge import people, settings
from bridge.ui.app import UiConfig

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts" / "browser"
REQUIRE_BROWSER = os.environ.get("BRIDGE_REQUIRE_BROWSER") == "1"


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def scene(journey: Journey, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:  # noqa: F811
    built = build_scene(journey)
    owner = journey.snapshots("company")[built.company_id]["owner_id"]
    # sales_manager is the followed customer's owner; 王经理 (owner 79999999) manages that owner.
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__USER_OWNERS", f"{{sales_manager: '{owner}', boss: '79999999'}}")
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MANAGERS", f"{{'{owner}': '79999999'}}")
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_RESPONSES", "1")
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE", "2")
    monkeypatch.setenv("BRIDGE__UI__USER_ROLES", "{hr: hr, employee: employee, marketing: marketing, "
                       "sales_manager: sales_manager, management: management, boss: sales_manager}")
    settings.cached.cache_clear()
    with journey.hub.begin() as conn:  # owner names as the report / the CRM → OA sync keep them
        people.remember_crm_owners(conn, journey.crm.owners())
    yield built
    settings.cached.cache_clear()


@pytest.fixture
def auth() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def client(scene: Scene, auth: FakeAuth, tmp_path: Path) -> Iterator[TestClient]:
    config = UiConfig(authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=scene.hub_url, data_dir=tmp_path)
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as c:
        yield c


def page(client: TestClient, auth: FakeAuth, user: str, path: str) -> tuple[int, str]:
    auth.login(user, False)
    answer = client.get(f"/bridge{path}")
    return answer.status_code, answer.text


def company_name(scene: Scene) -> str:
    return str(scene.journey.snapshots("company")[scene.company_id]["name"])


def test_ui_journey_search_and_timeline_for_management(scene: Scene, client: TestClient, auth: FakeAuth) -> None:
    name = company_name(scene)
    status, html = page(client, auth, "management", f"/journey?q={name[:4]}")
    assert status == 200
    assert f"/bridge/journey/customer/{scene.company_id}" in html
    assert 'id="funnel-table"' in html
    campaigns = scene.journey.snapshots("campaign")
    assert any(c["name"] in html for c in campaigns.values())
    status, html = page(client, auth, "management", f"/journey/customer/{scene.company_id}")
    assert status == 200
    body = text_of(html)
    deal = scene.journey.snapshots("deal")[scene.deal_id]
    for needle in (name, deal["deal_name"], "新增联系人", "首次接触来源", "进入阶段：赢单", "赢单签约",
                   "立项审批：已通过", "客户拜访", "满意度反馈"):
        assert needle in body, needle
    assert 'id="hidden-note"' not in html


def test_ui_journey_employee_sees_no_customer_and_cannot_open_one(
    scene: Scene, client: TestClient, auth: FakeAuth
) -> None:
    status, html = page(client, auth, "employee", f"/journey?q={company_name(scene)[:4]}")
    assert status == 200
    assert 'id="journey-scope"' in html
    assert "/journey/customer/" not in html
    assert 'id="funnel-table"' not in html
    status, html = page(client, auth, "employee", f"/journey/customer/{scene.company_id}")
    assert status == 403
    assert "不属于你或你的下属" in text_of(html)


def test_ui_journey_sales_sees_own_customers_masked_by_role(scene: Scene, client: TestClient, auth: FakeAuth) -> None:
    companies = scene.journey.snapshots("company")
    owner = companies[scene.company_id]["owner_id"]
    other = next(cid for cid, c in companies.items() if c.get("owner_id") != owner)
    status, html = page(client, auth, "sales_manager", f"/journey/customer/{scene.company_id}")
    assert status == 200
    uscc = companies[scene.company_id]["uscc"]
    assert uscc not in html  # 销售主管 sees the USCC masked
    assert uscc[:4] in html
    assert page(client, auth, "sales_manager", f"/journey/customer/{other}")[0] == 403
    assert page(client, auth, "boss", f"/journey/customer/{scene.company_id}")[0] == 200  # the owner's manager
    query = company_name(scene)[-2:]
    assert any(query in c["name"] and c.get("owner_id") != owner for c in companies.values())  # others match too
    status, html = page(client, auth, "sales_manager", f"/journey?q={query}")
    shown = set(re.findall(r"/bridge/journey/customer/(\d+)", html))
    assert shown
    assert all(companies[c]["owner_id"] == owner for c in shown)


def test_ui_journey_marketing_sees_campaigns_not_approvals(scene: Scene, client: TestClient, auth: FakeAuth) -> None:
    status, html = page(client, auth, "marketing", "/journey")
    assert status == 200
    assert 'id="funnel-table"' in html
    status, html = page(client, auth, "marketing", f"/journey/customer/{scene.company_id}")
    assert status == 200
    body = text_of(html)
    assert "首次接触来源" in body
    assert "立项审批" not in body
    assert "立项申请 1 条" in body  # said, not shown


def test_ui_journey_people_rows_for_hr_and_the_chain_only(scene: Scene, client: TestClient, auth: FakeAuth) -> None:
    owner = scene.journey.snapshots("company")[scene.company_id]["owner_id"]
    status, html = page(client, auth, "hr", "/journey/people")
    assert status == 200
    assert 'id="people-table"' in html
    hr_rows = re.findall(r'<span class="muted small">(\d+)</span>', html)
    assert hr_rows
    assert len(scene.journey.audit("view_personal_data")) == len(hr_rows)
    status, html = page(client, auth, "employee", "/journey/people")
    assert status == 200
    assert 'id="aggregate-only"' in html
    assert 'id="people-table"' not in html
    assert not any(f">{o}<" in html for o in hr_rows)
    assert len(scene.journey.audit("view_personal_data")) == len(hr_rows)  # nothing personal shown: no entry
    status, html = page(client, auth, "boss", "/journey/people")
    boss_rows = re.findall(r'<span class="muted small">(\d+)</span>', html)
    assert set(boss_rows) <= {owner}  # the manager sees the people below them only
    entries = [e for e in scene.journey.audit("view_personal_data") if e["principal"] == "boss"]
    assert len(entries) == len(boss_rows)


def test_ui_journey_people_refuses_an_unknown_period(scene: Scene, client: TestClient, auth: FakeAuth) -> None:
    status, html = page(client, auth, "hr", "/journey/people?period=nope")
    assert status == 400
    assert "考核周期" in text_of(html)


@pytest.fixture
def chromium() -> None:
    """Chromium is there (else the test is skipped, or fails under BRIDGE_REQUIRE_BROWSER=1); screenshots' folder."""
    reason = browser_missing()
    if reason and REQUIRE_BROWSER:
        pytest.fail(f"BRIDGE_REQUIRE_BROWSER=1 but {reason}")
    elif reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def _browse(scene: Scene, role: str, tmp_path: Path) -> dict[str, object]:
    """Both pages in Chromium as a viewer of ``role`` (the app alone under uvicorn, its role by setting)."""
    from playwright.sync_api import sync_playwright

    env = {"BRIDGE__UI__USER_ROLES": f"{{data-owner: {role}}}", "BRIDGE__JOURNEY_VIEWS__MIN_RESPONSES": "1",
           "BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE": "2"}
    data = tmp_path / f"data-{role}"
    data.mkdir()
    problems: list[str] = []
    foreign: list[str] = []
    with bridge_app_served(scene.hub_url, data, tmp_path / f"server-{role}.log", env=env) as origin, \
            sync_playwright() as driver:
        browser = launch_chromium(driver)
        try:
            tab = browser.new_page(viewport={"width": 1300, "height": 900})
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                   if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
            tab.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(origin) else None)
            tab.goto(f"{origin}/bridge/journey/people")
            rows = tab.locator("#people-table tbody tr").count()
            note = tab.locator("#aggregate-only").count()
            tab.screenshot(path=str(ARTIFACTS / f"journey_people_{role}.png"), full_page=True)
            tab.goto(f"{origin}/bridge/journey?q={company_name(scene)[:4]}")
            links = tab.locator("#journey-results a").count()
            tab.screenshot(path=str(ARTIFACTS / f"journey_{role}.png"), full_page=True)
        finally:
            browser.close()
    return {"rows": rows, "note": note, "links": links, "problems": problems, "foreign": foreign}


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_ui_journey_pages_in_chromium_as_hr_and_employee(scene: Scene, tmp_path: Path, chromium: None) -> None:
    hr = _browse(scene, "hr", tmp_path)
    employee = _browse(scene, "employee", tmp_path)
    assert hr["rows"]
    assert hr["note"] == 0
    assert employee["rows"] == 0
    assert employee["note"] == 1
    assert employee["links"] == 0  # 普通员工 without an owner mapping: no customer
    assert hr["problems"] == []  # nothing refused (CSP, missing asset), no script error
    assert employee["problems"] == []
    assert hr["foreign"] == []  # no CDN: every request to the app itself
    assert employee["foreign"] == []


def _browse_journey(scene: Scene, role: str, tmp_path: Path, owner: str | None = None) -> dict[str, Any]:
    """The journey page in Chromium as a viewer of ``role`` (CRM owner ``owner`` when given): the search for the
    followed customer, then its timeline and another customer's; what the page showed."""
    from playwright.sync_api import sync_playwright

    env = {"BRIDGE__UI__USER_ROLES": f"{{data-owner: {role}}}",
           "BRIDGE__JOURNEY_VIEWS__USER_OWNERS": f"{{data-owner: '{owner}'}}" if owner else "{}"}
    data = tmp_path / f"journey-{role}"
    data.mkdir()
    seen: dict[str, Any] = {"problems": []}
    companies = scene.journey.snapshots("company")
    other = next(cid for cid, c in companies.items() if c.get("owner_id") != companies[scene.company_id]["owner_id"])
    with bridge_app_served(scene.hub_url, data, tmp_path / f"journey-{role}.log", env=env) as origin, \
            sync_playwright() as driver:
        browser = launch_chromium(driver)
        try:
            tab = browser.new_page(viewport={"width": 1300, "height": 900})
            tab.on("pageerror", lambda e: seen["problems"].append(str(e)))
            tab.goto(f"{origin}/bridge/journey?q={company_name(scene)[-2:]}")
            seen["funnel_rows"] = tab.locator("#funnel-table tbody tr").count()
            seen["funnel_text"] = tab.locator("#funnel-table").inner_text() if seen["funnel_rows"] else ""
            hrefs = tab.locator("#journey-results a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
            seen["customers"] = {h.rsplit("/", 1)[-1] for h in hrefs if "/journey/customer/" in h}
            tab.screenshot(path=str(ARTIFACTS / f"journey_search_{role}.png"), full_page=True)
            answer = tab.goto(f"{origin}/bridge/journey/customer/{scene.company_id}")
            seen["status"] = answer.status if answer else None
            seen["timeline"] = tab.locator("body").inner_text()
            tab.screenshot(path=str(ARTIFACTS / f"journey_customer_{role}.png"), full_page=True)
            answer = tab.goto(f"{origin}/bridge/journey/customer/{other}")
            seen["other_status"] = answer.status if answer else None
        finally:
            browser.close()
    return seen


@pytest.mark.browser
@pytest.mark.timeout(400)
def test_ui_journey_page_in_chromium_as_marketing_sales_and_hr(scene: Scene, tmp_path: Path,
                                                              chromium: None) -> None:
    """Issue 20's browser check: the journey page as 市场部, 销售主管 (owner of the followed customer) and 人力资源部."""
    companies = scene.journey.snapshots("company")
    owner = str(companies[scene.company_id]["owner_id"])
    campaigns = [c["name"] for c in scene.journey.snapshots("campaign").values()]
    uscc = str(companies[scene.company_id]["uscc"])

    marketing = _browse_journey(scene, "marketing", tmp_path)
    assert marketing["funnel_rows"] >= 1  # 市场部 sees the funnel per campaign
    assert any(name in marketing["funnel_text"] for name in campaigns)
    assert scene.company_id in marketing["customers"]  # and every customer (all_customers_roles)
    assert marketing["status"] == 200
    assert "首次接触来源" in marketing["timeline"]
    assert "立项审批" not in marketing["timeline"]  # no approvals for 市场部: said, not shown
    assert marketing["other_status"] == 200

    sales = _browse_journey(scene, "sales_manager", tmp_path, owner=owner)
    assert sales["funnel_rows"] >= 1
    assert sales["customers"]
    assert all(companies[c]["owner_id"] == owner for c in sales["customers"])  # own customers only
    assert sales["status"] == 200
    assert "赢单签约" in sales["timeline"]
    assert "立项审批" in sales["timeline"]
    assert uscc not in sales["timeline"]  # the USCC masked for 销售主管
    assert sales["other_status"] == 403

    hr = _browse_journey(scene, "hr", tmp_path)
    assert hr["funnel_rows"] == 0  # no funnel for 人力资源部
    assert hr["customers"] == set()  # no customer: HR is no owner and not in all_customers_roles
    assert hr["status"] == 403
    assert "不属于你或你的下属" in hr["timeline"]
    for seen in (marketing, sales, hr):
        assert seen["problems"] == []


def test_ui_journey_bad_settings_close_both_pages(
    hub_url: str, ui_data: Path, auth: FakeAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE", "1")  # below 2: a group of one is a person
    settings.cached.cache_clear()
    config = UiConfig(authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=hub_url, data_dir=ui_data)
    try:
        with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as c:
            for path in ("/journey", "/journey/people"):
                status, html = page(c, auth, "hr", path)
                assert status == 503
                assert "journey_views.min_group_size" in text_of(html)
    finally:
        settings.cached.cache_clear()

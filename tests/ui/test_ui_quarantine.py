"""隔离区 pages: filters, paging, masks, release (authorised, audited, CSRF-safe), refusals."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.hub import audit, store
from bridge.hub import engine as hub_engine
from bridge.ui.app import UiConfig

MOBILE = "13812345678"
EMAIL = "zhang.san@example.com"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "the release form carries a CSRF token"
    return match.group(1)


def _entry(hub_url: str, entry_id: int) -> store.QuarantineEntry:
    with hub_engine.get_engine(hub_url).connect() as conn:
        entry = store.get_quarantine(conn, entry_id)
    assert entry is not None
    return entry


def test_list_shows_open_entries_with_the_message_to_act_on(client: TestClient, seed) -> None:
    entry_id = seed.quarantine("C-1001")
    html = client.get("/bridge/quarantine").text
    assert f'href="/bridge/quarantine/{entry_id}"' in html
    assert "格式不正确（invalid_format）" in html
    assert "请销售在 CRM 中更正后自动重试" in html
    assert "销售部" in html
    assert "owner-7" in html
    assert MOBILE not in html
    assert EMAIL not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"reason": "owner_not_in_oa"}, {"D-2"}),
        ({"entity": "contact"}, {"C-1", "C-3"}),
        ({"department": "财务部"}, {"C-3"}),
        ({"owner": "owner-9"}, {"D-2"}),
        ({"direction": "oa_to_crm"}, {"C-3"}),
        ({"reason": "invalid_format", "department": "销售部"}, {"C-1"}),
        ({}, {"C-1", "D-2", "C-3"}),
    ],
)
def test_filters_narrow_the_list(client: TestClient, seed, query: dict[str, str], expected: set[str]) -> None:
    seed.quarantine("C-1")
    seed.quarantine("D-2", entity="deal", reason="owner_not_in_oa", owner="owner-9", field="owner_id")
    seed.quarantine("C-3", department="财务部", direction="oa_to_crm")
    html = client.get("/bridge/quarantine", params=query).text
    shown = set(re.findall(r"<code>([CD]-\d)</code>", html))
    assert shown == expected
    # the chosen filter stays selected in the form
    for value in query.values():
        assert f'value="{value}" selected' in html


def test_paging_walks_through_every_entry_once(client: TestClient, seed) -> None:
    ids = [f"C-{n:02d}" for n in range(12)]
    for source_id in ids:
        seed.quarantine(source_id)
    seen: list[str] = []
    page = 1
    while True:
        html = client.get("/bridge/quarantine", params={"page": page}).text
        seen += re.findall(r"<code>(C-\d\d)</code>", html)
        if 'rel="next"' not in html:
            break
        assert f'href="/bridge/quarantine?page={page + 1}"' in html
        page += 1
    assert page == 3  # page size 5
    assert sorted(seen) == ids
    beyond = client.get("/bridge/quarantine", params={"page": 9})
    assert beyond.status_code == 200
    assert "回到第 1 页" in beyond.text


def test_resolved_entries_show_only_with_status_all(client: TestClient, seed, hub_url: str) -> None:
    entry_id = seed.quarantine("C-1")
    with hub_engine.get_engine(hub_url).begin() as conn:
        from bridge.context import RunContext

        store.release(conn, RunContext.local(), entry_id, "李雷")
    assert "C-1" not in client.get("/bridge/quarantine").text
    html = client.get("/bridge/quarantine", params={"status": "all"}).text
    assert "<code>C-1</code>" in html
    assert "已人工释放" in html


def test_entry_page_applies_the_policy_masks(client: TestClient, seed, auth) -> None:
    auth.login("project_manager", may_release=False)  # 项目经理: contact phone and e-mail masked
    entry_id = seed.quarantine("C-1001")
    html = client.get(f"/bridge/quarantine/{entry_id}").text
    assert "138****5678" in html
    assert "z***@example.com" in html
    assert MOBILE not in html
    assert EMAIL not in html
    assert "采购经理" in html  # unmasked fields stay readable
    assert "请销售在 CRM 中更正后自动重试" in html
    assert "请按提示在来源系统更正格式" in html  # advice for the reason


def test_personal_data_in_free_text_is_scrubbed_too(client: TestClient, seed) -> None:
    entry_id = seed.quarantine(
        "C-7",
        payload={"crm_id": "C-7", "job_title": "请致电 13912345678 或写信 li.lei@corp.example.cn"},
        message="对方系统拒绝：联系人 13912345678 已存在",
        reason="vendor_rejected",
    )
    for path in (f"/bridge/quarantine/{entry_id}", "/bridge/quarantine"):
        html = client.get(path).text
        assert "13912345678" not in html
        assert "li.lei@corp.example.cn" not in html
    assert "139****5678" in client.get(f"/bridge/quarantine/{entry_id}").text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mobile=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    local=st.from_regex(r"[a-z][a-z0-9._]{2,15}", fullmatch=True),
    domain=st.sampled_from(["example.com", "corp.cn", "mail.example.org"]),
)
def test_no_mobile_or_email_ever_reaches_the_entry_page(
    client: TestClient, seed, mobile: str, local: str, domain: str
) -> None:
    email = f"{local}@{domain}"
    entry_id = seed.quarantine(f"C-{mobile}", payload={"mobile": mobile, "email": email, "job_title": "经理"})
    html = client.get(f"/bridge/quarantine/{entry_id}").text
    assert mobile not in html.replace(f"C-{mobile}", "")  # the record id is the id, not a payload value
    assert email not in html


def test_hostile_payload_is_escaped(client: TestClient, seed, auth) -> None:
    auth.login("admin", may_release=True)  # 管理层 sees the job title
    entry_id = seed.quarantine(
        "C-x",
        payload={"job_title": "<script>alert(1)</script>", "<b>k</b>": "v"},
        reason="hostile_input",
        message="<img src=x onerror=alert(1)>",
    )
    html = client.get(f"/bridge/quarantine/{entry_id}").text
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_payload_is_hidden_when_the_policy_cannot_load(ui_config: UiConfig, make_client, seed) -> None:
    def broken() -> object:
        raise RuntimeError("permissions.yaml: bad")

    ui_config.policy_loader = broken
    entry_id = seed.quarantine("C-1")
    with make_client(ui_config) as client:
        response = client.get(f"/bridge/quarantine/{entry_id}")
        html = response.text
        assert client.get("/bridge/quarantine").status_code == 503  # fail closed: no page shows data
    assert response.status_code == 503
    assert "权限策略（include/permissions.yaml）无法加载" in html
    assert "bad" not in html  # an English exception text stays in the log
    assert MOBILE not in html
    assert "138****5678" not in html


def test_release_by_an_authorised_user_closes_the_entry_and_audits_the_name(
    client: TestClient, seed, hub_url: str, auth
) -> None:
    auth.login("王芳", may_release=True)
    entry_id = seed.quarantine("C-1001")
    page = client.get(f"/bridge/quarantine/{entry_id}").text
    assert 'id="release-form"' in page
    response = client.post(
        f"/bridge/quarantine/{entry_id}/release",
        data={"csrf_token": _csrf(page), "confirm": "yes"},
        headers={"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/bridge/quarantine/{entry_id}?released=1"

    entry = _entry(hub_url, entry_id)
    assert entry.resolution == "released"
    assert entry.resolved_by == "王芳"
    with hub_engine.get_engine(hub_url).connect() as conn:
        last = audit.tail(conn, 1)[0]
        queued = store.pending_changes(conn, "crm_to_oa")
        assert audit.verify(conn).ok
    assert last.operation == "quarantine_release"
    assert last.principal == "王芳"
    assert last.dag_id == "bridge-ui"
    assert last.detail == "released_by=王芳"
    assert last.record_ids["quarantine_id"] == entry_id
    assert [(c.entity, c.source_id) for c in queued] == [("contact", "C-1001")]  # the next sync retries it

    after = client.get(response.headers["location"]).text
    assert "已释放隔离记录" in after
    assert "处理人 王芳" in after
    assert "人工释放" in after  # the audit history on the page
    assert 'id="release-form"' not in after


def test_release_twice_is_a_409_with_who_did_it(client: TestClient, seed, auth) -> None:
    entry_id = seed.quarantine("C-1")
    token = _csrf(client.get(f"/bridge/quarantine/{entry_id}").text)
    first = client.post(
        f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token, "confirm": "yes"}
    )
    assert first.status_code == 303
    second = client.post(
        f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token, "confirm": "yes"}
    )
    assert second.status_code == 409
    assert "无需再次释放" in second.text
    assert "wangfang" in second.text


def test_release_needs_the_confirmation(client: TestClient, seed, hub_url: str) -> None:
    entry_id = seed.quarantine("C-1")
    token = _csrf(client.get(f"/bridge/quarantine/{entry_id}").text)
    response = client.post(f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token})
    assert response.status_code == 400
    assert "请先勾选" in response.text
    assert _entry(hub_url, entry_id).is_open


def test_unauthorised_user_cannot_release(
    client: TestClient, seed, hub_url: str, auth, ui_config: UiConfig
) -> None:
    auth.login("zhaoliu", may_release=False)
    entry_id = seed.quarantine("C-1")
    page = client.get(f"/bridge/quarantine/{entry_id}").text
    assert 'id="release-form"' not in page
    assert "没有释放权限" in page
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert token is None
    from bridge.ui.auth import CsrfGuard

    forged = CsrfGuard(ui_config.csrf_secret).token("zhaoliu")  # even with a valid token for this user
    response = client.post(
        f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": forged, "confirm": "yes"}
    )
    assert response.status_code == 403
    assert "没有释放隔离记录的权限" in response.text
    assert _entry(hub_url, entry_id).is_open


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        (None, {}),
        ("0" * 40, {}),
        ("valid", {"Origin": "https://evil.example"}),
        ("valid", {"Sec-Fetch-Site": "cross-site"}),
        ("valid", {"Origin": "null"}),
    ],
)
def test_release_refuses_forged_or_cross_site_posts(
    client: TestClient, seed, hub_url: str, token: str | None, headers: dict[str, str]
) -> None:
    entry_id = seed.quarantine("C-1")
    real = _csrf(client.get(f"/bridge/quarantine/{entry_id}").text)
    data = {"confirm": "yes"}
    if token is not None:
        data["csrf_token"] = real if token == "valid" else token
    response = client.post(f"/bridge/quarantine/{entry_id}/release", data=data, headers=headers)
    assert response.status_code == 403
    assert _entry(hub_url, entry_id).is_open


def test_csrf_token_is_bound_to_the_user(client: TestClient, seed, hub_url: str, auth) -> None:
    entry_id = seed.quarantine("C-1")
    token_of_wangfang = _csrf(client.get(f"/bridge/quarantine/{entry_id}").text)
    auth.login("lilei", may_release=True)
    response = client.post(
        f"/bridge/quarantine/{entry_id}/release", data={"csrf_token": token_of_wangfang, "confirm": "yes"}
    )
    assert response.status_code == 403
    assert _entry(hub_url, entry_id).is_open


def test_unauthenticated_requests_get_no_data(client: TestClient, seed, auth, hub_url: str) -> None:
    entry_id = seed.quarantine("C-1001")
    seed.report("2026-11-26")
    auth.logout()
    for path in (
        "/bridge/",
        "/bridge/quarantine",
        f"/bridge/quarantine/{entry_id}",
        "/bridge/sync",
        "/bridge/reports",
        "/bridge/reports/2026-11-26/html",
        "/bridge/reports/2026-11-26/xlsx",
        "/bridge/health",
        "/bridge/migration",
        "/bridge/data-docs/x.html",
        "/bridge/files/reports/2026-11-26/daily_report.html",
    ):
        api = client.get(path)
        assert api.status_code == 401, path
        assert "C-1001" not in api.text
        assert "经营日报</h1>" not in api.text
        browser = client.get(path, headers={"Accept": "text/html"})
        assert browser.status_code == 302, path
        assert browser.headers["location"].startswith("/auth/login?next=")
    post = client.post(f"/bridge/quarantine/{entry_id}/release", data={"confirm": "yes"})
    assert post.status_code == 401
    assert _entry(hub_url, entry_id).is_open


def test_unknown_entry_is_404(client: TestClient) -> None:
    assert client.get("/bridge/quarantine/999").status_code == 404
    response = client.post("/bridge/quarantine/999/release", data={"confirm": "yes"})
    assert response.status_code == 403  # no CSRF token: refused before the lookup

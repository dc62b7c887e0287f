"""大屏 in headless Chromium: 1920×1080, no console errors, no external requests, no scrollbars, live refresh.

Runs the bridge app alone (not Airflow, nobody logged in) in a small uvicorn
server on 127.0.0.1 and a free port (``browser_support.bridge_app_served``),
stopped at the end (and bounded by its own lifetime in any case). The
hub is filled by the bridge's writers (``build_wall_hub``); the test opens the
kiosk link without any login, changes the hub through the writers and waits
for the page to show the new figures, then revokes the link.

The screenshot is saved to ``tests/artifacts/browser/wallboard.png``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, bridge_app_served
from tests.ui.browser_support import missing as _missing

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
SECRET = "wallboard-browser-test-secret-0123456789"
TZ = ZoneInfo("Asia/Shanghai")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


# ---------------------------------------------------------------- the test


def _yuan(v: float) -> str:
    """wallboard.js's money format (¥, 万, 亿), for comparing what the page shows."""
    a = abs(v)
    if a >= 1e8:
        return f"¥{v / 1e8:.2f}亿"
    if a >= 1e4:
        return f"¥{v / 1e4:.{0 if a >= 1e6 else 1}f}万"
    return f"¥{round(v):,}"


def _wait(page: Any, predicate: str, arg: Any = None, timeout: float = 30_000) -> None:
    page.wait_for_function(predicate, arg=arg, timeout=timeout)


def test_wallboard_kiosk_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright
    from tests.ui.test_ui_wallboard import add_deal, build_wall_hub, expected

    from bridge.ui import kiosk

    monkeypatch.setenv(kiosk.KEY_ENV, SECRET)
    hub = build_wall_hub(tmp_path)
    with hub.engine.begin() as conn:
        token, _link = kiosk.create(conn, kiosk.signing_key(), "browser-test", label="测试大屏")
    hosts: list[str] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    extra_env = {"BRIDGE_KIOSK_SECRET": SECRET, "BRIDGE__WALLBOARD__CACHE_SECONDS": "0"}
    with (
        bridge_app_served(
            hub.url, tmp_path, tmp_path / "server.log", anonymous=True, env=extra_env
        ) as origin,
        sync_playwright() as driver,
    ):
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(
                viewport={"width": 1920, "height": 1080}, locale="zh-CN", timezone_id="Europe/London"
            )  # the page must not rely on the TV's zone

            def record(route: Any) -> None:
                netloc = urlsplit(route.request.url).netloc
                hosts.append(netloc)
                if netloc == urlsplit(origin).netloc:
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", record)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            kiosk_url = f"{origin}/bridge/wallboard/kiosk/{token}?refresh=2"
            response = page.goto(kiosk_url)
            assert response is not None
            assert response.status == 200
            _wait(page, "() => Number(document.body.dataset.loads || 0) >= 1")
            page.wait_for_timeout(1200)  # chart animations settle before the screenshot
            page.screenshot(path=str(ARTIFACTS / "wallboard.png"))

            # layout: nothing scrolls, nothing spills out of its panel
            sizes = page.evaluate("""() => ({sw: document.documentElement.scrollWidth,
                sh: document.documentElement.scrollHeight, w: innerWidth, h: innerHeight,
                spill: [...document.querySelectorAll('.kpi, .panel')].filter(
                    e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1).map(e => e.className)})""")
            assert sizes["w"] == 1920
            assert sizes["h"] == 1080
            assert sizes["sw"] <= 1920, sizes
            assert sizes["sh"] <= 1080, sizes
            assert sizes["spill"] == [], sizes

            # another screen (a 720p TV, the Airflow frame): the same layout, scaled; still nothing scrolls
            page.set_viewport_size({"width": 1280, "height": 720})
            page.wait_for_timeout(300)
            small = page.evaluate("""() => ({sw: document.documentElement.scrollWidth,
                sh: document.documentElement.scrollHeight, box: document.getElementById('wb-stage').getBoundingClientRect()})""")
            assert (small["sw"], small["sh"]) == (1280, 720), small
            assert round(small["box"]["width"]) == 1280
            assert round(small["box"]["height"]) == 720
            page.set_viewport_size({"width": 1920, "height": 1080})

            # the figures on the wall are the hub's
            now = datetime.fromisoformat(
                page.evaluate("() => document.body.dataset.generated")
            )  # the server's "now"
            want = expected(hub.engine, now.astimezone(TZ).date(), now)
            assert page.text_content('[data-f="won_month"]') == _yuan(want["won_amount_month"])
            assert page.text_content('[data-f="won_today"]') == _yuan(want["won_amount_today"])
            assert page.text_content('[data-f="pending"]') == f"{want['pending']:,}"
            assert page.locator("#sync-list .sync-row").count() == 2
            assert page.locator("canvas").count() >= 6
            assert "正在读取" not in (page.text_content("#wb-status") or "")

            # the hub changes (a deal won today, staged as the sync stages it): the page follows, without a reload
            loads = int(page.evaluate("() => document.body.dataset.loads"))
            add_deal(hub, "59990000077", "1250000.00", now.astimezone(TZ).date())
            new_today = _yuan(want["won_amount_today"] + 1_250_000)
            _wait(
                page, "(v) => document.querySelector('[data-f=\"won_today\"]').textContent === v", new_today
            )
            assert int(page.evaluate("() => document.body.dataset.loads")) > loads
            assert (
                page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
            )  # never reloaded

            for chart in (
                "#chart-trend",
                "#chart-funnel",
                "#chart-customers",
            ):  # a mouse over the charts: tooltips
                page.hover(chart)
                page.wait_for_timeout(200)
            assert errors == [], errors  # rendering, refreshing, tooltips: not one console error
            # the token opens nothing else, even from the kiosk page itself
            statuses = page.evaluate(
                """async (t) => {
                const out = {};
                for (const p of ['/bridge/quarantine', '/bridge/health', '/bridge/reports', '/bridge/sync',
                                 '/bridge/wallboard/data', '/bridge/wallboard']) {
                    const r = await fetch(p + '?token=' + t, {headers: {Authorization: 'Bearer ' + t}});
                    out[p] = r.status;
                }
                return out; }""",
                token,
            )
            assert set(statuses.values()) == {401}, statuses

            # revoked: the next refresh is refused, the page says so and keeps the last figures
            with hub.engine.begin() as conn:
                kiosk.revoke(conn, kiosk.token_id_of(token), "browser-test")
            _wait(page, "() => document.getElementById('wb-status').textContent.includes('链接已失效')")
            assert page.text_content('[data-f="won_today"]') == new_today
            assert page.goto(kiosk_url).status == 403  # type: ignore[union-attr]
            # what the console said after the deliberate 401/403 probes: those refusals only
            assert all("401" in e or "403" in e for e in errors), errors
        finally:
            browser.close()
    server_host = urlsplit(origin).netloc
    assert hosts
    assert set(hosts) == {server_host}, sorted(set(hosts))
    assert (ARTIFACTS / "wallboard.png").stat().st_size > 50_000

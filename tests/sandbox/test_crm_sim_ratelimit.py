"""Rate limits: headers on every answer, 429 with HubSpot's body for the 10-second burst and for search."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sandbox.conftest_crm import Crm, crm, running_crm  # noqa: F401

from sandbox import launcher

DEALS = "/crm/v3/objects/deals?limit=1"


@pytest.fixture
def limited(crm: Crm) -> Iterator[Crm]:  # noqa: F811
    crm.admin("PUT", "/ratelimits", {"enabled": True, "burst": 6, "window_ms": 10_000, "search_per_s": 2})
    try:
        yield crm
    finally:
        crm.admin("PUT", "/ratelimits", {"enabled": False, "burst": 110, "search_per_s": 5})


def test_headers_count_down_on_normal_answers(limited: Crm) -> None:
    remaining = []
    for _ in range(3):
        resp = limited.call("GET", DEALS)
        assert resp.status_code == 200
        assert resp.headers["X-HubSpot-RateLimit-Max"] == "6"
        assert resp.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        remaining.append(int(resp.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [5, 4, 3]


def test_burst_over_the_window_is_429_with_hubspot_body(limited: Crm) -> None:
    statuses = [limited.call("GET", DEALS).status_code for _ in range(8)]
    assert statuses == [200] * 6 + [429] * 2
    resp = limited.call("GET", DEALS)
    body = resp.json()
    assert body["status"] == "error"
    assert body["category"] == "RATE_LIMITS"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert resp.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    stats = limited.admin("GET", "/stats")
    assert stats["rate_limited"]["TEN_SECONDLY_ROLLING"] >= 3


def test_the_window_rolls(limited: Crm) -> None:
    limited.admin("PUT", "/ratelimits", {"enabled": True, "burst": 3, "window_ms": 1000, "search_per_s": 5})
    assert [limited.call("GET", DEALS).status_code for _ in range(4)] == [200, 200, 200, 429]
    time.sleep(1.1)
    assert limited.call("GET", DEALS).status_code == 200


def test_search_has_its_own_per_second_limit(limited: Crm) -> None:
    codes = [limited.search("deals", {"limit": 1}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    resp = limited.search("deals", {"limit": 1})
    assert resp.json()["policyName"] == "SECONDLY"
    assert limited.call("GET", DEALS).status_code == 200  # other calls are not search-limited


def test_limits_are_per_app_not_per_access_token(limited: Crm) -> None:
    first = limited.login()
    for _ in range(6):
        assert limited.call("GET", DEALS, token=first).status_code == 200
    second = limited.login()  # a fresh token of the same app shares the portal's budget
    assert limited.call("GET", DEALS, token=second).status_code == 429
    # the private app has its own budget
    assert limited.call("GET", DEALS, token=launcher.CRM_PRIVATE_APP_TOKEN).status_code == 200


def test_hubspot_defaults_and_off(tmp_path: Path) -> None:
    with running_crm(tmp_path / "on", seed=None) as on:
        settings = on.admin("GET", "/ratelimits")
        assert settings == {"enabled": True, "burst": 110, "window_ms": 10_000, "search_per_s": 5}
        codes = [on.search("deals", {"limit": 1}).status_code for _ in range(7)]
        assert 429 in codes
    with running_crm(tmp_path / "off", "--rate-limits", "off", seed=None) as off:
        codes = [off.search("deals", {"limit": 1}).status_code for _ in range(20)]
        assert set(codes) == {200}

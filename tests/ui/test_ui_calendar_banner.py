"""The banner on every bridge page when the working-day calendar lacks next year's holidays."""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi.testclient import TestClient

from bridge import workdays

from .page_paths import NAV_PAGES

BANNER = re.compile(r'<div class="notice calendar-banner" role="alert">([^<]*)</div>')


def _banner(client: TestClient, path: str) -> str | None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    found = BANNER.findall(response.text)
    assert len(found) <= 1
    return found[0] if found else None


def test_every_page_warns_in_december_without_next_years_holidays(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIDGE__CALENDAR__CONFIRMED_YEARS", raising=False)
    monkeypatch.setattr(workdays, "today_in_china", lambda now=None: date(2026, 12, 7))
    for path in NAV_PAGES:
        text = _banner(client, path)
        assert text is not None, path
        assert "2027 年" in text
        assert "chinesecalendar" in text
    monkeypatch.setattr(workdays, "today_in_china", lambda now=None: date(2027, 1, 4))
    fallback = _banner(client, "/bridge/sync")
    assert fallback is not None
    assert "周一至周五" in fallback


def test_no_banner_before_november_or_once_the_year_is_confirmed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIDGE__CALENDAR__CONFIRMED_YEARS", raising=False)
    monkeypatch.setattr(workdays, "today_in_china", lambda now=None: date(2026, 10, 31))
    assert _banner(client, "/bridge/sync") is None
    monkeypatch.setattr(workdays, "today_in_china", lambda now=None: date(2026, 12, 7))
    monkeypatch.setenv("BRIDGE__CALENDAR__CONFIRMED_YEARS", "[2027]")
    assert _banner(client, "/bridge/sync") is None

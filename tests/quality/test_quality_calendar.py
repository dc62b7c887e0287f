"""The working-day calendar check, through the real run: evaluated, stored, summarised with its Chinese text."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bridge.dictionary import Dictionary
from bridge.hub import engine as hub_engine
from bridge.quality import calendar_check
from bridge.quality.checks import calendar_checks
from bridge.quality.gx import GxSession
from bridge.quality.results import CheckOutcome
from bridge.quality.scores import compute_scores, save_day
from bridge.quality.summary import build_summary

CHECK = "calendar.holidays.coverage"


@pytest.fixture
def calendar_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private include/settings.yaml (the run reads the calendar section from it)."""
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    for key in ("BRIDGE__CALENDAR__CONFIRMED_YEARS", "BRIDGE__CALENDAR__WARN_FROM"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "settings.yaml"
    path.write_text("calendar:\n  extra_days_off: []\n", encoding="utf-8")
    return path


def _evaluate(day: date) -> CheckOutcome:
    """The check alone on ``day`` (a fresh GX session, no hub): cheaper than a whole run."""
    found, frame, _seconds = calendar_check.evaluate(GxSession("calendar"), calendar_checks(), day)
    assert frame.name == "calendar"
    assert len(found) == 1
    return found[0]


def test_next_years_holidays_missing_from_november_fails_the_check_with_the_fix(
        dictionary: Dictionary, tmp_path: Path, calendar_settings: Path) -> None:
    """Evaluated, stored by the run's writer (scores.save_day) and read back by the summary staff see.

    That ``run_checks`` includes the check is asserted in test_quality_run (empty hub).
    """
    day = date(2026, 12, 7)
    outcome = _evaluate(day)
    assert (outcome.success, outcome.evaluated, outcome.failed, outcome.failing_ids) == (False, 1, 1, ["2027"])
    hub = hub_engine.ensure_schema(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    with hub.begin() as conn:
        save_day(conn, day, "calendar_test", [outcome], compute_scores([outcome], dictionary.entities),
                 datetime(2026, 12, 6, 23, 0, tzinfo=UTC))
    with hub.connect() as conn:
        summary = build_summary(conn, dictionary, day)
    hub_engine.dispose_engines()
    assert summary["overall"]["score"] == 0.0
    stored = summary["failing_checks"]
    assert [c["check_id"] for c in stored] == [CHECK]
    assert stored[0]["entity_label"] == "工作日历"
    assert stored[0]["label"].startswith("工作日历须含本年及下一年")
    assert "chinesecalendar" in stored[0]["fix"]
    assert stored[0]["failing_ids"] == ["2027"]


def test_the_check_passes_before_november_and_once_the_year_is_confirmed(
        calendar_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _evaluate(date(2026, 10, 31)).success is True
    assert _evaluate(date(2026, 11, 1)).failing_ids == ["2027"]
    monkeypatch.setenv("BRIDGE__CALENDAR__CONFIRMED_YEARS", "[2027]")  # 2027 entered by hand and confirmed
    assert _evaluate(date(2026, 12, 8)).success is True
    monkeypatch.delenv("BRIDGE__CALENDAR__CONFIRMED_YEARS")
    january = _evaluate(date(2027, 1, 4))  # already falling back
    assert (january.success, january.failing_ids) == (False, ["2027"])


def test_an_unreadable_calendar_section_fails_the_check_not_the_run(calendar_settings: Path) -> None:
    calendar_settings.write_text("calendar:\n  warn_from: in November\n", encoding="utf-8")
    outcome = _evaluate(date(2026, 6, 1))
    assert (outcome.success, outcome.failing_ids, outcome.error) == (False, ["settings"], None)

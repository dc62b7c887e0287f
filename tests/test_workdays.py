"""The working-day calendar over the real 2025–2026 State Council schedules, overrides, fallback, settings."""

from __future__ import annotations

import os
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import workdays as W

CAL = W.WorkCalendar()


def d(text: str) -> date:
    return date.fromisoformat(text)


def test_the_pinned_package_covers_2004_to_2026() -> None:
    assert W.package_years() == (2004, 2026)
    assert W.package_version() == "1.11.0"


def test_national_day_2025_make_up_weekend_days_work_and_the_holiday_weekdays_do_not() -> None:
    # 国庆/中秋 2025: Oct 1–8 off, Sunday Sep 28 and Saturday Oct 11 are 调休 working days.
    assert CAL.verdict(d("2025-09-28")) == W.Verdict(True, "chinesecalendar", "National Day")
    assert CAL.verdict(d("2025-10-11")).workday is True
    off = [day for day in (d("2025-10-01") + timedelta(days=i) for i in range(8))]
    assert [CAL.is_workday(day) for day in off] == [False] * 8
    assert sum(1 for day in off if day.weekday() < 5) == 6  # six of them are weekdays a cron would run on
    assert CAL.next_workday(d("2025-09-30")) == d("2025-10-09")
    assert CAL.previous_workday(d("2025-10-09")) == d("2025-09-30")
    assert CAL.is_workday(d("2025-10-12")) is False  # the Sunday after is an ordinary weekend day


def test_spring_festival_2026_first_working_day_after_looks_back_to_the_last_one_before() -> None:
    # 2026: Feb 15–23 off; Saturday Feb 14 and Saturday Feb 28 are 调休 working days.
    assert CAL.is_workday(d("2026-02-14")) is True
    assert not any(CAL.is_workday(d("2026-02-15") + timedelta(days=i)) for i in range(9))
    assert CAL.next_workday(d("2026-02-14")) == d("2026-02-24")
    assert CAL.previous_workday(d("2026-02-24")) == d("2026-02-14")
    assert CAL.is_workday(d("2026-02-28")) is True
    assert CAL.is_workday(d("2026-01-04")) is True  # Sunday after New Year's Day


def test_company_overrides_win_over_the_package_and_say_so() -> None:
    cal = W.WorkCalendar(extra_days_off=frozenset({d("2026-12-31")}),
                         extra_working_days=frozenset({d("2026-12-26"), d("2025-10-08")}))
    assert cal.verdict(d("2026-12-31")) == W.Verdict(False, "override")
    assert cal.verdict(d("2026-12-26")) == W.Verdict(True, "override")  # a Saturday
    assert cal.verdict(d("2025-10-08")) == W.Verdict(True, "override")  # inside 国庆
    assert cal.next_workday(d("2026-12-25")) == d("2026-12-26")
    assert cal.previous_workday(d("2026-12-31")) == d("2026-12-30")
    assert CAL.previous_workday(d("2026-12-28")) == d("2026-12-25")  # without the Saturday override
    with pytest.raises(W.CalendarSettingsError, match="2026-12-31 同时出现"):
        W.WorkCalendar(extra_days_off=frozenset({d("2026-12-31")}), extra_working_days=frozenset({d("2026-12-31")}))


def test_a_year_without_data_falls_back_to_monday_to_friday_plus_overrides_and_warns() -> None:
    with pytest.warns(W.CalendarDataMissing, match="缺少 2027 年"):
        verdict = CAL.verdict(d("2027-01-01"))  # a Friday: New Year's Day, unknown to the package
    assert verdict == W.Verdict(True, "fallback")
    with pytest.warns(W.CalendarDataMissing):
        assert CAL.is_workday(d("2027-01-02")) is False  # Saturday
    cal = W.WorkCalendar(extra_days_off=frozenset({d("2027-01-01")}), extra_working_days=frozenset({d("2027-01-09")}))
    assert cal.verdict(d("2027-01-01")) == W.Verdict(False, "override")
    assert cal.verdict(d("2027-01-09")) == W.Verdict(True, "override")
    with pytest.warns(W.CalendarDataMissing):
        assert cal.next_workday(d("2026-12-31")) == d("2027-01-04")


def test_confirmed_years_take_the_settings_lists_without_a_warning() -> None:
    cal = W.WorkCalendar(extra_days_off=frozenset({d("2027-01-01")}), confirmed_years=frozenset({2027}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cal.verdict(d("2027-01-01")) == W.Verdict(False, "override")
        assert cal.verdict(d("2027-01-04")) == W.Verdict(True, "settings")
    assert cal.coverage(d("2026-12-07")).ok


def test_coverage_warns_from_the_lead_day_before_january_and_then_falls_back() -> None:
    assert CAL.coverage(d("2026-10-31")) == W.Coverage(d("2026-10-31"), "ok", None, None)
    warn = CAL.coverage(d("2026-11-01"))
    assert (warn.level, warn.missing_year) == ("warn", 2027)
    assert warn.message is not None
    assert "2027 年" in warn.message
    assert "1 月 1 日前" in warn.message
    assert CAL.coverage(d("2026-12-07")).level == "warn"  # today in the brief
    later = W.WorkCalendar(warn_from=(12, 15))
    assert later.coverage(d("2026-12-07")).ok
    assert later.coverage(d("2026-12-15")).level == "warn"
    fallback = CAL.coverage(d("2027-01-04"))
    assert (fallback.level, fallback.missing_year) == ("fallback", 2027)
    assert fallback.message is not None
    assert "周一至周五" in fallback.message
    assert CAL.coverage(d("2025-11-20")).ok  # 2026 was known in November 2025


def test_settings_section_is_validated_with_the_key_in_the_message() -> None:
    cal = W.WorkCalendar.from_dict({"extra_days_off": [d("2026-12-31"), "2026-12-30"], "extra_working_days": None,
                                    "confirmed_years": [2027], "warn_from": "10-15"})
    assert cal.extra_days_off == {d("2026-12-31"), d("2026-12-30")}
    assert (cal.confirmed_years, cal.warn_from) == ({2027}, (10, 15))
    assert W.WorkCalendar.from_dict(cal.to_dict()) == cal
    assert W.WorkCalendar.from_dict(None) == W.WorkCalendar()
    bad = [({"extra_days_off": "2026-12-31"}, "extra_days_off: 应为日期列表"),
           ({"extra_days_off": ["12/31/2026"]}, "extra_days_off: '12/31/2026' 不是日期"),
           ({"extra_working_days": [datetime(2026, 12, 26, 9)]}, "不带时间"),
           ({"confirmed_years": ["2027"]}, "confirmed_years: 应为年份列表"),
           ({"warn_from": "11月1日"}, "warn_from: 应为 MM-DD"),
           ({"warn_from": "02-30"}, "warn_from"),
           ({"extra_day_off": []}, "不认识的键 extra_day_off"),
           (["2026-12-31"], "应为映射")]
    for raw, message in bad:
        with pytest.raises(W.CalendarSettingsError, match=message):
            W.WorkCalendar.from_dict(raw)  # type: ignore[arg-type]


def _settings_file(folder: Path, calendar_yaml: str) -> Path:
    path = folder / "settings.yaml"
    path.write_text(f"report:\n  timezone: Asia/Shanghai\ncalendar:\n{calendar_yaml}", encoding="utf-8")
    return path


def test_load_calendar_reads_the_settings_and_environment_and_notices_an_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    path = _settings_file(tmp_path, "  extra_days_off: [2026-12-31]\n")
    assert W.load_calendar({}).extra_days_off == {d("2026-12-31")}
    path.write_text(path.read_text(encoding="utf-8") + "  extra_working_days: [2026-12-26]\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert W.load_calendar({}).extra_working_days == {d("2026-12-26")}
    env = {"BRIDGE__CALENDAR__EXTRA_DAYS_OFF": "[2026-12-30]", "BRIDGE__CALENDAR__CONFIRMED_YEARS": "[2027]"}
    cal = W.load_calendar(env)
    assert (cal.extra_days_off, cal.confirmed_years) == ({d("2026-12-30")}, {2027})


def test_the_project_settings_file_has_a_valid_calendar_section() -> None:
    from bridge import settings

    raw = settings.load(settings.PROJECT_ROOT / "include" / "settings.yaml", {}).get("calendar")
    assert raw is not None, "include/settings.yaml has no calendar: section"
    assert W.WorkCalendar.from_dict(raw).warn_from == (11, 1)


def test_banner_text_on_the_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)  # 2026-12-07 01:00 in Shanghai
    text = W.banner_text(now, W.WorkCalendar())
    assert text is not None
    assert "2027 年" in text
    assert W.banner_text(datetime(2026, 10, 31, 15, 59, tzinfo=UTC), W.WorkCalendar()) is None  # Oct 31 23:59 CST
    assert W.banner_text(datetime(2026, 10, 31, 16, 0, tzinfo=UTC), W.WorkCalendar()) is not None  # Nov 1 00:00 CST
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    _settings_file(tmp_path, "  extra_days_off: [not-a-date]\n")
    broken = W.banner_text(now)
    assert broken is not None
    assert "工作日历配置无法读取" in broken
    assert "not-a-date" in broken


@given(st.dates(min_value=date(2005, 1, 1), max_value=date(2026, 11, 30)))
def test_neighbouring_working_days_have_only_days_off_between_them(day: date) -> None:
    before, after = CAL.previous_workday(day), CAL.next_workday(day)
    assert before < day < after
    assert CAL.is_workday(before)
    assert CAL.is_workday(after)
    gap = [before + timedelta(days=i) for i in range(1, (after - before).days)]
    assert all(not CAL.is_workday(x) for x in gap if x != day)
    assert (after - before).days <= 12  # the longest break (Spring Festival) with its weekends

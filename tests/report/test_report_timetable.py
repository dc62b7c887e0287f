"""When the report runs and which dates it covers: explicit Asia/Shanghai, weekends, midnight UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.report import periods as P
from bridge.report import tasks, timetable


def core(environ: dict[str, str]):  # type: ignore[no-untyped-def]
    """The timetable as the scheduler sees it (serialised and decoded, like the DAG processor does)."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    return decode_timetable(encode_timetable(timetable.daily_report_timetable(environ)))


def next_runs(environ: dict[str, str], after: datetime, n: int) -> list[datetime]:
    from airflow.timetables.base import DataInterval, TimeRestriction

    tt = core(environ)
    out: list[datetime] = []
    last = None
    restriction = TimeRestriction(earliest=after, latest=None, catchup=True)
    for _ in range(n):
        info = tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None
        out.append(info.run_after)
        last = DataInterval(info.data_interval.start, info.data_interval.end)
    return out


def test_daily_runs_at_0730_shanghai_which_is_2330_utc_the_day_before() -> None:
    runs = next_runs({}, datetime(2026, 11, 26, 23, 0, tzinfo=UTC), 3)
    assert [r.astimezone(UTC) for r in runs] == [datetime(2026, 11, 26, 23, 30, tzinfo=UTC),
                                                 datetime(2026, 11, 27, 23, 30, tzinfo=UTC),
                                                 datetime(2026, 11, 28, 23, 30, tzinfo=UTC)]
    # the business date of the first one is the 27th in Shanghai although it is still the 26th in UTC
    assert timetable.report_day(runs[0]) == date(2026, 11, 27)


def test_just_after_the_run_the_next_is_tomorrow() -> None:
    runs = next_runs({}, datetime(2026, 11, 26, 23, 31, tzinfo=UTC), 1)
    assert runs[0].astimezone(UTC) == datetime(2026, 11, 27, 23, 30, tzinfo=UTC)


def test_business_days_only_skips_the_weekend() -> None:
    env = {timetable.ENV_BUSINESS_DAYS: "true"}
    # Friday 2026-11-27 07:30 CST = Thursday 23:30 UTC; the next is Monday 07:30 CST = Sunday 23:30 UTC.
    runs = next_runs(env, datetime(2026, 11, 26, 23, 0, tzinfo=UTC), 3)
    assert [r.astimezone(UTC) for r in runs] == [datetime(2026, 11, 26, 23, 30, tzinfo=UTC),
                                                 datetime(2026, 11, 29, 23, 30, tzinfo=UTC),
                                                 datetime(2026, 11, 30, 23, 30, tzinfo=UTC)]
    assert [timetable.report_day(r).isoweekday() for r in runs] == [5, 1, 2]


def test_summer_and_winter_are_the_same_utc_time() -> None:
    """Asia/Shanghai has no daylight saving time: 23:30 UTC all year."""
    for start in (datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 10, 24, 12, tzinfo=UTC)):
        runs = next_runs({}, start, 3)
        assert {(r.astimezone(UTC).hour, r.astimezone(UTC).minute) for r in runs} == {(23, 30)}


def test_schedule_settings_from_the_environment_only() -> None:
    assert timetable.cron_expression(False) == "30 7 * * *"
    assert timetable.cron_expression(True) == "30 7 * * 1-5"
    assert timetable.business_days_only_from_env({timetable.ENV_BUSINESS_DAYS: "1"}) is True
    assert timetable.business_days_only_from_env({timetable.ENV_BUSINESS_DAYS: "false"}) is False
    assert timetable.business_days_only_from_env({}) is False
    with pytest.raises(ValueError, match="true or false"):
        timetable.business_days_only_from_env({timetable.ENV_BUSINESS_DAYS: "sometimes"})
    with pytest.raises(Exception):
        timetable.timezone_from_env({timetable.ENV_TIMEZONE: "Mars/Olympus"})


def test_weekend_runs_skip_themselves_when_only_the_settings_file_says_business_days() -> None:
    saturday = date(2026, 11, 28)
    assert tasks.skip_reason(saturday, True, "scheduled") is not None
    assert tasks.skip_reason(saturday, True, "manual") is None
    assert tasks.skip_reason(saturday, False, "scheduled") is None
    assert tasks.skip_reason(date(2026, 11, 27), True, "scheduled") is None


def test_day_of_run_is_the_shanghai_date_of_the_logical_date() -> None:
    ctx = {"logical_date": datetime(2026, 11, 26, 23, 30, tzinfo=UTC), "params": {}}
    assert tasks.day_of_run(ctx, "Asia/Shanghai") == date(2026, 11, 27)
    assert tasks.day_of_run({**ctx, "params": {"day": "2026-11-20"}}, "Asia/Shanghai") == date(2026, 11, 20)
    run = SimpleNamespace(run_after=datetime(2026, 11, 27, 0, 10, tzinfo=UTC))
    assert tasks.day_of_run({"dag_run": run, "params": {}}, "Asia/Shanghai") == date(2026, 11, 27)


def test_periods_of_a_daily_report() -> None:
    p = P.report_periods(date(2026, 11, 26))
    assert (p.day.start, p.day.end, p.day_prev.start, p.day_prev.end) == (
        date(2026, 11, 25), date(2026, 11, 25), date(2026, 11, 24), date(2026, 11, 24))
    assert (p.mtd.start, p.mtd.end, p.mtd_prev.start, p.mtd_prev.end) == (
        date(2026, 11, 1), date(2026, 11, 25), date(2026, 10, 1), date(2026, 10, 25))
    assert (p.ytd.start, p.ytd_prev.start, p.ytd_prev.end) == (date(2026, 1, 1), date(2025, 1, 1), date(2025, 11, 25))
    assert p.day.label == "昨日（11月25日）"


def test_monday_business_day_report_covers_friday_to_sunday() -> None:
    p = P.report_periods(date(2026, 11, 30), business_days_only=True)
    assert (p.day.start, p.day.end) == (date(2026, 11, 27), date(2026, 11, 29))
    assert (p.day_prev.start, p.day_prev.end) == (date(2026, 11, 24), date(2026, 11, 26))
    assert p.day.days == 3
    assert "11月27日—29日" in p.day.label


def test_month_and_year_edges() -> None:
    p = P.report_periods(date(2026, 3, 31))  # as of March 30: February has no 30th
    assert (p.mtd_prev.start, p.mtd_prev.end) == (date(2026, 2, 1), date(2026, 2, 28))
    p = P.report_periods(date(2026, 1, 1))  # as of December 31
    assert (p.mtd.start, p.ytd.start, p.ytd.end) == (date(2025, 12, 1), date(2025, 1, 1), date(2025, 12, 31))
    p = P.report_periods(date(2028, 3, 1))  # as of Feb 29 of a leap year
    assert p.ytd_prev.end == date(2027, 2, 28)


@given(st.dates(min_value=date(2001, 1, 2), max_value=date(2099, 12, 31)), st.booleans())
def test_periods_invariants(day: date, business: bool) -> None:
    p = P.report_periods(day, business)
    assert p.as_of == day - timedelta(days=1)
    assert p.day_prev.end + timedelta(days=1) == p.day.start
    assert p.day_prev.days == p.day.days
    assert p.mtd.start.day == 1
    assert p.mtd.end == p.as_of
    assert p.mtd_prev.end < p.mtd.start
    assert p.ytd.start == date(p.as_of.year, 1, 1)
    assert p.ytd_prev.start.year == p.as_of.year - 1
    assert p.trailing30.days == 30
    assert p.trailing30.end == p.as_of
    if not business:
        assert p.day.days == 1
    elif P.is_business_day(day):
        assert p.day.start == P.previous_report_day(day, True)

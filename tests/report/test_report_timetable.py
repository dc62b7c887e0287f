"""When the report and data health run (Chinese working days) and which dates 昨日 covers.

The timetable is tested the way the scheduler meets it: serialised with the
DAG, decoded through the plugin registry (``plugins/bridge_plugin.py``
``timetables``), then asked for the next run; over the real 2025–2026 State
Council calendars of the pinned ``chinesecalendar``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import timetables
from bridge import workdays as W
from bridge.report import periods as P
from bridge.report import tasks, timetable
from bridge.timetables import WorkdayTimetable

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI_0730_UTC = (23, 30)


@pytest.fixture(scope="module")
def plugin_registry() -> Iterator[dict[str, Any]]:
    """Airflow's plugin registry loaded from the project's plugins folder (as the scheduler loads it)."""
    import airflow.settings
    from airflow import plugins_manager

    saved = airflow.settings.PLUGINS_FOLDER
    airflow.settings.PLUGINS_FOLDER = str(ROOT / "plugins")
    plugins_manager._get_plugins.cache_clear()
    plugins_manager.get_timetables_plugins.cache_clear()
    try:
        yield plugins_manager.get_timetables_plugins()
    finally:
        airflow.settings.PLUGINS_FOLDER = saved
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_timetables_plugins.cache_clear()


def scheduler_copy(tt: WorkdayTimetable) -> Any:
    """The timetable as the scheduler sees it (serialised and decoded, like the DAG processor does)."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    return decode_timetable(json.loads(json.dumps(encode_timetable(tt))))


def next_runs(tt: Any, after: datetime, n: int) -> list[datetime]:
    from airflow.timetables.base import DataInterval, TimeRestriction

    out: list[datetime] = []
    last = None
    restriction = TimeRestriction(earliest=after, latest=None, catchup=True)
    for _ in range(n):
        info = tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None
        assert info.data_interval.start == info.data_interval.end == info.run_after
        out.append(info.run_after)
        last = DataInterval(info.data_interval.start, info.data_interval.end)
    return out


def days(runs: list[datetime]) -> list[date]:
    return [timetable.report_day(r) for r in runs]


FROZEN = W.WorkCalendar()  # the package's calendar, no company days: independent of include/settings.yaml


# ---------------------------------------------------------------- the timetable through the registry
def test_plugin_registers_the_timetable_and_it_round_trips(plugin_registry: dict[str, Any]) -> None:
    assert plugin_registry["bridge.timetables.WorkdayTimetable"] is WorkdayTimetable
    lazy = timetable.daily_report_timetable({})
    copy = scheduler_copy(lazy)
    assert isinstance(copy, WorkdayTimetable)
    assert copy == lazy
    assert copy.serialize() == {"hour": 7, "minute": 30, "timezone": "Asia/Shanghai", "calendar": None}
    frozen = WorkdayTimetable(7, 0, calendar=W.WorkCalendar(extra_days_off=frozenset({date(2026, 12, 31)}),
                                                            confirmed_years=frozenset({2027}), warn_from=(10, 1)))
    copy = scheduler_copy(frozen)
    assert copy == frozen
    assert copy.calendar == frozen.calendar
    assert copy.summary == "工作日 07:00"


def test_national_day_2025_runs_on_the_make_up_weekend_days_only(plugin_registry: dict[str, Any]) -> None:
    tt = scheduler_copy(WorkdayTimetable(7, 30, calendar=FROZEN))
    runs = next_runs(tt, datetime(2025, 9, 25, 23, 31, tzinfo=UTC), 7)
    assert days(runs) == [date(2025, 9, 28), date(2025, 9, 29), date(2025, 9, 30),  # Sunday 28th: 调休
                          date(2025, 10, 9), date(2025, 10, 10), date(2025, 10, 11),  # Saturday 11th: 调休
                          date(2025, 10, 13)]
    assert {(r.astimezone(UTC).hour, r.astimezone(UTC).minute) for r in runs} == {SHANGHAI_0730_UTC}
    assert runs[0].astimezone(UTC) == datetime(2025, 9, 27, 23, 30, tzinfo=UTC)  # 07:30 CST is the day before in UTC


def test_spring_festival_2026_no_run_from_the_15th_to_the_23rd(plugin_registry: dict[str, Any]) -> None:
    tt = scheduler_copy(WorkdayTimetable(7, 0, calendar=FROZEN))
    runs = next_runs(tt, datetime(2026, 2, 12, 0, 0, tzinfo=UTC), 5)
    assert days(runs) == [date(2026, 2, 13), date(2026, 2, 14), date(2026, 2, 24), date(2026, 2, 25),
                          date(2026, 2, 26)]
    assert runs[0].astimezone(UTC) == datetime(2026, 2, 12, 23, 0, tzinfo=UTC)


def test_company_days_from_the_settings_are_read_when_scheduling_not_when_parsing(
        plugin_registry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("calendar:\n  extra_days_off: []\n", encoding="utf-8")
    tt = scheduler_copy(timetable.daily_report_timetable({}))  # no calendar inside: settings at scheduling time
    after = datetime(2026, 12, 22, 23, 0, tzinfo=UTC)  # 07:00 CST on the 23rd
    assert days(next_runs(tt, after, 3)) == [date(2026, 12, 23), date(2026, 12, 24), date(2026, 12, 25)]
    settings_file.write_text("calendar:\n  extra_days_off: [2026-12-24]\n  extra_working_days: [2026-12-26]\n",
                             encoding="utf-8")
    import os

    os.utime(settings_file, ns=(settings_file.stat().st_atime_ns, settings_file.stat().st_mtime_ns + 1_000_000))
    assert days(next_runs(tt, after, 3)) == [date(2026, 12, 23), date(2026, 12, 25), date(2026, 12, 26)]


def test_unreadable_calendar_settings_do_not_stop_the_schedule(
        plugin_registry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(timetables, "_LOGGED", {})
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    (tmp_path / "settings.yaml").write_text("calendar:\n  extra_days_off: [31.12.2026]\n", encoding="utf-8")
    tt = scheduler_copy(timetable.daily_report_timetable({}))
    with caplog.at_level(logging.ERROR, logger="bridge.timetables"):
        runs = next_runs(tt, datetime(2025, 9, 29, 23, 0, tzinfo=UTC), 2)
    assert days(runs) == [date(2025, 9, 30), date(2025, 10, 9)]  # the package's calendar still applies
    assert "31.12.2026" in caplog.text
    assert "without company overrides" in caplog.text


def test_a_year_without_holiday_data_runs_monday_to_friday_plus_overrides_and_says_so(
        plugin_registry: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timetables, "_LOGGED", {})
    cal = W.WorkCalendar(extra_days_off=frozenset({date(2027, 1, 1)}), extra_working_days=frozenset({date(2027, 1, 9)}))
    tt = scheduler_copy(WorkdayTimetable(7, 30, calendar=cal))
    with pytest.warns(W.CalendarDataMissing, match="2027"), caplog.at_level(logging.WARNING, logger="bridge.timetables"):
        runs = next_runs(tt, datetime(2026, 12, 28, 23, 0, tzinfo=UTC), 6)
    assert days(runs) == [date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31),  # 2026: the package
                          date(2027, 1, 4), date(2027, 1, 5), date(2027, 1, 6)]  # 2027: Mon–Fri, Jan 1 off
    assert "2027" in caplog.text
    assert "周一至周五" in caplog.text
    # logged once an hour, not at every parse of the DAG processor
    assert sum("尚无 2027 年" in r.getMessage() for r in caplog.records) == 1  # Dec 29–31: next year unknown
    assert sum("缺少 2027 年" in r.getMessage() for r in caplog.records) == 1  # Jan 4–6: falling back
    runs = next_runs(tt, datetime(2027, 1, 6, 23, 0, tzinfo=UTC), 3)
    assert days(runs) == [date(2027, 1, 7), date(2027, 1, 8), date(2027, 1, 9)]  # a Saturday worked by override
    plain = scheduler_copy(WorkdayTimetable(7, 30, calendar=W.WorkCalendar()))
    with pytest.warns(W.CalendarDataMissing):
        assert days(next_runs(plain, datetime(2026, 12, 30, 23, 0, tzinfo=UTC), 2)) == [date(2026, 12, 31),
                                                                                       date(2027, 1, 1)]


def test_without_catchup_the_scheduler_plans_the_latest_missed_run_or_the_next_one(
        plugin_registry: dict[str, Any]) -> None:
    from airflow.timetables.base import DataInterval, TimeRestriction

    tt = scheduler_copy(WorkdayTimetable(7, 30, calendar=FROZEN))
    restriction = TimeRestriction(earliest=datetime(2025, 1, 1, tzinfo=UTC), latest=None, catchup=False)
    sept30 = tt.trigger_time(date(2025, 9, 30))
    # During 国庆 with the last run on Sep 30: the next one is the first day after the holiday.
    info = tt.next_run(DataInterval(sept30, sept30), restriction, now=datetime(2025, 10, 5, 4, 0, tzinfo=UTC))
    assert info is not None
    assert timetable.report_day(info.run_after) == date(2025, 10, 9)
    # The scheduler was down from Oct 9 to Oct 13 10:00 CST: only Monday's run is made, not the missed ones.
    info = tt.next_run(DataInterval(sept30, sept30), restriction, now=datetime(2025, 10, 13, 2, 0, tzinfo=UTC))
    assert info is not None
    assert timetable.report_day(info.run_after) == date(2025, 10, 13)
    limited = TimeRestriction(earliest=None, latest=datetime(2025, 10, 8, tzinfo=UTC), catchup=True)
    assert tt.next_run(DataInterval(sept30, sept30), limited, now=None) is None
    manual = tt.infer_manual_data_interval(run_after=datetime(2025, 10, 4, 3, 0, tzinfo=UTC))
    assert manual.start == manual.end == datetime(2025, 10, 4, 3, 0, tzinfo=UTC)


def test_invalid_time_or_zone_is_refused_when_the_dag_is_loaded() -> None:
    from airflow.exceptions import AirflowTimetableInvalid

    with pytest.raises(AirflowTimetableInvalid, match="time of day"):
        WorkdayTimetable(24, 0).validate()
    with pytest.raises(AirflowTimetableInvalid, match="Mars/Olympus"):
        WorkdayTimetable(7, 0, timezone="Mars/Olympus").validate()
    with pytest.raises(Exception):
        timetable.timezone_from_env({timetable.ENV_TIMEZONE: "Mars/Olympus"})


def _load_dag(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"dagfile_{name}", ROOT / "dags" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"{name}_dag")


@pytest.mark.parametrize(("name", "hour"), [("daily_report", 7), ("data_health", 7)])
def test_the_scheduler_computes_the_next_run_of_the_serialised_dag(
        plugin_registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str, hour: int) -> None:
    """DAG file → serialised DAG (as stored by the DAG processor) → next run info, without dag.test()."""
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.timetables.base import DagRunInfo

    serialised = LazyDeserializedDAG.from_dag(_load_dag(name))
    minute = 30 if name == "daily_report" else 0
    # Monday 2026-12-07 18:00 CST, last run Friday the 4th: today's run (missed by the scheduler) is next.
    monkeypatch.setattr(timetables, "utcnow", lambda: datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    friday = datetime(2026, 12, 3, hour - 8 + 24, minute, tzinfo=UTC)
    info = serialised.next_dagrun_info(last_automated_run_info=DagRunInfo.exact(friday))
    assert info is not None
    assert info.run_after == datetime(2026, 12, 6, hour - 8 + 24, minute, tzinfo=UTC)
    # First scheduling ever on New Year's Day 2026 (start_date): the first working day is Sunday Jan 4 (调休).
    monkeypatch.setattr(timetables, "utcnow", lambda: datetime(2026, 1, 1, 2, 0, tzinfo=UTC))
    info = serialised.next_dagrun_info(last_automated_run_info=None)
    assert info is not None
    assert timetable.report_day(info.run_after) == date(2026, 1, 4)


PARSE_AUDIT = """
import json, sys, time
opened = []
root = sys.argv[1]
def audit(event, args):
    if event == "open" and isinstance(args[0], str) and (args[0].startswith(root + "/include")
                                                         or args[0].startswith(root + "/data")):
        opened.append(args[0])
import airflow.sdk
sys.addaudithook(audit)
import importlib.util
out = {}
for name in sys.argv[2:]:
    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dag_" + name, f"{root}/dags/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, name + "_dag")
    out[name] = {"seconds": time.perf_counter() - t, "timetable": type(dag.timetable).__name__,
                 "serialized": dag.timetable.serialize()}
print(json.dumps({"opened": opened, "dags": out}))
"""


def test_dag_files_read_no_settings_at_parse_time() -> None:
    out = subprocess.run([sys.executable, "-c", PARSE_AUDIT, str(ROOT), "daily_report", "data_health"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "PATH": "/usr/bin:/bin",
                              "AIRFLOW_HOME": str(ROOT / ".airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    assert out.returncode == 0, out.stderr[-2000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["opened"] == []
    for name, hour, minute in (("daily_report", 7, 30), ("data_health", 7, 0)):
        dag = facts["dags"][name]
        assert dag["timetable"] == "WorkdayTimetable"
        assert dag["serialized"] == {"hour": hour, "minute": minute, "timezone": "Asia/Shanghai", "calendar": None}
        assert dag["seconds"] < 1.0


# ---------------------------------------------------------------- the build task's guard
def test_a_scheduled_run_on_a_day_that_became_a_day_off_skips_itself() -> None:
    cal = W.WorkCalendar(extra_days_off=frozenset({date(2026, 12, 31)}))
    assert tasks.skip_reason(date(2026, 12, 31), cal, "scheduled") is not None
    assert tasks.skip_reason(date(2026, 12, 31), cal, "manual") is None
    assert tasks.skip_reason(date(2025, 10, 11), cal, "scheduled") is None  # 调休 Saturday
    assert tasks.skip_reason(date(2025, 10, 8), cal, "scheduled") is not None  # 国庆 Wednesday


def test_a_broken_calendar_section_is_a_note_in_the_report_not_a_failed_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_INCLUDE_DIR", str(tmp_path))
    (tmp_path / "settings.yaml").write_text("calendar:\n  warn_from: soon\n", encoding="utf-8")
    notes: list[str] = []
    assert tasks.working_calendar(notes) == W.WorkCalendar()
    assert len(notes) == 1
    assert "工作日历配置有误" in notes[0]
    assert "warn_from" in notes[0]


def test_day_of_run_is_the_shanghai_date_of_the_logical_date() -> None:
    ctx = {"logical_date": datetime(2026, 11, 26, 23, 30, tzinfo=UTC), "params": {}}
    assert tasks.day_of_run(ctx, "Asia/Shanghai") == date(2026, 11, 27)
    assert tasks.day_of_run({**ctx, "params": {"day": "2026-11-20"}}, "Asia/Shanghai") == date(2026, 11, 20)
    run = SimpleNamespace(run_after=datetime(2026, 11, 27, 0, 10, tzinfo=UTC))
    assert tasks.day_of_run({"dag_run": run, "params": {}}, "Asia/Shanghai") == date(2026, 11, 27)


# ---------------------------------------------------------------- periods: working day against working day
def test_periods_of_a_midweek_report() -> None:
    p = P.report_periods(date(2026, 11, 26))
    assert (p.day.start, p.day.end, p.day_prev.start, p.day_prev.end) == (
        date(2026, 11, 25), date(2026, 11, 25), date(2026, 11, 24), date(2026, 11, 24))
    assert (p.mtd.start, p.mtd.end, p.mtd_prev.start, p.mtd_prev.end) == (
        date(2026, 11, 1), date(2026, 11, 25), date(2026, 10, 1), date(2026, 10, 25))
    assert (p.ytd.start, p.ytd_prev.start, p.ytd_prev.end) == (date(2026, 1, 1), date(2025, 1, 1), date(2025, 11, 25))
    assert (p.day.label, p.day_prev.label) == ("昨日（11月25日）", "前日（11月24日）")


def test_monday_report_compares_friday_with_thursday() -> None:
    p = P.report_periods(date(2026, 11, 30))
    assert (p.day.start, p.day.end, p.day_prev.start, p.day_prev.end) == (
        date(2026, 11, 27), date(2026, 11, 27), date(2026, 11, 26), date(2026, 11, 26))
    assert p.day.label == "上一工作日（11月27日）"
    assert p.as_of == p.mtd.end == date(2026, 11, 29)  # month to date still runs to Sunday


def test_first_report_after_the_spring_festival_compares_with_the_last_working_days_before_it() -> None:
    p = P.report_periods(date(2026, 2, 24))
    assert (p.day.start, p.day.end) == (date(2026, 2, 14), date(2026, 2, 14))  # the 调休 Saturday
    assert (p.day_prev.start, p.day_prev.end) == (date(2026, 2, 13), date(2026, 2, 13))
    assert (p.day.label, p.day_prev.label) == ("上一工作日（2月14日）", "前日（2月13日）")
    p = P.report_periods(date(2025, 10, 9))  # first day after 国庆 2025
    assert (p.day.end, p.day_prev.end) == (date(2025, 9, 30), date(2025, 9, 29))
    p = P.report_periods(date(2025, 10, 13))  # Monday after the 调休 Saturday
    assert (p.day.end, p.day_prev.end) == (date(2025, 10, 11), date(2025, 10, 10))
    assert p.day_prev.label == "前日（10月10日）"
    p = P.report_periods(date(2025, 9, 29))  # Monday after the 调休 Sunday: 昨日 is literally yesterday
    assert (p.day.label, p.day_prev.label) == ("昨日（9月28日）", "前一工作日（9月26日）")


def test_company_days_shift_the_comparison() -> None:
    cal = W.WorkCalendar(extra_days_off=frozenset({date(2026, 11, 25)}))
    p = P.report_periods(date(2026, 11, 26), cal)
    assert (p.day.end, p.day_prev.end) == (date(2026, 11, 24), date(2026, 11, 23))


def test_month_and_year_edges() -> None:
    p = P.report_periods(date(2026, 3, 31))  # as of March 30: February has no 30th
    assert (p.mtd_prev.start, p.mtd_prev.end) == (date(2026, 2, 1), date(2026, 2, 28))
    p = P.report_periods(date(2026, 1, 5))  # as of Sunday Jan 4 (a 调休 working day)
    assert (p.day.end, p.day_prev.end) == (date(2026, 1, 4), date(2025, 12, 31))
    assert (p.mtd.start, p.ytd.start, p.ytd_prev.end) == (date(2026, 1, 1), date(2026, 1, 1), date(2025, 1, 4))


def test_report_line_about_the_calendar() -> None:
    assert P.calendar_notes(date(2026, 10, 30)) == []
    notes = P.calendar_notes(date(2026, 12, 7))
    assert len(notes) == 1
    assert "2027 年" in notes[0]
    assert P.calendar_notes(date(2026, 12, 7), W.WorkCalendar(confirmed_years=frozenset({2027}))) == []


@given(st.dates(min_value=date(2005, 1, 10), max_value=date(2026, 12, 31)))
def test_periods_invariants(day: date) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", W.CalendarDataMissing)  # 2005–2026 never falls back
        p = P.report_periods(day)
        assert p.as_of == day - timedelta(days=1)
        assert p.day.days == p.day_prev.days == 1
        assert p.day_prev.end < p.day.start <= p.day.end < day
        assert P.is_business_day(p.day.end)
        assert P.is_business_day(p.day_prev.end)
        between = [p.day.end + timedelta(days=i) for i in range(1, (day - p.day.end).days)]
        assert not any(P.is_business_day(x) for x in between)
        assert p.day.end == P.previous_report_day(day)
    assert p.mtd.start.day == 1
    assert p.mtd.end == p.as_of
    assert p.mtd_prev.end < p.mtd.start
    assert p.ytd.start == date(p.as_of.year, 1, 1)
    assert p.ytd_prev.start.year == p.as_of.year - 1
    assert p.trailing30.days == 30
    assert p.trailing30.end == p.as_of


# ---------------------------------------------------------------- the report itself (the real writer)
def test_december_report_carries_the_calendar_line_and_compares_working_days(
        hub_copy: Any, policy: Any, tmp_path: Path) -> None:
    """On a copy of the staged hub: building writes report rows, which other modules' tests count."""
    from bridge.report.build import ReportRequest, build_report, owner_names

    built = build_report(hub_copy.engine, hub_copy.dictionary, policy, ReportRequest(report_day=date(2026, 12, 7),
                         owners=owner_names(hub_copy.owners), recipients=["boss@example.com"],
                         built_at=datetime(2026, 12, 6, 23, 31, tzinfo=UTC), out_root=tmp_path, run_id="calendar",
                         calendar=W.WorkCalendar()))
    html = built.paths["html"].read_text(encoding="utf-8")
    assert "工作日历尚无 2027 年的法定节假日与调休安排" in html
    assert "上一工作日（12月4日）赢单金额" in html  # Monday's report: Friday, not the weekend
    confirmed = build_report(hub_copy.engine, hub_copy.dictionary, policy, ReportRequest(report_day=date(2026, 12, 8),
                             owners={}, recipients=["boss@example.com"], out_root=tmp_path, run_id="confirmed",
                             calendar=W.WorkCalendar(confirmed_years=frozenset({2027}))))
    html = confirmed.paths["html"].read_text(encoding="utf-8")
    assert "工作日历" not in html
    assert "昨日（12月7日）赢单金额" in html

"""Which dates each figure of the report covers.

The report of day R is read at 08:00 on R, so every "period" figure ends with
the last complete day, R − 1. The daily figure compares working days with
working days (the Chinese calendar of :mod:`bridge.workdays`: statutory
holidays, 调休 make-up days, the company's own days): 昨日 is the last working
day before R — Friday (or a 调休 Saturday) in Monday's report, the last day
before the holiday in the first report after it — compared with the working
day before that. Month and year to date are compared with the same span of
the previous month and year; the trailing 30 days are calendar days.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from bridge.workdays import WorkCalendar


@dataclass(frozen=True)
class Span:
    """An inclusive range of business dates (Asia/Shanghai) with the label staff see."""

    start: date
    end: date
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Periods:
    report_day: date
    day: Span
    day_prev: Span
    mtd: Span
    mtd_prev: Span
    ytd: Span
    ytd_prev: Span
    trailing30: Span

    @property
    def as_of(self) -> date:
        """The last complete day the report covers (R − 1, a working day or not)."""
        return self.mtd.end

    def pairs(self) -> list[tuple[str, Span, Span]]:
        """(key, current, previous) for the three comparisons."""
        return [("day", self.day, self.day_prev), ("mtd", self.mtd, self.mtd_prev), ("ytd", self.ytd, self.ytd_prev)]


def is_business_day(day: date, calendar: WorkCalendar | None = None) -> bool:
    """A Chinese working day (holidays and 调休 included; the calendar's company overrides applied)."""
    return (calendar or WorkCalendar()).is_workday(day)


def previous_report_day(report_day: date, calendar: WorkCalendar | None = None) -> date:
    """The working day before ``report_day``: the day 昨日 stands for in that day's report."""
    return (calendar or WorkCalendar()).previous_workday(report_day)


def _md(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _range(start: date, end: date) -> str:
    if start == end:
        return _md(start)
    if start.month == end.month and start.year == end.year:
        return f"{_md(start)}—{end.day}日"
    return f"{_md(start)}—{_md(end)}"


def _same_day_in(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _day_label(day: date, following: date, near: str, far: str) -> str:
    return f"{near}（{_md(day)}）" if day + timedelta(days=1) == following else f"{far}（{_md(day)}）"


def report_periods(report_day: date, calendar: WorkCalendar | None = None) -> Periods:
    """The periods of the report of ``report_day`` (``calendar``: the deployment's working days)."""
    cal = calendar or WorkCalendar()
    end = report_day - timedelta(days=1)
    last_workday = cal.previous_workday(report_day)
    workday_before = cal.previous_workday(last_workday)
    day = Span(last_workday, last_workday, _day_label(last_workday, report_day, "昨日", "上一工作日"))
    day_prev = Span(workday_before, workday_before, _day_label(workday_before, last_workday, "前日", "前一工作日"))

    month_start = end.replace(day=1)
    prev_month_last = month_start - timedelta(days=1)
    pm_start = prev_month_last.replace(day=1)
    pm_end = _same_day_in(pm_start.year, pm_start.month, end.day)
    mtd = Span(month_start, end, f"本月累计（{_range(month_start, end)}）")
    mtd_prev = Span(pm_start, pm_end, f"上月同期（{_range(pm_start, pm_end)}）")

    year_start = date(end.year, 1, 1)
    py_start = date(end.year - 1, 1, 1)
    py_end = _same_day_in(end.year - 1, end.month, end.day)
    ytd = Span(year_start, end, f"本年累计（{end.year}年{_range(year_start, end)}）")
    ytd_prev = Span(py_start, py_end, f"上年同期（{end.year - 1}年{_range(py_start, py_end)}）")

    t30_start = end - timedelta(days=29)
    trailing30 = Span(t30_start, end, f"近30天（{_range(t30_start, end)}）")
    return Periods(report_day, day, day_prev, mtd, mtd_prev, ytd, ytd_prev, trailing30)


def calendar_notes(report_day: date, calendar: WorkCalendar | None = None) -> list[str]:
    """The report's line about the calendar: next year's holidays not known yet, or already falling back."""
    coverage = (calendar or WorkCalendar()).coverage(report_day)
    return [] if coverage.message is None else [coverage.message]

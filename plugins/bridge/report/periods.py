"""Which dates each figure of the report covers.

The report of day R is read at 08:00 on R, so every "period" figure ends with
the last complete day, R − 1. The daily figure covers the days since the
previous report: one day when the report runs every day; Friday to Sunday in
Monday's report when it runs on business days only. Each period is compared
with the one before it: the preceding span of equal length, the same span of
the previous month, the same span of the previous year.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta


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
        """The last complete day the report covers."""
        return self.day.end

    def pairs(self) -> list[tuple[str, Span, Span]]:
        """(key, current, previous) for the three comparisons."""
        return [("day", self.day, self.day_prev), ("mtd", self.mtd, self.mtd_prev), ("ytd", self.ytd, self.ytd_prev)]


def is_business_day(day: date) -> bool:
    """Monday to Friday. Public holidays and make-up working days (调休) are not modelled."""
    return day.weekday() < 5


def previous_report_day(report_day: date, business_days_only: bool) -> date:
    """The day of the report before ``report_day`` on the configured schedule."""
    day = report_day - timedelta(days=1)
    while business_days_only and not is_business_day(day):
        day -= timedelta(days=1)
    return day


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


def report_periods(report_day: date, business_days_only: bool = False) -> Periods:
    """The periods of the report of ``report_day``."""
    end = report_day - timedelta(days=1)
    start = min(previous_report_day(report_day, business_days_only), end)
    length = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    prev_start = prev_end - timedelta(days=length - 1)
    if length == 1:
        day = Span(start, end, f"昨日（{_md(end)}）")
        day_prev = Span(prev_start, prev_end, f"前日（{_md(prev_end)}）")
    else:
        day = Span(start, end, f"上次日报以来（{_range(start, end)}）")
        day_prev = Span(prev_start, prev_end, f"此前同长度（{_range(prev_start, prev_end)}）")

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

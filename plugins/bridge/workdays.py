"""Chinese working days: statutory holidays, 调休 make-up days and the company's own changes.

A day is a working day by, in this order:

1. the company's overrides in ``include/settings.yaml`` ``calendar:`` —
   ``extra_days_off`` (a company day off on a working day) and
   ``extra_working_days`` (e.g. a stock-taking Saturday); source ``override``;
2. the ``chinesecalendar`` package (pinned at 1.11.0: the State Council's
   schedules for 2004–2026, 调休 Saturdays and Sundays included); source
   ``chinesecalendar``;
3. for a year the package has no data for: Monday to Friday; source
   ``fallback`` — or ``settings`` when the year is listed in
   ``calendar.confirmed_years`` (its holidays were entered by hand as overrides
   because the package was not updated yet).

The fallback never skips or runs silently: every fallback verdict raises a
:class:`CalendarDataMissing` warning, and :func:`coverage` tells the
data-health check, the banner on the bridge pages and the report line what to
say — from ``calendar.warn_from`` (default 1 November) of the year before, as
the State Council publishes next year's holidays around November–December.

Everything here is pure (dates in, dates out) except :func:`load_calendar`,
which reads the settings (cached by file modification time) for long-lived
processes: the scheduler's timetable, the UI banner.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

CALENDAR_TZ = ZoneInfo("Asia/Shanghai")
PACKAGE = "chinesecalendar"
DEFAULT_WARN_FROM = (11, 1)
SETTINGS_KEY = "include/settings.yaml calendar"
# A search for the next or previous working day gives up after this many days
# (only a settings file that declares a whole year off can get there).
MAX_SEARCH_DAYS = 400

Source = Literal["override", "chinesecalendar", "settings", "fallback"]
Level = Literal["ok", "warn", "fallback"]


class CalendarDataMissing(UserWarning):
    """The holiday package has no data for a year: Monday–Friday plus the overrides is used."""


class CalendarSettingsError(ValueError):
    """The ``calendar`` section of the settings cannot be used; the message names the key."""


@dataclass(frozen=True)
class Verdict:
    workday: bool
    source: Source
    holiday: str | None = None  # the package's holiday name ("Spring Festival"), if any


@dataclass(frozen=True)
class WorkCalendar:
    """The package's calendar plus the company's overrides (hashable, JSON-serialisable)."""

    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    confirmed_years: frozenset[int] = frozenset()
    warn_from: tuple[int, int] = DEFAULT_WARN_FROM  # (month, day)

    def __post_init__(self) -> None:
        both = self.extra_days_off & self.extra_working_days
        if both:
            days = "、".join(d.isoformat() for d in sorted(both))
            raise CalendarSettingsError(
                f"{SETTINGS_KEY}: {days} 同时出现在 extra_days_off 与 extra_working_days 中，请只保留一处"
            )

    # ------------------------------------------------------------ verdicts
    def verdict(self, day: date) -> Verdict:
        """Whether ``day`` is a working day, and who says so."""
        if day in self.extra_days_off:
            return Verdict(False, "override")
        if day in self.extra_working_days:
            return Verdict(True, "override")
        if package_covers(day.year):
            import chinese_calendar

            _, name = chinese_calendar.get_holiday_detail(day)  # name also for a 调休 working day
            return Verdict(chinese_calendar.is_workday(day), "chinesecalendar", name)
        if day.year in self.confirmed_years:
            return Verdict(day.weekday() < 5, "settings")
        warnings.warn(CalendarDataMissing(fallback_text(day.year)), stacklevel=2)
        return Verdict(day.weekday() < 5, "fallback")

    def is_workday(self, day: date) -> bool:
        return self.verdict(day).workday

    def previous_workday(self, day: date) -> date:
        """The last working day strictly before ``day``."""
        return self._step(day, -1)

    def next_workday(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        return self._step(day, 1)

    def _step(self, day: date, step: int) -> date:
        candidate = day
        for _ in range(MAX_SEARCH_DAYS):
            candidate += timedelta(days=step)
            if self.is_workday(candidate):
                return candidate
        raise CalendarSettingsError(
            f"{SETTINGS_KEY}: {day.isoformat()} 前后 {MAX_SEARCH_DAYS} 天内没有任何工作日，请检查 extra_days_off"
        )

    # ------------------------------------------------------------ coverage
    def year_known(self, year: int) -> bool:
        """The year's holidays are known (the package has them, or the settings confirm them)."""
        return package_covers(year) or year in self.confirmed_years

    def coverage(self, today: date) -> Coverage:
        """How complete the calendar is for ``today`` and the coming year."""
        if not self.year_known(today.year):
            return Coverage(today, "fallback", today.year, fallback_text(today.year))
        warn_day = date(today.year, *self.warn_from)
        if today >= warn_day and not self.year_known(today.year + 1):
            return Coverage(today, "warn", today.year + 1, warning_text(today.year + 1))
        return Coverage(today, "ok", None, None)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "extra_days_off": sorted(d.isoformat() for d in self.extra_days_off),
            "extra_working_days": sorted(d.isoformat() for d in self.extra_working_days),
            "confirmed_years": sorted(self.confirmed_years),
            "warn_from": f"{self.warn_from[0]:02d}-{self.warn_from[1]:02d}",
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> WorkCalendar:
        """The calendar from the settings section (or :meth:`to_dict`), validated."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise CalendarSettingsError(f"{SETTINGS_KEY}: 应为映射（extra_days_off、extra_working_days 等），现在是 {raw!r}")
        unknown = set(raw) - {"extra_days_off", "extra_working_days", "confirmed_years", "warn_from"}
        if unknown:
            raise CalendarSettingsError(f"{SETTINGS_KEY}: 不认识的键 {', '.join(sorted(map(str, unknown)))}")
        return cls(
            extra_days_off=frozenset(_dates(raw.get("extra_days_off"), "extra_days_off")),
            extra_working_days=frozenset(_dates(raw.get("extra_working_days"), "extra_working_days")),
            confirmed_years=frozenset(_years(raw.get("confirmed_years"))),
            warn_from=_month_day(raw.get("warn_from")),
        )


@dataclass(frozen=True)
class Coverage:
    """What the calendar knows on ``today``: ``ok``, ``warn`` (next year unknown), ``fallback`` (this year unknown)."""

    today: date
    level: Level
    missing_year: int | None
    message: str | None  # Chinese, for the page banner, the report and the data-health check

    @property
    def ok(self) -> bool:
        return self.level == "ok"


@dataclass
class _Cache:
    key: tuple[Any, ...] | None = None
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHE = _Cache()


# ---------------------------------------------------------------- the package
def package_years() -> tuple[int, int]:
    """First and last year the installed ``chinesecalendar`` has holiday data for."""
    from chinese_calendar.constants import holidays

    return min(holidays).year, max(holidays).year


def package_version() -> str:
    import chinese_calendar

    return str(getattr(chinese_calendar, "__version__", "?"))


def package_covers(year: int) -> bool:
    first, last = package_years()
    return first <= year <= last


# ---------------------------------------------------------------- Chinese texts
def _package_label() -> str:
    first, last = package_years()
    return f"{PACKAGE} {package_version()} 仅含 {first}—{last} 年"


def fallback_text(year: int) -> str:
    return (f"工作日历缺少 {year} 年的法定节假日与调休安排（{_package_label()}）："
            "日报与数据健康检查现按周一至周五加 include/settings.yaml 中公司自定的休息日、工作日运行，"
            "节假日可能照常运行、调休上班日可能不运行。请系统管理员升级 chinesecalendar，"
            "或在 calendar 段补录放假安排并把该年列入 confirmed_years。")


def warning_text(year: int) -> str:
    return (f"工作日历尚无 {year} 年的法定节假日与调休安排（{_package_label()}；国务院办公厅通常在 11—12 月公布）。"
            f"若 {year} 年 1 月 1 日前仍未更新，日报与数据健康检查将按周一至周五加公司自定安排运行。"
            "请系统管理员在公布后升级 chinesecalendar，或在 include/settings.yaml 的 calendar 段补录并列入 confirmed_years。")


# ---------------------------------------------------------------- settings
def _dates(raw: Any, key: str) -> Iterable[date]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CalendarSettingsError(f"{SETTINGS_KEY}.{key}: 应为日期列表，如 [2026-12-31]，现在是 {raw!r}")
    out: list[date] = []
    for item in raw:
        if isinstance(item, datetime):
            raise CalendarSettingsError(f"{SETTINGS_KEY}.{key}: {item!r} 应为日期（YYYY-MM-DD），不带时间")
        if isinstance(item, date):
            out.append(item)
            continue
        try:
            out.append(date.fromisoformat(str(item).strip()))
        except ValueError:
            raise CalendarSettingsError(f"{SETTINGS_KEY}.{key}: {item!r} 不是日期，应写作 YYYY-MM-DD") from None
    return out


def _years(raw: Any) -> Iterable[int]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(y, int) and not isinstance(y, bool) for y in raw):
        raise CalendarSettingsError(f"{SETTINGS_KEY}.confirmed_years: 应为年份列表，如 [2027]，现在是 {raw!r}")
    return list(raw)


def _month_day(raw: Any) -> tuple[int, int]:
    if raw is None:
        return DEFAULT_WARN_FROM
    try:
        month, day = (int(p) for p in str(raw).strip().split("-"))
        date(2024, month, day)  # a leap year: 02-29 is allowed
    except ValueError:
        raise CalendarSettingsError(f"{SETTINGS_KEY}.warn_from: 应为 MM-DD，如 \"11-01\"，现在是 {raw!r}") from None
    return month, day


def load_calendar(environ: Mapping[str, str] | None = None) -> WorkCalendar:
    """The deployment's calendar from ``include/settings.yaml`` + ``BRIDGE__CALENDAR__*``, cached by mtime.

    For the scheduler's timetable and the UI: re-reading happens only when the
    file or the environment changes, so an edit takes effect at the next
    scheduling decision without a restart.
    """
    from bridge import settings

    env = dict(os.environ if environ is None else environ)
    path = settings.include_dir() / "settings.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = None
    key = (str(path), mtime, tuple(sorted((k, v) for k, v in env.items() if k.startswith("BRIDGE__CALENDAR__"))))
    with _CACHE.lock:
        if _CACHE.key == key:
            return _CACHE.calendar
        calendar = WorkCalendar.from_dict(settings.load(path, env).get("calendar"))
        _CACHE.key, _CACHE.calendar = key, calendar
        return calendar


def today_in_china(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(CALENDAR_TZ).date()


def banner_text(now: datetime | None = None, calendar: WorkCalendar | None = None) -> str | None:
    """The warning the bridge pages show on top, or None; never raises (a page must still render)."""
    try:
        cal = calendar or load_calendar()
        return cal.coverage(today_in_china(now)).message
    except Exception as exc:  # a broken settings file: say so instead of hiding the calendar's state
        log.warning("calendar banner: %s: %s", type(exc).__name__, exc)
        return f"工作日历配置无法读取（{exc}）。日报与数据健康检查按法定节假日运行，但不含公司自定安排。"

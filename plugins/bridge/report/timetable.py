"""When the daily report runs: 07:30 Asia/Shanghai on Chinese working days.

The managers read the report at 08:00 on working days; building and mailing
take a few minutes, and the data-health DAG (07:00, same working days) has
finished by 07:30. China moves working days around its statutory holidays
(调休), which a cron expression cannot know, so the schedule is
:class:`bridge.timetables.WorkdayTimetable` (see there for how the company's
own days off and working days in ``include/settings.yaml`` ``calendar:`` reach
the scheduler without a file read at DAG parse time). China has no daylight
saving time, so 07:30 there is always 23:30 UTC of the day before.

The time zone can be changed per deployment through the environment variable
the settings loader also honours, ``BRIDGE__REPORT__TIMEZONE`` (read here from
the environment only: no file read at parse time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bridge.timetables import WorkdayTimetable

REPORT_TZ = "Asia/Shanghai"
RUN_HOUR, RUN_MINUTE = 7, 30
ENV_TIMEZONE = "BRIDGE__REPORT__TIMEZONE"


def timezone_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = (env.get(ENV_TIMEZONE) or REPORT_TZ).strip()
    ZoneInfo(name)  # an unknown zone fails at parse time, loudly
    return name


def daily_report_timetable(environ: Mapping[str, str] | None = None) -> WorkdayTimetable:
    """The DAG's timetable; logical date = the run's 07:30 on a working day."""
    from bridge.timetables import WorkdayTimetable

    return WorkdayTimetable(RUN_HOUR, RUN_MINUTE, timezone=timezone_from_env(environ))


def report_day(logical_date: datetime, tz: str = REPORT_TZ) -> date:
    """The business date (Asia/Shanghai) of a run: the report of that day covers up to the day before."""
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    return logical_date.astimezone(ZoneInfo(tz)).date()

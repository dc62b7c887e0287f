"""When the daily report runs: 07:30 Asia/Shanghai, every day or Monday to Friday.

The managers read the report at 08:00; building and mailing take a few
minutes, and the data-health DAG (07:00) has finished by 07:30. The schedule is
a ``CronTriggerTimetable`` with an explicit time zone (China has no daylight
saving time, so 07:30 there is always 23:30 UTC of the day before).

A DAG file must not read files at parse time, so ``include/settings.yaml`` is
not read here. The business-days switch reaches the schedule through the
environment variable the settings loader also honours,
``BRIDGE__REPORT__BUSINESS_DAYS_ONLY`` (set it on the scheduler and the DAG
processor). When only ``settings.yaml`` says ``business_days_only: true``, the
schedule stays daily and the build task skips weekend runs itself (see
:func:`bridge.report.tasks.skip_reason`), so either way no report goes out on
a Saturday or Sunday.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import yaml

if TYPE_CHECKING:
    from airflow.sdk import CronTriggerTimetable

REPORT_TZ = "Asia/Shanghai"
RUN_HOUR, RUN_MINUTE = 7, 30
ENV_BUSINESS_DAYS = "BRIDGE__REPORT__BUSINESS_DAYS_ONLY"
ENV_TIMEZONE = "BRIDGE__REPORT__TIMEZONE"


def _flag(raw: str | None) -> bool:
    if raw is None or raw.strip() == "":
        return False
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    raise ValueError(f"{ENV_BUSINESS_DAYS}={raw!r}: expected true or false")


def business_days_only_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """The business-days switch as the scheduler sees it (environment only, no file read)."""
    env = os.environ if environ is None else environ
    return _flag(env.get(ENV_BUSINESS_DAYS))


def timezone_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = (env.get(ENV_TIMEZONE) or REPORT_TZ).strip()
    ZoneInfo(name)  # an unknown zone fails at parse time, loudly
    return name


def cron_expression(business_days_only: bool) -> str:
    days = "1-5" if business_days_only else "*"
    return f"{RUN_MINUTE} {RUN_HOUR} * * {days}"


def daily_report_timetable(environ: Mapping[str, str] | None = None) -> CronTriggerTimetable:
    """The DAG's timetable (``airflow.sdk.CronTriggerTimetable``); logical date = the run's 07:30."""
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(
        cron_expression(business_days_only_from_env(environ)), timezone=timezone_from_env(environ)
    )


def report_day(logical_date: datetime, tz: str = REPORT_TZ) -> date:
    """The business date (Asia/Shanghai) of a run: the report of that day covers up to the day before."""
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    return logical_date.astimezone(ZoneInfo(tz)).date()

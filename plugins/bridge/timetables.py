"""``WorkdayTimetable``: a fixed time of day on Chinese working days (法定节假日 skipped, 调休 days run).

A cron expression cannot know that 2025-10-11 (a Saturday) was a working day
and 2025-10-08 (a Wednesday) was not; this timetable asks
:class:`bridge.workdays.WorkCalendar` instead. It is registered by the
bridge's Airflow plugin (``plugins/bridge_plugin.py`` ``timetables``), which
the scheduler, the DAG processor and the API server all import, so a DAG
serialised with it can be decoded everywhere.

How the company overrides reach it. A DAG file must not read files at parse
time, so the DAG builds ``WorkdayTimetable(7, 30)`` without a calendar and
only the time of day and the time zone are serialised. The overrides
(``include/settings.yaml`` ``calendar:``, or ``BRIDGE__CALENDAR__*``) are read
when the scheduler or the DAG processor asks for the next run
(:meth:`next_dagrun_info`), through :func:`bridge.workdays.load_calendar`,
which re-reads the file only when it changed. So an added company day off
takes effect at the next scheduling decision, without re-parsing the DAGs and
without a restart: the run already planned (``next_dagrun`` in the metadata
DB) stays, and the report's build task skips a scheduled run that falls on a
day off after all. A settings file that cannot be read never stops the
schedule: the error is logged and the package's calendar without overrides is
used (the bridge pages show the error as a banner). A calendar passed to the
constructor (tests, or a deployment that wants the lists frozen into the DAG)
is serialised with the timetable and used instead of the settings.

Runs behave like ``CronTriggerTimetable`` with no data interval: the logical
date is the run's own trigger time; with ``catchup=False`` the latest missed
working-day run is created, never the older ones.
"""

from __future__ import annotations

import logging
import time as time_module
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from bridge.workdays import WorkCalendar, load_calendar

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

log = logging.getLogger(__name__)

DEFAULT_TZ = "Asia/Shanghai"
WARN_EVERY_SECONDS = 3600.0
_LOGGED: dict[str, float] = {}  # message -> when this process last logged it (monotonic clock)


def _log_hourly(level: int, message: str) -> None:
    """Log ``message`` at most once an hour per process: the DAG processor asks for the next run at every parse."""
    now = time_module.monotonic()
    last = _LOGGED.get(message)
    if last is None or now - last >= WARN_EVERY_SECONDS:
        _LOGGED[message] = now
        log.log(level, "%s", message)


def utcnow() -> datetime:
    """The scheduler's clock (one place, so tests can set it)."""
    return datetime.now(ZoneInfo("UTC"))


def _pendulum(at: datetime) -> DateTime:
    import pendulum

    return pendulum.instance(at).in_timezone("UTC")


class WorkdayTimetable(Timetable):
    """Run at ``hour:minute`` (``timezone``) on every working day of the Chinese calendar plus overrides."""

    def __init__(self, hour: int, minute: int = 0, *, timezone: str = DEFAULT_TZ,
                 calendar: WorkCalendar | None = None) -> None:
        self.hour, self.minute, self.timezone = hour, minute, timezone
        self.calendar = calendar
        self.description = (f"{hour:02d}:{minute:02d} {timezone} on Chinese working days "
                            "(holidays and 调休 from chinesecalendar, company days from settings calendar:)")

    # ------------------------------------------------------------ Airflow protocol
    @property
    def summary(self) -> str:
        return f"工作日 {self.hour:02d}:{self.minute:02d}"

    def validate(self) -> None:
        from airflow.exceptions import AirflowTimetableInvalid

        if not (0 <= self.hour <= 23 and 0 <= self.minute <= 59):
            raise AirflowTimetableInvalid(f"WorkdayTimetable: {self.hour}:{self.minute} is not a time of day")
        try:
            ZoneInfo(self.timezone)
        except Exception as exc:
            raise AirflowTimetableInvalid(f"WorkdayTimetable: unknown time zone {self.timezone!r}") from exc

    def serialize(self) -> dict[str, Any]:
        return {"hour": self.hour, "minute": self.minute, "timezone": self.timezone,
                "calendar": None if self.calendar is None else self.calendar.to_dict()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> WorkdayTimetable:
        raw = data.get("calendar")
        return cls(int(data["hour"]), int(data.get("minute", 0)), timezone=str(data.get("timezone") or DEFAULT_TZ),
                   calendar=None if raw is None else WorkCalendar.from_dict(raw))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkdayTimetable) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.hour, self.minute, self.timezone, self.calendar))

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(_pendulum(run_after))

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        return self.next_run(last_automated_data_interval, restriction, now=None)

    # ------------------------------------------------------------ the schedule
    def next_run(self, last: DataInterval | None, restriction: TimeRestriction,
                 now: datetime | None) -> DagRunInfo | None:
        """:meth:`next_dagrun_info` with an explicit clock (tests)."""
        cal = self.working_calendar()
        now = now or utcnow()
        if restriction.catchup:
            if last is not None:
                run = self.run_after(last.end, cal)
            else:
                run = self.run_at_or_after(restriction.earliest or now, cal)
        else:  # the latest missed run (or the next one), never older ones
            candidates = [self.run_at_or_before(now, cal)]
            if last is not None:
                candidates.append(self.run_after(last.end, cal))
            elif restriction.earliest is None:
                candidates.append(self.run_at_or_after(now, cal))
            if restriction.earliest is not None:
                candidates.append(self.run_at_or_after(restriction.earliest, cal))
            run = max(c for c in candidates if c is not None)
        if restriction.latest is not None and restriction.latest < run:
            return None
        self._warn_if_fallback(run, cal)
        at = _pendulum(run)
        return DagRunInfo.interval(at, at)

    def working_calendar(self) -> WorkCalendar:
        """The frozen calendar, else the deployment's settings (read lazily; an unreadable file is logged)."""
        if self.calendar is not None:
            return self.calendar
        try:
            return load_calendar()
        except Exception as exc:
            _log_hourly(logging.ERROR, f"WorkdayTimetable: include/settings.yaml calendar cannot be used "
                                       f"({type(exc).__name__}: {exc}); scheduling by the chinesecalendar "
                                       "package without company overrides")
            return WorkCalendar()

    def local_day(self, at: datetime) -> date:
        return at.astimezone(ZoneInfo(self.timezone)).date()

    def trigger_time(self, day: date) -> datetime:
        """The run time of ``day`` (aware, in UTC)."""
        local = datetime.combine(day, time(self.hour, self.minute), tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(ZoneInfo("UTC"))

    def run_at_or_after(self, at: datetime, cal: WorkCalendar) -> datetime:
        day = self.local_day(at)
        if self.trigger_time(day) < at or not cal.is_workday(day):
            day = cal.next_workday(day)
        return self.trigger_time(day)

    def run_after(self, at: datetime, cal: WorkCalendar) -> datetime:
        return self.run_at_or_after(at + timedelta(microseconds=1), cal)

    def run_at_or_before(self, at: datetime, cal: WorkCalendar) -> datetime:
        day = self.local_day(at)
        if self.trigger_time(day) > at or not cal.is_workday(day):
            day = cal.previous_workday(day)
        return self.trigger_time(day)

    def _warn_if_fallback(self, run: datetime, cal: WorkCalendar) -> None:
        coverage = cal.coverage(self.local_day(run))
        if coverage.message is not None:
            _log_hourly(logging.WARNING, f"WorkdayTimetable: {coverage.message}")

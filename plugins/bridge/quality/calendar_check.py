"""The data-health check on the working-day calendar (``calendar.holidays.coverage``).

The report and data health run on Chinese working days (:mod:`bridge.workdays`).
The pinned ``chinesecalendar`` knows the State Council's holidays only up to
its last year; the next year's are published around November–December. The
check fails, with the text the pages and the report show too, when

* from ``calendar.warn_from`` (default 1 November) the coming year's holidays
  are not known yet (neither in the package nor confirmed in the settings);
* the current year's are not known (the schedules already fall back to
  Monday–Friday plus the company's days);
* the ``calendar:`` section of ``include/settings.yaml`` cannot be read.

One whole-table verdict, like sync freshness: one row, one boolean column.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from bridge.quality.checks import CALENDAR_FRAME, ID_COLUMN, OWNER_COLUMN, Check
from bridge.quality.frames import NO_OWNER, Frame
from bridge.quality.gx import GxSession
from bridge.quality.results import CheckOutcome, table_outcome
from bridge.workdays import WorkCalendar, load_calendar


def frame(day: date, checks: Sequence[Check],
          calendar: WorkCalendar | None = None) -> tuple[Frame, str | None, str]:
    """The one-row frame, the message staff read (None when fine) and the failing id (year or ``settings``)."""
    import pandas as pd

    started = time.perf_counter()
    try:
        cal = calendar or load_calendar()
        coverage = cal.coverage(day)
        known, message, failing = coverage.ok, coverage.message, str(coverage.missing_year or "")
    except Exception as exc:  # a broken settings section is this check's failure, not the run's
        known, message, failing = False, f"工作日历配置无法读取：{exc}", "settings"
    data: dict[str, Any] = {ID_COLUMN: pd.array([CALENDAR_FRAME], dtype="string"), OWNER_COLUMN: [NO_OWNER]}
    data.update({c.column: [known] for c in checks})
    return Frame(CALENDAR_FRAME, pd.DataFrame(data), 1, 1, time.perf_counter() - started), message, failing


def evaluate(session: GxSession, checks: Sequence[Check], day: date,
             calendar: WorkCalendar | None = None) -> tuple[list[CheckOutcome], Frame, float]:
    """Validate the calendar frame of ``day``; outcomes, the frame and the validation time."""
    built, _message, failing = frame(day, checks, calendar)
    started = time.perf_counter()
    verdicts = session.validate(built.name, built.data, checks)
    outcomes = [table_outcome(c, verdicts[c.check_id], evaluated=1, failing_ids=[failing] if failing else [])
                for c in checks]
    return outcomes, built, time.perf_counter() - started

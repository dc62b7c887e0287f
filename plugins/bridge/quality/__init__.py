"""Data health (数据健康报告): Great Expectations suites over the hub's snapshots, scores, Data Docs, notices.

Public interface (the 08:00 report and the UI call these; each takes a
SQLAlchemy ``Connection`` and leaves the transaction to the caller)::

    latest_scores(conn, scope_type=None, day=None) -> list[HealthScore]
    score_trend(conn, days=30, scope_type="overall", scope=None, until=None) -> list[HealthScore]
    failing_checks(conn, day=None) -> list[HealthResult]
    check_results(conn, day=None, failing_only=False) -> list[HealthResult]
    latest_day(conn) -> date | None

The DAG ``data_health`` calls ``bridge.quality.tasks`` (validate → summary →
notify). Importing this package does not import pandas or Great Expectations.
"""

from __future__ import annotations

from bridge.quality.scores import (
    SCOPE_TYPES,
    HealthResult,
    HealthScore,
    check_results,
    failing_checks,
    latest_day,
    latest_scores,
    score_trend,
)

__all__ = [
    "SCOPE_TYPES",
    "HealthResult",
    "HealthScore",
    "check_results",
    "failing_checks",
    "latest_day",
    "latest_scores",
    "score_trend",
]

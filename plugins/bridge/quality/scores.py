"""Health scores (0–100) and the hub tables ``health_result`` / ``health_score``.

Score of a scope = 100 × the mean, over the checks in that scope that
evaluated at least one record, of the check's pass ratio
``1 − failed / evaluated``. Scopes: ``overall`` (every check), ``entity``
(checks of a dictionary entity, cross-system ones included), ``department``
(checks of fields the department owns), ``data_owner`` (row checks, counting
only that owner's records). A whole-table check (sync freshness, quarantine
backlog) passes with ratio 1 or fails with ratio 0.

A day holds the latest run of that day: a re-run (manual trigger, retry)
replaces the day's rows. These functions take a SQLAlchemy ``Connection``;
the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from bridge.hub.schema import health_result, health_score
from bridge.quality.results import CheckOutcome

NO_OWNER = "-"
SCOPE_TYPES = ("overall", "entity", "department", "data_owner")


@dataclass(frozen=True)
class Score:
    scope_type: str
    scope: str
    score: float
    checks: int  # checks scored in this scope
    failed_checks: int
    evaluated: int  # records evaluated, summed over the checks
    failed_rows: int


@dataclass(frozen=True)
class HealthScore:
    """A stored score (``health_score`` row)."""

    day: date
    scope_type: str
    scope: str
    score: float
    checks: int
    failed_checks: int
    evaluated: int
    failed_rows: int
    run_id: str | None


@dataclass(frozen=True)
class HealthResult:
    """A stored check result (``health_result`` row)."""

    day: date
    run_id: str
    suite: str
    check_id: str  # health_result.expectation: "<entity>.<field>.<kind>"
    entity: str
    field: str | None
    department: str | None
    success: bool
    evaluated: int
    failed: int
    failing_ids: list[str]
    failing_owners: dict[str, int]
    at: datetime

    @property
    def kind(self) -> str:
        return self.check_id.rsplit(".", 1)[-1]


# ---------------------------------------------------------------- computing
def _score(ratios: Sequence[float]) -> float:
    return round(100.0 * sum(ratios) / len(ratios), 2) if ratios else 100.0


def _scope(scope_type: str, scope: str, outcomes: Sequence[CheckOutcome]) -> Score:
    scored = [o for o in outcomes if o.ratio is not None]
    return Score(
        scope_type=scope_type,
        scope=scope,
        score=_score([o.ratio for o in scored if o.ratio is not None]),
        checks=len(scored),
        failed_checks=sum(1 for o in outcomes if not o.success),
        evaluated=sum(o.evaluated for o in outcomes),
        failed_rows=sum(o.failed for o in outcomes),
    )


def compute_scores(outcomes: Sequence[CheckOutcome], entities: Iterable[str]) -> list[Score]:
    """Scores per scope from the day's outcomes (pure)."""
    known = set(entities)
    scores = [_scope("overall", "all", outcomes)]
    by_entity: dict[str, list[CheckOutcome]] = {}
    by_dept: dict[str, list[CheckOutcome]] = {}
    for o in outcomes:
        if o.check.entity in known:
            by_entity.setdefault(o.check.entity, []).append(o)
        if o.check.department:
            by_dept.setdefault(o.check.department, []).append(o)
    # A scope none of whose checks evaluated anything has no score (not a made-up 100).
    scores += [s for k, v in sorted(by_entity.items()) if (s := _scope("entity", k, v)).checks]
    scores += [s for k, v in sorted(by_dept.items()) if (s := _scope("department", k, v)).checks]
    owner_ratios: dict[str, list[float]] = {}
    owner_stats: dict[str, list[int]] = {}  # evaluated, failed rows, failed checks
    for o in outcomes:
        for owner, evaluated in o.evaluated_owners.items():
            if owner == NO_OWNER or evaluated <= 0:
                continue
            failed = min(evaluated, o.failing_owners.get(owner, 0))
            owner_ratios.setdefault(owner, []).append(1.0 - failed / evaluated)
            stats = owner_stats.setdefault(owner, [0, 0, 0])
            stats[0] += evaluated
            stats[1] += failed
            stats[2] += 1 if failed else 0
    for owner in sorted(owner_ratios):
        ev, fr, fc = owner_stats[owner]
        scores.append(Score("data_owner", owner, _score(owner_ratios[owner]), len(owner_ratios[owner]), fc, ev, fr))
    return scores


# ---------------------------------------------------------------- storing
def save_day(conn: Connection, day: date, run_id: str, outcomes: Sequence[CheckOutcome],
             scores: Sequence[Score], at: datetime) -> None:
    """Replace the day's results and scores with this run's."""
    conn.execute(delete(health_result).where(health_result.c.day == day))
    conn.execute(delete(health_score).where(health_score.c.day == day))
    if outcomes:
        conn.execute(insert(health_result), [
            {
                "run_id": run_id[:250],
                "day": day,
                "suite": o.check.suite[:80],
                "expectation": o.check.check_id[:120],
                "entity": o.check.entity[:40],
                "field": (o.check.field or None) and str(o.check.field)[:60],
                "department": o.check.department,
                "success": o.success,
                "evaluated": o.evaluated,
                "failed": o.failed,
                "failing_ids": list(o.failing_ids),
                "failing_owners": dict(o.failing_owners),
                "at": at,
            }
            for o in outcomes
        ])
    if scores:
        conn.execute(insert(health_score), [
            {
                "day": day, "scope_type": s.scope_type, "scope": s.scope[:80], "score": s.score,
                "checks": s.checks, "failed_checks": s.failed_checks, "evaluated": s.evaluated,
                "failed_rows": s.failed_rows, "run_id": run_id[:250],
            }
            for s in scores
        ])


# ---------------------------------------------------------------- reading (report, UI, notices)
def _health_score(row: Any) -> HealthScore:
    m = row._mapping
    return HealthScore(m["day"], m["scope_type"], m["scope"], float(m["score"]), int(m["checks"]),
                       int(m["failed_checks"]), int(m["evaluated"]), int(m["failed_rows"]), m["run_id"])


def _health_result(row: Any) -> HealthResult:
    m = row._mapping
    return HealthResult(
        day=m["day"], run_id=m["run_id"], suite=m["suite"], check_id=m["expectation"], entity=m["entity"],
        field=m["field"], department=m["department"], success=bool(m["success"]), evaluated=int(m["evaluated"]),
        failed=int(m["failed"]), failing_ids=[str(x) for x in m["failing_ids"] or []],
        failing_owners={str(k): int(v) for k, v in (m["failing_owners"] or {}).items()}, at=m["at"],
    )


def latest_day(conn: Connection) -> date | None:
    """The most recent day with scores, or None before the first run."""
    return conn.execute(select(func.max(health_score.c.day))).scalar()


def latest_scores(conn: Connection, scope_type: str | None = None, day: date | None = None) -> list[HealthScore]:
    """The scores of ``day`` (default: the latest day scored), optionally of one scope type."""
    day = day or latest_day(conn)
    if day is None:
        return []
    query = select(health_score).where(health_score.c.day == day)
    if scope_type is not None:
        query = query.where(health_score.c.scope_type == scope_type)
    query = query.order_by(health_score.c.scope_type, health_score.c.score, health_score.c.scope)
    return [_health_score(r) for r in conn.execute(query)]


def score_trend(conn: Connection, days: int = 30, scope_type: str = "overall", scope: str | None = None,
                until: date | None = None) -> list[HealthScore]:
    """Daily scores of the last ``days`` days up to ``until`` (default: the latest day), oldest first.

    ``scope`` None returns every scope of the type (one series per department, say).
    Days without a run are absent (the chart shows a gap rather than a made-up value).
    """
    until = until or latest_day(conn)
    if until is None:
        return []
    query = select(health_score).where(
        health_score.c.scope_type == scope_type,
        health_score.c.day > until - timedelta(days=days),
        health_score.c.day <= until,
    )
    if scope is not None:
        query = query.where(health_score.c.scope == scope)
    query = query.order_by(health_score.c.day, health_score.c.scope)
    return [_health_score(r) for r in conn.execute(query)]


def check_results(conn: Connection, day: date | None = None, *, failing_only: bool = False) -> list[HealthResult]:
    """The check results of ``day`` (default: latest), failing ones first, then by suite and check."""
    day = day or latest_day(conn)
    if day is None:
        return []
    query = select(health_result).where(health_result.c.day == day)
    if failing_only:
        query = query.where(health_result.c.success.is_(False))
    query = query.order_by(health_result.c.success, health_result.c.suite, health_result.c.expectation)
    return [_health_result(r) for r in conn.execute(query)]


def failing_checks(conn: Connection, day: date | None = None) -> list[HealthResult]:
    """The checks that failed on ``day`` (default: the latest day), with failing ids and owners."""
    return check_results(conn, day, failing_only=True)

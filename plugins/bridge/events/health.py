"""The receiver's health row in the hub, and the polling safety net that reads it.

The receiver adds its counts to ``event_health`` (one row per vendor) at most
once a second; the sync DAGs' ``poll_gate`` task decides whether a scheduled
(every-minute) run polls the vendor or is skipped:

* a run woken by an event, or started by hand, always goes ahead;
* while the receiver is *silent* — no verified delivery for
  ``events.silent_after_minutes`` (or never) — every scheduled run polls, as before events;
* while it is healthy, a scheduled run polls only when the last run that went
  ahead is ``events.healthy_poll_minutes`` old: the safety net for lost events.

Lost, late or duplicated events therefore change nothing: every run reads
from the hub's watermark, whatever woke it. The timetable itself stays the
fixed every-minute cron (a timetable cannot read the hub), so the gate is a
short-circuit task that skips the rest of the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy import Connection, insert, select, update

from bridge.hub.schema import event_health

COUNTED = ("received", "verified", "rejected", "duplicates", "enqueued")


@dataclass(frozen=True)
class EventHealth:
    source: str
    received: int
    verified: int
    rejected: int
    duplicates: int
    enqueued: int
    last_event_at: datetime | None
    last_received_at: datetime | None
    last_verified_at: datetime | None
    lag_ms: int | None
    last_poll_at: datetime | None


@dataclass(frozen=True)
class PollSettings:
    healthy_poll_minutes: float = 10.0
    silent_after_minutes: float = 15.0

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> PollSettings:
        section = raw.get("events") or {}
        return cls(
            float(section.get("healthy_poll_minutes", cls.healthy_poll_minutes)),
            float(section.get("silent_after_minutes", cls.silent_after_minutes)),
        )


def _row(conn: Connection, source: str, now: datetime) -> None:
    if conn.execute(select(event_health.c.source).where(event_health.c.source == source)).first() is None:
        conn.execute(insert(event_health).values(source=source, updated_at=now, **dict.fromkeys(COUNTED, 0)))


class HealthStamps(TypedDict, total=False):
    """The moments (and lag) a flush reports besides its counts."""

    last_event_at: datetime | None
    last_received_at: datetime | None
    last_verified_at: datetime | None
    lag_ms: int | None


def add(
    conn: Connection, source: str, deltas: Mapping[str, int], now: datetime, **stamps: Unpack[HealthStamps]
) -> None:
    """Add the receiver's counts since its last flush; stamps only move forward."""
    _row(conn, source, now)
    values: dict[str, Any] = {k: event_health.c[k] + int(deltas.get(k, 0)) for k in COUNTED}
    current = conn.execute(select(event_health).where(event_health.c.source == source)).mappings().one()
    for name in ("last_event_at", "last_received_at", "last_verified_at"):
        stamp = stamps.get(name)
        if stamp is not None and (current[name] is None or stamp > current[name]):
            values[name] = stamp
    lag_ms = stamps.get("lag_ms")
    if lag_ms is not None:
        values["lag_ms"] = lag_ms
    conn.execute(update(event_health).where(event_health.c.source == source).values(updated_at=now, **values))


def read(conn: Connection, source: str) -> EventHealth | None:
    row = conn.execute(select(event_health).where(event_health.c.source == source)).mappings().first()
    if row is None:
        return None
    return EventHealth(**{k: row[k] for k in EventHealth.__dataclass_fields__})


def stamp_poll(conn: Connection, source: str, now: datetime) -> None:
    _row(conn, source, now)
    conn.execute(update(event_health).where(event_health.c.source == source).values(last_poll_at=now))


def poll_due(run_type: str, health: EventHealth | None, now: datetime, cfg: PollSettings) -> tuple[bool, str]:
    """Whether this run polls the vendor, and why (logged by the gate)."""
    if run_type != "scheduled":
        return True, f"{run_type} run: polls"
    silent_after = timedelta(minutes=cfg.silent_after_minutes)
    if health is None or health.last_verified_at is None or now - health.last_verified_at > silent_after:
        return True, f"no verified event for over {cfg.silent_after_minutes:g} min: polling every run"
    every = timedelta(minutes=cfg.healthy_poll_minutes)
    if health.last_poll_at is None or now - health.last_poll_at >= every:
        return True, f"events healthy: safety-net poll (every {cfg.healthy_poll_minutes:g} min)"
    return False, f"events healthy: next safety-net poll after {(health.last_poll_at + every).isoformat()}"


class HubHealthWriter:
    """Flushes the receiver's counts to the hub at most every ``interval_s`` (and when asked to)."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.pending: dict[str, Counter[str]] = {"crm": Counter(), "oa": Counter()}
        self.stamps: dict[str, dict[str, Any]] = {"crm": {}, "oa": {}}
        self.flushed_at = 0.0

    def note(self, source: str, counts: Mapping[str, int], **stamps: Any) -> None:
        self.pending[source].update({k: v for k, v in counts.items() if k in COUNTED})
        self.stamps[source].update({k: v for k, v in stamps.items() if v is not None})

    def flush(self, now_s: float, force: bool = False) -> bool:
        if not force and now_s - self.flushed_at < self.interval_s:
            return False
        from bridge.hub import engine

        now = datetime.fromtimestamp(now_s, UTC)
        with engine.ensure_schema().begin() as conn:
            for source in ("crm", "oa"):
                if self.pending[source] or self.stamps[source]:
                    add(conn, source, self.pending[source], now, **self.stamps[source])
        self.pending = {"crm": Counter(), "oa": Counter()}
        self.stamps = {"crm": {}, "oa": {}}
        self.flushed_at = now_s
        return True


DIRECTIONS = {"crm": "crm_to_oa", "oa": "oa_to_crm"}


def poll_gate(context: Mapping[str, Any], source: str) -> bool:
    """The sync DAGs' first task: True = this run polls (and the gate stamps ``last_poll_at``)."""
    import logging

    from bridge import settings
    from bridge.hub import engine, store

    dag_run = context.get("dag_run")
    raw_type = getattr(dag_run, "run_type", None) or "manual"
    run_type = str(getattr(raw_type, "value", raw_type))
    now = datetime.now(UTC)
    try:
        with engine.ensure_schema().begin() as conn:
            due, why = poll_due(
                run_type, read(conn, source), now, PollSettings.from_settings(settings.load())
            )
            if not due and store.due_changes(conn, DIRECTIONS[source], now, limit=1):
                due, why = True, "changes whose quiet window has passed are waiting"
            if due:
                stamp_poll(conn, source, now)
    except Exception as exc:  # the safety net fails open: a hub problem shows in the run's own tasks
        due, why = True, f"health row unreadable ({exc.__class__.__name__}): polls"
    logging.getLogger(__name__).info(
        "poll gate (%s, %s run): %s — %s", source, run_type, "polls" if due else "skipped", why
    )
    return due

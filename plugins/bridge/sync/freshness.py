"""How current each sync direction is, in terms a manager can act on.

Two facts per direction, read from the hub:

* the **last successful run** (``run_summary`` of the direction's run kind,
  :mod:`bridge.runkinds`): a change made in a source system reaches the other
  system only through a run, so "no successful run for 3 hours" means nothing
  has moved for 3 hours;
* the **oldest unsent change** (``pending_change``): a change the bridge has
  read but not yet written, and how long it has waited since the bridge first
  saw it (``first_seen_at``). It waits a minute or two for the debounce
  window; longer means the target was unavailable (deferred) or a run is
  failing.

Their larger value is the direction's **lag**: the longest a change can have
waited, as far as the hub can tell. A watermark is not a lag: it is the
source modification time of the newest record read, and stays old while
nobody edits that kind of record (a company untouched for a day is not a
day's delay). The daily report and the data-health freshness check both use
:func:`sync_freshness`, so they agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, case, func, select

from bridge import runkinds
from bridge.hub.schema import pending_change, run_summary

DIRECTIONS = tuple(runkinds.SYNC_BY_DIRECTION)


@dataclass(frozen=True)
class SyncFreshness:
    """One direction's freshness at ``now``."""

    direction: str  # crm_to_oa | oa_to_crm
    kind: str  # its run kind (bridge.runkinds)
    now: datetime
    last_success: datetime | None  # finished_at of the latest successful run; None: never
    unsent: int  # changes read but not yet written
    due: int  # of which past their debounce window (should go out at the next run)
    oldest_unsent: datetime | None  # when the bridge first saw the longest-waiting unsent change

    @property
    def minutes_since_success(self) -> float | None:
        return _minutes(self.now, self.last_success)

    @property
    def oldest_unsent_minutes(self) -> float | None:
        return _minutes(self.now, self.oldest_unsent)

    @property
    def lag_minutes(self) -> float | None:
        """The larger of the two ages; None when the direction never ran successfully."""
        if self.last_success is None:
            return None
        return max(self.minutes_since_success or 0.0, self.oldest_unsent_minutes or 0.0)


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _minutes(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    return round(max(0.0, (now - then).total_seconds() / 60), 1)


def sync_freshness(
    conn: Connection, now: datetime, directions: Iterable[str] = DIRECTIONS
) -> dict[str, SyncFreshness]:
    """Each direction's last successful run and unsent changes at ``now`` (aware UTC)."""
    wanted = list(directions)
    unknown = [d for d in wanted if d not in runkinds.SYNC_BY_DIRECTION]
    if unknown:
        raise ValueError(f"unknown sync direction(s) {unknown}; known: {list(runkinds.SYNC_BY_DIRECTION)}")
    kinds = {d: runkinds.SYNC_BY_DIRECTION[d] for d in wanted}
    last = dict(
        conn.execute(
            select(run_summary.c.kind, func.max(run_summary.c.finished_at))
            .where(run_summary.c.kind.in_(list(kinds.values())), run_summary.c.status == "success")
            .group_by(run_summary.c.kind)
        ).all()
    )
    c = pending_change.c
    queued = {
        row[0]: row[1:]
        for row in conn.execute(
            select(
                c.direction,
                func.count(),
                func.sum(case((c.due_at <= now, 1), else_=0)),
                func.min(c.first_seen_at),
            )
            .where(c.direction.in_(wanted))
            .group_by(c.direction)
        )
    }
    out: dict[str, SyncFreshness] = {}
    for direction, kind in kinds.items():
        unsent, due, oldest = queued.get(direction, (0, 0, None))
        out[direction] = SyncFreshness(
            direction=direction,
            kind=kind,
            now=now,
            last_success=_aware(last.get(kind)),
            unsent=int(unsent or 0),
            due=int(due or 0),
            oldest_unsent=_aware(oldest),
        )
    return out


__all__ = ["DIRECTIONS", "SyncFreshness", "sync_freshness"]

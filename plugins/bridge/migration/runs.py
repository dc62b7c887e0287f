"""A migration run's bookkeeping in the hub: ``migration_run``, its chunks, and the lease.

``migration_run`` (one row per Airflow run, ``run_id`` = the Airflow run id)
holds the checked parameters, the status, the totals and the report paths the
历史迁移 page links. ``migration_chunk`` holds the plan — one row per chunk
(entity, chunk number, range) plus one per run-wide step (``dedupe.company``,
``writeback.deal``) — and each chunk's counts and examples once it is done:
a cleared or crashed run skips the chunks already done and redoes the others
from their start. A dry run keeps this bookkeeping too (the page lists it and it
makes a dry run resumable); it writes no data.

The lease ``history_migration`` (table ``lease``) keeps two migrations from
working at once even outside Airflow's ``max_active_runs`` (a second
deployment, a CLI run): each task takes or renews it for its run before it
works. It is given up as soon as the run is over:

- the ``report`` task releases it when every chunk is done;
- otherwise the DAG's teardown task ``close_run`` — which Airflow runs after a
  task failed for good *and* after a person marks the run failed — marks the
  run ``aborted`` (when, why) and releases it (:func:`abort_run`);
- a run that died without its teardown (its Airflow run ended while the lease
  was still valid) is taken over by the next run: :func:`take_lease` asks who
  holds the lease and, when Airflow says that run is no longer queued or
  running, takes the lease and marks the holder ``aborted`` (why: taken over).
  A holder Airflow does not know (a CLI or bench run) keeps the lease until it
  expires (:data:`LEASE_TTL_SECONDS` after its last renewal).

A cleared run takes the lease again when its tasks start and is ``running``
once more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, insert, select, update

from bridge.dictionary.formats import SHANGHAI
from bridge.hub import store
from bridge.hub.schema import migration_chunk, migration_run

LEASE = "history_migration"
LEASE_TTL_SECONDS = 900.0
DEDUPE_STEP = "dedupe.company"
WRITEBACK_STEP = "writeback.deal"
STEPS = (DEDUPE_STEP, WRITEBACK_STEP)
ABORTED = "aborted"
# What Airflow says about a run id: its dag run state ("running", "failed", ...), or None when Airflow does
# not know the run (not an Airflow run, or Airflow cannot be asked from here).
RunState = Callable[[str], str | None]
ACTIVE_STATES = ("queued", "running")


class MigrationLocked(RuntimeError):
    """Another migration holds the lease; the message (Chinese) says which and until when."""


@dataclass(frozen=True)
class Chunk:
    run_id: str
    entity: str
    chunk_no: int
    range_from_ms: int | None
    range_to_ms: int | None
    status: str  # pending | done | failed
    counts: dict[str, Any] | None
    examples: dict[str, Any] | None
    completed_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status == "done"

    def ref(self) -> dict[str, Any]:
        """What a mapped task receives (XCom): small and JSON."""
        planned = (self.counts or {}).get("planned") if not self.done else (self.counts or {}).get("read")
        return {
            "entity": self.entity,
            "chunk_no": self.chunk_no,
            "lo": self.range_from_ms,
            "hi": self.range_to_ms,
            "planned": int(planned or 0),
        }


def _chunk(row: Any) -> Chunk:
    m = row._mapping
    return Chunk(
        run_id=m["run_id"],
        entity=m["entity"],
        chunk_no=int(m["chunk_no"]),
        range_from_ms=m["range_from_ms"],
        range_to_ms=m["range_to_ms"],
        status=m["status"],
        counts=m["counts"],
        examples=m["examples"],
        completed_at=m["completed_at"],
    )


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(migration_run).where(migration_run.c.run_id == run_id)).first()
    return dict(row._mapping) if row is not None else None


def begin_run(
    conn: Connection, run_id: str, params: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], bool]:
    """Record the run (status ``running``); a run seen before keeps its parameters. Returns (params, resumed)."""
    existing = get_run(conn, run_id)
    if existing is not None:
        conn.execute(
            update(migration_run)
            .where(migration_run.c.run_id == run_id)
            .values(status="running", finished_at=None, params=_without_abort(existing["params"]))
        )
        return _without_abort(existing["params"]), True
    conn.execute(
        insert(migration_run).values(
            run_id=run_id, params=dict(params), status="running", started_at=now, counts={}
        )
    )
    return dict(params), False


def save_plan(
    conn: Connection, run_id: str, chunks: Sequence[tuple[str, int, int | None, int | None, int]]
) -> None:
    """Insert the planned chunks ``(entity, chunk no, from ms, to ms, planned records)`` (pending)."""
    rows = [
        {
            "run_id": run_id,
            "entity": e,
            "chunk_no": no,
            "range_from_ms": lo,
            "range_to_ms": hi,
            "status": "pending",
            "counts": {"planned": n},
        }
        for e, no, lo, hi, n in chunks
    ]
    for start in range(0, len(rows), 500):
        conn.execute(insert(migration_chunk), rows[start : start + 500])


def planned(conn: Connection, run_id: str) -> list[Chunk]:
    rows = conn.execute(
        select(migration_chunk)
        .where(migration_chunk.c.run_id == run_id)
        .order_by(migration_chunk.c.entity, migration_chunk.c.chunk_no)
    )
    return [_chunk(r) for r in rows]


def _chunk_is(run_id: str, entity: str, chunk_no: int) -> tuple[ColumnElement[bool], ...]:
    """The conditions that pick one chunk of a run."""
    return (
        migration_chunk.c.run_id == run_id,
        migration_chunk.c.entity == entity,
        migration_chunk.c.chunk_no == chunk_no,
    )


def get_chunk(conn: Connection, run_id: str, entity: str, chunk_no: int) -> Chunk | None:
    row = conn.execute(select(migration_chunk).where(*_chunk_is(run_id, entity, chunk_no))).first()
    return _chunk(row) if row is not None else None


def complete_chunk(
    conn: Connection,
    run_id: str,
    entity: str,
    chunk_no: int,
    counts: Mapping[str, Any],
    examples: Mapping[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        update(migration_chunk)
        .where(*_chunk_is(run_id, entity, chunk_no))
        .values(status="done", counts=dict(counts), examples=dict(examples), completed_at=now)
    )


def fail_chunk(conn: Connection, run_id: str, entity: str, chunk_no: int, why: str, now: datetime) -> None:
    conn.execute(
        update(migration_chunk)
        .where(*_chunk_is(run_id, entity, chunk_no), migration_chunk.c.status != "done")
        .values(status="failed", examples={"error": why[:500]}, completed_at=now)
    )


def finish_run(
    conn: Connection,
    run_id: str,
    status: str,
    counts: Mapping[str, Any],
    *,
    report_html: str | None,
    report_csv: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(migration_run)
        .where(migration_run.c.run_id == run_id)
        .values(
            status=status,
            counts=dict(counts),
            report_html=report_html,
            report_csv=report_csv,
            finished_at=now,
        )
    )


def _without_abort(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if k != ABORTED}


def abort_run(conn: Connection, run_id: str, why: str, now: datetime) -> bool:
    """Mark a run that ended unfinished ``aborted``: when (``finished_at``) and why (``params["aborted"]``).

    A finished successful run is left alone; returns whether the row changed.
    """
    row = get_run(conn, run_id)
    if row is None or row["status"] == "success":
        return False
    params = {**_without_abort(row["params"]), ABORTED: {"at": now.isoformat(), "reason": why[:1000]}}
    conn.execute(
        update(migration_run)
        .where(migration_run.c.run_id == run_id)
        .values(status=ABORTED, finished_at=now, params=params)
    )
    return True


def _reopen(conn: Connection, run_id: str) -> None:
    """A cleared run that works again is ``running`` again (its abort note goes)."""
    row = get_run(conn, run_id)
    if row is not None and row["status"] == ABORTED:
        conn.execute(
            update(migration_run)
            .where(migration_run.c.run_id == run_id)
            .values(status="running", finished_at=None, params=_without_abort(row["params"]))
        )


# ---------------------------------------------------------------- lease


def _local(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def refusal(holder: str, until: datetime) -> str:
    """What a refused run says: first line short (who holds the lease, until when), then what to do."""
    return (
        f"历史迁移未开始：运行 {holder} 持有迁移租约，到 {_local(until)}（北京时间）。\n"
        "两次历史迁移不能同时运行。请等该运行结束后再触发；若它已中止，请在 Airflow 中把它标记为失败，"
        "它的收尾任务会立即释放租约（没有 Airflow 运行的持有者要等到上面的时间）。"
    )


def take_lease(
    hub: Engine, holder: str, now: datetime, ttl: float = LEASE_TTL_SECONDS, run_state: RunState | None = None
) -> None:
    """Take or extend the lease for ``holder`` (the run id); :class:`MigrationLocked` when another run has it.

    ``run_state`` (Airflow's view of a run id) lets a new run take over from a holder whose Airflow run has
    ended: that holder is marked ``aborted``.
    """
    with hub.begin() as conn:
        if store.acquire_lease(conn, LEASE, holder, ttl, now=now):
            _reopen(conn, holder)
            return
        current = store.get_lease(conn, LEASE)
    if current is None:  # released between the two statements: try once more
        return take_lease(hub, holder, now, ttl, None)
    state = run_state(current.holder) if run_state is not None else None
    if state is not None and state not in ACTIVE_STATES:
        with hub.begin() as conn:
            if store.release_lease(conn, LEASE, current.holder) and store.acquire_lease(
                conn, LEASE, holder, ttl, now=now
            ):
                abort_run(
                    conn,
                    current.holder,
                    f"Airflow 运行已结束（状态 {state}），没有释放迁移租约；租约由运行 {holder} 接管。",
                    now,
                )
                _reopen(conn, holder)
                return
            current = store.get_lease(conn, LEASE) or current
    raise MigrationLocked(refusal(current.holder, current.expires_at))


def renew_lease(
    hub: Engine, holder: str, now: datetime, ttl: float = LEASE_TTL_SECONDS, run_state: RunState | None = None
) -> None:
    """Extend our lease while working; :class:`MigrationLocked` if another run took it over (stop then)."""
    with hub.begin() as conn:
        if store.renew_lease(conn, LEASE, holder, ttl, now=now):
            return
    take_lease(hub, holder, now, ttl, run_state)  # released or expired: take it again, or say who has it


def release_lease(hub: Engine, holder: str) -> bool:
    with hub.begin() as conn:
        return store.release_lease(conn, LEASE, holder)

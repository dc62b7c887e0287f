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
works, and the last task releases it. A run that dies keeps it until it
expires (:data:`LEASE_TTL_SECONDS`), so its own retries can continue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from bridge.dictionary.formats import SHANGHAI
from bridge.hub import store
from bridge.hub.schema import migration_chunk, migration_run

LEASE = "history_migration"
LEASE_TTL_SECONDS = 900.0
DEDUPE_STEP = "dedupe.company"
WRITEBACK_STEP = "writeback.deal"
STEPS = (DEDUPE_STEP, WRITEBACK_STEP)


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
        return {"entity": self.entity, "chunk_no": self.chunk_no, "lo": self.range_from_ms, "hi": self.range_to_ms,
                "planned": int(planned or 0)}


def _chunk(row: Any) -> Chunk:
    m = row._mapping
    return Chunk(run_id=m["run_id"], entity=m["entity"], chunk_no=int(m["chunk_no"]),
                 range_from_ms=m["range_from_ms"], range_to_ms=m["range_to_ms"], status=m["status"],
                 counts=m["counts"], examples=m["examples"], completed_at=m["completed_at"])


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(migration_run).where(migration_run.c.run_id == run_id)).first()
    return dict(row._mapping) if row is not None else None


def begin_run(conn: Connection, run_id: str, params: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], bool]:
    """Record the run (status ``running``); a run seen before keeps its parameters. Returns (params, resumed)."""
    existing = get_run(conn, run_id)
    if existing is not None:
        conn.execute(update(migration_run).where(migration_run.c.run_id == run_id)
                     .values(status="running", finished_at=None))
        return dict(existing["params"] or {}), True
    conn.execute(insert(migration_run).values(run_id=run_id, params=dict(params), status="running", started_at=now,
                                              counts={}))
    return dict(params), False


def save_plan(conn: Connection, run_id: str,
              chunks: Sequence[tuple[str, int, int | None, int | None, int]]) -> None:
    """Insert the planned chunks ``(entity, chunk no, from ms, to ms, planned records)`` (pending)."""
    rows = [{"run_id": run_id, "entity": e, "chunk_no": no, "range_from_ms": lo, "range_to_ms": hi,
             "status": "pending", "counts": {"planned": n}} for e, no, lo, hi, n in chunks]
    for start in range(0, len(rows), 500):
        conn.execute(insert(migration_chunk), rows[start:start + 500])


def planned(conn: Connection, run_id: str) -> list[Chunk]:
    rows = conn.execute(select(migration_chunk).where(migration_chunk.c.run_id == run_id)
                        .order_by(migration_chunk.c.entity, migration_chunk.c.chunk_no))
    return [_chunk(r) for r in rows]


def get_chunk(conn: Connection, run_id: str, entity: str, chunk_no: int) -> Chunk | None:
    row = conn.execute(select(migration_chunk).where(
        migration_chunk.c.run_id == run_id, migration_chunk.c.entity == entity,
        migration_chunk.c.chunk_no == chunk_no)).first()
    return _chunk(row) if row is not None else None


def complete_chunk(conn: Connection, run_id: str, entity: str, chunk_no: int, counts: Mapping[str, Any],
                   examples: Mapping[str, Any], now: datetime) -> None:
    conn.execute(update(migration_chunk).where(
        migration_chunk.c.run_id == run_id, migration_chunk.c.entity == entity, migration_chunk.c.chunk_no == chunk_no,
    ).values(status="done", counts=dict(counts), examples=dict(examples), completed_at=now))


def fail_chunk(conn: Connection, run_id: str, entity: str, chunk_no: int, why: str, now: datetime) -> None:
    conn.execute(update(migration_chunk).where(
        migration_chunk.c.run_id == run_id, migration_chunk.c.entity == entity, migration_chunk.c.chunk_no == chunk_no,
        migration_chunk.c.status != "done",
    ).values(status="failed", examples={"error": why[:500]}, completed_at=now))


def finish_run(conn: Connection, run_id: str, status: str, counts: Mapping[str, Any], *, report_html: str | None,
               report_csv: str | None, now: datetime) -> None:
    conn.execute(update(migration_run).where(migration_run.c.run_id == run_id).values(
        status=status, counts=dict(counts), report_html=report_html, report_csv=report_csv, finished_at=now))


# ---------------------------------------------------------------- lease


def _local(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def take_lease(hub: Engine, holder: str, now: datetime, ttl: float = LEASE_TTL_SECONDS) -> None:
    """Take or extend the lease for ``holder`` (the run id); :class:`MigrationLocked` when another run has it."""
    with hub.begin() as conn:
        if store.acquire_lease(conn, LEASE, holder, ttl, now=now):
            return
        current = store.get_lease(conn, LEASE)
    other = current.holder if current else "?"
    until = _local(current.expires_at) if current else "?"
    raise MigrationLocked(
        f"另一次历史迁移正在进行（运行 {other}），它持有迁移租约到 {until}（北京时间）。两次历史迁移不能同时运行："
        f"请等待该运行结束后再触发本次迁移；如果该运行已经中止，请在 Airflow 中将它标记为失败，租约到期后即可重新触发。")


def renew_lease(hub: Engine, holder: str, now: datetime, ttl: float = LEASE_TTL_SECONDS) -> None:
    """Extend our lease while working; :class:`MigrationLocked` if another run took it over (stop then)."""
    with hub.begin() as conn:
        if store.renew_lease(conn, LEASE, holder, ttl, now=now):
            return
    take_lease(hub, holder, now, ttl)  # expired and nobody took it: take it again, or say who has it


def release_lease(hub: Engine, holder: str) -> bool:
    with hub.begin() as conn:
        return store.release_lease(conn, LEASE, holder)

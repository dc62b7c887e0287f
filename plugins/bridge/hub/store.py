"""The hub's state, one small function per operation.

Every function takes a SQLAlchemy ``Connection`` and leaves the transaction to
the caller, so a watermark can advance in the same transaction that records
the writes it covers. The functions behave the same on SQLite and PostgreSQL
(upserts use each dialect's ``INSERT ... ON CONFLICT``). Times are
timezone-aware UTC datetimes; ``now`` parameters exist so that tests and the
debounce arithmetic do not depend on the wall clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)

from bridge.chunks import chunked
from bridge.context import RunContext
from bridge.hub import audit
from bridge.hub.rows import record_of
from bridge.hub.schema import (
    lease,
    pending_change,
    quarantine,
    run_summary,
    snapshot,
    watermark,
    xref,
)

BATCH = 500
SYNC_DIRECTIONS = ("crm_to_oa", "oa_to_crm")
QUARANTINE_DIRECTIONS = (*SYNC_DIRECTIONS, "migration", "health", "journey")
# Quarantine reasons and their labels as staff see them (CLI, UI, report, mail).
REASON_LABELS: dict[str, str] = {
    "missing_required": "缺少必填项",
    "invalid_format": "格式不正确",
    "unmapped_value": "取值没有对应映射",
    "invalid_transition": "状态变更不被允许",
    "owner_not_in_oa": "负责人不在 OA 中",
    "missing_customer_link": "缺少关联客户",
    "vendor_rejected": "对方系统拒绝写入",
    "duplicate_id": "重复记录",
    "hostile_input": "可疑输入",
    "expectation_failed": "数据校验未通过",
    "attachment_refused": "附件未传送",  # a file refused by kind, size or content (docs/attachments.md)
}
REASON_CODES = frozenset(REASON_LABELS)
RESOLUTION_LABELS = {"fixed": "源数据已修正", "released": "已人工释放"}
DIRECTION_LABELS = {
    "crm_to_oa": "CRM → OA",
    "oa_to_crm": "OA → CRM",
    "migration": "历史迁移",
    "health": "数据健康检查",
    "journey": "客户旅程数据接入",
}
RUN_STATUSES = frozenset({"success", "failed"})
MAX_QUARANTINE_PAYLOAD = 64_000  # bytes of JSON kept per quarantined record


class StoreError(ValueError):
    """A store call that cannot be honoured as asked; the message says why."""


class QuarantineNotFound(LookupError):
    """No quarantine entry with that id."""


class QuarantineAlreadyResolved(StoreError):
    """The entry is no longer open (fixed or released before)."""

    def __init__(self, entry: QuarantineEntry) -> None:
        super().__init__(f"quarantine entry {entry.id} is already {entry.resolution}")
        self.entry = entry


# ---------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise StoreError("now must be a timezone-aware datetime (UTC)")
    return now.astimezone(UTC)


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_*``) for ``table``."""
    return _insert_for(conn.dialect.name, table)


def _insert_for(name: str, table: Table) -> Any:
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise StoreError(f"the hub supports SQLite and PostgreSQL, not {name}")


def _new_values(stmt: Any, *columns: str) -> dict[str, Any]:
    """``ON CONFLICT DO UPDATE`` assignments that take ``columns`` from the row being inserted."""
    return {name: stmt.excluded[name] for name in columns}


def _rows_in(
    conn: Connection, query: Select[Any], column: ColumnElement[Any], values: Sequence[Any]
) -> Iterator[Row[Any]]:
    """The rows of ``query`` whose ``column`` is one of ``values``: one SELECT per :data:`BATCH` values,
    so an ``IN`` list never outgrows what the database (or SQLite's variable limit) accepts."""
    for chunk in chunked(values, BATCH):
        yield from conn.execute(query.where(column.in_(chunk)))


def _count_in(
    conn: Connection, statement: Update | Delete, column: ColumnElement[Any], values: Sequence[Any]
) -> int:
    """Rows an UPDATE or DELETE touched, run once per :data:`BATCH` values of ``column``."""
    return sum(conn.execute(statement.where(column.in_(chunk))).rowcount for chunk in chunked(values, BATCH))


def _fit(value: str, limit: int) -> str:
    """``value`` within ``limit`` characters; a long value keeps a hash suffix so it stays unique."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha1(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]
    return value[: limit - 17] + "~" + digest


def _fit_opt(value: str | None, limit: int) -> str | None:
    return None if value is None else _fit(value, limit)


# ---------------------------------------------------------------- watermarks

#: A stream named ``…_cursor`` keeps a list position (a record id), not a source time: it resumes a pass
#: over a list and is not shown where watermarks are read as times (the sync page, the report).
POSITION_SUFFIX = "_cursor"


def is_time_stream(stream: str) -> bool:
    """Whether a watermark stream's value is a source time (epoch ms) rather than a list position."""
    return not stream.endswith(POSITION_SUFFIX)


def get_watermark(conn: Connection, stream: str) -> int | None:
    """How far ``stream`` has safely been read (epoch ms), None before the first run."""
    value = conn.execute(select(watermark.c.value_ms).where(watermark.c.stream == stream)).scalar()
    return int(value) if value is not None else None


def refresh_planner_statistics(conn: Connection) -> None:
    """PostgreSQL: ``ANALYZE`` the snapshot table while a bulk load fills it.

    A table PostgreSQL has never analysed looks empty to its planner, which then reads every row of
    an entity to find the 200 ids of a staging page (an index scan on (system, entity) with a filter
    on ``source_id``), so each page costs more than the one before. Autovacuum analyses only between
    runs; a bulk extract calls this as the table grows. Nothing to do on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.execute(_ANALYZE_SNAPSHOT)


_ANALYZE_SNAPSHOT = text("ANALYZE snapshot")


def set_watermark(
    conn: Connection,
    stream: str,
    value_ms: int,
    run_id: str | None,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> int:
    """Advance the watermark; it never moves backwards unless ``force``. Returns the stored value."""
    stmt = _insert(conn, watermark).values(
        stream=stream, value_ms=int(value_ms), updated_at=_now(now), run_id=run_id
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[watermark.c.stream],
        set_=_new_values(stmt, "value_ms", "updated_at", "run_id"),
        where=None if force else stmt.excluded.value_ms >= watermark.c.value_ms,
    )
    conn.execute(stmt)
    stored = get_watermark(conn, stream)
    assert stored is not None
    return stored


# ---------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotRow:
    """One source record as the extract saw it, mapped to its canonical form."""

    source_id: str
    content_hash: str
    payload: dict[str, Any]
    source_modified_ms: int
    data_owner: str | None = None


ChangeStatus = Literal["new", "changed", "unchanged"]


@dataclass(frozen=True)
class SnapshotChange:
    """What an upsert found for one record; the previous payload carries e.g. the old contract amount."""

    source_id: str
    status: ChangeStatus
    previous_hash: str | None = None
    previous_payload: dict[str, Any] | None = None

    @property
    def is_change(self) -> bool:
        return self.status != "unchanged"


@dataclass(frozen=True)
class Snapshot:
    system: str
    entity: str
    source_id: str
    content_hash: str
    payload: dict[str, Any]
    source_modified_ms: int
    data_owner: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    archived: bool
    deleted: bool


def _snapshot(row: Row[Any]) -> Snapshot:
    # Spelled out rather than record_of: snapshots are read by the page in the sync and health paths,
    # where the generic mapping costs a few microseconds more per row.
    m = row._mapping
    return Snapshot(
        m["system"],
        m["entity"],
        m["source_id"],
        m["content_hash"],
        m["payload"],
        int(m["source_modified_ms"]),
        m["data_owner"],
        m["first_seen_at"],
        m["last_seen_at"],
        bool(m["archived"]),
        bool(m["deleted"]),
    )


def _latest_per_id(rows: Iterable[SnapshotRow]) -> list[SnapshotRow]:
    """One row per source id (the most recently modified; the later one on a tie), first-seen order."""
    chosen: dict[str, SnapshotRow] = {}
    for row in rows:
        current = chosen.get(row.source_id)
        if current is None or row.source_modified_ms >= current.source_modified_ms:
            chosen[row.source_id] = row
    return list(chosen.values())


def upsert_snapshots(
    conn: Connection,
    system: str,
    entity: str,
    rows: Sequence[SnapshotRow],
    *,
    now: datetime | None = None,
    batch_size: int = BATCH,
) -> list[SnapshotChange]:
    """Store the latest state of each record and say which ones are new or changed.

    A record counts as changed when its content hash differs (the hash covers
    only the fields this system owns). A row older than the stored one (by
    ``source_modified_ms``) is stale and leaves the snapshot alone. A record
    marked deleted that shows up again counts as changed. Cost per batch: one
    SELECT of the stored hashes, one SELECT of the old payloads of changed
    records (only if any), one multi-row upsert. One result per distinct
    ``source_id``, in input order.
    """
    at = _now(now)
    changes: list[SnapshotChange] = []
    for chunk in chunked(_latest_per_id(rows), batch_size):
        changes.extend(_upsert_snapshot_batch(conn, (system, entity), chunk, at))
    return changes


def _upsert_snapshot_batch(
    conn: Connection, kind: tuple[str, str], chunk: Sequence[SnapshotRow], at: datetime
) -> list[SnapshotChange]:
    """One batch of :func:`upsert_snapshots` (``kind`` = system, entity): read stored states, classify, write."""
    key = (snapshot.c.system == kind[0], snapshot.c.entity == kind[1])
    stored = {
        r.source_id: r
        for r in conn.execute(
            select(
                snapshot.c.source_id,
                snapshot.c.content_hash,
                snapshot.c.source_modified_ms,
                snapshot.c.deleted,
            ).where(*key, snapshot.c.source_id.in_([row.source_id for row in chunk]))
        )
    }
    statuses = _snapshot_statuses(chunk, stored)
    changed = [sid for sid, status in statuses.items() if status == "changed"]
    previous: dict[str, Any] = {}
    if changed:
        previous = dict(
            conn.execute(
                select(snapshot.c.source_id, snapshot.c.payload).where(
                    *key, snapshot.c.source_id.in_(changed)
                )
            ).all()
        )
    _write_snapshots(conn, kind, chunk, at)
    return [
        SnapshotChange(
            source_id=row.source_id,
            status=statuses[row.source_id],
            previous_hash=old.content_hash if (old := stored.get(row.source_id)) is not None else None,
            previous_payload=previous.get(row.source_id),
        )
        for row in chunk
    ]


def _snapshot_statuses(chunk: Sequence[SnapshotRow], stored: Mapping[str, Any]) -> dict[str, ChangeStatus]:
    """New, changed or unchanged per source id, against the stored hash, time and deleted flag."""
    statuses: dict[str, ChangeStatus] = {}
    for row in chunk:
        old = stored.get(row.source_id)
        if old is None:
            statuses[row.source_id] = "new"
        elif row.source_modified_ms < old.source_modified_ms:
            statuses[row.source_id] = "unchanged"  # stale read: keep the newer snapshot
        elif old.content_hash != row.content_hash or old.deleted:
            statuses[row.source_id] = "changed"
        else:
            statuses[row.source_id] = "unchanged"
    return statuses


def _write_snapshots(
    conn: Connection, kind: tuple[str, str], chunk: Sequence[SnapshotRow], at: datetime
) -> None:
    """Upsert one batch; a row older than the stored snapshot leaves it alone.

    The statement is SQLAlchemy Core's ``INSERT … ON CONFLICT DO UPDATE``, compiled once per dialect;
    the values go to the driver as they are (SQLite: one DB-API ``executemany``; PostgreSQL: one
    multi-row ``INSERT … VALUES (…), (…)`` per batch), each column through its own type's bind
    processor, so the payload text is the engine's JSON serializer's (byte-identical to what
    ``conn.execute`` would store) without SQLAlchemy's per-row parameter processing."""
    upsert = _snapshot_upsert(conn)
    system, entity = kind
    same = {"system": system, "entity": entity, "first_seen_at": at, "last_seen_at": at, "archived": False,
            "deleted": False}
    if upsert.processors.keys() & {"source_id", "content_hash", "source_modified_ms", "data_owner"}:
        values = [upsert.bind({**same, "source_id": row.source_id, "content_hash": row.content_hash,
                               "payload": row.payload, "source_modified_ms": int(row.source_modified_ms),
                               "data_owner": row.data_owner}) for row in chunk]  # a driver that wants them
    else:  # SQLite, psycopg2: only the payload (JSON text) and the constants need their processors
        constant = upsert.bind(same)
        head, tail = constant[:2], constant[7:]
        payload_of = upsert.processors.get("payload") or _as_is
        values = [(*head, row.source_id, row.content_hash, payload_of(row.payload), int(row.source_modified_ms),
                   row.data_owner, *tail) for row in chunk]
    upsert.execute(conn, values)


def _as_is(value: Any) -> Any:
    return value


_SNAPSHOT_COLUMNS = ("system", "entity", "source_id", "content_hash", "payload", "source_modified_ms",
                     "data_owner", "first_seen_at", "last_seen_at", "archived", "deleted")


class _SnapshotUpsert:
    """The snapshot upsert of one dialect, compiled once per batch size: its SQL text (positional
    parameters in :data:`_SNAPSHOT_COLUMNS` order, row after row) and each column's bind processor."""

    def __init__(self, dialect: Any) -> None:
        self.multi_row = dialect.name == "postgresql"
        # PostgreSQL drivers take positional %s as well as %(name)s: compiled positionally, a batch is one
        # flat tuple, with no per-row dictionaries.
        self.dialect = type(dialect)(paramstyle="format") if self.multi_row else dialect
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in _SNAPSHOT_COLUMNS:
            process = snapshot.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.processors[name] = process
        self._sql: dict[int, str] = {}  # rows per statement (PostgreSQL; SQLite: 1, executemany) → SQL

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """Column values as the driver takes them, in :data:`_SNAPSHOT_COLUMNS` order (absent ones None)."""
        out = []
        for name in _SNAPSHOT_COLUMNS:
            value = values.get(name)
            process = self.processors.get(name)
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    def sql(self, rows: int) -> str:
        known = self._sql.get(rows)
        if known is not None:
            return known
        stmt = _insert_for(self.dialect.name, snapshot)
        if self.multi_row:
            stmt = stmt.values([dict.fromkeys(_SNAPSHOT_COLUMNS, 0) for _ in range(rows)])
        stmt = stmt.on_conflict_do_update(
            index_elements=[snapshot.c.system, snapshot.c.entity, snapshot.c.source_id],
            set_={**_new_values(stmt, "content_hash", "payload", "source_modified_ms", "data_owner",
                                "last_seen_at"), "deleted": false()},
            where=stmt.excluded.source_modified_ms >= snapshot.c.source_modified_ms,
        )
        compiled = stmt.compile(dialect=self.dialect)
        expected = ([f"{c}_m{i}" for i in range(rows) for c in _SNAPSHOT_COLUMNS] if self.multi_row
                    else list(_SNAPSHOT_COLUMNS))
        if list(compiled.positiontup or ()) != expected:
            raise StoreError(f"the snapshot upsert compiled to other parameters: {compiled.positiontup}")
        self._sql[rows] = compiled.string
        return compiled.string

    def execute(self, conn: Connection, values: Sequence[tuple[Any, ...]]) -> None:
        """SQLite: one ``executemany``; PostgreSQL: one multi-row statement per :data:`BATCH` rows."""
        if not self.multi_row:
            if values:
                conn.exec_driver_sql(self.sql(1), list(values))
            return
        for chunk in chunked(values, BATCH):
            conn.exec_driver_sql(self.sql(len(chunk)), tuple(v for row in chunk for v in row))


_upserts: dict[tuple[str, str], _SnapshotUpsert] = {}


def _snapshot_upsert(conn: Connection) -> _SnapshotUpsert:
    key = (conn.dialect.name, conn.dialect.driver)
    upsert = _upserts.get(key)
    if upsert is None:
        if key[0] not in ("sqlite", "postgresql"):
            raise StoreError(f"the hub supports SQLite and PostgreSQL, not {key[0]}")
        upsert = _upserts[key] = _SnapshotUpsert(conn.dialect)
    return upsert


def get_snapshot(conn: Connection, system: str, entity: str, source_id: str) -> Snapshot | None:
    row = conn.execute(
        select(snapshot).where(
            snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.source_id == source_id
        )
    ).first()
    return _snapshot(row) if row is not None else None


def get_snapshots(
    conn: Connection, system: str, entity: str, source_ids: Iterable[str]
) -> dict[str, Snapshot]:
    """Snapshots by source id (missing ids are absent from the result)."""
    query = select(snapshot).where(snapshot.c.system == system, snapshot.c.entity == entity)
    found: dict[str, Snapshot] = {}
    for row in _rows_in(conn, query, snapshot.c.source_id, list(dict.fromkeys(source_ids))):
        snap = _snapshot(row)
        found[snap.source_id] = snap
    return found


def iter_snapshots(
    conn: Connection,
    entity: str,
    *,
    system: str | None = None,
    batch: int = 1000,
    modified_since_ms: int | None = None,
    include_archived: bool = True,
    include_deleted: bool = False,
) -> Iterator[list[Snapshot]]:
    """All snapshots of an entity in batches, oldest modification first, with bounded memory.

    PostgreSQL streams from a server-side cursor; keep the connection's
    transaction open while iterating.
    """
    query = select(snapshot).where(snapshot.c.entity == entity)
    if system is not None:
        query = query.where(snapshot.c.system == system)
    if modified_since_ms is not None:
        query = query.where(snapshot.c.source_modified_ms >= modified_since_ms)
    if not include_archived:
        query = query.where(snapshot.c.archived.is_(False))
    if not include_deleted:
        query = query.where(snapshot.c.deleted.is_(False))
    query = query.order_by(snapshot.c.source_modified_ms, snapshot.c.source_id)
    result = conn.execute(query.execution_options(yield_per=batch))
    for part in result.partitions(batch):
        yield [_snapshot(row) for row in part]


def mark_archived(
    conn: Connection, system: str, entity: str, source_ids: Iterable[str], archived: bool = True
) -> int:
    """Mark old records archived (left in the source, kept in the hub); returns rows marked."""
    statement = (
        update(snapshot)
        .where(snapshot.c.system == system, snapshot.c.entity == entity)
        .values(archived=archived)
    )
    return _count_in(conn, statement, snapshot.c.source_id, list(dict.fromkeys(source_ids)))


TOMBSTONE_KEY = "_tombstone"  # in a deleted snapshot's payload: who deleted it, when, why


def tombstone(
    conn: Connection, record: tuple[str, str, str], stone: Mapping[str, Any], *, now: datetime | None = None
) -> bool:
    """Mark a record (system, entity, source id) deleted in its source, keeping its last payload with ``stone``
    (who/when/why) under :data:`TOMBSTONE_KEY`; False when the hub has no snapshot of it or it is marked."""
    return _set_deleted(conn, record, {**stone}, now)


def revive(conn: Connection, record: tuple[str, str, str], *, now: datetime | None = None) -> bool:
    """Undo :func:`tombstone` (the record is back in its source); False when it was not marked deleted."""
    return _set_deleted(conn, record, None, now)


def deleted_ids(conn: Connection, system: str, entity: str, *, limit: int = 1000) -> list[str]:
    """Source ids of records marked deleted (at most ``limit``, in id order): candidates for a restore."""
    query = (
        select(snapshot.c.source_id)
        .where(snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(True))
        .order_by(snapshot.c.source_id)
        .limit(limit)
    )
    return [str(r) for r in conn.execute(query).scalars()]


def _set_deleted(
    conn: Connection, key: tuple[str, str, str], stone: dict[str, Any] | None, now: datetime | None
) -> bool:
    where = (snapshot.c.system == key[0], snapshot.c.entity == key[1], snapshot.c.source_id == key[2])
    row = conn.execute(select(snapshot.c.payload, snapshot.c.deleted).where(*where)).first()
    if row is None or bool(row.deleted) == (stone is not None):
        return False
    payload = {k: v for k, v in dict(row.payload or {}).items() if k != TOMBSTONE_KEY}
    if stone is not None:
        payload[TOMBSTONE_KEY] = stone
    conn.execute(
        update(snapshot)
        .where(*where)
        .values(deleted=stone is not None, payload=payload, last_seen_at=_now(now))
    )
    return True


# ---------------------------------------------------------------- xref


@dataclass(frozen=True)
class Link:
    id: int
    link_type: str
    crm_type: str
    crm_id: str | None
    oa_type: str
    oa_id: str | None
    oa_uuid: str | None
    state: dict[str, Any] | None
    dictionary_version: str
    created_at: datetime
    updated_at: datetime
    run_id: str | None


def _link(row: Row[Any]) -> Link:
    m = row._mapping
    return record_of(Link, m, id=int(m["id"]))


def _link_filter(
    link_type: str | None, crm_id: str | None, oa_id: str | None, oa_uuid: str | None
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if link_type is not None:
        clauses.append(xref.c.link_type == link_type)
    if crm_id is not None:
        clauses.append(xref.c.crm_id == crm_id)
    if oa_id is not None:
        clauses.append(xref.c.oa_id == oa_id)
    if oa_uuid is not None:
        clauses.append(xref.c.oa_uuid == oa_uuid)
    return clauses


def links(
    conn: Connection,
    link_type: str | None = None,
    *,
    crm_id: str | None = None,
    oa_id: str | None = None,
    oa_uuid: str | None = None,
    limit: int | None = None,
) -> list[Link]:
    """Links matching every given criterion, most recently updated first."""
    query = (
        select(xref)
        .where(*_link_filter(link_type, crm_id, oa_id, oa_uuid))
        .order_by(xref.c.updated_at.desc(), xref.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [_link(row) for row in conn.execute(query)]


def find_link(
    conn: Connection,
    link_type: str,
    crm_id: str | None = None,
    oa_id: str | None = None,
    oa_uuid: str | None = None,
) -> Link | None:
    """The most recently updated link of ``link_type`` matching the given ids."""
    if crm_id is None and oa_id is None and oa_uuid is None:
        raise StoreError("find_link needs crm_id, oa_id or oa_uuid")
    found = links(conn, link_type, crm_id=crm_id, oa_id=oa_id, oa_uuid=oa_uuid, limit=1)
    return found[0] if found else None


def _matching_link_id(
    conn: Connection, link_type: str, crm_id: str | None, oa_id: str | None, oa_uuid: str | None
) -> int | None:
    """The row a save should update: the same pair, or a half-link this save completes."""

    def same(column: Any, value: str | None) -> ColumnElement[bool]:
        return column.is_(None) if value is None else column == value

    def compatible(column: Any, value: str | None) -> ColumnElement[bool]:
        return true() if value is None else or_(column.is_(None), column == value)

    candidates: list[ColumnElement[bool]] = [and_(same(xref.c.crm_id, crm_id), same(xref.c.oa_id, oa_id))]
    if oa_uuid is not None:
        # A link first saved with one side missing (and the idempotency uuid) is completed in place.
        candidates.append(
            and_(
                xref.c.oa_uuid == oa_uuid, compatible(xref.c.crm_id, crm_id), compatible(xref.c.oa_id, oa_id)
            )
        )
    for candidate in candidates:
        found = conn.execute(
            select(xref.c.id).where(xref.c.link_type == link_type, candidate).order_by(xref.c.id).limit(1)
        ).scalar()
        if found is not None:
            return int(found)
    return None


def save_link(
    conn: Connection,
    link_type: str,
    link: NewLink,
    *,
    dictionary_version: str,
    run_id: str | None = None,
    now: datetime | None = None,
) -> Link:
    """Create or update the link (idempotent on link_type + crm_id + oa_id).

    ``link.state`` replaces the stored state when given (None keeps it). A link
    saved earlier with one side missing and the same ``oa_uuid`` is completed
    rather than duplicated.
    """
    crm_id, oa_id, oa_uuid = link.crm_id, link.oa_id, link.oa_uuid
    if crm_id is None and oa_id is None:
        raise StoreError("save_link needs crm_id or oa_id")
    at = _now(now)
    values: dict[str, Any] = {
        "crm_type": link.crm_type,
        "oa_type": link.oa_type,
        "dictionary_version": dictionary_version,
        "updated_at": at,
        "run_id": run_id,
    }
    if link.state is not None:
        values["state"] = dict(link.state)
    existing = _matching_link_id(conn, link_type, crm_id, oa_id, oa_uuid)
    if existing is not None:
        values.update(crm_id=crm_id if crm_id is not None else xref.c.crm_id)
        values.update(oa_id=oa_id if oa_id is not None else xref.c.oa_id)
        if oa_uuid is not None:
            values["oa_uuid"] = oa_uuid
        conn.execute(update(xref).where(xref.c.id == existing).values(**values))
        link_id = existing
    else:
        values.update(link_type=link_type, crm_id=crm_id, oa_id=oa_id, oa_uuid=oa_uuid, created_at=at)
        link_id = _insert_link(conn, values)
    row = conn.execute(select(xref).where(xref.c.id == link_id)).one()
    return _link(row)


def _insert_link(conn: Connection, values: Mapping[str, Any]) -> int:
    """Insert a new link; two savers racing on the same complete pair end up on one row. Returns its id."""
    stmt = _insert(conn, xref).values(**{"state": None, **values})
    replaced = ("crm_type", "oa_type", "dictionary_version", "updated_at", "run_id", "state")
    update_set = _new_values(stmt, *(replaced if "state" in values else replaced[:-1]))
    update_set["oa_uuid"] = func.coalesce(stmt.excluded.oa_uuid, xref.c.oa_uuid)
    stmt = stmt.on_conflict_do_update(
        index_elements=[xref.c.link_type, xref.c.crm_id, xref.c.oa_id], set_=update_set
    ).returning(xref.c.id)
    return int(conn.execute(stmt).scalar_one())


# ---------------------------------------------------------------- pending changes (debounce)


@dataclass(frozen=True)
class PendingChange:
    direction: str
    entity: str
    source_id: str
    content_hash: str
    first_seen_at: datetime
    last_seen_at: datetime
    due_at: datetime
    changes: int
    attempts: int


class PendingKey(NamedTuple):
    """Identifies a pending change; with ``content_hash`` only that state is completed."""

    entity: str
    source_id: str
    content_hash: str | None = None


def _pending(row: Row[Any]) -> PendingChange:
    m = row._mapping
    return record_of(PendingChange, m, changes=int(m["changes"]), attempts=int(m["attempts"]))


def debounce_due(
    first_seen: datetime, last_seen: datetime, quiet_seconds: float, max_delay_seconds: float
) -> datetime:
    """When a change is sent: after a quiet window, but never later than max delay after the first change."""
    return min(
        last_seen + timedelta(seconds=quiet_seconds), first_seen + timedelta(seconds=max_delay_seconds)
    )


def enqueue_changes(
    conn: Connection,
    direction: str,
    items: Sequence[tuple[str, str, str]],
    now: datetime,
    quiet_seconds: float,
    max_delay_seconds: float,
) -> int:
    """Record changed records ``(entity, source_id, content_hash)`` for debounced sending.

    A new change starts the clock (first seen = now); a further change keeps
    the first-seen time, moves last seen and the due time and counts one more
    change. The same content hash again (a re-read, a retried task) changes
    nothing, so a retry never postpones a send. Returns the number of records
    whose pending state changed.
    """
    at = _now(now)
    latest: dict[tuple[str, str], str] = {}
    for entity, source_id, content_hash in items:
        latest[(entity, source_id)] = content_hash
    if not latest:
        return 0
    stored = _stored_pending(conn, direction, latest)
    rows: list[dict[str, Any]] = []
    for (entity, source_id), content_hash in latest.items():
        old = stored.get((entity, source_id))
        if old is not None and old.content_hash == content_hash:
            continue
        first_seen = old.first_seen_at if old is not None else at
        last_seen = max(at, old.last_seen_at) if old is not None else at
        rows.append(
            {
                "direction": direction,
                "entity": entity,
                "source_id": source_id,
                "content_hash": content_hash,
                "first_seen_at": first_seen,
                "last_seen_at": last_seen,
                "due_at": debounce_due(first_seen, last_seen, quiet_seconds, max_delay_seconds),
                "changes": (old.changes + 1) if old is not None else 1,
                "attempts": old.attempts if old is not None else 0,
            }
        )
    _write_pending(conn, rows)
    return len(rows)


def _stored_pending(
    conn: Connection, direction: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Row[Any]]:
    """The queued rows of these ``(entity, source_id)`` keys, one SELECT per entity and batch."""
    by_entity: dict[str, list[str]] = {}
    for entity, source_id in keys:
        by_entity.setdefault(entity, []).append(source_id)
    stored: dict[tuple[str, str], Row[Any]] = {}
    for entity, ids in by_entity.items():
        query = select(pending_change).where(
            pending_change.c.direction == direction, pending_change.c.entity == entity
        )
        for row in _rows_in(conn, query, pending_change.c.source_id, ids):
            stored[(row.entity, row.source_id)] = row
    return stored


def _write_pending(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert queued changes; ``attempts`` and ``first_seen_at`` of a queued row stay as they are."""
    if not rows:
        return
    stmt = _insert(conn, pending_change)
    stmt = stmt.on_conflict_do_update(
        index_elements=[pending_change.c.direction, pending_change.c.entity, pending_change.c.source_id],
        set_=_new_values(stmt, "content_hash", "last_seen_at", "due_at", "changes"),
    )
    for chunk in chunked(rows, BATCH):
        conn.execute(stmt, chunk)


def enqueue_change(
    conn: Connection,
    direction: str,
    key: PendingKey,
    now: datetime,
    quiet_seconds: float,
    max_delay_seconds: float,
) -> PendingChange:
    """One record's change (``key`` with its content hash) into the debounce queue (see :func:`enqueue_changes`);
    returns its pending state."""
    record = (key.entity, key.source_id)
    enqueue_changes(
        conn, direction, [(*record, key.content_hash or "")], now, quiet_seconds, max_delay_seconds
    )
    return _pending(_stored_pending(conn, direction, [record])[record])


def due_changes(conn: Connection, direction: str, now: datetime, limit: int = BATCH) -> list[PendingChange]:
    """Changes whose quiet window (or max delay) has passed, the longest-waiting first."""
    rows = conn.execute(
        select(pending_change)
        .where(pending_change.c.direction == direction, pending_change.c.due_at <= _now(now))
        .order_by(pending_change.c.due_at, pending_change.c.first_seen_at, pending_change.c.source_id)
        .limit(limit)
    )
    return [_pending(row) for row in rows]


def pending_changes(conn: Connection, direction: str | None = None) -> list[PendingChange]:
    """Every queued change (due or not), for the UI and tests."""
    query = select(pending_change).order_by(pending_change.c.due_at)
    if direction is not None:
        query = query.where(pending_change.c.direction == direction)
    return [_pending(row) for row in conn.execute(query)]


def complete_changes(conn: Connection, direction: str, keys: Iterable[PendingKey | tuple[Any, ...]]) -> int:
    """Remove sent changes. A key with a content hash only removes that state, so a
    change that arrived while the record was being sent stays queued. Returns rows removed."""
    with_hash: list[tuple[str, str, str]] = []
    without_hash: list[tuple[str, str]] = []
    for raw in keys:
        key = PendingKey(*raw)
        if key.content_hash is None:
            without_hash.append((key.entity, key.source_id))
        else:
            with_hash.append((key.entity, key.source_id, key.content_hash))
    c = pending_change.c
    statement = delete(pending_change).where(c.direction == direction)
    return _count_in(conn, statement, tuple_(c.entity, c.source_id, c.content_hash), with_hash) + _count_in(
        conn, statement, tuple_(c.entity, c.source_id), without_hash
    )


def defer_change(
    conn: Connection,
    direction: str,
    entity: str,
    source_id: str,
    now: datetime,
    delay_seconds: float,
) -> PendingChange | None:
    """Try a change again later (e.g. after a 5xx): one more attempt, due ``delay_seconds`` from now."""
    where = (
        pending_change.c.direction == direction,
        pending_change.c.entity == entity,
        pending_change.c.source_id == source_id,
    )
    result = conn.execute(
        update(pending_change)
        .where(*where)
        .values(attempts=pending_change.c.attempts + 1, due_at=_now(now) + timedelta(seconds=delay_seconds))
    )
    if result.rowcount == 0:
        return None
    return _pending(conn.execute(select(pending_change).where(*where)).one())


# ---------------------------------------------------------------- quarantine


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    direction: str
    system: str
    entity: str
    source_id: str
    reason_code: str
    field: str | None
    message: str
    payload: dict[str, Any] | None
    content_hash: str | None
    department: str | None
    data_owner: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    attempts: int
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


def _quarantine(row: Row[Any]) -> QuarantineEntry:
    m = row._mapping
    return record_of(QuarantineEntry, m, id=int(m["id"]), attempts=int(m["attempts"]))


def open_key(direction: str, entity: str, source_id: str) -> str:
    return _fit(f"{direction}:{entity}:{source_id}", 160)


def _bounded_payload(payload: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The record as read, unless it is too large to keep (hostile input): then its field names."""
    if payload is None:
        return None
    data = dict(payload)
    size = len(orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS))
    if size <= MAX_QUARANTINE_PAYLOAD:
        return data
    return {"_truncated": True, "_bytes": size, "_fields": [str(k)[:60] for k in list(data)[:200]]}


@dataclass(frozen=True)
class QuarantineItem:
    """A record to quarantine and why: :func:`quarantine_record`'s one argument besides the run."""

    direction: str
    system: str
    entity: str
    source_id: str
    reason_code: str
    message: str
    field: str | None = None
    payload: Mapping[str, Any] | None = None
    content_hash: str | None = None
    department: str | None = None
    data_owner: str | None = None
    dictionary_version: str | None = None


def quarantine_record(
    conn: Connection, ctx: RunContext, item: QuarantineItem, *, now: datetime | None = None
) -> int:
    """Put a record in quarantine (audited); returns the entry id.

    At most one open entry per (direction, entity, source_id): quarantining it
    again updates that entry (reason, message, payload, last seen) and counts
    one more attempt.
    """
    if item.reason_code not in REASON_CODES:
        raise StoreError(
            f"unknown quarantine reason {item.reason_code!r}; add it to REASON_CODES and the docs"
        )
    if item.direction not in QUARANTINE_DIRECTIONS:
        raise StoreError(f"unknown quarantine direction {item.direction!r}")
    at = _now(now)
    source_id = _fit(str(item.source_id), 64)
    values = {
        "open_key": open_key(item.direction, item.entity, source_id),
        "direction": item.direction,
        "system": item.system,
        "entity": item.entity,
        "source_id": source_id,
        "reason_code": item.reason_code,
        "field": _fit_opt(item.field, 60),
        "message": item.message,
        "payload": _bounded_payload(item.payload),
        "content_hash": item.content_hash,
        "department": _fit_opt(item.department, 30),
        "data_owner": _fit_opt(item.data_owner, 64),
        "first_seen_at": at,
        "last_seen_at": at,
        "attempts": 1,
    }
    entry_id = _upsert_open_entry(conn, values)
    event = audit.AuditEvent(
        "quarantine",
        item.system,
        item.entity,
        {"source_id": source_id, "quarantine_id": entry_id},
        [item.field] if item.field else [],
        "quarantined",
        detail=item.reason_code,
        dictionary_version=item.dictionary_version,
    )
    audit.record(conn, ctx, event)
    return entry_id


def _upsert_open_entry(conn: Connection, values: Mapping[str, Any]) -> int:
    """Insert the entry, or update the record's open one (one more attempt); returns its id."""
    stmt = _insert(conn, quarantine).values(**values)
    replaced = ("reason_code", "field", "message", "payload", "content_hash", "department", "data_owner")
    stmt = stmt.on_conflict_do_update(
        index_elements=[quarantine.c.open_key],
        set_={**_new_values(stmt, *replaced, "last_seen_at"), "attempts": quarantine.c.attempts + 1},
    ).returning(quarantine.c.id)
    return int(conn.execute(stmt).scalar_one())


def _entry_event(entry: QuarantineEntry, operation: str, outcome: str, detail: str) -> audit.AuditEvent:
    """The audit entry of a decision on a stored quarantine entry (fixed, released)."""
    return audit.AuditEvent(
        operation,
        entry.system,
        entry.entity,
        {"source_id": entry.source_id, "quarantine_id": entry.id},
        [entry.field] if entry.field else [],
        outcome,
        detail=detail,
    )


def get_quarantine(conn: Connection, quarantine_id: int) -> QuarantineEntry | None:
    row = conn.execute(select(quarantine).where(quarantine.c.id == quarantine_id)).first()
    return _quarantine(row) if row is not None else None


def open_quarantine(conn: Connection, direction: str, entity: str, source_id: str) -> QuarantineEntry | None:
    """The open entry of a record, if any."""
    key = open_key(direction, entity, _fit(str(source_id), 64))
    row = conn.execute(select(quarantine).where(quarantine.c.open_key == key)).first()
    return _quarantine(row) if row is not None else None


def _close(conn: Connection, entry_id: int, at: datetime, by: str, resolution: str) -> bool:
    result = conn.execute(
        update(quarantine)
        .where(quarantine.c.id == entry_id, quarantine.c.resolved_at.is_(None))
        .values(resolved_at=at, resolved_by=_fit(by, 120), resolution=resolution, open_key=None)
    )
    return result.rowcount == 1


def resolve_if_fixed(
    conn: Connection,
    direction: str,
    entity: str,
    source_id: str,
    content_hash: str,
    *,
    ctx: RunContext | None = None,
    now: datetime | None = None,
) -> bool:
    """Resolve the record's open entry as ``fixed`` when the source has changed since.

    Returns True when an entry was resolved: the caller then processes the
    record again (and quarantines it anew if it is still wrong). An entry
    stored without a content hash cannot be compared and waits for a release.
    Audited when ``ctx`` is given.
    """
    entry = open_quarantine(conn, direction, entity, source_id)
    if entry is None or entry.content_hash is None or entry.content_hash == content_hash:
        return False
    by = ctx.principal if ctx is not None else "bridge"
    if not _close(conn, entry.id, _now(now), by, "fixed"):
        return False
    if ctx is not None:
        audit.record(conn, ctx, _entry_event(entry, "quarantine_fixed", "resolved", entry.reason_code))
    return True


def release(
    conn: Connection,
    ctx: RunContext,
    quarantine_id: int,
    released_by: str,
    *,
    now: datetime | None = None,
) -> QuarantineEntry:
    """Release an open entry on a person's decision (audited); the next sync retries the record.

    For the sync directions the record is queued as a pending change that is
    due at once. Raises :class:`QuarantineNotFound` or
    :class:`QuarantineAlreadyResolved`.
    """
    if not released_by or not released_by.strip():
        raise StoreError("release needs the name of the person who decided it (--by)")
    at = _now(now)
    query = select(quarantine).where(quarantine.c.id == quarantine_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise QuarantineNotFound(f"no quarantine entry {quarantine_id}")
    entry = _quarantine(row)
    if not entry.is_open or not _close(conn, entry.id, at, released_by.strip(), "released"):
        current = get_quarantine(conn, quarantine_id)
        raise QuarantineAlreadyResolved(current or entry)
    if entry.direction in SYNC_DIRECTIONS:
        snap = get_snapshot(conn, entry.system, entry.entity, entry.source_id)
        content_hash = snap.content_hash if snap is not None else (entry.content_hash or "")
        enqueue_change(
            conn, entry.direction, PendingKey(entry.entity, entry.source_id, content_hash), at, 0, 0
        )
    audit.record(
        conn, ctx, _entry_event(entry, "quarantine_release", "released", f"released_by={released_by.strip()}")
    )
    released = get_quarantine(conn, quarantine_id)
    assert released is not None
    return released


@dataclass(frozen=True)
class QuarantineFilter:
    """Which quarantine entries to list or count: every given criterion must match (None = any)."""

    reason: str | None = None
    department: str | None = None
    data_owner: str | None = None
    entity: str | None = None
    direction: str | None = None
    open_only: bool = True

    def clauses(self) -> list[ColumnElement[bool]]:
        wanted = {
            quarantine.c.reason_code: self.reason,
            quarantine.c.department: self.department,
            quarantine.c.data_owner: self.data_owner,
            quarantine.c.entity: self.entity,
            quarantine.c.direction: self.direction,
        }
        clauses: list[ColumnElement[bool]] = [
            column == value for column, value in wanted.items() if value is not None
        ]
        if self.open_only:
            clauses.append(quarantine.c.resolved_at.is_(None))
        return clauses


OPEN_ENTRIES = QuarantineFilter()


def list_quarantine(
    conn: Connection, where: QuarantineFilter = OPEN_ENTRIES, *, limit: int = 100, offset: int = 0
) -> list[QuarantineEntry]:
    """Quarantine entries matching ``where``, most recently seen first."""
    query = (
        select(quarantine)
        .where(*where.clauses())
        .order_by(quarantine.c.last_seen_at.desc(), quarantine.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_quarantine(row) for row in conn.execute(query)]


def count_quarantine(conn: Connection, where: QuarantineFilter = OPEN_ENTRIES) -> int:
    """How many entries :func:`list_quarantine` would page through."""
    query = select(func.count()).select_from(quarantine).where(*where.clauses())
    return int(conn.execute(query).scalar_one())


def quarantine_backlog(conn: Connection) -> dict[str, int]:
    """Open entries per reason code."""
    rows = conn.execute(
        select(quarantine.c.reason_code, func.count())
        .where(quarantine.c.resolved_at.is_(None))
        .group_by(quarantine.c.reason_code)
        .order_by(quarantine.c.reason_code)
    )
    return {reason: int(count) for reason, count in rows}


# ---------------------------------------------------------------- run summaries


@dataclass(frozen=True)
class RunSummary:
    id: int
    dag_id: str
    run_id: str
    task_id: str | None
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    watermarks: dict[str, Any] | None
    message: str | None


def _run(row: Row[Any]) -> RunSummary:
    m = row._mapping
    return record_of(RunSummary, m, id=int(m["id"]), counts=dict(m["counts"] or {}))


def start_run(conn: Connection, ctx: RunContext, kind: str, *, now: datetime | None = None) -> int:
    """Open a run summary (status ``running``); returns its id for :func:`finish_run`."""
    stmt = _insert(conn, run_summary).values(
        dag_id=ctx.dag_id or "local",
        run_id=ctx.run_id or "local",
        task_id=ctx.task_id,
        kind=kind,
        started_at=_now(now),
        status="running",
        counts={},
    )
    return int(conn.execute(stmt.returning(run_summary.c.id)).scalar_one())


def finish_run(
    conn: Connection,
    run_pk: int,
    status: str,
    counts: Mapping[str, Any],
    watermarks: Mapping[str, Any] | None = None,
    message: str | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Close a run summary with what the run did."""
    if status not in RUN_STATUSES:
        raise StoreError(f"run status must be one of {sorted(RUN_STATUSES)}, got {status!r}")
    result = conn.execute(
        update(run_summary)
        .where(run_summary.c.id == run_pk)
        .values(
            status=status,
            finished_at=_now(now),
            counts=dict(counts),
            watermarks=dict(watermarks) if watermarks is not None else None,
            message=message,
        )
    )
    if result.rowcount != 1:
        raise StoreError(f"no run summary {run_pk}")


def recent_runs(conn: Connection, kind: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The latest run summaries, newest first."""
    query = (
        select(run_summary).order_by(run_summary.c.started_at.desc(), run_summary.c.id.desc()).limit(limit)
    )
    if kind is not None:
        query = query.where(run_summary.c.kind == kind)
    return [_run(row) for row in conn.execute(query)]


# ---------------------------------------------------------------- leases


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


def get_lease(conn: Connection, name: str) -> Lease | None:
    row = conn.execute(select(lease).where(lease.c.name == name)).first()
    if row is None:
        return None
    return Lease(row.name, row.holder, row.acquired_at, row.expires_at)


def acquire_lease(
    conn: Connection, name: str, holder: str, ttl_seconds: float, *, now: datetime | None = None
) -> bool:
    """Take the lease ``name`` if it is free, expired or already ours (then it is extended).

    Commit right after: the lease protects work in other transactions.
    """
    at = _now(now)
    stmt = _insert(conn, lease).values(
        name=name, holder=holder, acquired_at=at, expires_at=at + timedelta(seconds=ttl_seconds)
    )
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[lease.c.name],
        set_={
            "holder": excluded.holder,
            "acquired_at": case(
                (lease.c.holder == excluded.holder, lease.c.acquired_at), else_=excluded.acquired_at
            ),
            "expires_at": excluded.expires_at,
        },
        where=or_(lease.c.holder == excluded.holder, lease.c.expires_at <= excluded.acquired_at),
    )
    conn.execute(stmt)
    current = get_lease(conn, name)
    return current is not None and current.holder == holder


def renew_lease(
    conn: Connection, name: str, holder: str, ttl_seconds: float, *, now: datetime | None = None
) -> bool:
    """Extend our lease; False when someone else holds it now (stop working)."""
    result = conn.execute(
        update(lease)
        .where(lease.c.name == name, lease.c.holder == holder)
        .values(expires_at=_now(now) + timedelta(seconds=ttl_seconds))
    )
    return result.rowcount == 1


def release_lease(conn: Connection, name: str, holder: str) -> bool:
    """Give the lease up; False when it was not ours (any more)."""
    return conn.execute(delete(lease).where(lease.c.name == name, lease.c.holder == holder)).rowcount == 1


# ---------------------------------------------------------------- batched lookups (sync engine)
# The sync engine reads state for a page or a run's worth of records at once:
# one query per BATCH ids instead of one per record.


def _links_by(
    conn: Connection, link_type: str, side: Literal["crm_id", "oa_id"], ids: Iterable[str]
) -> dict[str, list[Link]]:
    """Links of ``link_type`` per id of one side, most recently updated first; ids without links are absent."""
    query = (
        select(xref).where(xref.c.link_type == link_type).order_by(xref.c.updated_at.desc(), xref.c.id.desc())
    )
    found: dict[str, list[Link]] = {}
    for row in _rows_in(conn, query, xref.c[side], list(dict.fromkeys(str(i) for i in ids))):
        link = _link(row)
        found.setdefault(str(getattr(link, side)), []).append(link)
    return found


def links_for_crm_ids(conn: Connection, link_type: str, crm_ids: Iterable[str]) -> dict[str, list[Link]]:
    """Links of ``link_type`` per CRM id, most recently updated first; ids without links are absent."""
    return _links_by(conn, link_type, "crm_id", crm_ids)


def links_for_oa_ids(conn: Connection, link_type: str, oa_ids: Iterable[str]) -> dict[str, list[Link]]:
    """Links of ``link_type`` per OA id, most recently updated first; ids without links are absent."""
    return _links_by(conn, link_type, "oa_id", oa_ids)


def links_with_state(
    conn: Connection, link_type: str, key: str, value: str, limit: int = BATCH
) -> list[Link]:
    """Links whose ``state[key]`` is the string ``value`` (e.g. write-backs still to do), oldest first."""
    query = (
        select(xref)
        .where(xref.c.link_type == link_type, xref.c.state[key].as_string() == value)
        .order_by(xref.c.updated_at, xref.c.id)
        .limit(limit)
    )
    return [_link(row) for row in conn.execute(query)]


def open_quarantine_for(
    conn: Connection, direction: str, entity: str, source_ids: Iterable[str]
) -> dict[str, QuarantineEntry]:
    """The open entries of these records (by source id); records without one are absent."""
    keys = {open_key(direction, entity, _fit(str(i), 64)): str(i) for i in source_ids}
    found: dict[str, QuarantineEntry] = {}
    for row in _rows_in(conn, select(quarantine), quarantine.c.open_key, list(keys)):
        entry = _quarantine(row)
        found[keys.get(open_key(direction, entity, entry.source_id), entry.source_id)] = entry
    return found


def snapshots_by_field(
    conn: Connection, system: str, entity: str, field: str, values: Iterable[str]
) -> dict[str, list[Snapshot]]:
    """Live snapshots whose canonical ``payload[field]`` is one of ``values`` (e.g. the contacts of
    some companies), grouped by that value, oldest source id first. Not indexed: meant for small
    value sets per call."""
    query = (
        select(snapshot)
        .where(snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(False))
        .order_by(snapshot.c.source_id)
    )
    column = snapshot.c.payload[field].as_string()
    found: dict[str, list[Snapshot]] = {}
    for row in _rows_in(conn, query, column, list(dict.fromkeys(str(v) for v in values))):
        snap = _snapshot(row)
        found.setdefault(str(snap.payload.get(field)), []).append(snap)
    return found


@dataclass(frozen=True)
class InstanceQuery:
    """Which staged OA instances of one form :func:`oa_instances` returns, by their canonical JSON fields:
    ``codes`` (deleted or not); else the live ones (not deleted, status not ``closed_status``), narrowed to
    those in ``open_status`` or modified since ``modified_since_ms``, to those created in ``created_between``
    (canonical times are UTC ISO text of one shape, so a range is a text comparison), or to the oldest."""

    form: str
    codes: Sequence[str] | None = None
    closed_status: str = "DELETED"
    open_status: str | None = None
    modified_since_ms: int | None = None
    created_between: tuple[str, str] | None = None
    oldest_only: bool = False


@dataclass(frozen=True)
class StagedInstance:
    """An OA instance as staged: code, creation and decision times (canonical text), approval status."""

    code: str
    created_at: str | None
    status: str | None
    decided_at: str | None


def oa_instances(conn: Connection, query: InstanceQuery) -> list[StagedInstance]:
    """The staged OA instances :class:`InstanceQuery` selects (the OA → CRM discovery's view of the hub)."""
    payload = snapshot.c.payload
    created, status = payload["created_at"].as_string(), payload["approval_status"].as_string()
    columns = (snapshot.c.source_id, created, status, payload["decided_at"].as_string())
    where: list[ColumnElement[bool]] = [snapshot.c.system == "oa", snapshot.c.entity == query.form]
    if query.codes is not None:
        wanted = list(dict.fromkeys(query.codes))
        rows: list[Any] = list(_rows_in(conn, select(*columns).where(*where), snapshot.c.source_id, wanted))
    else:
        where += [snapshot.c.deleted.is_(False), status != query.closed_status]
        if query.open_status is not None and query.modified_since_ms is not None:
            where.append(
                or_(status == query.open_status, snapshot.c.source_modified_ms >= query.modified_since_ms)
            )
        if query.created_between is not None:
            where += [created >= query.created_between[0], created <= query.created_between[1]]
        stmt = select(*columns).where(*where)
        if query.oldest_only:
            stmt = stmt.where(created.is_not(None)).order_by(created).limit(1)
        rows = list(conn.execute(stmt))
    return [
        StagedInstance(str(code), made, None if st is None else str(st), decided)
        for code, made, st, decided in rows
    ]


@dataclass(frozen=True)
class NewLink:
    """A link to insert with :func:`add_links` (one side may still be missing: an intent with its uuid)."""

    crm_type: str
    crm_id: str | None
    oa_type: str
    oa_id: str | None = None
    oa_uuid: str | None = None
    state: Mapping[str, Any] | None = None


def add_links(
    conn: Connection,
    link_type: str,
    items: Sequence[NewLink],
    *,
    dictionary_version: str,
    run_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Insert many new links in one statement (the caller knows they do not exist yet, e.g. from
    :func:`links_for_crm_ids`); returns the number inserted. Use :func:`save_link` to upsert one."""
    if not items:
        return 0
    at = _now(now)
    rows = [
        {
            "link_type": link_type,
            "crm_type": item.crm_type,
            "crm_id": item.crm_id,
            "oa_type": item.oa_type,
            "oa_id": item.oa_id,
            "oa_uuid": item.oa_uuid,
            "state": dict(item.state) if item.state is not None else None,
            "dictionary_version": dictionary_version,
            "created_at": at,
            "updated_at": at,
            "run_id": run_id,
        }
        for item in items
    ]
    for chunk in chunked(rows, BATCH):
        conn.execute(_insert(conn, xref), chunk)
    return len(rows)


def set_link_states(
    conn: Connection,
    states: Mapping[int, Mapping[str, Any]],
    *,
    oa_ids: Mapping[int, str] | None = None,
    dictionary_version: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Replace the state of many links by link id (and complete their OA id when given), one
    executemany per kind of update; returns the number of rows updated."""
    if not states:
        return 0
    at = _now(now)
    oa_ids = oa_ids or {}
    values: dict[str, Any] = {"state": bindparam("b_state"), "updated_at": at, "run_id": run_id}
    if dictionary_version is not None:
        values["dictionary_version"] = dictionary_version
    updated = 0
    plain = [{"b_id": i, "b_state": dict(state)} for i, state in states.items() if i not in oa_ids]
    completed = [
        {"b_id": i, "b_state": dict(state), "b_oa_id": oa_ids[i]}
        for i, state in states.items()
        if i in oa_ids
    ]
    if plain:
        updated += conn.execute(
            update(xref).where(xref.c.id == bindparam("b_id")).values(**values), plain
        ).rowcount
    if completed:
        stmt = update(xref).where(xref.c.id == bindparam("b_id")).values(**values, oa_id=bindparam("b_oa_id"))
        updated += conn.execute(stmt, completed).rowcount
    return updated


# ---------------------------------------------------------------- merges in the CRM


def remap_crm_links(
    conn: Connection,
    crm_type: str,
    ids: tuple[str, str],
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> list[Link]:
    """Move the links of an absorbed CRM record (``ids`` = absorbed, survivor) to its survivor; returns the
    moved links. A link the survivor already has (same type and OA id, or both without one) stays where it
    is: the survivor's own wins, nothing is lost, and a rerun moves nothing."""
    absorbed, survivor = ids
    mine = conn.execute(select(xref).where(xref.c.crm_type == crm_type, xref.c.crm_id == absorbed)).all()
    if not mine:
        return []
    held = {
        (row.link_type, row.oa_id)
        for row in conn.execute(
            select(xref.c.link_type, xref.c.oa_id).where(
                xref.c.crm_type == crm_type, xref.c.crm_id == survivor
            )
        )
    }
    moving = [_link(row) for row in mine if (row.link_type, row.oa_id) not in held]
    if moving:
        conn.execute(
            update(xref)
            .where(xref.c.id == bindparam("b_id"))
            .values(crm_id=survivor, updated_at=_now(now), run_id=run_id),
            [{"b_id": link.id} for link in moving],
        )
    return moving


def repoint_snapshots(
    conn: Connection,
    record: tuple[str, str, str],
    ids: tuple[str, str],
    content_hash: Callable[[Mapping[str, Any]], str],
) -> list[str]:
    """Live snapshots (system, entity, field) that point to an absorbed id (``ids`` = absorbed, survivor) point
    to the survivor, their content hash recomputed by ``content_hash(payload)``; returns their source ids."""
    system, entity, field = record
    absorbed, survivor = ids
    found = snapshots_by_field(conn, system, entity, field, [absorbed]).get(absorbed, [])
    for snap in found:
        payload = {**snap.payload, field: survivor}
        conn.execute(
            update(snapshot)
            .where(
                snapshot.c.system == system,
                snapshot.c.entity == entity,
                snapshot.c.source_id == snap.source_id,
            )
            .values(payload=payload, content_hash=content_hash(payload))
        )
    return [snap.source_id for snap in found]

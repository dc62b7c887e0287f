"""The audit log: append-only and hash-chained, so any edit or deletion is detected.

Every write to either system and every quarantine and release gets one entry:
when, which DAG run / task try, the acting principal, the operation, the
system, the record ids, the *names* of the fields written (never their
values), the outcome and the dictionary and policy versions.

Chain: ``hash = sha256(prev_hash + canonical JSON of the entry)`` where the
entry includes its ``seq``. ``audit_head`` (one row) holds the tip; writers
lock it (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite takes the database write
lock first), so writers in different processes still produce one chain. The
lock is held until the caller's transaction commits: audit in short
transactions. :func:`verify` recomputes the chain and compares its end with
the head, which detects edited, deleted, inserted or reordered entries and a
truncated tail. Whoever can rewrite the whole table *and* the head can forge
a consistent chain: keep a copy of the head (``bridge audit verify`` prints
it) outside the database and pass it back as an anchor.

It lives in the hub beside the store, which audits its own quarantine
decisions: the dependency runs one way, ``hub.store`` → ``hub.audit`` →
``hub.schema``, and the sync, the events receiver and the CLI use it from above.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from bridge.context import RunContext
from bridge.hub.rows import record_of
from bridge.hub.schema import audit_head, audit_log

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_ID = 1
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,79}$")
MAX_RECORD_ID = 128
MAX_DETAIL = 200


class AuditError(ValueError):
    """An audit entry that cannot be written as asked (e.g. a record id that is not an id)."""


@dataclass(frozen=True)
class AuditEvent:
    """One entry to write with :func:`record_many`."""

    operation: str
    system: str
    entity: str
    record_ids: Mapping[str, Any]
    fields: Sequence[str]
    outcome: str
    detail: str | None = None
    dictionary_version: str | None = None
    policy_version: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry, as read back."""

    seq: int
    at: datetime
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None
    principal: str
    operation: str
    system: str
    entity: str
    record_ids: dict[str, Any]
    fields: list[str]
    outcome: str
    detail: str | None
    dictionary_version: str | None
    policy_version: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ok, how many entries were checked, and the first problem."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None
    head_seq: int
    head_hash: str


# ---------------------------------------------------------------- hashing (pure)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(entry: Mapping[Any, Any]) -> str:
    """The hashed form of an entry: its content columns, sorted keys, no whitespace."""
    content = {
        "seq": int(entry["seq"]),
        "at": _stamp(entry["at"]),
        "dag_id": entry["dag_id"],
        "run_id": entry["run_id"],
        "task_id": entry["task_id"],
        "try_number": entry["try_number"],
        "principal": entry["principal"],
        "operation": entry["operation"],
        "system": entry["system"],
        "entity": entry["entity"],
        "record_ids": entry["record_ids"],
        "fields": entry["fields"],
        "outcome": entry["outcome"],
        "detail": entry["detail"],
        "dictionary_version": entry["dictionary_version"],
        "policy_version": entry["policy_version"],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, entry: Mapping[Any, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(entry)).encode("utf-8")).hexdigest()


def field_names(fields: Iterable[Any] | Mapping[str, Any]) -> list[str]:
    """Field names only: a mapping contributes its keys; anything not shaped like a name is dropped.

    The audit must never hold field values, and a caller that passes a record
    or a value by mistake must not leak it into an append-only table.
    """
    items: Iterable[Any] = fields.keys() if isinstance(fields, Mapping) else fields
    if isinstance(items, str):
        items = [items]
    names: list[str] = []
    dropped = 0
    for item in items:
        if isinstance(item, str) and FIELD_NAME.match(item):
            if item not in names:
                names.append(item)
        else:
            dropped += 1
    if dropped:
        log.warning("audit: dropped %d entries of 'fields' that are not field names", dropped)
    return names


def clean_record_ids(record_ids: Mapping[str, Any]) -> dict[str, str | int]:
    """Record ids as ``{name: id}``; ids are short scalars, never records or lists."""
    if not isinstance(record_ids, Mapping):
        raise AuditError("record_ids must be a mapping {id_name: id}")
    clean: dict[str, str | int] = {}
    for key, value in record_ids.items():
        if not isinstance(key, str) or not FIELD_NAME.match(key):
            raise AuditError(f"record_ids key {key!r} is not an id name")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise AuditError(f"record_ids[{key!r}] must be a string or an integer id")
        clean[key] = value if isinstance(value, int) else value[:MAX_RECORD_ID]
    return clean


def _short(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _required(name: str, value: str, limit: int) -> str:
    if not value or len(value) > limit:
        raise AuditError(f"audit {name} must be 1..{limit} characters, got {value!r}")
    return value


# ---------------------------------------------------------------- writing


def _lock_head(conn: Connection) -> tuple[int, str]:
    """Lock the chain's tip for this transaction and return (seq, hash)."""
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
    for _attempt in range(2):
        if conn.dialect.name == "sqlite":
            # A write first: takes the database write lock before the head is
            # read, so no other process can move the head in between.
            conn.execute(update(audit_head).where(audit_head.c.id == HEAD_ID).values(seq=audit_head.c.seq))
            row = conn.execute(query).first()
        else:
            row = conn.execute(query.with_for_update()).first()
        if row is not None:
            return int(row.seq), str(row.hash)
        # Tables made without the migration (no genesis row): create it once.
        _insert_genesis(conn)
    raise AuditError("audit_head row is missing and could not be created")


def _insert_genesis(conn: Connection) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        dialect_insert(audit_head)
        .values(id=HEAD_ID, seq=0, hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=[audit_head.c.id])
    )


def record_many(
    conn: Connection, ctx: RunContext, events: Sequence[AuditEvent], *, at: datetime | None = None
) -> list[int]:
    """Append several entries (one chain step each, one head update); returns their seqs."""
    if not events:
        return []
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        raise AuditError("audit time must be timezone-aware")
    principal = _required("principal", ctx.principal, 120)
    prepared: list[dict[str, Any]] = []
    for event in events:
        prepared.append(
            {
                "at": at,
                "dag_id": ctx.dag_id,
                "run_id": ctx.run_id,
                "task_id": ctx.task_id,
                "try_number": ctx.try_number,
                "principal": principal,
                "operation": _required("operation", event.operation, 30),
                "system": _required("system", event.system, 8),
                "entity": _required("entity", event.entity, 40),
                "record_ids": clean_record_ids(event.record_ids),
                "fields": field_names(event.fields),
                "outcome": _required("outcome", event.outcome, 20),
                "detail": _short(event.detail, MAX_DETAIL),
                "dictionary_version": _short(event.dictionary_version, 40),
                "policy_version": _short(event.policy_version, 40),
            }
        )
    seq, prev = _lock_head(conn)
    for entry in prepared:
        seq += 1
        entry["seq"] = seq
        entry["prev_hash"] = prev
        entry["hash"] = prev = entry_hash(prev, entry)
    conn.execute(insert(audit_log), prepared)
    conn.execute(update(audit_head).where(audit_head.c.id == HEAD_ID).values(seq=seq, hash=prev))
    return [entry["seq"] for entry in prepared]


def record(conn: Connection, ctx: RunContext, event: AuditEvent, *, at: datetime | None = None) -> int:
    """Append one entry; returns its seq."""
    return record_many(conn, ctx, [event], at=at)[0]


# ---------------------------------------------------------------- reading


def _entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    return record_of(
        AuditEntry,
        m,
        seq=int(m["seq"]),
        record_ids=dict(m["record_ids"] or {}),
        fields=list(m["fields"] or []),
    )


def head(conn: Connection) -> tuple[int, str]:
    """The chain's tip (seq, hash) without locking it; (0, genesis) for an empty log."""
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)).first()
    return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS_HASH)


def get_entry(conn: Connection, seq: int) -> AuditEntry | None:
    row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).first()
    return _entry(row) if row is not None else None


def tail(conn: Connection, n: int = 20) -> list[AuditEntry]:
    """The last ``n`` entries, oldest first."""
    rows = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(max(n, 0))).all()
    return [_entry(row) for row in reversed(rows)]


def entries_for(conn: Connection, entity: str, record_id: str, limit: int = 100) -> list[AuditEntry]:
    """Entries of one entity whose record ids contain ``record_id`` (newest first); a scan, for people."""
    out: list[AuditEntry] = []
    query = (
        select(audit_log)
        .where(audit_log.c.entity == entity)
        .order_by(audit_log.c.seq.desc())
        .execution_options(yield_per=1000)
    )
    for row in conn.execute(query):
        entry = _entry(row)
        if record_id in {str(v) for v in entry.record_ids.values()}:
            out.append(entry)
            if len(out) >= limit:
                break
    return out


def verify(conn: Connection, anchor: tuple[int, str] | None = None, batch: int = 2000) -> VerifyResult:
    """Recompute the chain from the first entry and compare its end with the head.

    ``anchor`` = (seq, hash) kept outside the database: the entry ``seq`` must
    still carry that hash (a rewritten chain with a new head fails here).
    """
    head_seq, head_hash = head(conn)
    expected_seq, prev, checked = 1, GENESIS_HASH, 0
    anchor_seen = anchor is None or anchor[0] == 0

    def bad(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, problem, head_seq, head_hash)

    query = select(audit_log).order_by(audit_log.c.seq).execution_options(yield_per=batch)
    for row in conn.execute(query):
        m = row._mapping
        seq = int(m["seq"])
        if seq != expected_seq:
            return bad(expected_seq, f"entry {expected_seq} is missing (the next entry is {seq}): deleted")
        if m["prev_hash"] != prev:
            return bad(
                seq,
                f"entry {seq} does not follow entry {seq - 1} (prev_hash differs): "
                "an entry was deleted, inserted or reordered here",
            )
        if entry_hash(prev, m) != m["hash"]:
            return bad(seq, f"entry {seq} does not match its hash: its content was edited")
        if anchor is not None and seq == anchor[0]:
            if m["hash"] != anchor[1]:
                return bad(seq, f"entry {seq} differs from the anchor kept outside the database")
            anchor_seen = True
        prev = m["hash"]
        expected_seq += 1
        checked += 1
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        return bad(
            last_seq + 1,
            f"the log ends at entry {last_seq} but the head is at {head_seq}: entries were removed from the end",
        )
    if last_seq > head_seq:
        return bad(head_seq + 1, f"entries after the head ({head_seq}) were added without the chain's lock")
    if prev != head_hash:
        return bad(last_seq, f"the last entry {last_seq} does not match the head hash")
    if not anchor_seen:
        assert anchor is not None
        return bad(anchor[0], f"the anchored entry {anchor[0]} is not in the log")
    return VerifyResult(True, checked, None, None, head_seq, head_hash)

"""SQLite storage of the OA simulator (SQLAlchemy 2 Core, one connection).

One connection guarded by a lock: the simulator is one process, SQLite
serialises writers anyway, and a single connection keeps reads and writes
consistent without "database is locked" retries. Bulk loads commit in chunks
so a 200,000-instance seed never holds the lock for more than a chunk.

Seeded history rows keep ``timeline_json``/``tasks_json`` empty: the detail
is derived from status and times on read (``sandbox.oa.history``) and stored
the first time an admin action changes the instance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

instances = Table(
    "instances", metadata,
    Column("instance_code", String, primary_key=True),
    Column("approval_code", String, nullable=False),
    Column("uuid", String),
    Column("uuid_norm", String, unique=True),  # lower-case: Feishu's uuid is case-insensitive
    Column("user_id", String, nullable=False),
    Column("open_id", String, nullable=False),
    Column("department_id", String, nullable=False),
    Column("status", String, nullable=False),
    Column("serial_number", String, nullable=False),
    Column("start_ms", Integer, nullable=False),
    Column("end_ms", Integer, nullable=False, default=0),
    Column("updated_ms", Integer, nullable=False),
    Column("form_json", Text, nullable=False),
    Column("request_hash", String),  # of the create request, to tell a replay from a conflict
    Column("tasks_json", Text),
    Column("timeline_json", Text),
    Column("origin", String, nullable=False),  # seed | api | admin
    Index("ix_instances_window", "approval_code", "start_ms", "instance_code"),
    Index("ix_instances_user", "user_id", "start_ms"),
    Index("ix_instances_serial", "serial_number"),
    Index("ix_instances_start", "start_ms", "instance_code"),
)

# Comments on instances (approval v4 instances/{id}/comments); comment_id is Feishu's int64-as-text id.
comments = Table(
    "comments", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("comment_id", String, nullable=False, unique=True),
    Column("instance_code", String, nullable=False),
    Column("user_id", String, nullable=False),
    Column("open_id", String, nullable=False),
    Column("content", Text, nullable=False),
    Column("create_ms", Integer, nullable=False),
    Column("is_delete", Integer, nullable=False, default=0),
    Index("ix_comments_instance", "instance_code", "seq"),
)

users = Table(
    "users", metadata,
    Column("user_id", String, primary_key=True),
    Column("open_id", String, nullable=False, unique=True),
    Column("union_id", String, nullable=False),
    Column("name", String, nullable=False),
    Column("email", String, nullable=False),
    Column("mobile", String, nullable=False),
    Column("department_id", String, nullable=False),
    Column("role", String, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

departments = Table(
    "departments", metadata,
    Column("department_id", String, primary_key=True),
    Column("name", String, nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("approval_code", String, primary_key=True),
)

meta = Table(
    "meta", metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

Row = dict[str, Any]


def _plain(row: Any) -> Row:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's keys are a str subclass orjson refuses)."""
    return {str(k): v for k, v in row.items()}


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536",
                   "PRAGMA temp_store=MEMORY"):
        cur.execute(pragma)
    cur.close()


class Store:
    """All reads and writes of the simulator's database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        event.listen(self.engine, "connect", _pragmas)
        metadata.create_all(self.engine)
        self._conn: Connection = self.engine.connect()
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self._conn.close()
            self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """The connection inside a transaction, under the lock."""
        with self.lock:
            if self._conn.in_transaction():  # nested call from the same thread: join the outer one
                yield self._conn
                return
            with self._conn.begin():
                yield self._conn

    # ------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        with self.tx() as c:
            return c.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as c:
            c.execute(delete(meta).where(meta.c.key == key))
            c.execute(insert(meta).values(key=key, value=value))

    # ------------------------------------------------------------ people
    def replace_people(self, people: Sequence[Row], depts: Sequence[Row]) -> None:
        with self.tx() as c:
            c.execute(delete(users))
            c.execute(delete(departments))
            if people:
                c.execute(insert(users), list(people))
            if depts:
                c.execute(insert(departments), list(depts))

    def all_users(self) -> list[Row]:
        with self.tx() as c:
            return [_plain(r) for r in c.execute(select(users)).mappings()]

    def all_departments(self) -> list[Row]:
        with self.tx() as c:
            return [_plain(r) for r in c.execute(select(departments)).mappings()]

    # ------------------------------------------------------------ instances
    def count_instances(self, approval_code: str | None = None, status: str | None = None) -> int:
        q = select(func.count()).select_from(instances)
        if approval_code:
            q = q.where(instances.c.approval_code == approval_code)
        if status:
            q = q.where(instances.c.status == status)
        with self.tx() as c:
            return int(c.execute(q).scalar_one())

    def insert_instance(self, row: Row) -> None:
        with self.tx() as c:
            c.execute(insert(instances).values(**row))

    def insert_instances(self, rows: Iterable[Row], chunk: int = 5000, ignore_existing: bool = False) -> int:
        """Bulk insert in chunks of ``chunk`` rows, one transaction each. Returns rows inserted."""
        stmt = insert(instances)
        if ignore_existing:
            stmt = stmt.prefix_with("OR IGNORE")
        total = 0
        batch: list[Row] = []

        def flush() -> int:
            with self.tx() as c:
                res = c.execute(stmt, batch)
                return int(res.rowcount) if res.rowcount is not None and res.rowcount >= 0 else len(batch)

        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                total += flush()
                batch = []
        if batch:
            total += flush()
        return total

    def delete_all_instances(self) -> None:
        with self.tx() as c:
            c.execute(delete(instances))
            c.execute(delete(comments))

    # ------------------------------------------------------------ comments
    def add_comment(self, row: Row) -> Row:
        """Store a comment (``comment_id`` derived from its sequence number); returns the stored row."""
        with self.tx() as c:
            seq = int(c.execute(insert(comments).values(**row, comment_id="")).inserted_primary_key[0])
            comment_id = str(7_081_516_627_711_000_000 + seq)
            c.execute(update(comments).where(comments.c.seq == seq).values(comment_id=comment_id))
        return {**row, "seq": seq, "comment_id": comment_id}

    def comments_of(self, instance_code: str, after_seq: int = 0, limit: int | None = None) -> list[Row]:
        """An instance's comments, oldest first, after sequence number ``after_seq``."""
        q = select(comments).where(comments.c.instance_code == instance_code, comments.c.seq > after_seq)
        q = q.order_by(comments.c.seq)
        if limit is not None:
            q = q.limit(limit)
        with self.tx() as c:
            return [_plain(r) for r in c.execute(q).mappings()]

    def get_instance(self, code_or_uuid: str) -> Row | None:
        """By instance code, else by uuid (GET instance accepts either, as Feishu documents)."""
        with self.tx() as c:
            row = c.execute(select(instances).where(instances.c.instance_code == code_or_uuid)).mappings().first()
            if row is None:
                row = c.execute(select(instances).where(instances.c.uuid_norm == code_or_uuid.lower())).mappings().first()
            return _plain(row) if row is not None else None

    def get_by_uuid(self, uuid_norm: str) -> Row | None:
        with self.tx() as c:
            row = c.execute(select(instances).where(instances.c.uuid_norm == uuid_norm)).mappings().first()
            return _plain(row) if row is not None else None

    def update_instance(self, code: str, values: Row) -> None:
        with self.tx() as c:
            c.execute(update(instances).where(instances.c.instance_code == code).values(**values))

    def list_codes(self, approval_code: str, start_ms: int, end_ms: int, after: tuple[int, str] | None,
                   limit: int, visible_before_ms: int | None = None) -> list[tuple[int, str]]:
        """Instance codes created in [start_ms, end_ms] in creation order, keyset after ``after``."""
        q = select(instances.c.start_ms, instances.c.instance_code).where(
            instances.c.approval_code == approval_code,
            instances.c.start_ms >= start_ms, instances.c.start_ms <= end_ms,
        )
        if after is not None:
            q = q.where(tuple_(instances.c.start_ms, instances.c.instance_code) > tuple_(*after))
        if visible_before_ms is not None:
            q = q.where(instances.c.start_ms <= visible_before_ms)
        q = q.order_by(instances.c.start_ms, instances.c.instance_code).limit(limit)
        with self.tx() as c:
            return [(int(r[0]), str(r[1])) for r in c.execute(q)]

    def query(self, *, approval_code: str | None, instance_code: str | None, user_id: str | None,
              statuses: Sequence[str] | None, start_from: int | None, start_to: int | None,
              after: tuple[int, str] | None, limit: int, visible_before_ms: int | None = None,
              ) -> tuple[list[Row], int]:
        """Rows matching every given filter (creation order) and the total count."""
        conds = []
        if approval_code:
            conds.append(instances.c.approval_code == approval_code)
        if instance_code:
            conds.append(instances.c.instance_code == instance_code)
        if user_id:
            conds.append(instances.c.user_id == user_id)
        if statuses:
            conds.append(instances.c.status.in_(list(statuses)))
        if start_from is not None:
            conds.append(instances.c.start_ms >= start_from)
        if start_to is not None:
            conds.append(instances.c.start_ms <= start_to)
        if visible_before_ms is not None:
            conds.append(instances.c.start_ms <= visible_before_ms)
        where = and_(*conds) if conds else None
        q = select(instances)
        cq = select(func.count()).select_from(instances)
        if where is not None:
            q = q.where(where)
            cq = cq.where(where)
        if after is not None:
            q = q.where(tuple_(instances.c.start_ms, instances.c.instance_code) > tuple_(*after))
        q = q.order_by(instances.c.start_ms, instances.c.instance_code).limit(limit)
        with self.tx() as c:
            rows = [_plain(r) for r in c.execute(q).mappings()]
            total = int(c.execute(cq).scalar_one())
        return rows, total

    def dump(self, *, approval_code: str | None, status: str | None, user_id: str | None, uuid: str | None,
             origin: str | None, offset: int, limit: int) -> tuple[list[Row], int]:
        conds = []
        if approval_code:
            conds.append(instances.c.approval_code == approval_code)
        if status:
            conds.append(instances.c.status == status)
        if user_id:
            conds.append(or_(instances.c.user_id == user_id, instances.c.open_id == user_id))
        if uuid:
            conds.append(instances.c.uuid_norm == uuid.lower())
        if origin:
            conds.append(instances.c.origin == origin)
        q = select(instances).order_by(instances.c.start_ms, instances.c.instance_code).offset(offset).limit(limit)
        cq = select(func.count()).select_from(instances)
        if conds:
            q = q.where(and_(*conds))
            cq = cq.where(and_(*conds))
        with self.tx() as c:
            return [_plain(r) for r in c.execute(q).mappings()], int(c.execute(cq).scalar_one())

    def max_serial(self, date_prefix: str) -> str | None:
        """Highest serial number of a day (``YYYYMMDD`` prefix)."""
        q = select(func.max(instances.c.serial_number)).where(
            instances.c.serial_number >= date_prefix, instances.c.serial_number < date_prefix + "\uffff")
        with self.tx() as c:
            return c.execute(q).scalar_one_or_none()

    # ------------------------------------------------------------ subscriptions
    def subscribed(self) -> set[str]:
        with self.tx() as c:
            return {r[0] for r in c.execute(select(subscriptions.c.approval_code))}

    def subscribe(self, approval_code: str) -> bool:
        with self.tx() as c:
            if c.execute(select(subscriptions).where(subscriptions.c.approval_code == approval_code)).first():
                return False
            c.execute(insert(subscriptions).values(approval_code=approval_code))
            return True

    def unsubscribe(self, approval_code: str) -> bool:
        with self.tx() as c:
            return bool(c.execute(delete(subscriptions).where(subscriptions.c.approval_code == approval_code)).rowcount)

    def clear_subscriptions(self) -> None:
        with self.tx() as c:
            c.execute(delete(subscriptions))

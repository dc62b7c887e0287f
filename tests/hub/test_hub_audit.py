"""The hash-chained audit log: writing, reading, tamper detection, concurrent writers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from bridge.context import RunContext
from bridge.hub import audit
from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_head, audit_log

CTX = RunContext("bridge_crm_to_oa", "manual__2026-11-26", "write_oa", 2, "bridge-service@cli_a1b2")
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def write(conn: Connection, n: int, start: int = 0) -> list[int]:
    return [
        audit.record(
            conn,
            CTX,
            audit.AuditEvent(
                "create_instance",
                "oa",
                "project_initiation",
                {"deal_id": f"D{i}", "instance_code": f"I{i}"},
                ["customer_name", "contract_amount"],
                "ok",
                detail=None,
                dictionary_version="2026.11",
                policy_version="p3",
            ),
        )
        for i in range(start, start + n)
    ]


def chain(hub: Engine, n: int = 6) -> None:
    with hub.begin() as conn:
        write(conn, n)


def verify(hub: Engine, **kw: Any) -> audit.VerifyResult:
    with hub.connect() as conn:
        return audit.verify(conn, **kw)


def test_hub_audit_record_and_read_back(hub: Engine) -> None:
    with hub.begin() as conn:
        assert audit.verify(conn).ok
        assert audit.verify(conn).checked == 0
        assert write(conn, 3) == [1, 2, 3]
    with hub.connect() as conn:
        entries = audit.tail(conn, 2)
        assert [e.seq for e in entries] == [2, 3]
        last = entries[-1]
        assert (last.dag_id, last.run_id, last.task_id, last.try_number, last.principal) == (
            "bridge_crm_to_oa",
            "manual__2026-11-26",
            "write_oa",
            2,
            "bridge-service@cli_a1b2",
        )
        assert last.record_ids == {"deal_id": "D2", "instance_code": "I2"}
        assert last.fields == ["customer_name", "contract_amount"]
        assert last.prev_hash == entries[0].hash
        assert last.at.tzinfo is not None
        assert audit.head(conn) == (3, last.hash)
        assert audit.entry_hash(last.prev_hash, last.__dict__) == last.hash
        result = audit.verify(conn)
        assert (result.ok, result.checked, result.head_seq) == (True, 3, 3)
        assert audit.get_entry(conn, 2) == entries[0]
        assert audit.get_entry(conn, 99) is None
        assert [e.seq for e in audit.entries_for(conn, "project_initiation", "D1")] == [2]


def contact_update(fields: Any, record_ids: Any = None, operation: str = "update") -> audit.AuditEvent:
    """An update of contact C1 that names ``fields`` (field names, or by mistake values or a record)."""
    return audit.AuditEvent(operation, "crm", "contact", record_ids or {"contact_id": "C1"}, fields, "ok")


def test_hub_audit_never_stores_values(hub: Engine) -> None:
    with hub.begin() as conn:
        seq = audit.record(
            conn,
            CTX,
            contact_update(["mobile", "13812345678", "zhang.san@example.com", "张三", "email", "mobile"]),
        )
        from_mapping = audit.record(conn, CTX, contact_update({"mobile": "13812345678", "email": "a@b.cn"}))
        with pytest.raises(audit.AuditError):
            audit.record(conn, CTX, contact_update([], {"contact_id": {"mobile": "138"}}))
        with pytest.raises(audit.AuditError):
            audit.record(conn, CTX, contact_update([], {"13812345678": "C1"}))
        with pytest.raises(audit.AuditError):
            audit.record(conn, CTX, contact_update([], operation="x" * 31))
    with hub.connect() as conn:
        assert audit.get_entry(conn, seq).fields == ["mobile", "email"]  # type: ignore[union-attr]
        assert audit.get_entry(conn, from_mapping).fields == ["mobile", "email"]  # type: ignore[union-attr]
        stored = " ".join(str(tuple(row)) for row in conn.execute(select(audit_log)))
        assert "13812345678" not in stored
        assert "example.com" not in stored
        assert "张三" not in stored
        assert audit.verify(conn).ok  # the failed calls left no entry and no head change


def test_hub_audit_record_many_one_step_per_entry(hub: Engine) -> None:
    events = [
        audit.AuditEvent("batch_update", "crm", "deal", {"deal_id": str(i)}, ["stage"], "ok")
        for i in range(1_500)
    ]
    with hub.begin() as conn:
        write(conn, 2)
        seqs = audit.record_many(conn, CTX, events, at=T0)
        assert seqs == list(range(3, 1_503))
        assert audit.record_many(conn, CTX, []) == []
    result = verify(hub)
    assert (result.ok, result.checked, result.head_seq) == (True, 1_502, 1_502)


def test_hub_audit_detects_edited_entry(hub: Engine) -> None:
    chain(hub)
    with hub.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(outcome="failed"))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "edited" in (result.problem or "")


def test_hub_audit_detects_deleted_entry(hub: Engine) -> None:
    chain(hub)
    with hub.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "missing" in (result.problem or "")


def test_hub_audit_detects_deleted_and_renumbered_entry(hub: Engine) -> None:
    chain(hub)
    with hub.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
        for seq in (5, 6):
            conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(seq=seq - 1))
        conn.execute(update(audit_head).values(seq=5))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_hub_audit_detects_inserted_entry(hub: Engine) -> None:
    chain(hub)
    with hub.begin() as conn:
        for seq in (6, 5, 4, 3):  # make room at 3, from the end so the primary key never collides
            conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(seq=seq + 1))
        prev = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 2)).scalar_one()
        forged = {
            "seq": 3,
            "at": T0,
            "dag_id": "x",
            "run_id": "x",
            "task_id": "x",
            "try_number": 1,
            "principal": "bridge",
            "operation": "delete",
            "system": "crm",
            "entity": "deal",
            "record_ids": {"deal_id": "D1"},
            "fields": [],
            "outcome": "ok",
            "detail": None,
            "dictionary_version": None,
            "policy_version": None,
        }
        forged["prev_hash"] = prev
        forged["hash"] = audit.entry_hash(prev, forged)  # a well-formed entry in its own right
        conn.execute(insert(audit_log).values(**forged))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "deleted, inserted or reordered" in (result.problem or "")


def test_hub_audit_detects_reordered_entries(hub: Engine) -> None:
    chain(hub)
    content = [c.name for c in audit_log.columns if c.name != "seq"]
    with hub.begin() as conn:
        two = conn.execute(select(audit_log).where(audit_log.c.seq == 2)).one()._mapping
        three = conn.execute(select(audit_log).where(audit_log.c.seq == 3)).one()._mapping
        # hash is unique: move one row out of the way first.
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(hash="tmp"))
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values({c: two[c] for c in content}))
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values({c: three[c] for c in content}))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_hub_audit_detects_truncated_tail_and_unlocked_append(hub: Engine) -> None:
    chain(hub)
    with hub.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq >= 5))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    assert "removed from the end" in (result.problem or "")
    with hub.begin() as conn:
        # Put the head back in line with the log, then append without moving the head.
        last = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 4)).scalar_one()
        conn.execute(update(audit_head).values(seq=4, hash=last))
        assert audit.verify(conn).ok
        entry = {
            "seq": 5,
            "at": T0,
            "dag_id": None,
            "run_id": None,
            "task_id": None,
            "try_number": None,
            "principal": "intruder",
            "operation": "update",
            "system": "crm",
            "entity": "deal",
            "record_ids": {"deal_id": "D1"},
            "fields": ["amount"],
            "outcome": "ok",
            "detail": None,
            "dictionary_version": None,
            "policy_version": None,
            "prev_hash": last,
        }
        entry["hash"] = audit.entry_hash(last, entry)
        conn.execute(insert(audit_log).values(**entry))
    result = verify(hub)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "without the chain's lock" in (result.problem or "")


def test_hub_audit_anchor_catches_a_rewritten_chain(hub: Engine) -> None:
    chain(hub, 4)
    good = verify(hub)
    anchor = (good.head_seq, good.head_hash)
    assert verify(hub, anchor=anchor).ok
    # Someone rewrites entry 2 and recomputes every hash after it, and the head.
    with hub.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(outcome="failed", hash="x2"))
        prev = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 1)).scalar_one()
        for row in conn.execute(
            select(audit_log).where(audit_log.c.seq >= 2).order_by(audit_log.c.seq)
        ).all():
            fields = dict(row._mapping)
            fields["prev_hash"] = prev
            new_hash = audit.entry_hash(prev, fields)
            conn.execute(
                update(audit_log).where(audit_log.c.seq == row.seq).values(prev_hash=prev, hash=new_hash)
            )
            prev = new_hash
        conn.execute(update(audit_head).values(hash=prev))
    assert verify(hub).ok  # a consistent forgery passes without an anchor ...
    forged = verify(hub, anchor=anchor)
    assert (forged.ok, forged.first_bad_seq) == (False, 4)  # ... and fails with it
    missing = verify(hub, anchor=(99, "0" * 64))
    assert (missing.ok, missing.first_bad_seq) == (False, 99)


def test_hub_audit_recreates_missing_genesis_row(hub: Engine) -> None:
    with hub.begin() as conn:
        conn.execute(delete(audit_head))
        assert (
            audit.record(
                conn, CTX, audit.AuditEvent("create", "oa", "visit_plan", {"instance_code": "I"}, [], "ok")
            )
            == 1
        )
    assert verify(hub).ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seq=st.integers(min_value=1, max_value=5),
    column=st.sampled_from(
        [
            "at",
            "dag_id",
            "run_id",
            "task_id",
            "try_number",
            "principal",
            "operation",
            "system",
            "entity",
            "record_ids",
            "fields",
            "outcome",
            "detail",
            "dictionary_version",
            "policy_version",
            "prev_hash",
            "hash",
        ]
    ),
)
def test_hub_audit_any_single_edit_is_detected(
    sqlite_template: Any, tmp_path_factory: Any, seq: int, column: str
) -> None:
    """Property: changing any stored column of any entry breaks verification at that entry."""
    engine = _property_engine(sqlite_template, tmp_path_factory)
    replacement: dict[str, Any] = {
        "at": T0 - timedelta(days=1),
        "dag_id": "forged",
        "run_id": "forged",
        "task_id": "forged",
        "try_number": 9,
        "principal": "forged",
        "operation": "forged",
        "system": "xx",
        "entity": "forged",
        "record_ids": {"deal_id": "FORGED"},
        "fields": ["forged"],
        "outcome": "forged",
        "detail": "forged",
        "dictionary_version": "forged",
        "policy_version": "forged",
        "prev_hash": "f" * 64,
        "hash": "e" * 64,
    }
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(
                update(audit_log).where(audit_log.c.seq == seq).values({column: replacement[column]})
            )
            result = audit.verify(conn)
        finally:
            trans.rollback()
        assert audit.verify(conn).ok
    assert (result.ok, result.first_bad_seq) == (False, seq)


_PROPERTY_ENGINES: dict[str, Engine] = {}


def _property_engine(template: Any, factory: Any) -> Engine:
    """One chain of five entries shared by all examples (each example rolls back)."""
    if "engine" not in _PROPERTY_ENGINES:
        import shutil

        path = factory.mktemp("audit_property") / "hub.sqlite"
        shutil.copyfile(template, path)
        engine = hub_engine._create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            write(conn, 5)
        _PROPERTY_ENGINES["engine"] = engine
    return _PROPERTY_ENGINES["engine"]


def _concurrent_writers(url: str, threads: int, transactions: int, per_transaction: int) -> None:
    engine = hub_engine._create_engine(url)  # own pool: one connection per thread
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for t in range(transactions):
                with engine.begin() as conn:
                    # Some transactions read first: the writer must still serialise on the head.
                    conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
                    audit.record_many(
                        conn,
                        CTX.with_principal(f"worker-{n}"),
                        [
                            audit.AuditEvent(
                                "update", "crm", "deal", {"deal_id": f"{n}-{t}-{i}"}, ["stage"], "ok"
                            )
                            for i in range(per_transaction)
                        ],
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    engine.dispose()
    assert not errors, errors


@pytest.mark.pg
def test_hub_audit_concurrent_writers_on_postgres_form_one_chain(pg_hub_url: str, pg_hub: Engine) -> None:
    _concurrent_writers(pg_hub_url, threads=6, transactions=15, per_transaction=3)
    result = verify(pg_hub)
    assert (result.ok, result.checked, result.head_seq) == (True, 270, 270)
    with pg_hub.connect() as conn:
        principals = set(conn.execute(select(audit_log.c.principal).distinct()).scalars())
    assert principals == {f"worker-{n}" for n in range(6)}


def test_hub_audit_concurrent_writers_on_sqlite_form_one_chain(sqlite_url: str) -> None:
    _concurrent_writers(sqlite_url, threads=4, transactions=10, per_transaction=3)
    result = verify(hub_engine.get_engine(sqlite_url))
    assert (result.ok, result.checked) == (True, 120)

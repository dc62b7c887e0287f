"""Contracts of bridge.hub.store on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, func, select, update

from bridge.context import RunContext
from bridge.hub import audit, store
from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_log, pending_change, snapshot

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
Q = store.QuarantineFilter
CTX = RunContext(
    "bridge_crm_to_oa", "scheduled__2026-11-26T02:00:00+00:00", "sync_deals", 1, "bridge-service@test"
)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---------------------------------------------------------------- watermarks


def test_hub_watermark_never_moves_backwards(hub: Engine) -> None:
    with hub.begin() as conn:
        assert store.get_watermark(conn, "crm.deal") is None
        assert store.set_watermark(conn, "crm.deal", 1_000, "run1", now=T0) == 1_000
        assert store.set_watermark(conn, "crm.deal", 900, "run2", now=s(1)) == 1_000
        assert store.set_watermark(conn, "crm.deal", 1_500, "run3", now=s(2)) == 1_500
        assert store.get_watermark(conn, "crm.deal") == 1_500
        assert store.get_watermark(conn, "crm.company") is None


def test_hub_watermark_force_moves_back_and_rolls_back_with_transaction(hub: Engine) -> None:
    with hub.begin() as conn:
        store.set_watermark(conn, "oa.expense_claim", 5_000, "r1")
        assert store.set_watermark(conn, "oa.expense_claim", 10, "reset", force=True) == 10

    # The watermark advances only if the transaction that covers the writes commits.
    def failing_run() -> None:
        with hub.begin() as conn:
            store.set_watermark(conn, "oa.expense_claim", 99_999, "r2")
            raise RuntimeError("the write it covers failed")

    with pytest.raises(RuntimeError):
        failing_run()
    with hub.connect() as conn:
        assert store.get_watermark(conn, "oa.expense_claim") == 10


# ---------------------------------------------------------------- snapshots


def rows(n: int, hash_prefix: str = "h", modified: int = 1_000, start: int = 0) -> list[store.SnapshotRow]:
    return [
        store.SnapshotRow(
            source_id=str(i),
            content_hash=f"{hash_prefix}{i}",
            payload={"name": f"上海示例科技有限公司{i}", "contract_amount": f"{i}.50"},
            source_modified_ms=modified + i,
            data_owner=f"owner{i % 3}",
        )
        for i in range(start, start + n)
    ]


def test_hub_snapshots_new_changed_unchanged_with_previous_payload(hub: Engine) -> None:
    with hub.begin() as conn:
        first = store.upsert_snapshots(conn, "crm", "deal", rows(3), now=T0)
        assert [c.status for c in first] == ["new", "new", "new"]
        assert all(c.previous_payload is None for c in first)

        again = rows(3, modified=2_000)
        again[1] = store.SnapshotRow(
            "1", "other", {"name": "改名", "contract_amount": "99.00"}, 2_001, "owner9"
        )
        second = store.upsert_snapshots(conn, "crm", "deal", again, now=s(60))
        assert [c.status for c in second] == ["unchanged", "changed", "unchanged"]
        assert second[1].previous_hash == "h1"
        assert second[1].previous_payload == {"name": "上海示例科技有限公司1", "contract_amount": "1.50"}
        assert second[0].previous_payload is None  # only changed records carry the old payload

        snap = store.get_snapshot(conn, "crm", "deal", "1")
        assert snap is not None
        assert snap.payload["contract_amount"] == "99.00"
        assert snap.data_owner == "owner9"
        assert snap.first_seen_at == T0
        assert snap.last_seen_at == s(60)
        assert snap.first_seen_at.tzinfo is not None
        assert store.get_snapshot(conn, "oa", "deal", "1") is None  # the system is part of the key


def test_hub_snapshots_stale_rows_and_duplicates(hub: Engine) -> None:
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", rows(1, modified=5_000), now=T0)
        stale = [store.SnapshotRow("0", "older", {"name": "旧"}, 4_000)]
        assert store.upsert_snapshots(conn, "crm", "deal", stale)[0].status == "unchanged"
        snap = store.get_snapshot(conn, "crm", "deal", "0")
        assert snap is not None
        assert snap.content_hash == "h0"
        assert snap.source_modified_ms == 5_000

        # The same record twice in one call (overlapping pages): the newest wins, one result.
        dupes = [
            store.SnapshotRow("7", "a", {"v": "a"}, 10),
            store.SnapshotRow("7", "b", {"v": "b"}, 30),
            store.SnapshotRow("7", "c", {"v": "c"}, 20),
        ]
        result = store.upsert_snapshots(conn, "crm", "deal", dupes)
        assert [(c.source_id, c.status) for c in result] == [("7", "new")]
        snap7 = store.get_snapshot(conn, "crm", "deal", "7")
        assert snap7 is not None
        assert snap7.content_hash == "b"


def test_hub_snapshots_batches_large_input(hub: Engine) -> None:
    with hub.begin() as conn:
        result = store.upsert_snapshots(conn, "crm", "company", rows(1_203), batch_size=500)
        assert len(result) == 1_203
        assert {c.status for c in result} == {"new"}
        changed = rows(1_203, modified=9_000)
        changed[1_202] = store.SnapshotRow("1202", "new-hash", {"x": 1}, 20_000)
        result = store.upsert_snapshots(conn, "crm", "company", changed, batch_size=500)
        assert [c.source_id for c in result if c.status == "changed"] == ["1202"]
        count = conn.execute(select(func.count()).select_from(snapshot)).scalar_one()
        assert count == 1_203


def mark_deleted(conn: Connection, system: str, entity: str, ids: list[str]) -> int:
    """What a source deletion leaves in the hub (the sync does not record deletions yet)."""
    where = (snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.source_id.in_(ids))
    return conn.execute(update(snapshot).where(*where).values(deleted=True)).rowcount


def test_hub_iter_snapshots_streams_in_batches(hub: Engine) -> None:
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "contact", rows(250))
        store.upsert_snapshots(conn, "oa", "expense_claim", rows(5))
        store.mark_archived(conn, "crm", "contact", ["0", "1"])
        mark_deleted(conn, "crm", "contact", ["2"])
    with hub.begin() as conn:
        batches = list(store.iter_snapshots(conn, "contact", batch=100))
        assert [len(b) for b in batches] == [100, 100, 49]  # "2" is deleted
        ids = [snap.source_id for batch in batches for snap in batch]
        assert "2" not in ids
        assert ids[0] == "0"
        modified = [snap.source_modified_ms for batch in batches for snap in batch]
        assert modified == sorted(modified)
        live = [s.source_id for b in store.iter_snapshots(conn, "contact", include_archived=False) for s in b]
        assert {"0", "1", "2"}.isdisjoint(live)
        assert len(live) == 247
        recent = [s for b in store.iter_snapshots(conn, "contact", modified_since_ms=1_240) for s in b]
        assert [s.source_id for s in recent] == [str(i) for i in range(240, 250)]
        assert sum(len(b) for b in store.iter_snapshots(conn, "contact", system="oa")) == 0


def test_hub_deleted_snapshot_revives_as_changed(hub: Engine) -> None:
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", rows(2))
        assert mark_deleted(conn, "crm", "deal", ["0"]) == 1
        assert store.mark_archived(conn, "crm", "deal", ["1", "1", "missing"]) == 1  # each id once
        assert store.upsert_snapshots(conn, "crm", "deal", rows(1))[0].status == "changed"
        snap = store.get_snapshot(conn, "crm", "deal", "0")
        assert snap is not None
        assert snap.deleted is False
        found = store.get_snapshots(conn, "crm", "deal", ["0", "1", "nope"])
        assert sorted(found) == ["0", "1"]


# ---------------------------------------------------------------- xref


def project_link(**more: Any) -> store.NewLink:
    """The deal D1 ⇄ 立项申请 INST1 link of the xref tests (``more``: uuid, state)."""
    return store.NewLink(crm_type="deal", crm_id="D1", oa_type="project_initiation", oa_id="INST1", **more)


def test_hub_xref_save_is_idempotent_and_updates_state(hub: Engine) -> None:
    with hub.begin() as conn:
        first = store.save_link(
            conn,
            "deal_project",
            project_link(oa_uuid="uuid-1", state={"stage": "initiated"}),
            dictionary_version="2026.1",
            run_id="r1",
            now=T0,
        )
        second = store.save_link(
            conn,
            "deal_project",
            project_link(state={"stage": "executing"}),
            dictionary_version="2026.2",
            run_id="r2",
            now=s(5),
        )
        assert second.id == first.id
        assert second.state == {"stage": "executing"}
        assert second.oa_uuid == "uuid-1"  # kept when not given again
        assert second.dictionary_version == "2026.2"
        assert second.created_at == T0
        assert second.updated_at == s(5)
        kept = store.save_link(
            conn,
            "deal_project",
            project_link(),
            dictionary_version="2026.2",
        )
        assert kept.state == {"stage": "executing"}  # state=None keeps the stored state
        assert len(store.links(conn, "deal_project")) == 1


def test_hub_xref_find_by_each_side_and_half_links(hub: Engine) -> None:
    with hub.begin() as conn:
        # A half-link (before the OA instance code is known) is completed, not duplicated.
        half = store.save_link(
            conn,
            "deal_project",
            store.NewLink(crm_type="deal", crm_id="D2", oa_type="project_initiation", oa_uuid="uuid-2"),
            dictionary_version="v",
            now=T0,
        )
        full = store.save_link(
            conn,
            "deal_project",
            store.NewLink(
                crm_type="deal", crm_id="D2", oa_type="project_initiation", oa_id="INST2", oa_uuid="uuid-2"
            ),
            dictionary_version="v",
            now=s(1),
        )
        assert full.id == half.id
        assert full.oa_id == "INST2"
        # A half-link without uuid is matched with IS NULL semantics.
        a = store.save_link(
            conn,
            "owner_user",
            store.NewLink(crm_type="owner", crm_id="O1", oa_type="user"),
            dictionary_version="v",
        )
        b = store.save_link(
            conn,
            "owner_user",
            store.NewLink(crm_type="owner", crm_id="O1", oa_type="user"),
            dictionary_version="v",
        )
        assert a.id == b.id
        assert b.oa_id is None
        # Several notices for one deal: find_link returns the latest.
        for i in range(3):
            store.save_link(
                conn,
                "amount_notice",
                store.NewLink(
                    crm_type="deal",
                    crm_id="D2",
                    oa_type="contract_amount_notice",
                    oa_id=f"N{i}",
                    state={"amount": f"{i}.00"},
                ),
                dictionary_version="v",
                now=s(10 + i),
            )
        latest = store.find_link(conn, "amount_notice", crm_id="D2")
        assert latest is not None
        assert latest.oa_id == "N2"
        assert store.find_link(conn, "deal_project", oa_id="INST2") == full
        assert store.find_link(conn, "deal_project", oa_uuid="uuid-2") == full
        assert store.find_link(conn, "deal_project", crm_id="nope") is None
        assert {link.link_type for link in store.links(conn, crm_id="D2")} == {
            "deal_project",
            "amount_notice",
        }
        with pytest.raises(store.StoreError):
            store.find_link(conn, "deal_project")


# ---------------------------------------------------------------- pending changes


def test_hub_debounce_due_time_arithmetic(hub: Engine) -> None:
    with hub.begin() as conn:
        first = store.enqueue_change(conn, "crm_to_oa", store.PendingKey("deal", "D1", "h1"), T0, 90, 210)
        assert (first.first_seen_at, first.last_seen_at, first.due_at, first.changes) == (T0, T0, s(90), 1)
        second = store.enqueue_change(conn, "crm_to_oa", store.PendingKey("deal", "D1", "h2"), s(60), 90, 210)
        assert (second.first_seen_at, second.last_seen_at, second.due_at, second.changes) == (
            T0,
            s(60),
            s(150),
            2,
        )
        # Changes keep coming: the max delay (first seen + 210 s) caps the wait.
        third = store.enqueue_change(conn, "crm_to_oa", store.PendingKey("deal", "D1", "h3"), s(140), 90, 210)
        assert third.due_at == s(210)
        assert third.changes == 3
        assert third.content_hash == "h3"
        # The same state again (re-read, retried task) does not postpone anything.
        same = store.enqueue_change(conn, "crm_to_oa", store.PendingKey("deal", "D1", "h3"), s(200), 90, 210)
        assert same == third

        assert store.due_changes(conn, "crm_to_oa", s(209)) == []
        due = store.due_changes(conn, "crm_to_oa", s(210))
        assert [(c.source_id, c.content_hash) for c in due] == [("D1", "h3")]
        assert store.due_changes(conn, "oa_to_crm", s(10_000)) == []


def test_hub_debounce_complete_keeps_newer_state_and_defer_counts_attempts(hub: Engine) -> None:
    with hub.begin() as conn:
        store.enqueue_changes(
            conn, "crm_to_oa", [("deal", "A", "a1"), ("deal", "B", "b1"), ("company", "C", "c1")], T0, 0, 0
        )
        due = store.due_changes(conn, "crm_to_oa", T0, limit=2)
        assert len(due) == 2
        # B changed again while it was being sent: completing the old state leaves the new one queued.
        store.enqueue_change(conn, "crm_to_oa", store.PendingKey("deal", "B", "b2"), s(1), 0, 0)
        removed = store.complete_changes(
            conn, "crm_to_oa", [store.PendingKey("deal", "A", "a1"), ("deal", "B", "b1")]
        )
        assert removed == 1
        left = {(c.entity, c.source_id, c.content_hash) for c in store.pending_changes(conn, "crm_to_oa")}
        assert left == {("deal", "B", "b2"), ("company", "C", "c1")}
        deferred = store.defer_change(conn, "crm_to_oa", "company", "C", s(5), 60)
        assert deferred is not None
        assert deferred.attempts == 1
        assert deferred.due_at == s(65)
        deferred = store.defer_change(conn, "crm_to_oa", "company", "C", s(70), 120)
        assert deferred is not None
        assert deferred.attempts == 2
        assert deferred.due_at == s(190)
        assert store.defer_change(conn, "crm_to_oa", "company", "missing", s(5), 60) is None
        assert (
            store.complete_changes(conn, "crm_to_oa", [("company", "C")]) == 1
        )  # without hash: unconditional
        count = conn.execute(select(func.count()).select_from(pending_change)).scalar_one()
        assert count == 1


# ---------------------------------------------------------------- quarantine


def quarantine(conn, source_id: str = "D9", content_hash: str | None = "h1", **kw):  # type: ignore[no-untyped-def]
    args = {
        "direction": "crm_to_oa",
        "system": "crm",
        "entity": "deal",
        "source_id": source_id,
        "reason_code": "unmapped_value",
        "message": "商机阶段“谈判中”在数据字典里没有对应的 OA 项目阶段，请销售运营补充值映射。",
        "field": "stage",
        "payload": {"stage": "谈判中", "contact_mobile": "13812345678"},
        "content_hash": content_hash,
        "department": "销售部",
        "data_owner": "owner-7",
    }
    args.update(kw)
    now = args.pop("now", None)
    return store.quarantine_record(conn, CTX, store.QuarantineItem(**args), now=now)


def test_hub_quarantine_one_open_entry_per_record(hub: Engine) -> None:
    with hub.begin() as conn:
        first = quarantine(conn, now=T0)
        again = quarantine(
            conn, reason_code="invalid_format", message="手机号格式不正确", field="contact_mobile", now=s(30)
        )
        assert again == first
        entry = store.get_quarantine(conn, first)
        assert entry is not None
        assert entry.is_open
        assert (entry.attempts, entry.reason_code, entry.field) == (2, "invalid_format", "contact_mobile")
        assert (entry.first_seen_at, entry.last_seen_at) == (T0, s(30))
        other_direction = quarantine(conn, direction="migration")
        assert other_direction != first
        assert store.quarantine_backlog(conn) == {"invalid_format": 1, "unmapped_value": 1}
        # Each quarantine call is audited with the field name, never the value.
        logged = conn.execute(select(audit_log).where(audit_log.c.operation == "quarantine")).all()
        assert len(logged) == 3
        assert logged[1].fields == ["contact_mobile"]
        assert logged[1].record_ids["quarantine_id"] == first
        assert "13812345678" not in str([tuple(r) for r in logged])
        assert logged[0].principal == "bridge-service@test"
        assert logged[0].try_number == 1


def test_hub_quarantine_resolve_if_fixed_only_on_a_different_hash(hub: Engine) -> None:
    with hub.begin() as conn:
        entry_id = quarantine(conn, content_hash="h1")
        assert store.resolve_if_fixed(conn, "crm_to_oa", "deal", "D9", "h1") is False
        assert store.resolve_if_fixed(conn, "crm_to_oa", "deal", "other", "h2") is False
        assert store.resolve_if_fixed(conn, "crm_to_oa", "deal", "D9", "h2", ctx=CTX, now=s(9)) is True
        entry = store.get_quarantine(conn, entry_id)
        assert entry is not None
        assert entry.resolution == "fixed"
        assert entry.resolved_at == s(9)
        assert store.resolve_if_fixed(conn, "crm_to_oa", "deal", "D9", "h3") is False  # nothing open now
        # Still wrong after the fix: a new open entry, the old one stays closed.
        new_id = quarantine(conn, content_hash="h2")
        assert new_id != entry_id
        assert store.quarantine_backlog(conn) == {"unmapped_value": 1}
        # Without a stored hash there is nothing to compare: it waits for a release.
        no_hash = quarantine(conn, source_id="D10", content_hash=None)
        assert store.resolve_if_fixed(conn, "crm_to_oa", "deal", "D10", "anything") is False
        assert store.get_quarantine(conn, no_hash).is_open  # type: ignore[union-attr]
        assert (
            conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.operation == "quarantine_fixed")
            ).scalar_one()
            == 1
        )


def test_hub_quarantine_release_audits_and_queues_a_retry(hub: Engine) -> None:
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", [store.SnapshotRow("D9", "snap-hash", {"stage": "x"}, 1)])
        entry_id = quarantine(conn)
        released = store.release(conn, CTX, entry_id, "王芳", now=s(100))
        assert (released.resolution, released.resolved_by, released.resolved_at) == (
            "released",
            "王芳",
            s(100),
        )
        assert store.open_quarantine(conn, "crm_to_oa", "deal", "D9") is None
        due = store.due_changes(conn, "crm_to_oa", s(100))
        assert [(c.source_id, c.content_hash) for c in due] == [("D9", "snap-hash")]
        with pytest.raises(store.QuarantineAlreadyResolved) as info:
            store.release(conn, CTX, entry_id, "王芳")
        assert info.value.entry.resolution == "released"
        with pytest.raises(store.QuarantineNotFound):
            store.release(conn, CTX, 999_999, "王芳")
        last = audit.tail(conn, 1)[0]
        assert (last.operation, last.outcome, last.detail) == (
            "quarantine_release",
            "released",
            "released_by=王芳",
        )
        # Health/migration entries are not sync records: no pending change is queued.
        other = quarantine(conn, source_id="M1", direction="migration", reason_code="duplicate_id")
        store.release(conn, CTX, other, "王芳", now=s(100))
        assert [c.source_id for c in store.pending_changes(conn)] == ["D9"]


def test_hub_quarantine_listing_filters_and_paging(hub: Engine) -> None:
    with hub.begin() as conn:
        for i in range(5):
            quarantine(conn, source_id=f"D{i}", department="销售部" if i % 2 else "财务部", now=s(i))
        quarantine(
            conn,
            source_id="E1",
            entity="expense_claim",
            direction="oa_to_crm",
            system="oa",
            reason_code="missing_required",
            data_owner="u-42",
            department="行政部",
            now=s(10),
        )
        closed = quarantine(conn, source_id="D99", now=s(20))
        store.release(conn, CTX, closed, "王芳")
        assert [e.source_id for e in store.list_quarantine(conn)][:2] == ["E1", "D4"]  # latest first
        assert {e.source_id for e in store.list_quarantine(conn, Q(department="销售部"))} == {"D1", "D3"}
        assert [e.source_id for e in store.list_quarantine(conn, Q(data_owner="u-42"))] == ["E1"]
        assert [e.source_id for e in store.list_quarantine(conn, Q(reason="missing_required"))] == ["E1"]
        assert len(store.list_quarantine(conn, Q(entity="deal"))) == 5
        assert len(store.list_quarantine(conn, Q(entity="deal", open_only=False))) == 6
        page = store.list_quarantine(conn, Q(entity="deal"), limit=2, offset=2)
        assert [e.source_id for e in page] == ["D2", "D1"]
        assert store.count_quarantine(conn, Q(entity="deal")) == 5
        assert store.quarantine_backlog(conn) == {"missing_required": 1, "unmapped_value": 5}


def test_hub_quarantine_guards_unknown_codes_and_hostile_sizes(hub: Engine) -> None:
    with hub.begin() as conn:
        with pytest.raises(store.StoreError, match="unknown quarantine reason"):
            quarantine(conn, reason_code="bad_thing")
        huge_id = "x" * 500
        entry_id = quarantine(
            conn, source_id=huge_id, reason_code="hostile_input", payload={"blob": "y" * 100_000}
        )
        entry = store.get_quarantine(conn, entry_id)
        assert entry is not None
        assert len(entry.source_id) == 64
        assert entry.payload == {"_truncated": True, "_bytes": entry.payload["_bytes"], "_fields": ["blob"]}
        # The shortened id still finds the open entry (one per record).
        assert quarantine(conn, source_id=huge_id, reason_code="hostile_input") == entry_id


# ---------------------------------------------------------------- run summaries


def test_hub_run_summaries(hub: Engine) -> None:
    with hub.begin() as conn:
        first = store.start_run(conn, CTX, "crm_to_oa", now=T0)
        store.finish_run(conn, first, "success", {"read": 10, "written": 3}, {"crm.deal": 123}, now=s(30))
        second = store.start_run(conn, CTX, "oa_to_crm", now=s(60))
        third = store.start_run(conn, CTX, "crm_to_oa", now=s(120))
        store.finish_run(conn, third, "failed", {"read": 0}, message="CRM 429", now=s(121))
        runs = store.recent_runs(conn)
        assert [r.id for r in runs] == [third, second, first]
        assert runs[1].status == "running"
        assert runs[1].finished_at is None
        only = store.recent_runs(conn, kind="crm_to_oa", limit=1)
        assert [(r.id, r.status, r.message) for r in only] == [(third, "failed", "CRM 429")]
        done = store.recent_runs(conn, kind="crm_to_oa")[1]
        assert done.counts == {"read": 10, "written": 3}
        assert done.watermarks == {"crm.deal": 123}
        assert (done.dag_id, done.task_id) == (CTX.dag_id, CTX.task_id)
        with pytest.raises(store.StoreError):
            store.finish_run(conn, first, "done", {})
        with pytest.raises(store.StoreError):
            store.finish_run(conn, 424242, "success", {})


# ---------------------------------------------------------------- leases


def test_hub_lease_exclusive_until_expiry_then_taken_over(hub: Engine) -> None:
    with hub.begin() as conn:
        assert store.acquire_lease(conn, "history_migration", "run-a", 60, now=T0) is True
        assert store.acquire_lease(conn, "history_migration", "run-b", 60, now=s(30)) is False
        assert store.renew_lease(conn, "history_migration", "run-b", 60, now=s(30)) is False
        assert store.renew_lease(conn, "history_migration", "run-a", 60, now=s(50)) is True  # until s(110)
        assert store.acquire_lease(conn, "history_migration", "run-b", 60, now=s(100)) is False
        assert store.acquire_lease(conn, "history_migration", "run-b", 60, now=s(110)) is True  # expired
        held = store.get_lease(conn, "history_migration")
        assert held is not None
        assert (held.holder, held.acquired_at, held.expires_at) == ("run-b", s(110), s(170))
        assert store.renew_lease(conn, "history_migration", "run-a", 60, now=s(111)) is False
        assert store.release_lease(conn, "history_migration", "run-a") is False
        # Re-acquiring our own lease extends it and keeps the acquisition time.
        assert store.acquire_lease(conn, "history_migration", "run-b", 60, now=s(150)) is True
        held = store.get_lease(conn, "history_migration")
        assert held is not None
        assert (held.acquired_at, held.expires_at) == (s(110), s(210))
        assert store.release_lease(conn, "history_migration", "run-b") is True
        assert store.acquire_lease(conn, "history_migration", "run-c", 60, now=s(151)) is True


def test_hub_store_refuses_naive_times(hub: Engine) -> None:
    with hub.begin() as conn, pytest.raises(store.StoreError, match="timezone-aware"):
        store.enqueue_change(
            conn, "crm_to_oa", store.PendingKey("deal", "1", "h"), datetime(2026, 1, 1), 1, 2
        )


_DEBOUNCE_ENGINE: dict[str, Engine] = {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.sampled_from(["a", "b", "c"])),
        min_size=1,
        max_size=8,
    ),
    quiet=st.integers(min_value=0, max_value=300),
    extra=st.integers(min_value=0, max_value=300),
)
def test_hub_debounce_matches_its_model(
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, str]],
    quiet: int,
    extra: int,
) -> None:
    """Property: for any sequence of observations, the queue equals a direct model of the rule."""
    max_delay = quiet + extra
    if "engine" not in _DEBOUNCE_ENGINE:
        path = tmp_path_factory.mktemp("debounce") / "hub.sqlite"
        shutil.copyfile(sqlite_template, path)
        _DEBOUNCE_ENGINE["engine"] = hub_engine._create_engine(f"sqlite:///{path}")
    engine = _DEBOUNCE_ENGINE["engine"]
    at = 0
    model: dict[str, Any] | None = None
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for gap, content_hash in steps:
                at += gap
                got = store.enqueue_change(
                    conn,
                    "oa_to_crm",
                    store.PendingKey("expense_claim", "E1", content_hash),
                    s(at),
                    quiet,
                    max_delay,
                )
                if model is None:
                    model = {"first": at, "last": at, "hash": content_hash, "changes": 1}
                elif model["hash"] != content_hash:
                    model.update(last=at, hash=content_hash, changes=model["changes"] + 1)
                due = min(model["last"] + quiet, model["first"] + max_delay)
                assert (got.first_seen_at, got.last_seen_at, got.due_at) == (
                    s(model["first"]),
                    s(model["last"]),
                    s(due),
                )
                assert (got.content_hash, got.changes) == (model["hash"], model["changes"])
                assert got.due_at <= s(model["first"] + max_delay)
        finally:
            trans.rollback()


def test_hub_debounce_batches_of_many_records(hub: Engine) -> None:
    with hub.begin() as conn:
        items = [("deal", str(i), f"h{i}") for i in range(1_200)]
        assert store.enqueue_changes(conn, "crm_to_oa", items, T0, 0, 0) == 1_200
        assert store.enqueue_changes(conn, "crm_to_oa", items, s(5), 0, 0) == 0  # nothing new
        keys = [("deal", str(i), f"h{i}") for i in range(600)] + [("deal", str(i)) for i in range(600, 1_100)]
        keys.append(("deal", "1150", "stale-hash"))
        assert store.complete_changes(conn, "crm_to_oa", keys) == 1_100
        left = store.pending_changes(conn, "crm_to_oa")
        assert sorted(int(c.source_id) for c in left) == list(range(1_100, 1_200))

"""The history migration's records deleted (archived) and merged in the CRM (issue 16).

Search never finds an archived record, so the time-range chunks cannot see the
records deleted in the period. Each CRM entity therefore gets one more chunk
without a range (``lo``/``hi`` None): :func:`migrate_archived_chunk` pages the
CRM's archived list (``CrmHook.archived_page``, 100 ids a page) and keeps the
records archived in the run's period (their archive time in ``[from, to)``; one
without a time is kept). Per page:

1. **merged or deleted** — a merge archives the absorbed record too; it is told
   apart by a batch read (``CrmHook.survivors_of``: a merged-away id answers
   with its survivor). A merged id is never migrated as a record of its own:
   it is recorded in ``merge_record`` (rule ``crm_merge``), and a live hub
   snapshot of it is tombstoned (``merged_into``) with its xref links moved to
   the survivor and the snapshots pointing to it repointed, audited ``merge``.
2. **deleted** — with ``archived_records = migrate`` its last state is read
   (batch read ``?archived=true``) and stored like an archive-cut-off record:
   snapshot ``archived``, not validated, linked or written back, never a
   立项申请; and tombstoned like the CRM → OA sweep tombstones (who/when/why),
   audited ``archive``, so data health, the report and the syncs see it as
   deleted. With ``skip`` it is only counted (``skipped.archived_in_crm``).
   A deal whose 立项申请 the hub already links (the sync filed it) is left to
   the CRM → OA sync's sweep, which withdraws or reports it
   (``skipped.left_to_sync``).

Budget: per 100 archived records one list page, one survivor read and (migrate)
one batch read, plus the associations (one v4 read per associated type). OA
forms and records naming a merged id are linked to the survivor
(:func:`resolve_survivors`: the hub's ``merge_record`` first, then one survivor
read per 100 ids the hub does not know as live).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bridge.hub import store
from bridge.migration import chunk as chunk_mod
from bridge.migration import dedupe, workdir
from bridge.migration.counts import EntityCounts
from bridge.migration.survivors import resolve_survivors
from bridge.staging import snapshot_row
from bridge.sync.frame import AuditStamp, audit_event, write_audit

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.hubspot_codec import ArchivedRecord
    from bridge.hub.audit import AuditEvent

log = logging.getLogger("bridge.migration")

ARCHIVED_PAGE = 100  # ids per page of the archived list (HubSpot's maximum)
MERGE_RULE = (
    "crm_merge"  # merge_record.rule of a merge made in the CRM (the de-duplication's: exact_key, name_uscc)
)
MERGED_INTO = "merged_into"  # in a tombstone: the survivor (the same key as the CRM → OA sync's)
ARCHIVED_WHY = "archived in the CRM"  # the CRM → OA sweep's words, so both tombstones read alike
MIGRATE = "migrate"


@dataclass
class _Page:
    """What one page of the archived list comes to (decided before any write, so a dry run counts the same)."""

    merged: dict[str, str] = field(default_factory=dict)  # absorbed → survivor
    rows: list[store.SnapshotRow] = field(default_factory=list)  # deleted records to store archived
    known_deleted: list[str] = field(
        default_factory=list
    )  # already tombstoned in the hub: only marked archived
    when: dict[str, str | None] = field(default_factory=dict)


def archived_ms(at: str | None) -> int | None:
    """A record's archive time (ISO 8601, as the hook gives it) as epoch ms; None when absent or unreadable."""
    if not at:
        return None
    try:
        return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def in_period(record: ArchivedRecord, lo: int, hi: int) -> bool:
    """Archived in ``[lo, hi)``; a record without a readable time is kept (it is in the recycle bin now)."""
    at = archived_ms(record.archived_at)
    return at is None or lo <= at < hi


def migrate_archived_chunk(crm: CrmHook, t: chunk_mod.Tools, entity: str) -> EntityCounts:
    """The records of ``entity`` archived (deleted) or merged away in the CRM during the run's period."""
    object_type = t.d.entity(entity).crm_object or entity
    counts = EntityCounts(entity)
    after: str | None = None
    seen: set[str] = set()
    listed: list[str] = []  # every archived id: no OA form of the run is linked to one (merged ids resolve first)
    while True:
        page = crm.archived_page(object_type, after, ARCHIVED_PAGE)
        t.renew()
        listed.extend(r.id for r in page.records)
        records = [r for r in page.records if in_period(r, t.params.crm_from_ms, t.params.to_ms)]
        if records:
            _one_page(crm, t, entity, records, counts)
        after = page.next_after
        if after is None or after in seen:  # a cursor met twice would loop: the list is read
            break
        seen.add(after)
    workdir.save_deleted(t.run_id, entity, listed, t.data_dir)
    return counts


def _one_page(
    crm: CrmHook, t: chunk_mod.Tools, entity: str, records: Sequence[ArchivedRecord], counts: EntityCounts
) -> None:
    object_type = t.d.entity(entity).crm_object or entity
    counts.read += len(records)
    page = _Page(when={r.id: r.archived_at for r in records})
    page.merged = crm.survivors_of(object_type, [r.id for r in records])
    for absorbed, survivor in page.merged.items():
        counts.skipped["merged_in_crm"] += 1
        counts.example("merged_in_crm", {"id": absorbed, "kept_id": survivor})
    deleted = [r.id for r in records if r.id not in page.merged]
    left = _left_to_sync(t, entity, deleted)
    counts.skipped["left_to_sync"] += len(left)
    deleted = [i for i in deleted if i not in left]
    if t.params.archived_records != MIGRATE:
        counts.skipped["archived_in_crm"] += len(deleted)
        for sid in deleted[:3]:
            counts.example("archived_in_crm", {"id": sid, "archived_at": page.when.get(sid)})
        deleted = []
    if deleted:
        _read_deleted(crm, t, entity, deleted, page, counts)
    if not t.dry_run:
        _write_page(t, entity, page)


def _left_to_sync(t: chunk_mod.Tools, entity: str, ids: Sequence[str]) -> set[str]:
    """Deals whose 立项申请 the hub links and that the hub still holds live: the CRM → OA sweep settles them
    (withdraws the 立项申请 or tells finance); the migration makes no OA write and leaves them alone."""
    if entity != "deal" or not ids:
        return set()
    with t.hub.connect() as conn:
        links = store.links_for_crm_ids(conn, chunk_mod.PROJECT_LINK, ids)
        snaps = store.get_snapshots(conn, "crm", entity, [i for i, lks in links.items() if lks])
    return {
        sid
        for sid, lks in links.items()
        if any(lk.oa_id and not (lk.state or {}).get("archived") for lk in lks)
        and sid in snaps
        and not snaps[sid].deleted
    }


def _read_deleted(
    crm: CrmHook, t: chunk_mod.Tools, entity: str, ids: Sequence[str], page: _Page, counts: EntityCounts
) -> None:
    """The deleted records' last state (batch read of archived records) as archived snapshot rows."""
    e = t.d.entity(entity)
    object_type = e.crm_object or entity
    outcomes = crm.batch_read(object_type, ids, properties=t.d.crm_properties(entity), archived=True)
    objects = {o.key: o.object for o in outcomes if o.ok and o.object is not None}
    counts.skipped["gone_before_read"] += len(ids) - len(objects)
    associations: dict[str, dict[str, list[str]]] = {}
    for to_type in dict.fromkeys(e.associations.values()):
        found = crm.read_associations(object_type, to_type, list(objects))
        target = _entity_of(t, to_type)
        survivors = resolve_survivors(t.hub, crm, target, to_type, [i for v in found.values() for i in v])
        for oid, targets in found.items():
            associations.setdefault(oid, {})[to_type] = list(
                dict.fromkeys(survivors.get(i, i) for i in targets)
            )
    with t.hub.connect() as conn:
        known = store.get_snapshots(conn, "crm", entity, list(objects))
    for oid, obj in objects.items():
        result = t.d.from_crm(entity, obj, associations.get(oid) if e.associations else None)
        row = snapshot_row(t.d, entity, result)
        if row is None:
            counts.skipped["no_id"] += 1
            continue
        counts.archived += 1
        counts.example("archived_in_crm", {"id": row.source_id, "archived_at": page.when.get(oid)})
        if oid in known and known[oid].deleted:
            page.known_deleted.append(oid)  # tombstoned by the sync already: its stone (who/when/why) stays
        else:
            page.rows.append(row)


def _entity_of(t: chunk_mod.Tools, object_type: str) -> str:
    """The dictionary entity of a CRM object type (``companies`` → ``company``)."""
    return next((name for name, e in t.d.entities.items() if e.crm_object == object_type), object_type)


def _write_page(t: chunk_mod.Tools, entity: str, page: _Page) -> None:
    """One transaction: merges recorded and remapped, deleted records stored archived and tombstoned, audited."""
    now = t.now()
    events: list[AuditEvent] = []
    with t.hub.begin() as conn:
        if page.merged:
            merges = [dedupe.Merge(kept_id=s, merged_id=a, rule=MERGE_RULE) for a, s in page.merged.items()]
            dedupe.record_merges(conn, t.run_id, entity, merges, now)
            for absorbed, survivor in page.merged.items():
                what = _remap(conn, t, entity, (absorbed, survivor))
                if what:
                    events.append(
                        _audit(
                            t,
                            "merge",
                            entity,
                            {"survivor_id": survivor, "merged_id": absorbed},
                            f"merged into {survivor} in the CRM (history migration): " + what,
                        )
                    )
        if page.rows:
            store.upsert_snapshots(conn, "crm", entity, page.rows, now=now)
        ids = [r.source_id for r in page.rows]
        store.mark_archived(conn, "crm", entity, [*ids, *page.known_deleted])
        for sid in ids:
            stone = {"by": "crm", "at": page.when.get(sid), "why": ARCHIVED_WHY, "seen_by": t.run_id}
            if store.tombstone(conn, ("crm", entity, sid), stone, now=now):
                at = page.when.get(sid) or "an unknown time"
                events.append(
                    _audit(
                        t,
                        "archive",
                        entity,
                        {f"{entity}_id": sid},
                        f"archived in the CRM at {at}; migrated as archived by the history migration",
                    )
                )
        write_audit(conn, t.ctx, events)


def _remap(conn: Connection, t: chunk_mod.Tools, entity: str, ids: tuple[str, str]) -> str:
    """A hub snapshot of a merged-away record: tombstoned (``merged_into``), its links moved to the survivor,
    the live snapshots naming it repointed; what was done ('' when the hub had nothing of it, or on a rerun)."""
    absorbed, survivor = ids
    stone = {
        "by": "crm",
        "at": t.now().isoformat(),
        "why": "merged in the CRM",
        MERGED_INTO: survivor,
        "seen_by": t.run_id,
    }
    done: list[str] = []
    if store.tombstone(conn, ("crm", entity, absorbed), stone, now=t.now()):
        done.append("snapshot tombstoned")
    moved = store.remap_crm_links(conn, entity, ids, run_id=t.run_id, now=t.now())
    if moved:
        done.append("links moved: " + ", ".join(sorted({lk.link_type for lk in moved})))
    target = t.d.entity(entity).crm_object or entity
    for other, e in t.d.entities.items():
        for field_name, object_type in e.associations.items():
            if object_type != target:
                continue
            hashed = _hasher(t, other)
            pointed = store.repoint_snapshots(conn, ("crm", other, field_name), ids, hashed)
            if pointed:
                done.append(f"{len(pointed)} {other} {field_name} repointed")
    return ", ".join(done)


def _hasher(t: chunk_mod.Tools, entity: str) -> Any:
    def content_hash(payload: Mapping[str, Any]) -> str:
        return t.d.content_hash(entity, payload)

    return content_hash


def _audit(
    t: chunk_mod.Tools, operation: str, entity: str, ids: Mapping[str, Any], detail: str
) -> AuditEvent:
    return audit_event(operation, ("crm", entity), ids, [], "ok", AuditStamp(detail, t.d, t.policy.version))

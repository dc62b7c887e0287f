"""CRM → OA: companies, contacts and deals merged in the CRM.

A merge archives the absorbed record, moves its associations to the survivor
and makes its id answer with the survivor; the survivor lists the ids it
absorbed (read with the mapped properties, decoded by the hook's codec) and its
modification time moves, so the extract reads it. :func:`remap_merges` runs in
the extract's page transaction, before anything is sent: the absorbed record's
xref links move to the survivor, its snapshot is tombstoned (``merged_into``),
the snapshots pointing to it (a deal's or contact's company) point to the
survivor, and each merge is audited (``merge``, both ids). For deals the pure
:func:`.decide.decide_merge` says which 立项申请 the survivor keeps; any other
one is settled by the archive path (:mod:`.archive`: withdrawn if pending,
finance told if approved). The survivor never gets a second 立项申请, and a
rerun finds nothing left to move (no audit, no write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from bridge.hub import store
from bridge.migration import dedupe
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.frame import write_audit

# merge_record.rule of a merge made in the CRM (the history migration's de-duplication: exact_key, name_uscc)
MERGE_RULE = "crm_merge"
NAME_FIELDS = {"company": "name", "contact": "full_name", "deal": "deal_name"}  # what merge_record names

if TYPE_CHECKING:
    from bridge.hub.audit import AuditEvent
    from bridge.sync.crm_to_oa.send import C2O


def remap_merges(conn: Connection, run: C2O, entity: str, merges: Mapping[str, Sequence[str]]) -> None:
    """Remap every absorbed id of ``merges`` (survivor → absorbed ids) to its survivor (caller's transaction);
    each merge is audited and recorded in ``merge_record`` (rule ``crm_merge``), where data health, the
    history migration and its report read merges."""
    events: list[AuditEvent] = []
    recorded: list[dedupe.Merge] = []
    for survivor, absorbed in merges.items():
        others = [a for a in dict.fromkeys(absorbed) if a and a != survivor]
        if not others:
            continue
        stay = _settle_deals(conn, run, survivor, others) if entity == "deal" else set()
        for one in others:
            what = _remap_one(conn, run, entity, (one, survivor), settled=one in stay)
            if what:
                recorded.append(_merge_row(conn, entity, one, survivor))
                events.append(
                    run.audit(
                        "merge",
                        ("crm", entity),
                        {"survivor_id": survivor, "merged_id": one},
                        [],
                        "ok",
                        detail=f"merged into {survivor} in the CRM: " + ", ".join(what),
                    )
                )
                run.tally.add(f"merged_{entity}")
    write_audit(conn, run.ctx, events)
    dedupe.record_merges(conn, run.ctx.run_id or "crm_to_oa_sync", entity, recorded, run.now)


def _merge_row(conn: Connection, entity: str, absorbed: str, survivor: str) -> dedupe.Merge:
    """The ``merge_record`` row of one merge made in the CRM: both ids and, when staged, both names."""
    snaps = store.get_snapshots(conn, "crm", entity, [absorbed, survivor])
    field = NAME_FIELDS.get(entity, "name")

    def name(sid: str) -> str | None:
        value = snaps[sid].payload.get(field) if sid in snaps else None
        return str(value) if value else None

    return dedupe.Merge(
        kept_id=survivor,
        merged_id=absorbed,
        rule=MERGE_RULE,
        kept_name=name(survivor),
        merged_name=name(absorbed),
    )


def _remap_one(conn: Connection, run: C2O, entity: str, ids: tuple[str, str], *, settled: bool) -> list[str]:
    """One absorbed record; returns what was done (empty: nothing left to do, e.g. on a rerun). A record
    already tombstoned as merged into this survivor was remapped in that same transaction: skipped (the
    link and reference look-ups are not indexed by CRM id alone, and a survivor is read again and again)."""
    absorbed, survivor = ids
    known = store.get_snapshots(conn, "crm", entity, [absorbed]).get(absorbed)
    stone_before = (
        (known.payload.get(store.TOMBSTONE_KEY) or {}) if known is not None and known.deleted else {}
    )
    if stone_before.get(rules.MERGED_INTO) == survivor:
        return []
    what: list[str] = []
    stone = {"by": "crm", "at": run.now.isoformat(), "why": "merged in the CRM", rules.MERGED_INTO: survivor}
    if store.tombstone(conn, ("crm", entity, absorbed), {**stone, "seen_by": run.ctx.run_id}, now=run.now):
        what.append("snapshot tombstoned")
    if settled and what:
        what.append("its 立项申请 settled as an archived deal's (the survivor keeps one)")
    if not settled:
        moved = store.remap_crm_links(conn, entity, ids, run_id=run.ctx.run_id, now=run.now)
        if moved:
            what.append("links moved: " + ", ".join(sorted({link.link_type for link in moved})))
            if entity == "deal":
                _requeue(conn, run, survivor)
        if entity == "deal" and what:
            store.complete_changes(conn, CRM_TO_OA, [("deal", absorbed, None)])
    for other, field in _references(run, entity):
        pointed = store.repoint_snapshots(
            conn, ("crm", other, field), ids, partial(run.d.content_hash, other)
        )
        if pointed:
            what.append(f"{len(pointed)} {other} {field} repointed")
    return what


def _references(run: C2O, entity: str) -> list[tuple[str, str]]:
    """(entity, field) of the staged records that point to a record of ``entity`` (a deal's company…)."""
    target = run.d.entity(entity).crm_object or entity
    return [
        (other, field)
        for other in run.cfg.entities
        for field, object_type in run.d.entity(other).associations.items()
        if object_type == target
    ]


def _requeue(conn: Connection, run: C2O, deal_id: str) -> None:
    """The survivor took over links: queued (debounced) so load sees it with them (a notice if the amount
    differs from the one last sent; never a 立项申请, it is linked)."""
    snap = store.get_snapshots(conn, "crm", "deal", [deal_id]).get(deal_id)
    if snap is not None and not snap.deleted:
        run.enqueue(conn, [("deal", deal_id, snap.content_hash)], 0, 0)


def _settle_deals(conn: Connection, run: C2O, survivor: str, absorbed: Sequence[str]) -> set[str]:
    """Decide which 立项申请 the survivor keeps; mark the others' links archived (merged) and queue them for
    the archive path in load. Returns the absorbed deals whose links stay with them (settled now or before)."""
    links = store.links_for_crm_ids(conn, rules.PROJECT_LINK, [survivor, *absorbed])
    projects = [
        rules.MergedProject(
            one, links[one][0].created_at.isoformat(), bool((links[one][0].state or {}).get("archived"))
        )
        for one in absorbed
        if links.get(one)
    ]
    decision = rules.decide_merge(bool(links.get(survivor)), projects)
    run.tally.add(f"decision_merge_{'inherit' if decision.inherit else 'keep'}")
    queue: list[tuple[str, str, str]] = []
    for one in decision.settle:
        link = next((lk for lk in links[one] if lk.oa_id), None)
        if link is None:
            continue  # only an intent: the deal is gone, its pending change completes without an OA write
        found = {"phase": "found", "at": run.now.isoformat(), rules.MERGED_INTO: survivor}
        store.set_link_states(
            conn,
            {link.id: {**(link.state or {}), "archived": True, rules.ARCHIVE_KEY: found}},
            run_id=run.ctx.run_id,
            now=run.now,
        )
        queue.append(("deal", one, rules.ARCHIVED_HASH + run.now.isoformat()))
        run.tally.add("merged_projects_settled")
    run.enqueue(conn, queue, 0, 0)
    return set(decision.settle) | {p.deal_id for p in projects if p.settling}

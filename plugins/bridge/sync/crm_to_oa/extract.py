"""CRM → OA, task ``extract_stage``: stage what changed in the CRM and queue the deals to send.

For company, contact and deal (in that order): read what changed since the
hub's watermark minus a lookback (``CrmHook.iter_changed``), map it with the
data dictionary, stage snapshots (content hash over the mapped, CRM-owned
fields only) and, for changed deals, queue a debounced pending change.
A page's snapshots, queue, quarantine entries and resolutions, and watermark
are in ONE transaction: one per page for a run's first ten pages, then (a bulk
load) one per eight pages, so a crash re-reads at most the pages of one
transaction. A deal with a blocking problem that matters for the OA goes
to quarantine instead of the queue; a quarantined deal whose content hash
changed is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bridge.clock import to_ms
from bridge.dictionary import Dictionary, MappingResult
from bridge.hooks.hubspot_codec import LIFECYCLE_PROPERTIES, merged_ids_of
from bridge.hub import store
from bridge.hub.store import SnapshotRow
from bridge.readahead import read_ahead
from bridge.staging import crm_stager
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.merge import remap_merges
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import QuarantinedRecord, Run, Tally, blocking_problems, resolve_fixed

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook

# A bulk extract (first run, a backfill) refreshes the hub's planner statistics at 5,000 staged rows
# and each time the number doubles (PostgreSQL only: store.refresh_planner_statistics).
ANALYZE_FIRST_AT = 5_000
# A run's first pages commit one by one (an incremental run is a page or two); past them, a bulk load
# commits this many pages per hub transaction (issue 17: a commit per 200 records cost ~8 % of staging).
GROUP_AFTER_PAGES = 10
GROUP_PAGES = 8

Page = list[dict[str, Any]]
Associations = dict[str, dict[str, list[str]]]


def page_associations(
    crm: CrmHook, d: Dictionary, entity: str, page: Sequence[Mapping[str, Any]]
) -> Associations:
    """The associated ids of one page's objects (deals → companies), by v4 batch read (vendor calls only)."""
    associations: Associations = {}
    ent = d.entity(entity)
    ids = [str(obj.get("id")) for obj in page]
    for object_type in ent.associations.values():
        found = crm.read_associations(ent.crm_object or entity, object_type, ids)
        for oid, targets in found.items():
            associations.setdefault(oid, {})[object_type] = targets
    return associations


def map_page(
    crm: CrmHook | None,
    d: Dictionary,
    entity: str,
    page: Sequence[Mapping[str, Any]],
    associations: Mapping[str, dict[str, list[str]]] | None = None,
) -> list[tuple[SnapshotRow, MappingResult]]:
    """Map one page of CRM objects (deals with their companies from associations v4); the
    associations are read here unless the caller read them already (read ahead)."""
    if associations is None:
        assert crm is not None, "a page without its associations needs the hook to read them"
        associations = page_associations(crm, d, entity, page)
    stager = crm_stager(d, entity)  # mapping, hash and row in one pass; records with problems as before
    mapped: list[tuple[SnapshotRow, MappingResult]] = []
    for obj in page:
        row, result = stager.stage(obj, associations.get(str(obj.get("id"))))
        if row is not None:
            mapped.append((row, result))
    return mapped


def _read_ahead_pages(
    run: Run[CrmToOaSettings], entity: str, since: int
) -> Iterator[tuple[Page, Associations]]:
    """Pages of changed objects with their associations, read by one thread a page ahead of the mapping
    and writing (bridge.readahead): the vendor's answer time overlaps the hub's work. Only that thread
    uses the hook until the pages are exhausted."""
    crm, d = run.hooks.crm, run.d
    object_type = d.entity(entity).crm_object or entity
    properties = [*d.crm_properties(entity), *LIFECYCLE_PROPERTIES]  # + the ids absorbed by merges

    def produce() -> Iterator[tuple[Page, Associations]]:
        for page in crm.iter_changed(object_type, since, properties, page_size=run.cfg.page_size):
            yield page, page_associations(crm, d, entity, page)

    return read_ahead(produce, depth=2, name=f"crm-read-ahead-{entity}")


@dataclass
class _Stream:
    """One entity's read this run: where it starts and from when changes are queued, not only staged."""

    entity: str
    since: int
    backfill_from: int | None  # first run: older changes are only staged (history is the migration's)

    @property
    def name(self) -> str:
        return f"crm.{self.entity}"


def stage_changes(
    run: Run[CrmToOaSettings], sweep: Callable[[Run[CrmToOaSettings]], None] | None = None
) -> Tally:
    """Stage what changed in the CRM and queue the deals to send (task ``extract_stage``); then ``sweep``
    (:func:`.archive.sweep_archived`, passed in: it acts on what the load step owns)."""
    run.cfg.check(run.d)
    crm, tally = run.hooks.crm, run.tally
    calls_before = run.calls_now()
    skipped_before = sum(crm.skipped.values())
    analyse_at = ANALYZE_FIRST_AT  # staged rows after which the planner's statistics are refreshed
    for entity in run.cfg.entities:
        stream = _stream(run, entity)
        with _PageTransactions(run, entity) as pages:
            for page, associations in _read_ahead_pages(run, entity, stream.since):
                pages.done(_stage_page(run, stream, page, associations, pages))
                if tally.counts.get("staged", 0) >= analyse_at:  # a bulk load: at 5k, 10k, 20k … staged rows
                    store.refresh_planner_statistics(pages.conn())
                    analyse_at *= 2
    if sweep is not None and "deal" in run.cfg.entities:
        sweep(run)  # archived deals are invisible to search: a bounded pass over the archived list
    tally.add("skipped_by_hook", sum(crm.skipped.values()) - skipped_before)
    run.finish("crm_to_oa extract", calls_before)
    return tally


def _stream(run: Run[CrmToOaSettings], entity: str) -> _Stream:
    with run.hub.begin() as conn:
        mark = store.get_watermark(conn, f"crm.{entity}")
    since = max(0, mark - run.cfg.lookback_ms) if mark is not None else 0
    backfill_from: int | None = None
    if mark is None and run.cfg.initial_backfill_seconds is not None:
        backfill_from = to_ms(run.now) - int(run.cfg.initial_backfill_seconds * 1000)
    return _Stream(entity, since, backfill_from)


class _PageTransactions:
    """The hub transactions of one entity's pages. The first :data:`GROUP_AFTER_PAGES` pages of a run
    commit one by one; past them (a bulk load) :data:`GROUP_PAGES` pages share one transaction. A page's
    snapshots, queue, quarantine and watermark are always in the same transaction, so the watermark
    moves only with what is committed; a crash re-reads at most the pages of one transaction."""

    def __init__(self, run: Run[CrmToOaSettings], entity: str) -> None:
        self.run, self.entity = run, entity
        self._conn: Connection | None = None
        self._tx: Any = None
        self.pages = self.in_transaction = 0

    def conn(self) -> Connection:
        """The open transaction's connection (one begins when none is open)."""
        if self._conn is None:
            self._conn = self.run.hub.connect()
            self._tx = self._conn.begin()
        return self._conn

    def done(self, wrote: bool) -> None:
        """A page is staged (``wrote``: it used the transaction): commit when its group is complete."""
        if not wrote:
            return
        self.pages += 1
        self.in_transaction += 1
        if self.pages <= GROUP_AFTER_PAGES or self.in_transaction >= GROUP_PAGES:
            self.commit()

    def commit(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            self._tx.commit()
        finally:
            conn.close()
        self.in_transaction = 0
        entity = self.entity
        self.run.step(f"extract_page_committed:{entity}")

    def __enter__(self) -> _PageTransactions:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self.commit()
        elif self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                self._tx.rollback()
            finally:
                conn.close()


def _stage_page(
    run: Run[CrmToOaSettings],
    stream: _Stream,
    page: Page,
    associations: Associations,
    pages: _PageTransactions,
) -> bool:
    """One page: snapshots, the deals' queue and quarantine, and the watermark in the transaction of
    ``pages``; whether there was anything to write."""
    tally, entity = run.tally, stream.entity
    tally.add("read", len(page))
    tally.add(f"read_{entity}", len(page))
    mapped = map_page(None, run.d, entity, page, associations)
    tally.add("skipped_no_id", len(page) - len(mapped))
    if not mapped:
        return False
    conn = pages.conn()
    changes = store.upsert_snapshots(conn, "crm", entity, [row for row, _ in mapped], now=run.now)
    tally.add("unchanged", sum(1 for c in changes if c.status == "unchanged"))
    tally.add("staged", sum(1 for c in changes if c.is_change))
    if entity == "deal":
        _queue_deals(conn, run, mapped, {c.source_id: c for c in changes}, stream.backfill_from)
    merges = {str(obj.get("id")): merged_ids_of(obj) for obj in page}
    remap_merges(conn, run, entity, {sid: ids for sid, ids in merges.items() if ids})
    top = max(row.source_modified_ms for row, _ in mapped)
    tally.watermarks[stream.name] = store.set_watermark(conn, stream.name, top, run.ctx.run_id, now=run.now)
    return True


def _queue_deals(
    conn: Connection,
    run: Run[CrmToOaSettings],
    mapped: Sequence[tuple[SnapshotRow, MappingResult]],
    changes: Mapping[str, store.SnapshotChange],
    backfill_from: int | None,
) -> None:
    """Queue changed deals, quarantine the ones that cannot be sent, retry fixed ones (caller's transaction)."""
    tally, cfg = run.tally, run.cfg
    latest: dict[str, tuple[SnapshotRow, MappingResult]] = {}
    for row, result in mapped:
        current = latest.get(row.source_id)
        if current is None or row.source_modified_ms >= current[0].source_modified_ms:
            latest[row.source_id] = (row, result)
    changed = {sid: pair for sid, pair in latest.items() if changes.get(sid) and changes[sid].is_change}
    if not changed:
        return
    # Only a deal staged before can have an open entry (entries are made of staged records): a page of
    # new deals (a first load) needs no lookup.
    hashes = {sid: row.content_hash for sid, (row, _) in changed.items() if changes[sid].status == "changed"}
    tally.add("retried", len(resolve_fixed(conn, run.ctx, CRM_TO_OA, "deal", hashes, now=run.now)))
    linked: dict[str, list[store.Link]] | None = None  # read when a deal of the page cannot be sent
    needed = rules.needed_deal_fields(run.d)
    queue: list[tuple[str, str, str]] = []
    for sid, (row, result) in changed.items():
        if backfill_from is not None and row.source_modified_ms < backfill_from:
            tally.add("baseline_only")
            continue
        blocking = blocking_problems(result.problems, needed)
        if not blocking:
            queue.append(("deal", sid, row.content_hash))
            continue
        stage = result.record.get("stage")
        if linked is None:
            linked = store.links_for_crm_ids(conn, rules.PROJECT_LINK, list(changed))
        is_linked = any(link.oa_id for link in linked.get(sid, []))
        if stage is not None and stage not in cfg.initiation_stages and not is_linked:
            tally.add("problems_not_for_oa")  # staged for data health; the OA never sees this deal
            continue
        run.quarantine(
            conn,
            ("crm", "deal", sid),
            blocking[0],
            QuarantinedRecord(row.payload, row.content_hash, row.data_owner),
            count=True,
        )
    run.enqueue(conn, queue, cfg.debounce.quiet_seconds, cfg.debounce.max_delay_seconds)

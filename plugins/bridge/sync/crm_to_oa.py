"""CRM → OA: a deal that reaches the configured stage becomes a 立项申请, exactly once.

Three steps, one per DAG task (``dags/crm_to_oa_sync.py``):

``extract_stage``
    For company, contact and deal (in that order): read what changed since the
    hub's watermark minus a lookback (``CrmHook.iter_changed``), map it with the
    data dictionary, stage snapshots (content hash over the mapped, CRM-owned
    fields only) and, for changed deals, queue a debounced pending change.
    Per page, ONE transaction holds the snapshots, the queue, the quarantine
    entries and resolutions, and the watermark. A deal with a blocking problem
    that matters for the OA goes to quarantine instead of the queue; a
    quarantined deal whose content hash changed is retried.

``load``
    For the due pending changes: decide per deal (``bridge.sync.decide``),
    then create the 立项申请 / send the 合同金额变更通知 with a deterministic
    Feishu ``uuid`` saved in the hub *before* the call (an intent), confirm the
    link, audit and complete the change in ONE transaction, and write the
    instance code and project number back to the deal in batches of 100.
    A crash between any two steps followed by a rerun creates nothing twice
    and loses nothing: the OA refuses a used uuid (the hook reads the first
    instance back) and the link's state says which write-backs are left.

``summarise``
    Stores and logs the run summary; the DAG publishes an Asset per entity
    written.

Every function takes its hooks, the hub engine, a RunContext, settings and
``now``: tests and benchmarks call them without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

import bridge.dictionary
from bridge import permissions, runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary, MappingResult, Problem
from bridge.hooks.errors import BadRequestError, NotFoundError, VendorError
from bridge.hub import store
from bridge.hub.store import Link, PendingChange, PendingKey, SnapshotRow
from bridge.permissions import Policy
from bridge.readahead import read_ahead
from bridge.staging import PROBLEMS_KEY, canonical, snapshot_row
from bridge.sync import decide as rules
from bridge.sync.common import (
    CRM_TO_OA,
    DebounceSettings,
    SyncSettingsError,
    Tally,
    approval_code,
    asset_uri,
    audit_event,
    blocking_problems,
    calls_since,
    calls_snapshot,
    exclusive_load,
    number,
    quarantine_problem,
    resolve_fixed,
    section,
    store_run_summary,
    summary_line,
    to_ms,
    write_audit,
)

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

log = logging.getLogger("bridge.sync.crm_to_oa")

KIND = runkinds.CRM_TO_OA  # run_summary.kind
ASSETS = {
    "project_initiation": asset_uri("oa", rules.PROJECT_FORM),
    "contract_amount_notice": asset_uri("oa", rules.NOTICE_FORM),
    "deal": asset_uri("crm", "deal"),
}
# Which counter says an asset was updated in a run.
ASSET_COUNTERS = {"project_initiation": "instances_created", "contract_amount_notice": "notices_sent",
                  "deal": "writebacks"}
ENTITY_ORDER = ("company", "contact", "deal")
MAX_DEFER_SECONDS = 900

Checkpoint = Callable[[str], None]


class SyncIncomplete(RuntimeError):
    """The run stopped early because a vendor was unavailable; what it did is committed, the rest waits."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class CrmToOaSettings:
    """``crm_to_oa``, ``debounce`` and ``oa`` of include/settings.yaml, checked."""

    entities: tuple[str, ...] = ENTITY_ORDER
    initiation_stages: frozenset[str] = frozenset({"contract", "won"})
    lookback_ms: int = 120_000
    page_size: int = 200
    debounce: DebounceSettings = field(default_factory=DebounceSettings)
    max_changes_per_run: int = 1000
    # First run (no watermark yet): records modified this long before it are
    # queued; older ones are only staged (history belongs to the migration).
    # None = queue everything.
    initial_backfill_seconds: float | None = 86_400
    create_chunk: int = 50
    writeback_batch: int = 100
    retry_delay_seconds: float = 60
    approval_codes: Mapping[str, str] = field(default_factory=dict)
    notice_applicant_email: str | None = None
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> CrmToOaSettings:
        if settings is None:
            from bridge import settings as bridge_settings

            settings = bridge_settings.load()
        values = section(settings, "crm_to_oa")
        where = "crm_to_oa"
        entities = tuple(str(e) for e in values.get("entities") or ENTITY_ORDER)
        unknown = [e for e in entities if e not in ENTITY_ORDER]
        if unknown or "deal" not in entities:
            raise SyncSettingsError(
                f"include/settings.yaml: crm_to_oa.entities must list CRM entities of {list(ENTITY_ORDER)} "
                f"including deal; got {list(entities)}"
            )
        stages = values.get("initiation_stages") or ["contract", "won"]
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
            raise SyncSettingsError("include/settings.yaml: crm_to_oa.initiation_stages must be a list of deal stages")
        backfill = values.get("initial_backfill_hours", 24)
        oa = section(settings, "oa")
        codes = section(oa, "approval_codes")
        return cls(
            entities=tuple(e for e in ENTITY_ORDER if e in entities),
            initiation_stages=frozenset(stages),
            lookback_ms=int(number(values, "lookback_seconds", 120, where) * 1000),
            page_size=int(number(values, "page_size", 200, where, minimum=1)),
            debounce=DebounceSettings.from_settings(settings),
            max_changes_per_run=int(number(values, "max_changes_per_run", 1000, where, minimum=1)),
            initial_backfill_seconds=None if backfill is None else number(
                values, "initial_backfill_hours", 24, where) * 3600,
            create_chunk=int(number(values, "create_chunk", 50, where, minimum=1)),
            writeback_batch=int(min(100, number(values, "writeback_batch", 100, where, minimum=1))),
            retry_delay_seconds=number(values, "retry_delay_seconds", 60, where),
            approval_codes={str(k): str(v) for k, v in codes.items() if v},
            notice_applicant_email=str(oa["notice_applicant_email"]) if oa.get("notice_applicant_email") else None,
        )

    def check(self, dictionary: Dictionary) -> None:
        """Refuse settings that name stages the dictionary does not know."""
        stages = set(dictionary.value_maps["deal_stage"].canonical_values)
        unknown = sorted(self.initiation_stages - stages)
        if unknown:
            raise SyncSettingsError(
                f"include/settings.yaml: crm_to_oa.initiation_stages has {unknown}, which are not canonical "
                f"values of value_maps.deal_stage in {dictionary.path} ({sorted(stages)})"
            )

    def code(self, form: str) -> str:
        return approval_code({"oa": {"approval_codes": dict(self.approval_codes)}}, form)


# A bulk extract (first run, a backfill) refreshes the hub's planner statistics at 5,000 staged rows
# and each time the number doubles (PostgreSQL only: store.refresh_planner_statistics).
ANALYZE_FIRST_AT = 5_000


# ---------------------------------------------------------------- shared bits


def _tools(dictionary: Dictionary | None, policy: Policy | None) -> tuple[Dictionary, Policy]:
    d = dictionary or bridge.dictionary.load()
    return d, policy or permissions.load(dictionary=d)


def _checkpoint(checkpoint: Checkpoint | None, step: str) -> None:
    if checkpoint is not None:
        checkpoint(step)


def _today(now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).date().isoformat()


# ---------------------------------------------------------------- extract


def _page_associations(crm: CrmHook, d: Dictionary, entity: str,
                       page: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """The associated ids of one page's objects (deals → companies), by v4 batch read (vendor calls only)."""
    associations: dict[str, dict[str, list[str]]] = {}
    ent = d.entity(entity)
    ids = [str(obj.get("id")) for obj in page]
    for object_type in ent.associations.values():
        found = crm.read_associations(ent.crm_object or entity, object_type, ids)
        for oid, targets in found.items():
            associations.setdefault(oid, {})[object_type] = targets
    return associations


def _map_page(
    crm: CrmHook | None, d: Dictionary, entity: str, page: Sequence[Mapping[str, Any]],
    associations: Mapping[str, dict[str, list[str]]] | None = None,
) -> list[tuple[SnapshotRow, MappingResult]]:
    """Map one page of HubSpot objects (deals with their companies from associations v4); the
    associations are read here unless the caller read them already (read ahead)."""
    ent = d.entity(entity)
    if associations is None:
        assert crm is not None, "a page without its associations needs the hook to read them"
        associations = _page_associations(crm, d, entity, page)
    mapped: list[tuple[SnapshotRow, MappingResult]] = []
    for obj in page:
        oid = str(obj.get("id"))
        result = d.from_crm(entity, obj, associations.get(oid) if ent.associations else None)
        row = snapshot_row(d, entity, result)
        if row is not None:
            mapped.append((row, result))
    return mapped


def _read_ahead_pages(crm: CrmHook, d: Dictionary, entity: str, since: int, properties: Sequence[str],
                      page_size: int) -> Iterator[tuple[list[dict[str, Any]], dict[str, dict[str, list[str]]]]]:
    """Pages of changed objects with their associations, read by one thread a page ahead of the mapping
    and writing (bridge.readahead): the vendor's answer time overlaps the hub's work. Only that thread
    uses the hook until the pages are exhausted."""
    object_type = d.entity(entity).crm_object or entity

    def produce() -> Iterator[tuple[list[dict[str, Any]], dict[str, dict[str, list[str]]]]]:
        for page in crm.iter_changed(object_type, since, properties, page_size=page_size):
            yield page, _page_associations(crm, d, entity, page)

    return read_ahead(produce, depth=2, name=f"crm-read-ahead-{entity}")


def extract_stage(
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    *,
    dictionary: Dictionary | None = None,
    checkpoint: Checkpoint | None = None,
) -> Tally:
    """Stage what changed in the CRM and queue the deals to send (task ``extract_stage``)."""
    d = dictionary or bridge.dictionary.load()
    cfg.check(d)
    tally = Tally()
    calls_before = calls_snapshot(crm=crm)
    skipped_before = sum(crm.skipped.values())
    needed = rules.needed_deal_fields(d)
    analyse_at = ANALYZE_FIRST_AT  # staged rows after which the planner's statistics are refreshed
    for entity in cfg.entities:
        stream = f"crm.{entity}"
        with hub.begin() as conn:
            mark = store.get_watermark(conn, stream)
        since = max(0, mark - cfg.lookback_ms) if mark is not None else 0
        backfill_from: int | None = None
        if mark is None and cfg.initial_backfill_seconds is not None:
            backfill_from = to_ms(now) - int(cfg.initial_backfill_seconds * 1000)
        pages = _read_ahead_pages(crm, d, entity, since, d.crm_properties(entity), cfg.page_size)
        for page, associations in pages:
            tally.add("read", len(page))
            tally.add(f"read_{entity}", len(page))
            mapped = _map_page(None, d, entity, page, associations)
            tally.add("skipped_no_id", len(page) - len(mapped))
            if not mapped:
                continue
            with hub.begin() as conn:
                changes = store.upsert_snapshots(conn, "crm", entity, [row for row, _ in mapped], now=now)
                by_status = {c.source_id: c for c in changes}
                tally.add("unchanged", sum(1 for c in changes if c.status == "unchanged"))
                tally.add("staged", sum(1 for c in changes if c.is_change))
                if entity == "deal":
                    _queue_deals(conn, ctx, d, cfg, now, mapped, by_status, needed, backfill_from, tally)
                top = max(row.source_modified_ms for row, _ in mapped)
                tally.watermarks[stream] = store.set_watermark(conn, stream, top, ctx.run_id, now=now)
            _checkpoint(checkpoint, f"extract_page_committed:{entity}")
            if tally.counts.get("staged", 0) >= analyse_at:  # a bulk load: at 5k, 10k, 20k … staged rows
                with hub.begin() as conn:
                    store.refresh_planner_statistics(conn)
                analyse_at *= 2
    tally.add("skipped_by_hook", sum(crm.skipped.values()) - skipped_before)
    tally.api_calls = calls_since(calls_before, crm=crm)
    log.info("%s", summary_line("crm_to_oa extract", tally.counts, tally.api_calls))
    return tally


def _queue_deals(
    conn: Connection,
    ctx: RunContext,
    d: Dictionary,
    cfg: CrmToOaSettings,
    now: datetime,
    mapped: Sequence[tuple[SnapshotRow, MappingResult]],
    changes: Mapping[str, store.SnapshotChange],
    needed: frozenset[str],
    backfill_from: int | None,
    tally: Tally,
) -> None:
    """Queue changed deals, quarantine the ones that cannot be sent, retry fixed ones (caller's transaction)."""
    latest: dict[str, tuple[SnapshotRow, MappingResult]] = {}
    for row, result in mapped:
        current = latest.get(row.source_id)
        if current is None or row.source_modified_ms >= current[0].source_modified_ms:
            latest[row.source_id] = (row, result)
    changed = {sid: pair for sid, pair in latest.items() if changes.get(sid) and changes[sid].is_change}
    if not changed:
        return
    fixed = resolve_fixed(conn, ctx, CRM_TO_OA, "deal", {sid: row.content_hash for sid, (row, _) in changed.items()},
                          now=now)
    tally.add("retried", len(fixed))
    linked = store.links_for_crm_ids(conn, rules.PROJECT_LINK, list(changed))
    queue: list[tuple[str, str, str]] = []
    for sid, (row, result) in changed.items():
        if backfill_from is not None and row.source_modified_ms < backfill_from:
            tally.add("baseline_only")
            continue
        blocking = blocking_problems(result.problems, needed)
        if blocking:
            stage = result.record.get("stage")
            is_linked = any(link.oa_id for link in linked.get(sid, []))
            if stage is None or stage in cfg.initiation_stages or is_linked:
                quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", sid, blocking[0], row.payload,
                                   row.content_hash, data_owner=row.data_owner, dictionary_version=d.version, now=now)
                tally.add("quarantined")
                tally.add(f"quarantined_{blocking[0].code}")
            else:
                tally.add("problems_not_for_oa")
            continue
        queue.append(("deal", sid, row.content_hash))
    tally.add("enqueued", store.enqueue_changes(conn, CRM_TO_OA, queue, now, cfg.debounce.quiet_seconds,
                                                cfg.debounce.max_delay_seconds))


# ---------------------------------------------------------------- load: reading state


@dataclass
class _Due:
    """One due deal and everything the decision needs."""

    change: PendingChange
    payload: dict[str, Any] | None = None
    project_link: Link | None = None
    notice_link: Link | None = None
    company: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    decision: rules.Decision | None = None

    @property
    def deal_id(self) -> str:
        return self.change.source_id

    @property
    def key(self) -> PendingKey:
        return PendingKey("deal", self.change.source_id, self.change.content_hash)


def _has_blocking(payload: Mapping[str, Any] | None) -> bool:
    codes = (payload or {}).get(PROBLEMS_KEY) or []
    return any(c in ("missing_required", "unmapped_value", "hostile_input") for c in codes)


def _refresh_released(
    crm: CrmHook, hub: Engine, ctx: RunContext, d: Dictionary, dues: Sequence[_Due], now: datetime, tally: Tally,
    initiation_stages: frozenset[str],
) -> None:
    """Re-read from the CRM the due deals staged with problems and not in quarantine (a person released
    them, e.g. after adding a value to the dictionary): map them with today's dictionary."""
    stale = [due for due in dues if due.payload is not None and _has_blocking(due.payload)]
    if not stale:
        return
    outcomes = crm.batch_read("deals", [due.deal_id for due in stale], properties=d.crm_properties("deal"))
    objects = [o.object for o in outcomes if o.ok and o.object is not None]
    if not objects:
        return
    mapped = _map_page(crm, d, "deal", objects)
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", [row for row, _ in mapped], now=now)
    fresh = {row.source_id: row.payload for row, _ in mapped}
    for due in stale:
        if due.deal_id in fresh:
            due.payload = fresh[due.deal_id]
            tally.add("refreshed")
    # Still broken and still meant for the OA: back to quarantine with the dictionary's message.
    needed = rules.needed_deal_fields(d)
    linked = {due.deal_id for due in stale if due.project_link is not None and due.project_link.oa_id}
    with hub.begin() as conn:
        for row, result in mapped:
            blocking = blocking_problems(result.problems, needed)
            stage = result.record.get("stage")
            if blocking and (stage is None or stage in initiation_stages or row.source_id in linked):
                quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", row.source_id, blocking[0], row.payload,
                                   row.content_hash, data_owner=row.data_owner, dictionary_version=d.version, now=now)


def _load_companies(
    crm: CrmHook, hub: Engine, d: Dictionary, dues: Sequence[_Due], now: datetime, tally: Tally,
) -> None:
    """Attach the current company and primary contact snapshots (companies missing in the hub are read)."""
    company_ids = sorted({str(due.payload.get("company_id")) for due in dues
                          if due.payload is not None and due.payload.get("company_id")})
    if not company_ids:
        return
    with hub.connect() as conn:
        companies = {sid: snap.payload for sid, snap in store.get_snapshots(conn, "crm", "company", company_ids).items()
                     if not snap.deleted}
    missing = [cid for cid in company_ids if cid not in companies]
    if missing:
        outcomes = crm.batch_read("companies", missing, properties=d.crm_properties("company"))
        objects = [o.object for o in outcomes if o.ok and o.object is not None]
        if objects:
            rows = [r for r, _ in _map_page(crm, d, "company", objects)]
            with hub.begin() as conn:
                store.upsert_snapshots(conn, "crm", "company", rows, now=now)
            companies.update({row.source_id: row.payload for row in rows})
            tally.add("companies_read_on_demand", len(rows))
    with hub.connect() as conn:
        contacts = store.snapshots_by_field(conn, "crm", "contact", "company_id", list(companies))
    for due in dues:
        cid = str((due.payload or {}).get("company_id") or "")
        due.company = companies.get(cid)
        due.contact = rules.primary_contact(s.payload for s in contacts.get(cid, []))


@dataclass
class _People:
    """Per-run cache of CRM owners → OA users (persisted as ``owner_user`` links)."""

    owners: dict[str, dict[str, Any]] | None = None
    users: dict[str, rules.Owner] = field(default_factory=dict)
    notice_applicant: str | None = None
    notice_applicant_known: bool = False


def _resolve_owners(
    crm: CrmHook, oa: OaHook, hub: Engine, d: Dictionary, owner_ids: Iterable[str], people: _People, now: datetime,
    ctx: RunContext,
) -> None:
    wanted = sorted({o for o in owner_ids if o and o not in people.users})
    if not wanted:
        return
    with hub.connect() as conn:
        links = store.links_for_crm_ids(conn, "owner_user", wanted)
    for oid in wanted:
        confirmed = [link for link in links.get(oid, []) if link.oa_id]
        if confirmed:
            people.users[oid] = rules.Owner(oid, None, confirmed[0].oa_id)
    unknown = [oid for oid in wanted if oid not in people.users]
    if not unknown:
        return
    if people.owners is None:
        people.owners = {str(o["id"]): o for o in crm.owners()}
        _remember_names(hub, people.owners.values(), now)
    emails = {oid: str(people.owners[oid]["email"]) for oid in unknown
              if oid in people.owners and people.owners[oid].get("email")}
    mobiles = {oid: str(people.owners[oid].get("mobile") or people.owners[oid].get("phone"))
               for oid in unknown if oid in people.owners
               and (people.owners[oid].get("mobile") or people.owners[oid].get("phone"))}
    found = oa.user_ids(emails=list(emails.values()), mobiles=list(mobiles.values())) if emails or mobiles else {}
    matched: list[tuple[str, str, str]] = []
    for oid in unknown:
        user = found.get(emails.get(oid, "")) if oid in emails else None
        how = "email"
        if user is None and oid in mobiles:
            user, how = found.get(mobiles[oid]), "mobile"
        people.users[oid] = rules.Owner(oid, emails.get(oid), user)
        if user:
            matched.append((oid, user, how))
    if matched:
        with hub.begin() as conn:
            for oid, user, how in matched:
                store.save_link(conn, "owner_user", store.NewLink(crm_type="owner", crm_id=oid, oa_type="user", oa_id=user, state={"matched_by": how}), dictionary_version=d.version, run_id=ctx.run_id, now=now)


def _remember_names(hub: Engine, owners: Iterable[Mapping[str, Any]], now: datetime) -> None:
    """Keep the owners' names for the pages (a nicety: a failure here never stops the sync)."""
    from bridge import people as bridge_people

    try:
        with hub.begin() as conn:
            bridge_people.remember_crm_owners(conn, owners, now=now)
    except Exception as exc:
        log.warning("crm_to_oa: owner names not stored (%s: %s)", type(exc).__name__, exc)


def _notice_applicant(oa: OaHook, cfg: CrmToOaSettings, people: _People) -> str | None:
    if not people.notice_applicant_known:
        email = cfg.notice_applicant_email
        people.notice_applicant = oa.user_ids(emails=[email]).get(email) if email else None
        people.notice_applicant_known = True
    return people.notice_applicant


# ---------------------------------------------------------------- load


def load(
    crm: CrmHook,
    oa: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    *,
    dictionary: Dictionary | None = None,
    policy: Policy | None = None,
    checkpoint: Checkpoint | None = None,
) -> Tally:
    """Send the due deals to the OA and write the results back to the CRM (task ``load``).

    Raises :class:`SyncIncomplete` after committing what it did when a vendor
    stayed unavailable through the hook's retries: the rest waits in the queue.
    One load writes at a time: a run that finds another one loading leaves the
    due changes to it (``skipped_other_load``).
    """
    d, p = _tools(dictionary, policy)
    cfg.check(d)
    return exclusive_load(hub, CRM_TO_OA, ctx, now, lambda: _load(crm, oa, hub, ctx, cfg, now, d, p, checkpoint))


def _load(crm: CrmHook, oa: OaHook, hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, now: datetime,
          d: Dictionary, p: Policy, checkpoint: Checkpoint | None) -> Tally:
    tally = Tally()
    calls_before = calls_snapshot(crm=crm, oa=oa)
    stopped: VendorError | None = None
    try:
        stopped = _send_due(crm, oa, hub, ctx, cfg, now, d, p, tally, checkpoint)
        try:
            _write_back(crm, hub, ctx, cfg, now, d, p, tally, checkpoint)
        except VendorError as exc:  # the CRM stayed unavailable: the links keep writeback pending
            log.warning("crm_to_oa: write-back stopped, the CRM is unavailable (%s %s %s); next run resumes it",
                        type(exc).__name__, exc.status, exc.code)
            tally.add("writebacks_deferred")
            stopped = stopped or exc
    finally:
        tally.api_calls = calls_since(calls_before, crm=crm, oa=oa)
    with hub.connect() as conn:
        tally.add("debounced", sum(1 for c in store.pending_changes(conn, CRM_TO_OA) if c.due_at > now))
    log.info("%s", summary_line("crm_to_oa load", tally.counts, tally.api_calls))
    if stopped is not None:
        raise SyncIncomplete(
            f"the OA or CRM was unavailable ({type(stopped).__name__}: {stopped.status} {stopped.code}); "
            f"{tally.counts.get('deferred', 0)} change(s) wait for the next run") from stopped
    return tally


def _send_due(
    crm: CrmHook, oa: OaHook, hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, now: datetime, d: Dictionary,
    p: Policy, tally: Tally, checkpoint: Checkpoint | None,
) -> VendorError | None:
    with hub.connect() as conn:
        queued = store.due_changes(conn, CRM_TO_OA, now, limit=cfg.max_changes_per_run)
    tally.add("due", len(queued))
    other = [c for c in queued if c.entity != "deal"]
    if other:
        with hub.begin() as conn:
            store.complete_changes(conn, CRM_TO_OA, [PendingKey(c.entity, c.source_id, c.content_hash) for c in other])
        tally.add("ignored_entity", len(other))
    dues = [_Due(c) for c in queued if c.entity == "deal"]
    if not dues:
        return None
    ids = [due.deal_id for due in dues]
    with hub.connect() as conn:
        snaps = store.get_snapshots(conn, "crm", "deal", ids)
        project_links = store.links_for_crm_ids(conn, rules.PROJECT_LINK, ids)
        notice_links = store.links_for_crm_ids(conn, rules.NOTICE_LINK, ids)
        held = store.open_quarantine_for(conn, CRM_TO_OA, "deal", ids)
    active: list[_Due] = []
    done: list[PendingKey] = []
    for due in dues:
        snap = snaps.get(due.deal_id)
        if snap is None or snap.deleted:
            done.append(due.key)
            tally.add("nothing_deleted")
            continue
        if due.deal_id in held:
            done.append(due.key)
            tally.add("held_in_quarantine")
            continue
        due.payload = snap.payload
        links = project_links.get(due.deal_id, [])
        due.project_link = next((lk for lk in links if lk.oa_id), None) or (links[0] if links else None)
        due.notice_link = next((lk for lk in notice_links.get(due.deal_id, []) if lk.oa_id is None), None)
        active.append(due)
    _refresh_released(crm, hub, ctx, d, active, now, tally, cfg.initiation_stages)
    _load_companies(crm, hub, d, active, now, tally)
    people = _People()
    candidates = [due for due in active if (due.payload or {}).get("stage") in cfg.initiation_stages
                  and not (due.project_link and due.project_link.oa_id)]
    _resolve_owners(crm, oa, hub, d, [str(due.payload.get("owner_id")) for due in candidates
                                      if due.payload and due.payload.get("owner_id")], people, now, ctx)
    today = _today(now, cfg.timezone)
    by_action: dict[str, list[_Due]] = {}
    for due in active:
        assert due.payload is not None
        owner_id = str(due.payload.get("owner_id") or "")
        due.decision = rules.decide_deal(
            d, due.payload, company=due.company, project=rules.ProjectLink.of(due.project_link),
            notice_intent=rules.NoticeIntent.of(due.notice_link), owner=people.users.get(owner_id),
            initiation_stages=cfg.initiation_stages, today=today,
        )
        by_action.setdefault(due.decision.action, []).append(due)
        tally.add(f"decision_{due.decision.reason}")
    # Quick outcomes first: nothing to send, quarantine, baselines.
    with hub.begin() as conn:
        for due in by_action.get("quarantine", []):
            assert due.decision is not None
            assert due.decision.problem is not None
            assert due.payload is not None
            snap = snaps[due.deal_id]
            quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", due.deal_id, due.decision.problem, due.payload,
                               snap.content_hash, data_owner=snap.data_owner, dictionary_version=d.version, now=now)
            done.append(due.key)
            tally.add("quarantined")
            tally.add(f"quarantined_{due.decision.problem.code}")
        for due in by_action.get("baseline", []):
            assert due.project_link is not None
            assert due.payload is not None
            _update_state(conn, due.project_link, {"amount_sent": due.payload.get("contract_amount")}, d, ctx, now)
            done.append(due.key)
            tally.add("baselined")
        for due in by_action.get("nothing", []):
            done.append(due.key)
            tally.add("nothing")
        store.complete_changes(conn, CRM_TO_OA, done)
    try:
        for due in by_action.get("probe_intent", []):
            _probe_intent(oa, hub, ctx, d, due, now, tally)
        creates = by_action.get("create", [])
        for start in range(0, len(creates), cfg.create_chunk):
            _create_projects(oa, hub, ctx, cfg, d, p, creates[start:start + cfg.create_chunk], now, tally, checkpoint)
        notices = by_action.get("notice", [])
        if notices:
            applicant = _notice_applicant(oa, cfg, people)
            if applicant is None:
                _quarantine_notice_applicant(hub, ctx, cfg, d, notices, snaps, now, tally)
            else:
                for due in notices:
                    _send_notice(oa, hub, ctx, cfg, d, p, due, applicant, now, tally, checkpoint)
    except _VendorUnavailable as stop:
        _defer(hub, cfg, stop.remaining, now, tally)
        return stop.error
    return None


class _VendorUnavailable(Exception):
    def __init__(self, error: VendorError, remaining: Sequence[_Due]) -> None:
        super().__init__(str(error))
        self.error = error
        self.remaining = list(remaining)


def _defer(hub: Engine, cfg: CrmToOaSettings, dues: Sequence[_Due], now: datetime, tally: Tally) -> None:
    with hub.begin() as conn:
        for due in dues:
            delay = min(MAX_DEFER_SECONDS, cfg.retry_delay_seconds * (2 ** min(due.change.attempts, 6)))
            store.defer_change(conn, CRM_TO_OA, "deal", due.deal_id, now, delay)
    tally.add("deferred", len(dues))
    log.warning("crm_to_oa: vendor unavailable; %d change(s) deferred", len(dues))


def _update_state(conn: Connection, link: Link, changes: Mapping[str, Any], d: Dictionary, ctx: RunContext,
                  now: datetime) -> Link:
    state = {**(link.state or {}), **changes}
    return store.save_link(conn, link.link_type, store.NewLink(crm_type=link.crm_type, crm_id=link.crm_id, oa_type=link.oa_type, oa_id=link.oa_id, oa_uuid=link.oa_uuid, state=state), dictionary_version=d.version, run_id=ctx.run_id, now=now)


def _is_rejection(exc: VendorError) -> bool:
    """A refusal about this record (fix the data), as opposed to an outage (try later)."""
    return isinstance(exc, BadRequestError | NotFoundError) and not exc.retryable


def _rejected(record_kind: str, deal_id: str, exc: VendorError) -> Problem:
    return Problem(
        code="vendor_rejected", entity="deal", field=None, department="sales",
        message=(f"商机「{deal_id}」的{record_kind}被 {exc.system.upper()} 拒绝（{exc.status} {exc.code or ''}）："
                 f"{exc.message}。请按提示在 CRM 中修正商机后自动重试，或修正配置后执行 `bridge quarantine release`。"),
    )


def _project_sources(due: _Due) -> dict[str, Any]:
    return {"deal": canonical(dict(due.payload or {})), "company": canonical(dict(due.company or {})),
            "contact": due.contact}


def _create_projects(
    oa: OaHook, hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, d: Dictionary, p: Policy, chunk: Sequence[_Due],
    now: datetime, tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    """Create the 立项申请 of a chunk: intents, OA calls, then one transaction confirming them."""
    code = cfg.code(rules.PROJECT_FORM)
    # 1. Intents: the uuid is in the hub before the OA sees it (a retry finds it and sends the same uuid).
    with hub.begin() as conn:
        fresh = [due for due in chunk if due.project_link is None]
        store.add_links(conn, rules.PROJECT_LINK, [
            store.NewLink(crm_type="deal", crm_id=due.deal_id, oa_type=rules.PROJECT_FORM,
                          oa_uuid=due.decision.uuid if due.decision else None, state={"phase": "creating"})
            for due in fresh], dictionary_version=d.version, run_id=ctx.run_id, now=now)
        store.set_link_states(conn, {due.project_link.id: {**(due.project_link.state or {}), "phase": "creating"}
                                     for due in chunk if due.project_link is not None},
                              run_id=ctx.run_id, now=now)
        found = store.links_for_crm_ids(conn, rules.PROJECT_LINK, [due.deal_id for due in fresh])
        for due in fresh:
            due.project_link = next(lk for lk in found[due.deal_id] if lk.oa_id is None)
    _checkpoint(checkpoint, "intents_saved")
    created: list[tuple[_Due, str, dict[str, Any], list[str]]] = []
    rejected: list[tuple[_Due, VendorError]] = []
    stop: _VendorUnavailable | None = None
    for n, due in enumerate(chunk):
        assert due.decision is not None
        assert due.decision.uuid
        assert due.decision.applicant
        sources = _project_sources(due)
        form = d.fill_form(rules.PROJECT_FORM, sources, p)
        title = d.form_title(rules.PROJECT_FORM, sources, p)
        try:
            instance_code = oa.create_instance(code, due.decision.applicant, form, due.decision.uuid, title=title)
            _checkpoint(checkpoint, "instance_created")
            detail = oa.get_instance(instance_code)
            _checkpoint(checkpoint, "instance_read")
        except VendorError as exc:
            if _is_rejection(exc):
                rejected.append((due, exc))
                continue
            stop = _VendorUnavailable(exc, chunk[n:])
            break
        created.append((due, instance_code, detail, [w["id"] for w in form]))
    # 2. One transaction: links confirmed, audit, changes completed.
    events = []
    with hub.begin() as conn:
        keys: list[PendingKey] = []
        states: dict[int, dict[str, Any]] = {}
        codes: dict[int, str] = {}
        for due, instance_code, detail, fields in created:
            instance = d.from_oa(rules.PROJECT_FORM, detail).record
            sent_amount = instance.get("contract_amount") or (due.payload or {}).get("contract_amount")
            assert due.project_link is not None
            states[due.project_link.id] = {
                "phase": "created", "amount_sent": sent_amount, "notices": 0, "project_no": instance.get("project_no"),
                "approval_status": instance.get("approval_status"), "writeback": "pending"}
            codes[due.project_link.id] = instance_code
            events.append(audit_event("create_instance", "oa", rules.PROJECT_FORM,
                                      {"deal_id": due.deal_id, "instance_code": instance_code}, fields, "ok",
                                      detail="uuid " + str(due.decision.uuid if due.decision else ""),
                                      dictionary=d, policy_version=p.version))
            if rules.amount(sent_amount) == rules.amount((due.payload or {}).get("contract_amount")):
                keys.append(due.key)
            else:  # an earlier attempt sent an older amount: keep it queued, a notice follows
                tally.add("created_with_older_amount")
        store.set_link_states(conn, states, oa_ids=codes, dictionary_version=d.version, run_id=ctx.run_id, now=now)
        for due, refusal in rejected:
            snap_hash = due.change.content_hash
            _abandon_intent(conn, due, d, ctx, now, "rejected")
            quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", due.deal_id,
                               _rejected("立项申请", due.deal_id, refusal),
                               due.payload, snap_hash, data_owner=str((due.payload or {}).get("owner_id") or ""),
                               dictionary_version=d.version, now=now)
            events.append(audit_event("create_instance", "oa", rules.PROJECT_FORM, {"deal_id": due.deal_id}, [],
                                      "rejected", detail=f"{refusal.status} {refusal.code}", dictionary=d,
                                      policy_version=p.version))
            keys.append(due.key)
        write_audit(conn, ctx, events)
        store.complete_changes(conn, CRM_TO_OA, keys)
    tally.add("instances_created", len(created))
    tally.add("written", len(created))
    tally.add("quarantined", len(rejected))
    tally.add("quarantined_vendor_rejected", len(rejected))
    _checkpoint(checkpoint, "links_committed")
    if stop is not None:
        raise stop


def _abandon_intent(conn: Connection, due: _Due, d: Dictionary, ctx: RunContext, now: datetime, why: str) -> None:
    if due.project_link is not None and due.project_link.oa_id is None:
        _update_state(conn, due.project_link, {"phase": "abandoned", "why": why}, d, ctx, now)


def _probe_intent(oa: OaHook, hub: Engine, ctx: RunContext, d: Dictionary, due: _Due, now: datetime,
                  tally: Tally) -> None:
    """A create started earlier for a deal that no longer qualifies: adopt the instance if it exists."""
    assert due.decision is not None
    assert due.decision.uuid
    try:
        detail = oa.get_instance(due.decision.uuid)
    except NotFoundError:
        detail = None
    except VendorError as exc:
        raise _VendorUnavailable(exc, [due]) from exc
    with hub.begin() as conn:
        if detail is None or not detail.get("instance_code"):
            _abandon_intent(conn, due, d, ctx, now, "stage_left")
            tally.add("intents_abandoned")
        else:
            instance = d.from_oa(rules.PROJECT_FORM, detail).record
            store.save_link(conn, rules.PROJECT_LINK, store.NewLink(crm_type="deal", crm_id=due.deal_id, oa_type=rules.PROJECT_FORM, oa_id=str(detail["instance_code"]), oa_uuid=due.decision.uuid, state={"phase": "created", "amount_sent": instance.get("contract_amount"), "notices": 0,
                                   "project_no": instance.get("project_no"),
                                   "approval_status": instance.get("approval_status"), "writeback": "pending"}), dictionary_version=d.version, run_id=ctx.run_id, now=now)
            write_audit(conn, ctx, [audit_event("adopt_instance", "oa", rules.PROJECT_FORM,
                                                {"deal_id": due.deal_id, "instance_code": str(detail["instance_code"])},
                                                [], "ok", detail="created by an earlier attempt", dictionary=d)])
            tally.add("intents_adopted")
        store.complete_changes(conn, CRM_TO_OA, [due.key])


def _quarantine_notice_applicant(
    hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, d: Dictionary, notices: Sequence[_Due],
    snaps: Mapping[str, store.Snapshot], now: datetime, tally: Tally,
) -> None:
    problem = Problem(
        code="owner_not_in_oa", entity="deal", field=None, department="finance",
        message=(f"合同金额变更通知的申请人（include/settings.yaml 中 oa.notice_applicant_email = "
                 f"{cfg.notice_applicant_email or '未配置'}）在 OA 中没有账号，通知无法发出。请 OA 管理员开通该账号或修改配置，"
                 f"然后执行 `bridge quarantine release` 释放这些记录。"),
    )
    with hub.begin() as conn:
        for due in notices:
            snap = snaps[due.deal_id]
            quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", due.deal_id, problem, due.payload, None,
                               data_owner=snap.data_owner, dictionary_version=d.version, now=now)
        store.complete_changes(conn, CRM_TO_OA, [due.key for due in notices])
    tally.add("quarantined", len(notices))
    tally.add("quarantined_owner_not_in_oa", len(notices))


def _send_notice(
    oa: OaHook, hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, d: Dictionary, p: Policy, due: _Due,
    applicant: str, now: datetime, tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    """One 合同金额变更通知: intent, OA call, then links, audit and completion in one transaction."""
    decision, project = due.decision, due.project_link
    assert decision is not None
    assert decision.uuid
    assert project is not None
    assert project.oa_id
    assert due.payload is not None
    notice = decision.notice
    state = {"phase": "creating", "seq": notice["seq"], "old_amount": notice["old_amount"],
             "new_amount": notice["new_amount"], "changed_at": notice["changed_at"]}
    with hub.begin() as conn:
        store.save_link(conn, rules.NOTICE_LINK, store.NewLink(crm_type="deal", crm_id=due.deal_id, oa_type=rules.NOTICE_FORM, oa_id=None, oa_uuid=decision.uuid, state=state), dictionary_version=d.version, run_id=ctx.run_id, now=now)
    _checkpoint(checkpoint, "notice_intent_saved")
    project_state = project.state or {}
    deal = canonical(dict(due.payload))
    if not deal.get("project_no") and project_state.get("project_no"):
        deal["project_no"] = project_state["project_no"]
    notice_record = {"deal_id": due.deal_id, "project_no": deal.get("project_no"),
                     "old_amount": notice["old_amount"], "new_amount": notice["new_amount"],
                     "changed_at": notice["changed_at"]}
    sources = {"deal": deal, "company": canonical(dict(due.company or {})), "notice": notice_record}
    form = d.fill_form(rules.NOTICE_FORM, sources, p)
    title = d.form_title(rules.NOTICE_FORM, sources, p)
    try:
        instance_code = oa.create_instance(cfg.code(rules.NOTICE_FORM), applicant, form, decision.uuid, title=title)
    except VendorError as exc:
        if not _is_rejection(exc):
            raise _VendorUnavailable(exc, [due]) from exc
        with hub.begin() as conn:
            quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", due.deal_id,
                               _rejected("合同金额变更通知", due.deal_id, exc), due.payload, due.change.content_hash,
                               dictionary_version=d.version, now=now)
            store.save_link(conn, rules.NOTICE_LINK, store.NewLink(crm_type="deal", crm_id=due.deal_id, oa_type=rules.NOTICE_FORM, oa_id=None, oa_uuid=decision.uuid, state={**state, "phase": "rejected"}), dictionary_version=d.version, run_id=ctx.run_id, now=now)
            store.complete_changes(conn, CRM_TO_OA, [due.key])
        tally.add("quarantined")
        tally.add("quarantined_vendor_rejected")
        return
    _checkpoint(checkpoint, "notice_created")
    with hub.begin() as conn:
        store.save_link(conn, rules.NOTICE_LINK, store.NewLink(crm_type="deal", crm_id=due.deal_id, oa_type=rules.NOTICE_FORM, oa_id=instance_code, oa_uuid=decision.uuid, state={**state, "phase": "created"}), dictionary_version=d.version, run_id=ctx.run_id, now=now)
        _update_state(conn, project, {"amount_sent": notice["new_amount"], "notices": int(notice["seq"])}, d, ctx,
                      now)
        write_audit(conn, ctx, [audit_event(
            "create_instance", "oa", rules.NOTICE_FORM,
            {"deal_id": due.deal_id, "instance_code": instance_code, "project_instance": project.oa_id},
            [w["id"] for w in form], "ok", detail=f"notice {notice['seq']} uuid {decision.uuid}", dictionary=d,
            policy_version=p.version)])
        if decision.reason == "amount_changed":
            store.complete_changes(conn, CRM_TO_OA, [due.key])
        # A resumed notice leaves the change queued: the deal's current amount is compared next run.
    tally.add("notices_sent")
    tally.add("written")
    _checkpoint(checkpoint, "notice_committed")


# ---------------------------------------------------------------- write-back


def _write_back(
    crm: CrmHook, hub: Engine, ctx: RunContext, cfg: CrmToOaSettings, now: datetime, d: Dictionary, p: Policy,
    tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    """Write instance code, project number, status and project stage back to the deals (batches of 100)."""
    role = p.audience("crm_write", "deal")
    tried: set[int] = set()  # links written (no longer pending) or failed (still pending: skipped this run)
    failed = 0
    while True:
        with hub.connect() as conn:
            batch = [lk for lk in store.links_with_state(conn, rules.PROJECT_LINK, "writeback", "pending",
                                                          limit=cfg.writeback_batch + failed)
                     if lk.id not in tried][: cfg.writeback_batch]
            snaps = store.get_snapshots(conn, "crm", "deal", [str(lk.crm_id) for lk in batch])
        if not batch:
            return
        tried.update(lk.id for lk in batch)
        inputs: list[dict[str, Any]] = []
        fields_by_id: dict[str, list[str]] = {}
        for link in batch:
            deal = canonical(dict(snaps[str(link.crm_id)].payload)) if str(link.crm_id) in snaps else {
                "crm_id": link.crm_id}
            state = link.state or {}
            record = rules.writeback_record(d, deal, str(link.oa_id), state.get("project_no"),
                                            state.get("approval_status"))
            visible = p.project("deal", record, role)
            visible.pop("crm_id", None)
            props = d.to_crm_properties("deal", visible)
            fields_by_id[str(link.crm_id)] = sorted(visible)
            inputs.append({"id": str(link.crm_id), "properties": props})
        outcomes = {o.key: o for o in crm.batch_update("deals", inputs)}
        _checkpoint(checkpoint, "writeback_sent")
        events = []
        with hub.begin() as conn:
            done: dict[int, dict[str, Any]] = {}
            for link in batch:
                deal_id = str(link.crm_id)
                outcome = outcomes.get(deal_id)
                ids = {"deal_id": deal_id, "instance_code": str(link.oa_id)}
                if outcome is not None and outcome.ok:
                    done[link.id] = {**(link.state or {}), "writeback": "done"}
                    events.append(audit_event("update", "crm", "deal", ids, fields_by_id[deal_id], "ok",
                                              detail="write-back", dictionary=d, policy_version=p.version))
                    tally.add("writebacks")
                elif outcome is not None and outcome.category in ("OBJECT_NOT_FOUND", "VALIDATION_ERROR"):
                    _update_state(conn, link, {"writeback": "rejected"}, d, ctx, now)
                    problem = Problem(
                        code="vendor_rejected", entity="deal", field=None, department="sales",
                        message=(f"立项申请 {link.oa_id} 的实例编号和项目编号无法写回 CRM 商机「{deal_id}」："
                                 f"{outcome.message or outcome.category}。请确认商机仍存在且自定义属性已创建，"
                                 f"然后执行 `bridge quarantine release` 重试写回。"))
                    snap = snaps.get(deal_id)
                    quarantine_problem(conn, ctx, CRM_TO_OA, "crm", "deal", deal_id, problem,
                                       snap.payload if snap else None, None, dictionary_version=d.version, now=now)
                    events.append(audit_event("update", "crm", "deal", ids, fields_by_id[deal_id], "rejected",
                                              detail=str(outcome.category), dictionary=d, policy_version=p.version))
                    tally.add("writebacks_rejected")
                else:
                    tally.add("writebacks_failed")
                    failed += 1
            store.set_link_states(conn, done, run_id=ctx.run_id, now=now)
            write_audit(conn, ctx, events)
        _checkpoint(checkpoint, "writeback_committed")


# ---------------------------------------------------------------- summary


def summarise(
    hub: Engine,
    ctx: RunContext,
    parts: Mapping[str, Mapping[str, Any] | None],
    now: datetime,
    *,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Store and log the run summary from the tasks' tallies (None: that task failed)."""
    counts: dict[str, int] = {}
    watermarks: dict[str, int] = {}
    calls: dict[str, dict[str, int]] = {}
    failed = [name for name, part in parts.items() if part is None]
    for part in parts.values():
        tally = Tally.from_dict(part)
        for key, value in tally.counts.items():
            counts[key] = counts.get(key, 0) + value
        watermarks.update(tally.watermarks)
        for system, endpoints in tally.api_calls.items():
            bucket = calls.setdefault(system, {})
            for endpoint, n in endpoints.items():
                bucket[endpoint] = bucket.get(endpoint, 0) + n
    status = "failed" if failed else "success"
    message = f"failed tasks: {', '.join(failed)}" if failed else None
    stored = dict(counts)
    stored["api_calls"] = sum(sum(c.values()) for c in calls.values())
    with hub.begin() as conn:
        store_run_summary(conn, ctx, KIND, status, {**stored, "api_calls_by_endpoint": calls},
                          watermarks=watermarks, message=message, started_at=started_at, now=now)
    line = summary_line(KIND, counts, calls)
    log.info("%s status=%s", line, status)
    updated = [name for name, counter in ASSET_COUNTERS.items() if counts.get(counter, 0) > 0]
    return {"status": status, "counts": counts, "updated": updated}


# ---------------------------------------------------------------- one cycle (bench, demo, tests)


def run_cycle(
    crm: CrmHook,
    oa: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    *,
    load_at: datetime | None = None,
    dictionary: Dictionary | None = None,
    policy: Policy | None = None,
    checkpoint: Checkpoint | None = None,
) -> dict[str, Any]:
    """extract_stage + load + summarise, as one DAG run does; ``load_at`` lets tests step past the debounce."""
    d, p = _tools(dictionary, policy)
    extracted = extract_stage(crm, hub, ctx, cfg, now, dictionary=d, checkpoint=checkpoint)
    loaded = load(crm, oa, hub, ctx, cfg, load_at or now, dictionary=d, policy=p, checkpoint=checkpoint)
    return summarise(hub, ctx, {"extract_stage": extracted.as_dict(),
                                "load": loaded.as_dict()}, load_at or now)


def with_overrides(cfg: CrmToOaSettings, **changes: Any) -> CrmToOaSettings:
    """A copy of the settings with some values changed (tests, bench, demo)."""
    return replace(cfg, **changes)


__all__ = [
    "ASSETS",
    "ASSET_COUNTERS",
    "KIND",
    "CrmToOaSettings",
    "SyncIncomplete",
    "extract_stage",
    "load",
    "run_cycle",
    "summarise",
    "with_overrides",
]

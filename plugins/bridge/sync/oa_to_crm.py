"""OA → CRM: approval status on the deal, expenses, trips and visit plans on the customer.

Two steps, one per DAG task (``dags/oa_to_crm_sync.py``), plus the summary:

``discover`` (OA calls only)
    Feishu has no "changed since" listing. Per approval code, new instances
    are found in creation-time windows from the hub watermark (minus a
    lookback); status changes by ``instances/query`` with status PENDING and
    with status DELETED over the 30-day spans that hold the hub's open
    instances (plus one older span per run in rotation); ``get_instance`` only
    for the instances that are new or whose status moved, at most
    ``max_instance_reads_per_run`` per run (the rest are found again next
    run: the listing watermark does not pass an unread instance, and a stale
    status keeps differing). Read instances are mapped with the data
    dictionary and staged (content hash over OA-owned fields); new or changed
    ones are queued (direction ``oa_to_crm``) or quarantined. Then, from the
    hub alone, deals the CRM → OA extract re-staged whose OA-owned fields no
    longer match the OA (someone edited 项目编号 in the CRM, or the deal stage
    moved the project stage) are queued too.

``load`` (CRM calls only)
    Due 立项申请 and deals: the deal's current CRM values are read (batch of
    100), compared with what the OA says (:func:`bridge.sync.decide_oa.plan_deal`),
    and only differing fields are written (``batch_update``, idempotent);
    a field someone changed in the CRM is a conflict the OA wins (its system
    of record), audited as ``conflict``. Due expenses, trips and visit plans:
    upserted as notes / meetings keyed by ``oa_instance_code`` (a rerun after
    a crash cannot duplicate), associated with the company and the deal,
    voided when the instance is rejected, withdrawn or deleted afterwards;
    no or an unknown customer → quarantine ``missing_customer_link``.

``summarise``
    Stores and logs the run summary; the DAG publishes an Asset per CRM
    object type written.

Every function takes its hooks, the hub engine, a RunContext, settings and
``now``: tests and benchmarks call them without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

import bridge.dictionary
from bridge import audit, people, permissions, runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary, Problem, formats
from bridge.hooks._http import BODY_TOO_LARGE
from bridge.hooks.errors import BadResponseError, NotFoundError, VendorError
from bridge.hub import store
from bridge.hub.schema import snapshot
from bridge.hub.store import PendingChange, PendingKey
from bridge.permissions import Policy
from bridge.staging import PROBLEMS_KEY, canonical, snapshot_row
from bridge.sync import decide_oa as rules
from bridge.sync.common import (
    ALWAYS_BLOCKING,
    OA_TO_CRM,
    SyncSettingsError,
    Tally,
    approval_code,
    asset_uri,
    audit_event,
    calls_since,
    calls_snapshot,
    exclusive_load,
    links_for_oa_ids,
    number,
    quarantine_problem,
    resolve_fixed,
    section,
    summarise_run,
    summary_line,
    to_ms,
    write_audit,
)
from bridge.sync.crm_to_oa import SyncIncomplete

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook, RecordOutcome
    from bridge.hooks.oa import OaHook

log = logging.getLogger("bridge.sync.oa_to_crm")

KIND = runkinds.OA_TO_CRM  # run_summary.kind
ASSETS = {
    "deal": asset_uri("crm", "deal"),
    "notes": asset_uri("crm", "notes"),
    "meetings": asset_uri("crm", "meetings"),
}
ASSET_COUNTERS = {"deal": "written_deal", "notes": "written_notes", "meetings": "written_meetings"}
FORMS = ("project_initiation", "expense_claim", "travel_request", "visit_plan")
LIST_WINDOW_MS = 10 * 3_600_000  # Feishu's instance-code list: at most 10 hours per window (as the hook splits)
READ_CHUNK = 100  # instances read per hub transaction
MAX_DEFER_SECONDS = 900
CRM_WRITE_ERRORS = frozenset({"VALIDATION_ERROR", "OBJECT_NOT_FOUND", "CONFLICT", "PROPERTY_DOESNT_EXIST",
                              "INVALID_OPTION", "MISSING_ID", "DUPLICATE_INPUT", "MISSING_RESULT"})

Checkpoint = Callable[[str], None]
__all__ = [
    "ASSETS",
    "ASSET_COUNTERS",
    "KIND",
    "OaToCrmSettings",
    "SyncIncomplete",
    "discover",
    "enqueue_backfill",
    "load",
    "run_cycle",
    "summarise",
    "with_overrides",
]


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class OaToCrmSettings:
    """``oa_to_crm`` and ``oa.approval_codes`` of include/settings.yaml, checked."""

    forms: tuple[str, ...] = FORMS
    max_instance_reads_per_run: int = 2000
    lookback_ms: int = 300_000
    status_query_page_size: int = 200
    # First run (no watermark): instances created this long before it are read; older ones only
    # through the status sweeps of instances the hub already holds, or a backfill.
    initial_backfill_seconds: float = 86_400
    # Decided (approved/rejected/withdrawn) this recently: swept every run like pending ones.
    recent_decision_ms: int = 30 * 86_400_000
    cold_spans_per_run: int = 1
    query_lag_ms: int = 60_000
    max_list_windows_per_run: int = 200
    max_changes_per_run: int = 2000
    write_batch: int = 100
    quiet_seconds: float = 0
    retry_delay_seconds: float = 60
    approval_codes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> OaToCrmSettings:
        if settings is None:
            from bridge import settings as bridge_settings

            settings = bridge_settings.load()
        values = section(settings, "oa_to_crm")
        where = "oa_to_crm"
        forms = tuple(str(f) for f in values.get("forms") or FORMS)
        page = int(number(values, "status_query_page_size", 200, where, minimum=5))
        if page > 200:
            raise SyncSettingsError(f"include/settings.yaml: {where}.status_query_page_size must be 5–200 "
                                    f"(Feishu's instances/query limit), not {page}")
        backfill = values.get("initial_backfill_hours", 24)
        if backfill is None:
            raise SyncSettingsError(f"include/settings.yaml: {where}.initial_backfill_hours must be a number of "
                                    f"hours (history is the migration's job, or a run with backfill_days)")
        codes = section(section(settings, "oa"), "approval_codes")
        return cls(
            forms=forms,
            max_instance_reads_per_run=int(number(values, "max_instance_reads_per_run", 2000, where, minimum=1)),
            lookback_ms=int(number(values, "lookback_seconds", 300, where) * 1000),
            status_query_page_size=page,
            initial_backfill_seconds=number(values, "initial_backfill_hours", 24, where) * 3600,
            recent_decision_ms=int(number(values, "recent_decision_days", 30, where) * 86_400_000),
            cold_spans_per_run=int(number(values, "cold_spans_per_run", 1, where)),
            query_lag_ms=int(number(values, "query_lag_seconds", 60, where) * 1000),
            max_list_windows_per_run=int(number(values, "max_list_windows_per_run", 200, where, minimum=1)),
            max_changes_per_run=int(number(values, "max_changes_per_run", 2000, where, minimum=1)),
            write_batch=int(min(100, number(values, "write_batch", 100, where, minimum=1))),
            quiet_seconds=number(values, "quiet_seconds", 0, where),
            retry_delay_seconds=number(values, "retry_delay_seconds", 60, where),
            approval_codes={str(k): str(v) for k, v in codes.items() if v},
        )

    def check(self, dictionary: Dictionary) -> None:
        """Refuse forms the dictionary does not sync to the CRM, and forms without an approval code."""
        known = {rules.PROJECT_FORM, *rules.activity_forms(dictionary)}
        unknown = [f for f in self.forms if f not in known]
        if unknown:
            raise SyncSettingsError(
                f"include/settings.yaml: oa_to_crm.forms has {unknown}: only 立项申请 (project_initiation) and the "
                f"forms of crm_activities in {dictionary.path} ({sorted(known - {rules.PROJECT_FORM})}) go to the CRM")
        for form in self.forms:
            self.code(form)

    def code(self, form: str) -> str:
        return approval_code({"oa": {"approval_codes": dict(self.approval_codes)}}, form)


def with_overrides(cfg: OaToCrmSettings, **changes: Any) -> OaToCrmSettings:
    """A copy of the settings with some values changed (tests, bench, demo)."""
    return replace(cfg, **changes)


def _tools(dictionary: Dictionary | None, policy: Policy | None) -> tuple[Dictionary, Policy]:
    d = dictionary or bridge.dictionary.load()
    return d, policy or permissions.load(dictionary=d)


def _checkpoint(checkpoint: Checkpoint | None, step: str) -> None:
    if checkpoint is not None:
        checkpoint(step)


def _first(links: Sequence[store.Link] | None) -> store.Link | None:
    return links[0] if links else None


def _created_ms(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return formats.datetime_to_ms(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- discover: hub queries


def _status_col() -> Any:
    return snapshot.c.payload["approval_status"].as_string()


def _created_col() -> Any:
    return snapshot.c.payload["created_at"].as_string()


def _hot_instances(conn: Connection, form: str, recent_cutoff_ms: int) -> list[tuple[str, int, str]]:
    """``(code, created ms, status)`` of the form's instances to sweep every run: pending, or decided lately."""
    status = _status_col()
    rows = conn.execute(
        select(snapshot.c.source_id, _created_col(), status).where(
            snapshot.c.system == "oa", snapshot.c.entity == form, snapshot.c.deleted.is_(False),
            or_(status == rules.PENDING,
                and_(status != rules.DELETED, snapshot.c.source_modified_ms >= recent_cutoff_ms)),
        )
    )
    out = []
    for code, created, st in rows:
        ms = _created_ms(created)
        if ms is not None:
            out.append((str(code), ms, str(st)))
    return out


def _hub_statuses(conn: Connection, form: str, codes: Iterable[str]) -> dict[str, str | None]:
    wanted = list(dict.fromkeys(codes))
    found: dict[str, str | None] = {}
    for start in range(0, len(wanted), 500):
        for code, st in conn.execute(select(snapshot.c.source_id, _status_col()).where(
                snapshot.c.system == "oa", snapshot.c.entity == form,
                snapshot.c.source_id.in_(wanted[start:start + 500]))):
            found[str(code)] = None if st is None else str(st)
    return found


def _hub_span(conn: Connection, form: str, span: tuple[int, int]) -> dict[str, rules.HubInstance]:
    """Every instance of the form the hub holds, not deleted, created in the span (canonical times are
    UTC ISO strings of one shape, so the range is a text comparison)."""
    lo, hi = (formats.ms_to_datetime(t) for t in span)
    created, status = _created_col(), _status_col()
    rows = conn.execute(select(snapshot.c.source_id, created, status,
                               snapshot.c.payload["decided_at"].as_string()).where(
        snapshot.c.system == "oa", snapshot.c.entity == form, snapshot.c.deleted.is_(False),
        status != rules.DELETED, created >= lo, created <= hi))
    out: dict[str, rules.HubInstance] = {}
    for code, made, st, decided in rows:
        ms = _created_ms(made)
        if ms is not None:
            out[str(code)] = rules.HubInstance(None if st is None else str(st), ms, _created_ms(decided))
    return out


def _oldest_live(conn: Connection, form: str) -> int | None:
    """Creation time of the form's oldest instance the hub holds that can still change (not deleted)."""
    oldest = conn.execute(select(func.min(_created_col())).where(
        snapshot.c.system == "oa", snapshot.c.entity == form, snapshot.c.deleted.is_(False),
        _status_col() != rules.DELETED)).scalar()
    return _created_ms(oldest)


# ---------------------------------------------------------------- discover


@dataclass
class _FormWork:
    """What discovery found for one approval code this run."""

    form: str
    code: str
    new: list[str] = field(default_factory=list)  # listed, unknown to the hub, creation order
    changed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    list_until: int | None = None  # end of the creation windows listed (the watermark if all new were read)
    cursor_next: int | None = None  # the rotation's next span start


def _list_new(oa: OaHook, hub: Engine, cfg: OaToCrmSettings, work: _FormWork, now_ms: int, tally: Tally) -> None:
    """New instance codes created since the watermark (minus the lookback), in ≤ 10 h windows."""
    stream = f"oa.{work.form}.created"
    with hub.connect() as conn:
        mark = store.get_watermark(conn, stream)
    lo = max(0, mark - cfg.lookback_ms) if mark is not None else now_ms - int(cfg.initial_backfill_seconds * 1000)
    hi = min(now_ms, lo + cfg.max_list_windows_per_run * LIST_WINDOW_MS - 1)
    codes: list[str] = []
    for page in oa.iter_instance_codes(work.code, lo, hi):
        codes.extend(page)
    codes = list(dict.fromkeys(codes))
    with hub.connect() as conn:
        known = set(_hub_statuses(conn, work.form, codes))
    work.new = [c for c in codes if c not in known]
    work.list_until = hi
    tally.add("listed", len(codes))
    tally.add("discovered", len(work.new))


def _query(oa: OaHook, work: _FormWork, span: tuple[int, int], status: str, tally: Tally) -> dict[str, int | None]:
    """``{code: end_time ms}`` of the span's instances in one status (``instances/query``, 200 per page)."""
    found: dict[str, int | None] = {}
    for page in oa.query_instances(work.code, span[0], span[1], status=status):
        for item in page:
            end = str(item["instance"].get("end_time") or "0")
            found[str(item["instance"]["code"])] = int(end) if end.isdigit() and int(end) > 0 else None
    tally.add(f"swept_{status.lower()}", len(found))
    return found


def _sweep(oa: OaHook, hub: Engine, cfg: OaToCrmSettings, work: _FormWork, now_ms: int, tally: Tally) -> None:
    """Status changes of the instances the hub holds (see :func:`bridge.sync.decide_oa.sweep_changes`):
    the 30-day spans holding pending or lately decided instances, plus older spans in rotation."""
    with hub.connect() as conn:
        hot = _hot_instances(conn, work.form, now_ms - cfg.recent_decision_ms)
        cursor = store.get_watermark(conn, f"oa.{work.form}.sweep")
        oldest = _oldest_live(conn, work.form) if cfg.cold_spans_per_run > 0 else None
    span_list = rules.spans([created for _, created, _ in hot], now_ms)
    tally.add("open_instances", sum(1 for _, _, st in hot if st == rules.PENDING))
    cold, work.cursor_next = rules.cold_spans(cursor, oldest, span_list, now_ms, cfg.cold_spans_per_run)
    span_list += cold
    tally.add("status_spans", len(span_list))
    for span in span_list:
        with hub.connect() as conn:
            held = _hub_span(conn, work.form, span)
        results = {status: _query(oa, work, span, status, tally) for status in rules.sweep_statuses(held)}
        found = rules.sweep_changes(held, results, now_ms - cfg.query_lag_ms)
        work.changed |= found.changed
        work.unknown |= found.unknown
    tally.add("status_changed", len(work.changed))


def _released(hub: Engine, cfg: OaToCrmSettings, now: datetime) -> dict[str, list[str]]:
    """Due changes whose snapshot was staged with problems and that nobody holds in quarantine (released by a
    person, e.g. after a dictionary fix): they are read again and mapped with today's dictionary."""
    with hub.connect() as conn:
        due = store.due_changes(conn, OA_TO_CRM, now, limit=cfg.max_changes_per_run)
        out: dict[str, list[str]] = {}
        for form in cfg.forms:
            ids = [c.source_id for c in due if c.entity == form]
            if not ids:
                continue
            snaps = store.get_snapshots(conn, "oa", form, ids)
            held = store.open_quarantine_for(conn, OA_TO_CRM, form, ids)
            stale = [i for i in ids if i in snaps and i not in held
                     and set(snaps[i].payload.get(PROBLEMS_KEY) or ()) & ALWAYS_BLOCKING]
            if stale:
                out[form] = stale
    return out


def discover(
    oa: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    *,
    dictionary: Dictionary | None = None,
    policy: Policy | None = None,
    backfill_days: float = 0,
    checkpoint: Checkpoint | None = None,
) -> Tally:
    """Find new and changed OA instances, stage them, queue what the CRM must see (task ``discover``).

    Raises :class:`SyncIncomplete` after committing what it did when the OA stayed
    unavailable through the hook's retries: what was not read is found next run.
    """
    d, p = _tools(dictionary, policy)
    cfg.check(d)
    tally = Tally()
    before = calls_snapshot(oa=oa)
    now_ms = to_ms(now)
    works: list[_FormWork] = []
    stop: VendorError | None = None
    try:
        for form in cfg.forms:
            work = _FormWork(form, cfg.code(form))
            works.append(work)
            _list_new(oa, hub, cfg, work, now_ms, tally)
            _sweep(oa, hub, cfg, work, now_ms, tally)
    except VendorError as exc:
        stop = exc
        log.warning("oa_to_crm discover: the OA is unavailable (%s %s %s); reading what was found",
                    type(exc).__name__, exc.status, exc.code)
    _checkpoint(checkpoint, "discovered")
    released = _released(hub, cfg, now)
    # Reads by priority: released records, status changes, pending instances the hub never saw, new ones.
    queue: list[tuple[str, str]] = []
    seen: set[str] = set()

    def want(form: str, codes: Iterable[str]) -> None:
        for code in codes:
            if code not in seen:
                seen.add(code)
                queue.append((form, code))

    for form, codes in released.items():
        want(form, codes)
    for work in works:
        want(work.form, sorted(work.changed))
    for work in works:
        want(work.form, sorted(work.unknown))
    for work in works:
        want(work.form, work.new)
    forced = {code for codes in released.values() for code in codes}
    read: set[str] = set()
    if stop is None:
        stop = _read_and_stage(oa, hub, ctx, d, cfg, now, queue, forced, read, tally, checkpoint)
    tally.add("reads_deferred", len(queue) - len(read))
    with hub.begin() as conn:
        for work in works:
            if work.list_until is not None and all(code in read for code in work.new):
                tally.watermarks[f"oa.{work.form}.created"] = store.set_watermark(
                    conn, f"oa.{work.form}.created", work.list_until, ctx.run_id, now=now)
            if work.cursor_next is not None and stop is None:
                tally.watermarks[f"oa.{work.form}.sweep"] = store.set_watermark(
                    conn, f"oa.{work.form}.sweep", work.cursor_next, ctx.run_id, force=True, now=now)
    _checkpoint(checkpoint, "watermarks_committed")
    _scan_deals(hub, ctx, d, p, cfg, now, tally)
    if backfill_days > 0:
        tally.add("backfill_enqueued", enqueue_backfill(hub, cfg, now, backfill_days, dictionary=d))
    tally.api_calls = calls_since(before, oa=oa)
    log.info("%s", summary_line("oa_to_crm discover", tally.counts, tally.api_calls))
    if stop is not None:
        raise SyncIncomplete(f"the OA was unavailable ({type(stop).__name__}: {stop.status} {stop.code}); "
                             f"{tally.counts.get('reads_deferred', 0)} instance(s) wait for the next run") from stop
    return tally


def _read_and_stage(
    oa: OaHook, hub: Engine, ctx: RunContext, d: Dictionary, cfg: OaToCrmSettings, now: datetime,
    queue: Sequence[tuple[str, str]], forced: set[str], read: set[str], tally: Tally, checkpoint: Checkpoint | None,
) -> VendorError | None:
    """``get_instance`` for the queue (within the run's budget), staged per chunk of 100."""
    budget = cfg.max_instance_reads_per_run
    todo = list(queue[:budget])
    for start in range(0, len(todo), READ_CHUNK):
        details: dict[str, list[dict[str, Any]]] = {}
        unreadable: list[tuple[str, str, VendorError]] = []
        stop: VendorError | None = None
        for form, code in todo[start:start + READ_CHUNK]:
            try:
                detail = oa.get_instance(code)
            except NotFoundError:
                tally.add("read_not_found")
                read.add(code)
                continue
            except BadResponseError as exc:
                if exc.code != BODY_TOO_LARGE:
                    stop = exc
                    break
                # This instance, not the OA, is the problem: quarantined, so it cannot stop the others.
                unreadable.append((form, code, exc))
                read.add(code)
                continue
            except VendorError as exc:
                stop = exc
                break
            read.add(code)
            details.setdefault(form, []).append(detail)
        tally.add("read", sum(len(v) for v in details.values()))
        if details or unreadable:
            with hub.begin() as conn:
                for form, items in details.items():
                    _stage(conn, ctx, d, cfg, now, form, items, forced, tally)
                for bad_form, bad_code, refusal in unreadable:
                    quarantine_problem(conn, ctx, OA_TO_CRM, "oa", bad_form, bad_code, Problem(
                        code="hostile_input", entity=bad_form, field=None,
                        message=(f"OA 审批实例 {bad_code} 的详情无法读取：{refusal.message}。请在 OA 中检查该审批的表单内容"
                                 f"（是否粘贴了超大的文本或附件），修正后执行 `bridge quarantine release <编号>`。")),
                        None, None, dictionary_version=d.version, now=now)
                    tally.add("quarantined")
                    tally.add("quarantined_hostile_input")
            _checkpoint(checkpoint, "instances_staged")
            people.learn_oa_names(oa, hub, [str(item.get("user_id") or "") for items in details.values()
                                            for item in items], now=now)
        if stop is not None:
            return stop
    return None


def _stage(
    conn: Connection, ctx: RunContext, d: Dictionary, cfg: OaToCrmSettings, now: datetime, form: str,
    details: Sequence[Mapping[str, Any]], forced: set[str], tally: Tally,
) -> None:
    """Snapshots, quarantine and queue for instances read (the caller's transaction)."""
    mapped = []
    for detail in details:
        result = d.from_oa(form, detail)
        row = snapshot_row(d, form, result)
        if row is None:
            tally.add("skipped_no_id")
            continue
        mapped.append((row, result))
    if not mapped:
        return
    changes = {c.source_id: c for c in store.upsert_snapshots(conn, "oa", form, [r for r, _ in mapped], now=now)}
    tally.add("unchanged", sum(1 for c in changes.values() if not c.is_change))
    tally.add("staged", sum(1 for c in changes.values() if c.is_change))
    todo = {row.source_id: (row, result) for row, result in mapped
            if (changes.get(row.source_id) and changes[row.source_id].is_change) or row.source_id in forced}
    if not todo:
        return
    tally.add("retried", len(resolve_fixed(conn, ctx, OA_TO_CRM, form, {k: r.content_hash for k, (r, _) in todo.items()},
                                           now=now)))
    ids = list(todo)
    if form == rules.PROJECT_FORM:
        links = links_for_oa_ids(conn, rules.PROJECT_LINK, ids)
        matters = {i for i in ids if any(lk.crm_id for lk in links.get(i, []))}
    else:
        written = links_for_oa_ids(conn, rules.ACTIVITY_LINK, ids)
        # What the CRM will see: due activities, ones written before (to void), and pending forms with no
        # customer (quarantined early, while the applicant can still withdraw and fix them).
        matters = {i for i, (_, result) in todo.items()
                   if i in written or d.activity_due(form, result.record)
                   or (result.record.get("approval_status") == rules.PENDING
                       and not result.record.get("customer_id"))}
    queue: list[tuple[str, str, str]] = []
    for sid, (row, result) in todo.items():
        stop = rules.blocking(d, form, result.problems)
        if sid not in matters and not stop:
            tally.add("not_for_crm")
            store.complete_changes(conn, OA_TO_CRM, [PendingKey(form, sid)])
            continue
        if stop and (sid in matters or (form != rules.PROJECT_FORM and
                                        result.record.get("approval_status") == rules.PENDING)):
            quarantine_problem(conn, ctx, OA_TO_CRM, "oa", form, sid, stop[0], canonical(row.payload),
                               row.content_hash, data_owner=row.data_owner, dictionary_version=d.version, now=now)
            store.complete_changes(conn, OA_TO_CRM, [PendingKey(form, sid)])
            tally.add("quarantined")
            tally.add(f"quarantined_{stop[0].code}")
        elif stop:
            tally.add("problems_not_for_crm")
            store.complete_changes(conn, OA_TO_CRM, [PendingKey(form, sid)])
        else:
            queue.append((form, sid, row.content_hash))
    tally.add("enqueued", store.enqueue_changes(conn, OA_TO_CRM, queue, now, cfg.quiet_seconds, cfg.quiet_seconds))


# ---------------------------------------------------------------- discover: the CRM side of linked deals


def _deal_projects(
    conn: Connection, deal_ids: Sequence[str],
) -> tuple[dict[str, list[store.Link]], dict[str, store.Snapshot]]:
    """Confirmed ``deal_project`` links per deal and the staged 立项申请 they point at."""
    links = {k: [lk for lk in v if lk.oa_id] for k, v in store.links_for_crm_ids(conn, rules.PROJECT_LINK,
                                                                                   deal_ids).items()}
    codes = [str(lk.oa_id) for lks in links.values() for lk in lks]
    projects = store.get_snapshots(conn, "oa", rules.PROJECT_FORM, codes) if codes else {}
    return links, projects


def _primary(links: Sequence[store.Link], projects: Mapping[str, store.Snapshot],
             held: Iterable[str] = ()) -> tuple[dict[str, Any], store.Link] | None:
    blocked = set(held)
    candidates = {str(lk.oa_id): lk for lk in links
                  if str(lk.oa_id) in projects and not projects[str(lk.oa_id)].deleted
                  and str(lk.oa_id) not in blocked}
    records = [canonical(dict(projects[code].payload)) for code in candidates]
    best = rules.primary_project(records)
    if best is None:
        return None
    return dict(best), candidates[str(best.get("instance_code"))]


def _scan_deals(hub: Engine, ctx: RunContext, d: Dictionary, p: Policy, cfg: OaToCrmSettings, now: datetime,
                tally: Tally) -> None:
    """Queue linked deals whose staged CRM values of OA-owned fields differ from the OA (hub only, no API call).

    The CRM → OA extract re-stages every deal that changed in the CRM (its
    payload holds the OA-owned fields too, outside the content hash). A deal
    re-staged after this direction's last write whose values do not match is
    checked by the load: a conflict (someone edited an OA-owned field) or a
    deal stage that moves the project stage.
    """
    stream = "oa_to_crm.crm_deal"
    now_ms = to_ms(now)
    role = p.audience("crm_write", "deal")
    with hub.connect() as conn:
        mark = store.get_watermark(conn, stream)
        since = max(0, mark - cfg.lookback_ms) if mark is not None else now_ms - int(cfg.initial_backfill_seconds * 1000)
        snaps = [s for batch in store.iter_snapshots(conn, "deal", system="crm", modified_since_ms=since)
                 for s in batch]
    if not snaps:
        return
    ids = [s.source_id for s in snaps]
    with hub.connect() as conn:
        links, projects = _deal_projects(conn, ids)
        written = store.links_for_crm_ids(conn, rules.WRITEBACK_LINK, ids)
    flagged: list[tuple[str, str, str]] = []
    for snap in snaps:
        chosen = _primary(links.get(snap.source_id, []), projects)
        if chosen is None:
            continue
        state = _first(written.get(snap.source_id))
        if state is not None and snap.source_modified_ms <= int((state.state or {}).get("written_ms") or 0):
            continue  # staged before our last write: not news
        staged = canonical(dict(snap.payload))
        desired = p.project("deal", rules.desired_deal(d, chosen[0], staged.get("stage")), role)
        if rules.scan_needs_check(d, desired, staged):
            flagged.append(("deal", snap.source_id, snap.content_hash))
    tally.add("deals_scanned", len(snaps))
    with hub.begin() as conn:
        tally.add("deals_flagged", store.enqueue_changes(conn, OA_TO_CRM, flagged, now, cfg.quiet_seconds,
                                                         cfg.quiet_seconds))
        top = max(s.source_modified_ms for s in snaps)
        tally.watermarks[stream] = store.set_watermark(conn, stream, top, ctx.run_id, now=now)


def enqueue_backfill(hub: Engine, cfg: OaToCrmSettings, now: datetime, days: float, *,
                     dictionary: Dictionary | None = None) -> int:
    """Queue staged history for the CRM: activity instances (status in ``when_status``) and linked 立项申请
    created within ``days`` (e.g. what the history migration staged). The load writes them like any
    change; upserts by instance code and the deal comparison make it safe to run twice."""
    d = dictionary or bridge.dictionary.load()
    cutoff_ms = to_ms(now) - int(days * 86_400_000)
    queue: list[tuple[str, str, str]] = []
    with hub.connect() as conn:
        for form in cfg.forms:
            for batch in store.iter_snapshots(conn, form, system="oa", modified_since_ms=cutoff_ms):
                for snap in batch:
                    record = canonical(dict(snap.payload))
                    created = _created_ms(record.get("created_at"))
                    if created is None or created < cutoff_ms:
                        continue
                    if form == rules.PROJECT_FORM or d.activity_due(form, record):
                        queue.append((form, snap.source_id, snap.content_hash))
    with hub.begin() as conn:
        return store.enqueue_changes(conn, OA_TO_CRM, queue, now, 0, 0)


# ---------------------------------------------------------------- load


class _Unavailable(Exception):
    def __init__(self, error: VendorError) -> None:
        super().__init__(str(error))
        self.error = error


def load(
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    *,
    dictionary: Dictionary | None = None,
    policy: Policy | None = None,
    checkpoint: Checkpoint | None = None,
) -> Tally:
    """Write the due changes to the CRM (task ``load``).

    Raises :class:`SyncIncomplete` after committing what it did when the CRM stayed
    unavailable through the hook's retries: the rest is deferred in the queue.
    One load writes at a time: a run that finds another one loading leaves the
    due changes to it (``skipped_other_load``).
    """
    d, p = _tools(dictionary, policy)
    cfg.check(d)
    return exclusive_load(hub, OA_TO_CRM, ctx, now, lambda: _load(crm, hub, ctx, cfg, now, d, p, checkpoint))


def _load(crm: CrmHook, hub: Engine, ctx: RunContext, cfg: OaToCrmSettings, now: datetime, d: Dictionary,
          p: Policy, checkpoint: Checkpoint | None) -> Tally:
    tally = Tally()
    before = calls_snapshot(crm=crm)
    with hub.connect() as conn:
        due = store.due_changes(conn, OA_TO_CRM, now, limit=cfg.max_changes_per_run)
    tally.add("due", len(due))
    activity_forms = set(rules.activity_forms(d)) & set(cfg.forms)
    deals = [c for c in due if c.entity in (rules.PROJECT_FORM, "deal")]
    activities = [c for c in due if c.entity in activity_forms]
    other = [c for c in due if c not in deals and c not in activities]
    if other:
        with hub.begin() as conn:
            store.complete_changes(conn, OA_TO_CRM, [_key(c) for c in other])
        tally.add("ignored_entity", len(other))
    stop: VendorError | None = None
    try:
        if deals:
            _load_deals(crm, hub, ctx, cfg, d, p, now, deals, tally, checkpoint)
        if activities:
            _load_activities(crm, hub, ctx, cfg, d, p, now, activities, tally, checkpoint)
    except _Unavailable as unavailable:
        stop = unavailable.error
        _defer(hub, cfg, [*deals, *activities], now, tally)
    finally:
        tally.api_calls = calls_since(before, crm=crm)
    log.info("%s", summary_line("oa_to_crm load", tally.counts, tally.api_calls))
    if stop is not None:
        raise SyncIncomplete(f"the CRM was unavailable ({type(stop).__name__}: {stop.status} {stop.code}); "
                             f"{tally.counts.get('deferred', 0)} change(s) wait for the next run") from stop
    return tally


def _key(change: PendingChange) -> PendingKey:
    return PendingKey(change.entity, change.source_id, change.content_hash)


def _defer(hub: Engine, cfg: OaToCrmSettings, changes: Sequence[PendingChange], now: datetime, tally: Tally) -> None:
    deferred = 0
    with hub.begin() as conn:
        for change in changes:
            delay = min(MAX_DEFER_SECONDS, cfg.retry_delay_seconds * (2 ** min(change.attempts, 6)))
            if store.defer_change(conn, OA_TO_CRM, change.entity, change.source_id, now, delay) is not None:
                deferred += 1
    tally.add("deferred", deferred)
    log.warning("oa_to_crm: CRM unavailable; %d change(s) deferred", deferred)


def _vendor_call(call: Callable[[], Any]) -> Any:
    """A hook call whose exhausted retries (outage, 429 storm) stop the load; record-level errors are outcomes."""
    try:
        return call()
    except VendorError as exc:
        raise _Unavailable(exc) from exc


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------- load: deals


@dataclass
class _DealWork:
    deal_id: str
    keys: list[PendingKey] = field(default_factory=list)
    project: dict[str, Any] | None = None
    link: store.Link | None = None
    state: store.Link | None = None  # our deal_writeback link
    current: dict[str, Any] | None = None
    modified_ms: int | None = None
    plan: rules.DealPlan | None = None


def _last_written(work: _DealWork) -> dict[str, Any] | None:
    """What the bridge last put on the deal: our own write, else the CRM → OA write-back or the migration's."""
    if work.state is not None and (work.state.state or {}).get("written") is not None:
        return dict((work.state.state or {})["written"])
    if work.link is None:
        return None
    state = work.link.state or {}
    if state.get("writeback") != "done" and state.get("source") != "migration":
        return None
    out: dict[str, Any] = {"oa_instance_code": work.link.oa_id}
    for name in ("project_no", "approval_status"):
        if state.get(name) is not None:
            out[name] = state[name]
    return out


def _load_deals(
    crm: CrmHook, hub: Engine, ctx: RunContext, cfg: OaToCrmSettings, d: Dictionary, p: Policy, now: datetime,
    dues: Sequence[PendingChange], tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    codes = [c.source_id for c in dues if c.entity == rules.PROJECT_FORM]
    with hub.connect() as conn:
        proj_links = links_for_oa_ids(conn, rules.PROJECT_LINK, codes)
        held_projects = store.open_quarantine_for(conn, OA_TO_CRM, rules.PROJECT_FORM, codes)
    works: dict[str, _DealWork] = {}
    done: list[PendingKey] = []
    for change in dues:
        if change.entity == "deal":
            works.setdefault(change.source_id, _DealWork(change.source_id)).keys.append(_key(change))
            continue
        if change.source_id in held_projects:
            done.append(_key(change))
            tally.add("held_in_quarantine")
            continue
        deals = sorted({str(lk.crm_id) for lk in proj_links.get(change.source_id, []) if lk.crm_id})
        if not deals:
            done.append(_key(change))
            tally.add("project_unlinked")
            continue
        for n, deal_id in enumerate(deals):
            work = works.setdefault(deal_id, _DealWork(deal_id))
            if n == 0:
                work.keys.append(_key(change))
    ids = list(works)
    with hub.connect() as conn:
        links, projects = _deal_projects(conn, ids)
        all_codes = [str(lk.oa_id) for lks in links.values() for lk in lks]
        held = store.open_quarantine_for(conn, OA_TO_CRM, rules.PROJECT_FORM, all_codes)
        held_deals = store.open_quarantine_for(conn, OA_TO_CRM, "deal", ids)
        states = store.links_for_crm_ids(conn, rules.WRITEBACK_LINK, ids)
    active: list[_DealWork] = []
    for work in works.values():
        chosen = _primary(links.get(work.deal_id, []), projects, held)
        if work.deal_id in held_deals or chosen is None:
            done.extend(work.keys)
            tally.add("held_in_quarantine" if work.deal_id in held_deals else "deal_without_project")
            continue
        work.project, work.link = chosen
        work.state = _first(states.get(work.deal_id))
        active.append(work)
    if done:
        with hub.begin() as conn:
            store.complete_changes(conn, OA_TO_CRM, done)
    role = p.audience("crm_write", "deal")
    props = _deal_properties(d)
    for batch in _chunks(active, cfg.write_batch):
        _deal_batch(crm, hub, ctx, d, p, role, props, now, list(batch), tally, checkpoint)


def _deal_properties(d: Dictionary) -> list[str]:
    fields = d.entity("deal").fields
    names = [*rules.oa_owned_deal_fields(d), "stage", "modified_at"]
    return [str(fields[n].crm) for n in names if fields[n].crm]


def _deal_batch(
    crm: CrmHook, hub: Engine, ctx: RunContext, d: Dictionary, p: Policy, role: str, props: list[str], now: datetime,
    batch: list[_DealWork], tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    """Read the deals' current values, write what differs, record links, audit and completions in one go."""
    outcomes = {o.key: o for o in _vendor_call(lambda: crm.batch_read("deals", [w.deal_id for w in batch],
                                                                      properties=props))}
    tally.add("deals_read", len(batch))
    missing: list[tuple[_DealWork, RecordOutcome | None]] = []
    writes: list[_DealWork] = []
    for work in batch:
        outcome = outcomes.get(work.deal_id)
        if outcome is None or not outcome.ok or outcome.object is None:
            missing.append((work, outcome))
            continue
        current = d.from_crm("deal", outcome.object).record
        work.current = current
        work.modified_ms = d.modified_ms("deal", current)
        assert work.project is not None
        desired = p.project("deal", rules.desired_deal(d, work.project, current.get("stage")), role)
        work.plan = rules.plan_deal(d, work.deal_id, desired, current, _last_written(work))
        if work.plan.needed:
            writes.append(work)
    _checkpoint(checkpoint, "deals_read")
    results: dict[str, RecordOutcome] = {}
    if writes:
        inputs = [{"id": w.deal_id, "properties": d.to_crm_properties("deal", w.plan.write)}
                  for w in writes if w.plan is not None]
        results = {o.key: o for o in _vendor_call(lambda: crm.batch_update("deals", inputs))}
    _checkpoint(checkpoint, "deals_written")
    events: list[audit.AuditEvent] = []
    states: dict[int, dict[str, Any]] = {}
    new_states: list[store.NewLink] = []
    keys: list[PendingKey] = []
    with hub.begin() as conn:
        for work, outcome in missing:
            problem = rules.deal_rejected(work.deal_id, str((work.project or {}).get("instance_code")),
                                          outcome.message if outcome else None,
                                          outcome.category if outcome else "MISSING_RESULT")
            quarantine_problem(conn, ctx, OA_TO_CRM, "crm", "deal", work.deal_id, problem, None, None,
                               dictionary_version=d.version, now=now)
            events.append(audit_event("update", "crm", "deal", {"deal_id": work.deal_id}, [], "rejected",
                                      detail=str(outcome.category if outcome else "MISSING_RESULT"), dictionary=d,
                                      policy_version=p.version))
            keys.extend(work.keys)
            tally.add("quarantined")
            tally.add("quarantined_vendor_rejected")
        for work in batch:
            plan = work.plan
            if plan is None:
                continue
            ids = {"deal_id": work.deal_id, "instance_code": plan.instance_code}
            written_ms = work.modified_ms
            if plan.needed:
                result = results.get(work.deal_id)
                if result is None or not result.ok:
                    problem = rules.deal_rejected(work.deal_id, plan.instance_code,
                                                  result.message if result else None,
                                                  result.category if result else "MISSING_RESULT")
                    quarantine_problem(conn, ctx, OA_TO_CRM, "crm", "deal", work.deal_id, problem, None, None,
                                       dictionary_version=d.version, now=now)
                    events.append(audit_event("update", "crm", "deal", ids, sorted(plan.write), "rejected",
                                              detail=str(result.category if result else "MISSING_RESULT"),
                                              dictionary=d, policy_version=p.version))
                    keys.extend(work.keys)
                    tally.add("quarantined")
                    tally.add("quarantined_vendor_rejected")
                    continue
                if plan.conflicts:
                    events.append(audit_event("conflict", "crm", "deal", ids, list(plan.conflicts), "oa_wins",
                                              detail="system_of_record=oa: the CRM value was overwritten",
                                              dictionary=d, policy_version=p.version))
                    tally.add("conflicts")
                    tally.add("conflict_fields", len(plan.conflicts))
                events.append(audit_event("update", "crm", "deal", ids, sorted(plan.write), "ok",
                                          detail=f"approval status {plan.desired.get('approval_status')}",
                                          dictionary=d, policy_version=p.version))
                written_ms = _modified_of(d, result) or to_ms(now)
                tally.add("written_deal")
                tally.add("written")
            else:
                tally.add("deals_unchanged")
            state = {"instance_code": plan.instance_code, "written": plan.desired, "written_ms": written_ms or 0}
            if work.state is not None:
                if (work.state.state or {}) != state:
                    states[work.state.id] = state
            else:
                new_states.append(store.NewLink(crm_type="deal", crm_id=work.deal_id, oa_type=rules.PROJECT_FORM,
                                                state=state))
            keys.extend(work.keys)
        store.set_link_states(conn, states, run_id=ctx.run_id, now=now)
        store.add_links(conn, rules.WRITEBACK_LINK, new_states, dictionary_version=d.version, run_id=ctx.run_id,
                        now=now)
        write_audit(conn, ctx, events)
        store.complete_changes(conn, OA_TO_CRM, keys)
    _checkpoint(checkpoint, "deals_committed")


def _modified_of(d: Dictionary, outcome: RecordOutcome | None) -> int | None:
    if outcome is None or outcome.object is None:
        return None
    props = outcome.object.get("properties")
    value = props.get("hs_lastmodifieddate") if isinstance(props, dict) else None
    cleaned, issue = formats.clean_datetime(value)
    return formats.datetime_to_ms(str(cleaned)) if cleaned and not issue else None


# ---------------------------------------------------------------- load: activities


@dataclass
class _ActivityWork:
    change: PendingChange
    entity: str
    record: dict[str, Any]
    snap: store.Snapshot
    link: store.Link | None = None
    company_id: str | None = None
    deal_id: str | None = None
    plan: rules.ActivityPlan | None = None
    object_id: str | None = None
    associated: set[tuple[str, str]] = field(default_factory=set)
    failure: Problem | None = None

    @property
    def code(self) -> str:
        return self.change.source_id


def _companies_known(crm: CrmHook, hub: Engine, ids: Iterable[str], tally: Tally) -> set[str]:
    """Which company ids the CRM has: live hub snapshots first, a batch read for the rest (numeric ids only)."""
    wanted = sorted({i for i in ids if i})
    with hub.connect() as conn:
        snaps = store.get_snapshots(conn, "crm", "company", wanted)
    known = {i for i, s in snaps.items() if not s.deleted}
    missing = [i for i in wanted if i not in known and i.isdigit()]
    if missing:
        outcomes = _vendor_call(lambda: crm.batch_read("companies", missing, properties=["hs_object_id"]))
        known.update(str(o.key) for o in outcomes if o.ok)
        tally.add("companies_read_on_demand", len(missing))
    return known


def _deals_for_projects(conn: Connection, project_nos: Iterable[str]) -> dict[str, str]:
    """项目编号 → CRM deal id through the 立项申请 staged with that number and its ``deal_project`` link."""
    nos = sorted({n for n in project_nos if n})
    if not nos:
        return {}
    found = store.snapshots_by_field(conn, "oa", rules.PROJECT_FORM, "project_no", nos)
    codes = [s.source_id for snaps in found.values() for s in snaps]
    links = links_for_oa_ids(conn, rules.PROJECT_LINK, codes)
    out: dict[str, str] = {}
    for no, snaps in found.items():
        records = [canonical(dict(s.payload)) for s in snaps if any(lk.crm_id for lk in links.get(s.source_id, []))]
        best = rules.primary_project(records)
        if best is not None:
            link = next(lk for lk in links[str(best["instance_code"])] if lk.crm_id)
            out[no] = str(link.crm_id)
    return out


def _applicant_names(crm: CrmHook, hub: Engine, user_ids: Iterable[str]) -> dict[str, str]:
    """OA user → name, through the ``owner_user`` links the CRM → OA sync made and the CRM owners (one call)."""
    wanted = sorted({u for u in user_ids if u})
    if not wanted:
        return {}
    with hub.connect() as conn:
        links = links_for_oa_ids(conn, "owner_user", wanted)
    owners = {u: str(lks[0].crm_id) for u, lks in links.items() if lks and lks[0].crm_id}
    if not owners:
        return {}
    try:
        people = {str(o.get("id")): o for o in crm.owners()}
    except VendorError:
        return {}
    names: dict[str, str] = {}
    for user, owner in owners.items():
        o = people.get(owner) or {}
        name = f"{o.get('lastName') or ''}{o.get('firstName') or ''}".strip()
        if name:
            names[user] = name
    return names


def _load_activities(
    crm: CrmHook, hub: Engine, ctx: RunContext, cfg: OaToCrmSettings, d: Dictionary, p: Policy, now: datetime,
    dues: Sequence[PendingChange], tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    by_entity: dict[str, list[PendingChange]] = {}
    for change in dues:
        by_entity.setdefault(change.entity, []).append(change)
    works: list[_ActivityWork] = []
    done: list[PendingKey] = []
    with hub.connect() as conn:
        for entity, changes in by_entity.items():
            ids = [c.source_id for c in changes]
            snaps = store.get_snapshots(conn, "oa", entity, ids)
            held = store.open_quarantine_for(conn, OA_TO_CRM, entity, ids)
            for change in changes:
                snap = snaps.get(change.source_id)
                if snap is None or snap.deleted or change.source_id in held:
                    done.append(_key(change))
                    tally.add("held_in_quarantine" if change.source_id in held else "nothing_staged")
                    continue
                works.append(_ActivityWork(change, entity, canonical(dict(snap.payload)), snap))
        codes = [w.code for w in works]
        act_links = links_for_oa_ids(conn, rules.ACTIVITY_LINK, codes)
        cust_links = links_for_oa_ids(conn, rules.CUSTOMER_LINK, codes)
        deals = _deals_for_projects(conn, [str(w.record.get("project_no") or "") for w in works])
    if done:
        with hub.begin() as conn:
            store.complete_changes(conn, OA_TO_CRM, done)
    for work in works:
        work.link = _first(act_links.get(work.code))
        kept = next((lk.crm_id for lk in cust_links.get(work.code, []) if lk.crm_id), None)
        raw = work.record.get("customer_id")
        work.company_id = str(kept or raw) if (kept or raw) else None
        work.deal_id = deals.get(str(work.record.get("project_no") or ""))
    # Customers that can matter: those of instances that reach the CRM or are still pending.
    relevant = [w for w in works if d.activity_due(w.entity, w.record)]
    known = _companies_known(crm, hub, [str(w.company_id) for w in relevant if w.company_id], tally)
    unlinked = [w for w in relevant if not w.company_id or w.company_id not in known]
    names = _applicant_names(crm, hub, [str(w.record.get("applicant_id") or "") for w in unlinked]) if unlinked \
        else {}
    for work in works:
        state = dict(work.link.state or {}, crm_id=work.link.crm_id) if work.link is not None else None
        applicant = str(work.record.get("applicant_id") or "")
        work.plan = rules.plan_activity(
            d, p, work.entity, work.record, problems=[], company_id=work.company_id,
            company_known=bool(work.company_id and work.company_id in known), deal_id=work.deal_id,
            link_state=state, applicant=rules.applicant_label(applicant or None, names.get(applicant)))
        tally.add(f"activity_{work.plan.reason}")
    for batch in _chunks(works, cfg.write_batch):
        _activity_batch(crm, hub, ctx, d, p, now, list(batch), tally, checkpoint)


def _activity_batch(
    crm: CrmHook, hub: Engine, ctx: RunContext, d: Dictionary, p: Policy, now: datetime,
    batch: list[_ActivityWork], tally: Tally, checkpoint: Checkpoint | None,
) -> None:
    """Upsert (or void) a batch of activities, associate them, then links, audit, quarantine, completion."""
    writes = [w for w in batch if w.plan is not None and w.plan.action in ("upsert", "void")]
    by_object: dict[str, list[_ActivityWork]] = {}
    for work in writes:
        assert work.plan is not None
        assert work.plan.crm_object is not None
        by_object.setdefault(work.plan.crm_object, []).append(work)
    for crm_object, items in by_object.items():
        records = [w.plan.properties for w in items if w.plan is not None]
        upserted: list[RecordOutcome] = _vendor_call(partial(crm.batch_upsert, crm_object, records,
                                                             id_property="oa_instance_code"))
        outcomes = {o.key: o for o in upserted}
        for work in items:
            outcome = outcomes.get(work.code)
            if outcome is not None and outcome.ok and outcome.id:
                work.object_id = str(outcome.id)
            else:
                work.failure = rules.activity_rejected(d, work.entity, work.code,
                                                       outcome.message if outcome else None,
                                                       outcome.category if outcome else "MISSING_RESULT")
    _checkpoint(checkpoint, "activities_upserted")
    _associate(crm, d, by_object, tally)
    _checkpoint(checkpoint, "associations_sent")
    events: list[audit.AuditEvent] = []
    states: dict[int, dict[str, Any]] = {}
    new_links: list[store.NewLink] = []
    keys: list[PendingKey] = []
    with hub.begin() as conn:
        for work in batch:
            plan = work.plan
            assert plan is not None
            keys.append(_key(work.change))
            ids = {"instance_code": work.code}
            if plan.action == "quarantine" or work.failure is not None:
                problem = work.failure or plan.problem
                assert problem is not None
                quarantine_problem(conn, ctx, OA_TO_CRM, "oa", work.entity, work.code, problem, work.record,
                                   work.snap.content_hash, data_owner=work.snap.data_owner,
                                   dictionary_version=d.version, now=now)
                if work.failure is not None:
                    events.append(audit_event("upsert", "crm", plan.crm_object or work.entity, ids,
                                              sorted(plan.properties), "rejected", detail=problem.code,
                                              dictionary=d, policy_version=p.version))
                tally.add("quarantined")
                tally.add(f"quarantined_{problem.code}")
                if work.object_id is None:
                    continue
            if plan.action not in ("upsert", "void") or work.object_id is None:
                if plan.action == "nothing":
                    tally.add("activities_unchanged" if plan.reason in ("unchanged", "already_voided")
                              else "nothing")
                continue
            assert plan.crm_object is not None
            ids["crm_id"] = work.object_id
            events.append(audit_event("void" if plan.action == "void" else "upsert", "crm", plan.crm_object, ids,
                                      sorted(plan.properties), "ok",
                                      detail=f"{work.entity} {work.record.get('approval_status')}", dictionary=d,
                                      policy_version=p.version))
            tally.add(f"written_{plan.crm_object}")
            tally.add("written")
            if plan.action == "void":
                tally.add(f"voided_{plan.crm_object}")
            previous = set(_pairs((work.link.state or {}).get("associated"))) if work.link is not None \
                and str(work.link.crm_id) == work.object_id else set()
            state = {"phase": "voided" if plan.action == "void" else "written",
                     "hash": plan.written_hash if work.failure is None else None,
                     "status": work.record.get("approval_status"), "crm_object": plan.crm_object,
                     "company_id": plan.company_id, "deal_id": plan.deal_id,
                     "associated": sorted(previous | work.associated)}
            if work.link is not None and str(work.link.crm_id) == work.object_id:
                states[work.link.id] = state
            else:
                new_links.append(store.NewLink(crm_type=plan.crm_object, crm_id=work.object_id, oa_type=work.entity,
                                               oa_id=work.code, state=state))
        store.set_link_states(conn, states, dictionary_version=d.version, run_id=ctx.run_id, now=now)
        store.add_links(conn, rules.ACTIVITY_LINK, new_links, dictionary_version=d.version, run_id=ctx.run_id, now=now)
        write_audit(conn, ctx, events)
        store.complete_changes(conn, OA_TO_CRM, keys)
    _checkpoint(checkpoint, "activities_committed")


def _pairs(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        return []
    return [(str(p[0]), str(p[1])) for p in raw if isinstance(p, list | tuple) and len(p) == 2]


def _associate(crm: CrmHook, d: Dictionary, by_object: Mapping[str, list[_ActivityWork]], tally: Tally) -> None:
    """Default associations with the company and the deal, only those not made before (idempotent anyway)."""
    for crm_object, items in by_object.items():
        wanted: dict[str, list[tuple[_ActivityWork, str]]] = {}
        for work in items:
            plan = work.plan
            if work.object_id is None or plan is None or plan.action != "upsert":
                continue
            done = set(_pairs((work.link.state or {}).get("associated"))) if work.link is not None \
                and str(work.link.crm_id) == work.object_id else set()
            for to_type, to_id in (("companies", plan.company_id), ("deals", plan.deal_id)):
                if to_id and (to_type, to_id) not in done:
                    wanted.setdefault(to_type, []).append((work, to_id))
                elif to_id:
                    work.associated.add((to_type, to_id))
        for to_type, pairs in wanted.items():
            made: list[RecordOutcome] = _vendor_call(partial(
                crm.associate_many, crm_object, to_type, [(str(w.object_id), t) for w, t in pairs]))
            outcomes = {o.key: o for o in made}
            for work, to_id in pairs:
                outcome = outcomes.get(f"{work.object_id}->{to_id}")
                if outcome is not None and outcome.ok:
                    work.associated.add((to_type, to_id))
                    tally.add(f"associated_{to_type}")
                elif work.failure is None:
                    work.failure = rules.activity_rejected(d, work.entity, work.code,
                                                           outcome.message if outcome else None,
                                                           outcome.category if outcome else "MISSING_RESULT")


# ---------------------------------------------------------------- summary and one cycle


def summarise(
    hub: Engine,
    ctx: RunContext,
    parts: Mapping[str, Mapping[str, Any] | None],
    now: datetime,
    *,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Store and log the run summary (read, discovered, unchanged, written by kind, quarantined, API calls)."""
    return summarise_run(hub, ctx, KIND, parts, now, ASSET_COUNTERS, started_at=started_at)


def run_cycle(
    oa: OaHook,
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    *,
    dictionary: Dictionary | None = None,
    policy: Policy | None = None,
    backfill_days: float = 0,
    checkpoint: Checkpoint | None = None,
) -> dict[str, Any]:
    """discover + load + summarise, as one DAG run does (bench, demo, tests)."""
    d, p = _tools(dictionary, policy)
    found = discover(oa, hub, ctx, cfg, now, dictionary=d, policy=p, backfill_days=backfill_days,
                     checkpoint=checkpoint)
    loaded = load(crm, hub, ctx, cfg, now + timedelta(milliseconds=1), dictionary=d, policy=p, checkpoint=checkpoint)
    return summarise(hub, ctx, {"discover": found.as_dict(), "load": loaded.as_dict()}, now)

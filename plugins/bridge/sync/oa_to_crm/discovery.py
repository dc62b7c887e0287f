"""OA → CRM, task ``discover`` (OA calls only): find new and changed instances, stage them, queue them.

Feishu has no "changed since" listing. Per approval code, new instances are
found in creation-time windows from the hub watermark (minus a lookback);
status changes by ``instances/query`` over the 30-day spans that hold the
hub's open instances (plus one older span per run in rotation);
``get_instance`` only for the instances that are new or whose status moved,
at most ``max_instance_reads_per_run`` per run. Exactly once by watermark: the
listing watermark never passes an unread instance (the rest are found again
next run), and a stale status keeps differing until it is read. Read
instances are staged per chunk of 100 with their queue entries or quarantine
in ONE transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from bridge import people
from bridge.clock import to_ms
from bridge.dictionary import Problem, formats
from bridge.hooks.errors import NotFoundError, PayloadTooLargeError, VendorError
from bridge.hooks.feishu_codec import instance_applicant
from bridge.hub import store
from bridge.hub.store import InstanceQuery, PendingKey
from bridge.staging import PROBLEMS_KEY, canonical, snapshot_row
from bridge.sync.common import ALWAYS_BLOCKING, OA_TO_CRM
from bridge.sync.frame import QuarantinedRecord, Run, Tally, incomplete, resolve_fixed
from bridge.sync.oa_to_crm import decide as rules
from bridge.sync.oa_to_crm.scan import created_ms, enqueue_backfill, scan_deals
from bridge.sync.oa_to_crm.settings import OaToCrmSettings

log = logging.getLogger("bridge.sync.oa_to_crm")

O2C = Run[OaToCrmSettings]
LIST_WINDOW_MS = (
    10 * 3_600_000
)  # Feishu's instance-code list: at most 10 hours per window (as the hook splits)
READ_CHUNK = 100  # instances read per hub transaction


def discover(run: O2C, backfill_days: float) -> Tally:
    """Find new and changed OA instances, stage them, queue what the CRM must see (task ``discover``).

    Raises :class:`~bridge.sync.frame.SyncIncomplete` after committing what it did when the OA stayed
    unavailable through the hook's retries: what was not read is found next run.
    """
    run.cfg.check(run.d)
    before = run.calls_now()
    works: list[FormWork] = []
    stop: VendorError | None = None
    try:
        for form in run.cfg.forms:
            work = FormWork(form, run.cfg.code(form))
            works.append(work)
            list_new(run, work)
            sweep(run, work)
    except VendorError as exc:
        stop = exc
        log.warning(
            "oa_to_crm discover: the OA is unavailable (%s %s %s); reading what was found",
            type(exc).__name__,
            exc.status,
            exc.code,
        )
    run.step("discovered")
    queue = _read_queue(run, works)
    if stop is None:
        stop = read_and_stage(run, queue)
    run.tally.add("reads_deferred", len(queue.items) - len(queue.read))
    _move_watermarks(run, works, queue, stop)
    run.step("watermarks_committed")
    scan_deals(run)
    if backfill_days > 0:
        run.tally.add(
            "backfill_enqueued", enqueue_backfill(run.hub, run.cfg, run.now, backfill_days, dictionary=run.d)
        )
    run.finish("oa_to_crm discover", before)
    if stop is not None:
        raise incomplete("the OA", stop, f"{run.tally.counts.get('reads_deferred', 0)} instance(s)") from stop
    return run.tally


def _read_queue(run: O2C, works: Sequence[FormWork]) -> ReadQueue:
    """Reads by priority: released records, status changes, pending instances the hub never saw, new ones."""
    queue = ReadQueue()
    for form, codes in released(run).items():
        queue.want(form, codes)
        queue.forced.update(codes)
    for work in works:
        queue.want(work.form, sorted(work.changed))
    for work in works:
        queue.want(work.form, sorted(work.unknown))
    for work in works:
        queue.want(work.form, work.new)
    return queue


def _move_watermarks(run: O2C, works: Sequence[FormWork], queue: ReadQueue, stop: VendorError | None) -> None:
    """The listing watermark only past windows whose new instances were all read; the sweep's rotation only
    when the run was not stopped."""
    with run.hub.begin() as conn:
        for work in works:
            if work.list_until is not None and all(code in queue.read for code in work.new):
                run.tally.watermarks[f"oa.{work.form}.created"] = store.set_watermark(
                    conn, f"oa.{work.form}.created", work.list_until, run.ctx.run_id, now=run.now
                )
            if work.cursor_next is not None and stop is None:
                run.tally.watermarks[f"oa.{work.form}.sweep"] = store.set_watermark(
                    conn, f"oa.{work.form}.sweep", work.cursor_next, run.ctx.run_id, force=True, now=run.now
                )


# ---------------------------------------------------------------- finding instances


@dataclass
class FormWork:
    """What discovery found for one approval code this run."""

    form: str
    code: str
    new: list[str] = field(default_factory=list)  # listed, unknown to the hub, creation order
    changed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    list_until: int | None = None  # end of the creation windows listed (the watermark if all new were read)
    cursor_next: int | None = None  # the rotation's next span start


def list_new(run: O2C, work: FormWork) -> None:
    """New instance codes created since the watermark (minus the lookback), in ≤ 10 h windows."""
    cfg, now_ms = run.cfg, to_ms(run.now)
    with run.hub.connect() as conn:
        mark = store.get_watermark(conn, f"oa.{work.form}.created")
    lo = (
        max(0, mark - cfg.lookback_ms)
        if mark is not None
        else now_ms - int(cfg.initial_backfill_seconds * 1000)
    )
    hi = min(now_ms, lo + cfg.max_list_windows_per_run * LIST_WINDOW_MS - 1)
    codes: list[str] = []
    for page in run.hooks.oa.iter_instance_codes(work.code, lo, hi):
        codes.extend(page)
    codes = list(dict.fromkeys(codes))
    with run.hub.connect() as conn:
        known = {i.code for i in store.oa_instances(conn, InstanceQuery(work.form, codes=codes))}
    work.new = [c for c in codes if c not in known]
    work.list_until = hi
    run.tally.add("listed", len(codes))
    run.tally.add("discovered", len(work.new))


def _query(run: O2C, work: FormWork, span: tuple[int, int], status: str) -> dict[str, int | None]:
    """``{code: end_time ms}`` of the span's instances in one status (``instances/query``, 200 per page)."""
    found: dict[str, int | None] = {}
    for page in run.hooks.oa.iter_instance_refs(work.code, span[0], span[1], status=status):
        for ref in page:
            found[ref.code] = ref.end_ms
    run.tally.add(f"swept_{status.lower()}", len(found))
    return found


def _held_span(conn: Connection, form: str, span: tuple[int, int]) -> dict[str, rules.HubInstance]:
    """Every instance of the form the hub holds, not deleted, created in the span."""
    lo, hi = (formats.ms_to_datetime(t) for t in span)
    out: dict[str, rules.HubInstance] = {}
    for i in store.oa_instances(
        conn, InstanceQuery(form, closed_status=rules.DELETED, created_between=(lo, hi))
    ):
        ms = created_ms(i.created_at)
        if ms is not None:
            out[i.code] = rules.HubInstance(i.status, ms, created_ms(i.decided_at))
    return out


def sweep(run: O2C, work: FormWork) -> None:
    """Status changes of the instances the hub holds (see :func:`bridge.sync.oa_to_crm.decide.sweep_changes`):
    the 30-day spans holding pending or lately decided instances, plus older spans in rotation."""
    cfg, tally, now_ms = run.cfg, run.tally, to_ms(run.now)
    hot_query = InstanceQuery(
        work.form,
        closed_status=rules.DELETED,
        open_status=rules.PENDING,
        modified_since_ms=now_ms - cfg.recent_decision_ms,
    )
    with run.hub.connect() as conn:
        hot = [
            (i, ms)
            for i in store.oa_instances(conn, hot_query)
            if (ms := created_ms(i.created_at)) is not None
        ]
        cursor = store.get_watermark(conn, f"oa.{work.form}.sweep")
        oldest = (
            store.oa_instances(conn, InstanceQuery(work.form, closed_status=rules.DELETED, oldest_only=True))
            if cfg.cold_spans_per_run > 0
            else []
        )
    span_list = rules.spans([ms for _, ms in hot], now_ms)
    tally.add("open_instances", sum(1 for i, _ in hot if i.status == rules.PENDING))
    oldest_ms = created_ms(oldest[0].created_at) if oldest else None
    cold, work.cursor_next = rules.cold_spans(cursor, oldest_ms, span_list, now_ms, cfg.cold_spans_per_run)
    span_list += cold
    tally.add("status_spans", len(span_list))
    for span in span_list:
        with run.hub.connect() as conn:
            held = _held_span(conn, work.form, span)
        results = {status: _query(run, work, span, status) for status in rules.sweep_statuses(held)}
        found = rules.sweep_changes(held, results, now_ms - cfg.query_lag_ms)
        work.changed |= found.changed
        work.unknown |= found.unknown
    tally.add("status_changed", len(work.changed))


def released(run: O2C) -> dict[str, list[str]]:
    """Due changes whose snapshot was staged with problems and that nobody holds in quarantine (released by a
    person, e.g. after a dictionary fix): they are read again and mapped with today's dictionary."""
    with run.hub.connect() as conn:
        due = store.due_changes(conn, OA_TO_CRM, run.now, limit=run.cfg.max_changes_per_run)
        out: dict[str, list[str]] = {}
        for form in run.cfg.forms:
            ids = [c.source_id for c in due if c.entity == form]
            if not ids:
                continue
            snaps = store.get_snapshots(conn, "oa", form, ids)
            held = store.open_quarantine_for(conn, OA_TO_CRM, form, ids)
            stale = [
                i
                for i in ids
                if i in snaps
                and i not in held
                and set(snaps[i].payload.get(PROBLEMS_KEY) or ()) & ALWAYS_BLOCKING
            ]
            if stale:
                out[form] = stale
    return out


# ---------------------------------------------------------------- reading and staging


@dataclass
class ReadQueue:
    """The instances to read, by priority, and which ones were read (or settled) this run."""

    items: list[tuple[str, str]] = field(default_factory=list)
    forced: set[str] = field(default_factory=set)  # released records: staged again even if unchanged
    read: set[str] = field(default_factory=set)

    def want(self, form: str, codes: Iterable[str]) -> None:
        seen = {code for _, code in self.items}
        for code in codes:
            if code not in seen:
                seen.add(code)
                self.items.append((form, code))


def read_and_stage(run: O2C, queue: ReadQueue) -> VendorError | None:
    """``get_instance`` for the queue (within the run's budget), staged per chunk of 100."""
    todo = list(queue.items[: run.cfg.max_instance_reads_per_run])
    for start in range(0, len(todo), READ_CHUNK):
        details, unreadable, stop = _read_chunk(run, todo[start : start + READ_CHUNK], queue.read)
        run.tally.add("read", sum(len(v) for v in details.values()))
        if details or unreadable:
            with run.hub.begin() as conn:
                for form, items in details.items():
                    _stage(conn, run, form, items, queue.forced)
                for bad_form, bad_code, refusal in unreadable:
                    _quarantine_unreadable(conn, run, bad_form, bad_code, refusal)
            run.step("instances_staged")
            people.learn_oa_names(
                run.hooks.oa,
                run.hub,
                [instance_applicant(item) for items in details.values() for item in items],
                now=run.now,
            )
        if stop is not None:
            return stop
    return None


def _read_chunk(
    run: O2C,
    chunk: Sequence[tuple[str, str]],
    read: set[str],
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, str, VendorError]], VendorError | None]:
    """The details of one chunk by form, the instances too large to read, and the outage that stopped it."""
    details: dict[str, list[dict[str, Any]]] = {}
    unreadable: list[tuple[str, str, VendorError]] = []
    for form, code in chunk:
        try:
            detail = run.hooks.oa.get_instance(code)
        except NotFoundError:
            run.tally.add("read_not_found")
            read.add(code)
            continue
        except PayloadTooLargeError as exc:
            # This instance, not the OA, is the problem: quarantined, so it cannot stop the others.
            unreadable.append((form, code, exc))
            read.add(code)
            continue
        except VendorError as exc:
            return details, unreadable, exc
        read.add(code)
        details.setdefault(form, []).append(detail)
    return details, unreadable, None


def _quarantine_unreadable(conn: Connection, run: O2C, form: str, code: str, refusal: VendorError) -> None:
    problem = Problem(
        code="hostile_input",
        entity=form,
        field=None,
        message=(
            f"OA 审批实例 {code} 的详情无法读取：{refusal.message}。请在 OA 中检查该审批的表单内容"
            f"（是否粘贴了超大的文本或附件），修正后执行 `bridge quarantine release <编号>`。"
        ),
    )
    run.quarantine(conn, ("oa", form, code), problem, QuarantinedRecord(), count=True)


def _stage(
    conn: Connection, run: O2C, form: str, details: Sequence[Mapping[str, Any]], forced: set[str]
) -> None:
    """Snapshots, quarantine and queue for instances read (the caller's transaction)."""
    tally, d = run.tally, run.d
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
    changes = {
        c.source_id: c for c in store.upsert_snapshots(conn, "oa", form, [r for r, _ in mapped], now=run.now)
    }
    tally.add("unchanged", sum(1 for c in changes.values() if not c.is_change))
    tally.add("staged", sum(1 for c in changes.values() if c.is_change))
    todo = {
        row.source_id: (row, result)
        for row, result in mapped
        if (changes.get(row.source_id) and changes[row.source_id].is_change) or row.source_id in forced
    }
    if not todo:
        return
    hashes = {k: r.content_hash for k, (r, _) in todo.items()}
    tally.add("retried", len(resolve_fixed(conn, run.ctx, OA_TO_CRM, form, hashes, now=run.now)))
    matters = _matters(conn, run, form, {sid: result.record for sid, (_, result) in todo.items()})
    queue: list[tuple[str, str, str]] = []
    for sid, (row, result) in todo.items():
        stop = rules.blocking(d, form, result.problems)
        if not stop and sid in matters:
            queue.append((form, sid, row.content_hash))
            continue
        store.complete_changes(conn, OA_TO_CRM, [PendingKey(form, sid)])
        if not stop:
            tally.add("not_for_crm")
        elif sid in matters or (
            form != rules.PROJECT_FORM and result.record.get("approval_status") == rules.PENDING
        ):
            run.quarantine(
                conn,
                ("oa", form, sid),
                stop[0],
                QuarantinedRecord(canonical(row.payload), row.content_hash, row.data_owner),
                count=True,
            )
        else:
            tally.add("problems_not_for_crm")
    run.enqueue(conn, queue, run.cfg.quiet_seconds, run.cfg.quiet_seconds)


def _matters(conn: Connection, run: O2C, form: str, records: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The instances the CRM will see: linked 立项申请; due activities, ones written before (to void), and
    pending forms with no customer (quarantined early, while the applicant can still withdraw and fix them)."""
    ids = list(records)
    if form == rules.PROJECT_FORM:
        links = store.links_for_oa_ids(conn, rules.PROJECT_LINK, ids)
        return {i for i in ids if any(lk.crm_id for lk in links.get(i, []))}
    written = store.links_for_oa_ids(conn, rules.ACTIVITY_LINK, ids)
    return {
        i
        for i, record in records.items()
        if i in written
        or run.d.activity_due(form, record)
        or (record.get("approval_status") == rules.PENDING and not record.get("customer_id"))
    }

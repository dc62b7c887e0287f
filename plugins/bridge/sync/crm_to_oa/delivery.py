"""CRM → OA, task ``load``: decide per due deal, then send (:mod:`.send`) and write back (:mod:`.writeback`).

The decisions are pure (:func:`bridge.sync.crm_to_oa.decide.decide_deal`);
quick outcomes (nothing to do, quarantine, a baseline) are committed first,
then the OA calls. When a vendor stays unavailable through the hook's
retries, what was done is committed, the rest is deferred and the task
raises :class:`~bridge.sync.frame.SyncIncomplete`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.hooks.errors import VendorError
from bridge.hub import store
from bridge.hub.store import PendingKey
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa import archive, attachments
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.enrich import (
    Due,
    People,
    load_companies,
    notice_applicant,
    refresh_released,
    resolve_owners,
)
from bridge.sync.crm_to_oa.send import (
    C2O,
    VendorUnavailable,
    create_projects,
    probe_intent,
    quarantine_notice_applicant,
    send_notice,
    update_state,
)
from bridge.sync.crm_to_oa.writeback import write_back
from bridge.sync.frame import QuarantinedRecord, Tally, defer, incomplete, take_due

log = logging.getLogger("bridge.sync.crm_to_oa")


def deliver(run: C2O) -> Tally:
    """Send the due deals to the OA and write the results back to the CRM (holding the direction's lease)."""
    tally = run.tally
    calls_before = run.calls_now()
    stopped: VendorError | None = None
    try:
        stopped = _send_due(run)
        if stopped is None:
            attachments.check_later_files(run)  # contract files added after a 立项申请 was filed
        try:
            write_back(run)
        except VendorError as exc:  # the CRM stayed unavailable: the links keep writeback pending
            log.warning(
                "crm_to_oa: write-back stopped, the CRM is unavailable (%s %s %s); next run resumes it",
                type(exc).__name__,
                exc.status,
                exc.code,
            )
            tally.add("writebacks_deferred")
            stopped = stopped or exc
    finally:
        run.count_calls(calls_before)
    with run.hub.connect() as conn:
        tally.add("debounced", sum(1 for c in store.pending_changes(conn, CRM_TO_OA) if c.due_at > run.now))
    run.log_summary("crm_to_oa load")
    if stopped is not None:
        raise incomplete(
            "the OA or CRM", stopped, f"{tally.counts.get('deferred', 0)} change(s)"
        ) from stopped
    return tally


def _today(now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).date().isoformat()


def _send_due(run: C2O) -> VendorError | None:
    """Decide the due deals, commit the quick outcomes, then the OA calls; returns the outage that stopped them."""
    dues = [Due(c) for c in take_due(run, run.cfg.max_changes_per_run, lambda c: c.entity == "deal")]
    if not dues:
        return None
    snaps, active, done = _active(run, dues)
    archived = [due for due in active if snaps[due.deal_id].deleted]
    active = [due for due in active if not snaps[due.deal_id].deleted]
    _clear_restored_marks(run, active)
    refresh_released(run, active)
    load_companies(run, [*active, *archived])
    people = _decide(run, active)
    by_action: dict[str, list[Due]] = {}
    for due in active:
        assert due.decision is not None
        by_action.setdefault(due.decision.action, []).append(due)
    _quick_outcomes(run, by_action, snaps, done)
    try:
        archive.settle_archived(run, archived, people)
        for due in by_action.get("probe_intent", []):
            probe_intent(run, due)
        creates = by_action.get("create", [])
        for start in range(0, len(creates), run.cfg.create_chunk):
            create_projects(run, creates[start : start + run.cfg.create_chunk])
        notices = by_action.get("notice", [])
        if notices:
            applicant = notice_applicant(run, people)
            if applicant is None:
                quarantine_notice_applicant(run, notices, snaps)
            else:
                for due in notices:
                    send_notice(run, due, applicant)
    except VendorUnavailable as stop:
        defer(run, [due.change for due in stop.remaining], run.cfg.retry_delay_seconds, "vendor")
        return stop.error
    return None


def _active(run: C2O, dues: Sequence[Due]) -> tuple[dict[str, store.Snapshot], list[Due], list[PendingKey]]:
    """The dues with a live snapshot and no open quarantine entry, with their links; the keys of the others
    (completed with the quick outcomes)."""
    ids = [due.deal_id for due in dues]
    with run.hub.connect() as conn:
        snaps = store.get_snapshots(conn, "crm", "deal", ids)
        project_links = store.links_for_crm_ids(conn, rules.PROJECT_LINK, ids)
        notice_links = store.links_for_crm_ids(conn, rules.NOTICE_LINK, ids)
        held = store.open_quarantine_for(conn, CRM_TO_OA, "deal", ids)
    active: list[Due] = []
    done: list[PendingKey] = []
    for due in dues:
        snap = snaps.get(due.deal_id)
        links = project_links.get(due.deal_id, [])
        if snap is not None and snap.deleted:
            linked = next((lk for lk in links if lk.oa_id), None)
            if archive.needs_settling(linked):  # archived in the CRM: settled, never sent (archive.py)
                due.payload, due.project_link = snap.payload, linked
                active.append(due)
                continue
        if snap is None or snap.deleted or due.deal_id in held:
            done.append(due.key)
            run.tally.add(
                "held_in_quarantine" if snap is not None and not snap.deleted else "nothing_deleted"
            )
            continue
        due.payload = snap.payload
        due.project_link = next((lk for lk in links if lk.oa_id), None) or (links[0] if links else None)
        due.notice_link = next((lk for lk in notice_links.get(due.deal_id, []) if lk.oa_id is None), None)
        active.append(due)
    return snaps, active, done


def _clear_restored_marks(run: C2O, active: Sequence[Due]) -> None:
    """Deals live again whose 立项申请 link still says archived (restored, then edited): mark cleared."""
    marked = [due for due in active if due.project_link and (due.project_link.state or {}).get("archived")]
    if marked:
        with run.hub.begin() as conn:
            for due in marked:
                archive.clear_archive_mark(conn, run, due.deal_id, due.project_link)
        run.tally.add("archived_restored", len(marked))


def _decide(run: C2O, active: Sequence[Due]) -> People:
    """Each deal's decision (pure); the owners of deals that may be created are resolved to OA users first."""
    cfg = run.cfg
    people = People()
    candidates = [
        due
        for due in active
        if (due.payload or {}).get("stage") in cfg.initiation_stages
        and not (due.project_link and due.project_link.oa_id)
    ]
    resolve_owners(
        run,
        [
            str(due.payload.get("owner_id"))
            for due in candidates
            if due.payload and due.payload.get("owner_id")
        ],
        people,
    )
    today = _today(run.now, cfg.timezone)
    for due in active:
        assert due.payload is not None
        owner_id = str(due.payload.get("owner_id") or "")
        facts = rules.DealFacts(
            company=due.company,
            project=rules.ProjectLink.of(due.project_link),
            notice_intent=rules.NoticeIntent.of(due.notice_link),
            owner=people.users.get(owner_id),
        )
        due.decision = rules.decide_deal(
            run.d, due.payload, facts, initiation_stages=cfg.initiation_stages, today=today
        )
        run.tally.add(f"decision_{due.decision.reason}")
    return people


def _quick_outcomes(
    run: C2O,
    by_action: Mapping[str, Sequence[Due]],
    snaps: Mapping[str, store.Snapshot],
    done: list[PendingKey],
) -> None:
    """Nothing to send, quarantine, baselines: one transaction completing their changes (and ``done``)."""
    with run.hub.begin() as conn:
        for due in by_action.get("quarantine", []):
            assert due.decision is not None
            assert due.decision.problem is not None
            snap = snaps[due.deal_id]
            run.quarantine(
                conn,
                ("crm", "deal", due.deal_id),
                due.decision.problem,
                QuarantinedRecord(due.payload, snap.content_hash, snap.data_owner),
                count=True,
            )
            done.append(due.key)
        for due in by_action.get("baseline", []):
            assert due.project_link is not None
            assert due.payload is not None
            update_state(conn, run, due.project_link, {"amount_sent": due.payload.get("contract_amount")})
            done.append(due.key)
            run.tally.add("baselined")
        for due in by_action.get("nothing", []):
            done.append(due.key)
            run.tally.add("nothing")
        store.complete_changes(conn, CRM_TO_OA, done)

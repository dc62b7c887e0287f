"""CRM → OA: deals archived (deleted) and restored in the CRM.

Archiving does not move a record's modification time and search never finds
an archived record, so the extract cannot see it. ``extract_stage`` therefore
ends with a **sweep** (:func:`sweep_archived`): a pass over the CRM's archived
deals starts at most every ``crm_to_oa.archive_sweep.every_minutes`` and reads
at most ``max_pages`` list pages per run; the list cursor and the pass's start
are watermarks in the hub, so the next run resumes where this one stopped.
Each archived deal the hub knows is tombstoned (who/when/why in its snapshot)
and audited; a deal with a 立项申请 is queued so that ``load`` settles it
(:func:`settle_archived`, decisions in :func:`.decide.decide_archived`): a
pending 立项申请 is withdrawn (its reason posted as a comment on the instance),
an approved one gets a 商机作废通知 to finance, an ended one is only marked. When a pass starts, the tombstoned deals the CRM has
again (restored from its recycle bin) are revived and their mark is cleared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from bridge.clock import to_ms
from bridge.hooks.errors import NotFoundError, VendorError
from bridge.hub import store
from bridge.staging import canonical
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.enrich import Due, People, notice_applicant
from bridge.sync.crm_to_oa.send import (
    C2O,
    VendorUnavailable,
    quarantine_notice_applicant,
    update_state,
)
from bridge.sync.frame import write_audit

if TYPE_CHECKING:
    from bridge.hooks.crm import ArchivedPage

log = logging.getLogger("bridge.sync.crm_to_oa")

SWEEP_STREAM = (
    "crm.deal.archived_sweep"  # watermark: when the current (or last) pass over the list started, ms
)
CURSOR_STREAM = f"crm.deal.archived{store.POSITION_SUFFIX}"  # the list cursor of the pass under way (0: none)
ARCHIVED_PAGE = 100  # records per list page (HubSpot's maximum)
RESTORE_READS = 100  # tombstoned records checked for a restore per page of the pass
SWEPT = ("deal", "company", "contact")  # deals first: their 立项申请 are what the OA must hear about


def sweep_stream(entity: str) -> str:
    """The watermark of when the current (or last) pass over an entity's archived list started (ms)."""
    return f"crm.{entity}.archived_sweep"


def cursor_stream(entity: str) -> str:
    """The list cursor of an entity's pass under way (0: none)."""
    return f"crm.{entity}.archived{store.POSITION_SUFFIX}"


def _counter(name: str, entity: str) -> str:
    """Deals keep the plain counter names (``archived_read``…); companies and contacts a suffix."""
    return name if entity == "deal" else f"{name}_{entity}"


# ---------------------------------------------------------------- extract: the sweep


def sweep_archived(run: C2O) -> None:
    """Tombstone the records archived in the CRM (deals, then companies and contacts), queue the linked deals,
    revive the restored records. Bounded: ``archive_sweep.max_pages`` list pages per run for all of them
    together; each entity's pass starts at most every ``every_minutes`` and resumes from its cursor."""
    budget = run.cfg.archive_sweep_pages
    for entity in (e for e in SWEPT if e in run.cfg.entities):
        if budget <= 0:
            break
        budget -= _sweep_entity(run, entity, budget)


def _sweep_entity(run: C2O, entity: str, budget: int) -> int:
    """One entity's pass (started if due, else continued from its cursor), at most ``budget`` list pages;
    returns the pages read."""
    now_ms = to_ms(run.now)
    with run.hub.connect() as conn:
        started = store.get_watermark(conn, sweep_stream(entity))
        cursor = store.get_watermark(conn, cursor_stream(entity)) or 0
    if cursor == 0:
        if started is not None and now_ms - started < run.cfg.archive_sweep_seconds * 1000:
            return 0
        with run.hub.begin() as conn:
            store.set_watermark(conn, sweep_stream(entity), now_ms, run.ctx.run_id, force=True, now=run.now)
        run.tally.add(_counter("archive_passes", entity))
        _revive_restored(run, entity)
    after = str(cursor) if cursor else None
    object_type = run.d.entity(entity).crm_object or entity
    pages = 0
    while pages < budget:
        page = run.hooks.crm.archived_page(object_type, after, ARCHIVED_PAGE)
        pages += 1
        run.tally.add(_counter("archived_read", entity), len(page.records))
        _tombstone_page(run, entity, page)
        after = page.next_after
        if after is None:
            break
    return pages


def _cursor_ms(after: str | None) -> int:
    """The list cursor as the watermark keeps it (HubSpot's object list pages by id: a number)."""
    if after is None:
        return 0
    if not after.isdigit():
        log.warning("crm_to_oa: archived list cursor %r is not a number; the pass starts over", after)
        return 0
    return int(after)


def _tombstone_page(run: C2O, entity: str, page: ArchivedPage) -> None:
    """One page: new tombstones, their audit, the linked deals queued and the cursor, in ONE transaction."""
    ids = [r.id for r in page.records]
    when = {r.id: r.archived_at for r in page.records}
    with run.hub.begin() as conn:
        snaps = store.get_snapshots(conn, "crm", entity, ids)
        fresh = [sid for sid in ids if sid in snaps and not snaps[sid].deleted]
        events = []
        for sid in fresh:
            stone = {"by": "crm", "at": when[sid], "why": "archived in the CRM", "seen_by": run.ctx.run_id}
            store.tombstone(conn, ("crm", entity, sid), stone, now=run.now)
            events.append(
                run.audit(
                    "archive", ("crm", entity), {f"{entity}_id": sid}, [], "ok", detail=_detail(when[sid])
                )
            )
        if entity == "deal":
            _queue_linked(conn, run, fresh, when)
        elif entity == "company":
            _live_projects_of(conn, run, fresh)
        write_audit(conn, run.ctx, events)
        store.set_watermark(
            conn, cursor_stream(entity), _cursor_ms(page.next_after), run.ctx.run_id, force=True, now=run.now
        )
    run.tally.add(_counter("archived_tombstoned", entity), len(fresh))


def _queue_linked(conn: Connection, run: C2O, deals: Sequence[str], when: Mapping[str, str | None]) -> None:
    """Archived deals with a 立项申请: marked and queued at once, so ``load`` settles them (caller's transaction)."""
    links = store.links_for_crm_ids(conn, rules.PROJECT_LINK, list(deals))
    queue: list[tuple[str, str, str]] = []
    for sid in deals:
        link = next((lk for lk in links.get(sid, []) if lk.oa_id), None)
        if link is not None:
            update_state(
                conn, run, link, {"archived": True, rules.ARCHIVE_KEY: {"phase": "found", "at": when[sid]}}
            )
            queue.append(("deal", sid, rules.ARCHIVED_HASH + str(when[sid])))
    run.enqueue(conn, queue, 0, 0)


def _live_projects_of(conn: Connection, run: C2O, companies: Sequence[str]) -> None:
    """Live deals with a live 立项申请 whose customer company was archived: the deal is alive, so nothing is
    withdrawn; counted (``archived_company_live_projects``) and logged for a person (data health's
    ``company_live`` checks show them too)."""
    if not companies:
        return
    deals = [
        s
        for group in store.snapshots_by_field(conn, "crm", "deal", "company_id", companies).values()
        for s in group
    ]
    live = rules.live_projects(
        store.links_for_crm_ids(conn, rules.PROJECT_LINK, [s.source_id for s in deals])
    )
    if live:
        run.tally.add("archived_company_live_projects", len(live))
        log.warning(
            "crm_to_oa: %d live 立项申请 belong to deals whose customer company was archived in the CRM "
            "(deals %s); not withdrawn: the deals are alive",
            len(live),
            ", ".join(live[:20]),
        )


def _detail(archived_at: str | None) -> str:
    return f"archived in the CRM at {archived_at or 'an unknown time'}; found by the archived-records sweep"


def _revive_restored(run: C2O, entity: str) -> None:
    """Tombstoned records the CRM has again (restored from its recycle bin): revived; a deal's mark cleared.
    Records tombstoned as merged away are not candidates (their id answers with the survivor)."""
    with run.hub.connect() as conn:
        candidates = store.deleted_ids(conn, "crm", entity, limit=RESTORE_READS * run.cfg.archive_sweep_pages)
    if not candidates:
        return
    live = run.hooks.crm.existing_ids(run.d.entity(entity).crm_object or entity, candidates)
    restored = [sid for sid in candidates if sid in live]
    if not restored:
        return
    with run.hub.begin() as conn:
        snaps = store.get_snapshots(conn, "crm", entity, restored)
        restored = [sid for sid in restored if not _merged(snaps.get(sid))]
        links = store.links_for_crm_ids(conn, rules.PROJECT_LINK, restored) if entity == "deal" else {}
        for sid in restored:
            store.revive(conn, ("crm", entity, sid), now=run.now)
            link = next((lk for lk in links.get(sid, []) if lk.oa_id), None)
            clear_archive_mark(conn, run, (entity, sid), link)
    run.tally.add(_counter("archived_restored", entity), len(restored))


def _merged(snap: store.Snapshot | None) -> bool:
    stone = (snap.payload or {}).get(store.TOMBSTONE_KEY) if snap is not None else None
    return isinstance(stone, Mapping) and bool(stone.get(rules.MERGED_INTO))


def clear_archive_mark(
    conn: Connection, run: C2O, record: tuple[str, str] | str, link: store.Link | None
) -> None:
    """A restored record (``(entity, id)``, or a deal id), audited; a deal's 立项申请 link loses the archived
    mark (what was done stays in its state). The link keeps its instance: no second 立项申请."""
    entity, source_id = record if isinstance(record, tuple) else ("deal", record)
    if link is not None and (link.state or {}).get("archived"):
        previous = (link.state or {}).get(rules.ARCHIVE_KEY) or {}
        update_state(
            conn,
            run,
            link,
            {"archived": False, rules.ARCHIVE_KEY: {**previous, "restored_at": run.now.isoformat()}},
        )
    write_audit(
        conn,
        run.ctx,
        [
            run.audit(
                "restore",
                ("crm", entity),
                {f"{entity}_id": source_id},
                [],
                "ok",
                detail="found live again in the CRM",
            )
        ],
    )


# ---------------------------------------------------------------- load: settle the linked ones


def needs_settling(link: store.Link | None) -> bool:
    """Whether a deleted deal's 立项申请 link still waits for the archive to be settled."""
    state = (link.state or {}) if link is not None and link.oa_id else {}
    return (
        bool(state.get("archived")) and (state.get(rules.ARCHIVE_KEY) or {}).get("phase") not in rules.HANDLED
    )


def settle_archived(run: C2O, dues: Sequence[Due], people: People) -> None:
    """Withdraw, notify finance or mark, per deal (:func:`.decide.decide_archived`); an outage stops here."""
    for n, due in enumerate(dues):
        link = due.project_link
        assert link is not None
        assert link.oa_id
        archive = dict((link.state or {}).get(rules.ARCHIVE_KEY) or {})
        try:
            instance = _instance(run, link.oa_id)
        except VendorError as exc:
            raise VendorUnavailable(exc, dues[n:]) from exc
        decision = rules.decide_archived(
            due.deal_id,
            rules.ProjectLink.of(link),
            archive,
            instance.get("approval_status") if instance else None,
            dictionary_version=run.d.version,
            archived_on=_day(archive.get("at"), run),
            survivor=_survivor(run, archive.get(rules.MERGED_INTO)),
        )
        run.tally.add(f"decision_{decision.reason}")
        try:
            if decision.action == "nothing":
                with run.hub.begin() as conn:
                    store.complete_changes(conn, CRM_TO_OA, [due.key])
            elif decision.action == "withdraw":
                _withdraw(run, due, decision, (instance or {}, people))
            elif decision.action == "void_notice":
                _void_notice(run, due, decision, people)
            else:
                _mark(run, due, decision)
        except VendorError as exc:
            raise VendorUnavailable(exc, dues[n:]) from exc


def _survivor(run: C2O, merged_into: Any) -> rules.Survivor | None:
    """The deal a merged deal went into, named from its staged snapshot (None: the deal was deleted)."""
    if not merged_into:
        return None
    with run.hub.connect() as conn:
        snap = store.get_snapshots(conn, "crm", "deal", [str(merged_into)]).get(str(merged_into))
    name = (snap.payload or {}).get("deal_name") if snap is not None else None
    return rules.Survivor(str(merged_into), str(name) if name else None)


def _instance(run: C2O, code: str) -> dict[str, Any] | None:
    """The 立项申请 as a canonical record (None: the OA no longer has it)."""
    try:
        detail = run.hooks.oa.get_instance(code)
    except NotFoundError:
        return None
    return run.d.from_oa(rules.PROJECT_FORM, detail).record


def _day(iso: Any, run: C2O) -> str:
    """The Beijing date of the archiving (the run's date when the CRM did not say)."""
    try:
        at = datetime.fromisoformat(str(iso).replace("Z", "+00:00")) if iso else run.now
    except ValueError:
        at = run.now
    return at.astimezone(ZoneInfo(run.cfg.timezone)).date().isoformat()


def _finish(run: C2O, due: Due, archive: Mapping[str, Any], event: Any) -> None:
    """One transaction: the link's archive state, the audit entry, the pending change completed."""
    assert due.project_link is not None
    previous = (due.project_link.state or {}).get(rules.ARCHIVE_KEY) or {}
    with run.hub.begin() as conn:
        update_state(
            conn, run, due.project_link, {"archived": True, rules.ARCHIVE_KEY: {**previous, **archive}}
        )
        write_audit(conn, run.ctx, [event])
        store.complete_changes(conn, CRM_TO_OA, [due.key])


def _withdraw(
    run: C2O, due: Due, decision: rules.ArchiveDecision, facts: tuple[Mapping[str, Any], People]
) -> None:
    """Withdraw the pending 立项申请, then say why in a comment on the instance. The bridge's app withdraws for
    the applicant (Feishu lets only the applicant withdraw, and the bridge filed it in the owner's name); the
    comment is the bridge's bot's (the notices' applicant), else the applicant's. A comment the OA refuses
    leaves the withdrawal done: counted (``archive_comments_failed``), logged and kept in the link's state."""
    instance, people = facts
    link = due.project_link
    assert link is not None
    code = str(link.oa_id)
    applicant = str(instance.get("applicant_id") or "")
    if (
        decision.reason != "resume_withdraw"
    ):  # not already withdrawn by a run that stopped before recording it
        previous = (link.state or {}).get(rules.ARCHIVE_KEY) or {}
        with run.hub.begin() as conn:
            due.project_link = update_state(
                conn, run, link, {rules.ARCHIVE_KEY: {**previous, "phase": "withdrawing"}}
            )
        run.hooks.oa.cancel_instance(run.cfg.code(rules.PROJECT_FORM), code, applicant)
    posted = _post_comment(run, code, (people, applicant), decision.comment or "")
    ids = {"deal_id": due.deal_id, "instance_code": code}
    event = run.audit("withdraw_instance", ("oa", rules.PROJECT_FORM), ids, [], "ok", detail=decision.comment)
    _finish(run, due, {"phase": "withdrawn", "comment": decision.comment, "comment_id": posted}, event)
    run.tally.add("archived_withdrawn")
    run.tally.add("written")


def _post_comment(run: C2O, instance_code: str, authors: tuple[People, str], text: str) -> str | None:
    """The withdrawal's reason as a comment on the instance, by the bridge's bot (else the applicant); None when
    the OA refused or failed it (the bot's look-up included): the withdrawal stands either way."""
    people, applicant = authors
    try:
        comment_id = run.hooks.oa.add_comment(instance_code, notice_applicant(run, people) or applicant, text)
    except (VendorError, ValueError) as exc:
        log.warning(
            "crm_to_oa: instance %s withdrawn, its reason not posted as a comment (%s: %s); kept in the hub",
            instance_code,
            type(exc).__name__,
            exc,
        )
        run.tally.add("archive_comments_failed")
        return None
    run.tally.add("archive_comments_posted")
    return comment_id


def _void_notice(run: C2O, due: Due, decision: rules.ArchiveDecision, people: People) -> None:
    """Tell finance once that an approved project's deal is gone: a 商机作废通知, its uuid saved first."""
    link = due.project_link
    assert link is not None
    assert decision.uuid
    applicant = notice_applicant(run, people)
    if applicant is None:
        quarantine_notice_applicant(run, [due], {due.deal_id: _snapshot(run, due.deal_id)})
        return
    previous = (link.state or {}).get(rules.ARCHIVE_KEY) or {}
    with run.hub.begin() as conn:
        due.project_link = update_state(
            conn,
            run,
            link,
            {rules.ARCHIVE_KEY: {**previous, "phase": "notifying", "void_uuid": decision.uuid}},
        )
    form, title = _void_form(run, due, decision)
    code = run.hooks.oa.create_instance(
        run.cfg.code(rules.VOID_FORM), applicant, form, decision.uuid, title=title
    )
    ids = {"deal_id": due.deal_id, "instance_code": code, "project_instance": str(link.oa_id)}
    fields = [w["id"] for w in form]
    event = run.audit(
        "create_instance",
        ("oa", rules.VOID_FORM),
        ids,
        fields,
        "ok",
        detail=f"deal archived: uuid {decision.uuid}",
    )
    _finish(run, due, {"phase": "notified", "notice_instance": code, "comment": decision.comment}, event)
    run.tally.add("archived_notices_sent")
    run.tally.add("notices_sent")
    run.tally.add("written")


def _void_form(run: C2O, due: Due, decision: rules.ArchiveDecision) -> tuple[list[dict[str, Any]], str]:
    """The 商机作废通知's widgets and title: the deal, its customer, the 立项申请 it voids, why and when, the
    contract amount last sent to the OA."""
    assert due.project_link is not None
    state = due.project_link.state or {}
    notice = {
        "deal_id": due.deal_id,
        "project_instance": str(due.project_link.oa_id),
        "project_no": state.get("project_no") or (due.payload or {}).get("project_no"),
        "void_reason": decision.void_reason or rules.void_reason(None),
        "voided_at": _day((state.get(rules.ARCHIVE_KEY) or {}).get("at"), run),
        "contract_amount": state.get("amount_sent"),
    }
    sources = {
        "deal": canonical(dict(due.payload or {})),
        "company": canonical(dict(due.company or {})),
        "notice": notice,
    }
    return run.d.fill_form(rules.VOID_FORM, sources, run.policy), run.d.form_title(
        rules.VOID_FORM, sources, run.policy
    )


def _snapshot(run: C2O, deal_id: str) -> store.Snapshot:
    with run.hub.connect() as conn:
        return store.get_snapshots(conn, "crm", "deal", [deal_id])[deal_id]


def _mark(run: C2O, due: Due, decision: rules.ArchiveDecision) -> None:
    """The 立项申请 already ended (or is gone): only the mark, audited."""
    assert due.project_link is not None
    ids = {"deal_id": due.deal_id, "instance_code": str(due.project_link.oa_id)}
    event = run.audit("mark_archived", ("hub", rules.PROJECT_LINK), ids, [], "ok", detail=decision.reason)
    _finish(run, due, {"phase": "marked", "comment": decision.comment}, event)
    run.tally.add("archived_marked")

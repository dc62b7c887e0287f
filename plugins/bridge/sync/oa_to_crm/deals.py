"""OA → CRM load: the approval status, project number and project stage of 立项申请 on their deals.

Exactly once by comparison: the deal's current CRM values are read (batch of
100), compared with what the OA says (:func:`bridge.sync.oa_to_crm.decide.plan_deal`),
and only differing fields are written (``batch_update``, idempotent). What
was written is kept in the ``deal_writeback`` link with the changes'
completion in ONE transaction, so a rerun after a crash compares again and
writes nothing twice. A field someone changed in the CRM is a conflict the
OA wins (its system of record), audited as ``conflict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bridge.clock import to_ms
from bridge.dictionary import Dictionary, formats
from bridge.hub import audit, store
from bridge.hub.store import PendingChange, PendingKey
from bridge.sync.common import OA_TO_CRM
from bridge.sync.frame import QuarantinedRecord, key_of
from bridge.sync.oa_to_crm import decide as rules
from bridge.sync.oa_to_crm.discovery import O2C
from bridge.sync.oa_to_crm.outage import chunks, vendor_call
from bridge.sync.oa_to_crm.scan import deal_projects, first, primary

if TYPE_CHECKING:
    from bridge.hooks.crm import RecordOutcome


@dataclass
class DealWork:
    deal_id: str
    keys: list[PendingKey] = field(default_factory=list)
    project: dict[str, Any] | None = None
    link: store.Link | None = None
    state: store.Link | None = None  # our deal_writeback link
    current: dict[str, Any] | None = None
    modified_ms: int | None = None
    plan: rules.DealPlan | None = None


def _last_written(work: DealWork) -> dict[str, Any] | None:
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


def load_deals(run: O2C, dues: Sequence[PendingChange]) -> None:
    """The deals of the due 立项申请 (and deals queued by the scan), batch by batch."""
    works, done = _works(run, dues)
    active = _with_projects(run, works, done)
    if done:
        with run.hub.begin() as conn:
            store.complete_changes(conn, OA_TO_CRM, done)
    props = _deal_properties(run.d)
    for batch in chunks(active, run.cfg.write_batch):
        _deal_batch(run, props, list(batch))


def _works(run: O2C, dues: Sequence[PendingChange]) -> tuple[dict[str, DealWork], list[PendingKey]]:
    """One work item per deal (a 立项申请's change goes to its linked deals); unlinked or held ones done."""
    codes = [c.source_id for c in dues if c.entity == rules.PROJECT_FORM]
    with run.hub.connect() as conn:
        proj_links = store.links_for_oa_ids(conn, rules.PROJECT_LINK, codes)
        held_projects = store.open_quarantine_for(conn, OA_TO_CRM, rules.PROJECT_FORM, codes)
    works: dict[str, DealWork] = {}
    done: list[PendingKey] = []
    for change in dues:
        if change.entity == "deal":
            works.setdefault(change.source_id, DealWork(change.source_id)).keys.append(key_of(change))
            continue
        if change.source_id in held_projects:
            done.append(key_of(change))
            run.tally.add("held_in_quarantine")
            continue
        deals = sorted({str(lk.crm_id) for lk in proj_links.get(change.source_id, []) if lk.crm_id})
        if not deals:
            done.append(key_of(change))
            run.tally.add("project_unlinked")
            continue
        for n, deal_id in enumerate(deals):
            work = works.setdefault(deal_id, DealWork(deal_id))
            if n == 0:
                work.keys.append(key_of(change))
    return works, done


def _with_projects(run: O2C, works: Mapping[str, DealWork], done: list[PendingKey]) -> list[DealWork]:
    """The deals with a primary 立项申请, not held in quarantine and not deleted (archived) in the CRM; the others'
    keys go to ``done`` (an archived deal cannot be written: its 立项申请 is the CRM → OA sweep's business)."""
    ids = list(works)
    with run.hub.connect() as conn:
        links, projects = deal_projects(conn, ids)
        all_codes = [str(lk.oa_id) for lks in links.values() for lk in lks]
        held = store.open_quarantine_for(conn, OA_TO_CRM, rules.PROJECT_FORM, all_codes)
        held_deals = store.open_quarantine_for(conn, OA_TO_CRM, "deal", ids)
        states = store.links_for_crm_ids(conn, rules.WRITEBACK_LINK, ids)
        archived = {i for i, snap in store.get_snapshots(conn, "crm", "deal", ids).items() if snap.deleted}
    active: list[DealWork] = []
    for work in works.values():
        if work.deal_id in archived:
            done.extend(work.keys)
            run.tally.add("deal_archived_in_crm")
            continue
        chosen = primary(links.get(work.deal_id, []), projects, held)
        if work.deal_id in held_deals or chosen is None:
            done.extend(work.keys)
            run.tally.add("held_in_quarantine" if work.deal_id in held_deals else "deal_without_project")
            continue
        work.project, work.link = chosen
        work.state = first(states.get(work.deal_id))
        active.append(work)
    return active


def _deal_properties(d: Dictionary) -> list[str]:
    fields = d.entity("deal").fields
    names = [*rules.oa_owned_deal_fields(d), "stage", "modified_at"]
    return [str(fields[n].crm) for n in names if fields[n].crm]


@dataclass
class _BatchResult:
    """One batch's CRM answers: deals the read did not return, and the outcomes of the writes."""

    missing: list[tuple[DealWork, RecordOutcome | None]] = field(default_factory=list)
    written: dict[str, RecordOutcome] = field(default_factory=dict)
    events: list[audit.AuditEvent] = field(default_factory=list)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    new_states: list[store.NewLink] = field(default_factory=list)
    keys: list[PendingKey] = field(default_factory=list)


def _deal_batch(run: O2C, props: list[str], batch: list[DealWork]) -> None:
    """Read the deals' current values, write what differs, record links, audit and completions in one go."""
    result = _read_and_plan(run, props, batch)
    run.step("deals_read")
    writes = [w for w in batch if w.plan is not None and w.plan.needed]
    if writes:
        inputs = [
            {"id": w.deal_id, "properties": run.d.to_crm_properties("deal", w.plan.write)}
            for w in writes
            if w.plan is not None
        ]
        result.written = {o.key: o for o in vendor_call(lambda: run.hooks.crm.batch_update("deals", inputs))}
    run.step("deals_written")
    with run.hub.begin() as conn:
        for work, outcome in result.missing:
            _refused(conn, run, work, outcome, result)
        for work in batch:
            if work.plan is not None:
                _settle(conn, run, work, result)
        store.set_link_states(conn, result.states, run_id=run.ctx.run_id, now=run.now)
        run.add_links(conn, rules.WRITEBACK_LINK, result.new_states)
        run.close_batch(conn, result.events, result.keys)
    run.step("deals_committed")


def _read_and_plan(run: O2C, props: list[str], batch: list[DealWork]) -> _BatchResult:
    """The deals' current CRM values (one batch read) and each one's plan."""
    crm, d = run.hooks.crm, run.d
    outcomes = {
        o.key: o
        for o in vendor_call(lambda: crm.batch_read("deals", [w.deal_id for w in batch], properties=props))
    }
    run.tally.add("deals_read", len(batch))
    role = run.policy.audience("crm_write", "deal")
    result = _BatchResult()
    for work in batch:
        outcome = outcomes.get(work.deal_id)
        if outcome is None or not outcome.ok or outcome.object is None:
            result.missing.append((work, outcome))
            continue
        current = d.from_crm("deal", outcome.object).record
        work.current = current
        work.modified_ms = d.modified_ms("deal", current)
        assert work.project is not None
        desired = run.policy.project("deal", rules.desired_deal(d, work.project, current.get("stage")), role)
        work.plan = rules.plan_deal(d, work.deal_id, desired, current, _last_written(work))
    return result


def _refused(
    conn: Connection,
    run: O2C,
    work: DealWork,
    outcome: RecordOutcome | None,
    result: _BatchResult,
) -> None:
    """The CRM did not return or refused the deal: quarantine, audit ``rejected``, changes completed."""
    plan = work.plan
    code = plan.instance_code if plan is not None else str((work.project or {}).get("instance_code"))
    category = outcome.category if outcome else "MISSING_RESULT"
    problem = rules.deal_rejected(work.deal_id, code, outcome.message if outcome else None, category)
    run.quarantine(conn, ("crm", "deal", work.deal_id), problem, QuarantinedRecord(), count=True)
    ids = {"deal_id": work.deal_id} if plan is None else {"deal_id": work.deal_id, "instance_code": code}
    result.events.append(
        run.audit(
            "update",
            ("crm", "deal"),
            ids,
            sorted(plan.write) if plan is not None else [],
            "rejected",
            detail=str(category),
        )
    )
    result.keys.extend(work.keys)


def _settle(conn: Connection, run: O2C, work: DealWork, result: _BatchResult) -> None:
    """A planned deal: refused, written (conflicts audited) or unchanged; its writeback state kept."""
    plan = work.plan
    assert plan is not None
    ids = {"deal_id": work.deal_id, "instance_code": plan.instance_code}
    written_ms = work.modified_ms
    if plan.needed:
        outcome = result.written.get(work.deal_id)
        if outcome is None or not outcome.ok:
            _refused(conn, run, work, outcome, result)
            return
        if plan.conflicts:
            result.events.append(
                run.audit(
                    "conflict",
                    ("crm", "deal"),
                    ids,
                    list(plan.conflicts),
                    "oa_wins",
                    detail="system_of_record=oa: the CRM value was overwritten",
                )
            )
            run.tally.add("conflicts")
            run.tally.add("conflict_fields", len(plan.conflicts))
        result.events.append(
            run.audit(
                "update",
                ("crm", "deal"),
                ids,
                sorted(plan.write),
                "ok",
                detail=f"approval status {plan.desired.get('approval_status')}",
            )
        )
        written_ms = _modified_ms(outcome) or to_ms(run.now)
        run.tally.add("written_deal")
        run.tally.add("written")
    else:
        run.tally.add("deals_unchanged")
    state = {"instance_code": plan.instance_code, "written": plan.desired, "written_ms": written_ms or 0}
    if work.state is not None:
        if (work.state.state or {}) != state:
            result.states[work.state.id] = state
    else:
        result.new_states.append(
            store.NewLink(crm_type="deal", crm_id=work.deal_id, oa_type=rules.PROJECT_FORM, state=state)
        )
    result.keys.extend(work.keys)


def _modified_ms(outcome: RecordOutcome | None) -> int | None:
    """When the CRM says it modified the deal (ms), from the update's answer."""
    value = outcome.modified("deals") if outcome is not None else None
    cleaned, issue = formats.clean_datetime(value)
    return formats.datetime_to_ms(str(cleaned)) if cleaned and not issue else None

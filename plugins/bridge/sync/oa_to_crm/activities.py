"""OA → CRM load: expenses, trips and visit plans as notes / meetings on the customer.

Exactly once by key: activities are upserted keyed by ``oa_instance_code``
(a rerun after a crash cannot duplicate), associated with the company and the
deal (only associations not made before), voided when the instance is
rejected, withdrawn, deleted or revoked afterwards — or archived, when
``oa_to_crm.revoked_activities`` is ``remove`` and the instance is deleted or
revoked (the link stays as the tombstone); links, audit, quarantine and the
changes' completion are committed in ONE transaction per batch. No or an
unknown customer → quarantine ``missing_customer_link``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from bridge.dictionary import Problem
from bridge.hooks.errors import VendorError
from bridge.hub import audit, store
from bridge.hub.store import PendingChange, PendingKey
from bridge.staging import canonical
from bridge.sync.common import OA_TO_CRM
from bridge.sync.frame import QuarantinedRecord, key_of
from bridge.sync.oa_to_crm import attachments
from bridge.sync.oa_to_crm import decide as rules
from bridge.sync.oa_to_crm.discovery import O2C
from bridge.sync.oa_to_crm.outage import chunks, vendor_call
from bridge.sync.oa_to_crm.scan import first

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook, RecordOutcome


@dataclass
class ActivityWork:
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

    def done_before(self) -> set[tuple[str, str]]:
        """The associations made by earlier writes of the same CRM object."""
        if self.link is None or str(self.link.crm_id) != self.object_id:
            return set()
        return set(_pairs((self.link.state or {}).get("associated")))


def _pairs(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        return []
    return [(str(p[0]), str(p[1])) for p in raw if isinstance(p, list | tuple) and len(p) == 2]


def _companies_known(run: O2C, ids: Iterable[str]) -> set[str]:
    """Which company ids the CRM has: live hub snapshots first, a batch read for the rest (numeric ids only)."""
    wanted = sorted({i for i in ids if i})
    with run.hub.connect() as conn:
        snaps = store.get_snapshots(conn, "crm", "company", wanted)
    known = {i for i, s in snaps.items() if not s.deleted}
    missing = [i for i in wanted if i not in known and i.isdigit()]
    if missing:
        crm = run.hooks.crm
        known.update(vendor_call(lambda: crm.existing_ids("companies", missing)))
        run.tally.add("companies_read_on_demand", len(missing))
    return known


def _deals_for_projects(conn: Connection, project_nos: Iterable[str]) -> dict[str, str]:
    """项目编号 → CRM deal id through the 立项申请 staged with that number and its ``deal_project`` link."""
    nos = sorted({n for n in project_nos if n})
    if not nos:
        return {}
    found = store.snapshots_by_field(conn, "oa", rules.PROJECT_FORM, "project_no", nos)
    codes = [s.source_id for snaps in found.values() for s in snaps]
    links = store.links_for_oa_ids(conn, rules.PROJECT_LINK, codes)
    out: dict[str, str] = {}
    for no, snaps in found.items():
        records = [
            canonical(dict(s.payload)) for s in snaps if any(lk.crm_id for lk in links.get(s.source_id, []))
        ]
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
        links = store.links_for_oa_ids(conn, "owner_user", wanted)
    owners = {u: str(lks[0].crm_id) for u, lks in links.items() if lks and lks[0].crm_id}
    if not owners:
        return {}
    try:
        people = {o.id: o for o in crm.owner_records()}
    except VendorError:
        return {}
    names: dict[str, str] = {}
    for user, owner in owners.items():
        o = people.get(owner)
        name = f"{o.family_name}{o.given_name}".strip() if o is not None else ""
        if name:
            names[user] = name
    return names


def load_activities(run: O2C, dues: Sequence[PendingChange]) -> None:
    """Plan each due activity (pure :func:`~bridge.sync.oa_to_crm.decide.plan_activity`), then write in batches."""
    works = _works(run, dues)
    # Customers that can matter: those of instances that reach the CRM or are still pending.
    relevant = [w for w in works if run.d.activity_due(w.entity, w.record)]
    known = _companies_known(run, [str(w.company_id) for w in relevant if w.company_id])
    unlinked = [w for w in relevant if not w.company_id or w.company_id not in known]
    names = (
        _applicant_names(run.hooks.crm, run.hub, [str(w.record.get("applicant_id") or "") for w in unlinked])
        if unlinked
        else {}
    )
    for work in works:
        state = dict(work.link.state or {}, crm_id=work.link.crm_id) if work.link is not None else None
        applicant = str(work.record.get("applicant_id") or "")
        facts = rules.ActivityFacts(
            problems=[],
            company_id=work.company_id,
            company_known=bool(work.company_id and work.company_id in known),
            deal_id=work.deal_id,
            link_state=state,
            applicant=rules.applicant_label(applicant or None, names.get(applicant)),
        )
        work.plan = rules.plan_activity(
            run.d, run.policy, work.entity, work.record, facts, run.cfg.revoked_activities
        )
        run.tally.add(f"activity_{work.plan.reason}")
    for batch in chunks(works, run.cfg.write_batch):
        _activity_batch(run, list(batch))


def _works(run: O2C, dues: Sequence[PendingChange]) -> list[ActivityWork]:
    """The due activities staged and not held in quarantine, with their links, customer and deal."""
    by_entity: dict[str, list[PendingChange]] = {}
    for change in dues:
        by_entity.setdefault(change.entity, []).append(change)
    works: list[ActivityWork] = []
    done: list[PendingKey] = []
    with run.hub.connect() as conn:
        for entity, changes in by_entity.items():
            ids = [c.source_id for c in changes]
            snaps = store.get_snapshots(conn, "oa", entity, ids)
            held = store.open_quarantine_for(conn, OA_TO_CRM, entity, ids)
            for change in changes:
                snap = snaps.get(change.source_id)
                if snap is None or snap.deleted or change.source_id in held:
                    done.append(key_of(change))
                    run.tally.add("held_in_quarantine" if change.source_id in held else "nothing_staged")
                    continue
                works.append(ActivityWork(change, entity, canonical(dict(snap.payload)), snap))
        codes = [w.code for w in works]
        act_links = store.links_for_oa_ids(conn, rules.ACTIVITY_LINK, codes)
        cust_links = store.links_for_oa_ids(conn, rules.CUSTOMER_LINK, codes)
        deals = _deals_for_projects(conn, [str(w.record.get("project_no") or "") for w in works])
    if done:
        with run.hub.begin() as conn:
            store.complete_changes(conn, OA_TO_CRM, done)
    for work in works:
        work.link = first(act_links.get(work.code))
        kept = next((lk.crm_id for lk in cust_links.get(work.code, []) if lk.crm_id), None)
        raw = work.record.get("customer_id")
        work.company_id = str(kept or raw) if (kept or raw) else None
        work.deal_id = deals.get(str(work.record.get("project_no") or ""))
    return works


def _rejected(run: O2C, work: ActivityWork, outcome: RecordOutcome | None) -> Problem:
    return rules.activity_rejected(
        run.d,
        work.entity,
        work.code,
        outcome.message if outcome else None,
        outcome.category if outcome else "MISSING_RESULT",
    )


def _activity_batch(run: O2C, batch: list[ActivityWork]) -> None:
    """Upsert (or void, or archive) a batch of activities, associate them, then links, audit, quarantine,
    completion."""
    by_object: dict[str, list[ActivityWork]] = {}
    for work in batch:
        if work.plan is not None and work.plan.action in ("upsert", "void"):
            assert work.plan.crm_object is not None
            by_object.setdefault(work.plan.crm_object, []).append(work)
    _archive(run, [w for w in batch if w.plan is not None and w.plan.action == "archive"])
    for crm_object, items in by_object.items():
        records = [w.plan.properties for w in items if w.plan is not None]
        upserted: list[RecordOutcome] = vendor_call(
            partial(run.hooks.crm.batch_upsert, crm_object, records, id_property="oa_instance_code")
        )
        outcomes = {o.key: o for o in upserted}
        for work in items:
            outcome = outcomes.get(work.code)
            if outcome is not None and outcome.ok and outcome.id:
                work.object_id = str(outcome.id)
            else:
                work.failure = _rejected(run, work, outcome)
    run.step("activities_upserted")
    _associate(run, by_object)
    run.step("associations_sent")
    # The changes of instances whose files follow complete with their files (a crash in between
    # leaves them pending, and the rerun finds the activity unchanged and takes the files again).
    holders = attachments.wanted(run, _holders(batch))
    _commit(run, batch, held={(h.entity, h.code) for h in holders})
    run.step("activities_committed")
    attachments.attach_approved(run, holders)


def _holders(batch: Sequence[ActivityWork]) -> list[attachments.Holder]:
    """The activities the CRM holds for approved instances (written now, or unchanged): their files follow."""
    holders = []
    for work in batch:
        plan, link = work.plan, work.link
        if plan is None or work.failure is not None or work.record.get("approval_status") != "APPROVED":
            continue
        if plan.action == "upsert" and work.object_id:
            place = (plan.crm_object, work.object_id, plan.company_id, plan.deal_id)
        elif plan.reason == "unchanged" and link is not None and link.crm_id:
            state = link.state or {}
            place = (state.get("crm_object"), str(link.crm_id), state.get("company_id"), state.get("deal_id"))
        else:
            continue
        crm_object, object_id, company, deal = place
        if crm_object and company:
            applicant = work.record.get("applicant_id")
            holders.append(
                attachments.Holder(
                    work.entity,
                    work.code,
                    str(crm_object),
                    str(object_id),
                    str(company),
                    str(deal) if deal else None,
                    str(applicant) if applicant else None,
                    work.change.content_hash,
                )
            )
    return holders


@dataclass
class _Writes:
    """What one batch's transaction writes."""

    events: list[audit.AuditEvent] = field(default_factory=list)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    new_links: list[store.NewLink] = field(default_factory=list)
    keys: list[PendingKey] = field(default_factory=list)


def _commit(run: O2C, batch: Sequence[ActivityWork], held: Set[tuple[str, str]] = frozenset()) -> None:
    """Links, audit, quarantine and completion of a batch: one transaction. The changes of ``held``
    instances (entity, code) stay pending: their attachments step completes them."""
    writes = _Writes()
    with run.hub.begin() as conn:
        for work in batch:
            assert work.plan is not None
            if (work.entity, work.code) not in held:
                writes.keys.append(key_of(work.change))
            if work.plan.action == "quarantine" or work.failure is not None:
                _quarantine(conn, run, work, writes)
                if work.object_id is None:
                    continue
            if work.plan.action not in ("upsert", "void", "archive") or work.object_id is None:
                if work.plan.action == "nothing":
                    run.tally.add(
                        "activities_unchanged"
                        if work.plan.reason in ("unchanged", "already_voided", "already_archived")
                        else "nothing"
                    )
                continue
            if work.plan.action == "archive":
                _archived(run, work, writes)
            else:
                _written(run, work, writes)
        store.set_link_states(
            conn, writes.states, dictionary_version=run.d.version, run_id=run.ctx.run_id, now=run.now
        )
        run.add_links(conn, rules.ACTIVITY_LINK, writes.new_links)
        run.close_batch(conn, writes.events, writes.keys)


def _quarantine(conn: Connection, run: O2C, work: ActivityWork, writes: _Writes) -> None:
    plan = work.plan
    assert plan is not None
    problem = work.failure or plan.problem
    assert problem is not None
    run.quarantine(
        conn,
        ("oa", work.entity, work.code),
        problem,
        QuarantinedRecord(work.record, work.snap.content_hash, work.snap.data_owner),
        count=True,
    )
    if work.failure is not None:
        writes.events.append(
            run.audit(
                "upsert",
                ("crm", plan.crm_object or work.entity),
                {"instance_code": work.code},
                sorted(plan.properties),
                "rejected",
                detail=problem.code,
            )
        )


def _written(run: O2C, work: ActivityWork, writes: _Writes) -> None:
    """An activity the CRM holds: audited, its link's state (hash, status, associations) kept."""
    plan = work.plan
    assert plan is not None
    assert plan.crm_object is not None
    assert work.object_id is not None
    ids = {"instance_code": work.code, "crm_id": work.object_id}
    writes.events.append(
        run.audit(
            "void" if plan.action == "void" else "upsert",
            ("crm", plan.crm_object),
            ids,
            sorted(plan.properties),
            "ok",
            detail=f"{work.entity} {work.record.get('approval_status')}",
        )
    )
    run.tally.add(f"written_{plan.crm_object}")
    run.tally.add("written")
    if plan.action == "void":
        run.tally.add(f"voided_{plan.crm_object}")
    state = {
        "phase": "voided" if plan.action == "void" else "written",
        "hash": plan.written_hash if work.failure is None else None,
        "status": work.record.get("approval_status"),
        "crm_object": plan.crm_object,
        "company_id": plan.company_id,
        "deal_id": plan.deal_id,
        "associated": sorted(work.done_before() | work.associated),
    }
    if work.link is not None and str(work.link.crm_id) == work.object_id:
        writes.states[work.link.id] = state
    else:
        writes.new_links.append(
            store.NewLink(
                crm_type=plan.crm_object,
                crm_id=work.object_id,
                oa_type=work.entity,
                oa_id=work.code,
                state=state,
            )
        )


def _archive(run: O2C, works: Sequence[ActivityWork]) -> None:
    """Archive the CRM activities of revoked or deleted instances (``revoked_activities: remove``)."""
    by_object: dict[str, list[ActivityWork]] = {}
    for work in works:
        assert work.plan is not None
        assert work.plan.crm_object is not None
        assert work.link is not None
        by_object.setdefault(work.plan.crm_object, []).append(work)
    for crm_object, items in by_object.items():
        ids = [str(w.link.crm_id) for w in items if w.link is not None]
        archived: list[RecordOutcome] = vendor_call(partial(run.hooks.crm.batch_archive, crm_object, ids))
        outcomes = {o.key: o for o in archived}
        for work in items:
            crm_id = str(work.link.crm_id) if work.link is not None else ""
            outcome = outcomes.get(crm_id)
            if outcome is not None and outcome.ok:
                work.object_id = crm_id
            else:
                work.failure = _rejected(run, work, outcome)


def _archived(run: O2C, work: ActivityWork, writes: _Writes) -> None:
    """An activity archived in the CRM: audited (``archive``), its link kept with a tombstone state."""
    plan, link = work.plan, work.link
    assert plan is not None
    assert plan.crm_object is not None
    assert link is not None
    status = work.record.get("approval_status")
    writes.events.append(
        run.audit(
            "archive",
            ("crm", plan.crm_object),
            {"instance_code": work.code, "crm_id": str(link.crm_id)},
            [],
            "ok",
            detail=f"{work.entity} {status}",
        )
    )
    run.tally.add(f"archived_{plan.crm_object}")
    writes.states[link.id] = {
        **(link.state or {}),
        "phase": "archived",
        "status": status,
        "crm_object": plan.crm_object,
        "archived_at": run.now.isoformat(),
        "archived_by": run.ctx.run_id,
    }


def _associate(run: O2C, by_object: Mapping[str, list[ActivityWork]]) -> None:
    """Default associations with the company and the deal, only those not made before (idempotent anyway)."""
    for crm_object, items in by_object.items():
        wanted: dict[str, list[tuple[ActivityWork, str]]] = {}
        for work in items:
            plan = work.plan
            if work.object_id is None or plan is None or plan.action != "upsert":
                continue
            done = work.done_before()
            for to_type, to_id in (("companies", plan.company_id), ("deals", plan.deal_id)):
                if to_id and (to_type, to_id) not in done:
                    wanted.setdefault(to_type, []).append((work, to_id))
                elif to_id:
                    work.associated.add((to_type, to_id))
        for to_type, pairs in wanted.items():
            made: list[RecordOutcome] = vendor_call(
                partial(
                    run.hooks.crm.associate_many,
                    crm_object,
                    to_type,
                    [(str(w.object_id), t) for w, t in pairs],
                )
            )
            outcomes = {o.key: o for o in made}
            for work, to_id in pairs:
                outcome = outcomes.get(f"{work.object_id}->{to_id}")
                if outcome is not None and outcome.ok:
                    work.associated.add((to_type, to_id))
                    run.tally.add(f"associated_{to_type}")
                elif work.failure is None:
                    work.failure = _rejected(run, work, outcome)

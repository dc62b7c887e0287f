"""CRM → OA, task ``load``, before any decision: each due deal with what its decision needs.

The staged deal (re-read from the CRM when a person released it from
quarantine), its 立项申请 and notice links, its company and primary contact,
and its owner's OA user (``owner_user`` links, else matched by e-mail or
mobile and remembered). Reads only, except snapshots and links that make the
next run cheaper; nothing here is sent to the OA.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from bridge.hub import store
from bridge.hub.store import Link, PendingChange, PendingKey
from bridge.staging import PROBLEMS_KEY
from bridge.sync.common import ALWAYS_BLOCKING
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.extract import map_page
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import QuarantinedRecord, Run, blocking_problems

log = logging.getLogger("bridge.sync.crm_to_oa")


@dataclass
class Due:
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
    return any(c in ALWAYS_BLOCKING for c in codes)


def refresh_released(run: Run[CrmToOaSettings], dues: Sequence[Due]) -> None:
    """Re-read from the CRM the due deals staged with problems and not in quarantine (a person released
    them, e.g. after adding a value to the dictionary): map them with today's dictionary."""
    stale = [due for due in dues if due.payload is not None and _has_blocking(due.payload)]
    if not stale:
        return
    crm, d = run.hooks.crm, run.d
    outcomes = crm.batch_read("deals", [due.deal_id for due in stale], properties=d.crm_properties("deal"))
    objects = [o.object for o in outcomes if o.ok and o.object is not None]
    if not objects:
        return
    mapped = map_page(crm, d, "deal", objects)
    with run.hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", [row for row, _ in mapped], now=run.now)
    fresh = {row.source_id: row.payload for row, _ in mapped}
    for due in stale:
        if due.deal_id in fresh:
            due.payload = fresh[due.deal_id]
            run.tally.add("refreshed")
    # Still broken and still meant for the OA: back to quarantine with the dictionary's message.
    needed = rules.needed_deal_fields(d)
    linked = {due.deal_id for due in stale if due.project_link is not None and due.project_link.oa_id}
    with run.hub.begin() as conn:
        for row, result in mapped:
            blocking = blocking_problems(result.problems, needed)
            stage = result.record.get("stage")
            if blocking and (stage is None or stage in run.cfg.initiation_stages or row.source_id in linked):
                run.quarantine(
                    conn,
                    ("crm", "deal", row.source_id),
                    blocking[0],
                    QuarantinedRecord(row.payload, row.content_hash, row.data_owner),
                )


def load_companies(run: Run[CrmToOaSettings], dues: Sequence[Due]) -> None:
    """Attach the current company and primary contact snapshots (companies missing in the hub are read)."""
    company_ids = sorted(
        {
            str(due.payload.get("company_id"))
            for due in dues
            if due.payload is not None and due.payload.get("company_id")
        }
    )
    if not company_ids:
        return
    with run.hub.connect() as conn:
        companies = {
            sid: snap.payload
            for sid, snap in store.get_snapshots(conn, "crm", "company", company_ids).items()
            if not snap.deleted
        }
    missing = [cid for cid in company_ids if cid not in companies]
    if missing:
        crm, d = run.hooks.crm, run.d
        outcomes = crm.batch_read("companies", missing, properties=d.crm_properties("company"))
        objects = [o.object for o in outcomes if o.ok and o.object is not None]
        if objects:
            rows = [r for r, _ in map_page(crm, d, "company", objects)]
            with run.hub.begin() as conn:
                store.upsert_snapshots(conn, "crm", "company", rows, now=run.now)
            companies.update({row.source_id: row.payload for row in rows})
            run.tally.add("companies_read_on_demand", len(rows))
    contacts = company_contacts(run, list(companies))
    for due in dues:
        cid = str((due.payload or {}).get("company_id") or "")
        due.company = companies.get(cid)
        due.contact = rules.primary_contact(contacts.get(cid, []))


def company_contacts(
    run: Run[CrmToOaSettings], company_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The staged live contacts of each company a deal's form may name, by ``crm_to_oa.contact_company``
    (:func:`.decide.contact_of_company`). ``primary`` needs no call (the contacts' staged primary company);
    the other rules read the companies' contacts through associations v4 (one call per 100 companies) and,
    for ``first``, those contacts' companies in HubSpot's order (one call per 100 contacts)."""
    rule = run.cfg.contact_company
    with run.hub.connect() as conn:
        by_primary = store.snapshots_by_field(conn, "crm", "contact", "company_id", company_ids)
    if rule == "primary" or not company_ids:
        return {cid: [s.payload for s in found] for cid, found in by_primary.items()}
    crm, d = run.hooks.crm, run.d
    contact_type, company_type = d.entity("contact").crm_object or "contacts", d.entity("company").crm_object
    linked = crm.read_associations(company_type or "companies", contact_type, company_ids)
    for cid, found in by_primary.items():
        linked[cid] = list(dict.fromkeys([*linked.get(cid, []), *(s.source_id for s in found)]))
    wanted = sorted({sid for found in linked.values() for sid in found})
    with run.hub.connect() as conn:
        snaps = {
            sid: s for sid, s in store.get_snapshots(conn, "crm", "contact", wanted).items() if not s.deleted
        }
    order = (
        crm.read_associations(contact_type, company_type or "companies", sorted(snaps), primary_first=False)
        if rule == "first" and snaps
        else {}
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for cid in company_ids:
        for sid in linked.get(cid, []):
            snap = snaps.get(sid)
            primary = str(snap.payload.get("company_id") or "") if snap is not None else None
            if snap is not None and rules.contact_of_company(rule, cid, primary, order.get(sid, [cid])):
                out.setdefault(cid, []).append(snap.payload)
    return out


@dataclass
class People:
    """Per-run cache of CRM owners → OA users (persisted as ``owner_user`` links)."""

    owners: dict[str, dict[str, Any]] | None = None
    users: dict[str, rules.Owner] = field(default_factory=dict)
    notice_applicant: str | None = None
    notice_applicant_known: bool = False


def resolve_owners(run: Run[CrmToOaSettings], owner_ids: Iterable[str], people: People) -> None:
    """The OA user of each owner: a confirmed ``owner_user`` link, else matched by e-mail, then mobile."""
    wanted = sorted({o for o in owner_ids if o and o not in people.users})
    if not wanted:
        return
    with run.hub.connect() as conn:
        links = store.links_for_crm_ids(conn, "owner_user", wanted)
    for oid in wanted:
        confirmed = [link for link in links.get(oid, []) if link.oa_id]
        if confirmed:
            people.users[oid] = rules.Owner(oid, None, confirmed[0].oa_id)
    unknown = [oid for oid in wanted if oid not in people.users]
    if not unknown:
        return
    if people.owners is None:
        people.owners = {str(o["id"]): o for o in run.hooks.crm.owners()}
        _remember_names(run.hub, people.owners.values(), run)
    matched = _match_users(run, unknown, people)
    if matched:
        with run.hub.begin() as conn:
            for oid, user, how in matched:
                store.save_link(
                    conn,
                    "owner_user",
                    store.NewLink(
                        crm_type="owner", crm_id=oid, oa_type="user", oa_id=user, state={"matched_by": how}
                    ),
                    dictionary_version=run.d.version,
                    run_id=run.ctx.run_id,
                    now=run.now,
                )


def _match_users(
    run: Run[CrmToOaSettings], unknown: Sequence[str], people: People
) -> list[tuple[str, str, str]]:
    """``(owner, user, how)`` of the owners the OA knows by e-mail or mobile (one lookup call)."""
    owners = people.owners or {}
    emails = {oid: str(owners[oid]["email"]) for oid in unknown if oid in owners and owners[oid].get("email")}
    mobiles = {
        oid: str(owners[oid].get("mobile") or owners[oid].get("phone"))
        for oid in unknown
        if oid in owners and (owners[oid].get("mobile") or owners[oid].get("phone"))
    }
    found = (
        run.hooks.oa.user_ids(emails=list(emails.values()), mobiles=list(mobiles.values()))
        if emails or mobiles
        else {}
    )
    matched: list[tuple[str, str, str]] = []
    for oid in unknown:
        user = found.get(emails.get(oid, "")) if oid in emails else None
        how = "email"
        if user is None and oid in mobiles:
            user, how = found.get(mobiles[oid]), "mobile"
        people.users[oid] = rules.Owner(oid, emails.get(oid), user)
        if user:
            matched.append((oid, user, how))
    return matched


def _remember_names(hub: Engine, owners: Iterable[Mapping[str, Any]], run: Run[CrmToOaSettings]) -> None:
    """Keep the owners' names for the pages (a nicety: a failure here never stops the sync)."""
    from bridge import people as bridge_people

    try:
        with hub.begin() as conn:
            bridge_people.remember_crm_owners(conn, owners, now=run.now)
    except Exception as exc:
        log.warning("crm_to_oa: owner names not stored (%s: %s)", type(exc).__name__, exc)


def notice_applicant(run: Run[CrmToOaSettings], people: People) -> str | None:
    """The OA user who applies for the 合同金额变更通知 (looked up once per run)."""
    if not people.notice_applicant_known:
        email = run.cfg.notice_applicant_email
        people.notice_applicant = run.hooks.oa.user_ids(emails=[email]).get(email) if email else None
        people.notice_applicant_known = True
    return people.notice_applicant

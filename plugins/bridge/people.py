"""Names of people as staff know them, kept in the hub: CRM owners, and OA users through their owner link.

Records carry people as ids: a CRM owner id (``70000004``) on companies,
contacts and deals, an OA user id (``u00140ef4``) as the applicant of an OA
approval. Pages and reports show names instead. The CRM owners list
(``CrmHook.owners()``) has the names; whoever reads it (the CRM → OA sync when
it matches owners to OA users, the daily report) hands it to
:func:`remember_crm_owners`, which keeps ``{name}`` per owner as a snapshot of
the pseudo-entity ``owner`` (system ``crm``) — no other reader looks at that
entity, and no schema change is needed. An OA user gets its own name from the
OA's contact directory (``OaHook.user_names``, kept as the pseudo-entity
``user`` of system ``oa`` by :func:`remember_oa_users` when the OA → CRM sync
meets an applicant it does not know), else the name of the CRM owner it is
linked to (``owner_user`` links, made by the sync).

No e-mail address or phone number is stored: only the display name.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from bridge.clock import to_ms
from bridge.hooks.hubspot_codec import owner_of
from bridge.hub import store

if TYPE_CHECKING:
    from bridge.hooks.oa import OaHook

log = logging.getLogger(__name__)

OWNER_SYSTEM = "crm"
OWNER_ENTITY = "owner"
OWNER_LINK = "owner_user"


def display_name(owner: Mapping[str, Any]) -> str | None:
    """A HubSpot owner's name in the order staff write it: 张三 (family name first), "Anna Li" for Latin names."""
    typed = owner_of(owner)
    family, given = typed.family_name, typed.given_name
    if not family and not given:
        return None
    if (family + given).isascii():
        return " ".join(part for part in (given, family) if part)
    return family + given


def remember_crm_owners(conn: Connection, owners: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
    """Keep the display name of every CRM owner that has one; returns how many were new or renamed."""
    at = now or datetime.now(UTC)
    stamp = to_ms(at)
    rows = []
    for owner in owners:
        oid, name = owner.get("id"), display_name(owner)
        if oid is None or not name:
            continue
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        rows.append(store.SnapshotRow(source_id=str(oid), content_hash=digest, payload={"name": name},
                                      source_modified_ms=stamp))
    if not rows:
        return 0
    changes = store.upsert_snapshots(conn, OWNER_SYSTEM, OWNER_ENTITY, rows, now=at)
    return sum(1 for c in changes if c.is_change)


OA_SYSTEM = "oa"
OA_USER_ENTITY = "user"


def remember_oa_users(conn: Connection, names_by_id: Mapping[str, str], *, now: datetime | None = None) -> int:
    """Keep the display name of OA users (``OaHook.user_names``); returns how many were new or renamed."""
    at = now or datetime.now(UTC)
    stamp = to_ms(at)
    rows = [store.SnapshotRow(source_id=str(uid), content_hash=hashlib.sha256(name.encode("utf-8")).hexdigest(),
                              payload={"name": name}, source_modified_ms=stamp)
            for uid, name in names_by_id.items() if uid and name]
    if not rows:
        return 0
    return sum(1 for c in store.upsert_snapshots(conn, OA_SYSTEM, OA_USER_ENTITY, rows, now=at) if c.is_change)


def unknown(conn: Connection, ids: Iterable[str | None]) -> list[str]:
    """The ids among ``ids`` whose name the hub does not know yet."""
    wanted = sorted({str(i) for i in ids if i})
    known = names(conn, wanted)
    return [i for i in wanted if i not in known]


def names(conn: Connection, ids: Iterable[str | None]) -> dict[str, str]:
    """``{id: name}`` for the CRM owner ids and OA user ids among ``ids`` whose name is known."""
    wanted = sorted({str(i) for i in ids if i})
    if not wanted:
        return {}
    found = {sid: str(snap.payload.get("name")) for sid, snap in
             store.get_snapshots(conn, OWNER_SYSTEM, OWNER_ENTITY, wanted).items() if snap.payload.get("name")}
    rest = [i for i in wanted if i not in found]
    if rest:
        found.update({sid: str(snap.payload.get("name")) for sid, snap in
                      store.get_snapshots(conn, OA_SYSTEM, OA_USER_ENTITY, rest).items() if snap.payload.get("name")})
        rest = [i for i in wanted if i not in found]
    if rest:
        owner_of = {user: links[0].crm_id for user, links in store.links_for_oa_ids(conn, OWNER_LINK, rest).items()
                    if links and links[0].crm_id}
        if owner_of:
            owners = store.get_snapshots(conn, OWNER_SYSTEM, OWNER_ENTITY, sorted(set(owner_of.values())))
            for user, crm_id in owner_of.items():
                snap = owners.get(str(crm_id))
                if snap is not None and snap.payload.get("name"):
                    found[user] = str(snap.payload["name"])
    return found


def learn_oa_names(oa: OaHook, hub: Engine, user_ids: Iterable[str], *, now: datetime | None = None) -> None:
    """Fetch and keep the names of OA users the hub does not know yet (one ``users/batch`` call per 50 unknown,
    none for known ones). A nicety for the pages: a failure is logged and never stops the caller's run. The
    caller must not be using ``oa`` in another thread at the same time."""
    try:
        with hub.connect() as conn:
            missing = unknown(conn, user_ids)
        if not missing:
            return
        found = oa.user_names(missing)
        with hub.begin() as conn:
            remember_oa_users(conn, found, now=now)
    except Exception as exc:
        log.warning("OA user names not stored (%s: %s)", type(exc).__name__, exc)

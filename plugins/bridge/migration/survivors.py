"""Ids merged away in the CRM, met in OA forms and associations, resolved to the record that survived.

A merge in the CRM archives the absorbed record and makes its id answer with
the survivor; an OA form filed before the merge still names the absorbed id.
The history migration links such a form to the survivor (never a second record
for it): :func:`resolve_survivors` asks the hub first (``merge_record``: the
merges an earlier migration recorded, of the CRM or of the customer
de-duplication) and the CRM only for the ids the hub holds no live snapshot of
(``CrmHook.survivors_of``, one batch read per 100 ids; none in the common case).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select

from bridge.hub.schema import snapshot
from bridge.migration import dedupe

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook


def resolve_survivors(
    hub: Engine,
    crm: CrmHook | None,
    entity: str,
    object_type: str,
    ids: Iterable[str],
    deleted: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """``{merged id: survivor}`` for the ids of ``ids`` merged into another record (the others are left out).

    ``deleted``: ids the CRM lists as archived (a merge archives the absorbed record); the CRM is asked about
    them even when the hub still holds them live (staged before the merge, and a dry run remaps nothing)."""
    wanted = list(dict.fromkeys(str(i) for i in ids if i))
    if not wanted:
        return {}
    with hub.connect() as conn:
        found = dedupe.kept_ids(conn, entity, wanted)
        live = live_ids(conn, entity, [i for i in wanted if i not in found]) - deleted
    unknown = [i for i in wanted if i not in found and i not in live and i.isdigit()]
    if unknown and crm is not None:
        found.update(crm.survivors_of(object_type, unknown))
    return found


def live_ids(conn: Connection, entity: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the hub holds as live (not tombstoned) CRM snapshots of ``entity``."""
    out: set[str] = set()
    for start in range(0, len(ids), 500):
        out.update(
            str(r)
            for r in conn.execute(
                select(snapshot.c.source_id).where(
                    snapshot.c.system == "crm",
                    snapshot.c.entity == entity,
                    snapshot.c.deleted.is_(False),
                    snapshot.c.source_id.in_(ids[start : start + 500]),
                )
            ).scalars()
        )
    return out

"""OA → CRM, end of task ``discover`` (hub only, no API call): the CRM side of linked deals, and backfills.

The CRM → OA extract re-stages every deal that changed in the CRM (its
payload holds the OA-owned fields too, outside the content hash). A linked
deal re-staged after this direction's last write whose values do not match
the OA is queued for the load: a conflict (someone edited an OA-owned field)
or a deal stage that moves the project stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

import bridge.dictionary
from bridge.clock import to_ms
from bridge.dictionary import Dictionary, formats
from bridge.hub import store
from bridge.staging import canonical
from bridge.sync.common import OA_TO_CRM
from bridge.sync.frame import Run
from bridge.sync.oa_to_crm import decide as rules
from bridge.sync.oa_to_crm.settings import OaToCrmSettings


def created_ms(value: Any) -> int | None:
    """Epoch ms of a canonical creation time (None when missing or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return formats.datetime_to_ms(value)
    except ValueError:
        return None


def first(links: Sequence[store.Link] | None) -> store.Link | None:
    return links[0] if links else None


def deal_projects(
    conn: Connection,
    deal_ids: Sequence[str],
) -> tuple[dict[str, list[store.Link]], dict[str, store.Snapshot]]:
    """Confirmed ``deal_project`` links per deal and the staged 立项申请 they point at."""
    links = {
        k: [lk for lk in v if lk.oa_id]
        for k, v in store.links_for_crm_ids(conn, rules.PROJECT_LINK, deal_ids).items()
    }
    codes = [str(lk.oa_id) for lks in links.values() for lk in lks]
    projects = store.get_snapshots(conn, "oa", rules.PROJECT_FORM, codes) if codes else {}
    return links, projects


def primary(
    links: Sequence[store.Link], projects: Mapping[str, store.Snapshot], held: Iterable[str] = ()
) -> tuple[dict[str, Any], store.Link] | None:
    """The deal's primary 立项申请 (:func:`~bridge.sync.oa_to_crm.decide.primary_project`) and its link,
    among the staged, live ones nobody holds in quarantine."""
    blocked = set(held)
    candidates = {
        str(lk.oa_id): lk
        for lk in links
        if str(lk.oa_id) in projects and not projects[str(lk.oa_id)].deleted and str(lk.oa_id) not in blocked
    }
    records = [canonical(dict(projects[code].payload)) for code in candidates]
    best = rules.primary_project(records)
    if best is None:
        return None
    return dict(best), candidates[str(best.get("instance_code"))]


def scan_deals(run: Run[OaToCrmSettings]) -> None:
    """Queue linked deals whose staged CRM values of OA-owned fields differ from the OA (see module doc)."""
    stream = "oa_to_crm.crm_deal"
    cfg, now_ms = run.cfg, to_ms(run.now)
    with run.hub.connect() as conn:
        mark = store.get_watermark(conn, stream)
        since = (
            max(0, mark - cfg.lookback_ms)
            if mark is not None
            else now_ms - int(cfg.initial_backfill_seconds * 1000)
        )
        snaps = [
            s
            for batch in store.iter_snapshots(conn, "deal", system="crm", modified_since_ms=since)
            for s in batch
        ]
    if not snaps:
        return
    ids = [s.source_id for s in snaps]
    with run.hub.connect() as conn:
        links, projects = deal_projects(conn, ids)
        written = store.links_for_crm_ids(conn, rules.WRITEBACK_LINK, ids)
    role = run.policy.audience("crm_write", "deal")
    flagged: list[tuple[str, str, str]] = []
    for snap in snaps:
        chosen = primary(links.get(snap.source_id, []), projects)
        if chosen is None:
            continue
        state = first(written.get(snap.source_id))
        if state is not None and snap.source_modified_ms <= int((state.state or {}).get("written_ms") or 0):
            continue  # staged before our last write: not news
        staged = canonical(dict(snap.payload))
        desired = run.policy.project("deal", rules.desired_deal(run.d, chosen[0], staged.get("stage")), role)
        if rules.scan_needs_check(run.d, desired, staged):
            flagged.append(("deal", snap.source_id, snap.content_hash))
    run.tally.add("deals_scanned", len(snaps))
    with run.hub.begin() as conn:
        run.tally.add(
            "deals_flagged",
            store.enqueue_changes(conn, OA_TO_CRM, flagged, run.now, cfg.quiet_seconds, cfg.quiet_seconds),
        )
        top = max(s.source_modified_ms for s in snaps)
        run.tally.watermarks[stream] = store.set_watermark(conn, stream, top, run.ctx.run_id, now=run.now)


def enqueue_backfill(
    hub: Engine, cfg: OaToCrmSettings, now: datetime, days: float, *, dictionary: Dictionary | None = None
) -> int:
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
                    created = created_ms(record.get("created_at"))
                    if created is None or created < cutoff_ms:
                        continue
                    if form == rules.PROJECT_FORM or d.activity_due(form, record):
                        queue.append((form, snap.source_id, snap.content_hash))
    with hub.begin() as conn:
        return store.enqueue_changes(conn, OA_TO_CRM, queue, now, 0, 0)

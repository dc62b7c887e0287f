"""OA → CRM: approval status on the deal, expenses, trips and visit plans on the customer.

Two steps, one per DAG task (``dags/oa_to_crm_sync.py`` → :mod:`bridge.sync.tasks`), plus the summary:

``discover`` (OA calls only: :mod:`.discovery`, then :mod:`.scan` from the hub alone)
    New instances by creation-time windows, status changes by sweeps of the
    spans holding the hub's open instances; read, staged and queued (or
    quarantined) per chunk of 100; linked deals whose OA-owned fields no
    longer match the OA are queued too.

``load`` (CRM calls only: :mod:`.delivery`, :mod:`.deals`, :mod:`.activities`)
    Deals compared with what the OA says and only differing fields written
    (the OA wins conflicts, audited); activities upserted keyed by instance
    code, associated, voided when the instance is withdrawn. Pure decisions
    in :mod:`.decide`.

``summarise``
    Stores and logs the run summary; the DAG publishes an Asset per CRM object type written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Unpack

from bridge import runkinds
from bridge.context import RunContext
from bridge.sync import frame
from bridge.sync.common import OA_TO_CRM, asset_uri
from bridge.sync.frame import RunOptions, Tally
from bridge.sync.frame import SyncIncomplete as SyncIncomplete
from bridge.sync.frame import with_overrides as with_overrides
from bridge.sync.oa_to_crm.delivery import deliver
from bridge.sync.oa_to_crm.discovery import discover as discover_instances
from bridge.sync.oa_to_crm.scan import enqueue_backfill as enqueue_backfill
from bridge.sync.oa_to_crm.settings import FORMS as FORMS
from bridge.sync.oa_to_crm.settings import OaToCrmSettings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

KIND = runkinds.OA_TO_CRM  # run_summary.kind
ASSETS = {
    "deal": asset_uri("crm", "deal"),
    "notes": asset_uri("crm", "notes"),
    "meetings": asset_uri("crm", "meetings"),
}
ASSET_COUNTERS = {"deal": "written_deal", "notes": "written_notes", "meetings": "written_meetings"}


class DiscoverOptions(RunOptions, total=False):
    """:func:`discover`'s options: ``backfill_days`` also queues staged history of that many days."""

    backfill_days: float


def discover(
    oa: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    **options: Unpack[DiscoverOptions],
) -> Tally:
    """Find new and changed OA instances, stage them, queue what the CRM must see (task ``discover``).

    Raises :class:`SyncIncomplete` after committing what it did when the OA stayed
    unavailable through the hook's retries: what was not read is found next run.
    """
    run = frame.new_run(OA_TO_CRM, frame.Hooks(oa_hook=oa), hub, ctx, cfg, now, options)
    return discover_instances(run, options.get("backfill_days", 0))


class LoadOptions(RunOptions, total=False):
    """:func:`load`'s options: ``oa``, the OA hook the attachments step downloads with (settings
    ``attachments``; without it the files of approved instances wait)."""

    oa: OaHook | None


def load(
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    **options: Unpack[LoadOptions],
) -> Tally:
    """Write the due changes to the CRM (task ``load``).

    Raises :class:`SyncIncomplete` after committing what it did when the CRM stayed
    unavailable through the hook's retries: the rest is deferred in the queue.
    One load writes at a time: a run that finds another one loading leaves the
    due changes to it (``skipped_other_load``).
    """
    hooks = frame.Hooks(crm_hook=crm, oa_hook=options.get("oa"))
    return frame.load_alone(frame.new_run(OA_TO_CRM, hooks, hub, ctx, cfg, now, options), deliver)


# Store and log the run summary from the tasks' tallies (None: that task failed): counts, API calls, assets.
summarise = frame.Summary(KIND, ASSET_COUNTERS).store


def run_cycle(
    oa: OaHook,
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: OaToCrmSettings,
    now: datetime,
    **options: Unpack[DiscoverOptions],
) -> dict[str, Any]:
    """discover + load + summarise, as one DAG run does (bench, demo, tests)."""
    run = frame.new_run(OA_TO_CRM, frame.Hooks(oa_hook=oa, crm_hook=crm), hub, ctx, cfg, now, options)
    steps: RunOptions = {"dictionary": run.d, "policy": run.p, "checkpoint": run.checkpoint}
    found = discover(oa, hub, ctx, cfg, now, backfill_days=options.get("backfill_days", 0), **steps)
    loaded = load(crm, hub, ctx, cfg, now + timedelta(milliseconds=1), oa=oa, **steps)
    return summarise(hub, ctx, {"discover": found.as_dict(), "load": loaded.as_dict()}, now)

"""CRM → OA: a deal that reaches the configured stage becomes a 立项申请, exactly once.

Three steps, one per DAG task (``dags/crm_to_oa_sync.py`` → :mod:`bridge.sync.tasks`):

``extract_stage`` (:mod:`.extract`)
    Stage what changed in the CRM (snapshots, debounced queue, quarantine and
    watermark per page in ONE transaction).

``load`` (:mod:`.enrich`, :mod:`.delivery`, :mod:`.send`, :mod:`.writeback`)
    For the due pending changes: decide per deal (:mod:`.decide`, pure), create
    the 立项申请 / send the 合同金额变更通知 with a deterministic Feishu ``uuid``
    saved in the hub *before* the call, confirm, audit and complete in ONE
    transaction, and write the results back to the deals in batches of 100.

Both ends of a deal archived (deleted) or restored in the CRM are in :mod:`.archive`: the extract's
bounded sweep over the archived list, and the load's withdrawal / notice / mark.

``summarise``
    Stores and logs the run summary; the DAG publishes an Asset per entity written.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

import bridge.dictionary
from bridge import runkinds
from bridge.context import RunContext
from bridge.sync import frame
from bridge.sync.common import CRM_TO_OA, asset_uri
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.archive import sweep_archived
from bridge.sync.crm_to_oa.delivery import deliver
from bridge.sync.crm_to_oa.extract import stage_changes
from bridge.sync.crm_to_oa.settings import ENTITY_ORDER as ENTITY_ORDER
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import RunOptions, Tally
from bridge.sync.frame import SyncIncomplete as SyncIncomplete
from bridge.sync.frame import with_overrides as with_overrides

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

KIND = runkinds.CRM_TO_OA  # run_summary.kind
ASSETS = {
    "project_initiation": asset_uri("oa", rules.PROJECT_FORM),
    "contract_amount_notice": asset_uri("oa", rules.NOTICE_FORM),
    "deal": asset_uri("crm", "deal"),
}
# Which counter says an asset was updated in a run.
ASSET_COUNTERS = {
    "project_initiation": "instances_created",
    "contract_amount_notice": "notices_sent",
    "deal": "writebacks",
}


class CycleOptions(RunOptions, total=False):
    """:func:`run_cycle`'s options: ``load_at`` lets tests step past the debounce."""

    load_at: datetime | None


def extract_stage(
    crm: CrmHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    **options: Unpack[RunOptions],
) -> Tally:
    """Stage what changed in the CRM and queue the deals to send (task ``extract_stage``)."""
    d = options.get("dictionary") or bridge.dictionary.load()
    return stage_changes(
        frame.Run(
            CRM_TO_OA, frame.Hooks(crm_hook=crm), hub, ctx, cfg, now, d, checkpoint=options.get("checkpoint")
        ),
        sweep=sweep_archived,
    )


def load(
    crm: CrmHook,
    oa: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    **options: Unpack[RunOptions],
) -> Tally:
    """Send the due deals to the OA and write the results back to the CRM (task ``load``).

    Raises :class:`SyncIncomplete` after committing what it did when a vendor
    stayed unavailable through the hook's retries: the rest waits in the queue.
    One load writes at a time: a run that finds another one loading leaves the
    due changes to it (``skipped_other_load``).
    """
    return frame.load_alone(
        frame.new_run(CRM_TO_OA, frame.Hooks(crm_hook=crm, oa_hook=oa), hub, ctx, cfg, now, options), deliver
    )


# Store and log the run summary from the tasks' tallies (None: that task failed): counts, API calls, assets.
summarise = frame.Summary(KIND, ASSET_COUNTERS).store


def run_cycle(
    crm_hook: CrmHook,
    oa_hook: OaHook,
    hub: Engine,
    ctx: RunContext,
    cfg: CrmToOaSettings,
    now: datetime,
    **options: Unpack[CycleOptions],
) -> dict[str, Any]:
    """extract_stage + load + summarise, as one DAG run does (bench, demo, tests)."""
    load_at = options.get("load_at") or now
    run = frame.new_run(CRM_TO_OA, frame.Hooks(crm_hook, oa_hook), hub, ctx, cfg, now, options)
    steps: RunOptions = {"dictionary": run.d, "policy": run.p, "checkpoint": run.checkpoint}
    extracted = extract_stage(crm_hook, hub, ctx, cfg, now, **steps)
    loaded = load(crm_hook, oa_hook, hub, ctx, cfg, load_at, **steps)
    return summarise(hub, ctx, {"extract_stage": extracted.as_dict(), "load": loaded.as_dict()}, load_at)

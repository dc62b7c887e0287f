"""OA → CRM, task ``load`` (CRM calls only): the due 立项申请 and deals (:mod:`.deals`), then the due
expenses, trips and visit plans (:mod:`.activities`).

When the CRM stays unavailable through the hook's retries (outage, 429
storm), what was committed stays, every due change of this run is deferred
and the task raises :class:`~bridge.sync.frame.SyncIncomplete`; record-level
refusals are outcomes (quarantine), not outages.
"""

from __future__ import annotations

from bridge.hooks.errors import VendorError
from bridge.hub.store import PendingChange
from bridge.sync.frame import Tally, defer, incomplete, take_due
from bridge.sync.oa_to_crm import decide as rules
from bridge.sync.oa_to_crm.activities import load_activities
from bridge.sync.oa_to_crm.deals import load_deals
from bridge.sync.oa_to_crm.discovery import O2C
from bridge.sync.oa_to_crm.outage import Unavailable


def deliver(run: O2C) -> Tally:
    """Write the due changes to the CRM (holding the direction's lease)."""
    before = run.calls_now()
    activity_forms = set(rules.activity_forms(run.d)) & set(run.cfg.forms)

    def handled(change: PendingChange) -> bool:
        return change.entity in (rules.PROJECT_FORM, "deal", *activity_forms)

    due = take_due(run, run.cfg.max_changes_per_run, handled)
    deals = [c for c in due if c.entity in (rules.PROJECT_FORM, "deal")]
    activities = [c for c in due if c.entity in activity_forms]
    stop: VendorError | None = None
    try:
        if deals:
            load_deals(run, deals)
        if activities:
            load_activities(run, activities)
    except Unavailable as unavailable:
        stop = unavailable.error
        defer(run, [*deals, *activities], run.cfg.retry_delay_seconds, "CRM")
    finally:
        run.count_calls(before)
    run.log_summary("oa_to_crm load")
    if stop is not None:
        raise incomplete("the CRM", stop, f"{run.tally.counts.get('deferred', 0)} change(s)") from stop
    return run.tally

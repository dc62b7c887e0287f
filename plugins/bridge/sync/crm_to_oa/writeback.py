"""CRM → OA, task ``load``, last step: instance code, project number, status and project stage back to
the deals, in batches of 100.

Exactly once by state: a 立项申请 link says ``writeback: pending`` until the
CRM confirmed the batch; the update is idempotent, so a crash before the
commit repeats the same values. A deal the CRM refuses is quarantined
(``writeback: rejected``); one that failed for another reason stays pending
and is skipped for the rest of this run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bridge.dictionary import Problem
from bridge.hooks.errors import RecordErrorKind
from bridge.hub import audit, store
from bridge.hub.store import Link
from bridge.staging import canonical
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.send import C2O, update_state
from bridge.sync.frame import QuarantinedRecord, write_audit

if TYPE_CHECKING:
    from bridge.hooks.crm import RecordOutcome


@dataclass
class _Batch:
    """One batch of pending write-backs with the deals' snapshots and the fields written per deal."""

    links: list[Link]
    snaps: dict[str, store.Snapshot]
    fields_by_id: dict[str, list[str]] = field(default_factory=dict)


def write_back(run: C2O) -> None:
    """Write the OA's answers back to the deals, batch by batch, until no pending link is left."""
    tried: set[int] = set()  # links written (no longer pending) or failed (still pending: skipped this run)
    failed = 0
    while True:
        batch = _next_batch(run, tried, failed)
        if batch is None:
            return
        tried.update(lk.id for lk in batch.links)
        inputs = _inputs(run, batch)
        outcomes = {o.key: o for o in run.hooks.crm.batch_update("deals", inputs)}
        run.step("writeback_sent")
        failed += _commit(run, batch, outcomes)
        run.step("writeback_committed")


def _next_batch(run: C2O, tried: set[int], failed: int) -> _Batch | None:
    size = run.cfg.writeback_batch
    with run.hub.connect() as conn:
        links = [
            lk
            for lk in store.links_with_state(
                conn, rules.PROJECT_LINK, "writeback", "pending", limit=size + failed
            )
            if lk.id not in tried
        ][:size]
        snaps = store.get_snapshots(conn, "crm", "deal", [str(lk.crm_id) for lk in links])
    return _Batch(links, snaps) if links else None


def _inputs(run: C2O, batch: _Batch) -> list[dict[str, Any]]:
    """The CRM update of each deal: what the policy lets the bridge write, in CRM properties."""
    role = run.policy.audience("crm_write", "deal")
    inputs: list[dict[str, Any]] = []
    for link in batch.links:
        deal_id = str(link.crm_id)
        deal = (
            canonical(dict(batch.snaps[deal_id].payload))
            if deal_id in batch.snaps
            else {"crm_id": link.crm_id}
        )
        state = link.state or {}
        record = rules.writeback_record(
            run.d, deal, str(link.oa_id), state.get("project_no"), state.get("approval_status")
        )
        visible = run.policy.project("deal", record, role)
        visible.pop("crm_id", None)
        batch.fields_by_id[deal_id] = sorted(visible)
        inputs.append({"id": deal_id, "properties": run.d.to_crm_properties("deal", visible)})
    return inputs


def _commit(run: C2O, batch: _Batch, outcomes: Mapping[str, RecordOutcome]) -> int:
    """Links done or rejected, audit, quarantine: one transaction. Returns how many failed (still pending)."""
    events: list[audit.AuditEvent] = []
    failed = 0
    with run.hub.begin() as conn:
        done: dict[int, dict[str, Any]] = {}
        for link in batch.links:
            deal_id = str(link.crm_id)
            outcome = outcomes.get(deal_id)
            ids = {"deal_id": deal_id, "instance_code": str(link.oa_id)}
            fields = batch.fields_by_id[deal_id]
            if outcome is not None and outcome.ok:
                done[link.id] = {**(link.state or {}), "writeback": "done"}
                events.append(run.audit("update", ("crm", "deal"), ids, fields, "ok", detail="write-back"))
                run.tally.add("writebacks")
            elif outcome is not None and outcome.kind in (
                RecordErrorKind.NOT_FOUND,
                RecordErrorKind.VALIDATION,
            ):
                _reject(conn, run, link, outcome, batch.snaps.get(deal_id))
                events.append(
                    run.audit(
                        "update", ("crm", "deal"), ids, fields, "rejected", detail=str(outcome.category)
                    )
                )
                run.tally.add("writebacks_rejected")
            else:
                run.tally.add("writebacks_failed")
                failed += 1
        store.set_link_states(conn, done, run_id=run.ctx.run_id, now=run.now)
        write_audit(conn, run.ctx, events)
    return failed


def _reject(
    conn: Connection, run: C2O, link: Link, outcome: RecordOutcome, snap: store.Snapshot | None
) -> None:
    """The CRM refused the deal's write-back: the link says so and the deal waits in quarantine."""
    deal_id = str(link.crm_id)
    update_state(conn, run, link, {"writeback": "rejected"})
    problem = Problem(
        code="vendor_rejected",
        entity="deal",
        field=None,
        department="sales",
        message=(
            f"立项申请 {link.oa_id} 的实例编号和项目编号无法写回 CRM 商机「{deal_id}」："
            f"{outcome.message or outcome.category}。请确认商机仍存在且自定义属性已创建，"
            f"然后执行 `bridge quarantine release` 重试写回。"
        ),
    )
    run.quarantine(conn, ("crm", "deal", deal_id), problem, QuarantinedRecord(snap.payload if snap else None))

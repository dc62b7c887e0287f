"""Write-back: the OA facts of each linked deal's 立项申请 into the CRM deal, where they are missing.

The 立项申请 chunks leave, per chunk, the (deal, instance) links they found
(``bridge.migration.workdir``). Per deal one 立项申请 is chosen — the newest
one still live (not rejected, withdrawn or deleted), else the newest — and
its instance code, project number, approval status and decision time, plus the
OA project stage that follows from the deal's stage (as the CRM → OA sync
does), are projected through the permission policy for CRM writes
(``audiences.crm_write.deal``) and turned into HubSpot properties by
``Dictionary.to_crm_properties``. The deals' current values are read in
batches of 100 first; only deals whose values differ are written (batch
update by id, idempotent), so a rerun writes nothing again. Each write is
audited; a deal HubSpot refuses goes to quarantine (``vendor_rejected``).
Memory: one small row per linked deal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from bridge.dictionary import Dictionary
from bridge.hooks.crm import CrmHook, RecordOutcome
from bridge.hub import store
from bridge.migration import workdir
from bridge.migration.chunk import DIRECTION, PROJECT_LINK, Tools
from bridge.migration.counts import EntityCounts
from bridge.sync.crm_to_oa.decide import project_stage
from bridge.sync.frame import AuditStamp, audit_event, write_audit

CLOSED = frozenset({"REJECTED", "CANCELED", "DELETED", "REVERTED"})  # as bridge.sync.oa_to_crm.decide.CLOSED
BATCH = 100
FIELDS = ("oa_instance_code", "project_no", "approval_status", "approval_decided_at", "project_stage")


def _rank(row: Sequence[Any]) -> tuple[bool, str, str]:
    _deal, code, _no, status, _decided, created = row[:6]
    return (status not in CLOSED, str(created or ""), str(code))


def primary_links(rows: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
    """Per deal the 立项申请 row to write back: newest live one, else newest (pure)."""
    best: dict[str, list[Any]] = {}
    for row in rows:
        deal = str(row[0])
        current = best.get(deal)
        if current is None or _rank(row) > _rank(current):
            best[deal] = list(row)
    return best


def writeback_record(d: Dictionary, row: Sequence[Any], deal_stage: str | None) -> dict[str, Any]:
    """Canonical deal fields to write (empty values left out)."""
    _deal, code, project_no, status, decided, _created = row[:6]
    record = {
        "oa_instance_code": code,
        "project_no": project_no,
        "approval_status": status,
        "approval_decided_at": decided,
        "project_stage": project_stage(d, deal_stage),
    }
    return {k: v for k, v in record.items() if v is not None}


def _crm_properties(d: Dictionary) -> list[str]:
    fields = d.entity("deal").fields
    return [str(fields[f].crm) for f in FIELDS if fields[f].crm] + [str(fields["stage"].crm)]


def write_back(crm: CrmHook, t: Tools) -> EntityCounts:
    """Write the chosen 立项申请 of every linked deal back to the CRM (counted only in a dry run)."""
    d, policy = t.d, t.policy
    counts = EntityCounts("deal")
    best = primary_links(workdir.iter_project_links(t.run_id, t.data_dir))
    role = policy.audience("crm_write", "deal")
    stage_property = str(d.entity("deal").fields["stage"].crm)
    deal_ids = sorted(best, key=lambda x: (len(x), x))
    for start in range(0, len(deal_ids), BATCH):
        t.renew()
        ids = deal_ids[start : start + BATCH]
        current = {o.key: o for o in crm.batch_read("deals", ids, properties=_crm_properties(d))}
        inputs: list[dict[str, Any]] = []
        written_fields: dict[str, list[str]] = {}
        for deal_id in ids:
            outcome = current.get(deal_id)
            if outcome is None or not outcome.ok:
                counts.skipped["deal_not_found"] += 1
                continue
            props: Mapping[str, Any] = (outcome.object or {}).get("properties") or {}
            raw_stage = props.get(stage_property)
            stage = d.to_canonical("deal_stage", "crm", str(raw_stage)) if raw_stage else None
            visible = policy.project("deal", writeback_record(d, best[deal_id], stage), role)
            wanted = d.to_crm_properties("deal", visible)
            if all((props.get(k) or "") == v for k, v in wanted.items()):
                counts.skipped["already_in_crm"] += 1
                continue
            inputs.append({"id": deal_id, "properties": wanted})
            written_fields[deal_id] = sorted(visible)
        if not inputs:
            continue
        if t.dry_run:
            counts.written_back += len(inputs)
            for item in inputs[:1]:
                counts.example("written_back", {"id": item["id"], "fields": written_fields[item["id"]]})
            continue
        _send(crm, t, counts, best, inputs, written_fields)
    return counts


def _send(
    crm: CrmHook,
    t: Tools,
    counts: EntityCounts,
    best: Mapping[str, list[Any]],
    inputs: list[dict[str, Any]],
    written_fields: Mapping[str, list[str]],
) -> None:
    d, policy = t.d, t.policy
    outcomes = {o.key: o for o in crm.batch_update("deals", inputs)}
    now = t.now()
    events = []
    with t.hub.begin() as conn:
        states: dict[int, dict[str, Any]] = {}
        for item in inputs:
            deal_id = str(item["id"])
            code = str(best[deal_id][1])
            outcome = outcomes.get(deal_id)
            written = outcome is not None and outcome.ok
            if written:
                counts.written_back += 1
                counts.example("written_back", {"id": deal_id, "fields": written_fields[deal_id]})
                link = store.find_link(conn, PROJECT_LINK, crm_id=deal_id, oa_id=code)
                if link is not None:
                    states[link.id] = {**(link.state or {}), "writeback": "done"}
            else:
                _quarantine_rejected(conn, t, counts, (deal_id, code), outcome, now)
            detail = (
                "history migration write-back"
                if written
                else str(outcome.category if outcome else "MISSING_RESULT")
            )
            stamp = AuditStamp(detail=detail, dictionary=d, policy_version=policy.version)
            ids = {"deal_id": deal_id, "instance_code": code}
            events.append(
                audit_event(
                    "update",
                    ("crm", "deal"),
                    ids,
                    written_fields[deal_id],
                    "ok" if written else "rejected",
                    stamp,
                )
            )
        if states:
            store.set_link_states(conn, states, run_id=t.run_id, now=now)
        write_audit(conn, t.ctx, events)


def _quarantine_rejected(
    conn: Connection,
    t: Tools,
    counts: EntityCounts,
    pair: tuple[str, str],
    outcome: RecordOutcome | None,
    now: datetime,
) -> None:
    """A deal the CRM refused to update (or did not answer for): quarantined for the PMO with the reason."""
    deal_id, code = pair
    why = (outcome.message or outcome.category or "HubSpot 未返回结果") if outcome else "HubSpot 未返回结果"
    message = (
        f"历史迁移无法把立项申请 {code} 的实例编号、项目编号和审批状态写回 CRM 商机「{deal_id}」：{why}。"
        f"请确认商机仍存在、自定义属性（oa_instance_code 等）已创建，然后重新运行历史迁移。"
    )
    store.quarantine_record(
        conn,
        t.ctx,
        store.QuarantineItem(
            DIRECTION,
            "crm",
            "deal",
            deal_id,
            "vendor_rejected",
            message,
            payload={"crm_id": deal_id, "oa_instance_code": code},
            department="pmo",
            dictionary_version=t.d.version,
        ),
        now=now,
    )
    counts.quarantined["vendor_rejected"] += 1
    counts.example("quarantined.vendor_rejected", {"id": deal_id, "message": message})

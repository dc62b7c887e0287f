"""The demo around ``oa_to_crm_sync``: people act in the OA, statuses and activities land in the CRM.

``before``: the approvers decide the 立项申请 the CRM → OA run just filed (two
approved, one rejected); sales people submit a 费用报销 for a customer and its
project (approved), a 差旅申请 (approved), a 客户拜访计划 (pending: a meeting
already), and one 费用报销 without a customer (approved: the "forgot to
select the customer" case). ``conf``: the run also backfills the last 30
days of approved history the migration staged. ``after``: the statuses on
the deals, the notes and meetings on the customers, and the quarantined form
with its message; then, after the run's figures, the approved 费用报销 is
revoked (one more run marks its note) and the CRM → OA lifecycle scene
(:func:`sandbox.scenario.crm_to_oa_sync.lifecycle`: a deal deleted, two
merged) plays, then the attachments scene (:mod:`sandbox.scenario.attachments`: one contract scan
shared by two 立项申请, one invoice on two notes, disguised programs quarantined), last, so that
they change no figure printed before them; then an approval reaching its deal through an event
(:mod:`sandbox.scenario.events`: OA event → receiver → Redis wake → one sync run, in seconds).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.scenario import crm_to_oa_sync

CHOSEN = "oa_to_crm_demo.json"
APPLICANT = "u00011038"  # 彭明, sales


def _instances(sims: Any, form: str, origin: str | None = None) -> list[dict[str, Any]]:
    query = f"/_sim/instances?approval={form}&limit=1000" + (f"&origin={origin}" if origin else "")
    items = sims.oa.admin("GET", query)["items"]
    for item in items:
        item["widgets"] = {w["id"]: w.get("value") for w in json.loads(item["form"])}
    return items


def _customers(sims: Any) -> list[dict[str, Any]]:
    page = sims.crm.admin("GET", "/_sim/objects/companies?limit=50")
    return [c for c in page["results"] if c["properties"].get("name")][:3]


def _submit(sims: Any, form: str, widgets: dict[str, Any]) -> str:
    types = {"reason": "textarea", "purpose": "textarea", "expense_type": "radioV2", "amount": "amount",
             "estimated_cost": "amount", "expense_date": "date", "start_date": "date", "end_date": "date",
             "visit_date": "date"}
    values = [{"id": k, "type": types.get(k, "input"), "value": v} for k, v in widgets.items() if v is not None]
    return str(sims.oa.admin("POST", "/_sim/act/submit", {"approval": form, "user_id": APPLICANT,
                                                          "form": values})["instance_code"])


def before(sims: Any, demo_dir: Path) -> list[str]:
    projects = [p for p in _instances(sims, "project_initiation", "api") if p["status"] == "PENDING"]
    lines: list[str] = []
    decided: dict[str, str] = {}
    for project, action in zip(projects[:3], ("approve", "approve", "reject"), strict=False):
        sims.oa.admin("POST", f"/_sim/act/{action}", {"instance_code": project["instance_code"]})
        decided[project["instance_code"]] = project["widgets"].get("deal_id")
        lines.append(f"OA: 立项申请 {project['serial_number']}「{project['widgets'].get('project_name')}」"
                     f"{'approved' if action == 'approve' else 'rejected'} by the approver")
    customers = _customers(sims)
    first = customers[0]["id"]
    project_no = projects[0]["serial_number"] if projects else None
    expense = _submit(sims, "expense_claim", {"reason": "客户现场演示交通费", "expense_type": "交通", "amount": 1860.5,
                                              "expense_date": "2026-11-20T00:00:00+08:00", "customer_id": first,
                                              "project_no": project_no})
    trip = _submit(sims, "travel_request", {"reason": "客户现场实施", "destination": "上海",
                                            "start_date": "2026-11-23T00:00:00+08:00",
                                            "end_date": "2026-11-25T00:00:00+08:00", "estimated_cost": 5600,
                                            "customer_id": customers[1]["id"]})
    visit = _submit(sims, "visit_plan", {"customer_id": customers[2]["id"], "visit_date": "2026-11-28T00:00:00+08:00",
                                         "purpose": "年度合作回顾", "participants": "彭明、王霞"})
    orphan = _submit(sims, "expense_claim", {"reason": "招待客户", "expense_type": "招待", "amount": 980,
                                             "expense_date": "2026-11-21T00:00:00+08:00"})
    for code in (expense, trip, orphan):
        sims.oa.admin("POST", "/_sim/act/approve", {"instance_code": code})
    chosen = {"decided": decided, "expense": expense, "trip": trip, "visit": visit, "orphan": orphan,
              "customers": [c["id"] for c in customers]}
    (demo_dir / CHOSEN).write_text(json.dumps(chosen), encoding="utf-8")
    lines += [
        f"OA: 彭明 submitted a 费用报销 ¥1,860.50 for customer {first} (project {project_no}), approved",
        f"OA: a 差旅申请 to 上海 for customer {customers[1]['id']}, approved",
        f"OA: a 客户拜访计划 for customer {customers[2]['id']} (pending)",
        "OA: a 费用报销 ¥980 without a customer (forgot to select it), approved",
    ]
    return lines


def conf() -> dict[str, Any]:
    return {"backfill_days": 30}


def _objects(sims: Any, object_type: str) -> dict[str, dict[str, Any]]:
    page = sims.crm.admin("GET", f"/_sim/objects/{object_type}?limit=10000")
    return {o["properties"].get("oa_instance_code"): o for o in page["results"]}


def _companies_of(object_type: str, object_id: str, sims: Any) -> list[str]:
    from bridge.hooks.crm import CrmHook

    with sims.as_connections():
        hook = CrmHook()
        try:
            found = hook.read_associations(object_type, "companies", [object_id])
            deals = hook.read_associations(object_type, "deals", [object_id])
        finally:
            hook.close()
    return found.get(object_id, []) + [f"deal {d}" for d in deals.get(object_id, [])]


def after(sims: Any, demo_dir: Path) -> list[str]:
    from bridge.hub import engine, store

    chosen = json.loads((demo_dir / CHOSEN).read_text(encoding="utf-8"))
    lines: list[str] = []
    for code, deal in chosen["decided"].items():
        page = sims.crm.admin("GET", f"/_sim/objects/deals?after={int(deal) - 1}&limit=2")
        props = next((d["properties"] for d in page["results"] if d["id"] == deal), {})
        lines.append(f"CRM: deal {deal} 审批状态 {props.get('oa_approval_status')} 项目编号 {props.get('oa_project_no')} "
                     f"决定时间 {props.get('oa_decision_time')} 项目阶段 {props.get('oa_project_stage')} (立项 {code[:8]}…)")
    notes, meetings = _objects(sims, "notes"), _objects(sims, "meetings")
    for key, what in (("expense", "费用报销"), ("trip", "差旅申请"), ("orphan", "费用报销 without customer")):
        note = notes.get(chosen[key])
        if note is None:
            lines.append(f"CRM: {what}: no note")
            continue
        lines.append(f"CRM: note for the {what} on {', '.join(_companies_of('notes', note['id'], sims))}: "
                     f"{note['properties'].get('hs_note_body')}")
    meeting = meetings.get(chosen["visit"])
    if meeting is not None:
        lines.append(f"CRM: meeting「{meeting['properties'].get('hs_meeting_title')}」 on "
                     f"{', '.join(_companies_of('meetings', meeting['id'], sims))}: "
                     f"{meeting['properties'].get('hs_meeting_body')}")
    others = len(notes) + len(meetings) - sum(1 for k in ("expense", "trip", "visit") if chosen[k] in {**notes, **meetings})
    lines.append(f"CRM: {others} more activities from the backfilled history (approved in the last 30 days)")
    hub = engine.get_engine(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    with hub.connect() as conn:
        entry = store.open_quarantine(conn, "oa_to_crm", "expense_claim", chosen["orphan"])
        [summary] = store.recent_runs(conn, kind="oa_to_crm_sync", limit=1) or [None]
    if entry is not None:
        lines.append(f"quarantine #{entry.id}: {entry.reason_code} — {entry.message}")
    if summary is not None:
        counts = summary.counts
        lines.append(f"run summary: read {counts.get('read', 0)}, discovered {counts.get('discovered', 0)}, "
                     f"deals written {counts.get('written_deal', 0)}, notes {counts.get('written_notes', 0)}, "
                     f"meetings {counts.get('written_meetings', 0)}, quarantined {counts.get('quarantined', 0)}, "
                     f"API calls {counts.get('api_calls', 0)}")
    lines += _revoke(sims, demo_dir, chosen["expense"])
    from sandbox.scenario import attachments, events  # attachments reuses this module's helpers

    lines += crm_to_oa_sync.lifecycle(sims, demo_dir) + attachments.scene(sims, demo_dir)
    return lines + events.scene(sims, demo_dir)


def sync_once(sims: Any, demo_dir: Path) -> None:
    """One OA → CRM run (discover + load) in this process: the tasks a DAG run calls."""
    from bridge import settings
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.hub import engine
    from bridge.sync import oa_to_crm

    cfg = oa_to_crm.OaToCrmSettings.from_settings({**settings.load(), "debounce": {"quiet_seconds": 0}})
    hub = engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    ctx = RunContext.local(principal="bridge-service", dag_id="oa_to_crm_sync")
    with sims.as_connections():
        oa, crm = OaHook(), CrmHook()
        try:
            oa_to_crm.discover(oa, hub, ctx, cfg, datetime.now(UTC))
            oa_to_crm.load(crm, hub, ctx, cfg, datetime.now(UTC))
        finally:
            oa.close()
            crm.close()


def _revoke(sims: Any, demo_dir: Path, code: str) -> list[str]:
    """An approved 费用报销 is revoked (撤销) later: the next run marks its note in the CRM, never deletes it."""
    [serial] = [i["serial_number"] for i in _instances(sims, "expense_claim") if i["instance_code"] == code]
    sims.oa.admin("POST", "/_sim/act/revoke", {"instance_code": code})
    sync_once(sims, demo_dir)
    note = _objects(sims, "notes").get(code)
    body = note["properties"].get("hs_note_body") if note else "no note"
    return [f"OA: the approved 费用报销 {serial} was revoked (撤销) by the approver; next sync run:",
            f"CRM: its note, marked not deleted: {body}"]

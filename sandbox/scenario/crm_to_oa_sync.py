"""The demo around ``crm_to_oa_sync``: sales people work in the CRM, deals become 立项申请 in the OA.

``before``: a few deals reach 合同签订 (contractsent), one of them edited 12
times in a row, notes-only edits on others, a signed deal of the owner who
left the company (no OA account) and an edit of a deal stuck in an unmapped
legacy stage. ``after``: what arrived in the OA (instances, project numbers),
what was written back to the CRM, what is in quarantine and why; then the
amount of a linked deal changes and one more sync cycle (the same engine the
DAG's tasks call) sends the 合同金额变更通知 to finance. ``lifecycle`` (played
by the OA → CRM scene, last): a deal deleted with its 立项申请 pending (the
archived-deals sweep withdraws it) and two deals merged (one 立项申请).

The demo runs with ``BRIDGE__DEBOUNCE__QUIET_SECONDS=0``: a change is due as
soon as it is extracted, so ``max_delay_seconds`` never binds (due = min(last
seen + 0, first seen + 150 s) = last seen). The 12 edits still give one OA
write because they all land before the run's extract, as they would inside a
real 60 s quiet window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMER_OWNER = "70000999"  # 离职销售: no OA account
CHOSEN = "crm_to_oa_demo.json"


def _deals(sims: Any) -> list[dict[str, Any]]:
    page = sims.crm.admin("GET", "/_sim/objects/deals?limit=10000")
    return sorted(page["results"], key=lambda d: int(d["id"]))


def _act(sims: Any, object_id: str, props: Any, times: int = 1) -> None:
    sims.crm.admin("POST", "/_sim/act/update", {"object_type": "deals", "id": int(object_id),
                                                 "properties": props, "times": times})


def clean_negotiation(deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clean deals in 商务谈判 (negotiation) with an amount, an active owner and no OA project yet."""
    out = []
    for deal in deals:
        props = deal["properties"]
        try:
            amount = float(props.get("amount") or "")
        except ValueError:
            continue
        if (props.get("dealstage") == "decisionmakerboughtin" and amount > 0
                and props.get("hubspot_owner_id") not in (None, "", FORMER_OWNER) and not props.get("oa_instance_code")):
            out.append(deal)
    return out


def before(sims: Any, demo_dir: Path) -> list[str]:
    deals = _deals(sims)
    ready = clean_negotiation(deals)
    signed, busy, noted = ready[:3], ready[3], ready[4:9]
    for deal in signed:
        _act(sims, deal["id"], {"dealstage": "contractsent"})
    amount = float(busy["properties"]["amount"])
    edits = [{"amount": f"{amount + 1000 * n:.2f}"} for n in range(1, 12)] + [{"dealstage": "contractsent"}]
    _act(sims, busy["id"], edits, times=12)
    for deal in noted:
        _act(sims, deal["id"], [{"description": f"客户沟通记录 第{n}条"} for n in range(1, 4)], times=3)
    assoc = sims.crm.admin("POST", "/_sim/act/create", {
        "object_type": "deals",
        "properties": {"dealname": "离职销售遗留的合同项目", "dealstage": "contractsent", "amount": "88000.00",
                       "pipeline": "default", "closedate": "2026-12-31T00:00:00.000Z",
                       "hubspot_owner_id": FORMER_OWNER},
        "associations": {"companies": _company_of(sims, signed[0]["id"])},
    })
    legacy = next((d for d in deals if d["properties"].get("dealstage") == "legacy_stage_7"), None)
    if legacy is not None:
        _act(sims, legacy["id"], {"closedate": "2027-01-31T00:00:00.000Z"})
    chosen = {"signed": [d["id"] for d in signed], "busy": busy["id"], "noted": [d["id"] for d in noted],
              "former": str(assoc["id"]), "legacy": legacy["id"] if legacy else None}
    (demo_dir / CHOSEN).write_text(json.dumps(chosen), encoding="utf-8")
    lines = [
        f"CRM: {len(signed)} deals moved to 合同签订 ({', '.join(d['properties']['dealname'] for d in signed)})",
        f"CRM: deal {busy['id']} edited 12 times in a row (amount ×11, then 合同签订)",
        f"CRM: {len(noted)} deals got notes-only edits (description), 3 each",
        f"CRM: a signed deal {assoc['id']} owned by the sales person who left (no OA account)",
    ]
    if legacy is not None:
        lines.append(f"CRM: deal {legacy['id']} in the unmapped legacy stage legacy_stage_7 was edited")
    return lines


def _company_of(sims: Any, deal_id: str) -> list[str]:
    from bridge.hooks.crm import CrmHook

    with sims.as_connections():
        hook = CrmHook()
        try:
            return hook.read_associations("deals", "companies", [deal_id]).get(deal_id, [])
        finally:
            hook.close()


def _instances(sims: Any, form: str) -> list[dict[str, Any]]:
    page = sims.oa.admin("GET", f"/_sim/instances?approval={form}&origin=api&limit=1000")
    items = page["items"]
    for item in items:
        item["widgets"] = {w["id"]: w.get("value") for w in json.loads(item["form"])}
    return items


def after(sims: Any, demo_dir: Path) -> list[str]:
    from bridge.hub import engine, store

    chosen = json.loads((demo_dir / CHOSEN).read_text(encoding="utf-8"))
    created = _instances(sims, "project_initiation")
    by_deal = {i["widgets"].get("deal_id"): i for i in created}
    lines = [f"OA: {len(created)} 立项申请 created by the bridge"]
    for deal_id in [*chosen["signed"], chosen["busy"]]:
        inst = by_deal.get(deal_id)
        if inst is None:
            lines.append(f"OA: deal {deal_id}: no 立项申请 (unexpected)")
            continue
        crm = _deal_props(sims, deal_id)
        lines.append(f"OA: 立项申请 {inst['serial_number']} 「{inst['widgets'].get('project_name')}」 "
                     f"applicant {inst['user_id']} amount ¥{inst['widgets'].get('contract_amount'):,.2f}; "
                     f"CRM write-back 项目编号 {crm.get('oa_project_no')} 状态 {crm.get('oa_approval_status')}")
    busy = sum(1 for i in created if i["widgets"].get("deal_id") == chosen["busy"])
    noted = sum(1 for i in created if i["widgets"].get("deal_id") in chosen["noted"])
    lines.append(f"OA writes for the deal edited 12 times: {busy}; for the notes-only edits: {noted}")
    hub = engine.get_engine(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    with hub.connect() as conn:
        held = store.list_quarantine(conn, store.QuarantineFilter(direction="crm_to_oa"), limit=20)
    for entry in held:
        if entry.source_id in (chosen["former"], chosen["legacy"]):
            lines.append(f"quarantine #{entry.id}: deal {entry.source_id} {entry.reason_code} — {entry.message[:90]}…")
    lines += _amount_change(sims, demo_dir, chosen["signed"][0])
    return lines


def lifecycle(sims: Any, demo_dir: Path) -> list[str]:
    """A deal deleted with its 立项申请 pending, then two deals merged (called by the OA → CRM scene, last, so
    that the OA → CRM run's figures above it stay those of the day's ordinary work)."""
    chosen = json.loads((demo_dir / CHOSEN).read_text(encoding="utf-8"))
    lines = _archive(sims, demo_dir, chosen["busy"])
    return lines + _merge(
        sims, demo_dir, [d["id"] for d in clean_negotiation(_deals(sims)) if d["id"] not in chosen["noted"]]
    )


def _deal_props(sims: Any, deal_id: str) -> dict[str, Any]:
    page = sims.crm.admin("GET", f"/_sim/objects/deals?after={int(deal_id) - 1}&limit=2")
    return next((d["properties"] for d in page["results"] if d["id"] == deal_id), {})


def _cycle(sims: Any, demo_dir: Path) -> None:
    """One sync cycle (the same engine the DAG's tasks call), with the archived-deals sweep due every time."""
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.hub import engine
    from bridge.sync import crm_to_oa

    cfg = crm_to_oa.CrmToOaSettings.from_settings({**_settings(), "debounce": {"quiet_seconds": 0}})
    cfg = crm_to_oa.with_overrides(cfg, archive_sweep_seconds=0)
    with sims.as_connections():
        crm, oa = CrmHook(), OaHook()
        try:
            crm_to_oa.run_cycle(crm, oa, engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}"),
                                RunContext.local(principal="bridge-service", dag_id="crm_to_oa_sync"), cfg,
                                datetime.now(UTC))
        finally:
            crm.close()
            oa.close()


def _amount_change(sims: Any, demo_dir: Path, deal_id: str) -> list[str]:
    """Finance changes the contract amount of a linked deal; the next sync cycle sends the notice."""
    old = float(_deal_props(sims, deal_id).get("amount") or 0)
    new = old + 50_000
    _act(sims, deal_id, {"amount": f"{new:.2f}"})
    _cycle(sims, demo_dir)
    notices = [n for n in _instances(sims, "contract_amount_notice") if n["widgets"].get("deal_id") == deal_id]
    lines = [f"CRM: contract amount of linked deal {deal_id} changed ¥{old:,.0f} → ¥{new:,.0f}; next sync cycle:"]
    for n in notices:
        w = n["widgets"]
        lines.append(f"OA: 合同金额变更通知 for 项目 {w.get('project_no')}: ¥{w.get('old_amount'):,.2f} → "
                     f"¥{w.get('new_amount'):,.2f}, filed by {n['user_id']} (finance audience)")
    return lines


def _archive(sims: Any, demo_dir: Path, deal_id: str) -> list[str]:
    """A sales person deletes a deal whose 立项申请 is still pending: the sweep finds it, the bridge withdraws it."""
    [inst] = [i for i in _instances(sims, "project_initiation") if i["widgets"].get("deal_id") == deal_id][:1]
    sims.crm.admin("POST", "/_sim/act/archive", {"object_type": "deals", "id": int(deal_id)})
    _cycle(sims, demo_dir)
    now = next(i for i in _instances(sims, "project_initiation") if i["instance_code"] == inst["instance_code"])
    comments = [c.get("comment") for c in now.get("comment_list") or [] if c.get("comment")]
    return [f"CRM: deal {deal_id} deleted (archived) while its 立项申请 {inst['serial_number']} was pending; "
            "next sync cycle (archived-deals sweep):",
            f"OA: 立项申请 {inst['serial_number']} 「{inst['widgets'].get('project_name')}」 withdrawn by the bridge, "
            f"status {now['status']}",
            f"OA: its comment (评论): {comments[-1] if comments else '(none posted)'}"]


def _merge(sims: Any, demo_dir: Path, candidates: list[str]) -> list[str]:
    """Two deals of a customer are merged in the CRM: the survivor inherits the 立项申请, no second one is filed."""
    from bridge.hooks.crm import CrmHook
    from bridge.hub import engine, store

    survivor, absorbed = candidates[:2]
    _act(sims, absorbed, {"dealstage": "contractsent"})
    _cycle(sims, demo_dir)
    with sims.as_connections():
        hook = CrmHook()
        try:
            hook.call("POST", "/crm/v3/objects/{object_type}/merge", path_params={"object_type": "deals"},
                      json={"objectIdToMerge": absorbed, "primaryObjectId": survivor})
        finally:
            hook.close()
    _cycle(sims, demo_dir)
    _act(sims, survivor, {"dealstage": "contractsent"})
    _cycle(sims, demo_dir)
    filed = [i for i in _instances(sims, "project_initiation") if i["widgets"].get("deal_id") in (survivor, absorbed)]
    with engine.get_engine(f"sqlite:///{demo_dir / 'hub.sqlite'}").connect() as conn:
        linked = [lk.oa_id for lk in store.links(conn, "deal_project", crm_id=survivor) if lk.oa_id]
    lines = [f"CRM: deal {absorbed} (with its 立项申请) merged into deal {survivor}, which then reached 合同签订; "
             "next sync cycles:",
             f"OA: {len(filed)} 立项申请 for the two deals"]
    for inst in filed:
        owner = survivor if inst["instance_code"] in linked else absorbed
        lines.append(f"OA: 立项申请 {inst['serial_number']} 「{inst['widgets'].get('project_name')}」 status "
                     f"{inst['status']}, now linked to deal {owner}")
    return lines


def _settings() -> dict[str, Any]:
    from bridge import settings

    return settings.load()

"""The demo of issue 19: files follow their records, each content stored once per system.

``scene(sims, demo_dir) -> list[str]`` (the lead wires it into the demo after
the two sync scenes; it needs the demo's hub at ``demo_dir / "hub.sqlite"``):

1. CRM → OA: two deals of a customer in 商务谈判 get the same signed contract
   scan attached (two folders, so the CRM holds two files with the same
   bytes, renamed); they reach 合同签订; one sync cycle files both 立项申请,
   each carrying the scan in its attachment widget — uploaded to the OA once.
2. OA → CRM: two 费用报销 of that customer, naming the first deal's project,
   each with the same invoice PDF (renamed) and an executable disguised as a
   PDF, are approved; one sync cycle puts the invoice on both notes (one
   PRIVATE file in ``/bridge/<company id>``) and quarantines the executable.

Both cycles run with ``BRIDGE__ATTACHMENTS__ENABLED=true`` (set for the scene
only; include/settings.yaml keeps attachments off until the scopes exist).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.common.documents import demo_pdf
from sandbox.scenario.crm_to_oa_sync import _act, _deals, _instances, clean_negotiation
from sandbox.scenario.oa_to_crm_sync import _submit

ENABLED = "BRIDGE__ATTACHMENTS__ENABLED"
CONTRACT = demo_pdf("合同 演示 已签署", 19)
INVOICE = demo_pdf("发票 演示 0001", 19)
PROGRAM = b"MZ\x90\x00" + b"\x00" * 4092


@contextlib.contextmanager
def _attachments_on() -> Iterator[None]:
    before = os.environ.get(ENABLED)
    os.environ[ENABLED] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENABLED, None)
        else:
            os.environ[ENABLED] = before


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _context(demo_dir: Path, dag_id: str) -> tuple[Any, Any]:
    from bridge.context import RunContext
    from bridge.hub import engine

    hub = engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    return hub, RunContext.local(principal="bridge-service", dag_id=dag_id)


def _c2o_cycle(sims: Any, demo_dir: Path) -> dict[str, int]:
    from bridge.sync import crm_to_oa

    return _cycle(sims, demo_dir, crm_to_oa)


def _o2c_cycle(sims: Any, demo_dir: Path) -> dict[str, int]:
    from bridge.sync import oa_to_crm

    return _cycle(sims, demo_dir, oa_to_crm)


def _cycle(sims: Any, demo_dir: Path, direction: Any) -> dict[str, int]:
    """One cycle of ``direction`` (the sync package: its settings class and run_cycle, hooks in its order)."""
    from bridge import settings
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.sync import crm_to_oa

    c2o = direction is crm_to_oa
    settings_class = direction.CrmToOaSettings if c2o else direction.OaToCrmSettings
    cfg = settings_class.from_settings({**settings.load(), "debounce": {"quiet_seconds": 0}})
    hub, ctx = _context(demo_dir, "crm_to_oa_sync" if c2o else "oa_to_crm_sync")
    with sims.as_connections():
        crm, oa = CrmHook(), OaHook()
        try:
            hooks = (crm, oa) if c2o else (oa, crm)
            done = direction.run_cycle(*hooks, hub, ctx, cfg, datetime.now(UTC))
        finally:
            crm.close()
            oa.close()
    return dict(done["counts"])


def _contracts(sims: Any, demo_dir: Path) -> tuple[list[str], list[str]]:
    """Scene 1 → (lines, the two deal ids)."""
    deals = [d["id"] for d in clean_negotiation(_deals(sims))][-2:]
    for n, deal in enumerate(deals):
        sims.crm.admin(
            "POST",
            "/_sim/act/attach",
            {
                "object_type": "deals",
                "id": int(deal),
                "file_name": ["合同.pdf", "合同-盖章版.pdf"][n],
                "content_b64": _b64(CONTRACT),
                "folder_path": f"/contracts/{deal}",
                "note_body": "已签署合同扫描件",
            },
        )
        _act(sims, deal, {"dealstage": "contractsent"})
    counts = _c2o_cycle(sims, demo_dir)
    lines = [
        f"CRM: the same signed contract scan attached to deals {deals[0]} and {deals[1]} (renamed), both "
        "moved to 合同签订; next CRM → OA cycle:"
    ]
    for inst in _instances(sims, "project_initiation"):
        if inst["widgets"].get("deal_id") in deals:
            files = inst["widgets"].get("attachments") or []
            lines.append(
                f"OA: 立项申请 {inst['serial_number']} for deal {inst['widgets']['deal_id']} carries "
                f"{len(files)} contract file(s)"
            )
    lines.append(
        f"bridge: contract files uploaded to the OA {counts.get('attachments_uploaded', 0)}×, "
        f"the same bytes reused {counts.get('attachments_deduplicated', 0)}× (SHA-256 identity)"
    )
    return lines, deals


def _company_of(sims: Any, deal: str) -> str:
    from bridge.hooks.crm import CrmHook

    with sims.as_connections():
        crm = CrmHook()
        try:
            companies = crm.read_associations("deals", "companies", [deal]).get(deal) or []
        finally:
            crm.close()
    if not companies:
        raise RuntimeError(f"deal {deal} has no company")
    return str(companies[0])


def _invoices(sims: Any, demo_dir: Path, deal: str) -> list[str]:
    """Scene 2: two approved 费用报销 with the same invoice (and a disguised program) reach the CRM."""
    company = _company_of(sims, deal)
    [project] = [i for i in _instances(sims, "project_initiation") if i["widgets"].get("deal_id") == deal][:1]
    codes = []
    for n in range(2):
        code = _submit(
            sims,
            "expense_claim",
            {
                "reason": "客户现场实施差旅费",
                "expense_type": "交通",
                "amount": 860 + n,
                "expense_date": "2026-12-01T00:00:00+08:00",
                "customer_id": company,
                "project_no": project["serial_number"],
            },
        )
        for name, data in ((f"发票-0001{'（复印件）' if n else ''}.pdf", INVOICE), ("报销单.pdf", PROGRAM)):
            sims.oa.admin(
                "POST",
                "/_sim/act/attach",
                {"instance_code": code, "file_name": name, "content_b64": _b64(data)},
            )
        sims.oa.admin("POST", "/_sim/act/approve", {"instance_code": code})
        codes.append(code)
    counts = _o2c_cycle(sims, demo_dir)
    notes = sims.crm.admin("GET", "/_sim/objects/notes?limit=10000")["results"]
    lines = [
        f"OA: two 费用报销 of customer {company} approved, each with the same invoice (renamed) and a "
        "program disguised as 报销单.pdf; next OA → CRM cycle:"
    ]
    for note in notes:
        props = note["properties"]
        if props.get("oa_instance_code") in codes:
            lines.append(
                f"CRM: note {note['id']} of 费用报销 {props['oa_instance_code'][:8]}… carries file(s) "
                f"{props.get('hs_attachment_ids')} (PRIVATE, /bridge/{company})"
            )
    lines.append(
        f"bridge: invoices uploaded to the CRM {counts.get('attachments_uploaded', 0)}×, linked again "
        f"{counts.get('attachments_deduplicated', 0)}×, refused to quarantine "
        f"{counts.get('attachments_quarantined', 0)}× (executable)"
    )
    return lines


def scene(sims: Any, demo_dir: Path) -> list[str]:
    """Issue 19's demo: a contract scan CRM → OA, an invoice OA → CRM, duplicates not uploaded."""
    with _attachments_on():
        lines, deals = _contracts(sims, demo_dir)
        lines += _invoices(sims, demo_dir, deals[0])
    (demo_dir / "attachments_demo.json").write_text(json.dumps({"deals": deals}), encoding="utf-8")
    return lines

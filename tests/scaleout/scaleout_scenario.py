"""The business day the scale-out run plays, and the normalised states it compares.

Two pairs of simulators are started with the same seed, so their worlds are
identical (same deal ids, owners, amounts, OA users). The scenario picks its
deals from the world with a deterministic rule and acts on both pairs in the
same order, so records it creates get the same ids too, and the OA forms it
submits carry fixed Feishu ``uuid`` values. Before sync cycle ``i`` (one run
of each sync DAG) the test applies ``PHASES[i]``:

0. nothing — the first cycle only stages the world and sets the watermarks
   (``initial_backfill_hours: 0`` on both directions: history is the
   migration's job);
1. CRM: four deals reach 合同签订 (contractsent); one deal is edited twelve
   times in a row (amount ×11, then 合同签订); three deals get notes-only
   edits; a new customer with a contact and a deal signed straight into 赢单
   (closedwon); a signed deal owned by the sales person who left (no OA
   account). OA: an expense claim and a visit plan for a customer, a travel
   request for the new customer, and an expense claim with no customer;
2. CRM: the contract amount of two linked deals changes (合同金额变更通知);
   the deal of the former owner is given to an active owner (its quarantine
   entry is closed as fixed and the 立项申请 follows); a linked deal moves on
   to 赢单; one more deal is won. OA: one 立项申请 is approved, another one
   rejected; the expense and the trip are approved; an expense that names a
   project number (项目编号) is submitted and approved;
3. nothing — a rerun must write nothing.

``oa_state`` / ``crm_state`` / ``hub_state`` read what the bridge produced
and normalise it: an OA instance code (random per simulator) becomes what it
stands for (``<form>:<deal id>#<n>`` for the bridge's own instances, the
submitted ``uuid`` for the scenario's), CRM note and meeting ids become the
instance they carry, decision times (wall clock) become ``<set>``; every
other value — applicant, status, form values, idempotency uuids, serial
numbers (项目编号), CRM properties and associations, quarantine reasons, xref
links — is compared as is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from sandbox.launcher import Simulators, oa_instances
from sandbox.scenario.crm_to_oa_sync import FORMER_OWNER, clean_negotiation

SEED = 20261126
ACTIVE_OWNER = "70000001"  # 彭明: has an OA account
APPLICANT = "u00011038"  # 彭明 in the OA
# Settings of both the reference and the scale-out run (environment overrides of include/settings.yaml).
SETTINGS_ENV = {
    "BRIDGE__DEBOUNCE__QUIET_SECONDS": "0",
    "BRIDGE__DEBOUNCE__MAX_DELAY_SECONDS": "5",
    "BRIDGE__CRM_TO_OA__INITIAL_BACKFILL_HOURS": "0",
    "BRIDGE__OA_TO_CRM__INITIAL_BACKFILL_HOURS": "0",
    # Feishu's instances/query index lags; the simulator's does not: no need to wait for it.
    "BRIDGE__OA_TO_CRM__QUERY_LAG_SECONDS": "0",
}
FORMS = ("project_initiation", "contract_amount_notice")  # what the bridge files in the OA
SUBMITTED_FORMS = ("expense_claim", "travel_request", "visit_plan")  # what people file (→ CRM activities)
DEAL_PROPERTIES = ("oa_instance_code", "oa_project_no", "oa_approval_status", "oa_project_stage", "oa_decision_time")
WALL_CLOCK_PROPERTIES = frozenset({"oa_decision_time"})
ACTIVITY_TYPES = ("notes", "meetings")
VOLATILE_CRM_PROPERTIES = frozenset({"hs_object_id", "hs_createdate", "createdate", "hs_lastmodifieddate",
                                     "hs_body_preview", "hs_body_preview_html"})
WIDGET_TYPES = {"reason": "textarea", "purpose": "textarea", "expense_type": "radioV2", "amount": "amount",
                "estimated_cost": "amount", "expense_date": "date", "start_date": "date", "end_date": "date",
                "visit_date": "date"}


@dataclass
class Chosen:
    """The records the scenario acts on: ids of the seeded world, and of what it creates."""

    signed: list[str]
    busy: str
    noted: list[str]
    won_later: str
    company_of_signed0: str
    created: dict[str, str] = field(default_factory=dict)  # role -> CRM id of a record the scenario created
    submitted: dict[str, str] = field(default_factory=dict)  # role -> uuid of an OA form the scenario filed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- acting as people


def _objects(sims: Simulators, object_type: str) -> list[dict[str, Any]]:
    page = sims.crm.admin("GET", f"/_sim/objects/{object_type}?limit=10000")
    assert isinstance(page, dict)
    return sorted(page["results"], key=lambda d: int(d["id"]))


def _update(sims: Simulators, object_type: str, object_id: str, props: Any, times: int = 1) -> None:
    sims.crm.admin("POST", "/_sim/act/update", {"object_type": object_type, "id": int(object_id),
                                                 "properties": props, "times": times})


def _create(sims: Simulators, object_type: str, props: dict[str, str],
            companies: list[str] | None = None) -> str:
    body: dict[str, Any] = {"object_type": object_type, "properties": props}
    if companies:
        body["associations"] = {"companies": companies}
    answer = sims.crm.admin("POST", "/_sim/act/create", body)
    assert isinstance(answer, dict)
    return str(answer["id"])


def _associations(sims: Simulators, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
    """Associations read through the CRM's own API (the admin dumps carry none)."""
    if not ids:
        return {}
    from bridge.hooks.crm import CrmHook

    with sims.as_connections():
        hook = CrmHook()
        try:
            found = hook.read_associations(from_type, to_type, ids)
        finally:
            hook.close()
    return {str(k): sorted(str(v) for v in vals) for k, vals in found.items()}


def _submit(sims: Simulators, form: str, uuid: str, **widgets: Any) -> str:
    values = [{"id": k, "type": WIDGET_TYPES.get(k, "input"), "value": v} for k, v in widgets.items()
              if v is not None]
    answer = sims.oa.admin("POST", "/_sim/act/submit", {"approval": form, "user_id": APPLICANT, "form": values,
                                                         "uuid": uuid})
    assert isinstance(answer, dict)
    return str(answer["instance_code"])


def _oa_act(sims: Simulators, action: str, code: str) -> None:
    sims.oa.admin("POST", f"/_sim/act/{action}", {"instance_code": code})


def _code_of_uuid(sims: Simulators, form: str, uuid: str) -> str:
    [found] = [i for i in instances(sims, form, origin="admin") if i["uuid"] == uuid]
    return str(found["instance_code"])


def _project_of(sims: Simulators, deal_id: str) -> dict[str, Any]:
    [found] = [i for i in instances(sims, "project_initiation") if i["widgets"].get("deal_id") == deal_id]
    return found


def choose(sims: Simulators) -> Chosen:
    """Clean deals in 商务谈判 (negotiation) with an amount and an active owner, in id order."""
    ready = [str(deal["id"]) for deal in clean_negotiation(_objects(sims, "deals"))]
    assert len(ready) >= 10, f"the seeded world has only {len(ready)} clean negotiation deals"
    [company] = _associations(sims, "deals", "companies", [ready[0]])[ready[0]][:1]
    return Chosen(signed=ready[:4], busy=ready[4], noted=ready[5:8], won_later=ready[8], company_of_signed0=company)


def phase_initial(sims: Simulators, chosen: Chosen) -> None:
    """Phase 1: sales people sign, edit, note and create deals; employees file expenses, a trip, a visit."""
    for deal in chosen.signed:
        _update(sims, "deals", deal, {"dealstage": "contractsent"})
    edits: list[dict[str, str]] = [{"amount": f"{150_000 + 1_000 * n:.2f}"} for n in range(1, 12)]
    _update(sims, "deals", chosen.busy, [*edits, {"dealstage": "contractsent"}], times=12)
    for deal in chosen.noted:
        _update(sims, "deals", deal, [{"description": f"客户沟通记录 第{n}条"} for n in range(1, 4)], times=3)
    company = _create(sims, "companies", {
        "name": "扩容测试智能装备有限公司", "uscc": "91110108MA01SCALE6", "lifecyclestage": "opportunity",
        "industry": "制造", "city": "苏州", "phone": "0512-62345678", "hubspot_owner_id": ACTIVE_OWNER})
    contact = _create(sims, "contacts", {
        "lastname": "周", "firstname": "扬", "mobilephone": "13912345678", "email": "zhou.yang@example.cn",
        "jobtitle": "总经理", "associatedcompanyid": company, "hubspot_owner_id": ACTIVE_OWNER}, [company])
    won = _create(sims, "deals", {
        "dealname": "扩容测试产线改造项目", "dealstage": "closedwon", "amount": "380000.00", "pipeline": "default",
        "closedate": "2026-12-31T00:00:00.000Z", "hubspot_owner_id": ACTIVE_OWNER}, [company])
    former = _create(sims, "deals", {
        "dealname": "离职销售遗留的合同项目", "dealstage": "contractsent", "amount": "88000.00", "pipeline": "default",
        "closedate": "2026-12-31T00:00:00.000Z", "hubspot_owner_id": FORMER_OWNER}, [chosen.company_of_signed0])
    chosen.created.update({"company": company, "contact": contact, "won_new": won, "former": former})

    customer = chosen.company_of_signed0
    chosen.submitted.update({"expense": "scaleout-expense-1", "trip": "scaleout-trip-1", "visit": "scaleout-visit-1",
                             "orphan": "scaleout-expense-orphan"})
    _submit(sims, "expense_claim", chosen.submitted["expense"], reason="拜访客户交通费", expense_type="交通",
            amount=2345.6, expense_date="2026-11-20T00:00:00+08:00", customer_id=customer)
    _submit(sims, "travel_request", chosen.submitted["trip"], reason="现场实施", destination="苏州",
            start_date="2026-11-23T00:00:00+08:00", end_date="2026-11-25T00:00:00+08:00", estimated_cost=5600,
            customer_id=company)
    _submit(sims, "visit_plan", chosen.submitted["visit"], customer_id=customer,
            visit_date="2026-11-28T00:00:00+08:00", purpose="需求调研", participants="彭明、吴霞")
    _submit(sims, "expense_claim", chosen.submitted["orphan"], reason="忘记选择客户的报销", expense_type="交通",
            amount=99.0, expense_date="2026-11-21T00:00:00+08:00")


def phase_changes(sims: Simulators, chosen: Chosen) -> None:
    """Phase 2: amounts change, the orphaned deal gets an owner, deals are won; approvers decide in the OA."""
    _update(sims, "deals", chosen.signed[0], {"amount": "520000.00"})
    _update(sims, "deals", chosen.busy, [{"amount": "170000.00"}, {"amount": "171000.00"}], times=2)
    _update(sims, "deals", chosen.created["former"], {"hubspot_owner_id": ACTIVE_OWNER})
    _update(sims, "deals", chosen.signed[1], {"dealstage": "closedwon"})
    _update(sims, "deals", chosen.won_later, {"dealstage": "closedwon"})

    _oa_act(sims, "approve", str(_project_of(sims, chosen.signed[0])["instance_code"]))
    _oa_act(sims, "reject", str(_project_of(sims, chosen.signed[2])["instance_code"]))
    _oa_act(sims, "approve", _code_of_uuid(sims, "expense_claim", chosen.submitted["expense"]))
    _oa_act(sims, "approve", _code_of_uuid(sims, "travel_request", chosen.submitted["trip"]))
    busy_project = _project_of(sims, chosen.busy)
    chosen.submitted["project_expense"] = "scaleout-expense-project"
    [busy_company] = _associations(sims, "deals", "companies", [chosen.busy])[chosen.busy][:1]
    code = _submit(sims, "expense_claim", chosen.submitted["project_expense"], reason="项目现场实施餐费",
                   expense_type="餐饮", amount=860.0, expense_date="2026-11-24T00:00:00+08:00",
                   customer_id=busy_company, project_no=busy_project["serial_number"])
    _oa_act(sims, "approve", code)


Phase = Callable[[Simulators, Chosen], None] | None
PHASES: list[Phase] = [None, phase_initial, phase_changes, None]


# ---------------------------------------------------------------- reading and normalising


def instances(sims: Simulators, form: str, origin: str = "api") -> list[dict[str, Any]]:
    """The OA instances of one form filed by the bridge (``api``) or by people (``admin``), form parsed."""
    return oa_instances(sims.oa, form, origin)


def code_names(sims: Simulators) -> dict[str, str]:
    """OA instance code -> what it stands for, the same on both simulators."""
    names: dict[str, str] = {}
    for form in FORMS:
        seen: Counter[str] = Counter()
        for inst in sorted(instances(sims, form), key=lambda i: (int(i["start_time"]), i["uuid"] or "")):
            deal = str(inst["widgets"].get("deal_id"))
            seen[deal] += 1
            names[inst["instance_code"]] = f"{form}:{deal}#{seen[deal]}"
    for form in SUBMITTED_FORMS:
        for inst in instances(sims, form, origin="admin"):
            if inst.get("uuid"):
                names[inst["instance_code"]] = f"{form}:{inst['uuid']}"
    return names


VOLATILE_INSTANCE_KEYS = frozenset({"instance_code", "start_time", "end_time", "updated_ms", "form", "timeline",
                                    "task_list", "comment_list", "widgets"})


def oa_state(sims: Simulators) -> dict[str, list[dict[str, Any]]]:
    """Per ``<form>:<deal id>``: the bridge's instances with applicant, status, uuid and every form value."""
    names = code_names(sims)
    state: dict[str, list[dict[str, Any]]] = {}
    for form in FORMS:
        for inst in instances(sims, form):
            deal = str(inst["widgets"].get("deal_id"))
            row = {k: v for k, v in inst.items() if k not in VOLATILE_INSTANCE_KEYS}
            row["decided"] = inst.get("end_time") not in (None, 0, "0", "")
            row["widgets"] = {k: names.get(v, v) if isinstance(v, str) else v for k, v in inst["widgets"].items()}
            state.setdefault(f"{form}:{deal}", []).append(row)
    for rows in state.values():
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False, default=str))
    return state


def _activity_names(sims: Simulators, names: dict[str, str]) -> dict[str, str]:
    """CRM note/meeting id -> ``<type>:<the instance it carries>``."""
    out: dict[str, str] = {}
    for object_type in ACTIVITY_TYPES:
        for obj in _objects(sims, object_type):
            code = obj["properties"].get("oa_instance_code")
            if code:
                out[str(obj["id"])] = f"{object_type}:{names.get(code, 'unknown instance ' + code)}"
    return out


def crm_state(sims: Simulators) -> dict[str, dict[str, Any]]:
    """The OA-owned properties of every deal that has any, and every note/meeting the bridge wrote.

    Deals are keyed by id; activities by the instance they carry (with their
    companies and deals). Instance codes become what they stand for.
    """
    names = code_names(sims)
    state: dict[str, dict[str, Any]] = {}
    for deal in _objects(sims, "deals"):
        props = deal["properties"]
        written = {p: props.get(p) for p in DEAL_PROPERTIES if props.get(p) not in (None, "")}
        if written:
            for p in WALL_CLOCK_PROPERTIES & set(written):
                written[p] = "<set>"
            if "oa_instance_code" in written:
                written["oa_instance_code"] = names.get(written["oa_instance_code"],
                                                        f"unknown instance {written['oa_instance_code']}")
            state[f"deal:{deal['id']}"] = written
    for object_type in ACTIVITY_TYPES:
        objects = [o for o in _objects(sims, object_type) if o["properties"].get("oa_instance_code")]
        ids = [str(o["id"]) for o in objects]
        companies = _associations(sims, object_type, "companies", ids)
        deals = _associations(sims, object_type, "deals", ids)
        for obj in objects:
            props = {k: v for k, v in obj["properties"].items()
                     if k not in VOLATILE_CRM_PROPERTIES and v not in (None, "")}
            code = props["oa_instance_code"]
            props["oa_instance_code"] = names.get(code, f"unknown instance {code}")
            props["companies"] = companies.get(str(obj["id"]), [])
            props["deals"] = deals.get(str(obj["id"]), [])
            key = f"{object_type}:{props['oa_instance_code']}"
            assert key not in state, f"two {object_type} carry {props['oa_instance_code']}"
            state[key] = props
    return state


def hub_state(hub: Engine, sims: Simulators) -> dict[str, Any]:
    """Quarantine entries (open and resolved) and xref links of both directions."""
    from bridge.hub import store

    names = code_names(sims)
    names.update(_activity_names(sims, names))
    with hub.connect() as conn:
        held = store.list_quarantine(conn, store.QuarantineFilter(open_only=False), limit=1000)
        links = store.links(conn)

    def name(value: str | None) -> str | None:
        return names.get(value, value) if value else value

    return {
        "quarantine": sorted((e.direction, e.entity, name(e.source_id), e.reason_code, e.resolution or "open")
                             for e in held),
        "links": sorted((lk.link_type, name(lk.crm_id) or "", name(lk.oa_id) or "") for lk in links),
    }


def duplicates(sims: Simulators) -> dict[str, int]:
    """Deals with two 立项申请, uuids used twice, instances carried by two activities (all must be empty)."""
    projects = Counter(str(i["widgets"].get("deal_id")) for i in instances(sims, "project_initiation"))
    uuids = Counter(i["uuid"] for form in FORMS for i in instances(sims, form))
    carried = Counter(o["properties"]["oa_instance_code"] for t in ACTIVITY_TYPES for o in _objects(sims, t)
                      if o["properties"].get("oa_instance_code"))
    found = {f"project_initiation:{k}": n for k, n in projects.items() if n > 1}
    found.update({f"uuid:{k}": n for k, n in uuids.items() if n > 1})
    found.update({f"activity:{k}": n for k, n in carried.items() if n > 1})
    return found

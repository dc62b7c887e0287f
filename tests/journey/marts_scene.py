"""A hub filled by the real writers for the journey marts, pages and report sections.

On the journey world (``tests/journey/journey_world.py``: the CRM seeded with a small world and its journey
data, companies/contacts/deals staged by the CRM → OA extract), :func:`build_scene`:

1. records the deals' stages as first seen (``marts.record_stage_changes``);
2. stages every journey source as ``journey_sync`` does (campaigns, events and participations, contacts'
   sources, survey answers, performance results);
3. moves every open deal to 合同签订 in the CRM, and runs the CRM → OA sync (extract + load, debounce off):
   each deal gets its 立项申请 in the OA and its owner an ``owner_user`` link;
4. records the stage changes again; approves the 立项申请 of one deal in the OA, files a 客户拜访计划 for its
   customer and runs the OA → CRM discovery, which stages the OA instances;
5. marks that deal won in the CRM, extracts and records the stage change once more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from tests.journey.journey_world import Journey

from bridge import permissions
from bridge.context import RunContext
from bridge.hub import store
from bridge.hub.schema import snapshot
from bridge.journey import marts, sources
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.common import DebounceSettings

STEPS = (sources.stage_campaigns, sources.stage_events, sources.stage_contact_sources, sources.stage_feedback,
         sources.stage_reviews)
OPEN = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin")


@dataclass
class Scene:
    journey: Journey
    company_id: str  # the customer followed: first touch, deal moved and approved, a visit
    deal_id: str
    project_code: str
    moved: list[str]  # deals moved to 合同签订

    @property
    def hub(self) -> Any:
        return self.journey.hub

    @property
    def hub_url(self) -> str:
        return self.journey.hub.url.render_as_string(hide_password=False)


def _ctx(dag: str, task: str) -> RunContext:
    return RunContext(dag_id=dag, run_id=f"scene__{task}__{datetime.now(UTC).timestamp()}", task_id=task,
                      try_number=1, principal="bridge-test")


def _deals(journey: Journey) -> dict[str, dict[str, Any]]:
    return journey.snapshots("deal")


def _followed(journey: Journey, moved: list[str]) -> tuple[str, str]:
    """A customer with a first touch (a contact source with a campaign) and a moved deal; one whose contacts
    answered a survey when there is one."""
    deals = _deals(journey)
    touched = {p.get("company_id") for p in journey.snapshots("contact_source").values()
               if p.get("first_touch_campaign_id")}
    answered = {p.get("company_id") for p in journey.snapshots("feedback_submission").values()}
    candidates = [(deals[d].get("company_id") not in answered, d) for d in moved
                  if deals[d].get("company_id") in touched]
    assert candidates, "no moved deal of a customer with a first-touch campaign in the seeded world"
    deal_id = min(candidates)[1]
    return str(deals[deal_id]["company_id"]), deal_id


def build_scene(journey: Journey) -> Scene:
    journey.sims.oa.admin("POST", "/_sim/reset", {})  # no instance of an earlier test (the CRM is reseeded)
    with journey.hub.begin() as conn:
        marts.record_stage_changes(conn, now=datetime.now(UTC))
    for step in STEPS:
        journey.step(step)
    moved = sorted(d for d, p in _deals(journey).items() if p.get("stage") in ("lead", "qualified", "proposal",
                                                                              "negotiation"))
    for deal_id in moved:
        journey.crm_act("/_sim/act/update", {"object_type": "deals", "id": int(deal_id),
                                             "properties": {"dealstage": "contractsent"}})
    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), initial_backfill_seconds=0,
                                   debounce=DebounceSettings(0, 0))
    policy = permissions.load()
    journey.now = datetime.now(UTC)
    crm_to_oa.extract_stage(journey.crm, journey.hub, _ctx("crm_to_oa_sync", "extract"), cfg, journey.now,
                            dictionary=journey.d)
    crm_to_oa.load(journey.crm, journey.oa, journey.hub, _ctx("crm_to_oa_sync", "load"), cfg, journey.now,
                   dictionary=journey.d, policy=policy)
    with journey.hub.begin() as conn:
        marts.record_stage_changes(conn, now=datetime.now(UTC))
    company_id, deal_id = _followed(journey, moved)
    with journey.hub.connect() as conn:
        link = [lk for lk in store.links(conn, "deal_project", crm_id=deal_id) if lk.oa_id]
    assert link, f"deal {deal_id} got no 立项申请"
    code = str(link[0].oa_id)
    journey.sims.oa.admin("POST", "/_sim/act/approve", {"instance_code": code})
    visit = [{"id": "customer_id", "type": "input", "value": company_id},
             {"id": "visit_date", "type": "date", "value": "2026-11-28T00:00:00+08:00"},
             {"id": "purpose", "type": "textarea", "value": "需求调研"}]
    journey.sims.oa.admin("POST", "/_sim/act/submit", {"approval": "visit_plan", "user_id": _applicant(journey, code),
                                                       "form": visit})
    o2c = oa_to_crm.with_overrides(oa_to_crm.OaToCrmSettings.from_settings(), query_lag_ms=0)
    oa_to_crm.discover(journey.oa, journey.hub, _ctx("oa_to_crm_sync", "discover"), o2c, datetime.now(UTC),
                       dictionary=journey.d, policy=policy)
    won_on = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
    journey.crm_act("/_sim/act/update", {"object_type": "deals", "id": int(deal_id),
                                         "properties": {"dealstage": "closedwon", "closedate": won_on}})
    journey.now = datetime.now(UTC)
    crm_to_oa.extract_stage(journey.crm, journey.hub, _ctx("crm_to_oa_sync", "extract_won"), cfg, journey.now,
                            dictionary=journey.d)
    with journey.hub.begin() as conn:
        marts.record_stage_changes(conn, now=datetime.now(UTC))
    return Scene(journey, company_id, deal_id, code, moved)


def _applicant(journey: Journey, code: str) -> str:
    """The OA user who filed the 立项申请 (the deal owner's OA account)."""
    with journey.hub.connect() as conn:
        owners = [lk.oa_id for lk in store.links(conn, "owner_user") if lk.oa_id]
    assert owners, "the CRM → OA load linked no owner to an OA user"
    instance = journey.oa.get_instance(code)
    return str(instance.get("user_id") or owners[0])


def staged(journey: Journey, entity: str, system: str = "crm") -> int:
    with journey.hub.connect() as conn:
        return len(conn.execute(select(snapshot.c.source_id).where(snapshot.c.entity == entity,
                                                                   snapshot.c.system == system)).all())

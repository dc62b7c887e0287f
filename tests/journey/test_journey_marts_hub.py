"""Journey marts over a hub the real writers filled (tests/journey/marts_scene.py): the journey staging, the
CRM → OA sync (deals, 立项申请, owner links), the OA → CRM discovery (OA instances) and the stage recorder.

Each expectation is computed independently from the staged snapshots, not from the marts' own helpers."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from statistics import mean

import pytest
from sqlalchemy import select
from tests.journey.journey_world import Journey, journey, journey_sims  # noqa: F401
from tests.journey.marts_scene import Scene, build_scene

from bridge import permissions
from bridge.hub import documents, store
from bridge.hub.schema import deal_stage_history
from bridge.journey import funnel, marts, people_csat, views
from bridge.journey.view_settings import JourneyViews


@pytest.fixture
def scene(journey: Journey) -> Scene:  # noqa: F811
    return build_scene(journey)


def _timeline(scene: Scene, role: str):  # type: ignore[no-untyped-def]
    policy = permissions.load()
    with scene.hub.connect() as conn:
        line = views.customer_timeline(conn, scene.company_id, marts.Projection(policy, role),
                                       now=datetime.now(UTC), may_see_document=views.document_rule(policy, role))
    assert line is not None
    return line


def test_journey_marts_stage_history_from_snapshot_changes(scene: Scene) -> None:
    with scene.hub.connect() as conn:
        rows = conn.execute(select(deal_stage_history.c.stage, deal_stage_history.c.basis)
                            .where(deal_stage_history.c.deal_id == scene.deal_id)
                            .order_by(deal_stage_history.c.entered_ms)).all()
    assert [r.basis for r in rows] == ["first_seen", "snapshot", "snapshot"]
    assert [r.stage for r in rows][1:] == ["contract", "won"]
    with scene.hub.begin() as conn:
        assert marts.record_stage_changes(conn) == 0  # nothing changed since: a rerun adds nothing
    with scene.hub.connect() as conn:
        spans = marts.stage_spans(conn, [scene.deal_id])[scene.deal_id]
    assert spans[0].end == spans[1].start
    assert spans[1].end == spans[2].start
    assert spans[2].end is None  # won: still there


def test_journey_marts_timeline_joins_both_systems(scene: Scene) -> None:
    line = _timeline(scene, "management")
    kinds = [e.kind for e in line.events]
    for kind in ("first_touch", "contact", "deal", "stage", "won", "approval", "visit", "survey"):
        assert kind in kinds, f"no {kind} event on the timeline: {kinds}"
    assert [e.at for e in line.events] == sorted(e.at for e in line.events)
    contacts = scene.journey.snapshots("contact")
    mine = [c for c in contacts.values() if c.get("company_id") == scene.company_id]
    assert kinds.count("contact") == len(mine)
    answers = [a for a in scene.journey.snapshots("feedback_submission").values()
               if a.get("company_id") == scene.company_id]
    assert kinds.count("survey") == len(answers)
    decided = [e for e in line.events if e.title.startswith("立项审批")]
    assert [e.title for e in decided] == ["立项审批：已通过"]
    stays = [e for e in line.events if e.kind == "stage"]
    assert stays[0].days is not None  # the first stage has ended: its stay is shown
    assert stays[-1].days is None  # won: no end yet
    assert line.first_touch is not None
    assert line.first_touch.at == min(e.at for e in line.events if e.kind in ("first_touch", "event"))
    assert not line.hidden


def test_journey_marts_timeline_through_narrower_roles(scene: Scene) -> None:
    employee = _timeline(scene, "employee")
    assert {e.kind for e in employee.events} <= {"deal", "event", "approval", "visit", "expense", "trip", "document"}
    assert employee.hidden["contact"] >= 1  # 普通员工 sees no contact …
    assert "feedback_submission" in employee.hidden  # … nor survey answers
    deal_names = {d["deal_name"] for d in scene.journey.snapshots("deal").values()}
    assert not any(name in e.detail for e in employee.events for name in deal_names)  # project numbers only
    marketing = _timeline(scene, "marketing")
    assert "first_touch" in {e.kind for e in marketing.events}
    assert marketing.hidden["project_initiation"] == 1  # 市场部 sees no OA approval
    assert marketing.hidden["visit_plan"] == 1


def test_journey_marts_funnel_matches_the_staged_touches(scene: Scene) -> None:
    snaps = scene.journey.snapshots
    event_campaign = {e: p.get("campaign_id") for e, p in snaps("marketing_event").items()}
    contacts = defaultdict(set)
    for p in snaps("event_participation").values():
        contacts[event_campaign.get(p["event_id"]) or ""].add(p["contact_id"])
    for cid, p in snaps("contact_source").items():
        if p.get("company_id") and (p.get("source") or p.get("first_touch_campaign_id")):
            contacts[p.get("first_touch_campaign_id") or ""].add(cid)
    with scene.hub.connect() as conn:
        facts = marts.funnel_facts(conn)
    rows = {r.campaign_id: r for r in funnel.funnel(facts.touches, facts.deals)}
    assert {k: r.contacts for k, r in rows.items() if r.contacts} == {k: len(v) for k, v in contacts.items()}
    assert sum(r.leads for r in rows.values()) == len({t.company_id for t in facts.touches})
    won = [r for r in rows.values() if r.won]
    assert won, "the scene's won deal shows in some campaign's funnel"
    assert all(r.won <= r.with_deal <= r.leads for r in rows.values())
    assert set(facts.campaign_names) == set(snaps("campaign"))


def test_journey_marts_people_facts_follow_the_owner_links(scene: Scene) -> None:
    snaps = scene.journey.snapshots
    with scene.hub.connect() as conn:
        linked = {lk.oa_id: lk.crm_id for lk in store.links(conn, "owner_user") if lk.oa_id}
        facts = marts.people_facts(conn)
    reviews = snaps("performance_review").values()
    assert len(facts.reviews) == sum(1 for r in reviews if r["person_id"] in linked)
    assert facts.unlinked_reviews == sum(1 for r in reviews if r["person_id"] not in linked)
    assert len(facts.periods) == len({r["period_id"] for r in reviews})
    rules = people_csat.Rules(min_responses=1, min_group_size=2)
    rows = people_csat.owner_periods(facts.reviews, facts.periods, facts.answers, facts.deals, rules)
    companies = snaps("company")
    for row in rows:
        period = facts.periods[row.period_id]
        mine = [float(a["value"]) for a in snaps("feedback_submission").values() if a["survey_type"] == "CSAT"
                and companies.get(a.get("company_id") or "", {}).get("owner_id") == row.owner_id
                and period.holds(marts.parse_time(a["submitted_at"]))]
        assert row.csat_responses == len(mine)
        assert row.csat == (pytest.approx(mean(mine)) if mine else None)


def test_journey_marts_people_view_audits_and_hides(scene: Scene) -> None:
    policy = permissions.load()
    cfg = JourneyViews(min_responses=1, min_group_size=2)
    with scene.hub.begin() as conn:
        hr = views.people_view(conn, views.Looker("lihua", "hr", None), policy, cfg)
        shown = views.audit_personal_view(conn, views.Looker("lihua", "hr", None), policy,
                                          [(r.owner_id, r.period_id) for r in hr.rows], "test")
        employee = views.people_view(conn, views.Looker("zhangsan", "employee", None), policy, cfg)
    assert hr.rows, "人力资源部 sees every linked person's row"
    assert shown == len(hr.rows)
    assert employee.rows == []
    assert employee.hidden_people == len(hr.rows)
    assert all(g.people >= cfg.min_group_size for g in employee.groups)
    entries = scene.journey.audit("view_personal_data")
    assert {(e["record_ids"]["owner_id"], e["principal"]) for e in entries} == {(r.owner_id, "lihua") for r in hr.rows}


def test_journey_marts_on_demand_cost_is_small(scene: Scene) -> None:
    """Computed on demand, not stored: the funnel and one timeline take well under a second on this hub (the
    measured figures at scale are in docs/journey.md)."""
    started = time.perf_counter()
    with scene.hub.connect() as conn:
        facts = marts.funnel_facts(conn)
        funnel.funnel(facts.touches, facts.deals)
    _timeline(scene, "management")
    assert time.perf_counter() - started < 2.0


def test_journey_marts_timeline_shows_documents_by_class(scene: Scene) -> None:
    """A contract attached to the followed deal, recorded by the hub's document writers (as the transfers do)."""
    sha = "ab" * 32
    with scene.hub.begin() as conn:
        documents.record_document(conn, (sha, 2048, "pdf"), "contract", "合同扫描件.pdf")
        documents.add_copy(conn, sha, documents.NewCopy("crm", "file-1", "合同扫描件.pdf", origin="source"))
        documents.add_link(conn, sha, documents.NewLink("crm", "deal", scene.deal_id, company_id=scene.company_id))
    assert [e.title for e in _timeline(scene, "management").events if e.kind == "document"] == ["附件：合同"]
    assert [e.kind for e in _timeline(scene, "project_manager").events].count("document") == 1  # listed
    assert _timeline(scene, "employee").hidden["document"] == 1  # 普通员工 sees no contract

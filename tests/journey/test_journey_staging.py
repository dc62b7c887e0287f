"""journey_sync's vendor steps over the simulators into a hub: every source staged as the seed made it,
watermarks set and a rerun staging nothing new; an edited survey answer restaged; a bad one quarantined
with a Chinese message and released as fixed once corrected; settled review periods never read again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.journey.journey_world import SEED, Journey

from bridge.journey import sources
from bridge.report import load as report_load
from bridge.report import marts as report_marts
from sandbox.crm.journey_seed import CAMPAIGNS, EVENTS, campaign_guid, event_object_id

ALL_STEPS = (sources.stage_campaigns, sources.stage_events, sources.stage_contact_sources,
             sources.stage_feedback, sources.stage_reviews)
STREAMS = {"crm.campaign", "crm.marketing_event", "crm.event_participation", "crm.contact_source",
           "crm.feedback_submission", "oa.performance_review"}


def run_all(journey: Journey) -> dict[str, Any]:
    counts: dict[str, int] = {}
    marks: dict[str, int] = {}
    for step in ALL_STEPS:
        tally = journey.step(step)
        for name, n in tally["counts"].items():
            counts[name] = counts.get(name, 0) + n
        marks.update(tally["watermarks"])
    return {"counts": counts, "watermarks": marks}


def sim_objects(journey: Journey, object_type: str) -> list[dict[str, Any]]:
    answer = journey.sims.crm.admin("GET", f"/_sim/objects/{object_type}?limit=10000")
    assert isinstance(answer, dict)
    return list(answer["results"])


def test_every_source_is_staged_as_seeded_and_a_rerun_stages_nothing(journey: Journey) -> None:
    first = run_all(journey)
    campaigns = journey.snapshots("campaign")
    assert set(campaigns) == {campaign_guid(SEED, c.index) for c in CAMPAIGNS}
    launch = campaigns[campaign_guid(SEED, 0)]
    assert (launch["name"], launch["budget"], launch["currency"]) == (CAMPAIGNS[0].name, "180000.00", "CNY")
    assert launch["status"] in {"completed", "in_progress"}
    events = journey.snapshots("marketing_event")
    assert set(events) == {str(event_object_id(e.index)) for e in EVENTS}
    assert {e.index: events[str(event_object_id(e.index))]["campaign_id"] for e in EVENTS} == {
        e.index: campaign_guid(SEED, e.campaign) for e in EVENTS
    }
    contacts = journey.snapshots("contact")
    sourced = journey.snapshots("contact_source")
    assert set(sourced) == set(contacts)
    assert all(s["company_id"] == contacts[cid]["company_id"] for cid, s in sourced.items())
    parts = journey.snapshots("event_participation")
    assert parts
    assert all(p["state"] in {"registered", "attended", "cancelled", "no_show"} for p in parts.values())
    answers = journey.snapshots("feedback_submission")
    assert set(answers) == {o["id"] for o in sim_objects(journey, "feedback_submissions")}
    for a in answers.values():
        assert a["company_id"] == contacts[a["contact_id"]]["company_id"]
        assert a["origin"] == "crm"
        if a["survey_type"] == "NPS":
            assert a["nps_group"] == ("promoter" if a["value"] >= 9 else "passive" if a["value"] >= 7 else "detractor")
    reviews = journey.snapshots("performance_review")
    assert reviews
    assert all(r["rating"] in "SABCD" and r["stage"] == "communication_and_open_result"
                           for r in reviews.values())
    assert set(first["watermarks"]) == STREAMS
    assert first["counts"]["staged"] == sum(len(journey.snapshots(e)) for e in (
        "campaign", "marketing_event", "event_participation", "contact_source", "feedback_submission",
        "performance_review"))
    assert journey.quarantine() == []
    with journey.hub.connect() as conn:  # the 08:00 report files these streams under the journey, not a sync
        streams = set(report_load.load_watermarks(conn)["stream"])
    assert streams >= STREAMS
    assert {report_marts.DIRECTION_LABELS[report_marts._direction_of_stream(s)] for s in STREAMS} == {"客户旅程数据接入"}

    again = run_all(journey)
    assert again["counts"].get("staged", 0) == 0
    assert again["counts"]["unchanged"] > 0
    assert all(journey.watermark(s) == first["watermarks"][s] for s in STREAMS)
    assert "periods_read" not in again["counts"]  # every ended period settled: none read again
    stage_entries = journey.audit("stage")
    assert len(stage_entries) == len({(e["entity"], e["seq"]) for e in stage_entries}) > 0


def _answer(journey: Journey, kind: str) -> dict[str, Any]:
    return next(o for o in sim_objects(journey, "feedback_submissions")
                if o["properties"]["hs_survey_type"] == kind)


def test_an_edited_answer_is_restaged_and_a_bad_one_quarantined_until_fixed(journey: Journey) -> None:
    journey.step(sources.stage_feedback)
    csat = _answer(journey, "CSAT")
    new_value = 1 if csat["properties"]["hs_value"] != "1" else 2
    journey.crm_act("/_sim/act/update", {"object_type": "feedback_submissions", "id": int(csat["id"]),
                                          "properties": {"hs_value": str(new_value)}})
    edited = journey.step(sources.stage_feedback)
    assert edited["counts"]["staged"] == 1
    assert journey.snapshots("feedback_submission")[csat["id"]]["value"] == new_value

    journey.crm_act("/_sim/act/update", {"object_type": "feedback_submissions", "id": int(csat["id"]),
                                          "properties": {"hs_value": "9"}})
    bad = journey.step(sources.stage_feedback)
    assert bad["counts"]["quarantined_invalid_format"] == 1
    assert bad["counts"].get("staged", 0) == 0
    [entry] = journey.quarantine("feedback_submission")
    assert (entry.source_id, entry.reason_code, entry.field) == (csat["id"], "invalid_format", "value")
    assert "评分 9 不在CSAT问卷的评分范围 1–5 内" in entry.message
    assert "客服部" in entry.message
    assert journey.snapshots("feedback_submission")[csat["id"]]["value"] == new_value  # the good state kept

    journey.crm_act("/_sim/act/update", {"object_type": "feedback_submissions", "id": int(csat["id"]),
                                          "properties": {"hs_value": "4"}})
    fixed = journey.step(sources.stage_feedback)
    assert fixed["counts"]["fixed"] == 1
    assert fixed["counts"]["staged"] == 1
    assert journey.quarantine("feedback_submission") == []
    assert journey.snapshots("feedback_submission")[csat["id"]]["value"] == 4


def test_an_unknown_survey_type_is_quarantined_as_unmapped(journey: Journey) -> None:
    ces = _answer(journey, "CES")
    journey.crm_act("/_sim/act/update", {"object_type": "feedback_submissions", "id": int(ces["id"]),
                                          "properties": {"hs_survey_type": "PULSE"}})
    tally = journey.step(sources.stage_feedback)
    assert tally["counts"]["quarantined_unmapped_value"] == 1
    [entry] = journey.quarantine("feedback_submission")
    assert entry.field == "survey_type"
    assert "PULSE" in entry.message
    assert "问卷类型" in entry.message
    assert ces["id"] not in journey.snapshots("feedback_submission")


def test_open_review_periods_are_read_every_run_and_settled_ones_once(journey: Journey) -> None:
    journey.cfg = journey.cfg.model_copy(update={"performance_settle_days": 100_000})
    first = journey.step(sources.stage_reviews)
    assert first["counts"]["periods_read"] >= 2
    assert "oa.performance_review" not in first["watermarks"]
    again = journey.step(sources.stage_reviews)
    assert again["counts"]["periods_read"] == first["counts"]["periods_read"]
    assert again["counts"].get("staged", 0) == 0
    assert again["counts"]["unchanged"] == first["counts"]["staged"]
    journey.cfg = journey.cfg.model_copy(update={"performance_settle_days": 0})
    settled = journey.step(sources.stage_reviews)
    assert settled["watermarks"]["oa.performance_review"] == journey.watermark("oa.performance_review")
    last = journey.step(sources.stage_reviews)
    assert "periods_read" not in last["counts"]
    assert last["api_calls"]["oa"] == {
        "GET /open-apis/performance/v1/semesters": 1}
    score = next(iter(journey.snapshots("performance_review").values()))["score"]
    assert isinstance(score, int)
    assert Decimal(score) in {Decimal(s) for s in ("95", "85", "75", "62", "45")}

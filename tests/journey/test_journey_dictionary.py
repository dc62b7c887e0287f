"""The journey entities in the dictionary: ``read_by: hook`` entities load and map by field name (labels
accepted for enums), the loader refuses a vendor source on them, sensitive fields are masked in full by the
policy's whole-record view, and the data-health suites generated for them run over what journey_sync staged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.journey.journey_world import Journey

from bridge import permissions
from bridge.dictionary import Dictionary, DictionaryError, build, load
from bridge.journey import ENTITIES, sources
from bridge.quality import checks as quality_checks
from bridge.quality.run import HealthOutput, run_checks

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "dictionary.yaml"


def test_journey_entities_are_read_by_hook_with_owners_and_sensitive_ratings() -> None:
    d = load()
    assert all(d.entity(e).read_by == "hook" for e in ENTITIES)
    assert {e: d.departments[d.entity(e).fields[d.entity(e).id_field].owner].label for e in ENTITIES} == {
        "campaign": "市场部", "marketing_event": "市场部", "event_participation": "市场部",
        "contact_source": "市场部", "feedback_submission": "客服部", "performance_review": "人力资源部"}
    assert d.sensitive_fields("performance_review") == ("rating", "rating_name", "score")
    assert all(d.sensitive_fields(e) == () for e in ENTITIES if e != "performance_review")
    assert [v.label for v in d.value_maps["nps_group"].values] == ["推荐者", "被动者", "贬损者"]


def test_named_values_map_with_labels_and_report_problems_in_chinese() -> None:
    d = load()
    good = d.from_values("performance_review", {
        "review_id": "p1:u1", "origin": "import", "person_id": "u1", "period_id": "p1", "period_name": "2026年上半年",
        "period_start": "2026-01-01", "period_end": "2026/6/30", "rating": "优秀", "score": "85", "stage": "表格导入",
        "submitted_at": 1782835199999})
    assert good.problems == []
    assert (good.record["rating"], good.record["score"], good.record["stage"]) == ("A", 85, "imported")
    assert good.record["period_end"] == "2026-06-30"
    bad = d.from_values("feedback_submission", {"response_id": "r1", "origin": "crm", "survey_type": "净推荐", "value": "十"})
    codes = {(p.code, p.field) for p in bad.problems}
    assert codes == {("unmapped_value", "survey_type"), ("invalid_format", "value"),
                     ("missing_required", "submitted_at"), ("missing_required", "modified_at")}
    assert all(p.message for p in bad.problems)
    with pytest.raises(ValueError, match="use from_crm"):
        d.from_values("deal", {})


@pytest.mark.parametrize(("old", "new", "words"), [
    ("      name:        {label: 营销活动名称, type: string, required: true,",
     "      name:        {label: 营销活动名称, type: string, crm: hs_name, required: true,",
     ["实体 campaign", "字段 name", "read_by: hook", "不能有 crm"]),
    ("    read_by: hook\n    id_field: campaign_id", "    read_by: api\n    id_field: campaign_id",
     ["实体 campaign", "read_by 只能是 hook", "'api'"]),
    ("      rating:           {label: 绩效等级, type: enum, value_map: performance_rating, required: true, sensitive: true,",
     "      rating:           {label: 绩效等级, type: enum, value_map: performance_rating, required: true, sensitive: 1,",
     ["字段 rating", "sensitive", "true 或 false"]),
], ids=["vendor-source", "unknown-reader", "sensitive-not-a-flag"])
def test_the_loader_refuses_a_misused_journey_entity(tmp_path: Path, old: str, new: str, words: list[str]) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "dictionary.yaml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(DictionaryError) as info:
        build(broken)
    message = str(info.value)
    assert all(w in message for w in words), message


def test_sensitive_fields_are_masked_in_full_when_a_whole_record_is_shown() -> None:
    d = load()
    policy = permissions.load(dictionary=d)
    record = {"review_id": "p1:u1", "person_id": "u1", "rating": "A", "rating_name": "优秀", "score": 85}
    shown = policy.mask_all("performance_review", record)
    assert shown == {"review_id": "p1:u1", "person_id": "u1", "rating": "***", "rating_name": "***", "score": "***"}
    assert policy.mask_all("feedback_submission", {"value": 9, "survey_type": "NPS"}) == {"value": 9, "survey_type": "NPS"}


def test_data_health_suites_cover_the_journey_entities_over_what_was_staged(journey: Journey) -> None:
    for step in (sources.stage_campaigns, sources.stage_events, sources.stage_contact_sources,
                 sources.stage_feedback, sources.stage_reviews):
        journey.step(step)
    generated = {c.check_id for c in quality_checks.dictionary_checks(journey.d, ENTITIES)}
    assert {"feedback_submission.survey_type.value_map", "feedback_submission.value.required",
            "performance_review.rating.value_map", "event_participation.state.value_map",
            "campaign.start_date.format", "contact_source.source.value_map"} <= generated
    run = run_checks(journey.hub, day=datetime.now(UTC).date(), run_id="journey", dictionary=journey.d,
                     output=HealthOutput(data_dir=journey.import_dir.parent, build_docs=False, save=False))
    mine = [o for o in run.outcomes if o.check.entity in ENTITIES]
    assert {o.check.check_id for o in mine} == generated
    assert all(o.error is None and o.success for o in mine), [o.check.check_id for o in mine if not o.success]
    evaluated = {o.check.check_id: o.evaluated for o in mine}
    assert evaluated["feedback_submission.survey_type.value_map"] == len(journey.snapshots("feedback_submission"))
    assert evaluated["performance_review.rating.required"] == len(journey.snapshots("performance_review")) > 0


def test_a_dictionary_without_the_journey_still_loads(tmp_path: Path) -> None:
    """The journey entities are additive: the shipped file minus its journey entities is a valid dictionary."""
    text = SHIPPED.read_text(encoding="utf-8")
    start = text.index("  # ------------------------------------------------------------------ customer journey")
    end = text.index("# OA approval definitions.")
    trimmed = tmp_path / "dictionary.yaml"
    trimmed.write_text(text[:start] + text[end:], encoding="utf-8")
    d: Dictionary = build(trimmed)
    assert not set(ENTITIES) & set(d.entities)

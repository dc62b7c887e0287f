"""Report sections 客户旅程 and 绩效与满意度 built by the real report build over a hub the real writers filled
(tests/journey/marts_scene.py): figures against independent counts of the staged snapshots, the HR/management
section only for an audience that may see ratings, and never a person's row in the mail."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import pytest
from sqlalchemy import select
from tests.journey.journey_world import Journey, journey, journey_sims  # noqa: F401
from tests.journey.marts_scene import Scene, _ctx, build_scene
from tests.report.conftest import REPORT_DAY, copy_hub

from bridge import permissions
from bridge.hub.schema import deal_stage_history
from bridge.journey.marts import business_date
from bridge.report.build import BuiltReport, ReportRequest, build_report
from bridge.sync import crm_to_oa
from bridge.sync.common import DebounceSettings


@pytest.fixture
def scene(journey: Journey) -> Scene:  # noqa: F811
    return build_scene(journey)


def _build(scene: Scene, policy: permissions.Policy, out: Path) -> BuiltReport:
    today = datetime.now(UTC).date()
    return build_report(scene.hub, scene.journey.d, policy,
                        ReportRequest(report_day=today, owners={}, recipients=["boss@example.com"], out_root=out))


def test_report_journey_section_figures(scene: Scene, tmp_path: Path) -> None:
    built = _build(scene, permissions.load(), tmp_path)
    snaps = scene.journey.snapshots
    new = built.marts.table("journey_new_customers").frame
    ytd = built.periods.ytd
    created = [business_date(c.get("created_at")) for c in snaps("company").values()]
    assert int(new["ytd"].sum()) == sum(1 for d in created if d is not None and ytd.start <= d <= ytd.end)
    assert built.figures["journey_new_customers_mtd"] == int(new["mtd"].sum())

    funnel = built.marts.table("journey_funnel").frame
    names = {cid: c["name"] for cid, c in snaps("campaign").items()}
    event_campaign = {e: p.get("campaign_id") for e, p in snaps("marketing_event").items()}
    contacts: dict[str, set[str]] = defaultdict(set)
    for p in snaps("event_participation").values():
        if event_campaign.get(p["event_id"]):
            contacts[names[event_campaign[p["event_id"]]]].add(p["contact_id"])
    for cid, p in snaps("contact_source").items():
        if p.get("company_id") and p.get("first_touch_campaign_id"):
            contacts[names[p["first_touch_campaign_id"]]].add(cid)
    shown = dict(zip(funnel["campaign"], funnel["contacts"], strict=True))
    assert {k: v for k, v in shown.items() if k in names.values()} == {k: len(v) for k, v in contacts.items()}
    assert int(funnel["won"].sum()) >= 1  # the scene's won deal

    with scene.hub.connect() as conn:
        history = conn.execute(select(deal_stage_history.c.deal_id, deal_stage_history.c.stage,
                                      deal_stage_history.c.entered_ms).order_by(deal_stage_history.c.deal_id,
                                                                                deal_stage_history.c.entered_ms)).all()
    stays: dict[str, list[float]] = defaultdict(list)
    for before, after in itertools.pairwise(history):
        if before.deal_id == after.deal_id and before.stage not in ("won", "delivered", "lost"):
            stays[before.stage].append((after.entered_ms - before.entered_ms) / 86_400_000)
    slowest = max(stays, key=lambda s: median(stays[s]))
    labels = {v.canonical: v.label for v in scene.journey.d.value_maps["deal_stage"].values}
    assert built.figures["journey_slowest_stage"] == labels[slowest]
    html = built.paths["html"].read_text(encoding="utf-8")
    assert "客户旅程" in html
    assert "营销活动漏斗" in html


def test_report_people_section_only_for_an_audience_that_may_see_ratings(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE", "2")  # the small world has 4 linked people
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_RESPONSES", "1")
    policy = permissions.load()
    assert policy.audience("report", "daily_report") == "management"
    built = _build(scene, policy, tmp_path / "management")
    keys = [s.key for s in built.marts.sections]
    assert keys[-2:] == ["journey", "people"]
    people = next(s for s in built.marts.sections if s.key == "people")
    correlation = people.tables[1].frame
    assert set(correlation["measure"]) == {"绩效 × CSAT", "绩效 × NPS"}
    assert people.tables[0].frame["people"].min() >= 2
    html = built.paths["html"].read_text(encoding="utf-8")
    person_ids = {r["person_id"] for r in scene.journey.snapshots("performance_review").values()}
    owners = {c["owner_id"] for c in scene.journey.snapshots("company").values()}
    section_html = html[html.index("绩效与满意度"):]
    assert not any(pid in section_html for pid in person_ids | owners)  # groups only, nobody's row

    src = permissions.default_path().read_text(encoding="utf-8")
    src = src.replace("    daily_report: management ", "    daily_report: sales_manager ")
    path = tmp_path / "permissions.yaml"
    path.write_text(src, encoding="utf-8")
    narrower = permissions.load(path)
    assert narrower.audience("report", "daily_report") == "sales_manager"
    built = _build(scene, narrower, tmp_path / "sales")
    assert [s.key for s in built.marts.sections][-1] == "journey"  # no 绩效与满意度 for 销售主管
    assert "绩效与满意度" not in built.paths["html"].read_text(encoding="utf-8")


def test_report_journey_stage_changes_recorded_by_the_build(scene: Scene, tmp_path: Path) -> None:
    """The build records stage changes first: a deal moved after the scene shows up in the history."""
    deal_id = next(d for d in scene.moved if d != scene.deal_id)
    scene.journey.crm_act("/_sim/act/update", {"object_type": "deals", "id": int(deal_id),
                                               "properties": {"dealstage": "closedlost"}})
    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), initial_backfill_seconds=0,
                                   debounce=DebounceSettings(0, 0))
    crm_to_oa.extract_stage(scene.journey.crm, scene.hub, _ctx("crm_to_oa_sync", "extract_lost"), cfg,
                            datetime.now(UTC), dictionary=scene.journey.d)
    _build(scene, permissions.load(), tmp_path)
    with scene.hub.connect() as conn:
        stages = [r.stage for r in conn.execute(select(deal_stage_history.c.stage)
                                                .where(deal_stage_history.c.deal_id == deal_id)
                                                .order_by(deal_stage_history.c.entered_ms))]
    assert stages[-1] == "lost"


def test_report_journey_bad_settings_leave_a_note(report_hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A journey_views section that cannot be used leaves both sections out with a note; the report goes out."""
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__CORRELATION", "kendall")
    hub = copy_hub(report_hub, tmp_path)
    built = build_report(hub.engine, hub.dictionary, permissions.load(),
                         ReportRequest(report_day=REPORT_DAY, owners={}, recipients=["boss@example.com"],
                                       out_root=tmp_path / "out"))
    journey_sec = built.marts.sections[-1]
    assert journey_sec.key == "journey"
    assert journey_sec.tables == []
    assert "journey_views.correlation" in journey_sec.notes[0]
    assert "客户旅程配置有误" in built.paths["html"].read_text(encoding="utf-8")
    hub.engine.dispose()

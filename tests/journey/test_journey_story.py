"""The demo's journey story (sandbox/scenario/journey_sync.py ``after`` → sandbox/scenario/journey.py ``story``)
over the journey test world, the hub filled by the real writers (tests/journey/marts_scene.py): one customer
from a campaign touch to a won deal and a satisfaction answer, then people × satisfaction as 人力资源部 sees it
(people, audited) beside what 普通员工 sees (groups only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.journey.journey_world import Journey
from tests.journey.marts_scene import build_scene

from bridge.hub.schema import audit_log
from sandbox.scenario import journey_sync


def test_the_demo_tells_one_customers_journey_and_the_people_table_per_role(
        journey: Journey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE", "2")  # the small world has 4 linked people
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_RESPONSES", "1")
    build_scene(journey)
    assert journey.hub.url.database == str(tmp_path / "hub.sqlite")  # the demo's hub: demo_dir / hub.sqlite
    lines = journey_sync.after(journey.sims, tmp_path)

    companies = journey.snapshots("company")
    touched = {p["company_id"] for p in journey.snapshots("contact_source").values()
               if p.get("company_id") and p.get("first_touch_campaign_id")}
    won = {p["company_id"] for p in journey.snapshots("deal").values() if p.get("stage") == "won"}
    answered = {p["company_id"] for p in journey.snapshots("feedback_submission").values() if p.get("company_id")}
    eligible = {companies[c]["name"] for c in touched & won & answered}
    assert eligible, "the scene has a customer with a campaign touch, a win and an answer"
    start = next(i for i, line in enumerate(lines) if line.startswith("客户旅程（"))
    assert lines[start].split("（")[1].split("，")[0] in eligible
    story = lines[start + 1:next(i for i, line in enumerate(lines) if line.startswith("绩效与满意度"))]
    assert any("营销活动" in line for line in story)  # the campaign the first touch came from
    assert any("赢单签约" in line for line in story)
    assert any("客户满意度" in line or "净推荐值" in line for line in story)

    hr_at = next(i for i, line in enumerate(lines) if line.startswith("绩效与满意度（人力资源部"))
    employee_at = next(i for i, line in enumerate(lines) if line.startswith("绩效与满意度（普通员工"))
    hr_rows, groups = lines[hr_at + 1:employee_at], lines[employee_at + 1:]
    assert hr_rows, "人力资源部 sees each person's row"
    assert all("绩效 " in row for row in hr_rows)
    assert "逐人 0 行" in lines[employee_at]
    assert groups, "the employee sees the groups of at least 2 people"
    names = {row.strip().split("：")[0] for row in hr_rows}
    assert not any(name in row for name in names for row in groups)  # nobody's row for the employee
    with journey.hub.connect() as conn:
        audited = conn.execute(select(func.count()).select_from(audit_log)
                               .where(audit_log.c.operation == "view_personal_data")).scalar_one()
    assert audited == len(hr_rows)  # every row shown to 人力资源部 is audited

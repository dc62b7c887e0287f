"""The demo scene of the journey sources (sandbox/scenario/journey.py) over the simulators and the test hub:
the files it drops are read, their good rows staged, the two bad rows quarantined and said so."""

from __future__ import annotations

from pathlib import Path

from tests.journey.journey_world import Journey

from sandbox.scenario import journey as journey_scene


def test_the_demo_scene_stages_the_sources_and_imports_its_two_files(journey: Journey, tmp_path: Path) -> None:
    assert journey.hub.url.database == str(tmp_path / "hub.sqlite")  # the scene's hub: demo_dir / hub.sqlite
    lines = journey_scene.scene(journey.sims, tmp_path)
    assert lines[0].startswith("客户旅程数据接入：暂存 营销活动 5，市场活动 4，")
    quarantined = [line for line in lines if line.startswith("隔离")]
    assert len(quarantined) == 2
    assert any("第 5 行：员工「u_left_company」在 OA 中找不到" in line for line in quarantined)
    assert any("第 4 行：客户「并不存在的客户有限公司」在 CRM 中找不到" in line for line in quarantined)
    assert lines[-1].startswith("导入文件：已读取 2 个")
    imported = [r for r in journey.snapshots("performance_review").values() if r["origin"] == "import"]
    assert sorted(r["rating"] for r in imported) == ["A", "B", "C"]
    answers = [r for r in journey.snapshots("feedback_submission").values() if r["origin"] == "import"]
    assert sorted((r["survey_type"], r["value"]) for r in answers) == [("CSAT", 4), ("NPS", 9)]

"""Editions of the 08:00 report, one per audience (issue 20): built by the DAG's own task functions over a hub
the real writers filled (tests/journey/marts_scene.py), mailed through a real local SMTP server.

``report.recipients`` stays the main (管理层) edition; ``report.editions`` adds one per audience role, each read
through its role's permission policy, with its own files (suffix = the role) and its own mail list."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from tests.journey.journey_world import Journey, journey, journey_sims  # noqa: F401
from tests.journey.marts_scene import Scene, build_scene
from tests.report.test_report_delivery import smtp  # noqa: F401  (a real local SMTP server, its outbox)

from bridge import permissions, settings
from bridge.report import archive, tasks
from sandbox import mailsink


@pytest.fixture
def scene(journey: Journey) -> Scene:  # noqa: F811
    return build_scene(journey)


def _configure(scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HUB_URL", scene.hub_url)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BRIDGE__REPORT__RECIPIENTS", "[boss@example.com, cfo@example.com]")
    monkeypatch.setenv("BRIDGE__REPORT__EDITIONS", "[{audience: hr, recipients: [hr@example.com]}]")
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_GROUP_SIZE", "2")  # the small world has 4 linked people
    monkeypatch.setenv("BRIDGE__JOURNEY_VIEWS__MIN_RESPONSES", "1")


def _build_and_send(day: str) -> tuple[dict[str, Any], dict[str, Any]]:
    context = {"params": {"day": day}, "run_id": "editions"}
    built = tasks.run_build(context, owners_fetch=lambda: [])
    return built, tasks.run_send(built, context)


def _html(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def test_two_editions_two_mails_to_two_lists(
        scene: Scene, smtp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _configure(scene, tmp_path, monkeypatch)
    day = datetime.now(UTC).date()
    built, sent = _build_and_send(day.isoformat())
    assert sent["sent"] is True
    assert [e["sent"] for e in sent["editions"]] == [True]
    mails = {m["X-Envelope-To"]: m for m in mailsink.read_mailbox(smtp)}
    assert set(mails) == {"boss@example.com, cfo@example.com", "hr@example.com"}
    main, hr = mails["boss@example.com, cfo@example.com"], mails["hr@example.com"]
    assert main["Subject"] == f"经营日报 {day.isoformat()}"
    assert hr["Subject"] == f"经营日报 {day.isoformat()}（人力资源部版）"

    main_html, hr_html = _html(main), _html(hr)
    for html in (main_html, hr_html):
        assert "客户旅程" in html
        assert "绩效与满意度" in html  # both roles may see every person's rating
    people = {r["person_id"] for r in scene.journey.snapshots("performance_review").values()}
    owners = {c["owner_id"] for c in scene.journey.snapshots("company").values()}
    assert not any(p in hr_html[hr_html.index("绩效与满意度"):] for p in people | owners)  # groups only
    won = built["figures"]["open_pipeline_amount"]
    assert won, "the scene has open deals with amounts"
    assert f"¥{won:,.2f}" in main_html  # 管理层 sees amounts, as before editions
    assert f"¥{won:,.2f}" not in hr_html  # 人力资源部 sees no money (its own policy)

    [edition] = built["editions"]
    assert Path(edition["html"]).name == f"daily_report_{day.isoformat()}_hr.html"
    assert Path(built["html"]).name == f"daily_report_{day.isoformat()}.html"
    with scene.hub.connect() as conn:
        record = archive.get_report(conn, day)
        [stored] = archive.editions(record)
    assert record is not None
    assert record.sent
    assert record.recipients == ["boss@example.com", "cfo@example.com"]
    assert (stored.audience, stored.recipients, stored.sent) == ("hr", ["hr@example.com"], True)
    assert stored.html_path.read_text(encoding="utf-8").count("绩效与满意度") >= 1

    _, again = _build_and_send(day.isoformat())  # a rerun rebuilds, mails nobody again
    assert again["sent"] is False
    assert [e["sent"] for e in again["editions"]] == [False]
    assert len(mailsink.read_mailbox(smtp)) == 2
    with scene.hub.connect() as conn:
        assert [e.sent for e in archive.editions(archive.get_report(conn, day))] == [True]


def test_an_edition_for_a_role_that_may_not_see_ratings_has_no_people_section(
        scene: Scene, smtp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _configure(scene, tmp_path, monkeypatch)
    monkeypatch.setenv("BRIDGE__REPORT__EDITIONS", "[{audience: sales_manager, recipients: [sales@example.com]}]")
    built, _ = _build_and_send(datetime.now(UTC).date().isoformat())
    mails = {m["X-Envelope-To"]: _html(m) for m in mailsink.read_mailbox(smtp)}
    assert "客户旅程" in mails["sales@example.com"]
    assert "绩效与满意度" not in mails["sales@example.com"]
    assert "绩效与满意度" in mails["boss@example.com, cfo@example.com"]
    assert Path(built["editions"][0]["html"]).name.endswith("_sales_manager.html")


def test_report_recipients_alone_is_the_main_edition_and_bad_editions_are_refused() -> None:
    cfg = tasks.report_settings({"report": {"recipients": "a@example.com; b@example.com"}})
    assert cfg["recipients"] == ["a@example.com", "b@example.com"]
    policy = permissions.load()
    main = policy.audience("report", "daily_report")
    assert tasks.resolve_editions(cfg["editions"], main) == [
        {"audience": main, "recipients": ["a@example.com", "b@example.com"]}]
    both = tasks.report_settings({"report": {"recipients": ["a@example.com"], "editions": [
        {"audience": "hr", "recipients": ["hr@example.com"]},
        {"audience": main, "recipients": ["c@example.com", "a@example.com"]}]}})
    assert tasks.resolve_editions(both["editions"], main) == [
        {"audience": main, "recipients": ["a@example.com", "c@example.com"]},
        {"audience": "hr", "recipients": ["hr@example.com"]}]
    for bad, message in (({"editions": {"audience": "hr"}}, "report.editions 必须是列表"),
                         ({"editions": [{"recipients": ["x@example.com"]}]}, "report.editions[0] 须写明 audience"),
                         ({"editions": [{"audience": "hr", "recipients": ["not-a-mail"]}]},
                          "report.editions[0].recipients 必须是邮箱列表"),
                         ({"editions": [{"audience": "hr", "recipients": []}, {"audience": "hr"}]},
                          "受众 hr 重复")):
        with pytest.raises(settings.SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
            tasks.report_settings({"report": bad})


def test_the_report_page_lists_each_edition_only_to_roles_that_may_see_its_audience(
        scene: Scene, smtp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from fastapi.testclient import TestClient
    from tests.ui.conftest import CSRF_SECRET, FakeAuth, mounted

    from bridge.ui.app import UiConfig

    _configure(scene, tmp_path, monkeypatch)
    day = datetime.now(UTC).date().isoformat()
    _build_and_send(day)
    auth = FakeAuth()
    config = UiConfig(authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=scene.hub_url, data_dir=tmp_path / "data")
    policy = permissions.load()
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as pages:
        for user in ("hr", "management", "employee", "sales_manager", "marketing"):
            auth.login(user, may_release=False)
            role = user
            html = pages.get("/bridge/reports").text
            listed = 'data-audience="hr"' in html
            opened = pages.get(f"/bridge/reports/{day}/editions/hr/html")
            assert listed == policy.covers(role, "hr"), (user, listed)
            assert opened.status_code == (200 if policy.covers(role, "hr") else 403), user
            if listed:
                assert "人力资源部版" in html
                assert "绩效与满意度" in opened.text
        auth.login("hr", may_release=False)
        assert pages.get(f"/bridge/reports/{day}/html").status_code == 403  # the 管理层 edition stays closed to HR
        assert pages.get(f"/bridge/reports/{day}/editions/hr/xlsx").status_code == 200
        assert pages.get(f"/bridge/reports/{day}/editions/finance/html").status_code == 404
    assert policy.covers("hr", "hr")
    assert not policy.covers("employee", "hr")

"""include/settings.yaml: BRIDGE__SECTION__KEY overrides (pydantic-settings) and the typed model of the engines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bridge import settings
from bridge.settings_model import CrmToOaSection, DebounceSection, OaSection, OaToCrmSection
from bridge.sync import common

SHIPPED = settings.PROJECT_ROOT / "include" / "settings.yaml"


def test_shipped_settings_validate_as_the_typed_model() -> None:
    typed = settings.load_typed(SHIPPED, {})
    assert (typed.debounce.quiet_seconds, typed.debounce.max_delay_seconds) == (60, 150)
    assert typed.crm_to_oa.initiation_stages == ("contract", "won")
    assert typed.crm_to_oa.initial_backfill_hours == 24
    assert typed.oa_to_crm.status_query_page_size == 200
    assert typed.oa.codes()["project_initiation"].endswith("1001")
    assert typed.audit.principal == "bridge-service"
    with pytest.raises(Exception, match="frozen"):
        typed.debounce.quiet_seconds = 1


def test_environment_overrides_are_parsed_as_yaml_at_any_depth() -> None:
    env = {
        "BRIDGE__DEBOUNCE__QUIET_SECONDS": "0",
        "bridge__report__recipients": "[boss@example.com, cfo@example.com]",
        "BRIDGE__DATA_HEALTH__FRESHNESS_MAX_MINUTES__CRM_TO_OA": "5",
        "BRIDGE__CALENDAR__EXTRA_DAYS_OFF": "[2026-12-30]",
        "BRIDGE__OA__APPROVAL_CODES__VISIT_PLAN": '"0042"',
        "PATH": "/usr/bin",
    }
    loaded = settings.load(SHIPPED, env)
    assert loaded["debounce"] == {"quiet_seconds": 0, "max_delay_seconds": 150}
    assert loaded["report"]["recipients"] == ["boss@example.com", "cfo@example.com"]
    assert loaded["data_health"]["freshness_max_minutes"] == {"crm_to_oa": 5, "oa_to_crm": 60}
    assert loaded["calendar"]["extra_days_off"] == [dt.date(2026, 12, 30)]
    assert loaded["oa"]["approval_codes"]["visit_plan"] == "0042"
    assert loaded["oa"]["approval_codes"]["expense_claim"].endswith("1002"), "siblings kept"
    typed = settings.load_typed(SHIPPED, env)
    assert typed.debounce.quiet_seconds == 0
    assert typed.oa.codes()["visit_plan"] == "0042"
    assert settings.overrides({"PATH": "/usr/bin"}) == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BRIDGE__DEBOUNCE": "1"}, "环境变量 BRIDGE__DEBOUNCE 格式应为 BRIDGE__<SECTION>__<KEY>"),
        ({"BRIDGE__OA__APPROVAL_CODES": "[a"}, "环境变量 BRIDGE__OA__APPROVAL_CODES 的值无法解析"),
        (
            {"BRIDGE__DEBOUNCE__QUIET_SECONDS__X": "1"},
            "环境变量 BRIDGE__DEBOUNCE__QUIET_SECONDS__X: quiet_seconds 不是一个配置段",
        ),
    ],
)
def test_unusable_overrides_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(SHIPPED, env)
    assert str(caught.value).startswith(message)


def test_typed_settings_refuse_wrong_shapes_naming_the_key(tmp_path: Path) -> None:
    env = {
        "BRIDGE__DEBOUNCE__QUIET_SECONDS": "soon",
        "BRIDGE__DEBOUNCE__QUIETSECONDS": "1",
        "BRIDGE__OA_TO_CRM__STATUS_QUERY_PAGE_SIZE": "500",
        "BRIDGE__CRM_TO_OA__PAGE_SIZE": "0",
    }
    with pytest.raises(settings.SettingsError) as caught:
        settings.load_typed(SHIPPED, env)
    message = str(caught.value)
    assert "debounce.quiet_seconds must be a number, not 'soon'" in message
    assert "debounce.quietseconds is not a known setting" in message
    assert "oa_to_crm.status_query_page_size must be ≤ 200, not 500" in message
    assert "crm_to_oa.page_size must be ≥ 1, not 0" in message
    listing = tmp_path / "settings.yaml"
    listing.write_text("- a\n", encoding="utf-8")
    with pytest.raises(settings.SettingsError, match="顶层必须是映射"):
        settings.load(listing, {})


def test_an_empty_value_means_the_default_unless_none_has_a_meaning() -> None:
    assert DebounceSection.model_validate({"quiet_seconds": None}).quiet_seconds == 60
    assert CrmToOaSection.model_validate({"initial_backfill_hours": None}).initial_backfill_hours is None
    assert CrmToOaSection.model_validate({"page_size": 50.0}).page_size == 50
    with pytest.raises(ValueError, match="history is the migration's job"):
        OaToCrmSection.model_validate({"initial_backfill_hours": None})
    for wrong in (True, "60", 2.5):
        with pytest.raises(ValueError):
            CrmToOaSection.model_validate({"page_size": wrong})
    assert OaSection.model_validate({"approval_codes": {"visit_plan": 1234, "x": None}}).codes() == {
        "visit_plan": "1234"
    }


def test_one_section_is_checked_without_the_others() -> None:
    broken_elsewhere = {"oa_to_crm": {"status_query_page_size": "many"}, "debounce": {"quiet_seconds": 5}}
    assert settings.section_of(broken_elsewhere, "debounce", DebounceSection).quiet_seconds == 5
    with pytest.raises(settings.SettingsError, match=r"^include/settings\.yaml: debounce must be a section"):
        settings.section_of({"debounce": 5}, "debounce", DebounceSection)


def test_the_sync_helpers_read_the_typed_sections() -> None:
    assert common.DebounceSettings.from_settings(
        {"debounce": {"quiet_seconds": 0}}
    ) == common.DebounceSettings(0, 150)
    with pytest.raises(common.SyncSettingsError, match=r"debounce\.max_delay_seconds must be ≥ 0, not -1"):
        common.DebounceSettings.from_settings({"debounce": {"max_delay_seconds": -1}})
    assert common.approval_codes({"oa": {"approval_codes": {"a": "X", "b": ""}}}) == {"a": "X"}
    with pytest.raises(common.SyncSettingsError, match=r"oa\.approval_codes\.b is not set"):
        common.approval_code({"oa": {"approval_codes": {"a": "X"}}}, "b")

"""Pure parts of the hooks: retry waits, error mapping, redaction, timestamps, page checks, the Connections
page metadata and the provider registration."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from bridge.hooks import ui
from bridge.hooks._base import to_ms
from bridge.hooks._retry import RetryPolicy, compute_wait, is_retryable
from bridge.hooks.crm import CrmHook, HubSpotProtocol, _order_problem, _parse_ms
from bridge.hooks.errors import (
    AmbiguousWriteError,
    AuthError,
    BadRequestError,
    BadResponseError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
    redact,
)
from bridge.hooks.oa import FeishuProtocol, OaHook

POLICY = RetryPolicy()


# ---------------------------------------------------------------- retry waits


@given(
    retry_after=st.floats(min_value=0, max_value=120),
    attempt=st.integers(min_value=1, max_value=10),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_vendor_retry_after_is_never_cut_short(retry_after: float, attempt: int, seed: int) -> None:
    exc = RateLimitedError("slow down", system="crm", status=429, retry_after=retry_after)
    wait = compute_wait(exc, attempt, POLICY, random.Random(seed))
    assert wait >= retry_after
    assert wait <= max(retry_after * 1.1, POLICY.backoff_max) + 1e-9


@given(attempt=st.integers(min_value=1, max_value=30), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_exponential_jittered_and_capped(attempt: int, seed: int) -> None:
    exc = ServerError("boom", system="oa", status=503)
    wait = compute_wait(exc, attempt, POLICY, random.Random(seed))
    full = min(POLICY.backoff_max, POLICY.backoff_base * 2 ** (attempt - 1))
    assert full / 2 <= wait <= full


def test_429_without_retry_after_waits_at_least_a_second() -> None:
    exc = RateLimitedError("slow down", system="crm", status=429)
    assert compute_wait(exc, 1, POLICY, random.Random(1)) >= 1.0


def test_retry_predicate() -> None:
    retryable = [
        RateLimitedError("x", system="crm"),
        ServerError("x", system="crm"),
        TransportError("x", system="crm"),
        BadResponseError("html", system="crm", retryable=True),
    ]
    final = [
        AuthError("x", system="crm"),
        ValidationError("x", system="crm"),
        NotFoundError("x", system="crm"),
        ConflictError("x", system="oa"),
        BadResponseError("too big", system="crm"),
        AmbiguousWriteError("x", system="crm"),
        ValueError("x"),
    ]
    assert all(is_retryable(e) for e in retryable)
    assert not any(is_retryable(e) for e in final)


def test_policy_from_connection_extra() -> None:
    p = RetryPolicy.from_extra(
        {"max_attempts": "3", "max_retry_wait": 9, "backoff_base": "x", "backoff_max": -1}
    )
    assert (p.max_attempts, p.max_total_wait, p.backoff_base, p.backoff_max) == (3, 9.0, 0.5, 30.0)
    assert RetryPolicy.from_extra({"max_attempts": 0}).max_attempts == 1


# ---------------------------------------------------------------- error mapping


def crm_error(
    status: int, body: object, template: str = "/crm/v3/owners", headers: dict[str, str] | None = None
) -> object:
    return HubSpotProtocol().error_for(
        status, body, CaseInsensitiveDict(headers or {}), "GET", template, template
    )


@pytest.mark.parametrize(
    ("status", "category", "cls"),
    [
        (400, "VALIDATION_ERROR", ValidationError),
        (401, "INVALID_AUTHENTICATION", AuthError),
        (403, "MISSING_SCOPES", PermissionDeniedError),
        (404, "OBJECT_NOT_FOUND", NotFoundError),
        (409, "CONFLICT", ConflictError),
        (429, "RATE_LIMITS", RateLimitedError),
        (500, "INTERNAL_ERROR", ServerError),
        (502, None, ServerError),
        (415, "VALIDATION_ERROR", BadRequestError),
    ],
)
def test_hubspot_envelope_mapping(status: int, category: str | None, cls: type) -> None:
    body = (
        {"status": "error", "message": "m", "correlationId": "cid-1", "category": category}
        if category
        else None
    )
    err = crm_error(status, body)
    assert type(err) is cls
    assert err.status == status  # type: ignore[attr-defined]
    if category:
        assert err.category == category
        assert err.correlation_id == "cid-1"


def test_hubspot_token_endpoint_and_secondly_limit() -> None:
    err = crm_error(
        400,
        {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"},
        template="/oauth/v3/token",
    )
    assert isinstance(err, AuthError)
    assert err.code == "BAD_REFRESH_TOKEN"
    limited = crm_error(
        429, {"status": "error", "message": "m", "policyName": "SECONDLY", "category": "RATE_LIMITS"}
    )
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 1.0
    told = crm_error(429, {"status": "error", "message": "m"}, headers={"Retry-After": "7"})
    assert isinstance(told, RateLimitedError)
    assert told.retry_after == 7.0
    assert crm_error(200, [1, 2]) is not None  # 200 but not a JSON object
    assert crm_error(200, {"results": []}) is None
    assert crm_error(204, None) is None


def oa_error(status: int, body: object, headers: dict[str, str] | None = None) -> object:
    path = "/open-apis/approval/v4/instances"
    return FeishuProtocol().error_for(status, body, CaseInsensitiveDict(headers or {}), "POST", path, path)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, 99991663, AuthError),
        (400, 99991677, AuthError),
        (400, 99991661, AuthError),
        (400, 10014, AuthError),
        (429, 99991400, RateLimitedError),
        (403, 1390009, PermissionDeniedError),
        (400, 1390003, NotFoundError),
        (400, 60012, ConflictError),
        (400, 1390001, ValidationError),
        (400, 99992402, ValidationError),
        (500, 2200, ServerError),
        (400, 1395001, ServerError),
        (200, 1390001, ValidationError),
        (400, 424242, BadRequestError),
    ],
)
def test_feishu_envelope_mapping(status: int, code: int, cls: type) -> None:
    err = oa_error(status, {"code": code, "msg": "m", "error": {"log_id": "L1"}})
    assert type(err) is cls
    assert err.code == str(code)
    assert err.correlation_id == "L1"
    assert FeishuProtocol().token_rejected(err) == (code in (99991661, 99991663, 99991668, 99991677))  # type: ignore[arg-type]


def test_feishu_success_and_envelope_checks() -> None:
    assert oa_error(200, {"code": 0, "msg": "ok", "data": {}}) is None
    wrong = oa_error(200, {"results": []})
    assert isinstance(wrong, BadResponseError)
    assert not wrong.retryable
    assert isinstance(oa_error(502, None), ServerError)
    limited = oa_error(429, {"code": 99991400, "msg": "m"}, {"x-ogw-ratelimit-reset": "3"})
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 3.0


# ---------------------------------------------------------------- redaction and timestamps


@given(
    prefix=st.text(max_size=30),
    suffix=st.text(max_size=30),
    mobile=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    local=st.from_regex(r"[a-z][a-z0-9._]{0,20}", fullmatch=True),
)
@settings(max_examples=200)
def test_redact_masks_mobiles_and_emails_anywhere(prefix: str, suffix: str, mobile: str, local: str) -> None:
    text = f"{prefix} {mobile} {local}@example.com {suffix}"
    out = redact(text)
    assert mobile not in out
    assert f"{local}@example.com" not in out
    assert mobile[:3] + "****" + mobile[-4:] in out


def test_redact_keeps_ids_and_timestamps() -> None:
    text = "deal 50000000001 company 30000000096 owner 69000012 at 1795000000123 uuid 9b1f"
    assert redact(text) == text


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_hubspot_timestamps_parse_exactly(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    wire = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert _parse_ms(wire) == to_ms(moment, "t")
    assert _parse_ms(str(to_ms(moment, "t"))) == to_ms(moment, "t")
    shifted = moment.astimezone(timezone(timedelta(hours=8)))
    assert _parse_ms(shifted.isoformat()) == to_ms(moment, "t")


def test_to_ms_refuses_naive_datetimes_and_other_types() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ms(datetime(2026, 1, 1), "since")
    with pytest.raises(TypeError):
        to_ms("1795000000000", "since")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_ms(True, "since")
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC), "t") == 1500


def test_page_checks() -> None:
    rec = [(5, "2", {}), (5, "3", {}), (7, "1", {})]
    assert _order_problem(rec, 5, 8, None) is None
    assert "outside" in (_order_problem(rec, 6, 8, None) or "")
    assert "outside" in (_order_problem(rec, 5, 7, None) or "")
    assert "ascending" in (_order_problem([(7, "1", {}), (5, "2", {})], 0, None, None) or "")
    assert _order_problem([(5, "2", {}), (5, "3", {})], 5, 6, 1) is None
    assert "not after id" in (_order_problem([(5, "3", {}), (5, "2", {})], 5, 6, 1) or "")


# ---------------------------------------------------------------- Connections page and provider


def test_hook_identity_follows_airflow_conventions() -> None:
    assert (CrmHook.conn_name_attr, CrmHook.default_conn_name, CrmHook.conn_type) == (
        "crm_conn_id",
        "crm_default",
        "hubspot_crm",
    )
    assert (OaHook.conn_name_attr, OaHook.default_conn_name, OaHook.conn_type) == (
        "oa_conn_id",
        "oa_default",
        "feishu_oa",
    )
    assert CrmHook(crm_conn_id="x").crm_conn_id == "x"
    assert OaHook(oa_conn_id="y").oa_conn_id == "y"
    behaviour = CrmHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["login"] == "Client ID（客户端 ID）"
    assert behaviour["relabeling"]["password"] == "Client secret（客户端密钥）"
    assert OaHook.get_ui_field_behaviour()["relabeling"]["login"] == "App ID"


def test_connection_form_keeps_the_port() -> None:
    """Airflow 3.3's Test button sends ``port: Number(stored port)``, 0 for none; a hidden port field would store
    none and every test of a Connection made in the form would be refused (docs/connections.md)."""
    for hook in (CrmHook, OaHook):
        behaviour = hook.get_ui_field_behaviour()
        assert "port" not in behaviour["hidden_fields"]
        assert behaviour["placeholders"]["port"].startswith("443")


def test_ui_metadata_is_accepted_by_airflow() -> None:
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    schema = json.loads(
        (Path(airflow.__file__).parent / "customized_form_field_behaviours.schema.json").read_text()
    )
    for hook in (CrmHook, OaHook):
        jsonschema.validate(hook.get_ui_field_behaviour(), schema)
    info_schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(
        {
            "package-name": "oa-crm-bridge",
            "name": "OA CRM Bridge",
            "description": "d",
            "versions": ["0.1.0"],
            "connection-types": ui.connection_types(),
        },
        info_schema,
    )
    for entry in ui.connection_types():
        assert entry["hook-class-name"].rsplit(".", 1)[1] in ("CrmHook", "OaHook")
        assert entry["conn-fields"]["max_attempts"]["schema"]["type"] == ["integer", "null"]
    assert ui.CRM_UI["conn-fields"]["refresh_token"]["schema"]["format"] == "password"


def test_provider_entry_point_registers_both_connection_types() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["hubspot_crm"] is not None
    assert hooks["hubspot_crm"].hook_class_name == "bridge.hooks.crm.CrmHook"
    assert hooks["hubspot_crm"].connection_id_attribute_name == "crm_conn_id"
    assert hooks["feishu_oa"] is not None
    assert hooks["feishu_oa"].connection_id_attribute_name == "oa_conn_id"

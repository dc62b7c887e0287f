"""OA simulator: tenant_access_token lifecycle, token errors and frequency limits over real HTTP."""

from __future__ import annotations

from sandbox.common.world import APPROVAL_CODES
from sandbox.oa.testing import OaClient

EXPENSE = APPROVAL_CODES["expense_claim"]
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


def _approval(oa: OaClient, token: str | bool | None = True) -> tuple[int, dict]:
    resp = oa.request("GET", f"/open-apis/approval/v4/approvals/{EXPENSE}", token=token)
    return resp.status_code, resp.json()


def test_token_is_reused_while_30_minutes_remain_then_renewed(oa: OaClient) -> None:
    first = oa.fetch_token()
    assert first["code"] == 0
    assert first["msg"] == "ok"
    assert first["expire"] == 7200
    assert first["tenant_access_token"].startswith("t-")
    # 89 minutes later 31 minutes remain: the same token, with what is left of it.
    oa.admin("POST", "/clock", {"advance_ms": 89 * 60_000})
    again = oa.fetch_token()
    assert again["tenant_access_token"] == first["tenant_access_token"]
    assert 1850 <= again["expire"] <= 1860
    # Two more minutes: less than 30 minutes left -> a new token; the old one still works.
    oa.admin("POST", "/clock", {"advance_ms": 2 * 60_000})
    renewed = oa.fetch_token()
    assert renewed["tenant_access_token"] != first["tenant_access_token"]
    assert renewed["expire"] == 7200
    assert _approval(oa, f"Bearer {first['tenant_access_token']}")[0] == 200
    # Past the old token's 2 hours it is refused, the new one is not.
    oa.admin("POST", "/clock", {"advance_ms": 30 * 60_000})
    status, body = _approval(oa, f"Bearer {first['tenant_access_token']}")
    assert (status, body["code"]) == (400, 99991663)
    assert _approval(oa, f"Bearer {renewed['tenant_access_token']}")[0] == 200
    assert oa.admin("GET", "/stats")["tokens_issued"] == 2


def test_missing_and_invalid_tokens_answer_feishu_codes(oa: OaClient) -> None:
    status, body = _approval(oa, token=None)
    assert (status, body["code"]) == (400, 99991661)
    status, body = _approval(oa, token="Bearer ")
    assert (status, body["code"]) == (400, 99991661)
    status, body = _approval(oa, token="Bearer t-0000000000000000000000000000000000000000")
    assert (status, body["code"]) == (400, 99991663)
    assert body["msg"].startswith("Invalid access token")
    assert "log_id" in body["error"]
    # An app_access_token is not a tenant token.
    app = oa.request("POST", "/open-apis/auth/v3/app_access_token/internal", token=None,
                     json={"app_id": oa.app_id, "app_secret": oa.app_secret}).json()
    assert app["code"] == 0
    assert app["app_access_token"].startswith("a-")
    assert app["tenant_access_token"].startswith("t-")
    assert _approval(oa, f"Bearer {app['app_access_token']}")[1]["code"] == 99991663


def test_expired_token_code_is_configurable(oa: OaClient) -> None:
    oa.token  # noqa: B018 - fetch one
    oa.admin("POST", "/tokens/expire")
    assert _approval(oa)[1]["code"] == 99991663
    oa.admin("POST", "/config", {"expired_token_code": 99991677})
    status, body = _approval(oa)
    assert (status, body["code"]) == (400, 99991677)
    # A new token request after expiry issues a fresh, working token.
    oa.forget_token()
    assert _approval(oa)[0] == 200


def test_wrong_credentials_and_revoked_secret(oa: OaClient) -> None:
    bad = oa.request("POST", TOKEN_PATH, token=None, json={"app_id": oa.app_id, "app_secret": "nope"})
    assert (bad.status_code, bad.json()["code"]) == (400, 10014)
    unknown = oa.request("POST", TOKEN_PATH, token=None, json={"app_id": "cli_other", "app_secret": "x"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, 10003)
    empty = oa.request("POST", TOKEN_PATH, token=None, data=b"not json")
    assert empty.json()["code"] == 10003
    good = oa.token
    oa.admin("POST", "/tokens/revoke")
    assert oa.fetch_token()["code"] == 10014  # the secret stops working, fast
    assert _approval(oa, f"Bearer {good}")[1]["code"] == 99991663  # and so do issued tokens
    oa.admin("POST", "/tokens/restore")
    assert oa.fetch_token()["code"] == 0


def test_rate_limit_answers_429_with_ogw_headers(oa: OaClient) -> None:
    oa.admin("POST", "/config", {"rate_limits": "feishu", "rate_limit_overrides": {"approvals.get": [[3, 60]]}})
    statuses = [_approval(oa)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = oa.request("GET", f"/open-apis/approval/v4/approvals/{EXPENSE}")
    assert resp.status_code == 429
    assert resp.json() == {"code": 99991400, "msg": "request trigger frequency limit", "error": resp.json()["error"]}
    assert resp.headers["x-ogw-ratelimit-limit"] == "3"
    assert 1 <= int(resp.headers["x-ogw-ratelimit-reset"]) <= 60
    # Other APIs have their own windows.
    assert oa.request("POST", "/open-apis/contact/v3/users/batch_get_id", json={"emails": []}).status_code == 200
    assert oa.admin("GET", "/stats")["rate_limited"] == {"approvals.get": 1}


def test_feishu_profile_limits_instance_listing_at_100_per_minute(oa: OaClient) -> None:
    oa.admin("POST", "/config", {"rate_limits": "feishu"})
    params = {"approval_code": EXPENSE, "start_time": 0, "end_time": 3_600_000}
    codes = [oa.request("GET", "/open-apis/approval/v4/instances", params=params).status_code for _ in range(101)]
    assert codes[:100] == [200] * 100
    assert codes[100] == 429

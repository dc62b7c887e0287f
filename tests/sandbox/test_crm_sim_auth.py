"""OAuth lifecycle of the CRM simulator: token exchange, 401 bodies, expiry, revocation, private app."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.sandbox.conftest_crm import Crm, crm, running_crm  # noqa: F401

from sandbox import launcher

DEALS = "/crm/v3/objects/deals?limit=1"


@pytest.fixture(autouse=True)
def _fresh_tokens(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/tokens/restore")
    crm.admin("POST", "/clock", {"offset_ms": 0})
    crm.token = None


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_refresh_token_grant_returns_a_30_minute_bearer(crm: Crm, version: str) -> None:  # noqa: F811
    resp = crm.http.post(f"{crm.url}/oauth/{version}/token", timeout=10, data={
        "grant_type": "refresh_token", "client_id": launcher.CRM_CLIENT_ID,
        "client_secret": launcher.CRM_CLIENT_SECRET, "refresh_token": launcher.CRM_REFRESH_TOKEN})
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in"] == 1800
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] == launcher.CRM_REFRESH_TOKEN
    assert crm.call("GET", DEALS, token=body["access_token"]).status_code == 200


@pytest.mark.parametrize(("override", "code"), [
    ({"client_id": "someone-else"}, "BAD_CLIENT_ID"),
    ({"client_secret": "wrong"}, "BAD_CLIENT_SECRET"),
    ({"refresh_token": "wrong"}, "BAD_REFRESH_TOKEN"),
    ({"refresh_token": ""}, "BAD_REFRESH_TOKEN"),
    ({"grant_type": "password"}, "BAD_GRANT_TYPE"),
])
def test_bad_credentials_are_refused_with_hubspot_codes(crm: Crm, override: dict[str, str], code: str) -> None:  # noqa: F811
    resp = crm.fetch_token(**override)
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == code
    assert body["message"]
    assert body["correlationId"]


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc", "Bearer "])
def test_missing_or_wrong_token_is_401_invalid_authentication(crm: Crm, header: str | None) -> None:  # noqa: F811
    headers = {} if header is None else {"authorization": header}
    resp = crm.http.get(crm.url + DEALS, headers=headers, timeout=10)
    assert resp.status_code == 401
    body = resp.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")
    assert resp.headers["x-hubspot-auth-failure"] == "401 Unauthorized"


def test_expired_token_is_401_expired_authentication_and_refresh_recovers(crm: Crm) -> None:  # noqa: F811
    old = crm.login()
    assert crm.admin("POST", "/tokens/expire")["expired"] >= 1
    resp = crm.call("GET", DEALS, token=old)
    assert resp.status_code == 401
    body = resp.json()
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")
    assert "expire time" in body["context"]
    new = crm.login()
    assert new != old
    assert crm.call("GET", DEALS, token=new).status_code == 200
    assert crm.call("GET", DEALS, token=old).status_code == 401


def test_clock_skew_expires_tokens_after_1800_seconds(crm: Crm) -> None:  # noqa: F811
    token = crm.login()
    crm.admin("POST", "/clock", {"offset_ms": 1_799_000})
    assert crm.call("GET", DEALS, token=token).status_code == 200
    crm.admin("POST", "/clock", {"offset_ms": 1_800_500})
    resp = crm.call("GET", DEALS, token=token)
    assert resp.status_code == 401
    assert resp.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_revoked_refresh_token_fails_fast_and_kills_its_access_tokens(crm: Crm) -> None:  # noqa: F811
    token = crm.login()
    assert crm.admin("POST", "/tokens/revoke", {})["access_tokens_revoked"] >= 1
    assert crm.call("GET", DEALS, token=token).status_code == 401
    resp = crm.fetch_token()
    assert resp.status_code == 400
    assert resp.json()["status"] == "BAD_REFRESH_TOKEN"
    crm.admin("POST", "/tokens/restore")
    assert crm.fetch_token().status_code == 200


def test_revoked_client_is_refused(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/tokens/revoke", {"client_id": launcher.CRM_CLIENT_ID})
    resp = crm.fetch_token()
    assert resp.status_code == 400
    assert resp.json()["status"] == "BAD_CLIENT_ID"


def test_private_app_token_is_a_static_bearer_until_revoked(crm: Crm) -> None:  # noqa: F811
    pat = launcher.CRM_PRIVATE_APP_TOKEN
    resp = crm.call("GET", DEALS, token=pat)
    assert resp.status_code == 200
    assert "X-HubSpot-RateLimit-Daily" in resp.headers  # HubSpot sends the daily headers to private apps
    crm.admin("POST", "/tokens/expire")
    assert crm.call("GET", DEALS, token=pat).status_code == 200  # private-app tokens do not expire
    crm.admin("POST", "/tokens/revoke", {"private_app": True})
    assert crm.call("GET", DEALS, token=pat).status_code == 401


def test_token_ttl_option_shortens_access_tokens(tmp_path: Path) -> None:
    with running_crm(tmp_path, "--token-ttl", "1", seed=None) as short:
        body = short.fetch_token().json()
        assert body["expires_in"] == 1
        assert short.call("GET", DEALS, token=body["access_token"]).status_code == 200
        time.sleep(1.2)
        resp = short.call("GET", DEALS, token=body["access_token"])
        assert resp.status_code == 401
        assert resp.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_access_token_introspection(crm: Crm) -> None:  # noqa: F811
    token = crm.login()
    info = crm.http.get(f"{crm.url}/oauth/v1/access-tokens/{token}", timeout=10).json()
    assert info["token"] == token
    assert 1700 < info["expires_in"] <= 1800
    assert crm.http.get(f"{crm.url}/oauth/v1/access-tokens/nope", timeout=10).status_code == 404

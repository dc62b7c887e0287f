"""CrmHook authentication over real HTTP: token expiry mid-run, proactive refresh, one refresh for many
threads, revoked credentials failing fast, private-app tokens, the Connections page Test button."""

from __future__ import annotations

import time

import pytest
from tests.hooks.hooks_support import (
    RATE_LIMITS_OFF,
    SEEDED,
    Sim,
    all_at_once,
    connection,
    crm_conn,
    sim_fixture,
)
from tests.hooks.hooks_support import crm_hook as hook

from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import AuthError
from sandbox import launcher

TOKEN_ROUTE = "POST /oauth/v3/token"


# Access tokens live 3 s here, so expiry can happen during a test.
crm = sim_fixture("crm", "crm_auth", *RATE_LIMITS_OFF, "--token-ttl", "3", *SEEDED)


@pytest.fixture(autouse=True)
def _clean(crm: Sim) -> None:
    crm.reset(("POST", "/tokens/restore", None))


def test_token_expired_between_pages_is_refreshed_once(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch)
    got = []
    for n, page in enumerate(h.iter_changed("deals", 0, ["dealname"], page_size=50)):
        got.extend(o["id"] for o in page)
        if n == 1:
            assert crm.admin("POST", "/tokens/expire")["expired"] >= 1
    stats = crm.stats()
    assert len(got) == len(set(got)) == 400
    assert stats["tokens_issued"] == 2
    assert stats["responses"].get("401") == 1, "one refused call, then the refreshed token"


def test_short_lived_tokens_are_renewed_before_they_expire(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch)
    started = time.monotonic()
    got = []
    for page in h.iter_changed("deals", 0, ["dealname"], page_size=40):
        got.extend(o["id"] for o in page)
        time.sleep(0.3)  # a slow consumer: the run lasts longer than one token
    assert len(got) == len(set(got)) == 400
    stats = crm.stats()
    assert time.monotonic() - started > 2.7
    assert stats["tokens_issued"] >= 2
    assert "401" not in stats["responses"], "a token should be renewed before the server refuses it"


def test_threads_needing_a_token_fetch_it_once(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = connection(monkeypatch, crm_conn(crm.url))
    results, errors = all_at_once(8, lambda: CrmHook(conn_id), lambda h: len(h.owners()))
    assert not errors
    assert results == [16] * 8
    assert crm.stats()["tokens_issued"] == 1
    assert crm.requests_to(TOKEN_ROUTE) == 1


def test_revoked_refresh_token_fails_fast_without_a_retry_storm(
    crm: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = connection(monkeypatch, crm_conn(crm.url, max_attempts=5))
    CrmHook(conn_id).owners()  # a cached, valid access token
    crm.admin("POST", "/tokens/revoke")
    crm.admin("POST", "/stats/reset")
    started = time.monotonic()
    _, errors = all_at_once(6, lambda: CrmHook(conn_id), lambda h: h.owners())
    elapsed = time.monotonic() - started
    assert len(errors) == 6
    assert all(isinstance(e, AuthError) for e in errors)
    assert crm.requests_to(TOKEN_ROUTE) == 1, "one token attempt for all threads"
    assert crm.requests_to("GET /crm/v3/owners") <= 6, "no retries of a refused call"
    assert elapsed < 3
    message = str(errors[0])
    assert "BAD_REFRESH_TOKEN" in message
    assert "check the client id" in message
    assert launcher.CRM_REFRESH_TOKEN not in message
    assert launcher.CRM_CLIENT_SECRET not in message


def test_private_app_token_needs_no_token_endpoint(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = connection(
        monkeypatch,
        {
            "conn_type": "hubspot_crm",
            "host": crm.url,
            "password": launcher.CRM_PRIVATE_APP_TOKEN,
            "extra": {"auth": "private_app"},
        },
    )
    h = CrmHook(conn_id)
    assert len(h.owners()) == 16
    assert h.test_connection()[0] is True
    assert crm.stats()["tokens_issued"] == 0
    crm.admin("POST", "/tokens/revoke", {"private_app": True})
    with pytest.raises(AuthError) as info:
        h.owners()
    assert info.value.status == 401
    assert crm.requests_to(TOKEN_ROUTE) == 0
    assert crm.requests_to("GET /crm/v3/owners") == 3  # two good calls, one refused, no retry


def test_connection_test_button(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook(crm, monkeypatch).test_connection()
    assert ok
    assert "OAuth 凭据有效" in message
    bad = {**crm_conn(crm.url), "password": "wrong-secret-value"}
    ok, message = CrmHook(connection(monkeypatch, bad)).test_connection()
    assert not ok
    assert "BAD_CLIENT_SECRET" in message
    assert "wrong-secret-value" not in message
    ok, message = CrmHook(
        connection(monkeypatch, {"conn_type": "hubspot_crm", "host": crm.url})
    ).test_connection()
    assert not ok
    assert "Refresh token" in message
    ok, message = CrmHook(
        connection(
            monkeypatch,
            {**crm_conn("http://127.0.0.1:9"), "extra": {"refresh_token": "x", "max_attempts": 1}},
        )
    ).test_connection()
    assert not ok
    assert "connection failed" in message  # the transport's own words follow the Chinese reason


@pytest.mark.filterwarnings("ignore::FutureWarning")  # Airflow's own Connection.get_hook
def test_airflow_connection_test_button_path(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Connections page does: resolve the hook from conn_type, then call test_connection()."""
    from airflow.models.connection import Connection

    conn_id = connection(monkeypatch, crm_conn(crm.url))
    conn = Connection.get_connection_from_secrets(conn_id)
    status, message = conn.test_connection()
    assert status is True
    assert "可读取 CRM 负责人" in message

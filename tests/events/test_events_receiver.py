"""The receiver over HTTP: only verified deliveries are enqueued; refusals are counted and audited in the hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.events.events_support import FS_APP, HS_APP, TOKEN, fs_encrypted, fs_v1, hs_event, hs_headers

from bridge.events import serve
from bridge.events.app import Receiver, create_app
from bridge.events.config import Limits, ReceiverConfig, load
from bridge.events.sink import MemorySink
from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_log

URI = "http://testserver/events/hubspot"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    monkeypatch.setenv("BRIDGE_HUB_URL", url)
    hub_engine.upgrade(url)
    yield url
    hub_engine.get_engine(url).dispose()


def _client(limits: Limits | None = None, audit: bool = True) -> tuple[TestClient, Receiver, MemorySink]:
    sink = MemorySink()
    receiver = Receiver(
        ReceiverConfig(HS_APP, FS_APP, limits or Limits()), sink, audit=serve.hub_audit if audit else None
    )
    return TestClient(create_app(receiver)), receiver, sink


def _refusals(url: str) -> list[dict]:
    with hub_engine.get_engine(url).connect() as conn:
        rows = (
            conn.execute(select(audit_log).where(audit_log.c.operation == "event_refused")).mappings().all()
        )
    return [dict(r) for r in rows]


def test_signed_batch_enqueued_once_replay_refused_retry_deduplicated(hub: str) -> None:
    client, receiver, sink = _client()
    body = json.dumps([hs_event(1, 101), hs_event(2, 102)]).encode()
    now = int(time.time() * 1000)
    headers = hs_headers(body, URI, now)
    first = client.post("/events/hubspot", content=body, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"enqueued": 2, "duplicates": 0}
    assert [(m.record_type, m.record_id) for m in sink.messages] == [("deal", "101"), ("deal", "102")]
    # the same signed request again: a replay, refused
    assert client.post("/events/hubspot", content=body, headers=headers).status_code == 401
    # HubSpot's own retry (new timestamp, same event ids): accepted, nothing enqueued twice
    retry = client.post("/events/hubspot", content=body, headers=hs_headers(body, URI, now + 1000))
    assert retry.json() == {"enqueued": 0, "duplicates": 2}
    assert len(sink.messages) == 2
    counts = receiver.health.snapshot()["crm"]["counts"]
    assert (counts["received"], counts["verified"], counts["rejected"], counts["rejected_replayed"]) == (
        3,
        2,
        1,
        1,
    )
    (entry,) = _refusals(hub)
    assert (entry["system"], entry["outcome"], entry["detail"]) == ("crm", "refused", "401 replayed")
    assert "101" not in json.dumps(entry, default=str), "no payload in the audit"


def test_forged_stale_oversized_wrong_app_never_enqueued(hub: str) -> None:
    client, receiver, sink = _client(Limits(max_body_bytes=4096))
    now = int(time.time() * 1000)
    body = json.dumps([hs_event(1)]).encode()
    big = json.dumps([hs_event(i, kind="object.creation") for i in range(60)]).encode()
    wrong = json.dumps([hs_event(1, appId=1)]).encode()
    cases = [
        (body, hs_headers(body, URI, now, secret="guess"), 401),
        (body, hs_headers(body, URI, now - 400_000), 401),
        (body, {"content-type": "application/json"}, 401),
        (big, hs_headers(big, URI, now), 413),
        (wrong, hs_headers(wrong, URI, now), 401),
    ]
    for raw, headers, status in cases:
        assert client.post("/events/hubspot", content=raw, headers=headers).status_code == status
    fs_body, fs_headers = fs_encrypted(fs_v1(), int(time.time()), sign_key="guess")
    assert client.post("/events/feishu", content=fs_body, headers=fs_headers).status_code == 401
    plain = json.dumps(fs_v1()).encode()
    assert client.post("/events/feishu", content=plain).status_code == 401
    assert sink.messages == []
    assert receiver.health.snapshot()["crm"]["counts"]["rejected"] == 5
    assert receiver.health.snapshot()["oa"]["counts"]["rejected"] == 2
    assert sorted(e["detail"] for e in _refusals(hub)) == sorted(
        [
            "401 bad_signature",
            "401 stale",
            "401 unsigned",
            "413 too_large",
            "401 wrong_app",
            "401 bad_signature",
            "401 not_encrypted",
        ]
    )


def test_body_over_the_cap_refused_without_a_content_length(hub: str) -> None:
    client, _, sink = _client(Limits(max_body_bytes=1024))

    def chunks():  # streamed: no Content-Length, the cap is enforced while reading
        for _ in range(10):
            yield b"x" * 512

    assert client.post("/events/hubspot", content=chunks()).status_code == 413
    assert sink.messages == []


def test_rate_bounded_with_429(hub: str) -> None:
    client, _, _ = _client(Limits(requests_per_second=0.001, burst=3), audit=False)
    statuses = [
        client.post(
            "/events/hubspot", content=b"[]", headers=hs_headers(b"[]", URI, int(time.time() * 1000) + i)
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]


def test_feishu_challenge_and_encrypted_event(hub: str) -> None:
    client, receiver, sink = _client()
    body, _ = fs_encrypted({"type": "url_verification", "challenge": "abc", "token": TOKEN}, int(time.time()))
    assert client.post("/events/feishu", content=body).json() == {"challenge": "abc"}
    body, headers = fs_encrypted(fs_v1(instance="I-9", uuid="u-9"), int(time.time()))
    assert client.post("/events/feishu", content=body, headers=headers).json() == {
        "enqueued": 1,
        "duplicates": 0,
    }
    assert client.post("/events/feishu", content=body, headers=headers).status_code == 401  # replayed
    body2, headers2 = fs_encrypted(fs_v1(instance="I-9", uuid="u-9"), int(time.time()), nonce="other")
    assert client.post("/events/feishu", content=body2, headers=headers2).json() == {
        "enqueued": 0,
        "duplicates": 1,
    }
    assert [m.record_id for m in sink.messages] == ["I-9"]
    snap = receiver.health.snapshot()["oa"]
    assert snap["last_event_time"] == "2026-05-28T20:26:40.000+00:00"
    assert snap["lag_ms"] > 0


def test_a_thousand_hostile_deliveries_none_accepted(hub: str) -> None:
    client, receiver, sink = _client(
        Limits(max_body_bytes=2048, requests_per_second=10_000, burst=10_000), audit=False
    )
    now = int(time.time() * 1000)
    body = json.dumps([hs_event(1)]).encode()
    good = hs_headers(body, URI, now)
    assert client.post("/events/hubspot", content=body, headers=good).status_code == 200
    big = b"[" + b" " * 4096 + b"]"
    statuses = []
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            raw, headers = body, hs_headers(body, URI, now, secret=f"guess-{i}")
        elif kind == 1:
            raw, headers = body, good  # replay
        elif kind == 2:
            raw, headers = big, hs_headers(big, URI, now)
        else:
            raw, headers = body, hs_headers(body, URI, now - 600_000 - i)
        statuses.append(client.post("/events/hubspot", content=raw, headers=headers).status_code)
    assert set(statuses) <= {401, 413}
    assert statuses.count(413) == 250
    assert len(sink.messages) == 1
    assert receiver.health.snapshot()["crm"]["counts"]["rejected"] == 1000


def test_secrets_only_from_the_connections() -> None:
    conns = {
        "crm_default": {
            "login": "client",
            "password": "oauth-secret",
            "extra": {"webhook_client_secret": "whs", "webhook_app_id": "42"},
        },
        "oa_default": {
            "login": "cli_x",
            "password": "app-secret",
            "extra": {"verification_token": "vt", "encrypt_key": "ek"},
        },
    }
    cfg = load(conns.get, {"events": {"max_body_bytes": 1000}, "oa": {"approval_codes": {"a": "C1"}}})
    assert cfg.hubspot is not None
    assert cfg.hubspot.client_secret == "whs"
    assert cfg.hubspot.app_id == "42"
    assert cfg.feishu is not None
    assert (cfg.feishu.app_id, cfg.feishu.encrypt_key) == ("cli_x", "ek")
    assert cfg.feishu.approval_codes == frozenset({"C1"})
    assert cfg.limits.max_body_bytes == 1000
    bare = load({"crm_default": {"extra": {}}, "oa_default": {"login": "cli_x"}}.get, {})
    assert bare.hubspot is None
    assert bare.feishu is None
    client = TestClient(create_app(Receiver(bare, MemorySink())))
    assert client.post("/events/hubspot", content=b"[]").status_code == 404
    assert client.post("/events/feishu", content=b"{}").status_code == 404


def test_a_second_wake_when_the_quiet_window_ends(hub: str) -> None:
    """The webhook wakes crm_to_oa at once (the debounce holds the change), and once more after the window."""
    from bridge.events.rewake import DueWakes

    sink = MemorySink()
    receiver = Receiver(ReceiverConfig(HS_APP, None, Limits()), sink, due_wakes=DueWakes(0.5))
    with TestClient(create_app(receiver)) as client:  # the lifespan runs the once-a-second loop
        for i in (1, 2):  # two edits of the same deal: one window, from the last edit
            body = json.dumps([hs_event(i, 555)]).encode()
            headers = hs_headers(body, URI, int(time.time() * 1000))
            assert client.post("/events/hubspot", content=body, headers=headers).status_code == 200
        deadline = time.monotonic() + 5
        while len(sink.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)
    assert [m.delivery_id.split(":")[0] for m in sink.messages] == ["hubspot", "hubspot", "due"]
    assert sink.messages[-1].record_id == "555"
    assert len(receiver.due_wakes or []) == 0

"""Pure verification of vendor deliveries: HubSpot signature v3 and Feishu envelopes, forged / stale / replayed."""

from __future__ import annotations

import json

import pytest
from tests.events.events_support import (
    FS_APP,
    HS_APP,
    TOKEN,
    fs_encrypted,
    fs_v1,
    fs_v2,
    hs_event,
    hs_headers,
)

from bridge.events import feishu, hubspot
from bridge.events.model import Refused
from bridge.hooks import feishu_delivery, hubspot_delivery

URI = "https://bridge.example.com/events/hubspot"
NOW_MS = 1_780_000_100_000


def _check(body: bytes, headers: dict[str, str], uri: str = URI, now_ms: int = NOW_MS) -> str:
    return hubspot.check_signature(HS_APP, "POST", uri, body, headers, now_ms)


def test_hubspot_signature_v3_known_vector() -> None:
    # Computed independently: base64(HMAC-SHA256("secret", "POST" + uri + body + "1700000000000"))
    import base64
    import hashlib
    import hmac

    src = b"POSThttps://x.test/h?a=1[]1700000000000"
    expected = base64.b64encode(hmac.new(b"secret", src, hashlib.sha256).digest()).decode()
    assert (
        hubspot_delivery.signature_v3("secret", "post", "https://x.test/h?a=1", b"[]", "1700000000000")
        == expected
    )


def test_hubspot_accepts_a_signed_batch_and_reads_only_ids() -> None:
    body = json.dumps(
        [
            hs_event(1, 101),
            hs_event(2, 55, kind="object.creation", type_id="0-2"),
            hs_event(3, 7, kind="deal.deletion", type_id=""),
            hs_event(4, 9, type_id="0-48"),
        ]
    ).encode()  # calls: not synced, skipped
    _check(body, hs_headers(body, URI, NOW_MS))
    msgs = hubspot.parse_batch(HS_APP, body)
    assert [(m.record_type, m.record_id, m.delivery_id) for m in msgs] == [
        ("deal", "101", "hubspot:1"),
        ("company", "55", "hubspot:2"),
        ("deal", "7", "hubspot:3"),
    ]
    assert msgs[0].event_time == "2026-05-28T20:26:40.000+00:00"
    assert set(json.loads(msgs[0].to_json())) == {
        "source",
        "record_type",
        "record_id",
        "event_time",
        "delivery_id",
    }


def test_hubspot_uri_escapes_decoded_before_signing() -> None:
    body = b"[]"
    signed_on = "https://bridge.example.com/events/hubspot?tag=a:b/c"  # HubSpot signs the decoded form
    headers = hs_headers(body, signed_on, NOW_MS)
    _check(body, headers, uri="https://bridge.example.com/events/hubspot?tag=a%3Ab%2fc")
    with pytest.raises(Refused, match="bad_signature"):  # %20 is not in HubSpot's list: not decoded
        _check(body, hs_headers(body, signed_on + " x", NOW_MS), uri=signed_on + "%20x")


@pytest.mark.parametrize(
    "case",
    [
        "forged_secret",
        "tampered_body",
        "other_uri",
        "other_method",
        "no_header",
        "stale",
        "future",
        "bad_stamp",
    ],
)
def test_hubspot_refusals(case: str) -> None:
    body = json.dumps([hs_event(1)]).encode()
    headers = hs_headers(body, URI, NOW_MS)
    uri, method, now = URI, "POST", NOW_MS
    if case == "forged_secret":
        headers = hs_headers(body, URI, NOW_MS, secret="guessed")
    elif case == "tampered_body":
        body = body.replace(b"101", b"102")
    elif case == "other_uri":
        uri = URI + "?x=1"
    elif case == "other_method":
        method = "PUT"
    elif case == "no_header":
        del headers["x-hubspot-signature-v3"]
    elif case == "stale":  # signed correctly, but 5 min + 1 s ago
        headers = hs_headers(body, URI, NOW_MS - 301_000)
    elif case == "future":
        headers = hs_headers(body, URI, NOW_MS + 60_000)
    elif case == "bad_stamp":
        headers["x-hubspot-request-timestamp"] = "yesterday"
    with pytest.raises(Refused) as err:
        hubspot.check_signature(HS_APP, method, uri, body, headers, now)
    assert err.value.status == 401


def test_hubspot_wrong_app_or_portal_and_oversized_batches() -> None:
    for over, reason in (({"appId": 1}, "wrong_app"), ({"portalId": 2}, "wrong_portal")):
        with pytest.raises(Refused, match=reason):
            hubspot.parse_batch(HS_APP, json.dumps([hs_event(1), hs_event(2, **over)]).encode())
    with pytest.raises(Refused) as err:
        hubspot.parse_batch(HS_APP, json.dumps([hs_event(i) for i in range(101)]).encode())
    assert err.value.status == 413
    for body in (b"{}", b"not json", b"[1]"):
        with pytest.raises(Refused):
            hubspot.parse_batch(HS_APP, body)


NOW_S = 1_780_000_100


def test_feishu_encrypted_v1_and_v2_accepted() -> None:
    body, headers = fs_encrypted(fs_v1(), NOW_S)
    out = feishu.parse(FS_APP, body, headers, NOW_S)
    assert out.challenge is None
    assert [(m.source, m.record_type, m.record_id, m.delivery_id) for m in out.messages] == [
        ("oa", "approval_instance", "INST-1", "feishu:u-1")
    ]
    body, headers = fs_encrypted(fs_v2(), NOW_S)
    (msg,) = feishu.parse(FS_APP, body, headers, NOW_S).messages
    assert (msg.record_id, msg.delivery_id, msg.event_time) == (
        "INST-2",
        "feishu:e-1",
        "2026-05-28T20:26:40.500+00:00",
    )
    # REVERTED carries operate_time as an int64 (NOTES.md)
    body, headers = fs_encrypted(fs_v1(status="REVERTED", operate_time=1780000000000), NOW_S)
    assert feishu.parse(FS_APP, body, headers, NOW_S).messages[0].event_time.startswith("2026-05-28T20:26:40")


def test_feishu_decrypts_what_it_encrypts_and_matches_the_sdk_layout() -> None:
    token = feishu_delivery.encrypt("k", b'{"a":1}', b"\x01" * 16)
    import base64

    assert base64.b64decode(token)[:16] == b"\x01" * 16
    assert feishu.decrypt("k", token) == b'{"a":1}'
    assert feishu_delivery.decrypt("k", token) == b'{"a":1}'
    with pytest.raises(feishu_delivery.CipherError, match="does not decrypt"):
        feishu_delivery.decrypt("other key", token)
    with pytest.raises(Refused, match="bad_ciphertext"):
        feishu.decrypt("other key", token)


def test_feishu_url_verification_answers_the_challenge_after_the_token_check() -> None:
    doc = {"type": "url_verification", "challenge": "c-123", "token": TOKEN}
    body, _ = fs_encrypted(doc, NOW_S)
    assert feishu.parse(FS_APP, body, {}, NOW_S).challenge == "c-123"  # not signed by Feishu
    body, _ = fs_encrypted({**doc, "token": "wrong"}, NOW_S)
    with pytest.raises(Refused, match="bad_token"):
        feishu.parse(FS_APP, body, {}, NOW_S)


@pytest.mark.parametrize(
    "case",
    [
        "forged_signature",
        "wrong_encrypt_key",
        "stale",
        "future",
        "unsigned",
        "plain",
        "bad_token",
        "wrong_app",
        "wrong_tenant",
        "v2_bad_token",
        "tampered",
    ],
)
def test_feishu_refusals(case: str) -> None:
    doc, now, kw = fs_v1(), NOW_S, {}
    if case == "bad_token":
        doc["token"] = "guess"
    elif case == "wrong_app":
        doc["event"]["app_id"] = "cli_other"
    elif case == "wrong_tenant":
        doc["event"]["tenant_key"] = "other-tenant"
    elif case == "v2_bad_token":
        doc = fs_v2(token="guess")
    elif case == "forged_signature":
        kw = {"sign_key": "guessed"}
    elif case == "wrong_encrypt_key":
        kw = {"key": "guessed"}
    body, headers = fs_encrypted(doc, now, **kw)
    if case == "stale":
        body, headers = fs_encrypted(doc, NOW_S - 301)
    elif case == "future":
        body, headers = fs_encrypted(doc, NOW_S + 60)
    elif case == "unsigned":
        headers = {}
    elif case == "plain":
        body, headers = json.dumps(doc).encode(), {}
    elif case == "tampered":
        raw = json.loads(body)
        raw["encrypt"] = raw["encrypt"][:-8] + "AAAAAAA="
        body = json.dumps(raw).encode()
    with pytest.raises(Refused) as err:
        feishu.parse(FS_APP, body, headers, NOW_S)
    assert err.value.status == 401, err.value


def test_feishu_plain_mode_only_when_allowed_and_codes_filtered() -> None:
    plain = feishu.FeishuApp(FS_APP.app_id, TOKEN, None, approval_codes=frozenset({"CODE-1"}))
    body = json.dumps(fs_v1()).encode()
    with pytest.raises(Refused, match="no_encrypt_key"):
        feishu.parse(plain, body, {}, NOW_S)
    allowed = feishu.FeishuApp(
        FS_APP.app_id, TOKEN, None, allow_plain=True, approval_codes=frozenset({"CODE-1"})
    )
    assert [m.record_id for m in feishu.parse(allowed, body, {}, NOW_S).messages] == ["INST-1"]
    other = feishu.parse(allowed, json.dumps(fs_v1(code="NOT-SYNCED")).encode(), {}, NOW_S)
    assert (other.messages, other.ignored) == ([], 1)

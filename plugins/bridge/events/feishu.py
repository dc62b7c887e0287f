"""OA approval events: decryption, signature, token and envelope checks (pure functions, no I/O).

With an Encrypt Key (required unless ``allow_plain`` is set) a delivery is
encrypted and signed as ``bridge.hooks.feishu_delivery`` describes; the request
timestamp must be within 5 minutes (Feishu's SDKs do not check it; we do, both ways). Without one only the verification token
protects a delivery, so that mode must be switched on explicitly. Every
envelope (v1 and v2, decoded by ``bridge.hooks.feishu_codec``) must carry the
app's verification token and its app id (and tenant when configured). The URL
check is answered with its challenge after the token check; it enqueues nothing. Feishu's SDKs answer 500 to a failed check; we answer 401.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.events.model import Refused, WakeMessage, check_window, iso_from_ms
from bridge.hooks import feishu_delivery
from bridge.hooks.feishu_codec import EnvelopeError, approval_event, challenge_of
from bridge.hooks.feishu_delivery import ENCRYPTED, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

MAX_AGE_S = 5 * 60
MAX_FUTURE_SKEW_S = 30
EVENT_TYPES = {"approval_instance"}


@dataclass(frozen=True)
class FeishuApp:
    """What a delivery must match (all from the ``oa_default`` Connection)."""

    app_id: str
    verification_token: str
    encrypt_key: str | None = None
    tenant: str | None = None
    allow_plain: bool = False
    approval_codes: frozenset[str] = field(default_factory=frozenset)  # empty = every code


@dataclass(frozen=True)
class FeishuOutcome:
    challenge: str | None
    messages: list[WakeMessage]
    ignored: int = 0


def decrypt(encrypt_key: str, token: str) -> bytes:
    try:
        return feishu_delivery.decrypt(encrypt_key, token)
    except feishu_delivery.CipherError as exc:
        raise Refused(401, "bad_ciphertext", str(exc)) from None


def check_signature(app: FeishuApp, body: bytes, headers: Mapping[str, str], now_s: float) -> str:
    """Raise :class:`Refused` (401) unless the signature and the request timestamp hold."""
    assert app.encrypt_key
    given = headers.get(SIGNATURE_HEADER.lower(), "")
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    nonce = headers.get(NONCE_HEADER.lower(), "")
    if not given or not stamp or not nonce:
        raise Refused(401, "unsigned", f"{SIGNATURE_HEADER} / {TIMESTAMP_HEADER} / {NONCE_HEADER} missing")
    try:
        stamp_s = int(stamp)
    except ValueError:
        raise Refused(401, "bad_timestamp", f"{TIMESTAMP_HEADER} is not an integer") from None
    check_window(now_s, stamp_s, MAX_AGE_S, MAX_FUTURE_SKEW_S)
    expected = feishu_delivery.signature(app.encrypt_key, stamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Refused(401, "bad_signature", f"{SIGNATURE_HEADER} does not match")
    return given


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise Refused(400, "not_json", f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise Refused(400, "not_an_object", f"{what} is not a JSON object")
    return doc


def open_envelope(app: FeishuApp, body: bytes, headers: Mapping[str, str], now_s: float) -> dict[str, Any]:
    """The plaintext envelope of a delivery, after decryption and (for events) the signature check."""
    outer = _json_object(body, "body")
    if app.encrypt_key:
        if set(outer) != {ENCRYPTED} or not isinstance(outer[ENCRYPTED], str):
            raise Refused(401, "not_encrypted", "an Encrypt Key is configured: plain deliveries are refused")
        signed = SIGNATURE_HEADER.lower() in headers
        if signed:  # the signature covers the raw body: checked before anything is decrypted
            check_signature(app, body, headers, now_s)
        try:
            doc = _json_object(decrypt(app.encrypt_key, outer[ENCRYPTED]), "decrypted body")
        except Refused as exc:
            raise Refused(401, "bad_ciphertext", exc.detail) from None
        if not signed and challenge_of(doc) is None:  # Feishu signs everything but the challenge
            check_signature(app, body, headers, now_s)
        return doc
    if not app.allow_plain:
        raise Refused(401, "no_encrypt_key", "no Encrypt Key configured and plain deliveries not allowed")
    if ENCRYPTED in outer:
        raise Refused(401, "no_encrypt_key", "an encrypted delivery but no Encrypt Key configured")
    return outer


def _check_token(app: FeishuApp, token: object) -> None:
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), app.verification_token.encode()):
        raise Refused(401, "bad_token", "verification token does not match")


def _event_time(times: tuple[object, ...]) -> str:
    for value in times:
        try:
            return iso_from_ms(int(str(value)))
        except (TypeError, ValueError):
            continue
    raise Refused(400, "bad_event", "event without an event time")


def parse(app: FeishuApp, body: bytes, headers: Mapping[str, str], now_s: float) -> FeishuOutcome:
    """Verify one delivery; a challenge answer or the wake messages it holds."""
    doc = open_envelope(app, body, headers, now_s)
    asked = challenge_of(doc)
    if asked is not None:
        _check_token(app, asked.token)
        challenge = asked.challenge
        if not isinstance(challenge, str) or not challenge or len(challenge) > 200:
            raise Refused(400, "bad_challenge", "URL check without a challenge")
        return FeishuOutcome(challenge, [])
    return _messages(app, doc)


def parse_pushed(app: FeishuApp, payload: bytes) -> FeishuOutcome:
    """Verify one event pushed over the long connection (plain JSON: the connection, opened with the app
    secret, is the credential). The token is checked when both sides have one; app and tenant always."""
    doc = _json_object(payload, "event")
    if challenge_of(doc) is not None or ENCRYPTED in doc:
        raise Refused(400, "bad_envelope", "a long connection carries plain events only")
    return _messages(app, doc, token_optional=True)


def _messages(app: FeishuApp, doc: dict[str, Any], token_optional: bool = False) -> FeishuOutcome:
    try:
        event = approval_event(doc)
    except EnvelopeError as exc:
        raise Refused(400, "bad_envelope", str(exc)) from None
    if not (token_optional and (not event.token or not app.verification_token)):
        _check_token(app, event.token)
    if event.app_id != app.app_id:
        raise Refused(401, "wrong_app", "event of another Feishu app")
    if app.tenant and event.tenant != app.tenant:
        raise Refused(401, "wrong_tenant", "event of another Feishu tenant")
    delivery, instance = event.delivery_id, event.instance_code
    if not isinstance(delivery, str) or not delivery:
        raise Refused(400, "bad_envelope", "no delivery id (uuid / header.event_id)")
    if event.event_type not in EVENT_TYPES or (
        app.approval_codes and event.approval_code not in app.approval_codes
    ):
        return FeishuOutcome(None, [], ignored=1)
    if not isinstance(instance, str) or not instance:
        raise Refused(400, "bad_event", "approval_instance event without instance_code")
    when = _event_time(event.times)
    return FeishuOutcome(None, [WakeMessage("oa", "approval_instance", instance, when, f"feishu:{delivery}")])

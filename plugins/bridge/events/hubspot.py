"""CRM webhooks: signature check and batch parsing (pure functions, no I/O).

How a delivery is signed, and the fields of its events, are the CRM's wire
format (``bridge.hooks.hubspot_delivery``, ``bridge.hooks.hubspot_codec``);
what to trust is decided here. Timestamps older than 5 minutes are
refused, and so are timestamps in the future beyond a small clock skew (the
official SDK accepts those; a replay with a forged future stamp must not live
longer than the window). Batches hold many events; every one must come from
the configured app and portal.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.events.model import Refused, WakeMessage, check_window, iso_from_ms
from bridge.hooks.hubspot_codec import webhook_change
from bridge.hooks.hubspot_delivery import (
    MAX_EVENTS_PER_DELIVERY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_v3,
)

MAX_AGE_MS = 5 * 60 * 1000
MAX_FUTURE_SKEW_MS = 30 * 1000
SUBSCRIPTION_KINDS = {"creation", "propertyChange", "deletion", "merge", "restore", "associationChange"}


@dataclass(frozen=True)
class HubSpotApp:
    """What a delivery must match: the app's client secret, and (when known) app id and portal id."""

    client_secret: str
    app_id: str | None = None
    portal_id: str | None = None


def check_signature(
    app: HubSpotApp, method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int
) -> str:
    """Raise :class:`Refused` (401) unless signature and timestamp hold; returns the signature (replay key)."""
    given = headers.get(SIGNATURE_HEADER.lower(), "")
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    if not given or not stamp:
        raise Refused(401, "unsigned", f"{SIGNATURE_HEADER} or {TIMESTAMP_HEADER} missing")
    try:
        stamp_ms = int(stamp)
    except ValueError:
        raise Refused(401, "bad_timestamp", f"{TIMESTAMP_HEADER} is not an integer") from None
    check_window(now_ms, stamp_ms, MAX_AGE_MS, MAX_FUTURE_SKEW_MS, "ms")
    expected = signature_v3(app.client_secret, method, uri, body, stamp)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Refused(401, "bad_signature", f"{SIGNATURE_HEADER} does not match")
    return given


def parse_batch(app: HubSpotApp, body: bytes) -> list[WakeMessage]:
    """Verified body → wake messages (unknown object types are skipped, wrong app/portal refused)."""
    try:
        events = json.loads(body)
    except ValueError:
        raise Refused(400, "not_json", "body is not JSON") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Refused(400, "not_a_batch", "body must be a JSON array of event objects")
    if len(events) > MAX_EVENTS_PER_DELIVERY:
        raise Refused(413, "too_many_events", f"{len(events)} events (max {MAX_EVENTS_PER_DELIVERY})")
    out: list[WakeMessage] = []
    for raw in events:
        event = webhook_change(raw)
        if app.app_id and event.app_id != app.app_id:
            raise Refused(401, "wrong_app", "event of another HubSpot app")
        if app.portal_id and event.portal_id != app.portal_id:
            raise Refused(401, "wrong_portal", "event of another HubSpot portal")
        record_type, change, object_id = event.record_type, event.change, event.record_id
        event_id, occurred = event.event_id, event.occurred_ms
        if record_type is None or change not in SUBSCRIPTION_KINDS:
            continue
        if (
            not isinstance(object_id, int | str)
            or not isinstance(event_id, int | str)
            or not isinstance(occurred, int | float)
        ):
            raise Refused(400, "bad_event", "event without a record id, an event id or an event time")
        out.append(
            WakeMessage("crm", record_type, str(object_id), iso_from_ms(occurred), f"hubspot:{event_id}")
        )
    return out

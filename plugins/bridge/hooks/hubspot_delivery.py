"""HubSpot webhook deliveries on the wire: the signature v3 headers and how the signature is computed.

``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI +
body + ``X-HubSpot-Request-Timestamp``)). Before signing HubSpot decodes a few
percent-escapes in the URI (list below, from its request-validation guide); the
receiver does the same to the URI it reconstructs. A delivery holds at most 100
events. The receiver (``bridge.events.hubspot``) decides what to trust.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_EVENTS_PER_DELIVERY = 100
# HubSpot decodes these escapes in the URI before signing (upper and lower case hex).
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def normalise_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded, nothing else touched."""
    out = uri
    for escape, char in _DECODED.items():
        out = out.replace(escape, char).replace(escape.lower(), char)
    return out


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    source = method.upper().encode() + normalise_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()

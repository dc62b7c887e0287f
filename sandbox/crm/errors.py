"""HubSpot's error envelope: ``{status: "error", message, correlationId, category}``.

Every refusal of the simulator goes through :class:`HubSpotError` so a client
meets the same body, status and headers it would meet on a real portal.
Messages are HubSpot's where they are publicly known (quoted by clients in
public issue trackers); where they are not, the message is modelled on
HubSpot's style and ``docs/sim_crm.md`` says so.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

JSON_TYPE = "application/json;charset=utf-8"

# Generic 400 of HubSpot's public API (no detail about the cause).
GENERIC_400 = "There was a problem with the request."
AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
OBJECT_NOT_FOUND = "Object not found.  objectId are usually numeric."

_CATEGORY_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    415: "VALIDATION_ERROR",
    429: "RATE_LIMITS",
}


def category_for(status: int) -> str:
    return _CATEGORY_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")


def correlation_id() -> str:
    return str(uuid.uuid4())


class HubSpotError(Exception):
    """A refusal rendered as HubSpot's error body."""

    def __init__(self, status: int, message: str, category: str | None = None, *,
                 context: dict[str, list[str]] | None = None, errors: list[dict[str, Any]] | None = None,
                 sub_category: str | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category or category_for(status)
        self.context = context
        self.errors = errors
        self.sub_category = sub_category
        self.extra = extra or {}
        self.headers = headers or {}
        self.raw_body = body  # a body of another shape (the OAuth endpoint's)

    def body(self, cid: str | None = None) -> dict[str, Any]:
        if self.raw_body is not None:
            return {**self.raw_body, "correlationId": cid or correlation_id()}
        out: dict[str, Any] = {"status": "error", "message": self.message,
                               "correlationId": cid or correlation_id(), "category": self.category}
        if self.sub_category:
            out["subCategory"] = self.sub_category
        if self.context is not None:
            out["context"] = self.context
        if self.errors is not None:
            out["errors"] = self.errors
        out.update(self.extra)
        return out

    def render(self) -> tuple[bytes, dict[str, str]]:
        cid = correlation_id()
        headers = {"content-type": JSON_TYPE, "x-hubspot-correlation-id": cid, **self.headers}
        if self.status == 401:
            headers["x-hubspot-auth-failure"] = "401 Unauthorized"
        return orjson.dumps(self.body(cid)), headers


def error_body(status: int, message: str) -> tuple[bytes, dict[str, str]]:
    """Renderer for :class:`sandbox.common.faults.FaultMiddleware` (injected faults)."""
    if status == 429:
        err = rate_limit_error("TEN_SECONDLY_ROLLING", "injected", limit=0, remaining=0)
        return err.render()
    if status == 401:
        return HubSpotError(401, AUTH_NOT_FOUND).render()
    if status >= 500:
        # HubSpot's 5xx bodies carry no detail either.
        return HubSpotError(status, "internal error", "INTERNAL_ERROR").render()
    return HubSpotError(status, message).render()


def rate_limit_error(policy: str, group: str, *, limit: int, remaining: int,
                     headers: dict[str, str] | None = None) -> HubSpotError:
    """HubSpot's 429 body: ``errorType``/``policyName`` as its clients quote them, plus ``category``."""
    word = "ten_secondly_rolling" if policy == "TEN_SECONDLY_ROLLING" else policy.lower()
    return HubSpotError(
        429, f"You have reached your {word} limit.", "RATE_LIMITS",
        extra={"errorType": "RATE_LIMIT", "policyName": policy, "groupName": group},
        headers=headers or {},
    )


def property_errors(items: list[dict[str, Any]]) -> HubSpotError:
    """400 for invalid property values: HubSpot packs the per-property results in the message."""
    text = orjson.dumps(items).decode()
    return HubSpotError(400, f"Property values were not valid: {text}", "VALIDATION_ERROR")


def object_not_found(object_id: str) -> HubSpotError:
    return HubSpotError(404, OBJECT_NOT_FOUND, "OBJECT_NOT_FOUND", context={"id": [object_id]})


def standard_error(message: str, category: str, context: dict[str, list[str]] | None = None,
                   sub_category: str | None = None) -> dict[str, Any]:
    """One entry of a batch answer's ``errors[]`` (the spec's StandardError)."""
    out: dict[str, Any] = {"status": "error", "category": category, "message": message,
                           "context": context or {}, "errors": [], "links": {}}
    if sub_category:
        out["subCategory"] = sub_category
    return out

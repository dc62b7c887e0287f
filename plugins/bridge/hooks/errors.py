"""Errors of the vendor hooks: one hierarchy for both systems.

Callers catch :class:`VendorError` (or a subclass) and read ``system``,
``status``, ``code``/``category``, ``message`` and ``correlation_id``. An
error never carries a request body, a token or a secret; the vendor's message
is kept (it explains a 400) but e-mail addresses and mobile numbers it may
echo are masked, because exception text ends up in task logs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Required, TypedDict, Unpack

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([\w-]+(?:\.[\w-]+)+)")
# Chinese mobiles (with or without +86 / 86, spaces or dashes), and any other run of 11+ digits that
# starts like a phone number. HubSpot/Feishu ids (3000…/5000…/6900…) do not start with 1[3-9].
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
MAX_MESSAGE_CHARS = 500


def redact(text: str | None) -> str:
    """Mask personal data a vendor may echo in an error message (138****5678, ***@example.com)."""
    if not text:
        return ""
    out = _EMAIL.sub(lambda m: "***@" + m.group(1), text)
    out = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(3), out)
    if len(out) > MAX_MESSAGE_CHARS:
        out = out[:MAX_MESSAGE_CHARS] + "…"
    return out


class ConnectionConfigError(ValueError):
    """A Connection the hook cannot use as it is (no host, two ports that disagree). ``reason_zh`` says what to
    change, in Chinese, for the Connections page's Test button; the message says it in English for logs."""

    def __init__(self, message: str, *, reason_zh: str) -> None:
        self.reason_zh = reason_zh
        super().__init__(message)


class ErrorDetails(TypedDict, total=False):
    """What a :class:`VendorError` says besides its message (``system`` is required)."""

    system: Required[str]  # crm | oa
    status: int | None  # HTTP status
    code: str | None  # the vendor's error code (Feishu's number as text, HubSpot's category/status)
    category: str | None  # HubSpot's category
    correlation_id: str | None
    method: str | None
    path: str | None  # the endpoint as called
    retryable: bool | None  # overrides the class default


class VendorError(Exception):
    """A vendor API call that did not succeed.

    ``retryable`` tells the retry predicate whether another attempt may
    succeed; subclasses set it, an instance may override it.
    """

    retryable = False

    def __init__(self, message: str, **details: Unpack[ErrorDetails]) -> None:
        self.system = details["system"]
        self.status = details.get("status")
        self.code = details.get("code")
        self.category = details.get("category")
        self.message = redact(message)
        self.correlation_id = details.get("correlation_id")
        self.method = details.get("method")
        self.path = details.get("path")
        retryable = details.get("retryable")
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        parts = [f"{self.system}"]
        if where:
            parts.append(where)
        head = " ".join(parts)
        detail = []
        if self.status is not None:
            detail.append(f"HTTP {self.status}")
        if self.code:
            detail.append(str(self.code))
        if self.category and self.category != self.code:
            detail.append(self.category)
        text = f"{head}: {' '.join(detail)}: {self.message}" if detail else f"{head}: {self.message}"
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        return text

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for run summaries and audit), without any payload."""
        return {
            "error": type(self).__name__,
            "system": self.system,
            "status": self.status,
            "code": self.code,
            "category": self.category,
            "message": self.message,
            "correlation_id": self.correlation_id,
            "method": self.method,
            "path": self.path,
        }


class AuthError(VendorError):
    """Credentials refused (revoked secret, bad refresh token, token rejected after one refresh).

    Never retried: fix the Airflow Connection (see docs/connections.md)."""


class PermissionDeniedError(AuthError):
    """Authenticated, but the app lacks a scope/permission (HubSpot 403, Feishu 1390009)."""


class RateLimitedError(VendorError):
    """HTTP 429 (HubSpot ``RATE_LIMITS``, Feishu 99991400). ``retry_after``: seconds the vendor asked for."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Unpack[ErrorDetails]) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class NotFoundError(VendorError):
    """The object, instance, definition or path does not exist."""


class BadRequestError(VendorError):
    """A 4xx the vendor will refuse again: fix the request (the vendor's message says what)."""


class ValidationError(BadRequestError):
    """Invalid input (HubSpot ``VALIDATION_ERROR``, Feishu 1390001 / 99992402)."""


class ConflictError(BadRequestError):
    """HubSpot 409, Feishu 60012 (uuid already used)."""


class ServerError(VendorError):
    """5xx or the vendor's "try again later" codes: retried."""

    retryable = True


class TransportError(VendorError):
    """No usable answer: connection refused/reset, timeout, dropped connection.

    ``sent`` is False only when the request provably never left (connect
    failure): only then is a non-idempotent write safe to resend."""

    retryable = True

    def __init__(self, message: str, *, sent: bool = True, **kw: Unpack[ErrorDetails]) -> None:
        self.sent = sent
        super().__init__(message, **kw)


class BadResponseError(VendorError):
    """An answer that is not the vendor's JSON: HTML page with 200, malformed JSON, a body over the
    size cap, a wrong envelope, a page repeated by the server or a cursor that loops."""


class PayloadTooLargeError(BadResponseError):
    """An answer refused for its size (over the hook's byte cap): ask for fewer records per call."""


BODY_TOO_LARGE = "body_too_large"  # the ``code`` of a PayloadTooLargeError (kept for older callers)


class RecordErrorKind(StrEnum):
    """Why one record of a batch call failed, in the hook's terms (``RecordOutcome.kind``); the vendor's own
    spelling stays in ``category``, for messages and audit."""

    NOT_FOUND = "not_found"  # no such record (deleted, merged, wrong id)
    VALIDATION = "validation"  # the vendor refused a value (unknown property, bad enum option, …)
    CONFLICT = "conflict"  # a unique value already taken / the record exists already
    DUPLICATE_INPUT = "duplicate_input"  # the same key twice in one call: only the last one was written
    MISSING_ID = "missing_id"  # the record had no value for the id property
    MISSING_RESULT = "missing_result"  # the vendor answered without a result or an error for it
    OTHER = "other"


class AmbiguousWriteError(VendorError):
    """A non-idempotent write whose outcome is unknown: the request may have been applied.

    ``inputs`` are the records of the request in doubt (reconcile them, e.g. by
    searching a unique property, before writing again); ``outcomes`` are the
    results of the chunks that did complete; ``pending`` the records not sent.
    Kept out of the message: they may hold personal data."""

    def __init__(
        self,
        message: str,
        *,
        inputs: Sequence[Any] = (),
        outcomes: Sequence[Any] = (),
        pending: Sequence[Any] = (),
        **kw: Unpack[ErrorDetails],
    ) -> None:
        self.inputs = list(inputs)
        self.outcomes = list(outcomes)
        self.pending = list(pending)
        super().__init__(message, **kw)


__all__ = [
    "AmbiguousWriteError",
    "AuthError",
    "BadRequestError",
    "BadResponseError",
    "ConflictError",
    "ConnectionConfigError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RecordErrorKind",
    "ServerError",
    "TransportError",
    "ValidationError",
    "VendorError",
    "redact",
]

"""Feishu error codes and the exception every vendor route raises.

Business errors of the approval v4 API answer HTTP 400 with ``{code, msg}``
(the codes of each endpoint's ``x-lark-error-mappings`` in the spec and of the
vendor's error tables); gateway errors (token, frequency limit, field
validation) use the platform's generic codes.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

# Platform (gateway) codes: open.feishu.cn "通用错误码".
TOKEN_MISSING = 99991661  # "Need a token"
TOKEN_INVALID = 99991663
TOKEN_EXPIRED = 99991677  # documented for user tokens; see SimConfig.expired_token_code
RATE_LIMITED = 99991400
FIELD_VALIDATION = 99992402  # a request field breaks a documented validation rule (range, length)
NOT_FOUND_PATH = 99991201
METHOD_MISMATCH = 99991301
# Token endpoint.
TOKEN_PARAM_INVALID = 10003  # unknown app_id / missing field
TOKEN_SECRET_INVALID = 10014  # wrong (or revoked) app_secret
# Approval v4.
PARAM_INVALID = 1390001
APPROVAL_NOT_FOUND = 1390002
INSTANCE_NOT_FOUND = 1390003
USER_NOT_FOUND = 1390004
SUBSCRIPTION_EXISTED = 1390007
NO_PERMISSION = 1390009
TASK_NOT_FOUND = 1390010
SERVICE_ERROR = 1395001
UUID_CONFLICT = 60012
INTERNAL_ERROR = 2200

MESSAGES = {
    TOKEN_MISSING: "Need a token",
    TOKEN_INVALID: "Invalid access token for authorization. Please make a request with token attached.",
    TOKEN_EXPIRED: "token expire",
    RATE_LIMITED: "request trigger frequency limit",
    FIELD_VALIDATION: "field validation failed",
    NOT_FOUND_PATH: "resource not find",
    METHOD_MISMATCH: "request method doesn't match",
    TOKEN_PARAM_INVALID: "invalid param",
    TOKEN_SECRET_INVALID: "app secret invalid",
    PARAM_INVALID: "param is invalid",
    APPROVAL_NOT_FOUND: "approval code not found",
    INSTANCE_NOT_FOUND: "instance code not found",
    USER_NOT_FOUND: "user_id or open_id not found",
    SUBSCRIPTION_EXISTED: "subscription existed",
    NO_PERMISSION: "no operation permission",
    TASK_NOT_FOUND: "task not found",
    SERVICE_ERROR: "There have been some errors. Please try again later",
    UUID_CONFLICT: "uuid conflict: the uuid has already been used to create an instance",
    INTERNAL_ERROR: "internal error",
}

_log_seq = itertools.count(1)


def log_id() -> str:
    """A Feishu-looking request log id (``X-Tt-Logid`` header, ``error.log_id``)."""
    return time.strftime("%Y%m%d%H%M%S") + f"{next(_log_seq):018X}"


class FeishuError(Exception):
    """Raised by a route; rendered as Feishu's error body with ``status``."""

    def __init__(self, code: int, detail: str | None = None, status: int = 400,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        base = MESSAGES.get(code, "error")
        self.code = code
        self.msg = f"{base}: {detail}" if detail else base
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.msg)

    def body(self, request_log_id: str) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg, "error": {"log_id": request_log_id, **self.extra}}


def param_invalid(detail: str) -> FeishuError:
    return FeishuError(PARAM_INVALID, detail)


def field_violation(field: str, description: str) -> FeishuError:
    """A documented validation rule broken (page_size range, uuid length, list size)."""
    return FeishuError(FIELD_VALIDATION, f"{field}: {description}",
                       extra={"field_violations": [{"field": field, "description": description}]})

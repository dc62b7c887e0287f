"""OaHook: Feishu (Lark) approval v4 behind the ``oa_default`` Connection.

Vendor knowledge kept here: the tenant_access_token (fetched with the app id
and secret, cached per process, renewed before expiry and once when refused
with 99991661/99991663/99991668/99991677), the ``{code, msg, data}`` envelope
and its codes, 429 with ``x-ogw-ratelimit-reset``, ``form`` as a JSON string,
``uuid`` idempotency (a used uuid answers 60012: the existing instance is read
back with ``GET /instances/{uuid}``), the 10-hour window of the instance-code
list, the 30-day span and 5–200 page size of ``instances/query``, and
``user_id_type`` (Feishu's default is open_id; the bridge speaks user_id).

The hook returns Feishu's objects; ``bridge.dictionary`` maps them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bridge.hooks import _explain, connection_notes, ui
from bridge.hooks._auth import BearerTokenAuth, Token, TokenCache, credentials_key
from bridge.hooks._base import VendorHook, chunked, mask, to_ms, token_answer
from bridge.hooks._http import TOKEN_REQUEST, VendorProtocol, error_by_status, retry_after_seconds
from bridge.hooks.errors import (
    AuthError,
    BadResponseError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
    VendorError,
)
from bridge.hooks.feishu_codec import (
    InstanceComment,
    InstanceRef,
    OaObject,
    comment_content,
    comment_of,
    encode_form,
    instance_ref,
    query_item_code,
    query_item_ok,
)
from bridge.hooks.feishu_files import OaFiles
from bridge.hooks.feishu_performance import OaPerformance

TENANT_AUTH_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
INSTANCES = "/open-apis/approval/v4/instances"
INSTANCE = "/open-apis/approval/v4/instances/{instance_id}"
QUERY = "/open-apis/approval/v4/instances/query"
CANCEL = "/open-apis/approval/v4/instances/cancel"
COMMENTS = "/open-apis/approval/v4/instances/{instance_id}/comments"
APPROVAL = "/open-apis/approval/v4/approvals/{approval_code}"
SUBSCRIBE = "/open-apis/approval/v4/approvals/{approval_code}/subscribe"
BATCH_GET_ID = "/open-apis/contact/v3/users/batch_get_id"
USERS_BATCH = "/open-apis/contact/v3/users/batch"

LIST_WINDOW_MS = 10 * 3_600_000  # GET /instances: "单次查询时间范围不要超过10小时"
QUERY_SPAN_MS = 30 * 86_400_000  # instances/query: at most 30 days
LIST_PAGE_SIZE = 100
QUERY_PAGE_SIZE = 200
USERS_PER_CALL = 50

# Codes that mean "this access token is refused" (missing, invalid/expired, expired): refresh once.
TOKEN_CODES = frozenset({99991661, 99991663, 99991668, 99991677})
CREDENTIAL_CODES = frozenset({10003, 10014})  # token endpoint: unknown app / wrong or revoked secret
SCOPE_CODES = frozenset({99991672, 99991679, 1390009})
NOT_FOUND_CODES = frozenset({1390002, 1390003, 99991201})
VALIDATION_CODES = frozenset({1390001, 1390004, 1390007, 1390010, 99992402})
SERVER_CODES = frozenset({2200, 1395001})
RATE_LIMIT_CODE = 99991400
UUID_CONFLICT = 60012
ALREADY_SUBSCRIBED = 1390007  # "subscription existed"

# Our approval_status -> instances/query instance_status.
QUERY_STATUS = {
    "PENDING": "PENDING",
    "APPROVED": "APPROVED",
    "REJECTED": "REJECT",
    "CANCELED": "RECALL",
    "DELETED": "DELETED",
    "ALL": "ALL",
}


class FeishuProtocol(VendorProtocol):
    system = "oa"

    def error_for(
        self, status: int, body: object, headers: Mapping[str, str], method: str, template: str, path: str
    ) -> VendorError | None:
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, bool) or not isinstance(code, int):
            code = None
        if status < 400 and code == 0:
            return None
        log_id = headers.get("x-tt-logid")
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            log_id = body["error"].get("log_id") or log_id
        msg = str(body.get("msg", "")) if isinstance(body, dict) else ""
        kw: dict[str, Any] = {
            "system": self.system,
            "status": status,
            "code": None if code is None else str(code),
            "correlation_id": log_id,
            "method": method,
            "path": path,
        }
        if code is None:
            if status < 400:
                return BadResponseError(
                    "the answer is not Feishu's {code, msg, data} envelope", retryable=False, **kw
                )
            return error_by_status(
                status,
                msg or f"HTTP {status} without a Feishu body",
                **{k: v for k, v in kw.items() if k != "status"},
            )
        if code in TOKEN_CODES:
            return AuthError(msg or "access token refused", **kw)
        if code in CREDENTIAL_CODES:
            return AuthError(
                f"{msg or 'app credentials refused'}: check the app id and secret of the OA Connection", **kw
            )
        if code == RATE_LIMIT_CODE or status == 429:
            return RateLimitedError(msg or "frequency limit", retry_after=retry_after_seconds(headers), **kw)
        if code in SCOPE_CODES or status == 403:
            return PermissionDeniedError(msg or "no permission", **kw)
        if code in NOT_FOUND_CODES:
            return NotFoundError(msg or "not found", **kw)
        if code == UUID_CONFLICT:
            return ConflictError(msg or "uuid already used", **kw)
        if code in VALIDATION_CODES:
            return ValidationError(msg or "invalid parameter", **kw)
        if code in SERVER_CODES or status >= 500:
            return ServerError(msg or "server error", **kw)
        return error_by_status(
            status if status >= 400 else 400,
            msg or f"Feishu code {code}",
            **{k: v for k, v in kw.items() if k != "status"},
        )

    def token_rejected(self, exc: VendorError) -> bool:
        return (
            isinstance(exc, AuthError)
            and exc.code is not None
            and exc.code.isdigit()
            and int(exc.code) in TOKEN_CODES
        )


class OaHook(OaPerformance, OaFiles, VendorHook):
    """Feishu approval v4 + contact user-id lookup, for the OA side of the bridge."""

    conn_name_attr = "oa_conn_id"
    default_conn_name = "oa_default"
    conn_type = ui.OA_CONN_TYPE
    hook_name = ui.OA_UI["hook-name"]
    connection_ui = ui.OA_UI
    vendor_log = logging.getLogger("bridge.hooks.oa")
    protocol = FeishuProtocol()

    def __init__(self, oa_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        self.oa_conn_id = oa_conn_id
        super().__init__(oa_conn_id, **kwargs)
        self.test_approval_code: str | None = None
        self.app_id = ""

    # ------------------------------------------------------------------ auth
    def _build_auth(self, conn: Any, extra: dict[str, Any], base_url: str) -> BearerTokenAuth:
        app_id, secret = conn.login or "", conn.password or ""
        if not app_id or not secret:
            raise AuthError(
                f"Connection {self.conn_id!r} needs the app id (login) and app secret (password)",
                system="oa",
                code=_explain.INCOMPLETE,
            )
        mask(secret)
        self.app_id = app_id
        self.test_approval_code = extra.get("test_approval_code") or None
        cache = TokenCache.for_key(credentials_key("feishu", base_url, app_id, secret))

        def fetch() -> Token:
            answer = self.client.call(
                "POST", TENANT_AUTH_PATH, json={"app_id": app_id, "app_secret": secret}, send=TOKEN_REQUEST
            )
            body = token_answer(answer, "tenant_access_token", "expire", "oa", TENANT_AUTH_PATH)
            value, expire = body["tenant_access_token"], body["expire"]
            return Token.expiring_in(value, float(expire))

        return BearerTokenAuth(cache, fetch)

    def _data(self, method: str, template: str, **kw: Any) -> OaObject:
        body = self.call(method, template, **kw).body
        data = body.get("data", {}) if isinstance(body, dict) else None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise BadResponseError(
                "data of the answer is not an object", system="oa", method=method, path=template
            )
        return data

    # ------------------------------------------------------------------ instances
    def create_instance(
        self,
        approval_code: str,
        applicant: str,
        form: Sequence[Mapping[str, Any]] | str,
        uuid: str,
        department_id: str | None = None,
        title: str | None = None,
    ) -> str:
        """Create an approval instance; return its ``instance_code``.

        ``uuid`` makes it idempotent: the call is retried on transient faults, and
        when Feishu answers 60012 (uuid already used — e.g. our previous attempt
        was applied but its answer was lost) the existing instance is read back
        and its code returned, after checking it is the same approval and applicant."""
        if not uuid or len(uuid) > 64:
            raise ValueError("uuid must be 1 to 64 characters")
        body: dict[str, Any] = {
            "approval_code": approval_code,
            "user_id": applicant,
            "uuid": uuid,
            "form": encode_form(form),
        }
        if department_id:
            body["department_id"] = department_id
        if title:
            body["title"] = title
        try:
            data = self._data("POST", INSTANCES, json=body)
        except ConflictError as exc:
            if exc.code != str(UUID_CONFLICT):
                raise
            return self._existing_instance(approval_code, applicant, uuid, exc)
        code = data.get("instance_code")
        if not isinstance(code, str) or not code:
            raise BadResponseError(
                "create answered without instance_code", system="oa", method="POST", path=INSTANCES
            )
        self.vendor_log.debug("oa: created instance %s of approval %s", code, approval_code)
        return code

    def _existing_instance(self, approval_code: str, applicant: str, uuid: str, cause: ConflictError) -> str:
        try:
            existing = self.get_instance(uuid)  # Feishu accepts the create uuid as instance_id
        except NotFoundError as exc:
            raise _uuid_conflict(
                f"uuid already used (60012) but no instance is readable by it: {exc.message}"
            ) from cause
        code = existing.get("instance_code")
        if (
            existing.get("approval_code") != approval_code
            or existing.get("user_id") != applicant
            or not isinstance(code, str)
        ):
            raise _uuid_conflict(
                f"uuid already used by another instance ({existing.get('instance_code')}, "
                f"approval {existing.get('approval_code')}): a uuid must identify one instance"
            ) from cause
        self.vendor_log.info(
            "oa: uuid already used; instance %s of approval %s already exists, returning it",
            code,
            approval_code,
        )
        return code

    def get_instance(self, instance_code: str) -> OaObject:
        """The instance detail (``form`` stays Feishu's JSON string)."""
        return self._data(
            "GET", INSTANCE, path_params={"instance_id": instance_code}, params={"user_id_type": "user_id"}
        )

    def cancel_instance(self, approval_code: str, instance_code: str, user_id: str) -> None:
        """Withdraw a PENDING instance as its applicant (Feishu: only the applicant may)."""
        self._data(
            "POST",
            CANCEL,
            params={"user_id_type": "user_id"},
            json={"approval_code": approval_code, "instance_code": instance_code, "user_id": user_id},
        )

    def add_comment(self, instance_code: str, user_id: str, text: str) -> str:
        """Post ``text`` as a comment on the instance in the name of ``user_id``; returns the comment id.
        Feishu: ``POST /approval/v4/instances/{instance_id}/comments`` (创建评论, scope approval:instance.comment);
        ``user_id`` (a query parameter) is required."""
        if not user_id:
            raise ValueError("a comment needs the OA user_id of its author")
        data = self._data(
            "POST",
            COMMENTS,
            path_params={"instance_id": instance_code},
            params={"user_id_type": "user_id", "user_id": user_id},
            json={"content": comment_content(text)},
        )
        comment_id = data.get("comment_id")
        if not isinstance(comment_id, str) or not comment_id:
            raise BadResponseError(
                "create comment answered without comment_id", system="oa", method="POST", path=COMMENTS
            )
        return comment_id

    def comments(self, instance_code: str, user_id: str) -> list[InstanceComment]:
        """The comments on an instance as ``user_id`` sees them (获取评论, paged by ``page_token``), oldest first."""

        def fetch(token: str | None) -> tuple[list[InstanceComment], str | None]:
            params: dict[str, Any] = {"user_id_type": "user_id", "user_id": user_id, "page_size": 100}
            if token:
                params["page_token"] = token
            data = self._data("GET", COMMENTS, path_params={"instance_id": instance_code}, params=params)
            items = [comment_of(i) for i in data.get("comments") or [] if isinstance(i, dict)]
            return items, (data.get("page_token") or None) if data.get("has_more") else None

        pages = self._cursor_pages(fetch, lambda c: c.comment_id, f"oa comments {instance_code}")
        return [c for page in pages for c in page]

    def approval_definition(self, approval_code: str) -> OaObject:
        """The approval definition (``form`` is a JSON string of widgets): setup checks and form filling."""
        return self._data("GET", APPROVAL, path_params={"approval_code": approval_code})

    def subscribe_approval(self, approval_code: str) -> bool:
        """Subscribe this app to the events of an approval definition: True when subscribed now, False when
        it already was (Feishu's "subscription existed"); other refusals raise."""
        try:
            self.call("POST", SUBSCRIBE, path_params={"approval_code": approval_code})
        except VendorError as exc:
            if exc.code == str(ALREADY_SUBSCRIBED):
                return False
            raise
        return True

    def iter_instance_codes(
        self, approval_code: str, created_from: int | datetime, created_to: int | datetime
    ) -> Iterator[list[str]]:
        """Pages of instance codes created in [created_from, created_to] (ms, both inclusive), oldest first.

        Split into windows of at most 10 hours (Feishu's limit); consecutive windows
        are [lo, hi] and [hi + 1, …] so nothing is counted twice at an edge."""
        lo, end = to_ms(created_from, "created_from"), to_ms(created_to, "created_to")
        while lo <= end:
            hi = min(end, lo + LIST_WINDOW_MS)

            def fetch(token: str | None, lo: int = lo, hi: int = hi) -> tuple[list[str], str | None]:
                params: dict[str, Any] = {
                    "approval_code": approval_code,
                    "start_time": lo,
                    "end_time": hi,
                    "page_size": LIST_PAGE_SIZE,
                }
                if token:
                    params["page_token"] = token
                data = self._data("GET", INSTANCES, params=params)
                codes = data.get("instance_code_list") or []
                if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                    raise BadResponseError(
                        "instance_code_list is not a list of codes", system="oa", method="GET", path=INSTANCES
                    )
                return codes, (data.get("page_token") or None) if data.get("has_more") else None

            yield from self._cursor_pages(fetch, lambda c: c, f"oa list {approval_code} [{lo}, {hi}]")
            lo = hi + 1

    def query_instances(
        self,
        approval_code: str,
        created_from: int | datetime,
        created_to: int | datetime,
        status: str | None = None,
        user_id: str | None = None,
    ) -> Iterator[list[OaObject]]:
        """Pages of ``instances/query`` items (``{approval, group, instance}``; statuses lower-case as Feishu
        answers) created in [created_from, created_to], in spans of at most 30 days, 200 per page.
        ``status``: an ``approval_status`` (PENDING, APPROVED, REJECTED, CANCELED, DELETED) or None for all."""
        lo, end = to_ms(created_from, "created_from"), to_ms(created_to, "created_to")
        wanted = QUERY_STATUS.get((status or "ALL").upper())
        if wanted is None:
            raise ValueError(f"status must be one of {', '.join(QUERY_STATUS)}, not {status!r}")
        while lo <= end:
            hi = min(end, lo + QUERY_SPAN_MS)
            body: dict[str, Any] = {
                "approval_code": approval_code,
                "instance_status": wanted,
                "instance_start_time_from": str(lo),
                "instance_start_time_to": str(hi),
            }
            if user_id:
                body["user_id"] = user_id

            def fetch(token: str | None, body: dict[str, Any] = body) -> tuple[list[OaObject], str | None]:
                params: dict[str, Any] = {"page_size": QUERY_PAGE_SIZE, "user_id_type": "user_id"}
                if token:
                    params["page_token"] = token
                data = self._data("POST", QUERY, params=params, json=body)
                items = data.get("instance_list") or []
                good = [i for i in items if query_item_ok(i)]
                if len(good) < len(items):
                    self.vendor_log.warning(
                        "oa query %s: %d item(s) of the wrong shape skipped",
                        approval_code,
                        len(items) - len(good),
                    )
                return good, (data.get("page_token") or None) if data.get("has_more") else None

            yield from self._cursor_pages(fetch, query_item_code, f"oa query {approval_code} [{lo}, {hi}]")
            lo = hi + 1

    def iter_instance_refs(
        self,
        approval_code: str,
        created_from: int | datetime,
        created_to: int | datetime,
        status: str | None = None,
    ) -> Iterator[list[InstanceRef]]:
        """:meth:`query_instances` as typed references (code, start and end time) of the instances."""
        for page in self.query_instances(approval_code, created_from, created_to, status=status):
            yield [instance_ref(item) for item in page]

    # ------------------------------------------------------------------ people
    def user_ids(self, emails: Iterable[str] = (), mobiles: Iterable[str] = ()) -> dict[str, str | None]:
        """OA ``user_id`` for each e-mail / mobile as given (None: no OA account), 50 of each per call."""
        email_list = list(dict.fromkeys(e for e in emails if e))
        mobile_list = list(dict.fromkeys(m for m in mobiles if m))
        out: dict[str, str | None] = {e: None for e in email_list}
        out.update({m: None for m in mobile_list})
        email_chunks = list(chunked(email_list, USERS_PER_CALL))
        mobile_chunks = list(chunked(mobile_list, USERS_PER_CALL))
        for n in range(max(len(email_chunks), len(mobile_chunks))):
            es = email_chunks[n] if n < len(email_chunks) else []
            ms = mobile_chunks[n] if n < len(mobile_chunks) else []
            data = self._data(
                "POST", BATCH_GET_ID, params={"user_id_type": "user_id"}, json={"emails": es, "mobiles": ms}
            )
            by_email = {_norm_email(e): e for e in es}
            by_mobile = {_norm_mobile(m): m for m in ms}
            for item in data.get("user_list") or []:
                if not isinstance(item, dict):
                    continue
                uid = item.get("user_id") or None
                if item.get("email") is not None:
                    key = by_email.get(_norm_email(str(item["email"])))
                elif item.get("mobile") is not None:
                    key = by_mobile.get(_norm_mobile(str(item["mobile"])))
                else:
                    key = None
                if key is not None and isinstance(uid, str):
                    out[key] = uid
        return out

    def user_names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """``{user_id: name}`` of OA users (contact v3 ``users/batch``, 50 per call); unknown ids are left out.
        Needs the contact permission to read user names (docs/connections.md)."""
        wanted = list(dict.fromkeys(u for u in user_ids if u))
        out: dict[str, str] = {}
        for chunk in chunked(wanted, USERS_PER_CALL):
            data = self._data("GET", USERS_BATCH, params={"user_ids": chunk, "user_id_type": "user_id"})
            for item in data.get("items") or []:
                if isinstance(item, dict) and isinstance(item.get("user_id"), str) and item.get("name"):
                    out[item["user_id"]] = str(item["name"])
        return out

    # ------------------------------------------------------------------ connection test
    def test_connection(self) -> tuple[bool, str]:
        """The Test button: a tenant token, then the cheapest authenticated read (the approval definition of
        the Test code; without one, a contact lookup)."""

        def probe() -> str:
            client = self.client
            assert client.auth is not None
            client.auth.token()
            code = self.test_approval_code or _default_approval_code()
            if code:
                definition = self.approval_definition(code)
                name = str(definition.get("approval_name") or code)
                return connection_notes.with_notes("oa", self, _explain.success_oa(self.base_url, self.app_id, name))
            self.user_ids(emails=["connection-test@example.invalid"])
            return connection_notes.with_notes("oa", self, _explain.success_oa(self.base_url, self.app_id, None))

        return self._test(probe)


def _uuid_conflict(message: str) -> ConflictError:
    """A create whose uuid (60012) cannot be matched to the instance the caller meant."""
    return ConflictError(message, system="oa", code=str(UUID_CONFLICT), method="POST", path=INSTANCES)


def _norm_email(value: str) -> str:
    return value.strip().lower()


def _norm_mobile(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
    return digits[3:] if digits.startswith("+86") else digits


def _default_approval_code() -> str | None:
    """立项申请's code from include/settings.yaml (oa.approval_codes), if readable."""
    try:
        from bridge import settings

        codes = settings.load().get("oa", {}).get("approval_codes", {})
        code = codes.get("project_initiation")
        return str(code) if code else None
    except Exception:
        return None

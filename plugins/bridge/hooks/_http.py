"""One vendor call, done carefully: timeout, size cap, JSON check, error mapping, retries, counting.

:class:`ApiClient` is what both hooks use to talk HTTP. Per call it:

- sends on the hook's keep-alive session with a (connect, read) timeout;
- streams the answer and refuses it past ``max_body_bytes`` (or when it has
  not finished arriving after ``max_body_seconds``);
- checks that it is JSON (an HTML page with 200 is a proxy's error page);
- lets the vendor protocol map the vendor's envelope to a :class:`VendorError`;
- on a refused token, drops it and resends once with a fresh one;
- retries what :mod:`bridge.hooks._retry` says is retryable, and turns a
  possibly-applied failure of a non-idempotent write into
  :class:`AmbiguousWriteError` instead of retrying it;
- counts every HTTP request in ``api_calls`` by endpoint template.

Logs name the method, the endpoint template, the attempt, the wait and the
status: never a body, a query string, a token or a secret.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import orjson
import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from tenacity import RetryCallState, Retrying, retry_if_exception

from bridge.hooks._auth import BearerTokenAuth, NoAuth, StaticTokenAuth
from bridge.hooks._retry import RetryPolicy, attempts_for, compute_wait, is_retryable
from bridge.hooks.errors import (
    BODY_TOO_LARGE,
    AmbiguousWriteError,
    AuthError,
    BadRequestError,
    BadResponseError,
    ConflictError,
    ErrorDetails,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    VendorError,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_BODY_SECONDS = 120.0
_READ_CHUNK = 1 << 20
NOT_JSON = object()

Auth = BearerTokenAuth | StaticTokenAuth


@dataclass
class Answer:
    status: int
    headers: CaseInsensitiveDict[str]
    body: Any


class VendorProtocol:
    """What differs between vendors: the error envelope and what a refused token looks like."""

    system = "vendor"

    def error_for(
        self, status: int, body: object, headers: Mapping[str, str], method: str, template: str, path: str
    ) -> VendorError | None:
        """The error this answer means, or None for a success. ``body`` is None when it was not JSON."""
        raise NotImplementedError

    def token_rejected(self, exc: VendorError) -> bool:
        """True when the vendor refused the access token itself (expired, revoked): refresh once."""
        raise NotImplementedError


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` (seconds or HTTP date) or Feishu's ``x-ogw-ratelimit-reset`` (seconds)."""
    raw = headers.get("Retry-After")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if raw else None
            if parsed is not None and parsed.tzinfo is not None:
                return max(0.0, parsed.timestamp() - time.time())
    reset = headers.get("x-ogw-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset))
        except ValueError:
            return None
    return None


def error_by_status(status: int, message: str, **kw: Any) -> VendorError:
    """The generic mapping when the body does not say more."""
    if status == 401:
        return AuthError(message, status=status, **kw)
    if status == 403:
        return PermissionDeniedError(message, status=status, **kw)
    if status == 404:
        return NotFoundError(message, status=status, **kw)
    if status == 409:
        return ConflictError(message, status=status, **kw)
    if status == 429:
        return RateLimitedError(message, status=status, **kw)
    if status >= 500:
        return ServerError(message, status=status, **kw)
    return BadRequestError(message, status=status, **kw)


def looks_like_html(headers: Mapping[str, str], raw: bytes) -> bool:
    ctype = headers.get("Content-Type", "").lower()
    return "html" in ctype or raw.lstrip()[:1] == b"<"


@dataclass(frozen=True)
class Endpoint:
    """Where a hook's calls go and as whom: the base URL, the keep-alive session, the auth (None: none)."""

    base_url: str
    session: requests.Session
    auth: Auth | None


@dataclass(frozen=True)
class Limits:
    """How long a call may take and how large its answer may be."""

    timeout: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)  # (connect, read) seconds
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_body_seconds: float = DEFAULT_MAX_BODY_SECONDS


@dataclass(frozen=True)
class Send:
    """How one call is sent: ``idempotent`` False for a write that must not be resent once it may have been
    applied; ``authenticated`` False for the token request itself; ``retry`` False to try once."""

    idempotent: bool = True
    authenticated: bool = True
    retry: bool = True


SEND_DEFAULT = Send()
WRITE_ONCE = Send(idempotent=False)  # a create without a key: never resent once it may have been applied
TOKEN_REQUEST = Send(authenticated=False, retry=False)  # the token exchange: no token, no retry


@dataclass(frozen=True)
class _Request:
    """One prepared request: ``path`` is ``template`` with its placeholders filled, ``body`` the JSON bytes."""

    method: str
    template: str
    path: str
    params: Mapping[str, Any] | None
    body: bytes | None
    form: Mapping[str, str] | None
    stream: StreamedBody | None = None


class StreamedBody(Protocol):
    """A request body sent as it is read (an upload): its Content-Type, its length, its chunks; iterating
    again starts it over (a resend after a refused token or a 429 sends the same bytes)."""

    content_type: str

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...


class ApiClient:
    """Sends calls for one hook (its session, auth, policy and counters)."""

    def __init__(
        self,
        *,
        protocol: VendorProtocol,
        endpoint: Endpoint,
        policy: RetryPolicy,
        api_calls: Counter[str],
        log: logging.Logger,
        limits: Limits = Limits(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.protocol = protocol
        self.system = protocol.system
        self.base_url = endpoint.base_url.rstrip("/")
        self.session = endpoint.session
        self.auth = endpoint.auth
        self.policy = policy
        self.api_calls = api_calls
        self.log = log
        self.timeout = limits.timeout
        self.max_body_bytes = limits.max_body_bytes
        self.max_body_seconds = limits.max_body_seconds
        self.sleep = sleep
        self._no_auth = NoAuth()

    # ------------------------------------------------------------------ public
    def call(
        self,
        method: str,
        template: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: Mapping[str, str] | StreamedBody | None = None,
        send: Send = SEND_DEFAULT,
    ) -> Answer:
        """Send ``method template`` (``{name}`` placeholders filled from ``path_params``) with retries.

        The body is ``json`` (sent as JSON), or ``body``: a mapping sent as a form, or a streamed upload."""
        path = template
        if path_params:
            path = template.format(**{k: quote(str(v), safe="") for k, v in path_params.items()})
        form = body if isinstance(body, Mapping) else None
        stream = None if isinstance(body, Mapping) else body
        request = _Request(
            method, template, path, params, None if json is None else orjson.dumps(json), form, stream
        )

        def attempt() -> Answer:
            return self._attempt(request, send)

        if not send.retry:
            return attempt()
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self._wait,
            stop=self._stop,
            reraise=True,
            sleep=self.sleep,
            before_sleep=lambda rs: self._log_retry(method, template, rs),
        )
        answer: Answer = retrying(attempt)
        return answer

    # ------------------------------------------------------------------ retry plumbing
    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        return compute_wait(exc, rs.attempt_number, self.policy)

    def _stop(self, rs: RetryCallState) -> bool:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        limit = attempts_for(exc, self.policy) if exc is not None else self.policy.max_attempts
        if rs.attempt_number >= limit:
            return True
        return rs.idle_for + (rs.upcoming_sleep or 0.0) > self.policy.max_total_wait

    def _log_retry(self, method: str, template: str, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        self.log.warning(
            "%s %s %s: attempt %d failed (%s); retrying in %.2f s",
            self.system,
            method,
            template,
            rs.attempt_number,
            _reason(exc),
            rs.upcoming_sleep or 0.0,
        )

    # ------------------------------------------------------------------ one attempt
    def _attempt(self, request: _Request, send: Send) -> Answer:
        method, template, path = request.method, request.template, request.path
        auth = self.auth if send.authenticated and self.auth is not None else None
        refreshed = False
        while True:
            # Fetch (or reuse) the token first: a failure here happened before the write was sent.
            used = auth.token() if auth is not None else None
            try:
                return self._send(request, auth)
            except VendorError as exc:
                if auth is not None and self.protocol.token_rejected(exc):
                    if not refreshed and used is not None and auth.rejected(used):
                        refreshed = True
                        self.log.info(
                            "%s %s %s: access token refused (%s); fetching a new one",
                            self.system,
                            method,
                            template,
                            exc.code or exc.status,
                        )
                        continue
                    why = "again after a refresh" if refreshed else "and cannot be refreshed (a static token)"
                    raise AuthError(
                        f"the access token was refused {why}: {exc.message}",
                        **_carried(exc, self.system, method, path),
                    ) from exc
                if not send.idempotent and _maybe_applied(exc):
                    raise AmbiguousWriteError(
                        f"the write may have been applied but its answer was lost ({_reason(exc)}); "
                        f"not retried: reconcile before writing again",
                        **_carried(exc, self.system, method, path),
                    ) from exc
                raise

    def _send(self, request: _Request, auth: Auth | None) -> Answer:
        method, template, path, body = request.method, request.template, request.path, request.body
        self.api_calls[f"{method} {template}"] += 1
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else None
        data: bytes | Mapping[str, str] | StreamedBody | None = body if body is not None else request.form
        if request.stream is not None:
            headers, data = {"Content-Type": request.stream.content_type}, request.stream
        try:
            resp = self.session.request(
                method,
                self.base_url + path,
                params=request.params,
                data=data,
                headers=headers,
                auth=auth or self._no_auth,
                timeout=self.timeout,
                stream=True,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise self._transport("connect timeout", method, path, sent=False) from exc
        except requests.exceptions.Timeout as exc:
            raise self._transport("read timeout", method, path) from exc
        except requests.exceptions.ConnectionError as exc:
            sent = not _is_connect_failure(exc)
            raise self._transport(
                "connection failed" if not sent else "connection dropped", method, path, sent=sent
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise self._transport(type(exc).__name__, method, path) from exc
        raw = self._read(resp, method, path)
        status = resp.status_code
        parsed = self._parse(raw, resp, request)
        error = self.protocol.error_for(
            status, None if parsed is NOT_JSON else parsed, resp.headers, method, template, path
        )
        if error is not None:
            raise error
        return Answer(status=status, headers=resp.headers, body=parsed)

    def _parse(self, raw: bytes, resp: requests.Response, request: _Request) -> Any:
        """The JSON of an answer (None when empty, ``NOT_JSON`` for an error status whose body is not JSON);
        a 2xx/3xx that is not JSON is refused (an HTML page is a proxy's, not the vendor's)."""
        status, method, path = resp.status_code, request.method, request.path
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            if status >= 400:
                return NOT_JSON
            what = (
                f"an HTML page instead of JSON ({len(raw)} bytes): a proxy or gateway error page, not the "
                f"vendor's answer"
                if looks_like_html(resp.headers, raw)
                else f"malformed JSON ({len(raw)} bytes)"
            )
            raise BadResponseError(
                f"HTTP {status} with {what}",
                system=self.system,
                status=status,
                method=method,
                path=path,
                retryable=True,
            ) from None

    def _read(self, resp: requests.Response, method: str, path: str) -> bytes:
        """The whole body, refusing more than ``max_body_bytes``; the connection goes back to the pool."""
        cap = self.max_body_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            resp.close()
            raise self._too_large(
                f"answer of {int(declared)} bytes refused: over the {cap}-byte cap", resp, method, path
            )
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.max_body_seconds
        raw = resp.raw
        try:
            while True:
                chunk = raw.read1(_READ_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    resp.close()
                    raise self._too_large(
                        f"answer refused after {size} bytes: over the {cap}-byte cap", resp, method, path
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    resp.close()
                    raise self._transport(
                        f"answer still arriving after {self.max_body_seconds:g} s", method, path
                    )
        except (urllib3.exceptions.HTTPError, OSError, requests.exceptions.RequestException) as exc:
            resp.close()
            kind = (
                "read timeout"
                if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError))
                else "connection dropped while reading the answer"
            )
            raise self._transport(kind, method, path) from exc
        raw.release_conn()
        return b"".join(chunks)

    def _too_large(
        self, message: str, resp: requests.Response, method: str, path: str
    ) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            message,
            system=self.system,
            status=resp.status_code,
            code=BODY_TOO_LARGE,
            method=method,
            path=path,
        )

    def _transport(self, what: str, method: str, path: str, sent: bool = True) -> TransportError:
        return TransportError(what, system=self.system, method=method, path=path, sent=sent)


def _carried(exc: VendorError, system: str, method: str, path: str) -> ErrorDetails:
    """What a new error raised for ``exc`` keeps of it: the vendor's status, codes and correlation id."""
    return {
        "system": system,
        "status": exc.status,
        "code": exc.code,
        "category": exc.category,
        "correlation_id": exc.correlation_id,
        "method": method,
        "path": path,
    }


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the request never left: the connection could not be made at all."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(
        reason,
        (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.NameResolutionError,
        ),
    )


def _maybe_applied(exc: VendorError) -> bool:
    """Whether a failed non-idempotent write may have been applied by the server."""
    if isinstance(exc, TransportError):
        return exc.sent
    return isinstance(exc, (ServerError, BadResponseError))


def _reason(exc: BaseException | None) -> str:
    """Why an attempt failed, for logs: class, status and vendor code, never the message."""
    if exc is None:
        return "?"
    if isinstance(exc, TransportError):
        return f"{type(exc).__name__}: {exc.message}"
    if isinstance(exc, VendorError):
        bits = [type(exc).__name__]
        if exc.status is not None:
            bits.append(f"HTTP {exc.status}")
        if exc.code:
            bits.append(str(exc.code))
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            bits.append(f"retry-after {exc.retry_after:g} s")
        return " ".join(bits)
    return type(exc).__name__

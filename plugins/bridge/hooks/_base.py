"""What both vendor hooks share: the Connection, one keep-alive session, the client, paging guards.

A hook reads its Connection lazily (at the first call, i.e. at task run
time), registers the secrets with Airflow's masker, and builds one
``requests.Session`` with Airflow's TCP keep-alive adapter. Tunables come
from the Connection's extra (docs/connections.md): ``connect_timeout``,
``read_timeout`` (or ``timeout``), ``max_response_bytes``, ``max_attempts``,
``max_retry_wait``, ``backoff_base``, ``backoff_max``, ``verify``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from urllib.request import getproxies

import requests
from airflow.providers.http.hooks.http import HttpHook

from bridge.hooks import _explain, ui
from bridge.hooks._auth import BearerTokenAuth, StaticTokenAuth
from bridge.hooks._http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_READ_TIMEOUT,
    Answer,
    ApiClient,
    Endpoint,
    Limits,
    VendorProtocol,
)
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.errors import BadResponseError, ConnectionConfigError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_STALLED_PAGES = 2  # consecutive pages with nothing new before a cursor is declared looping
DEFAULT_PORTS = {"https": 443, "http": 80}


def mask(*secrets: str | None) -> None:
    """Register runtime secrets with Airflow's log masker (no-op outside Airflow)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow < 3
        return
    for secret in secrets:
        if secret:
            mask_secret(secret)


def token_answer(answer: Answer, value_key: str, expiry_key: str, system: str, path: str) -> dict[str, Any]:
    """The body of a token endpoint's answer, checked to hold a token (masked at once) and its lifetime in
    seconds; :class:`BadResponseError` otherwise."""
    body = answer.body if isinstance(answer.body, dict) else {}
    value, expires = body.get(value_key), body.get(expiry_key)
    if not isinstance(value, str) or not value or not isinstance(expires, int | float):
        raise BadResponseError(
            f"the token answer has no {value_key}/{expiry_key}",
            system=system,
            status=answer.status,
            method="POST",
            path=path,
        )
    mask(value)
    return body


def to_ms(value: int | datetime, name: str) -> int:
    """Epoch milliseconds from an int or a timezone-aware datetime (naive datetimes are refused)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware (got a naive datetime)")
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be epoch milliseconds (int) or an aware datetime, not {type(value).__name__}"
        )
    return value


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _tls_verify(conn_id: str, value: Any) -> bool | str:
    """The Connection's ``verify``: on, or the path of a CA bundle. Turning TLS verification off is refused."""
    if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
        return True
    if isinstance(value, str) and value.strip() and value.strip().lower() not in ("false", "0", "no", "off"):
        return value
    raise ValueError(
        f"Connection {conn_id!r}: extra 'verify' = {value!r} would turn TLS verification off, which "
        f"the bridge does not allow; leave it out, or give the path of a CA bundle (e.g. a company "
        f"proxy's) (docs/connections.md)"
    )


def _float(extra: dict[str, Any], key: str, default: float) -> float:
    try:
        value = float(extra.get(key, default))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


class VendorHook(HttpHook):
    """Base of CrmHook and OaHook: connection, session, client and counters."""

    protocol: VendorProtocol
    default_scheme = "https"
    # Plain stdlib loggers (not the structlog ``self.log``): Airflow routes them to the task log, and
    # the tests can read every line.
    vendor_log: logging.Logger = logging.getLogger("bridge.hooks")
    connection_ui: dict[str, Any]  # the Connections page form of the hook's type (``bridge.hooks.ui``)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui.field_behaviour(cls.connection_ui)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return ui.form_widgets(cls.connection_ui)

    def __init__(
        self,
        conn_id: str,
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: tuple[float, float] | None = None,
        max_body_bytes: int | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        self.api_calls: Counter[str] = Counter()
        self._retry_policy_arg = retry_policy
        self._timeout_arg = timeout
        self._max_body_arg = max_body_bytes
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._client: ApiClient | None = None

    # ------------------------------------------------------------------ connection
    @property
    def conn_id(self) -> str:
        return str(getattr(self, self.conn_name_attr))

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's one keep-alive session (auth is added per request by the client)."""
        if self._session is None:
            session = requests.Session()
            if self.keep_alive_adapter is not None:
                session.mount("http://", self.keep_alive_adapter)
                session.mount("https://", self.keep_alive_adapter)
            session.headers.update({"Accept": "application/json", "User-Agent": "oa-crm-bridge/0.1"})
            self._session = session
            self._environment_once(session)
        if headers:
            self._session.headers.update(headers)
        return self._session

    def _environment_once(self, session: requests.Session) -> None:
        """Read proxy and CA-bundle settings from the environment once, not on every request (requests
        scans the whole environment per call when ``trust_env`` is on: measurable when paging)."""
        session.trust_env = False
        session.proxies.update(getproxies())
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle

    def _base_url_of(self, host: str | None, schema: str | None, port: int | None) -> str:
        """The API base URL: host (a URL, or a name with ``schema``/https), plus the port field when the host
        names none. The Connections page keeps the port in its own field (docs/connections.md)."""
        if not host:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r} has no host: set the API base URL (see docs/connections.md)",
                reason_zh="未填写 API 地址（Host）",
            )
        base = (host if "://" in host else f"{schema or self.default_scheme}://{host}").rstrip("/")
        if not port:
            return base
        parts = urlsplit(base)
        try:
            named = parts.port
        except ValueError:
            named = None
            bad = True
        else:
            bad = not parts.hostname
        if bad:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: host {host!r} is not a usable URL",
                reason_zh=f"API 地址 {host} 不是有效的网址",
            )
        if named is not None and named != port:
            raise ConnectionConfigError(
                f"Connection {self.conn_id!r}: the host names port {named} but the port field says {port}; "
                f"keep one of them",
                reason_zh=f"API 地址中的端口 {named} 与端口栏的 {port} 不一致，请只保留一个",
            )
        if named is None and port != DEFAULT_PORTS.get(parts.scheme):
            base = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
        return base

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            conn = self.get_connection(self.conn_id)
            extra = dict(conn.extra_dejson or {})
            base_url = self._base_url_of(conn.host, conn.schema, conn.port)
            self.base_url = base_url
            session = self.get_conn()
            if "verify" in extra:
                session.verify = _tls_verify(self.conn_id, extra["verify"])
            auth = self._build_auth(conn, extra, base_url)
            read_default = _float(extra, "timeout", DEFAULT_READ_TIMEOUT)
            timeout = self._timeout_arg or (
                _float(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                _float(extra, "read_timeout", read_default),
            )
            max_body = self._max_body_arg or int(_float(extra, "max_response_bytes", DEFAULT_MAX_BODY_BYTES))
            policy = self._retry_policy_arg or RetryPolicy.from_extra(extra)
            self._client = ApiClient(
                protocol=self.protocol,
                endpoint=Endpoint(base_url, session, auth),
                policy=policy,
                api_calls=self.api_calls,
                log=self.vendor_log,
                limits=Limits(timeout=timeout, max_body_bytes=max_body),
                sleep=self._sleep or time.sleep,
            )
        return self._client

    def _build_auth(
        self, conn: Any, extra: dict[str, Any], base_url: str
    ) -> BearerTokenAuth | StaticTokenAuth:
        raise NotImplementedError

    def call(self, method: str, template: str, **kw: Any) -> Answer:
        return self.client.call(method, template, **kw)

    def close(self) -> None:
        """Close the keep-alive session (the hook can be used again: a new one is opened)."""
        if self._session is not None:
            self._session.close()
            self._session = None
            self._client = None

    # ------------------------------------------------------------------ connection test
    def _test(self, probe: Callable[[], str]) -> tuple[bool, str]:
        """``(True, what was reached)`` or ``(False, why not)``, in Chinese: the Test button must always get an
        answer a person can act on (hooks/_explain.py)."""
        try:
            return True, probe()
        except Exception as exc:
            self.vendor_log.info("%s connection test failed: %s", self.protocol.system, type(exc).__name__)
            return False, _explain.failure(exc, self.protocol.system, getattr(self, "base_url", None) or None)

    # ------------------------------------------------------------------ paging guard
    def _cursor_pages(
        self, fetch: Callable[[str | None], tuple[list[T], str | None]], key: Callable[[T], K], what: str
    ) -> Iterator[list[T]]:
        """Pages from a cursor API, without repeats, ending even when the server misbehaves.

        Items already yielded are dropped (a repeated page costs one request, not a
        duplicate); more than ``MAX_STALLED_PAGES`` pages in a row with nothing new, or a
        cursor seen before, means a looping cursor: :class:`BadResponseError`."""
        seen: set[K] = set()
        used: set[str] = set()
        cursor: str | None = None
        stalled = 0
        while True:
            items, nxt = fetch(cursor)
            fresh = []
            for item in items:
                k = key(item)
                if k not in seen:
                    seen.add(k)
                    fresh.append(item)
            if len(fresh) < len(items):
                self.vendor_log.warning(
                    "%s: the server returned %d item(s) already read on one page; dropped as duplicates",
                    what,
                    len(items) - len(fresh),
                )
            if fresh:
                yield fresh
                stalled = 0
            elif items:
                stalled += 1
            if not nxt:
                return
            if stalled > MAX_STALLED_PAGES or (nxt in used and not fresh):
                raise BadResponseError(
                    f"{what}: the server's paging cursor loops (pages already read keep "
                    f"coming back); stopped after {len(seen)} items",
                    system=self.protocol.system,
                )
            used.add(cursor or "")
            cursor = nxt

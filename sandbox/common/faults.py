"""Fault injection shared by both simulators (admin API under ``/_sim/faults``).

A rule matches requests by method and path regex and fires with a
probability (deterministic: each rule has its own seeded RNG) at most
``count`` times. Kinds:

==================  ===================================================================
``latency``         sleep ``latency_ms`` before handling (a client timeout if long enough)
``error``           answer ``status`` (default 500) without handling; the vendor's error body
``rate_limit``      answer 429 with ``Retry-After: retry_after`` and the vendor's headers
``drop_before``     break the connection before handling: nothing was committed
``drop_after``      handle the request (commit!), then break the connection before the
                    response arrives: the *ambiguous write*
``html_200``        answer 200 with an HTML page (a proxy's error page)
``malformed_json``  answer 200 with a truncated JSON body
``big_body``        answer 200 with a body of ``size_bytes`` (default 10 MB)
``timeout``         handle the request, then sleep ``latency_ms`` before answering
``drop_mid_body``   the server reads only the first ``size_bytes`` bytes of the request
                    body, then the client is gone (an upload cut off half way); the
                    client sees a broken connection
==================  ===================================================================

Route-specific kinds (e.g. the CRM's ``repeat_page`` / ``loop_cursor`` /
``wrong_shape``) are stored the same way; the route asks
``FaultInjector.fire(kind, request)`` whether to misbehave.

A connection is "broken" by starting a response with a Content-Length that
is never delivered and returning: uvicorn then closes the socket, and the
client sees a dropped connection (requests: ``ChunkedEncodingError`` /
``ConnectionError``), exactly what a reset looks like after the fact.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GENERIC_KINDS = {
    "latency", "error", "rate_limit", "drop_before", "drop_after",
    "html_200", "malformed_json", "big_body", "timeout", "drop_mid_body",
}


@dataclass
class FaultRule:
    kind: str
    path: str = ".*"  # regex, matched with re.search against the URL path
    method: str = "*"
    rate: float = 1.0  # probability per matching request
    count: int | None = None  # fire at most this many times (None = unlimited)
    status: int = 500
    latency_ms: int = 0
    retry_after: float = 1.0
    size_bytes: int = 10 * 1024 * 1024
    seed: int = 0
    id: str = ""
    fired: int = 0
    seen: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _re: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._re = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        assert self._re is not None
        return (self.method in ("*", method)) and bool(self._re.search(path))

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


ErrorBody = Callable[[int, str], tuple[bytes, dict[str, str]]]


class FaultInjector:
    """Holds the rules; thread-safe; counts what it injected (``stats``)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def set_rules(self, rules: list[dict[str, Any]]) -> list[FaultRule]:
        parsed = []
        for n, raw in enumerate(rules):
            clean = {k: v for k, v in raw.items() if not k.startswith("_") and k not in ("fired", "seen")}
            rule = FaultRule(**clean)
            rule.id = rule.id or f"rule{n + 1}"
            parsed.append(rule)
        with self._lock:
            self._rules = parsed
        return parsed

    def add_rule(self, raw: dict[str, Any]) -> FaultRule:
        clean = {k: v for k, v in raw.items() if not k.startswith("_") and k not in ("fired", "seen")}
        rule = FaultRule(**clean)
        with self._lock:
            rule.id = rule.id or f"rule{len(self._rules) + 1}"
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self._rules]

    def pick(self, method: str, path: str, kinds: set[str] | None = None) -> FaultRule | None:
        """The first matching rule that decides to fire for this request."""
        with self._lock:
            for rule in self._rules:
                if kinds is not None and rule.kind not in kinds:
                    continue
                if not rule.matches(method, path):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                rule.seen += 1
                if rule._rng.random() < rule.rate:
                    rule.fired += 1
                    self.stats[rule.kind] += 1
                    return rule
        return None

    def fire(self, kind: str, method: str, path: str) -> FaultRule | None:
        """For route-specific kinds: should this request misbehave this way?"""
        return self.pick(method, path, {kind})


class FaultMiddleware:
    """ASGI middleware applying the generic kinds. ``error_body(status, message)``
    renders the vendor's error envelope (HubSpot or Feishu) and its headers."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, error_body: ErrorBody,
                 exempt_prefix: str = "/_sim") -> None:
        self.app = app
        self.injector = injector
        self.error_body = error_body
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        rule = self.injector.pick(scope["method"], scope["path"], GENERIC_KINDS)
        if rule is None:
            await self.app(scope, receive, send)
            return
        kind = rule.kind
        if kind == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
            await self.app(scope, receive, send)
        elif kind == "error":
            body, headers = self.error_body(rule.status, "injected fault")
            await _respond(send, rule.status, body, headers)
        elif kind == "rate_limit":
            body, headers = self.error_body(429, "rate limit exceeded (injected)")
            headers = {**headers, "Retry-After": _fmt_seconds(rule.retry_after)}
            await _respond(send, 429, body, headers)
        elif kind == "drop_before":
            await _break(send)
        elif kind == "drop_after":
            await self.app(scope, receive, _swallow)
            await _break(send)
        elif kind == "html_200":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            await _respond(send, 200, page, {"content-type": "text/html"})
        elif kind == "malformed_json":
            await _respond(send, 200, b'{"results": [{"id": "1", "propert', {"content-type": "application/json"})
        elif kind == "big_body":
            await _big_body(send, rule.size_bytes)
        elif kind == "timeout":
            await self.app(scope, receive, _delayed(send, rule.latency_ms / 1000))
        elif kind == "drop_mid_body":
            # The app meets a client that went away (its error, if any, has no one to go to).
            with contextlib.suppress(Exception):
                await self.app(scope, _cut_after(receive, rule.size_bytes), _swallow)
            await _break(send)
        else:  # pragma: no cover - set_rules accepts any kind; unknown generic kinds pass through
            await self.app(scope, receive, send)


def _cut_after(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that delivers at most ``limit`` body bytes, then reports the client gone."""
    seen = 0

    async def cut() -> Message:
        nonlocal seen
        if seen >= limit:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if seen + len(body) >= limit:
                part = body[: limit - seen]
                seen = limit
                return {"type": "http.request", "body": part, "more_body": True}
            seen += len(body)
        return message

    return cut


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if not any(k == b"content-type" for k, _ in raw):
        raw.append((b"content-type", b"application/json;charset=utf-8"))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _break(send: Send) -> None:
    # Promise 1000 bytes, deliver 1, return: uvicorn closes the connection.
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


async def _swallow(message: Message) -> None:
    return None


def _delayed(send: Send, seconds: float) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return wrapped


async def _big_body(send: Send, size: int) -> None:
    chunk = b'{"results": [' + b" " * 65536
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]})
    sent = 0
    while sent < size:
        part = chunk[: min(len(chunk), size - sent)]
        sent += len(part)
        await send({"type": "http.response.body", "body": part, "more_body": sent < size})


def now_ms() -> int:
    return int(time.time() * 1000)

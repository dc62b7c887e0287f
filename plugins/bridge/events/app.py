"""The receiver: a small FastAPI app, ``POST /events/hubspot`` and ``POST /events/feishu``.

Order of checks per delivery (cheapest first, nothing trusted before the end):
rate (429) → body size (413, read in chunks, never past the cap) → signature,
timestamp, token, app / tenant (401) → replayed signature (401) → envelope
shape (400) → duplicate delivery id (200, not enqueued) → enqueue a
:class:`WakeMessage` per event (Redis down: 503 so the vendor retries).
Refusals are counted and audited (reason and client address, never the body);
nothing unverified is enqueued. Answers are immediate: both vendors re-push
when an answer is slow (Feishu after 3 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bridge.events import feishu, hubspot
from bridge.events.config import ReceiverConfig
from bridge.events.health import HubHealthWriter
from bridge.events.model import Refused, WakeMessage
from bridge.events.rewake import DueWakes
from bridge.events.sink import Sink
from bridge.hooks import feishu_delivery

log = logging.getLogger(__name__)

AuditFn = Callable[[str, Refused, str], None]


@dataclass(frozen=True)
class Verified:
    """A delivery that passed every check: its wake messages and the key that marks a replay of it."""

    messages: list[WakeMessage]
    replay_key: str
    challenge: str | None = None
    ignored: int = 0


Verifier = Callable[[Request, bytes], Verified]


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


class Memory:
    """Bounded set of recently seen keys (replayed signatures, delivered ids)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)


@dataclass
class Health:
    """Per source (crm / oa): received, verified, rejected (by reason), duplicates, enqueued, last event, lag."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: {"crm": Counter(), "oa": Counter()})
    last_event_time: dict[str, str] = field(default_factory=dict)
    last_received_at: dict[str, float] = field(default_factory=dict)
    last_lag_ms: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            src: {
                "counts": dict(c),
                "last_event_time": self.last_event_time.get(src),
                "last_received_at": self.last_received_at.get(src),
                "lag_ms": self.last_lag_ms.get(src),
            }
            for src, c in self.counts.items()
        }


@dataclass
class Receiver:
    config: ReceiverConfig
    sink: Sink
    audit: AuditFn | None = None
    clock: Callable[[], float] = time.time
    health: Health = field(default_factory=Health)
    store: HubHealthWriter | None = None  # the hub's event_health row (None: in memory only)
    due_wakes: DueWakes | None = None  # a second wake of crm_to_oa_sync when a quiet window ends

    def __post_init__(self) -> None:
        lim = self.config.limits
        self.buckets = {
            "crm": TokenBucket(lim.requests_per_second, lim.burst),
            "oa": TokenBucket(lim.requests_per_second, lim.burst),
        }
        self.signatures = Memory(lim.replay_memory)
        self.deliveries = Memory(lim.replay_memory)

    def verify_hubspot(self, request: Request, body: bytes) -> Verified:
        app_cfg = self.config.hubspot
        if app_cfg is None:
            raise Refused(404, "not_configured", "crm_default has no webhook_client_secret")
        key = hubspot.check_signature(
            app_cfg, request.method, _uri(self, request), body, request.headers, int(self.clock() * 1000)
        )
        return Verified(hubspot.parse_batch(app_cfg, body), key)

    def verify_feishu(self, request: Request, body: bytes) -> Verified:
        app_cfg = self.config.feishu
        if app_cfg is None:
            raise Refused(404, "not_configured", "oa_default has no verification_token")
        outcome = feishu.parse(app_cfg, body, request.headers, self.clock())
        signed = app_cfg.encrypt_key and outcome.challenge is None
        key = "feishu-sig:" + request.headers.get(feishu_delivery.SIGNATURE_HEADER, "") if signed else ""
        return Verified(outcome.messages, key, outcome.challenge, outcome.ignored)

    def count(self, source: str, name: str, n: int = 1, **stamps: Any) -> None:
        self.health.counts[source][name] += n
        if self.store is not None:
            self.store.note(source, {name: n}, **stamps)

    def wake_due(self) -> None:
        """Publish the wake of records whose quiet window has passed (called every second)."""
        message = self.due_wakes.pop_due(self.clock()) if self.due_wakes is not None else None
        if message is None:
            return
        try:
            self.sink.publish(message)
            self.health.counts[message.source]["due_wakes"] += 1
        except Exception as exc:  # the scheduled minute polls due changes anyway
            log.warning("due wake not published (%s)", exc.__class__.__name__)

    def persist(self) -> None:
        if self.store is None:
            return
        try:
            self.store.flush(self.clock())
        except Exception:  # the hub being down must not change what a vendor is answered
            log.exception("event health not written to the hub")

    def note_refusal(self, source: str, exc: Refused, client: str) -> None:
        """Count, log and audit a refused delivery (reason and client, never the body)."""
        self.count(source, "rejected")
        self.health.counts[source][f"rejected_{exc.reason}"] += 1
        log.warning(
            "event delivery refused: source=%s status=%d reason=%s client=%s",
            source,
            exc.status,
            exc.reason,
            client,
        )
        if self.audit is not None:
            try:
                self.audit(source, exc, client)
            except Exception:  # an audit outage must not turn a refusal into an acceptance or a 500
                log.exception("audit of a refused delivery failed")

    def refuse(self, source: str, exc: Refused, client: str) -> JSONResponse:
        self.note_refusal(source, exc, client)
        return JSONResponse({"error": exc.reason}, status_code=exc.status)

    def admit(self, source: str) -> None:
        """Count a delivery in; raise :class:`Refused` (429) past the rate limit."""
        self.health.last_received_at[source] = self.clock()
        self.count(source, "received", last_received_at=_utc(self.clock()))
        if not self.buckets[source].take():
            raise Refused(429, "rate_limited", "too many deliveries")

    def settle(self, source: str, messages: list[WakeMessage], key: str = "") -> tuple[int, dict[str, Any]]:
        """A verified delivery: remember its signature, enqueue its messages; (status, answer body)."""
        if key:
            self.signatures.add(key)
        self.count(source, "verified", last_verified_at=_utc(self.clock()))
        try:
            enqueued, dup = self.enqueue(source, messages)
        except Exception as exc:  # Redis down: the vendor retries, polling catches up meanwhile
            self.health.counts[source]["sink_errors"] += 1
            log.warning("event queue unavailable (%s): answering 503", exc.__class__.__name__)
            return 503, {"error": "queue_unavailable"}
        return 200, {"enqueued": enqueued, "duplicates": dup}

    def enqueue(self, source: str, messages: list[WakeMessage]) -> tuple[int, int]:
        """Publish new messages; returns (enqueued, duplicates). Raises on a sink failure (→ 503)."""
        fresh = [m for m in messages if not self.deliveries.seen(m.delivery_id)]
        for message in fresh:
            self.sink.publish(message)
            self.deliveries.add(message.delivery_id)
            if self.due_wakes is not None:
                self.due_wakes.note(message, self.clock())
            self.health.last_event_time[source] = max(
                self.health.last_event_time.get(source, ""), message.event_time
            )
        now = self.clock()
        latest = None
        for message in fresh:
            latest = datetime.fromisoformat(message.event_time)
            self.health.last_lag_ms[source] = max(0, int((now - latest.timestamp()) * 1000))
        self.count(
            source,
            "enqueued",
            len(fresh),
            last_event_at=latest,
            lag_ms=self.health.last_lag_ms.get(source) if latest else None,
        )
        self.count(source, "duplicates", len(messages) - len(fresh))
        return len(fresh), len(messages) - len(fresh)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise Refused(413, "too_large", f"body over {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise Refused(413, "too_large", f"body over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _uri(receiver: Receiver, request: Request) -> str:
    base = receiver.config.limits.public_base_url.rstrip("/")
    if not base:
        return str(request.url)
    query = request.url.query
    return base + request.url.path + (f"?{query}" if query else "")


def create_app(receiver: Receiver) -> FastAPI:
    app = FastAPI(
        title="bridge events receiver",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=_lifespan(receiver),
    )
    app.state.receiver = receiver

    @app.post("/events/hubspot")
    async def hubspot_webhook(request: Request) -> JSONResponse:
        return await _handle(receiver, "crm", request, receiver.verify_hubspot)

    @app.post("/events/feishu")
    async def feishu_event(request: Request) -> JSONResponse:
        return await _handle(receiver, "oa", request, receiver.verify_feishu)

    @app.get("/events/health")
    def health() -> dict[str, Any]:
        return receiver.health.snapshot()

    return app


def _lifespan(receiver: Receiver) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Due wakes and counts go out every second (a quiet period reaches the hub too); flushed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def every_second() -> None:
            while True:
                await asyncio.sleep(1.0)
                await run_in_threadpool(receiver.wake_due)
                await run_in_threadpool(receiver.persist)

        flusher = asyncio.create_task(every_second())
        try:
            yield
        finally:
            flusher.cancel()
            if receiver.store is not None:
                await run_in_threadpool(receiver.store.flush, receiver.clock(), True)

    return lifespan


async def _admit(receiver: Receiver, source: str, request: Request) -> bytes:
    receiver.admit(source)
    return await _read_capped(request, receiver.config.limits.max_body_bytes)


async def _finish(receiver: Receiver, source: str, messages: list[WakeMessage], key: str) -> JSONResponse:
    status, body = await run_in_threadpool(receiver.settle, source, messages, key)
    return JSONResponse(body, status_code=status)


async def _handle(receiver: Receiver, source: str, request: Request, verify: Verifier) -> JSONResponse:
    try:
        return await _answer(receiver, source, request, verify)
    finally:
        await run_in_threadpool(receiver.persist)


async def _answer(receiver: Receiver, source: str, request: Request, verify: Verifier) -> JSONResponse:
    client = request.client.host if request.client else "-"
    try:
        body = await _admit(receiver, source, request)
        outcome = verify(request, body)
        if outcome.replay_key and receiver.signatures.seen(outcome.replay_key):
            raise Refused(401, "replayed", "this signed request was already received")
    except Refused as exc:
        return await run_in_threadpool(receiver.refuse, source, exc, client)
    if outcome.challenge is not None:
        receiver.count(source, "verified", last_verified_at=_utc(receiver.clock()))
        return JSONResponse({"challenge": outcome.challenge})
    receiver.health.counts[source]["ignored"] += outcome.ignored
    return await _finish(receiver, source, outcome.messages, outcome.replay_key)

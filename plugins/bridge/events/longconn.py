"""``bridge events listen``: Feishu's long-connection (WebSocket) event mode, into the same receiver sink.

No public URL is needed: the listener asks the OA for a WebSocket URL with the
app id and secret of ``oa_default`` (``bridge.hooks.feishu_longconn``), keeps
the socket open, pings, and answers every event frame. Each event goes through
the same :class:`~bridge.events.app.Receiver` as an HTTP delivery — rate, size,
app / tenant / token checks (:func:`bridge.events.feishu.parse_pushed`),
duplicate delivery ids, the wake message on Redis, the ``event_health`` row
and the audit of refusals — and is answered ``{"code": 200}`` (or the status an
HTTP delivery would get: 401 refused, 503 queue down, so Feishu pushes again).
A dropped socket is reopened as the SDK does: a random wait up to the server's
``ReconnectNonce``, then every ``ReconnectInterval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.events import feishu
from bridge.events.app import Receiver
from bridge.events.model import Refused
from bridge.hooks import feishu_longconn as wire

log = logging.getLogger(__name__)

SOURCE = "oa"
CLIENT = "long-connection"
FRAGMENT_TTL_S = 5.0  # the SDK keeps parts of a fragmented payload 5 s (client.py _combine)
MAX_FRAGMENTS = 64
MAX_PENDING = 256

Discover = Callable[[], wire.Endpoint]


@dataclass
class Fragments:
    """Parts of fragmented payloads by message id, bounded in count, size and time."""

    cap_bytes: int
    parts: dict[str, tuple[float, list[bytes | None]]] = field(default_factory=dict)

    def add(self, message_id: str, total: int, seq: int, chunk: bytes, now: float) -> bytes | None:
        """The whole payload once every part is in, else None; raises :class:`Refused` past the bounds."""
        self.parts = {k: v for k, v in self.parts.items() if v[0] > now}
        if not 1 < total <= MAX_FRAGMENTS or not 0 <= seq < total:
            raise Refused(400, "bad_fragment", f"part {seq} of {total}")
        if message_id not in self.parts and len(self.parts) >= MAX_PENDING:
            raise Refused(429, "rate_limited", "too many fragmented events at once")
        _, held = self.parts.setdefault(message_id, (now + FRAGMENT_TTL_S, [None] * total))
        if len(held) != total:
            raise Refused(400, "bad_fragment", "parts disagree on their number")
        held[seq] = chunk
        if sum(len(p) for p in held if p) > self.cap_bytes:
            del self.parts[message_id]
            raise Refused(413, "too_large", f"event over {self.cap_bytes} bytes")
        if any(p is None for p in held):
            return None
        del self.parts[message_id]
        return b"".join(p for p in held if p is not None)


@dataclass
class LongConnection:
    receiver: Receiver
    app: feishu.FeishuApp
    discover: Discover
    stats: Counter[str] = field(default_factory=Counter)
    config: wire.ClientConfig = field(default_factory=wire.ClientConfig)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.fragments = Fragments(self.receiver.config.limits.max_body_bytes)

    def deliver(self, payload: bytes) -> int:
        """One event payload, as an HTTP delivery is handled; the code to answer Feishu with."""
        try:
            try:
                self.receiver.admit(SOURCE)
                if len(payload) > self.receiver.config.limits.max_body_bytes:
                    raise Refused(413, "too_large", "event over the body cap")
                outcome = feishu.parse_pushed(self.app, payload)
            except Refused as exc:
                self.receiver.note_refusal(SOURCE, exc, CLIENT)
                return exc.status
            self.receiver.health.counts[SOURCE]["ignored"] += outcome.ignored
            status, _ = self.receiver.settle(SOURCE, outcome.messages)
            return status
        finally:
            self.receiver.persist()

    def refuse_frame(self, exc: Refused) -> int:
        self.receiver.count(SOURCE, "received")
        self.receiver.note_refusal(SOURCE, exc, CLIENT)
        return exc.status

    async def on_data(self, frame: wire.Frame) -> wire.Frame | None:
        """An event frame (joined when fragmented) → its answer; other types get none (as in the SDK)."""
        started = time.monotonic()
        payload: bytes | None = frame.payload
        total, seq = frame.header(wire.H_SUM) or "1", frame.header(wire.H_SEQ) or "0"
        try:
            if not total.isdigit() or not seq.isdigit():
                raise Refused(400, "bad_fragment", "sum / seq are not numbers")
            if int(total) > 1:
                payload = self.fragments.add(frame.header(wire.H_MESSAGE_ID) or "", int(total), int(seq),
                                             frame.payload, time.monotonic())  # fmt: skip
        except Refused as exc:
            return wire.answer(frame, await asyncio.to_thread(self.refuse_frame, exc), 0)
        if payload is None or frame.header(wire.H_TYPE) != wire.EVENT:
            return None
        code = await asyncio.to_thread(self.deliver, payload)
        return wire.answer(frame, code, int((time.monotonic() - started) * 1000))

    async def on_frame(self, raw: bytes | str) -> wire.Frame | None:
        self.stats["frames"] += 1
        try:
            frame = wire.decode(raw if isinstance(raw, bytes) else raw.encode())
        except wire.FrameError:
            self.stats["bad_frames"] += 1
            return None
        if frame.method == wire.CONTROL:
            if frame.header(wire.H_TYPE) == wire.PONG and frame.payload:
                self.stats["pongs"] += 1
                try:
                    self.config = wire.ClientConfig.from_wire(json.loads(frame.payload), self.config)
                except ValueError:
                    self.stats["bad_frames"] += 1
            return None
        if frame.method == wire.DATA:
            return await self.on_data(frame)
        return None

    async def session(self, endpoint: wire.Endpoint, stop: asyncio.Event) -> None:
        """One open socket until it closes or ``stop`` is set."""
        from websockets.asyncio.client import connect

        cap = self.receiver.config.limits.max_body_bytes + 4096
        async with connect(endpoint.url, proxy=None, max_size=cap, open_timeout=10) as ws:
            self.stats["connected"] += 1
            log.info("long connection open (device %s)", endpoint.device)

            async def pinger() -> None:
                while True:
                    await ws.send(wire.ping(endpoint.service).encode())
                    await asyncio.sleep(max(1.0, float(self.config.ping_interval)))

            async def reader() -> None:
                async for raw in ws:
                    reply = await self.on_frame(raw)
                    if reply is not None:
                        await ws.send(reply.encode())

            tasks = [asyncio.create_task(t) for t in (pinger(), reader(), stop.wait())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _connect_once(self, stop: asyncio.Event) -> bool:
        """Discover and serve one socket; False when the credentials are refused (no retry helps)."""
        try:
            endpoint = await asyncio.to_thread(self.discover)
            self.config = endpoint.config
            await self.session(endpoint, stop)
        except wire.DiscoveryError as exc:
            log.error("%s", exc)
            if not exc.retry:
                return False
        except Exception as exc:  # a dropped socket, a refused handshake, the OA unreachable: reconnect
            log.warning("long connection lost (%s: %s)", exc.__class__.__name__, str(exc)[:200])
        return True

    async def run(self, stop: asyncio.Event) -> int:
        """Connect and reconnect until ``stop``; 0 when stopped, 2 on refused credentials, 1 when the
        server's ``ReconnectCount`` is used up."""
        flusher = asyncio.create_task(self._every_second(stop))
        try:
            streak = 0  # failed attempts since the last socket that opened
            while not stop.is_set():
                opened = self.stats["connected"]
                if not await self._connect_once(stop):
                    return 2
                if stop.is_set():
                    break
                streak = 0 if self.stats["connected"] > opened else streak + 1
                if 0 <= self.config.reconnect_count < streak:
                    return 1
                self.stats["reconnects"] += 1
                # the SDK: a random wait up to ReconnectNonce first, then every ReconnectInterval
                jitter = self.rng.random() * float(self.config.reconnect_nonce)
                await _sleep_unless(stop, jitter if streak <= 1 else float(self.config.reconnect_interval))
            return 0
        finally:
            flusher.cancel()
            await asyncio.to_thread(self.receiver.persist)

    async def _every_second(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.receiver.persist)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def snapshot(conn: LongConnection) -> dict[str, Any]:
    return {"long_connection": dict(conn.stats), **conn.receiver.health.snapshot()}


def build(dry_run: bool = False, conn_id: str = "oa_default") -> LongConnection:
    """The listener over the receiver ``python -m bridge.events.serve`` would build (sink, audit, health row)."""
    from bridge.events import config as events_config
    from bridge.events import serve

    receiver = serve.build(dry_run)
    app = events_config.feishu_app(events_config._airflow_lookup(conn_id) or {}, None, long_connection=True)
    if app is None:
        raise SystemExit(f"Connection {conn_id!r} has no app id (login): the long connection cannot open")
    base_url, app_id, secret = wire.credentials(conn_id)
    return LongConnection(receiver, app, lambda: wire.discover(base_url, app_id, secret))


def main(max_seconds: float = 0.0, dry_run: bool = False) -> int:
    """Run until SIGTERM / SIGINT (or ``max_seconds`` when > 0)."""
    import signal

    listener = build(dry_run)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if max_seconds > 0:
            loop.call_later(max_seconds, stop.set)
        return await listener.run(stop)

    code = asyncio.run(run())
    log.info("long connection closed: %s", dict(listener.stats))
    return code

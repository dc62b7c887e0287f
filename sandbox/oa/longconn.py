"""Feishu's long-connection (WebSocket) event mode: endpoint discovery and a WebSocket serving protobuf frames.

As Feishu serves it to the official SDKs (``lark-oapi`` 1.7.5 ``lark_oapi/ws/``;
open.feishu.cn "使用长连接接收事件"): the client posts ``{"AppID", "AppSecret"}``
to ``/callback/ws/endpoint`` and gets ``{code: 0, data: {URL, ClientConfig}}``; the
URL (here ``ws://<this host>/ws/v2?device_id=…&service_id=…&ticket=…``) opens a
WebSocket carrying ``pbbp2.Frame`` protobuf messages: the client's ``ping``
control frames are answered with ``pong`` frames holding the ``ClientConfig``
JSON; each event goes to **one random connected client** as a data frame
(headers ``type: event``, ``message_id``, ``trace_id``, ``sum``, ``seq``; payloads
over ``fragment_bytes`` split into ``sum`` parts), and the client answers with the
same frame whose payload is ``{"code": 200}``. No answer within 3 s (Feishu's
processing limit) or another code counts as a failed delivery and is retried
like a webhook. At most 50 connections per app (Feishu's documented limit).

The frame encoding is written out by hand here (plain protobuf wire format),
independently of the bridge's client, which uses the protobuf library.
Admin: ``GET/POST /_sim/longconn`` (mode on + ``ClientConfig`` + faults),
``POST /_sim/longconn/drop`` (close every socket), ``POST /_sim/longconn/push``
(push one raw event payload as given: a misdirected or forged frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import threading
import time
import uuid as uuidlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

MAX_CONNECTIONS = 50
ANSWER_TIMEOUT_S = 3.0
TICKET_TTL_S = 300.0
CONTROL, DATA = 0, 1
CONFIG_KEYS = {"ReconnectCount", "ReconnectInterval", "ReconnectNonce", "PingInterval"}
FORBIDDEN = 403  # lark_oapi/ws/const.py: a client error, the SDK does not retry it


# ------------------------------------------------------------------ protobuf by hand (pbbp2.Frame)
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def encode_frame(method: int, service: int, headers: list[tuple[str, str]], payload: bytes = b"",
                 seq_id: int = 0, log_id: int = 0) -> bytes:
    out = _field(1, seq_id) + _field(2, log_id) + _field(3, service) + _field(4, method)
    for key, value in headers:
        out += _field(5, _field(1, key.encode()) + _field(2, value.encode()))
    return out + (_field(8, payload) if payload else b"")


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(raw) or shift > 63:
            raise ValueError("truncated varint")
        byte = raw[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def _fields(raw: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(raw):
        tag, at = _read_varint(raw, at)
        if tag & 7 == 0:
            value, at = _read_varint(raw, at)
            out.append((tag >> 3, value))
        elif tag & 7 == 2:
            size, at = _read_varint(raw, at)
            if at + size > len(raw):
                raise ValueError("truncated field")
            out.append((tag >> 3, raw[at:at + size]))
            at += size
        else:
            raise ValueError(f"wire type {tag & 7} not used by pbbp2.Frame")
    return out


def decode_frame(raw: bytes) -> dict[str, Any]:
    frame: dict[str, Any] = {"headers": [], "payload": b""}
    names = {1: "SeqID", 2: "LogID", 3: "service", 4: "method", 8: "payload"}
    for number, value in _fields(raw):
        if number == 5 and isinstance(value, bytes):
            pair = dict(_fields(value))
            frame["headers"].append((bytes(pair.get(1, b"")).decode(), bytes(pair.get(2, b"")).decode()))
        elif number in names:
            frame[names[number]] = value
    if "method" not in frame:
        raise ValueError("frame without method")
    return frame


def _header(frame: dict[str, Any], key: str) -> str | None:
    return next((v for k, v in frame["headers"] if k == key), None)


# ------------------------------------------------------------------ connections
@dataclass
class _Client:
    socket: WebSocket
    service: int
    waiting: dict[str, asyncio.Future[int]] = field(default_factory=dict)


class LongConnHub:
    """Connected clients, tickets, and the pushes of the event dispatcher's thread onto the server's loop."""

    def __init__(self, stats: Counter[str]) -> None:
        self.stats = stats
        self.config: dict[str, int] = {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30,
                                       "PingInterval": 120}
        self.fragment_bytes = 0
        self.clients: dict[str, _Client] = {}
        self.tickets: dict[str, tuple[str, float]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random(0)
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.config.update(ReconnectCount=-1, ReconnectInterval=120, ReconnectNonce=30, PingInterval=120)
        self.fragment_bytes = 0

    def configure(self, options: dict[str, Any]) -> None:
        for key in CONFIG_KEYS & set(options):
            self.config[key] = int(options[key])
        if "fragment_bytes" in options:
            self.fragment_bytes = max(0, int(options["fragment_bytes"]))
        if "seed" in options:
            self._rng.seed(int(options["seed"]))

    def issue(self, base_ws: str) -> dict[str, Any]:
        device, ticket, service = uuidlib.uuid4().hex, secrets.token_hex(16), self._rng.randint(1, 2**31 - 1)
        with self._lock:
            now = time.monotonic()
            self.tickets = {t: v for t, v in self.tickets.items() if v[1] > now}
            self.tickets[ticket] = (device, now + TICKET_TTL_S)
        url = f"{base_ws}/ws/v2?fpid=493&device_id={device}&service_id={service}&ticket={ticket}"
        return {"URL": url, "ClientConfig": dict(self.config)}

    def admit(self, ticket: str | None) -> bool:
        with self._lock:
            held = self.tickets.pop(ticket or "", None)
        return held is not None and held[1] > time.monotonic() and len(self.clients) < MAX_CONNECTIONS

    async def serve(self, socket: WebSocket, service: int) -> None:
        self.loop = asyncio.get_running_loop()
        key = uuidlib.uuid4().hex
        client = _Client(socket, service)
        self.clients[key] = client
        self.stats["longconn_connected"] += 1
        try:
            while True:
                raw = await socket.receive_bytes()
                await self._on_frame(client, raw)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.clients.pop(key, None)
            for waiting in client.waiting.values():
                if not waiting.done():
                    waiting.set_result(0)

    async def _on_frame(self, client: _Client, raw: bytes) -> None:
        try:
            frame = decode_frame(raw)
        except ValueError:
            self.stats["longconn_bad_frames"] += 1
            return
        if frame["method"] == CONTROL and _header(frame, "type") == "ping":
            self.stats["longconn_pings"] += 1
            pong = encode_frame(CONTROL, client.service, [("type", "pong")], json.dumps(self.config).encode())
            await client.socket.send_bytes(pong)
        elif frame["method"] == DATA:
            waiting = client.waiting.get(_header(frame, "message_id") or "")
            try:
                code = int(json.loads(frame["payload"] or b"{}").get("code", 0))
            except (ValueError, AttributeError):
                code = 0
            if waiting is not None and not waiting.done():
                waiting.set_result(code)

    async def _push(self, payload: bytes) -> int | None:
        if not self.clients:
            return None
        key = self._rng.choice(sorted(self.clients))
        client = self.clients[key]
        message_id, trace_id = uuidlib.uuid4().hex, uuidlib.uuid4().hex
        size = self.fragment_bytes or len(payload) or 1
        parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        client.waiting[message_id] = answer
        try:
            for seq, part in enumerate(parts):
                headers = [("type", "event"), ("message_id", message_id), ("sum", str(len(parts))),
                           ("seq", str(seq)), ("trace_id", trace_id)]
                await client.socket.send_bytes(encode_frame(DATA, client.service, headers, part,
                                                            seq_id=seq, log_id=self._rng.randint(1, 2**40)))
            self.stats["longconn_fragments"] += len(parts) if len(parts) > 1 else 0
            return await asyncio.wait_for(answer, ANSWER_TIMEOUT_S)
        except (TimeoutError, RuntimeError, WebSocketDisconnect):
            return 0
        finally:
            client.waiting.pop(message_id, None)

    def push(self, payload: bytes, timeout_s: float = ANSWER_TIMEOUT_S + 2) -> int | None:
        """From any thread: the code the client answered, 0 without an answer, None with no client connected."""
        loop = self.loop
        if loop is None or not self.clients:
            return None
        return asyncio.run_coroutine_threadsafe(self._push(payload), loop).result(timeout_s)

    async def drop_all(self) -> int:
        sockets = [c.socket for c in self.clients.values()]
        for socket in sockets:
            with contextlib.suppress(RuntimeError):
                await socket.close(code=1011)
        self.stats["longconn_dropped"] += len(sockets)
        return len(sockets)

    def view(self) -> dict[str, Any]:
        return {"connections": len(self.clients), "config": dict(self.config), "fragment_bytes": self.fragment_bytes}


def longconn_router(state: Any) -> APIRouter:
    """Vendor routes (discovery, the socket) and the ``/_sim/longconn`` admin routes."""
    r = APIRouter()
    hub: LongConnHub = state.events.longconn

    @r.post("/callback/ws/endpoint")
    async def endpoint(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if state.tokens.check_credentials(body.get("AppID"), body.get("AppSecret")) is not None:
            return JSONResponse({"code": FORBIDDEN, "msg": "app_id or app_secret is invalid"})
        base = str(request.base_url).rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return JSONResponse({"code": 0, "msg": "ok", "data": hub.issue(base)})

    @r.websocket("/ws/v2")
    async def socket(websocket: WebSocket) -> None:
        service = websocket.query_params.get("service_id", "")
        if not service.isdigit() or not hub.admit(websocket.query_params.get("ticket")):
            hub.stats["longconn_refused"] += 1
            await websocket.close(code=1008)  # before accept: the handshake is answered 403
            return
        await websocket.accept()
        await hub.serve(websocket, int(service))

    @r.get("/_sim/longconn")
    async def view() -> JSONResponse:
        return JSONResponse({**hub.view(), "mode": state.events.mode})

    @r.post("/_sim/longconn")
    async def configure(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
            hub.configure(body.get("config") or {})
            if body.get("enable", True):
                state.events.configure(body.get("delivery"))
                state.events.use_long_connection(bool(body.get("all_codes", True)))
        except (AttributeError, TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse({**hub.view(), "mode": state.events.mode})

    @r.post("/_sim/longconn/drop")
    async def drop() -> JSONResponse:
        return JSONResponse({"dropped": await hub.drop_all()})

    @r.post("/_sim/longconn/push")
    async def push(request: Request) -> JSONResponse:
        payload = await request.body()
        return JSONResponse({"code": await hub._push(payload)})

    return r

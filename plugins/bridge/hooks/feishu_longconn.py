"""Feishu's long-connection (WebSocket) event mode on the wire: endpoint discovery and the protobuf frames.

Followed exactly from the official SDK ``lark-oapi==1.7.5`` (read, not
imported — see docs/events.md for why):

* ``lark_oapi/ws/client.py`` ``_get_conn_url`` (l. 252-309): ``POST
  {domain}/callback/ws/endpoint`` with ``{"AppID", "AppSecret"}`` and the header
  ``locale: zh``; the answer ``{code, msg, data: {URL, ClientConfig}}``; code 0
  ok, 1 "system busy" and 1000040343 server errors (retry), any other code a
  client error (wrong credentials: do not hammer). ``const.py`` l. 1-14.
* ``lark_oapi/ws/pb/pbbp2_pb2.py``: proto2 ``pbbp2.Frame`` {1 SeqID uint64, 2
  LogID uint64, 3 service int32, 4 method int32, 5 headers repeated Header{1 key,
  2 value}, 6 payload_encoding, 7 payload_type, 8 payload bytes, 9 LogIDNew};
  ``enum.py``: method 0 = control, 1 = data; header ``type`` ping / pong / event / card.
* ``client.py`` ``_new_ping_frame`` (l. 49-59): a control frame ``type: ping``
  with the URL's ``service_id``, sent every ``PingInterval`` s; a ``pong`` may
  carry a new ``ClientConfig`` as JSON (l. 324-336).
* ``client.py`` ``_handle_data_frame`` (l. 338-379): headers ``message_id``,
  ``trace_id``, ``sum``, ``seq``, ``type``; ``sum > 1`` is a fragmented payload
  joined by ``seq`` (``_combine`` l. 450-466, parts kept 5 s); the answer is the
  same frame with a ``biz_rt`` header added and the payload ``{"code": 200}``
  (``Response``, model.py). Event payloads are the plain event JSON (v1
  ``event_callback`` or v2 ``schema: "2.0"``): no encryption, no signature; the
  connection itself, opened with the app secret over TLS, is the credential.
* reconnect (l. 381-410): first wait a random ``0..ReconnectNonce`` s, then try
  every ``ReconnectInterval`` s, ``ReconnectCount`` times (< 0: for ever).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

ENDPOINT_PATH = "/callback/ws/endpoint"
DEVICE_ID, SERVICE_ID = "device_id", "service_id"
CONTROL, DATA = 0, 1
PING, PONG, EVENT, CARD = "ping", "pong", "event", "card"
H_TYPE, H_MESSAGE_ID, H_SUM, H_SEQ, H_TRACE_ID, H_BIZ_RT = (
    "type",
    "message_id",
    "sum",
    "seq",
    "trace_id",
    "biz_rt",
)
OK, SYSTEM_BUSY, INTERNAL_ERROR = 0, 1, 1000040343
MAX_ANSWER_BYTES = 64 * 1024


class FrameError(ValueError):
    """Bytes that are no ``pbbp2.Frame`` (or miss one of its required fields)."""


class DiscoveryError(Exception):
    """Endpoint discovery refused; ``retry`` is False for credential errors (the SDK's ``ClientException``)."""

    def __init__(self, code: int, msg: str, retry: bool) -> None:
        super().__init__(f"long-connection endpoint refused: code {code}: {msg}")
        self.code, self.retry = code, retry


def _frame_class() -> type[Message]:
    """``pbbp2.Frame`` built from its descriptor (the SDK's ``pbbp2.proto``, proto2, gogo options dropped)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="bridge_pbbp2.proto", package="pbbp2", syntax="proto2")
    req, opt, rep = (descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED,
                     descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                     descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)  # fmt: skip
    t = descriptor_pb2.FieldDescriptorProto
    header = fdp.message_type.add(name="Header")
    header.field.add(name="key", number=1, label=req, type=t.TYPE_STRING)
    header.field.add(name="value", number=2, label=req, type=t.TYPE_STRING)
    frame = fdp.message_type.add(name="Frame")
    for name, number, label, kind in (
        ("SeqID", 1, req, t.TYPE_UINT64), ("LogID", 2, req, t.TYPE_UINT64),
        ("service", 3, req, t.TYPE_INT32), ("method", 4, req, t.TYPE_INT32),
        ("payload_encoding", 6, opt, t.TYPE_STRING), ("payload_type", 7, opt, t.TYPE_STRING),
        ("payload", 8, opt, t.TYPE_BYTES), ("LogIDNew", 9, opt, t.TYPE_STRING),
    ):  # fmt: skip
        frame.field.add(name=name, number=number, label=label, type=kind)
    frame.field.add(name="headers", number=5, label=rep, type=t.TYPE_MESSAGE, type_name=".pbbp2.Header")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return cast(type[Message], message_factory.GetMessageClass(pool.FindMessageTypeByName("pbbp2.Frame")))


_FRAME = _frame_class()


@dataclass
class Frame:
    """One frame, as plain data (``headers`` keep their order; keys may repeat on the wire, the first wins)."""

    method: int
    service: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: bytes = b""
    seq_id: int = 0
    log_id: int = 0
    log_id_new: str = ""
    payload_encoding: str = ""
    payload_type: str = ""

    def header(self, key: str) -> str | None:
        return next((v for k, v in self.headers if k == key), None)

    def encode(self) -> bytes:
        msg: Any = _FRAME(SeqID=self.seq_id, LogID=self.log_id, service=self.service, method=self.method)
        for key, value in self.headers:
            msg.headers.add(key=key, value=value)
        if self.payload:
            msg.payload = self.payload
        for name, text in (("LogIDNew", self.log_id_new), ("payload_encoding", self.payload_encoding),
                           ("payload_type", self.payload_type)):  # fmt: skip
            if text:
                setattr(msg, name, text)
        return cast(bytes, msg.SerializeToString())


def decode(raw: bytes) -> Frame:
    msg: Any = _FRAME()
    try:
        msg.ParseFromString(raw)
    except (DecodeError, RuntimeWarning) as exc:
        raise FrameError(f"not a long-connection frame: {exc}") from None
    if not msg.IsInitialized():
        raise FrameError(
            "not a long-connection frame: " + ", ".join(msg.FindInitializationErrors()) + " missing"
        )
    return Frame(
        method=int(msg.method),
        service=int(msg.service),
        headers=[(h.key, h.value) for h in msg.headers],
        payload=bytes(msg.payload),
        seq_id=int(msg.SeqID),
        log_id=int(msg.LogID),
        log_id_new=str(msg.LogIDNew),
        payload_encoding=str(msg.payload_encoding),
        payload_type=str(msg.payload_type),
    )


def ping(service: int) -> Frame:
    return Frame(CONTROL, service, [(H_TYPE, PING)])


def answer(frame: Frame, code: int, biz_ms: int) -> Frame:
    """The SDK's answer to a data frame: the same frame, ``biz_rt`` added, payload ``{"code": …}``."""
    return Frame(
        frame.method,
        frame.service,
        [*frame.headers, (H_BIZ_RT, str(biz_ms))],
        json.dumps({"code": code}).encode(),
        frame.seq_id,
        frame.log_id,
        frame.log_id_new,
    )


@dataclass(frozen=True)
class ClientConfig:
    """What the server tells the client (seconds; ``reconnect_count < 0`` = for ever)."""

    reconnect_count: int = -1
    reconnect_interval: float = 120.0
    reconnect_nonce: float = 30.0
    ping_interval: float = 120.0

    @classmethod
    def from_wire(cls, doc: object, base: ClientConfig | None = None) -> ClientConfig:
        base = base or cls()
        if not isinstance(doc, dict):
            return base
        pick = {"reconnect_count": "ReconnectCount", "reconnect_interval": "ReconnectInterval",
                "reconnect_nonce": "ReconnectNonce", "ping_interval": "PingInterval"}  # fmt: skip
        values: dict[str, Any] = {}
        for ours, theirs in pick.items():
            value = doc.get(theirs)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[ours] = value
        return ClientConfig(**{**base.__dict__, **values})


@dataclass(frozen=True)
class Endpoint:
    url: str
    service: int
    device: str
    config: ClientConfig


def discover(base_url: str, app_id: str, app_secret: str, timeout_s: float = 10.0) -> Endpoint:
    """The WebSocket URL for this app (``POST /callback/ws/endpoint``)."""
    resp = requests.post(
        base_url.rstrip("/") + ENDPOINT_PATH,
        json={"AppID": app_id, "AppSecret": app_secret},
        headers={"locale": "zh"},
        timeout=timeout_s,
        stream=True,
    )
    with resp:
        raw = resp.raw.read(MAX_ANSWER_BYTES, decode_content=True)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    doc: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    code, msg = doc.get("code"), str(doc.get("msg") or "system busy")[:200]
    if resp.status_code != 200 or code in (SYSTEM_BUSY, INTERNAL_ERROR) or not isinstance(code, int):
        raise DiscoveryError(int(code) if isinstance(code, int) else resp.status_code, msg, retry=True)
    if code != OK:
        raise DiscoveryError(code, msg, retry=False)
    data: dict[str, Any] = doc["data"] if isinstance(doc.get("data"), dict) else {}
    url = str(data.get("URL") or "")
    query = parse_qs(urlparse(url).query)
    if urlparse(url).scheme not in ("ws", "wss") or not query.get(SERVICE_ID) or not query.get(DEVICE_ID):
        raise DiscoveryError(code, "no WebSocket URL with service_id and device_id in the answer", retry=True)
    try:
        service = int(query[SERVICE_ID][0])
    except ValueError:
        raise DiscoveryError(code, "service_id is not a number", retry=True) from None
    return Endpoint(url, service, query[DEVICE_ID][0], ClientConfig.from_wire(data.get("ClientConfig")))


def credentials(conn_id: str = "oa_default") -> tuple[str, str, str]:
    """(API base URL, app id, app secret) of the OA Connection: the long connection's only secrets."""
    from bridge.hooks.oa import OaHook

    hook = OaHook(conn_id)
    conn = hook.get_connection(conn_id)
    if not conn.login or not conn.password:
        raise DiscoveryError(
            0, f"Connection {conn_id!r} needs the app id (login) and app secret (password)", False
        )
    return hook._base_url_of(conn.host, conn.schema, conn.port), str(conn.login), str(conn.password)

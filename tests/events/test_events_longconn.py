"""Feishu's long-connection (WebSocket) mode: the frames, the OA simulator's endpoint and ``bridge events listen``.

The codec is checked against bytes the official SDK (lark-oapi 1.7.5, pbbp2_pb2)
produced and against the simulator's independent hand-written encoder; the
listener is the one ``bridge events listen`` builds (Connections, Redis sink,
hub audit, health row), talking to the OA simulator over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.events.events_support import Watcher, load_dag_module, use_redis
from tests.sync.sync_o2c_world import O2C

from bridge.events import feishu, longconn
from bridge.events.app import Receiver
from bridge.events.config import Limits, ReceiverConfig
from bridge.events.model import Refused
from bridge.events.sink import MemorySink
from bridge.hooks import feishu_longconn as wire
from bridge.hub import engine as hub_engine
from sandbox import events_local, launcher
from sandbox.oa import longconn as sim_longconn
from sandbox.oa.app import VERIFICATION_TOKEN

# Serialized by lark_oapi 1.7.5 (lark_oapi/ws/pb/pbbp2_pb2.Frame): a data frame and _new_ping_frame(552564).
SDK_DATA_FRAME = bytes.fromhex(
    "0807102a18f4dc2120012a0d0a047479706512056576656e742a110a0a6d6573736167655f696412036d2d312a080a0373756d"
    "1201312a080a037365711201302a0f0a0874726163655f69641203742d3142107b22736368656d61223a22322e30227d4a036c2d31"
)
SDK_PING_FRAME = bytes.fromhex("0800100018f4dc2120002a0c0a0474797065120470696e67")
HEADERS = [("type", "event"), ("message_id", "m-1"), ("sum", "1"), ("seq", "0"), ("trace_id", "t-1")]


# ------------------------------------------------------------------ the wire
def test_frames_are_the_sdks_bytes() -> None:
    frame = wire.decode(SDK_DATA_FRAME)
    assert (frame.method, frame.service, frame.seq_id, frame.log_id, frame.log_id_new) == (
        1,
        552564,
        7,
        42,
        "l-1",
    )
    assert frame.headers == HEADERS
    assert frame.payload == b'{"schema":"2.0"}'
    assert frame.encode() == SDK_DATA_FRAME
    assert wire.ping(552564).encode() == SDK_PING_FRAME
    # the simulator's hand-written encoder and decoder agree with the protobuf library
    assert (
        sim_longconn.encode_frame(1, 552564, HEADERS, b'{"schema":"2.0"}', seq_id=7, log_id=42)
        + bytes.fromhex("4a036c2d31")
        == SDK_DATA_FRAME
    )
    decoded = sim_longconn.decode_frame(wire.answer(frame, 200, 3).encode())
    assert decoded["headers"] == [*HEADERS, ("biz_rt", "3")]
    assert json.loads(decoded["payload"]) == {"code": 200}
    for broken in (b"\x08\x01", b"\xff\xff", SDK_DATA_FRAME[:-9]):
        with pytest.raises(wire.FrameError):
            wire.decode(broken)


def test_fragments_are_joined_in_any_order_and_bounded() -> None:
    parts = longconn.Fragments(cap_bytes=10)
    assert parts.add("m", 3, 2, b"ghi", 0.0) is None
    assert parts.add("m", 3, 0, b"abc", 0.0) is None
    assert parts.add("m", 3, 1, b"def", 0.0) == b"abcdefghi"
    assert parts.add("late", 2, 0, b"ab", 0.0) is None
    assert parts.add("late", 2, 1, b"cd", 10.0) is None  # the first part expired after 5 s (as in the SDK)
    with pytest.raises(Refused) as too_large:
        parts.add("big", 2, 0, b"x" * 11, 0.0)
    assert too_large.value.status == 413
    with pytest.raises(Refused):
        parts.add("m2", 2, 5, b"x", 0.0)


def test_pushed_events_are_checked_like_deliveries() -> None:
    app = feishu.FeishuApp("cli_a", "tok", None, "tenant-1", approval_codes=frozenset({"CODE"}))
    event = {
        "approval_code": "CODE",
        "instance_code": "I-1",
        "status": "APPROVED",
        "operate_time": "1780000000000",
    }
    header = {"event_id": "e-1", "create_time": "1780000000000", "event_type": "approval_instance",
              "tenant_key": "tenant-1", "app_id": "cli_a"}  # fmt: skip

    def pushed(**over: str) -> bytes:
        return json.dumps({"schema": "2.0", "header": {**header, **over}, "event": event}).encode()

    assert [m.record_id for m in feishu.parse_pushed(app, pushed()).messages] == [
        "I-1"
    ]  # no token: the channel
    assert feishu.parse_pushed(app, pushed(token="tok")).messages
    for over, reason in ((dict(token="forged"), "bad_token"), (dict(app_id="cli_b"), "wrong_app"),
                         (dict(tenant_key="tenant-2"), "wrong_tenant")):  # fmt: skip
        with pytest.raises(Refused) as refused:
            feishu.parse_pushed(app, pushed(**over))
        assert (refused.value.status, refused.value.reason) == (401, reason)
    with pytest.raises(Refused):  # a long connection carries no URL check and nothing encrypted
        feishu.parse_pushed(app, json.dumps({"encrypt": "abc"}).encode())


# ------------------------------------------------------------------ against the OA simulator
class Listening:
    """A listener run in a thread with its own event loop; stopped (and joined) on exit."""

    def __init__(self, listener: longconn.LongConnection) -> None:
        self.listener = listener
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(target=self._run, name="long-connection", daemon=True)

    def _run(self) -> None:
        self.result.append(self.loop.run_until_complete(self.listener.run(self.stop)))

    def __enter__(self) -> Listening:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the listener did not stop"
        self.loop.close()


def _until(what: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _sim_conf(sims: launcher.Simulators, **body: Any) -> dict[str, Any]:
    return sims.oa.admin("POST", "/_sim/longconn", body)


def _connections(sims: launcher.Simulators) -> int:
    return int(sims.oa.admin("GET", "/_sim/longconn")["connections"])


@pytest.fixture
def listening_world(o2c: O2C, redis_port: int, monkeypatch: pytest.MonkeyPatch) -> O2C:
    """The Connections ``make airflow`` gives the receiver, Redis and the o2c hub for the listener's writes."""
    use_redis(monkeypatch, redis_port)
    monkeypatch.setenv("BRIDGE_HUB_URL", str(o2c.hub.url))
    for key, value in events_local.receiver_connections(o2c.sims.crm.url, o2c.sims.oa.url).items():
        monkeypatch.setenv(key, value)
    fast = {"ReconnectNonce": 0, "ReconnectInterval": 1, "PingInterval": 1, "fragment_bytes": 96}
    _sim_conf(o2c.sims, enable=False, config=fast)
    return o2c


def _watcher_kwargs() -> dict[str, Any]:
    _, kwargs = load_dag_module("oa_to_crm_sync").EVENTS.watchers[0].trigger.serialize()
    return kwargs


def test_approval_over_the_long_connection_reaches_the_deal(listening_world: O2C, redis_port: int) -> None:
    o2c = listening_world
    _, deal, code = o2c.linked_deal()
    o2c.sync()
    assert o2c.deal(deal)["oa_approval_status"] == "PENDING"
    listener = longconn.build()  # what `bridge events listen` runs
    with Listening(listener), Watcher(_watcher_kwargs(), redis_port) as watcher:
        _until(lambda: _connections(o2c.sims) == 1)
        # Feishu's console saves long-connection mode only with a client connected; every event sent twice
        assert _sim_conf(o2c.sims, all_codes=True, delivery={"duplicate": 2})["mode"] == "long_connection"
        started = time.monotonic()
        o2c.act("approve", code)
        message = watcher.events.get(timeout=20)
        assert (message["record_type"], message["record_id"]) == ("approval_instance", code)
        assert o2c.sync()["written_deal"] == 1
        assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
        assert time.monotonic() - started < 15
        stats = o2c.sims.oa.admin("POST", "/_sim/events/flush", {})
        assert stats["longconn_answer_200"] == 2
        assert stats["longconn_fragments"] > 0  # sent in parts, joined by the listener
        _until(lambda: listener.stats["pongs"] >= 1)  # pings answered with the ClientConfig
        counts = listener.receiver.health.snapshot()["oa"]["counts"]
        assert (counts["verified"], counts["enqueued"], counts["duplicates"]) == (2, 1, 1)
        with pytest.raises(queue.Empty):
            watcher.events.get(timeout=1.5)
        assert o2c.sync().get("written_deal", 0) == 0
    with hub_engine.get_engine(str(o2c.hub.url)).connect() as conn:  # the event_health row, like HTTP's
        from bridge.events import health

        row = health.read(conn, "oa")
    assert row is not None
    assert (row.received, row.verified, row.enqueued, row.duplicates) == (2, 2, 1, 1)
    assert row.last_verified_at is not None


def test_reconnects_after_a_drop_and_refuses_foreign_frames(listening_world: O2C, redis_port: int) -> None:
    o2c = listening_world
    _, deal, code = o2c.linked_deal()
    o2c.sync()
    listener = longconn.build()
    with Listening(listener), Watcher(_watcher_kwargs(), redis_port) as watcher:
        _until(lambda: _connections(o2c.sims) == 1)
        _sim_conf(o2c.sims, all_codes=True)
        assert o2c.sims.oa.admin("POST", "/_sim/longconn/drop", {})["dropped"] == 1
        _until(lambda: listener.stats["connected"] == 2 and _connections(o2c.sims) == 1)
        assert listener.stats["reconnects"] == 1

        # frames of another app / tenant (and a forged token) are answered 401, counted, audited, never enqueued
        envelope = {"uuid": "u-foreign", "token": VERIFICATION_TOKEN, "type": "event_callback", "ts": "1",
                    "event": {"app_id": launcher.OA_APP_ID, "tenant_key": "sandbox-tenant",
                              "type": "approval_instance", "approval_code": o2c.instance(code)["approval_code"],
                              "instance_code": code, "status": "REJECTED", "operate_time": "1"}}  # fmt: skip
        for key, value in (("app_id", "cli_someone_else"), ("tenant_key", "another-tenant")):
            forged = {**envelope, "event": {**envelope["event"], key: value}}
            assert o2c.sims.oa.admin("POST", "/_sim/longconn/push", forged)["code"] == 401
        assert o2c.sims.oa.admin("POST", "/_sim/longconn/push", {**envelope, "token": "guess"})["code"] == 401
        with pytest.raises(queue.Empty):
            watcher.events.get(timeout=1.5)
        counts = listener.receiver.health.snapshot()["oa"]["counts"]
        assert (
            counts["rejected_wrong_app"],
            counts["rejected_wrong_tenant"],
            counts["rejected_bad_token"],
        ) == (1, 1, 1)

        o2c.act("approve", code)  # the reopened socket carries the next event
        assert watcher.events.get(timeout=20)["record_id"] == code
        assert o2c.sync()["written_deal"] == 1
        assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
    refusals = o2c.audit("event_refused")
    assert [(r["detail"], r["record_ids"]["client"]) for r in refusals] == [
        ("401 wrong_app", "long-connection"),
        ("401 wrong_tenant", "long-connection"),
        ("401 bad_token", "long-connection"),
    ]


def test_each_event_goes_to_one_connected_client(o2c: O2C) -> None:
    app = feishu.FeishuApp(launcher.OA_APP_ID, VERIFICATION_TOKEN, None, "sandbox-tenant")

    def listener() -> longconn.LongConnection:
        receiver = Receiver(ReceiverConfig(None, app, Limits()), MemorySink())
        return longconn.LongConnection(
            receiver, app, lambda: wire.discover(o2c.sims.oa.url, launcher.OA_APP_ID, launcher.OA_APP_SECRET)
        )

    first, second = listener(), listener()
    _sim_conf(o2c.sims, enable=False, config={"seed": 7})
    with Listening(first), Listening(second):
        _until(lambda: _connections(o2c.sims) == 2)
        for n in range(20):
            event = {"uuid": f"u-{n}", "token": VERIFICATION_TOKEN, "type": "event_callback", "ts": "1",
                     "event": {"app_id": launcher.OA_APP_ID, "tenant_key": "sandbox-tenant",
                               "type": "approval_instance", "approval_code": "C", "instance_code": f"I-{n}",
                               "status": "APPROVED", "operate_time": "1780000000000"}}  # fmt: skip
            assert o2c.sims.oa.admin("POST", "/_sim/longconn/push", event)["code"] == 200
    got = [[m.record_id for m in lc.receiver.sink.messages] for lc in (first, second)]  # type: ignore[attr-defined]
    assert sorted(got[0] + got[1], key=lambda s: int(s[2:])) == [f"I-{n}" for n in range(20)]
    assert got[0], "both clients got some (Feishu: each event to one random client)"
    assert got[1], "both clients got some (Feishu: each event to one random client)"


def test_refused_credentials_stop_the_listener(o2c: O2C) -> None:
    app = feishu.FeishuApp(launcher.OA_APP_ID, VERIFICATION_TOKEN)
    receiver = Receiver(ReceiverConfig(None, app, Limits()), MemorySink())
    listener = longconn.LongConnection(
        receiver, app, lambda: wire.discover(o2c.sims.oa.url, launcher.OA_APP_ID, "a-wrong-secret")
    )
    with Listening(listener) as running:
        running.thread.join(timeout=20)
    assert running.result == [2]
    assert listener.stats["connected"] == 0


def test_gives_up_when_the_servers_reconnect_count_is_used_up() -> None:
    """ReconnectCount >= 0 bounds the attempts after a failure (the SDK's ServerUnreachableException); a busy
    server (code 1) is retried, not treated like refused credentials."""
    app = feishu.FeishuApp(launcher.OA_APP_ID, VERIFICATION_TOKEN)
    tries: list[float] = []

    def busy() -> wire.Endpoint:
        tries.append(time.monotonic())
        raise wire.DiscoveryError(wire.SYSTEM_BUSY, "system busy", retry=True)

    listener = longconn.LongConnection(
        Receiver(ReceiverConfig(None, app, Limits()), MemorySink()),
        app,
        busy,
        config=wire.ClientConfig(reconnect_count=2, reconnect_interval=0.05, reconnect_nonce=0.01),
    )
    assert asyncio.run(listener.run(asyncio.Event())) == 1
    assert len(tries) == 3  # the first attempt and two reconnects
    assert listener.stats["reconnects"] == 2

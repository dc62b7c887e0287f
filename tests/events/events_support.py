"""Builders of real vendor deliveries for the receiver tests (signed as HubSpot and Feishu sign them)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge import settings
from bridge.events import feishu, hubspot
from bridge.events.app import Receiver
from bridge.events.config import Limits, ReceiverConfig
from bridge.events.sink import RedisSink
from bridge.hooks import feishu_delivery, hubspot_delivery
from sandbox import launcher
from sandbox.oa.app import VERIFICATION_TOKEN

ROOT = Path(__file__).resolve().parents[2]

SECRET = "hs-client-secret-for-tests"
APP_ID = "cli_bridge_local"
TOKEN = "verification-token-for-tests"
ENCRYPT_KEY = "encrypt-key-for-tests"
HS_APP = hubspot.HubSpotApp(SECRET, app_id="4242", portal_id="9001")
FS_APP = feishu.FeishuApp(
    APP_ID, TOKEN, ENCRYPT_KEY, tenant="sandbox-tenant", approval_codes=frozenset({"CODE-1"})
)


def hs_event(
    event_id: int,
    object_id: int = 101,
    kind: str = "object.propertyChange",
    type_id: str = "0-3",
    occurred_ms: int = 1_780_000_000_000,
    **over: Any,
) -> dict[str, Any]:
    event = {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 9001,
        "appId": 4242,
        "occurredAt": occurred_ms,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "objectTypeId": type_id,
        "propertyName": "dealstage",
        "propertyValue": "contract",
        "changeSource": "CRM_UI",
    }
    event.update(over)
    return event


def hs_headers(
    body: bytes, uri: str, now_ms: int, secret: str = SECRET, method: str = "POST"
) -> dict[str, str]:
    return {
        "x-hubspot-signature-v3": hubspot_delivery.signature_v3(secret, method, uri, body, str(now_ms)),
        "x-hubspot-request-timestamp": str(now_ms),
        "content-type": "application/json",
    }


def fs_v1(
    instance: str = "INST-1", code: str = "CODE-1", status: str = "APPROVED", uuid: str = "u-1", **over: Any
) -> dict[str, Any]:
    event = {
        "app_id": APP_ID,
        "tenant_key": "sandbox-tenant",
        "type": "approval_instance",
        "approval_code": code,
        "instance_code": instance,
        "status": status,
        "operate_time": "1780000000000",
        "instance_operate_time": "1780000000000",
    }
    event.update(over)
    return {
        "ts": "1780000000.1234567",
        "uuid": uuid,
        "token": TOKEN,
        "type": "event_callback",
        "event": event,
    }


def fs_v2(instance: str = "INST-2", event_id: str = "e-1", **header_over: Any) -> dict[str, Any]:
    header = {
        "event_id": event_id,
        "token": TOKEN,
        "create_time": "1780000000000",
        "event_type": "approval_instance",
        "tenant_key": "sandbox-tenant",
        "app_id": APP_ID,
    }
    header.update(header_over)
    return {
        "schema": "2.0",
        "header": header,
        "event": {
            "approval_code": "CODE-1",
            "instance_code": instance,
            "status": "REJECTED",
            "operate_time": "1780000000500",
        },
    }


def fs_encrypted(
    doc: dict[str, Any], now_s: int, key: str = ENCRYPT_KEY, nonce: str = "n0nce", sign_key: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"encrypt": feishu_delivery.encrypt(key, json.dumps(doc).encode(), os.urandom(16))}
    ).encode()
    headers = {
        "x-lark-request-timestamp": str(now_s),
        "x-lark-request-nonce": nonce,
        "x-lark-signature": feishu_delivery.signature(sign_key or key, str(now_s), nonce, body),
        "content-type": "application/json",
    }
    return body, headers


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread (the simulators post to it over real HTTP)."""

    def __init__(self, app: Any) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="events-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        import time

        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Watcher:
    """Runs the sync DAG's watcher trigger as the triggerer would (a fresh run after each event) in a thread."""

    STOP = "__stop__"

    def __init__(self, trigger_kwargs: dict[str, Any], redis_port: int) -> None:
        import queue
        import threading

        self.kwargs = trigger_kwargs
        self.redis_port = redis_port
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="events-watcher", daemon=True)

    def _run(self) -> None:
        import asyncio

        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        async def loop() -> None:
            while True:
                event = await MessageQueueTrigger(**self.kwargs).run().__anext__()
                if event.payload.get("data") == self.STOP:
                    return
                self.events.put(json.loads(event.payload["data"]))

        asyncio.run(loop())

    def __enter__(self) -> Watcher:
        import time

        import redis

        self.thread.start()
        probe = redis.Redis(host="127.0.0.1", port=self.redis_port)
        channel = self.kwargs["channels"][0]
        deadline = time.monotonic() + 15
        while not dict(probe.pubsub_numsub(channel)).get(channel.encode()):
            assert time.monotonic() < deadline, "watcher did not subscribe"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.redis_port).publish(self.kwargs["channels"][0], self.STOP)
        self.thread.join(timeout=5)


def load_dag_module(name: str) -> ModuleType:
    """A DAG file imported as the DAG processor does (by path)."""
    spec = importlib.util.spec_from_file_location(f"events_test_{name}", ROOT / "dags" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def use_redis(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Point the ``bridge_events_redis`` Connection (what the DAGs' watchers read) at the test Redis."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_BRIDGE_EVENTS_REDIS",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port}),
    )


def sandbox_feishu_receiver(encrypt_key: str, redis_port: int) -> Receiver:
    """The receiver the OA simulator delivers to: its app and tenant, the forms of ``settings.yaml``, a sink
    into the test Redis."""
    app = feishu.FeishuApp(
        launcher.OA_APP_ID,
        VERIFICATION_TOKEN,
        encrypt_key,
        "sandbox-tenant",
        approval_codes=frozenset(settings.load()["oa"]["approval_codes"].values()),
    )
    return Receiver(
        ReceiverConfig(None, app, Limits()),
        RedisSink.from_connection({"host": "127.0.0.1", "port": redis_port}),
    )

"""Where verified wake messages go: a Redis pub/sub channel the sync DAGs' ``AssetWatcher`` listens to."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from bridge.events.model import WakeMessage


class Sink(Protocol):
    def publish(self, message: WakeMessage) -> None: ...


class RedisSink:
    """Publishes on ``bridge.events.crm`` / ``bridge.events.oa`` (pub/sub: nobody listening = nothing kept;
    the polling schedule is the safety net, see docs/events.md)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_connection(cls, conn: Mapping[str, Any]) -> RedisSink:
        import redis

        extra = conn.get("extra") or {}
        return cls(
            redis.Redis(
                host=conn.get("host") or "127.0.0.1",
                port=int(conn.get("port") or 6379),
                db=int(extra.get("db", 0)),
                password=conn.get("password") or None,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
            )
        )

    def publish(self, message: WakeMessage) -> None:
        self.client.publish(message.channel, message.to_json())


class MemorySink:
    """Keeps what was published (tests, and ``serve --dry-run``)."""

    def __init__(self) -> None:
        self.messages: list[WakeMessage] = []
        self._lock = threading.Lock()

    def publish(self, message: WakeMessage) -> None:
        with self._lock:
            self.messages.append(message)

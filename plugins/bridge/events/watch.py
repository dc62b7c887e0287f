"""The sync DAGs' event side: an ``Asset`` per vendor whose ``AssetWatcher`` waits on a Redis channel.

The watcher's trigger is the common-messaging provider's ``MessageQueueTrigger``
(``scheme="redis+pubsub"``, run by the triggerer with the Redis provider's
``AwaitMessageTrigger``). Importing that class at DAG parse time imports the
``redis`` client library (~0.3–0.9 s here), which would break the "parses in
well under a second" rule, so the DAG files hold :class:`WakeTrigger`: a
parse-time stand-in that serializes to exactly ``MessageQueueTrigger(**kwargs)``
— the scheduler stores that classpath and the triggerer builds and runs the
real trigger. ``tests/events/test_events_dags.py`` checks the round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

MESSAGE_QUEUE_TRIGGER = "airflow.providers.common.messaging.triggers.msg_queue.MessageQueueTrigger"
REDIS_CONN_ID = "bridge_events_redis"
POLL_INTERVAL_S = 1.0  # AwaitMessageTrigger sleeps this long between empty polls (its default is 60 s)


class WakeTrigger(BaseEventTrigger):
    """Serializes to ``MessageQueueTrigger(scheme="redis+pubsub", channels=[channel], ...)``; never run itself."""

    def __init__(
        self, channel: str, redis_conn_id: str = REDIS_CONN_ID, poll_interval: float = POLL_INTERVAL_S
    ):
        super().__init__()
        self.channel = channel
        self.redis_conn_id = redis_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return MESSAGE_QUEUE_TRIGGER, {
            "scheme": "redis+pubsub",
            "channels": [self.channel],
            "redis_conn_id": self.redis_conn_id,
            "poll_interval": self.poll_interval,
        }

    async def run(
        self,
    ) -> AsyncIterator[TriggerEvent]:  # pragma: no cover - the triggerer runs the real class
        raise NotImplementedError("WakeTrigger only describes a MessageQueueTrigger; the triggerer runs that")
        yield

"""The sync DAGs run on their timetable *or* an event; the event path receiver → Redis → the watcher's trigger."""

from __future__ import annotations

import asyncio
import json
import time
from types import ModuleType
from typing import Any

import pytest
from tests.events.events_support import HS_APP, hs_event, hs_headers, load_dag_module, use_redis

from bridge.events.model import CHANNELS


def _dag(name: str) -> tuple[Any, ModuleType]:
    module = load_dag_module(name)
    return getattr(module, f"{name}_dag"), module


@pytest.mark.parametrize(("name", "source"), [("crm_to_oa_sync", "crm"), ("oa_to_crm_sync", "oa")])
def test_sync_dag_runs_on_its_timetable_or_an_event(name: str, source: str) -> None:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
    from airflow.serialization.encoders import encode_trigger

    dag, module = _dag(name)
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert isinstance(dag.timetable.timetable, CronTriggerTimetable)
    assert dag.max_active_runs == 1
    (watcher,) = module.EVENTS.watchers
    encoded = encode_trigger(watcher.trigger)
    # What the triggerer builds from the stored form: common-messaging's MessageQueueTrigger on Redis pub/sub
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.providers.redis.triggers.redis_await_message import AwaitMessageTrigger
    from airflow.serialization.serialized_objects import BaseSerialization

    assert encoded["classpath"] == "airflow.providers.common.messaging.triggers.msg_queue.MessageQueueTrigger"
    kwargs = {k: BaseSerialization.deserialize(v) for k, v in encoded["kwargs"].items()}
    real = MessageQueueTrigger(**kwargs)
    assert isinstance(real.trigger, AwaitMessageTrigger)
    assert real.trigger.channels == [CHANNELS[source]]
    assert real.trigger.redis_conn_id == "bridge_events_redis"
    assert real.trigger.poll_interval <= 1


def test_verified_delivery_reaches_the_watcher_trigger_through_redis(
    redis_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receiver (real app, real Redis sink) → Redis pub/sub → the trigger the triggerer runs → a TriggerEvent."""
    import redis
    from fastapi.testclient import TestClient

    from bridge.events.app import Receiver, create_app
    from bridge.events.config import Limits, ReceiverConfig
    from bridge.events.sink import RedisSink

    use_redis(monkeypatch, redis_port)
    _, module = _dag("crm_to_oa_sync")
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    _, kwargs = module.EVENTS.watchers[0].trigger.serialize()
    trigger = MessageQueueTrigger(**kwargs)
    sink = RedisSink.from_connection({"host": "127.0.0.1", "port": redis_port})
    client = TestClient(create_app(Receiver(ReceiverConfig(HS_APP, None, Limits()), sink)))
    body = json.dumps([hs_event(77, 3001)]).encode()
    headers = hs_headers(body, "http://testserver/events/hubspot", int(time.time() * 1000))
    probe = redis.Redis(host="127.0.0.1", port=redis_port)

    async def scenario() -> dict:
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        for _ in range(200):  # until the trigger has subscribed
            if dict(probe.pubsub_numsub(CHANNELS["crm"])).get(CHANNELS["crm"].encode()):
                break
            await asyncio.sleep(0.05)
        started = time.monotonic()
        assert client.post("/events/hubspot", content=body, headers=headers).status_code == 200
        event = await asyncio.wait_for(waiting, timeout=10)
        return {"payload": event.payload, "seconds": time.monotonic() - started}

    got = asyncio.run(scenario())
    message = json.loads(got["payload"]["data"])
    assert message == {
        "source": "crm",
        "record_type": "deal",
        "record_id": "3001",
        "event_time": message["event_time"],
        "delivery_id": "hubspot:77",
    }
    assert got["seconds"] < 3, "woken within the trigger's poll interval"

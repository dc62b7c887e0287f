"""``make airflow``'s event path: Redis + the receiver process + both simulators wired to it, stopped by PID."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.events.conftest import require_redis_server
from tests.sync.sync_o2c_world import O2C

from bridge.events import health
from bridge.hub import engine as hub_engine
from sandbox import events_local


def test_local_stack_delivers_both_vendors_events(o2c: O2C, tmp_path: Path) -> None:
    require_redis_server()
    hub = f"sqlite:///{tmp_path / 'events-hub.sqlite'}"
    hub_engine.upgrade(hub)
    env = {**os.environ, "BRIDGE_HUB_URL": hub}
    stack = events_local.start(env, o2c.sims, tmp_path / "logs")
    try:
        assert "AIRFLOW_CONN_BRIDGE_EVENTS_REDIS" in env, "the triggerer gets the Redis Connection"
        _, _deal, code = o2c.linked_deal()  # CRM creations → webhooks
        o2c.act("approve", code)  # OA decision → encrypted event
        deadline = time.monotonic() + 20
        while True:
            snap = events_local.status(stack)
            if snap["oa"]["counts"].get("enqueued", 0) >= 1 and snap["crm"]["counts"].get("enqueued", 0) >= 3:
                break
            assert time.monotonic() < deadline, snap
            time.sleep(0.2)
        assert snap["oa"]["counts"].get("rejected", 0) == 0
        assert snap["crm"]["counts"].get("rejected", 0) == 0
        time.sleep(1.2)  # the receiver writes the hub row at most once a second
        events_local.status(stack)
        with hub_engine.get_engine(hub).connect() as conn:
            row = health.read(conn, "oa")
        assert row is not None
        assert row.verified >= 1
    finally:
        procs = list(stack.procs)
        events_local.stop_all()
        hub_engine.get_engine(hub).dispose()
    assert all(p.poll() is not None for p in procs), "everything started is stopped"
    assert o2c.sims.oa.admin("GET", "/_sim/callback")["url"] is None


def test_local_stack_takes_feishu_events_over_the_long_connection(o2c: O2C, tmp_path: Path) -> None:
    """``BRIDGE_FEISHU_EVENTS=long_connection``: ``bridge events listen`` as a process, the simulator pushing to it."""
    require_redis_server()
    hub = f"sqlite:///{tmp_path / 'events-hub.sqlite'}"
    hub_engine.upgrade(hub)
    env = {**os.environ, "BRIDGE_HUB_URL": hub, "BRIDGE_FEISHU_EVENTS": "long_connection"}
    stack = events_local.start(env, o2c.sims, tmp_path / "logs")
    try:
        assert o2c.sims.oa.admin("GET", "/_sim/longconn")["mode"] == "long_connection"
        assert o2c.sims.oa.admin("GET", "/_sim/callback")["url"] is None  # no request URL in this mode
        _, _deal, code = o2c.linked_deal()
        o2c.act("approve", code)
        deadline = time.monotonic() + 20
        while True:
            with hub_engine.get_engine(hub).connect() as conn:
                row = health.read(conn, "oa")
            if row is not None and row.enqueued >= 1:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.3)
        assert row.rejected == 0
        assert events_local.status(stack)["oa"]["counts"].get("received", 0) == 0  # not through the HTTP route
    finally:
        procs = list(stack.procs)
        events_local.stop_all()
        hub_engine.get_engine(hub).dispose()
    assert all(p.poll() is not None for p in procs), "everything started is stopped"
    assert o2c.sims.oa.admin("GET", "/_sim/longconn")["mode"] == "webhook"

"""Lost, duplicated and reordered events change nothing: events + the polling safety net, 0 lost, 0 double writes."""

from __future__ import annotations

import queue

import pytest
from tests.events.events_support import (
    ServedApp,
    Watcher,
    load_dag_module,
    sandbox_feishu_receiver,
    use_redis,
)
from tests.sync.sync_o2c_world import O2C

from bridge.events.app import create_app

KEY = "reliability-encrypt-key"


def test_lost_duplicated_reordered_events_lose_nothing_and_write_once(
    o2c: O2C, redis_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_redis(monkeypatch, redis_port)
    deals = [o2c.linked_deal()[1:] for _ in range(6)]
    o2c.sync()
    receiver = sandbox_feishu_receiver(KEY, redis_port)
    _, kwargs = load_dag_module("oa_to_crm_sync").EVENTS.watchers[0].trigger.serialize()
    written = 0
    with ServedApp(create_app(receiver)) as served, Watcher(kwargs, redis_port) as watcher:
        url = f"{served.url}/events/feishu"
        try:
            # phase 1: every delivery lost (the receiver unreachable, as far as the bridge can tell)
            o2c.sims.oa.admin(
                "POST", "/_sim/callback", {"url": url, "delivery": {"encrypt_key": KEY, "drop": 1.0}}
            )
            for _, code in deals[:2]:
                o2c.act("approve", code)
            # phase 2: 30 % dropped, each sent 3×, in shuffled groups of 3
            o2c.sims.oa.admin(
                "POST",
                "/_sim/callback",
                {
                    "url": url,
                    "delivery": {"encrypt_key": KEY, "drop": 0.3, "duplicate": 3, "reorder": 3, "seed": 5},
                },
            )
            for _, code in deals[2:]:
                o2c.act("reject", code)
            o2c.sims.oa.admin("POST", "/_sim/events/flush", {})
            woken = 0
            while True:  # each wake-up → one oa_to_crm run (max_active_runs=1 coalesces a burst)
                try:
                    watcher.events.get(timeout=1.5)
                except queue.Empty:
                    break
                woken += 1
                written += o2c.sync().get("written_deal", 0)
            stats = o2c.sims.oa.admin("GET", "/_sim/stats")["events"]
            assert stats["dropped"] >= 2
            assert woken >= 1
            counts = receiver.health.snapshot()["oa"]["counts"]
            assert counts["duplicates"] >= 1
            assert counts.get("rejected", 0) == 0
            # the safety net: a scheduled poll finds what the lost events did not announce
            written += o2c.sync().get("written_deal", 0)
        finally:
            o2c.sims.oa.admin("DELETE", "/_sim/callback")
    statuses = [o2c.deal(deal)["oa_approval_status"] for deal, _ in deals]
    assert statuses == ["APPROVED"] * 2 + ["REJECTED"] * 4, "0 lost"
    assert written == 6, "one CRM write per decision, however many deliveries"
    assert o2c.sync().get("written_deal", 0) == 0

"""End to end over the simulators: an approval decided in the OA reaches the deal through an event, in seconds.

OA simulator (encrypted + signed v1 deliveries, each sent 3×) → the receiver over
real HTTP → Redis → the oa_to_crm_sync DAG's watcher trigger (as the triggerer
runs it) → one oa_to_crm run (its task functions) → the deal's 审批状态 in the
CRM simulator. Duplicated, replayed and forged deliveries change nothing.
"""

from __future__ import annotations

import json
import os
import queue
import time

import pytest
import requests
from tests.events.events_support import (
    ServedApp,
    Watcher,
    load_dag_module,
    sandbox_feishu_receiver,
    use_redis,
)
from tests.sync.sync_o2c_world import O2C

from bridge.events.app import create_app
from bridge.hooks import feishu_delivery
from sandbox import launcher
from sandbox.oa.app import VERIFICATION_TOKEN

ENCRYPT_KEY = "e2e-encrypt-key"


def _watcher_kwargs() -> dict:
    _, kwargs = load_dag_module("oa_to_crm_sync").EVENTS.watchers[0].trigger.serialize()
    return kwargs


def test_approval_reaches_the_deal_through_an_event(
    o2c: O2C, redis_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_redis(monkeypatch, redis_port)
    _, deal, code = o2c.linked_deal()
    o2c.sync()  # the 立项申请 is known to the hub (PENDING on the deal)
    assert o2c.deal(deal)["oa_approval_status"] == "PENDING"
    receiver = sandbox_feishu_receiver(ENCRYPT_KEY, redis_port)
    with ServedApp(create_app(receiver)) as served, Watcher(_watcher_kwargs(), redis_port) as watcher:
        # registration answers Feishu's encrypted url_verification challenge
        o2c.sims.oa.admin(
            "POST",
            "/_sim/callback",
            {
                "url": f"{served.url}/events/feishu",
                "all_codes": True,
                "delivery": {"encrypt_key": ENCRYPT_KEY, "duplicate": 3},
            },
        )
        try:
            started = time.monotonic()
            o2c.act("approve", code)
            message = watcher.events.get(timeout=20)  # the DAG is woken ...
            assert (message["record_type"], message["record_id"]) == ("approval_instance", code)
            counts = o2c.sync()  # ... and its run (the task functions) reads the instance through the hook
            seconds = time.monotonic() - started
            assert counts["written_deal"] == 1
            assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
            assert seconds < 15, f"approval → CRM took {seconds:.1f} s"
            print(f"approval decided → deal status in the CRM: {seconds:.2f} s")

            # every delivery came 3×: one wake message, two duplicates, no second write
            o2c.sims.oa.admin("POST", "/_sim/events/flush", {})
            oa_counts = receiver.health.snapshot()["oa"]["counts"]
            assert (oa_counts["enqueued"], oa_counts["duplicates"]) == (1, 2)
            with pytest.raises(queue.Empty):
                watcher.events.get(timeout=1.5)
            writes = o2c.crm_writes()
            assert o2c.sync().get("written_deal", 0) == 0
            assert o2c.crm_writes() == writes

            # a forged "rejected" (signed with a guessed key) and a plain one: refused, nothing enqueued or written
            forged = {
                "uuid": "forged-1",
                "token": VERIFICATION_TOKEN,
                "type": "event_callback",
                "ts": "0",
                "event": {
                    "app_id": launcher.OA_APP_ID,
                    "tenant_key": "sandbox-tenant",
                    "type": "approval_instance",
                    "approval_code": o2c.instance(code)["approval_code"],
                    "instance_code": code,
                    "status": "REJECTED",
                    "operate_time": "1",
                },
            }
            raw = json.dumps(
                {
                    "encrypt": feishu_delivery.encrypt(
                        "guessed-key", json.dumps(forged).encode(), os.urandom(16)
                    )
                }
            ).encode()
            stamp = str(int(time.time()))
            headers = {
                "X-Lark-Request-Timestamp": stamp,
                "X-Lark-Request-Nonce": "n",
                "X-Lark-Signature": feishu_delivery.signature("guessed-key", stamp, "n", raw),
            }
            assert (
                requests.post(f"{served.url}/events/feishu", data=raw, headers=headers, timeout=5).status_code
                == 401
            )
            plain = requests.post(f"{served.url}/events/feishu", json=forged, timeout=5)
            assert plain.status_code == 401
            with pytest.raises(queue.Empty):
                watcher.events.get(timeout=1.5)
            assert o2c.sync().get("written_deal", 0) == 0
            assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
            assert receiver.health.snapshot()["oa"]["counts"]["rejected"] == 2
        finally:
            o2c.sims.oa.admin("DELETE", "/_sim/callback")

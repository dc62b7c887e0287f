"""The CRM simulator's webhooks into the receiver: signed batches, retries with backoff, faults; debounce kept."""

from __future__ import annotations

from typing import Any

import pytest
from tests.events.events_support import ServedApp
from tests.sync.sync_c2o_world import C2O

from bridge.events import hubspot
from bridge.events.app import Receiver, create_app
from bridge.events.config import Limits, ReceiverConfig
from bridge.events.model import WakeMessage
from bridge.events.sink import MemorySink

SECRET = "crm-sim-webhook-secret"


class FlakySink(MemorySink):
    """Fails the first ``failures`` publishes (Redis down → the receiver answers 503)."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, message: WakeMessage) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("redis down")
        super().publish(message)


@pytest.fixture
def receiver_for(c2o: C2O) -> Any:
    opened: list[ServedApp] = []

    def make(sink: MemorySink, **webhook: Any) -> tuple[Receiver, str]:
        app = hubspot.HubSpotApp(SECRET, app_id="4242", portal_id="242000042")
        receiver = Receiver(ReceiverConfig(app, None, Limits()), sink)
        served = ServedApp(create_app(receiver)).__enter__()
        opened.append(served)
        c2o.sims.crm.admin(
            "POST",
            "/_sim/webhooks",
            {"url": f"{served.url}/events/hubspot", "client_secret": SECRET, "backoff_ms": 50, **webhook},
        )
        return receiver, served.url

    yield make
    c2o.sims.crm.admin("DELETE", "/_sim/webhooks")
    for served in opened:
        served.__exit__(None, None, None)


def _flush(c2o: C2O) -> dict[str, Any]:
    stats = c2o.sims.crm.admin("POST", "/_sim/webhooks/flush", {})
    assert isinstance(stats, dict)
    return stats


def test_changes_arrive_signed_and_batched(c2o: C2O, receiver_for: Any) -> None:
    sink = MemorySink()
    receiver, _ = receiver_for(sink)
    company, contact = c2o.customer()
    deal = c2o.create_deal(company)
    c2o.edit("deals", deal, {"amount": "150000.00", "dealstage": "contractsent"})
    stats = _flush(c2o)
    assert stats["delivered"] >= 1
    assert "failed" not in stats
    seen = {(m.record_type, m.record_id) for m in sink.messages}
    assert {("company", company), ("contact", contact), ("deal", deal)} <= seen
    counts = receiver.health.snapshot()["crm"]["counts"]
    assert counts["verified"] == counts["received"]
    assert counts.get("rejected", 0) == 0
    # one delivery id per event: the creation, two property changes, association changes
    assert len({m.delivery_id for m in sink.messages}) == len(sink.messages) >= 5


def test_retries_with_backoff_until_accepted_and_never_enqueues_twice(c2o: C2O, receiver_for: Any) -> None:
    sink = FlakySink(failures=2)
    receiver, _ = receiver_for(sink)
    company = c2o.create_company()
    stats = _flush(c2o)
    assert stats["status_503"] == 2
    assert stats["retried"] == 2
    assert stats["delivered"] == 1
    assert [(m.record_type, m.record_id) for m in sink.messages] == [("company", company)]
    assert receiver.health.snapshot()["crm"]["counts"]["sink_errors"] == 2


def test_a_wrong_secret_is_refused_and_not_retried(c2o: C2O, receiver_for: Any) -> None:
    sink = MemorySink()
    receiver, url = receiver_for(sink)
    c2o.sims.crm.admin(
        "POST", "/_sim/webhooks", {"url": f"{url}/events/hubspot", "client_secret": "not-ours"}
    )
    c2o.create_company()
    stats = _flush(c2o)
    assert stats["status_401"] == 1
    assert stats["failed"] == 1
    assert "retried" not in stats
    assert sink.messages == []
    assert receiver.health.snapshot()["crm"]["counts"]["rejected_bad_signature"] == 1


def test_drop_duplicate_reorder_on_demand(c2o: C2O, receiver_for: Any) -> None:
    sink = MemorySink()
    receiver, _ = receiver_for(sink, duplicate=3, reorder=4, batch_size=1, seed=7)
    ids = [c2o.create_company() for _ in range(3)]
    stats = _flush(c2o)
    assert stats["duplicated"] >= 6
    assert stats["reordered"] >= 9
    assert {m.record_id for m in sink.messages} == set(ids)  # each once, whatever the order
    counts = receiver.health.snapshot()["crm"]["counts"]
    assert counts["duplicates"] == 2 * counts["enqueued"]
    c2o.sims.crm.admin("POST", "/_sim/webhooks", {"url": _url(c2o), "client_secret": SECRET, "drop": 1.0})
    before = len(sink.messages)
    c2o.create_company()
    assert _flush(c2o)["dropped"] >= 1
    assert len(sink.messages) == before


def _url(c2o: C2O) -> str:
    current = c2o.sims.crm.admin("GET", "/_sim/webhooks")
    assert isinstance(current, dict)
    return str(current["settings"]["url"])


def test_crm_events_only_wake_the_dag_debounce_kept(c2o: C2O, receiver_for: Any) -> None:
    """12 rapid edits → 12+ wake-ups, each an extract + load run; the quiet window still makes 1 OA write."""
    sink = MemorySink()
    receiver_for(sink)
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent")
    runs = 0
    for i in range(12):
        c2o.edit("deals", deal, {"amount": f"{150000 + i * 1000}.00"})
        _flush(c2o)
        c2o.tick(2)  # two seconds between edits: inside the 60 s quiet window
        c2o.extract()
        c2o.load()
        runs += 1
    assert sum(1 for m in sink.messages if m.record_id == deal) >= 12
    assert c2o.instances_of(deal) == [], "nothing filed while the deal is still being edited"
    c2o.tick(61)
    c2o.extract()
    c2o.load()
    (instance,) = c2o.instances_of(deal)
    assert runs == 12
    assert "161000" in str(instance["form"]), "the latest amount is filed"

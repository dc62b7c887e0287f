"""The health row: written by the receiver, read by the sync DAGs' poll gate (the polling safety net)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from tests.events.events_support import FS_APP, HS_APP, hs_event, hs_headers

from bridge.events import health
from bridge.events.app import Receiver, create_app
from bridge.events.config import Limits, ReceiverConfig
from bridge.events.sink import MemorySink
from bridge.hub import engine as hub_engine
from bridge.hub import store

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
CFG = health.PollSettings(healthy_poll_minutes=10, silent_after_minutes=15)


def _ago(minutes: float | None) -> datetime | None:
    return None if minutes is None else NOW - timedelta(minutes=minutes)


def _health(verified_ago: float | None, polled_ago: float | None) -> health.EventHealth:
    ago = _ago
    return health.EventHealth(
        "oa", 5, 4, 1, 0, 4, ago(verified_ago), ago(verified_ago), ago(verified_ago), 800, ago(polled_ago)
    )


@pytest.mark.parametrize(
    ("run_type", "row", "due"),
    [
        ("asset_triggered", _health(1, 1), True),  # an event woke it
        ("manual", _health(1, 1), True),
        ("scheduled", None, True),  # no receiver ever: every minute, as before events
        ("scheduled", _health(20, 1), True),  # receiver silent past the threshold
        ("scheduled", _health(1, 3), False),  # healthy, polled 3 min ago
        ("scheduled", _health(1, 10), True),  # healthy, safety-net poll due
        ("scheduled", _health(1, None), True),
    ],
)
def test_poll_due(run_type: str, row: health.EventHealth | None, due: bool) -> None:
    assert health.poll_due(run_type, row, NOW, CFG)[0] is due


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    monkeypatch.setenv("BRIDGE_HUB_URL", url)
    hub_engine.upgrade(url)
    yield url
    hub_engine.get_engine(url).dispose()


def _gate(run_type: str, source: str = "crm") -> bool:
    return health.poll_gate({"dag_run": SimpleNamespace(run_type=run_type)}, source)


def test_receiver_writes_the_row_the_gate_reads(hub: str) -> None:
    clock = [time.time()]
    receiver = Receiver(
        ReceiverConfig(HS_APP, FS_APP, Limits()),
        MemorySink(),
        clock=lambda: clock[0],
        store=health.HubHealthWriter(interval_s=0),
    )
    client = TestClient(create_app(receiver))
    assert _gate("scheduled") is True, "no event ever: polls every minute"
    body = json.dumps([hs_event(1, 11, occurred_ms=int(clock[0] * 1000) - 1500)]).encode()
    uri = "http://testserver/events/hubspot"
    assert (
        client.post(
            "/events/hubspot", content=body, headers=hs_headers(body, uri, int(clock[0] * 1000))
        ).status_code
        == 200
    )
    forged = hs_headers(body, uri, int(clock[0] * 1000), secret="guess")
    assert client.post("/events/hubspot", content=body, headers=forged).status_code == 401
    with hub_engine.get_engine().connect() as conn:
        row = health.read(conn, "crm")
    assert row is not None
    assert (row.received, row.verified, row.rejected, row.enqueued) == (2, 1, 1, 1)
    assert row.lag_ms is not None
    assert 1500 <= row.lag_ms < 10_000
    assert row.last_event_at is not None
    assert row.last_verified_at is not None
    # healthy, and the first gate call above polled a moment ago: scheduled runs wait for the safety net
    assert _gate("scheduled") is False
    assert _gate("asset_triggered") is True
    assert _gate("scheduled", "oa") is True, "the OA side never heard from its receiver"


def test_due_changes_make_a_scheduled_run_poll(hub: str) -> None:
    receiver = Receiver(ReceiverConfig(HS_APP, None, Limits()), MemorySink(), store=health.HubHealthWriter(0))
    client = TestClient(create_app(receiver))
    body = json.dumps([hs_event(2, 12)]).encode()
    now_ms = int(time.time() * 1000)
    client.post(
        "/events/hubspot", content=body, headers=hs_headers(body, "http://testserver/events/hubspot", now_ms)
    )
    assert _gate("scheduled") is True
    assert _gate("scheduled") is False
    with hub_engine.get_engine().begin() as conn:  # what extract_stage writes for a changed deal
        store.enqueue_change(
            conn,
            "crm_to_oa",
            store.PendingKey("deal", "12", "h" * 64),
            datetime.now(UTC) - timedelta(minutes=5),
            quiet_seconds=60,
            max_delay_seconds=150,
        )
    assert _gate("scheduled") is True, "a deal whose quiet window passed must not wait for the safety net"

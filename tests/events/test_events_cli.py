"""``bridge events subscribe`` against the OA simulator, and ``bridge events status`` reading the receiver's row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.sync.sync_o2c_world import O2C

from bridge import cli, settings
from bridge.events import health, subscribe


def test_subscribe_every_synced_approval_code_once(o2c: O2C, capsys: pytest.CaptureFixture[str]) -> None:
    codes = subscribe.synced_codes(settings.load())
    assert set(codes) == set(settings.load()["oa_to_crm"]["forms"])
    assert o2c.sims.oa.admin("GET", "/_sim/callback")["subscribed"] == []
    assert cli.main(["events", "subscribe", "--public-url", "https://bridge.example.com/"]) == 0
    out = capsys.readouterr().out
    assert out.count("subscribed") == len(codes)
    assert "https://bridge.example.com/events/hubspot" in out
    assert "deal.propertyChange" in out
    assert sorted(o2c.sims.oa.admin("GET", "/_sim/callback")["subscribed"]) == sorted(codes.values())
    assert cli.main(["events", "subscribe"]) == 0  # again: Feishu answers "subscription existed"
    assert capsys.readouterr().out.count("already") == len(codes)


def test_status_prints_the_row_the_receiver_wrote(
    o2c: O2C, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_HUB_URL", str(o2c.hub.url.render_as_string(hide_password=False)))
    assert cli.main(["events", "status"]) == 0
    assert "crm: no delivery received yet" in capsys.readouterr().out
    writer = health.HubHealthWriter(interval_s=0)
    writer.note(
        "crm",
        {"received": 3, "verified": 2, "rejected": 1, "enqueued": 2},
        lag_ms=900,
        last_verified_at=datetime.now(UTC),
    )
    writer.flush(datetime.now(UTC).timestamp())
    assert cli.main(["events", "status"]) == 0
    assert "crm: received 3, verified 2, rejected 1" in capsys.readouterr().out

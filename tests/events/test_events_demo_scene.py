"""The demo's event scene (sandbox/scenario/events.py) over fresh simulators: an approval reaches its deal through
the receiver and Redis in seconds, and everything the scene started is stopped."""

from __future__ import annotations

from pathlib import Path

from tests.events.conftest import require_redis_server

from sandbox import events_local, launcher
from sandbox.scenario import crm_to_oa_sync, events


def test_the_demo_approval_reaches_its_deal_through_an_event(tmp_path: Path) -> None:
    require_redis_server()  # the scene starts its own, as make airflow does
    with launcher.simulators(tmp_path / "sandbox", seed=20261126, max_lifetime=600) as sims:
        crm_to_oa_sync.before(sims, tmp_path)
        crm_to_oa_sync._cycle(sims, tmp_path)  # the 立项申请 are filed and linked in the hub
        chosen = events._pending_project(sims, tmp_path)
        assert chosen is not None
        code, serial, deal = chosen
        assert (events._deal(sims, deal) or {}).get("oa_approval_status") == "PENDING"

        lines = events.scene(sims, tmp_path)

        assert (events._deal(sims, deal) or {}).get("oa_approval_status") == "APPROVED"
        assert serial in lines[0], lines
        assert code in lines[0], lines
        assert "唤醒消息" in lines[0]
        assert f"商机 {deal} 审批状态 APPROVED" in lines[1], lines
        assert events_local._STARTED == [] or all(not s.procs for s in events_local._STARTED), "stopped by PID"
        callback = sims.oa.admin("GET", "/_sim/callback")
        assert not (isinstance(callback, dict) and callback.get("url")), "the simulator no longer delivers"

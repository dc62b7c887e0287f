"""What the vendors refuse goes to quarantine; what they cannot serve waits and is sent later."""

from __future__ import annotations

import pytest
from tests.sync.sync_c2o_world import C2O, OWNER

from bridge.hub import store
from bridge.sync import crm_to_oa


def test_oa_refusal_quarantines_the_deal_as_vendor_rejected(c2o: C2O) -> None:
    # A stale owner mapping: the OA answers 1390004 (user not found) to the create.
    with c2o.hub.begin() as conn:
        store.save_link(conn, "owner_user", store.NewLink(crm_type="owner", crm_id=OWNER, oa_type="user", oa_id="u_left_company"), dictionary_version=c2o.d.version)
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent")
    _, loaded = c2o.sync()
    assert loaded.counts["quarantined_vendor_rejected"] == 1
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    assert entry.reason_code == "vendor_rejected"
    assert "1390004" in entry.message
    assert c2o.instances_of(deal) == []
    assert c2o.pending() == []
    rejected = [a for a in c2o.audit("create_instance") if a["outcome"] == "rejected"]
    assert [a["record_ids"]["deal_id"] for a in rejected] == [deal]


def test_oa_outage_defers_the_changes_and_a_later_run_sends_them(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deals = [c2o.create_deal(company, stage="contractsent") for _ in range(3)]
    c2o.sims.oa.admin("PUT", "/_sim/faults", {"rules": [{"kind": "error", "status": 503, "rate": 1.0,
                                                         "path": "^/open-apis/approval/v4/instances$"}]})
    c2o.extract()
    c2o.tick(61)
    with pytest.raises(crm_to_oa.SyncIncomplete):
        c2o.load()
    assert c2o.instances() == []
    pending = c2o.pending()
    assert sorted(p.source_id for p in pending) == sorted(deals)
    assert all(p.attempts == 1 and p.due_at > c2o.now for p in pending), "deferred, not lost"
    c2o.sims.oa.admin("DELETE", "/_sim/faults")
    assert c2o.load().counts.get("written", 0) == 0, "not before the deferral is over"
    c2o.tick(120)
    loaded = c2o.load()
    assert loaded.counts["instances_created"] == 3
    assert sorted(i["widgets"]["deal_id"] for i in c2o.instances()) == sorted(deals)


def test_write_back_to_a_deal_deleted_in_the_crm_is_quarantined(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent")
    c2o.extract()
    c2o.crm_act("/_sim/act/archive", {"object_type": "deals", "id": int(deal)})
    c2o.tick(61)
    loaded = c2o.load()
    assert loaded.counts["instances_created"] == 1
    assert loaded.counts["writebacks_rejected"] == 1
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    assert entry.reason_code == "vendor_rejected"
    link = c2o.project_link(deal)
    assert link is not None
    assert link.state is not None
    assert link.state["writeback"] == "rejected"
    c2o.tick(61)
    assert c2o.load().counts.get("writebacks", 0) == 0, "a refused write-back is not retried forever"

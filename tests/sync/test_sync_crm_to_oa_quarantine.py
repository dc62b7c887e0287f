"""Quarantine, not crash: owner without OA account, unmapped value, missing value; retry and release."""

from __future__ import annotations

from pathlib import Path

from tests.sync.sync_c2o_world import C2O, FORMER_OWNER, OWNER

import bridge.dictionary
from bridge import permissions
from bridge.context import RunContext
from bridge.hub import store
from bridge.staging import INVALID_KEY
from bridge.sync import crm_to_oa


def test_owner_without_oa_account_is_quarantined_and_leaves_after_the_owner_is_changed(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", owner=FORMER_OWNER)
    _, loaded = c2o.sync()
    assert loaded.counts["quarantined_owner_not_in_oa"] == 1
    assert c2o.instances_of(deal) == []
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    assert entry.reason_code == "owner_not_in_oa"
    assert "former.sales@example.com" in entry.message
    assert "bridge quarantine release" in entry.message
    assert entry.payload is not None
    assert entry.payload["crm_id"] == deal, "the canonical record, not the HubSpot object"
    assert "properties" not in entry.payload
    assert c2o.pending() == [], "a quarantined deal waits in quarantine, not in the queue"
    assert [a["outcome"] for a in c2o.audit("quarantine")] == ["quarantined"]

    # Reruns while nothing changed: no write, no new entry.
    c2o.tick(30)
    _, loaded = c2o.sync()
    assert loaded.counts.get("written", 0) == 0
    with c2o.hub.connect() as conn:
        assert store.count_quarantine(conn, store.QuarantineFilter(entity="deal", open_only=False)) == 1

    # The sales manager hands the deal to an active owner: retried automatically, then sent.
    c2o.edit("deals", deal, {"hubspot_owner_id": OWNER})
    c2o.tick(5)
    extracted, loaded = c2o.sync()
    assert extracted.counts["retried"] == 1
    assert c2o.open_quarantine(deal) is None
    with c2o.hub.connect() as conn:
        [closed] = store.list_quarantine(conn, store.QuarantineFilter(entity="deal", open_only=False))
    assert closed.resolution == "fixed"
    [instance] = c2o.instances_of(deal)
    assert instance["user_id"] == c2o.oa_user("peng.01@example.com")


def test_release_requeues_and_a_still_missing_owner_is_quarantined_again(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", owner=FORMER_OWNER)
    c2o.sync()
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    with c2o.hub.begin() as conn:
        store.release(conn, RunContext.local(), entry.id, "王芳")
    assert [p.source_id for p in c2o.pending()] == [deal], "release queues the deal, due at once"
    loaded = c2o.load()
    assert loaded.counts["quarantined_owner_not_in_oa"] == 1
    again = c2o.open_quarantine(deal)
    assert again is not None
    assert again.id != entry.id
    assert c2o.instances_of(deal) == []
    assert c2o.pending() == []


def test_unmapped_stage_is_quarantined_with_its_value_and_leaves_after_the_fix(c2o: C2O) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="legacy_stage_7")
    extracted = c2o.extract()
    assert extracted.counts["quarantined_unmapped_value"] == 1
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    assert entry.reason_code == "unmapped_value"
    assert entry.field == "stage"
    assert "legacy_stage_7" in entry.message
    assert entry.payload is not None
    assert entry.payload["stage"] is None
    assert entry.payload[INVALID_KEY]["stage"] == "legacy_stage_7"
    c2o.tick(61)
    assert c2o.load().counts.get("written", 0) == 0
    assert c2o.instances_of(deal) == []

    c2o.edit("deals", deal, {"dealstage": "contractsent"})
    c2o.tick(5)
    extracted, _loaded = c2o.sync()
    assert extracted.counts["retried"] == 1
    assert c2o.open_quarantine(deal) is None
    assert len(c2o.instances_of(deal)) == 1


def test_missing_amount_blocks_a_contract_deal_but_not_an_early_one(c2o: C2O) -> None:
    company, _ = c2o.customer()
    early = c2o.create_deal(company, stage="appointmentscheduled", amount="")
    late = c2o.create_deal(company, stage="contractsent", amount="")
    extracted, _ = c2o.sync()
    assert extracted.counts["problems_not_for_oa"] == 1, "an early deal's gap is for data health, not the OA"
    assert c2o.open_quarantine(early) is None
    entry = c2o.open_quarantine(late)
    assert entry is not None
    assert entry.reason_code == "missing_required"
    assert entry.field == "contract_amount"
    assert entry.department == "finance"
    c2o.edit("deals", late, {"amount": "88000.00"})
    c2o.tick(5)
    c2o.sync()
    assert c2o.open_quarantine(late) is None
    [instance] = c2o.instances_of(late)
    assert instance["widgets"]["contract_amount"] == 88000.0


def test_deal_without_customer_is_quarantined(c2o: C2O) -> None:
    deal = c2o.create_deal(None, stage="contractsent")
    c2o.sync()
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    assert entry.reason_code == "missing_required"
    assert entry.field == "company_id"
    assert c2o.instances_of(deal) == []


def test_release_after_a_dictionary_fix_rereads_the_deal_and_sends_it(c2o: C2O, tmp_path: Path) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="legacy_stage_7")
    c2o.sync()
    entry = c2o.open_quarantine(deal)
    assert entry is not None
    # The data owner adds the legacy stage to the dictionary (and makes it an initiation stage).
    text = bridge.dictionary.default_path().read_text(encoding="utf-8")
    text = text.replace(
        "      - {canonical: lost,        label: 输单,     crm: closedlost}\n",
        "      - {canonical: lost,        label: 输单,     crm: closedlost}\n"
        "      - {canonical: legacy,      label: 老系统阶段, crm: legacy_stage_7}\n",
    ).replace("      lost: [lead, qualified]\n", "      lost: [lead, qualified]\n      legacy: [contract, lost]\n")
    path = tmp_path / "dictionary.yaml"
    path.write_text(text, encoding="utf-8")
    fixed = bridge.dictionary.load(path)
    assert fixed.to_canonical("deal_stage", "crm", "legacy_stage_7") == "legacy"
    c2o.d = fixed
    c2o.p = permissions.load(dictionary=fixed)
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, initiation_stages=frozenset({"contract", "won", "legacy"}))
    with c2o.hub.begin() as conn:
        store.release(conn, RunContext.local(), entry.id, "王芳")
    loaded = c2o.load()
    assert loaded.counts["refreshed"] == 1
    assert loaded.counts["instances_created"] == 1
    assert c2o.open_quarantine(deal) is None
    with c2o.hub.connect() as conn:
        snap = store.get_snapshot(conn, "crm", "deal", deal)
    assert snap is not None
    assert snap.payload["stage"] == "legacy"

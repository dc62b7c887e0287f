"""Data health and the report after records died in the CRM (issue 16), on a hub the real syncs wrote.

The c2o world (both simulators) files 立项申请 for two deals; one deal is then
archived in the CRM and the CRM → OA sync's archived sweep tombstones it and
marks its link (``sync/crm_to_oa/archive.py``). A second deal and a customer are
tombstoned the way the sweep tombstones (``store.tombstone`` with its stone) but
without the link mark, a history-migration customer link points at the
archived customer, a third customer is merged into the first by the history
migration's de-duplication (``merge_record``) and keeps a customer link, and a
contact has no company at all. The checks must flag exactly the unmarked and
merged links and the contacts of the archived and merged customers; the
report must leave the archived deals out of its deal figures and say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sync.sync_c2o_world import C2O, c2o, c2o_hub_template, c2o_sims  # noqa: F401

from bridge import permissions
from bridge.hub import store
from bridge.migration import dedupe
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, HealthRun, business_day, run_checks
from bridge.report import load, marts
from bridge.report.periods import report_periods
from bridge.sync import crm_to_oa
from sandbox.scenario.data_health import stage_oa

CFG = HealthSettings(failing_ids_kept=500)


def _tombstone_unmarked(world: C2O, entity: str, source_id: str) -> None:
    """Tombstoned as the archived sweep does (same stone), but no writer marked its links."""
    stone = {"by": "crm", "at": world.now.isoformat(), "why": "archived in the CRM", "seen_by": "test"}
    with world.hub.begin() as conn:
        assert store.tombstone(conn, ("crm", entity, source_id), stone, now=world.now)


def _checks(world: C2O, tmp_path: Path) -> HealthRun:
    return run_checks(
        world.hub,
        day=business_day(world.now),
        run_id="test__lifecycle",
        now=world.now,
        dictionary=world.d,
        cfg=CFG,
        output=HealthOutput(tmp_path / "data", False, False),
    )


@pytest.fixture
def lived(c2o: C2O) -> tuple[C2O, dict[str, str]]:  # noqa: F811
    """The world after the deaths described in the module docstring; the ids by role."""
    world = c2o
    world.cfg = crm_to_oa.with_overrides(world.cfg, archive_sweep_seconds=0)
    kept, _ = world.customer()
    gone, gone_contact = world.customer()
    merged, merged_contact = world.customer()
    loner = str(
        world.crm_act(
            "/_sim/act/create",
            {
                "object_type": "contacts",
                "properties": {
                    "lastname": "李",
                    "firstname": "娜",
                    "mobilephone": "13912345678",
                    "hubspot_owner_id": "70000001",
                },
            },
        )["id"]
    )
    archived = world.create_deal(kept, stage="contractsent", amount="50000.00")
    unmarked = world.create_deal(kept, stage="contractsent", amount="70000.00")
    live = world.create_deal(kept, stage="contractsent", amount="90000.00")
    _, loaded = world.sync()
    assert loaded.counts["instances_created"] == 3
    world.archive("deals", archived)
    world.tick(61)
    world.sync()
    link = world.project_link(archived)
    assert link is not None
    assert link.state is not None
    assert link.state["archived"] is True  # the sweep's mark
    _tombstone_unmarked(world, "deal", unmarked)
    _tombstone_unmarked(world, "company", gone)
    # History-migration customer links (bridge.migration.chunk) and the merge record of its de-duplication.
    with world.hub.begin() as conn:
        dedupe.record_merges(
            conn, "migration__test", "company", [dedupe.Merge(kept, merged, "name_uscc")], world.now
        )
        for n, company in enumerate((gone, merged)):
            store.save_link(
                conn,
                "company_customer",
                store.NewLink(
                    crm_type="company",
                    crm_id=company,
                    oa_type="expense_claim",
                    oa_id=f"MIGRATED-EXPENSE-{n}",
                    state={"customer_id": company, "source": "migration"},
                ),
                dictionary_version=world.d.version,
            )
    # The 立项申请 as the OA → CRM sync stages them (Dictionary.from_oa + staging.snapshot_row).
    details = [
        ("project_initiation", world.oa.get_instance(str(i["instance_code"]))) for i in world.instances()
    ]
    assert stage_oa(world.hub, world.d, details) == 3
    ids = {
        "kept": kept,
        "gone": gone,
        "gone_contact": gone_contact,
        "merged": merged,
        "merged_contact": merged_contact,
        "loner": loner,
        "archived": archived,
        "unmarked": unmarked,
        "live": live,
    }
    return world, ids


def test_orphaned_links_and_contacts_of_archived_customers_are_flagged(
    lived: tuple[C2O, dict[str, str]], tmp_path: Path
) -> None:
    world, ids = lived
    run = _checks(world, tmp_path)

    deals = run.outcome("deal.xref.orphaned_link")
    assert deals.failing_ids == [ids["unmarked"]]  # the archived deal's link carries the sweep's mark
    assert deals.evaluated == 3
    assert deals.failing_owners == {"70000001": 1}
    assert deals.check.department == "sales"
    assert deals.check.label == "中枢库的关联（商机 ⇄ 立项申请）不得指向 CRM 中已删除归档或已被合并的商机"
    companies = run.outcome("company.xref.orphaned_link")
    assert sorted(companies.failing_ids) == sorted([ids["gone"], ids["merged"]])
    assert companies.evaluated == 2

    # An archived deal is the orphan check's business, neither a missing deal nor an incomplete link: the
    # withdrawn 立项申请 no longer claims it, the pending one of the unmarked deal is linked.
    exists = run.outcome("project_initiation.deal_id.deal_exists")
    assert exists.success
    assert exists.evaluated == 1
    links = run.outcome("project_initiation.deal_project.link_complete")
    assert links.success
    assert links.evaluated == 1

    contacts = run.outcome("contact.company_id.company_live")
    assert sorted(contacts.failing_ids) == sorted([ids["gone_contact"], ids["merged_contact"]])
    assert contacts.evaluated == 3  # the contact without any company is left to the required check
    assert contacts.check.label == "联系人「所属客户」须为 CRM 中现存的客户（未删除归档、未被合并）"
    assert run.outcome("contact.company_id.required").failing_ids == [ids["loner"]]
    assert run.outcome("deal.company_id.company_live").success


def test_the_report_leaves_archived_deals_out_and_says_so(lived: tuple[C2O, dict[str, str]]) -> None:
    world, ids = lived
    report_day = business_day(world.now)
    with world.hub.connect() as conn:
        data = load.load_report_data(
            conn, world.d, permissions.load(), role="management", built_at=world.now, health_until=report_day
        )
    assert data.archived["deal"] == 2
    assert set(data.frames["deal"]["crm_id"].astype(str)) == {ids["live"]}
    result = marts.build_marts(
        data,
        report_periods(report_day),
        marts.Labels.from_dictionary(world.d),
        marts.Names(owners={}, customers={}),
    )
    assert result.headline["archived_deals"] == 2
    assert result.headline["open_pipeline_deals"] == 1  # 合同签订 is an open stage
    assert result.headline["open_pipeline_amount"] == 90000.0
    stage = result.table("pipeline_stage").frame
    assert int(stage["deals"].sum()) == 1
    assert float(stage["amount"].sum()) == 90000.0
    note = marts.ARCHIVED_DEALS_NOTE.format(n=2)
    sections = {s.key: s for s in result.sections}
    assert note in sections["sales"].notes
    assert note in sections["pipeline"].notes
    assert not any(note in s.notes for k, s in sections.items() if k not in ("sales", "pipeline"))

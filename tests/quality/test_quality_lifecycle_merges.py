"""Data health after merges and deletions in the CRM, on a hub the real writers filled (issue 16).

The c2o world (both simulators): the CRM → OA sync files 立项申请 for two deals;
people then merge one deal into the other and one customer into another in
the CRM, delete a customer, and leave contacts without a company (one with no
association at all, one linked only by an unlabeled v4 association, which
leaves ``associatedcompanyid`` empty). The sync runs again (it remaps the
merges), then the history migration of the customers (it records the merge and
migrates the deleted customer as archived), then the data-health run. Checks:

- ``contact.company_id.associated`` fails exactly for the contact with no
  company and the one whose company was deleted; not for the contact of the
  merged-away customer (the merge moved it) nor for the v4-only one;
- ``contact.company_id.required`` fails only for the one with no company;
- ``deal.xref.orphaned_link`` passes the absorbed deal's settled 立项申请 link
  (marked) and ``company.xref.orphaned_link`` flags a customer link that still
  names the merged-away customer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.quality.test_quality_lifecycle import _checks
from tests.sync.sync_c2o_world import C2O, OWNER, c2o, c2o_hub_template, c2o_sims  # noqa: F401
from tests.sync.test_sync_crm_to_oa_merge import _merge

from bridge.context import RunContext
from bridge.hub import store
from bridge.migration import steps
from bridge.migration.params import CONFIRM_TEXT
from bridge.sync import crm_to_oa

STAGE = "contractsent"  # a deal at it gets a 立项申请


def _contact(world: C2O, **props: Any) -> str:
    base = {"lastname": "李", "firstname": "娜", "mobilephone": "13912345678", "hubspot_owner_id": OWNER}
    return str(
        world.crm_act("/_sim/act/create", {"object_type": "contacts", "properties": {**base, **props}})["id"]
    )


def _migrate(world: C2O, tmp_path: Path) -> None:
    run_id = "manual__health_lifecycle"
    ctx = RunContext(
        dag_id="history_migration", run_id=run_id, task_id="test", try_number=1, principal="bridge-test"
    )
    m = steps.Migration.create(run_id, ctx, hub=world.hub, data_dir=tmp_path / "migration")
    # customers only: the contacts are not read again, so the deleted customer's contact keeps naming it
    # (archiving a company does not touch its contacts in the CRM: the sync does not read them either)
    params = {
        "dry_run": False,
        "confirm_load": CONFIRM_TEXT,
        "date_from": world.now.date().isoformat(),
        "entities": ["company"],
    }
    assert steps.run_all(m, params, world.crm, world.oa)["status"] == "success"


@pytest.fixture
def merged(c2o: C2O, tmp_path: Path) -> tuple[C2O, dict[str, str]]:  # noqa: F811
    world = c2o
    world.cfg = crm_to_oa.with_overrides(world.cfg, archive_sweep_seconds=0)
    ids: dict[str, str] = {}
    ids["kept"], ids["kept_contact"] = world.customer()
    ids["absorbed_co"], ids["absorbed_contact"] = world.customer()
    ids["gone_co"], ids["gone_contact"] = world.customer()
    ids["loner"] = _contact(world)
    ids["v4_only"] = _contact(world, lastname="王")
    world.crm_act(  # an unlabeled (not primary) association: associatedcompanyid stays empty
        "/_sim/act/associate",
        {"from_type": "contacts", "from_id": int(ids["v4_only"]), "to_type": "companies", "to_id": int(ids["kept"])},
    )
    ids["survivor"] = world.create_deal(ids["kept"], stage=STAGE, amount="50000.00")
    ids["absorbed"] = world.create_deal(ids["kept"], stage=STAGE, amount="70000.00")
    _, loaded = world.sync()
    assert loaded.counts["instances_created"] == 2
    _merge(world, "deals", ids["absorbed"], ids["survivor"])
    _merge(world, "companies", ids["absorbed_co"], ids["kept"])
    world.tick(61)
    world.sync()
    world.tick(61)
    world.sync()  # the withdrawal of the absorbed deal's 立项申请 settles
    # Deleted after its contact was last read: the CRM hides it from the contact's associations without
    # touching the contact, so the hub's contact still names it.
    world.archive("companies", ids["gone_co"])
    _migrate(world, tmp_path)
    # A customer link written before the merge by a writer that did not remap it (an older migration).
    with world.hub.begin() as conn:
        store.save_link(
            conn,
            "company_customer",
            store.NewLink(
                crm_type="company",
                crm_id=ids["absorbed_co"],
                oa_type="expense_claim",
                oa_id="OLD-EXPENSE-1",
                state={"customer_id": ids["absorbed_co"], "source": "migration"},
            ),
            dictionary_version=world.d.version,
        )
    return world, ids


def test_contacts_without_any_company_and_links_to_merged_records(
    merged: tuple[C2O, dict[str, str]], tmp_path: Path
) -> None:
    world, ids = merged
    with world.hub.connect() as conn:
        stone = store.get_snapshot(conn, "crm", "company", ids["gone_co"])
        absorbed = store.get_snapshot(conn, "crm", "contact", ids["absorbed_contact"])
    assert stone is not None
    assert stone.deleted  # the migration migrated the deleted customer as archived
    assert absorbed is not None
    assert absorbed.payload["company_id"] == ids["kept"]  # the sync repointed it with the merge

    run = _checks(world, tmp_path)

    associated = run.outcome("contact.company_id.associated")
    assert sorted(associated.failing_ids) == sorted([ids["loner"], ids["gone_contact"]])
    assert associated.evaluated == 5
    assert associated.check.suite == "cross.references"
    assert "关联至少一个客户" in associated.check.label
    assert run.outcome("contact.company_id.required").failing_ids == [ids["loner"]]
    live = run.outcome("contact.company_id.company_live")
    assert ids["gone_contact"] in live.failing_ids
    assert ids["v4_only"] not in live.failing_ids

    deals = run.outcome("deal.xref.orphaned_link")
    assert deals.success  # the absorbed deal's link is settled (marked), the survivor's is live
    assert deals.evaluated == 2
    companies = run.outcome("company.xref.orphaned_link")
    assert companies.failing_ids == [ids["absorbed_co"]]

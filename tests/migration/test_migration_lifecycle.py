"""The history migration over records deleted (archived) and merged in the CRM (issue 16), end to end.

Both simulators (the c2o world: an empty portal and OA, a hub of its own).
People create customers and deals, file 立项申请 and 费用报销 in the OA by hand,
then delete (archive) a deal and a customer and merge a customer and a deal in
the CRM. The migration runs for real with ``archived_records`` = ``migrate``
and = ``skip``: the deleted records are stored archived and tombstoned (or
left out and counted), the merged-away ids are never a record of their own and
every OA form naming one is linked to the survivor. A CRM → OA sync after it
files no 立项申请 for the deleted deal, and none for the survivor, which has one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.sync.sync_c2o_world import C2O, c2o, c2o_hub_template, c2o_sims  # noqa: F401
from tests.sync.test_sync_crm_to_oa_merge import _merge

from bridge.context import RunContext
from bridge.hub import store
from bridge.hub.schema import merge_record
from bridge.migration import runs, steps
from bridge.migration.params import CONFIRM_TEXT

DAY = "2026-10-08T00:00:00+08:00"
STAGE = "contractsent"  # 合同签订: a deal at it gets a 立项申请 from the CRM → OA sync


def _submit(world: C2O, form: str, widgets: dict[str, Any]) -> str:
    """A person files an OA form by hand (the history)."""
    users = world.sims.oa.admin("GET", "/_sim/users")
    assert isinstance(users, dict)
    applicant = next(
        u["user_id"] for u in users["users"] if str(u.get("department_id", "")).startswith("od-sales")
    )
    detail = world.sims.oa.admin(
        "POST",
        "/_sim/act/submit",
        {"approval": form, "user_id": applicant, "form": [{"id": k, "value": v} for k, v in widgets.items()]},
    )
    assert isinstance(detail, dict)
    return str(detail["instance_code"])


def _project(world: C2O, deal_id: str, customer_id: str) -> str:
    return _submit(
        world,
        "project_initiation",
        {
            "project_name": f"历史项目{deal_id}",
            "deal_id": deal_id,
            "customer_id": customer_id,
            "customer_name": "测试客户",
            "contract_amount": 120000,
            "close_date": DAY,
            "project_stage": "立项",
            "contact_name": "张伟",
            "contact_mobile": "13812345678",
        },
    )


def _expense(world: C2O, customer_id: str) -> str:
    return _submit(
        world,
        "expense_claim",
        {
            "reason": "客户拜访交通费",
            "expense_type": "交通",
            "amount": 320.5,
            "expense_date": DAY,
            "project_no": "",
            "customer_id": customer_id,
        },
    )


@pytest.fixture
def lived(c2o: C2O) -> tuple[C2O, dict[str, str]]:  # noqa: F811
    """The CRM and the OA after the history: ids by role."""
    world = c2o
    ids: dict[str, str] = {}
    ids["kept"], _ = world.customer()
    ids["absorbed_co"], ids["absorbed_contact"] = world.customer()
    ids["gone_co"], _ = world.customer()
    ids["live"] = world.create_deal(ids["kept"], stage=STAGE)
    ids["gone"] = world.create_deal(ids["kept"], stage=STAGE)  # at the 立项 stage, then deleted
    ids["survivor"] = world.create_deal(ids["kept"], stage=STAGE)
    ids["absorbed"] = world.create_deal(ids["absorbed_co"], stage=STAGE)
    ids["project_absorbed"] = _project(world, ids["absorbed"], ids["absorbed_co"])
    ids["project_gone"] = _project(world, ids["gone"], ids["kept"])
    ids["expense_absorbed_co"] = _expense(world, ids["absorbed_co"])
    world.extract()  # the sync stages the deals (the deleted one queued, its debounce window not over)
    _merge(world, "companies", ids["absorbed_co"], ids["kept"])
    _merge(world, "deals", ids["absorbed"], ids["survivor"])
    world.archive("deals", ids["gone"])
    world.archive("companies", ids["gone_co"])
    return world, ids


def _migrate(
    world: C2O, tmp_path: Path, archived_records: str, dry_run: bool = False
) -> tuple[dict[str, Any], Counter[str]]:
    """A real load (or a dry run); its totals and its skipped records by reason (summed over its chunks)."""
    run_id = f"manual__lifecycle_{archived_records}{'_dry' if dry_run else ''}"
    ctx = RunContext(
        dag_id="history_migration", run_id=run_id, task_id="test", try_number=1, principal="bridge-test"
    )
    m = steps.Migration.create(run_id, ctx, hub=world.hub, data_dir=tmp_path / "data")  # the real clock, as the CRM's
    params = {
        "dry_run": dry_run,
        "confirm_load": None if dry_run else CONFIRM_TEXT,
        "archived_records": archived_records,
        "date_from": world.now.date().isoformat(),
        "chunk_size": 100,
    }
    result = steps.run_all(m, params, world.crm, world.oa)
    assert result["status"] == "success"
    skipped: Counter[str] = Counter()
    with world.hub.connect() as conn:
        for c in runs.planned(conn, run_id):
            skipped.update((c.counts or {}).get("skipped") or {})
    return result["counts"], skipped


def _snap(world: C2O, entity: str, sid: str) -> store.Snapshot | None:
    with world.hub.connect() as conn:
        return store.get_snapshot(conn, "crm", entity, sid)


def _links(world: C2O, link_type: str) -> list[store.Link]:
    with world.hub.connect() as conn:
        return store.links(conn, link_type)


def _merges(world: C2O) -> set[tuple[str, str, str, str]]:
    with world.hub.connect() as conn:
        rows = conn.execute(select(merge_record.c.entity, merge_record.c.merged_id, merge_record.c.kept_id,
                                   merge_record.c.rule))
        return {(str(a), str(b), str(c), str(d)) for a, b, c, d in rows}


@pytest.mark.parametrize("archived_records", ["migrate", "skip"])
def test_deleted_records_are_migrated_as_archived_or_skipped_and_merged_ids_resolve_to_survivors(
    lived: tuple[C2O, dict[str, str]], tmp_path: Path, archived_records: str
) -> None:
    world, ids = lived
    counts, skipped = _migrate(world, tmp_path, archived_records)

    # merged-away ids: recorded, never a live record of their own (the sync had staged them: tombstoned)
    assert _merges(world) == {
        ("company", ids["absorbed_co"], ids["kept"], "crm_merge"),
        ("deal", ids["absorbed"], ids["survivor"], "crm_merge"),
    }
    for entity, sid, survivor in (("company", "absorbed_co", "kept"), ("deal", "absorbed", "survivor")):
        snap = _snap(world, entity, ids[sid])
        assert snap is not None
        assert snap.deleted
        assert snap.payload[store.TOMBSTONE_KEY]["merged_into"] == ids[survivor]
    contact = _snap(world, "contact", ids["absorbed_contact"])
    assert contact is not None
    assert contact.payload["company_id"] == ids["kept"]  # its association moved with the merge

    # OA forms naming a merged id are linked to the survivor; the deleted deal's 立项申请 is not linked
    projects = {lk.oa_id: lk for lk in _links(world, "deal_project")}
    assert set(projects) == {ids["project_absorbed"]}
    assert projects[ids["project_absorbed"]].crm_id == ids["survivor"]
    assert (projects[ids["project_absorbed"]].state or {})["merged_from"] == ids["absorbed"]
    customers = {lk.oa_id: lk.crm_id for lk in _links(world, "company_customer")}
    assert customers == {ids["expense_absorbed_co"]: ids["kept"]}

    # deleted records: stored archived and tombstoned, or left out and counted
    for entity, sid in (("deal", ids["gone"]), ("company", ids["gone_co"])):
        snap = _snap(world, entity, sid)
        if archived_records == "migrate":
            assert snap is not None
            assert snap.archived
            assert snap.deleted
            assert snap.payload[store.TOMBSTONE_KEY]["why"] == "archived in the CRM"
        else:  # the sync staged it before the deletion; the migration left it as it was
            assert snap is not None
            assert not snap.archived
            assert not snap.deleted
    archive_audits = [a for a in world.audit("archive") if a["run_id"] == "manual__lifecycle_migrate"]
    if archived_records == "migrate":
        assert sorted(a["entity"] for a in archive_audits) == ["company", "deal"]
        assert counts["archived"] == 2
    else:
        assert archive_audits == []
        assert counts["archived"] == 0
    assert skipped["archived_in_crm"] == (2 if archived_records == "skip" else 0)
    assert skipped["merged_in_crm"] == 2

    # the migration wrote nothing to the OA
    assert world.instances() == []


def test_after_migrating_deleted_deals_as_archived_the_sync_files_no_project_for_them(
    lived: tuple[C2O, dict[str, str]], tmp_path: Path
) -> None:
    """The sync had queued the deleted deal before it was deleted; the migration's tombstone stops it (with
    ``skip`` the hub still holds it live until the sync's own archived sweep passes). The survivor of the
    merge keeps its one migrated 立项申请."""
    world, ids = lived
    _migrate(world, tmp_path, "migrate")
    world.tick(61)
    world.load()
    world.sync()
    assert world.instances_of(ids["gone"]) == []
    assert world.instances_of(ids["survivor"]) == []
    assert world.instances_of(ids["absorbed"]) == []
    assert len(world.instances_of(ids["live"])) == 1  # the sync itself is working


def test_a_dry_run_counts_the_deleted_and_merged_records_as_a_real_run_and_writes_nothing(
    lived: tuple[C2O, dict[str, str]], tmp_path: Path
) -> None:
    world, ids = lived
    dry, dry_skipped = _migrate(world, tmp_path, "migrate", dry_run=True)
    assert _merges(world) == set()
    assert _links(world, "deal_project") == []
    gone = _snap(world, "deal", ids["gone"])
    assert gone is not None
    assert not gone.deleted  # as the sync staged it: the dry run tombstoned nothing
    assert not gone.archived
    assert _snap(world, "company", ids["gone_co"]) is not None
    assert world.audit("archive") == []
    real, real_skipped = _migrate(world, tmp_path, "migrate")
    assert real == dry
    assert real_skipped == dry_skipped
    assert dry["archived"] == 2
    assert dry["linked"] == 2  # the 立项申请 and the expense naming merged ids, to the survivors

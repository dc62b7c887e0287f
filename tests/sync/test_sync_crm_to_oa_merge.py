"""CRM → OA, records merged in the CRM, against the simulators: the absorbed deal's 立项申请 moves to the
survivor, two 立项申请 become one live one, a merged company's deals and contacts follow it, reruns change
nothing; and the pure decision of which 立项申请 the survivor keeps."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.sync.sync_c2o_world import C2O

from bridge.hub import store
from bridge.hub.schema import merge_record
from bridge.migration import dedupe
from bridge.quality import frames
from bridge.sync import crm_to_oa
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa import merge
from bridge.sync.crm_to_oa.decide import MergedProject, decide_merge


@pytest.fixture
def world(c2o: C2O) -> C2O:
    """The c2o world with a sweep pass on every extract: the absorbed record is archived, the sweep must
    leave it to the merge."""
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, archive_sweep_seconds=0)
    return c2o


def _merge(world: C2O, object_type: str, absorbed: str, survivor: str) -> dict[str, Any]:
    """A person merges two records in the CRM (HubSpot's public merge API)."""
    answer = world.crm.call(
        "POST",
        "/crm/v3/objects/{object_type}/merge",
        path_params={"object_type": object_type},
        json={"objectIdToMerge": absorbed, "primaryObjectId": survivor},
    )
    assert isinstance(answer.body, dict)
    return answer.body


def _snapshot(world: C2O, entity: str, sid: str) -> store.Snapshot:
    with world.hub.connect() as conn:
        return store.get_snapshots(conn, "crm", entity, [sid])[sid]


def _links(world: C2O, deal: str) -> list[store.Link]:
    with world.hub.connect() as conn:
        return store.links(conn, rules.PROJECT_LINK, crm_id=deal)


def _settle(world: C2O, runs: int = 2) -> None:
    for _ in range(runs):
        world.tick(60)
        world.sync()


def _two_deals(world: C2O, survivor_stage: str) -> tuple[str, str]:
    """(survivor, absorbed) of one customer, synced: the absorbed deal in contract stage has its 立项申请."""
    company, _ = world.customer()
    absorbed = world.create_deal(company, stage="contractsent")
    survivor = world.create_deal(company, stage=survivor_stage)
    _, loaded = world.sync()
    assert loaded.counts["instances_created"] == 1 + (survivor_stage == "contractsent")
    return survivor, absorbed


def test_the_survivor_inherits_the_absorbed_deals_project_initiation(world: C2O) -> None:
    survivor, absorbed = _two_deals(world, "decisionmakerboughtin")
    [instance] = world.instances()
    _merge(world, "deals", absorbed, survivor)
    _settle(world)
    assert len(world.instances()) == 1, "no new 立项申请"
    link = world.project_link(survivor)
    assert link is not None
    assert link.oa_id == instance["instance_code"]
    assert _links(world, absorbed) == []
    snap = _snapshot(world, "deal", absorbed)
    assert snap.deleted
    assert snap.payload[store.TOMBSTONE_KEY][rules.MERGED_INTO] == survivor
    assert [a["record_ids"] for a in world.audit("merge")] == [
        {"survivor_id": survivor, "merged_id": absorbed}
    ]
    assert world.audit("archive") == [], "a merged deal is not settled as archived when its project moved"
    # the survivor reaches the stage later: it is linked, so still no second 立项申请
    world.edit("deals", survivor, {"dealstage": "contractsent"})
    _settle(world)
    assert len(world.instances()) == 1
    assert len(world.audit("merge")) == 1, "reruns change nothing"


def test_two_merged_deals_with_project_initiations_keep_one_live(world: C2O) -> None:
    survivor, absorbed = _two_deals(world, "contractsent")
    [own] = world.instances_of(survivor)
    [other] = world.instances_of(absorbed)
    _merge(world, "deals", absorbed, survivor)
    _settle(world)
    assert len(world.instances()) == 2, "no third 立项申请"
    assert {i["instance_code"]: i["status"] for i in world.instances()} == {
        own["instance_code"]: "PENDING",
        other["instance_code"]: "CANCELED",
    }
    link = world.project_link(survivor)
    assert link is not None
    assert link.oa_id == own["instance_code"], "the survivor keeps its own 立项申请"
    [settled] = _links(world, absorbed)
    assert settled.state is not None
    assert settled.state[rules.ARCHIVE_KEY]["phase"] == "withdrawn"
    assert settled.state[rules.ARCHIVE_KEY][rules.MERGED_INTO] == survivor
    # The reason says what happened: merged into the survivor (by name and id), not deleted.
    name = _snapshot(world, "deal", survivor).payload["deal_name"]
    [comment] = world.oa.comments(other["instance_code"], world.oa_user("finance-bot@example.com"))
    assert f"合并到「{name}」（ID {survivor}）" in comment.text
    assert "由集成机器人自动撤回" in comment.text
    assert "删除" not in comment.text
    assert "删除" not in settled.state[rules.ARCHIVE_KEY]["comment"]
    ops = [a["operation"] for a in world.audit() if a["operation"] in {"merge", "withdraw_instance"}]
    assert ops == ["merge", "withdraw_instance"]
    before = len(world.audit())
    _settle(world)
    assert len(world.audit()) == before, "a rerun writes nothing"
    assert len(world.instances()) == 2


def test_an_approved_absorbed_project_initiation_is_told_to_finance(world: C2O) -> None:
    survivor, absorbed = _two_deals(world, "contractsent")
    [other] = world.instances_of(absorbed)
    world.oa_act("approve", other["instance_code"])
    _merge(world, "deals", absorbed, survivor)
    _settle(world)
    assert len(world.instances()) == 2, "no third 立项申请"
    assert world.instances_of(absorbed, rules.NOTICE_FORM) == []
    [notice] = world.instances_of(absorbed, rules.VOID_FORM)
    name = _snapshot(world, "deal", survivor).payload["deal_name"]
    assert notice["widgets"]["void_reason"] == f"合并：已合并到「{name}」（ID {survivor}）"
    assert notice["widgets"]["project_instance"] == other["instance_code"]
    [settled] = _links(world, absorbed)
    assert settled.state is not None
    assert settled.state[rules.ARCHIVE_KEY]["phase"] == "notified"
    _settle(world)
    assert len(world.instances_of(absorbed, rules.VOID_FORM)) == 1, "a rerun sends none"


def test_a_crash_inside_the_remap_leaves_nothing_half_done(
    world: C2O, monkeypatch: pytest.MonkeyPatch
) -> None:
    survivor, absorbed = _two_deals(world, "decisionmakerboughtin")
    _merge(world, "deals", absorbed, survivor)

    def crash(*_: object) -> None:
        raise RuntimeError("worker killed")

    requeue = merge._requeue
    monkeypatch.setattr(merge, "_requeue", crash)
    with pytest.raises(RuntimeError):
        world.extract()
    assert world.project_link(survivor) is None, "the page's transaction rolled back"
    assert [lk.crm_id for lk in _links(world, absorbed)] == [absorbed]
    assert not _snapshot(world, "deal", absorbed).deleted
    assert world.audit("merge") == []
    monkeypatch.setattr(merge, "_requeue", requeue)  # the rerun
    _settle(world)
    assert world.project_link(survivor) is not None
    assert _links(world, absorbed) == []
    assert len(world.audit("merge")) == 1
    assert len(world.instances()) == 1


def test_merged_companies_take_their_deals_and_contacts_along(world: C2O) -> None:
    survivor, _ = world.customer()
    absorbed, contact = world.customer()
    deal = world.create_deal(absorbed, stage="decisionmakerboughtin")
    world.sync()
    assert _snapshot(world, "deal", deal).payload["company_id"] == absorbed
    _merge(world, "companies", absorbed, survivor)
    _settle(world)
    assert _snapshot(world, "deal", deal).payload["company_id"] == survivor
    assert _snapshot(world, "contact", contact).payload["company_id"] == survivor
    assert _snapshot(world, "company", absorbed).deleted
    [event] = world.audit("merge")
    assert event["record_ids"] == {"survivor_id": survivor, "merged_id": absorbed}
    # the deal reaches the stage: its 立项申请 names the survivor
    world.edit("deals", deal, {"dealstage": "contractsent"})
    _settle(world)
    [instance] = world.instances_of(deal)
    assert len(world.audit("merge")) == 1
    assert instance["status"] == "PENDING"


def _merge_rows(world: C2O) -> list[dict[str, Any]]:
    with world.hub.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(merge_record).order_by(merge_record.c.id))]


def test_merges_made_in_the_crm_are_recorded_where_merges_are_read(world: C2O) -> None:
    survivor, absorbed = _two_deals(world, "decisionmakerboughtin")
    kept_company, _ = world.customer()
    gone_company, _ = world.customer()
    world.sync()
    _merge(world, "deals", absorbed, survivor)
    _merge(world, "companies", gone_company, kept_company)
    _settle(world)
    rows = _merge_rows(world)
    assert [(r["entity"], r["kept_id"], r["merged_id"], r["rule"]) for r in rows] == [
        ("company", kept_company, gone_company, merge.MERGE_RULE),
        ("deal", survivor, absorbed, merge.MERGE_RULE),
    ]
    deal_row = rows[1]
    assert deal_row["detail"]["kept_name"] == _snapshot(world, "deal", survivor).payload["deal_name"]
    assert deal_row["detail"]["merged_name"] == _snapshot(world, "deal", absorbed).payload["deal_name"]
    assert deal_row["run_id"].startswith("test__")
    [audited] = [a for a in world.audit("merge") if a["entity"] == "deal"]
    assert audited["record_ids"] == {"survivor_id": survivor, "merged_id": absorbed}
    # Its readers: data health's merged ids and the history migration's survivor look-up.
    with world.hub.connect() as conn:
        assert frames.merged_ids(conn, "company") == frozenset({gone_company})
        assert dedupe.kept_ids(conn, "deal", [absorbed, survivor]) == {absorbed: survivor}
    _settle(world)
    assert len(_merge_rows(world)) == 2, "a rerun records nothing twice"


# ---------------------------------------------------------------- the pure decision


def test_the_survivor_keeps_its_own_project_initiation() -> None:
    absorbed = [MergedProject("5", "2026-12-01T00:00:00"), MergedProject("7", "2026-11-01T00:00:00")]
    assert decide_merge(True, absorbed) == rules.MergeDecision(None, ("5", "7"))


def test_without_its_own_the_survivor_inherits_the_earliest_filed() -> None:
    absorbed = [MergedProject("5", "2026-12-01T00:00:00"), MergedProject("7", "2026-11-01T00:00:00")]
    assert decide_merge(False, absorbed) == rules.MergeDecision("7", ("5",))
    tie = [MergedProject("12", "2026-11-01T00:00:00"), MergedProject("9", "2026-11-01T00:00:00")]
    assert decide_merge(False, tie).inherit == "9", "ties: the lower deal id"


def test_a_project_already_being_settled_is_neither_inherited_nor_settled_again() -> None:
    absorbed = [
        MergedProject("5", "2026-10-01T00:00:00", settling=True),
        MergedProject("7", "2026-11-01T00:00:00"),
    ]
    assert decide_merge(False, absorbed) == rules.MergeDecision("7", ())
    assert decide_merge(False, []) == rules.MergeDecision(None, ())

"""CRM → OA, deals archived (deleted) and restored in the CRM, against the simulators: the archived-deals
sweep, the withdrawal of a pending 立项申请, the notice to finance for an approved one, restores."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tests.sync.sync_c2o_world import C2O

from bridge.hub import store
from bridge.report import load as report_load
from bridge.sync import crm_to_oa
from bridge.sync.crm_to_oa import archive
from bridge.sync.crm_to_oa import decide as rules
from bridge.ui import queries as ui_queries


@pytest.fixture
def world(c2o: C2O) -> C2O:
    """The c2o world with a sweep pass on every extract (the setting's interval is tested on its own)."""
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, archive_sweep_seconds=0)
    return c2o


def _filed(world: C2O, amount: str = "120000.00") -> tuple[str, str]:
    """A deal in contract stage with its 立项申请 filed: (deal id, instance code)."""
    company, _ = world.customer()
    deal = world.create_deal(company, stage="contractsent", amount=amount)
    _, loaded = world.sync()
    assert loaded.counts["instances_created"] == 1
    [instance] = world.instances_of(deal)
    return deal, str(instance["instance_code"])


def _snapshot(world: C2O, deal: str) -> store.Snapshot:
    with world.hub.connect() as conn:
        return store.get_snapshots(conn, "crm", "deal", [deal])[deal]


def _link(world: C2O, deal: str) -> store.Link:
    link = world.project_link(deal)
    assert link is not None
    assert link.state is not None
    return link


def _ops(world: C2O, deal: str) -> list[str]:
    return [a["operation"] for a in world.audit() if a["record_ids"].get("deal_id") == deal]


def test_deal_archived_before_its_project_initiation_files_nothing(world: C2O) -> None:
    company, _ = world.customer()
    deal = world.create_deal(company, stage="contractsent")
    assert world.extract().counts["enqueued"] == 1  # queued, not yet due
    world.archive("deals", deal)
    world.tick(5)
    extracted, loaded = world.sync()
    assert extracted.counts["archived_tombstoned"] == 1
    assert loaded.counts["due"] == 1
    assert loaded.counts.get("instances_created", 0) == 0
    assert world.instances_of(deal) == []
    snap = _snapshot(world, deal)
    assert snap.deleted
    assert snap.payload[store.TOMBSTONE_KEY]["by"] == "crm"
    assert snap.payload[store.TOMBSTONE_KEY]["at"], "when the CRM archived it"
    assert _ops(world, deal) == ["archive"]
    assert world.pending() == []


def test_deal_archived_while_pending_withdraws_its_project_initiation(world: C2O) -> None:
    deal, code = _filed(world)
    world.archive("deals", deal)
    world.tick(60)
    _, loaded = world.sync()
    assert loaded.counts["archived_withdrawn"] == 1
    [instance] = world.instances_of(deal)
    assert instance["status"] == "CANCELED"
    link = _link(world, deal)
    assert link.state["archived"] is True
    assert link.state[rules.ARCHIVE_KEY]["phase"] == "withdrawn"
    assert "自动撤回" in link.state[rules.ARCHIVE_KEY]["comment"]
    withdrawals = world.audit("withdraw_instance")
    assert [w["record_ids"]["instance_code"] for w in withdrawals] == [code]
    assert "自动撤回" in withdrawals[0]["detail"]
    assert _ops(world, deal)[-2:] == ["archive", "withdraw_instance"]
    # The reason is on the instance itself, posted by the bridge's bot (the notices' applicant).
    [comment] = world.oa.comments(code, world.oa_user("finance-bot@example.com"))
    assert comment.commentator == world.oa_user("finance-bot@example.com")
    assert "已于" in comment.text
    assert "被删除（归档）" in comment.text
    assert "由集成机器人自动撤回" in comment.text
    assert link.state[rules.ARCHIVE_KEY]["comment_id"] == comment.comment_id
    assert loaded.counts["archive_comments_posted"] == 1
    world.tick(60)
    _, again = world.sync()
    assert again.counts.get("archived_withdrawn", 0) == 0
    assert len(world.audit("withdraw_instance")) == 1


def test_a_comment_the_oa_refuses_leaves_the_withdrawal_done_and_counted(world: C2O) -> None:
    deal, code = _filed(world)
    world.sims.oa.admin("POST", "/_sim/faults", {"kind": "error", "status": 500, "method": "POST",
                                                 "path": "/comments$", "count": 100})
    try:
        world.archive("deals", deal)
        world.tick(60)
        _, loaded = world.sync()
    finally:
        world.sims.oa.admin("DELETE", "/_sim/faults")
    assert loaded.counts["archived_withdrawn"] == 1
    assert loaded.counts["archive_comments_failed"] == 1
    assert [i["status"] for i in world.instances_of(deal)] == ["CANCELED"]
    state = _link(world, deal).state[rules.ARCHIVE_KEY]
    assert (state["phase"], state["comment_id"]) == ("withdrawn", None)
    assert "自动撤回" in state["comment"], "the reason stays in the hub"
    assert world.oa.comments(code, world.oa_user("finance-bot@example.com")) == []
    assert [w["record_ids"]["instance_code"] for w in world.audit("withdraw_instance")] == [code]


def test_deal_archived_after_approval_tells_finance_once(world: C2O) -> None:
    deal, code = _filed(world, amount="150000.00")
    world.oa_act("approve", code)
    world.archive("deals", deal)
    world.tick(60)
    _, loaded = world.sync()
    assert loaded.counts["archived_notices_sent"] == 1
    assert world.instances_of(deal, rules.NOTICE_FORM) == [], "not an amount change: its own form"
    [notice] = world.instances_of(deal, rules.VOID_FORM)
    widgets = notice["widgets"]
    assert widgets["deal_name"] == _snapshot(world, deal).payload["deal_name"]
    assert widgets["project_instance"] == code
    assert widgets["project_no"] == _link(world, deal).state["project_no"]
    assert widgets["void_reason"].startswith("删除")
    assert widgets["voided_at"].startswith(world.now.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()[:7])
    assert Decimal(str(widgets["contract_amount"])) == Decimal("150000.00")
    assert widgets["customer_name"].startswith("测试客户")
    assert notice["user_id"] == world.oa_user("finance-bot@example.com")
    assert [a["entity"] for a in world.audit("create_instance")][-1] == rules.VOID_FORM
    [instance] = world.instances_of(deal)
    assert instance["status"] == "APPROVED", "an approved 立项申请 is not withdrawn"
    link = _link(world, deal)
    assert link.state["archived"] is True
    assert link.state[rules.ARCHIVE_KEY]["phase"] == "notified"
    assert link.state[rules.ARCHIVE_KEY]["notice_instance"] == notice["instance_code"]
    world.tick(60)
    _, again = world.sync()
    assert again.counts.get("notices_sent", 0) == 0
    assert len(world.instances_of(deal, rules.VOID_FORM)) == 1


class Crash(Exception):
    """The run stops right after the OA accepted a call (before the hub recorded it)."""


def _archive_and_crash_after(world: C2O, monkeypatch: pytest.MonkeyPatch, deal: str, method: str) -> None:
    """Archive the deal, then a load that stops right after the OA accepted ``method``; the clock moves on."""
    world.archive("deals", deal)
    world.tick(60)
    world.extract()
    original = getattr(world.oa, method)

    def call_then_crash(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)
        raise Crash(method)

    with monkeypatch.context() as patch:
        patch.setattr(world.oa, method, call_then_crash)
        with pytest.raises(Crash):
            world.load()
    world.tick(60)


def test_a_crash_after_the_withdrawal_then_a_rerun_records_it_once(
    world: C2O, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, code = _filed(world)
    _archive_and_crash_after(world, monkeypatch, deal, "cancel_instance")
    assert [i["status"] for i in world.instances_of(deal)] == ["CANCELED"]
    assert world.audit("withdraw_instance") == []
    _, loaded = world.sync()
    assert loaded.counts["decision_resume_withdraw"] == 1
    assert _link(world, deal).state[rules.ARCHIVE_KEY]["phase"] == "withdrawn"
    assert [w["record_ids"]["instance_code"] for w in world.audit("withdraw_instance")] == [code]


def test_a_crash_after_the_notice_to_finance_then_a_rerun_files_no_second_one(
    world: C2O, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, code = _filed(world)
    world.oa_act("approve", code)
    _archive_and_crash_after(world, monkeypatch, deal, "create_instance")
    assert len(world.instances_of(deal, rules.VOID_FORM)) == 1
    _, loaded = world.sync()
    assert loaded.counts["decision_resume_void_notice"] == 1
    [notice] = world.instances_of(deal, rules.VOID_FORM)
    assert _link(world, deal).state[rules.ARCHIVE_KEY]["notice_instance"] == notice["instance_code"]
    assert len([a for a in world.audit("create_instance") if a["entity"] == rules.VOID_FORM]) == 1


def test_deal_archived_after_rejection_is_only_marked(world: C2O) -> None:
    deal, code = _filed(world)
    world.oa_act("reject", code)
    world.archive("deals", deal)
    world.tick(60)
    _, loaded = world.sync()
    assert loaded.counts["archived_marked"] == 1
    assert loaded.counts.get("written", 0) == 0
    assert _link(world, deal).state[rules.ARCHIVE_KEY]["phase"] == "marked"
    assert "mark_archived" in _ops(world, deal)


def _restored_twice_over(world: C2O, deal: str) -> None:
    """After a restore: the snapshot revived, the mark cleared and audited, and no second 立项申请."""
    assert not _snapshot(world, deal).deleted
    assert store.TOMBSTONE_KEY not in _snapshot(world, deal).payload
    link = _link(world, deal)
    assert link.state["archived"] is False
    assert link.state[rules.ARCHIVE_KEY]["restored_at"]
    assert link.state[rules.ARCHIVE_KEY]["phase"] == "withdrawn", "what was done stays recorded"
    assert _ops(world, deal)[-1] == "restore"
    world.edit("deals", deal, {"dealname": "恢复后的项目"})
    world.tick(60)
    _, loaded = world.sync()
    assert loaded.counts.get("instances_created", 0) == 0
    assert len(world.instances_of(deal)) == 1
    assert _ops(world, deal).count("restore") == 1


def test_restored_deal_found_by_search_is_revived_without_a_second_project_initiation(world: C2O) -> None:
    deal, _code = _filed(world)
    world.archive("deals", deal)
    world.tick(60)
    world.sync()
    world.restore("deals", deal)  # within the extract's lookback: search reads it again
    world.tick(60)
    extracted, loaded = world.sync()
    assert extracted.counts["read_deal"] == 1
    assert extracted.counts.get("archived_restored", 0) + loaded.counts.get("archived_restored", 0) == 1
    _restored_twice_over(world, deal)


def test_restored_deal_search_does_not_reread_is_revived_by_the_sweep(world: C2O) -> None:
    world.cfg = crm_to_oa.with_overrides(world.cfg, lookback_ms=0)
    deal, _code = _filed(world)
    world.archive("deals", deal)
    world.tick(60)
    world.sync()
    company, _ = world.customer()
    world.create_deal(company)
    world.extract()  # the watermark moves past the archived deal's modification time
    world.restore("deals", deal)  # hs_lastmodifieddate does not move: search will not read it again
    world.tick(60)
    extracted, _ = world.sync()
    assert extracted.counts["archived_restored"] == 1, "revived by the sweep (the search did not read it)"
    _restored_twice_over(world, deal)


def test_the_sweep_waits_for_its_interval_and_resumes_from_its_cursor(
    c2o: C2O, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "ARCHIVED_PAGE", 2)
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, archive_sweep_pages=1)
    company, _ = c2o.customer()
    deals = [c2o.create_deal(company, stage="decisionmakerboughtin") for _ in range(3)]
    c2o.sync()
    for deal in deals:
        c2o.archive("deals", deal)
    c2o.tick(60)
    assert c2o.extract().counts.get("archive_passes", 0) == 0, "the last pass started less than 15 min ago"
    assert not any(_snapshot(c2o, d).deleted for d in deals)

    c2o.tick(15 * 60)
    first = c2o.extract().counts
    assert (first["archive_passes"], first["archived_read"], first["archived_tombstoned"]) == (1, 2, 2)
    with c2o.hub.connect() as conn:
        assert store.get_watermark(conn, archive.CURSOR_STREAM) == int(deals[2])
        # The cursor is a record id, not a time: the sync page and the report leave it out of their watermarks.
        shown = {m.stream for m in ui_queries.watermarks(conn)}
        reported = set(report_load.load_watermarks(conn)["stream"])
    assert archive.SWEEP_STREAM in shown
    assert archive.SWEEP_STREAM in reported
    assert archive.CURSOR_STREAM not in shown
    assert archive.CURSOR_STREAM not in reported
    c2o.tick(60)
    second = c2o.extract().counts
    assert second.get("archive_passes", 0) == 0, "the pass under way goes on without waiting"
    assert (second["archived_read"], second["archived_tombstoned"]) == (1, 1)
    with c2o.hub.connect() as conn:
        assert store.get_watermark(conn, archive.CURSOR_STREAM) == 0, "pass complete"
    assert all(_snapshot(c2o, d).deleted for d in deals)
    assert len(c2o.audit("archive")) == 3


def test_archived_list_page_decoding() -> None:
    """The archived list's answer as the codec reads it: ids, archivedAt, the next cursor (absent at the end)."""
    from bridge.hooks.hubspot_codec import ArchivedRecord, archived_page_of

    page = archived_page_of(
        {
            "results": [
                {"id": "7", "archived": True, "archivedAt": "2026-12-07T01:02:03.004Z", "properties": {}},
                {"id": "8", "archived": True},
                {"archived": True},
                "junk",
            ],
            "paging": {"next": {"after": "9", "link": "…"}},
        }
    )
    assert page.records == (ArchivedRecord("7", "2026-12-07T01:02:03.004Z"), ArchivedRecord("8", None))
    assert page.next_after == "9"
    assert archived_page_of({"results": []}).next_after is None
    assert archived_page_of(None).records == ()

"""OA → CRM lifecycle end to end: withdraw, revoke (撤销) after approval, delete — on the deal and on the notes.

Each path: the deal's 审批状态 follows the OA (audited write), the note made from an approved expense is
marked (default) or archived (``revoked_activities: remove``), the CRM → OA direction does not react to the
bridge's own write, and a second run changes nothing.
"""

from __future__ import annotations

from typing import Any

from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.hub import store
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.oa_to_crm import decide as rules


def _status_writes(o2c: O2C, code: str) -> list[dict[str, Any]]:  # noqa: F811
    return [
        a
        for a in o2c.audit("update")
        if a["system"] == "crm"
        and a["dag_id"] == "oa_to_crm_sync"
        and a["record_ids"].get("instance_code") == code
        and "approval_status" in a["fields"]
    ]


def _quiet_both_ways(o2c: O2C) -> None:  # noqa: F811
    """The CRM → OA run ignores the bridge's own status write; the OA → CRM run after it writes nothing."""
    created = o2c.oa_created_by_api()
    extracted, loaded = o2c.c2o_sync()
    assert extracted.counts.get("enqueued", 0) == 0, (
        "an OA-owned deal field is no change for the CRM → OA sync"
    )
    assert loaded.counts.get("written", 0) == 0
    assert o2c.oa_created_by_api() == created, "no 立项申请 or notice follows the bridge's own write"
    writes = o2c.crm_writes()
    again = o2c.sync()
    assert again.get("written", 0) == 0
    assert again.get("written_deal", 0) == 0
    assert o2c.crm_writes() == writes, "idempotent: the second run changes nothing in the CRM"


def _approved_with_note(o2c: O2C) -> tuple[str, str, str, str]:  # noqa: F811
    """A linked deal whose 立项申请 is approved and an approved expense on it in the CRM: (deal, project, expense,
    note id)."""
    company, deal, code = o2c.linked_deal()
    o2c.act("approve", code)
    o2c.sync()
    expense = o2c.expense(company, amount=980, project_no=o2c.deal(deal)["oa_project_no"])
    o2c.act("approve", expense)
    assert o2c.sync()["written_notes"] == 1
    note = o2c.activity("notes", expense)
    assert note is not None
    return deal, code, expense, str(note["id"])


def _undo_both(o2c: O2C, action: str, revoked: str = "mark") -> tuple[str, str, str, dict[str, Any]]:  # noqa: F811
    """The 立项申请 and the expense of :func:`_approved_with_note` revoked or deleted, then one run: (deal,
    expense, note id, the run's counts)."""
    o2c.cfg = oa_to_crm.with_overrides(o2c.cfg, revoked_activities=revoked)
    deal, code, expense, note_id = _approved_with_note(o2c)
    o2c.act(action, code)
    o2c.act(action, expense)
    return deal, expense, note_id, o2c.sync()


def _activity_link(o2c: O2C, code: str) -> store.Link:  # noqa: F811
    with o2c.hub.connect() as conn:
        links = store.links_for_oa_ids(conn, rules.ACTIVITY_LINK, [code])
    assert len(links.get(code, [])) == 1
    return links[code][0]


def test_a_withdrawn_project_initiation_shows_canceled_on_the_deal(o2c: O2C) -> None:  # noqa: F811
    _, deal, code = o2c.linked_deal()
    o2c.sync()
    o2c.act("withdraw", code)
    counts = o2c.sync()
    assert counts["status_changed"] == 1
    assert counts["written_deal"] == 1
    assert o2c.deal(deal)["oa_approval_status"] == "CANCELED"
    assert len(_status_writes(o2c, code)) == 1, "audited once"
    _quiet_both_ways(o2c)
    assert len(_status_writes(o2c, code)) == 1


def test_a_revoke_after_approval_reaches_the_deal_and_marks_the_note(o2c: O2C) -> None:  # noqa: F811
    deal, expense, note_id, counts = _undo_both(o2c, "revoke")
    assert counts["status_changed"] == 2, "found by their absence from the APPROVED lists"
    assert counts["written_deal"] == 1
    assert counts["voided_notes"] == 1
    props = o2c.deal(deal)
    assert props["oa_approval_status"] == "REVERTED"
    assert props["oa_decision_time"], "a revoke keeps the approval time"
    note = o2c.activity("notes", expense)
    assert note is not None
    assert str(note["id"]) == note_id, "the same note, marked in place"
    assert note["properties"]["hs_note_body"].startswith("【OA 审批状态：已撤销，此记录已作废】费用报销")
    assert not note["properties"].get("oa_amount")
    voids = [a for a in o2c.audit("void") if a["record_ids"] == {"instance_code": expense, "crm_id": note_id}]
    assert [(v["outcome"], v["detail"]) for v in voids] == [("ok", "expense_claim REVERTED")]
    state = _activity_link(o2c, expense).state or {}
    assert (state["phase"], state["status"]) == ("voided", "REVERTED")
    _quiet_both_ways(o2c)
    assert len(o2c.audit("void")) == 1, "marked once"


def test_with_remove_a_revoked_expense_note_is_archived_and_kept_as_a_tombstone(o2c: O2C) -> None:  # noqa: F811
    deal, expense, note_id, counts = _undo_both(o2c, "revoke", "remove")
    assert counts["archived_notes"] == 1
    assert o2c.deal(deal)["oa_approval_status"] == "REVERTED"
    assert o2c.activity("notes", expense) is None, "archived: no longer on the customer"
    archived = o2c.sims.crm.admin("GET", "/_sim/objects/notes?archived=true&limit=10000")
    assert isinstance(archived, dict)
    assert [
        str(o["id"]) for o in archived["results"] if o["properties"].get("oa_instance_code") == expense
    ] == [note_id], "in the recycle bin, not deleted"
    entries = [
        a for a in o2c.audit("archive") if a["record_ids"] == {"instance_code": expense, "crm_id": note_id}
    ]
    assert [(e["system"], e["entity"], e["outcome"]) for e in entries] == [("crm", "notes", "ok")]
    link = _activity_link(o2c, expense)
    assert str(link.crm_id) == note_id
    state = link.state or {}
    assert (state["phase"], state["status"]) == ("archived", "REVERTED")
    assert state["archived_at"]
    assert state["archived_by"]
    _quiet_both_ways(o2c)
    # Deleted after its revoke: already archived, nothing more to do (the tombstone stays).
    o2c.act("delete", expense)
    later = o2c.sync()
    assert later.get("archived_notes", 0) == 0
    assert later.get("written", 0) == 0
    assert len(o2c.audit("archive")) == 1
    assert o2c.activity("notes", expense) is None


def test_a_deleted_approved_project_and_expense_with_remove(o2c: O2C) -> None:  # noqa: F811
    deal, expense, _, counts = _undo_both(o2c, "delete", "remove")
    assert counts["archived_notes"] == 1
    assert o2c.deal(deal)["oa_approval_status"] == "DELETED"
    assert o2c.activity("notes", expense) is None
    _quiet_both_ways(o2c)


def test_a_revoked_visit_plan_meeting_is_marked_and_archived_with_remove(o2c: O2C) -> None:  # noqa: F811
    company, _ = o2c.c2o.customer()
    marked, archived = o2c.visit(company), o2c.visit(company)
    for code in (marked, archived):
        o2c.act("approve", code)
    assert o2c.sync()["written_meetings"] == 2
    o2c.act("revoke", marked)
    o2c.sync()
    meeting = o2c.activity("meetings", marked)
    assert meeting is not None
    assert meeting["properties"]["hs_meeting_body"].startswith(
        "【OA 审批状态：已撤销，此记录已作废】拜访目的"
    )
    o2c.cfg = oa_to_crm.with_overrides(o2c.cfg, revoked_activities="remove")
    o2c.act("revoke", archived)
    counts = o2c.sync()
    assert counts["archived_meetings"] == 1
    assert o2c.activity("meetings", archived) is None
    assert o2c.activity("meetings", marked) is not None, (
        "marked before: stays marked, the setting is not retroactive"
    )
    _quiet_both_ways(o2c)


def test_the_withdrawal_of_an_archived_deals_project_is_not_written_to_the_archived_deal(o2c: O2C) -> None:  # noqa: F811
    """The CRM → OA sweep withdraws the pending 立项申请 of a deal deleted in the CRM; the OA → CRM run that sees
    the CANCELED instance leaves the archived deal alone (HubSpot refuses writes to it) instead of quarantining it."""
    o2c.c2o.cfg = crm_to_oa.with_overrides(o2c.c2o.cfg, archive_sweep_seconds=0)  # a sweep pass every run
    _, deal, code = o2c.linked_deal()
    o2c.c2o.archive("deals", deal)
    o2c.c2o.tick(60)
    _, loaded = o2c.c2o_sync()
    assert loaded.counts["archived_withdrawn"] == 1
    writes = o2c.crm_writes()
    counts = o2c.sync()
    assert counts.get("deal_archived_in_crm", 0) == 1
    assert counts.get("written_deal", 0) == 0
    assert o2c.quarantine("deal", deal) is None, "no vendor_rejected entry for the archived deal"
    assert o2c.crm_writes() == writes
    assert _status_writes(o2c, code) == []
    assert o2c.pending() == [], "its changes are completed, not retried every run"

"""A crash at any step boundary (between the CRM write and the hub commit included), then a rerun: every
activity exists once in the CRM, every deal shows the OA's status, nothing is left queued."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.sync import oa_to_crm


class Crash(RuntimeError):
    pass


def crash_at(step: str) -> object:
    fired: list[str] = []

    def checkpoint(at: str) -> None:
        if at == step and not fired:
            fired.append(at)
            raise Crash(at)

    checkpoint.fired = fired  # type: ignore[attr-defined]
    return checkpoint


DISCOVER_STEPS = ["discovered", "instances_staged", "watermarks_committed"]
LOAD_STEPS = [
    "deals_read",
    "deals_written",
    "deals_committed",
    "activities_upserted",
    "associations_sent",
    "activities_committed",
]


@pytest.mark.parametrize("step", DISCOVER_STEPS + LOAD_STEPS)
def test_crash_then_rerun_gives_no_duplicates_and_loses_nothing(o2c: O2C, step: str) -> None:  # noqa: F811
    company, deal, code = o2c.linked_deal()
    o2c.sync()
    project_no = o2c.deal(deal)["oa_project_no"]
    o2c.act("approve", code)
    expenses = [o2c.expense(company, amount=100 + n, project_no=project_no) for n in range(3)]
    for e in expenses:
        o2c.act("approve", e)
    visit = o2c.visit(company)
    checkpoint = crash_at(step)
    if step in DISCOVER_STEPS:
        with pytest.raises(Crash):
            o2c.discover(checkpoint=checkpoint)
    else:
        o2c.discover()
        with pytest.raises(Crash):
            o2c.load(checkpoint=checkpoint)
    assert checkpoint.fired == [step]  # type: ignore[attr-defined]
    o2c.sync()  # the rerun
    o2c.sync()  # and one more: nothing left to do
    notes = [n for n in o2c.objects("notes") if n["properties"].get("oa_instance_code") in expenses]
    per_code = Counter(n["properties"]["oa_instance_code"] for n in notes)
    assert per_code == Counter(expenses), f"one note per expense, got {per_code}"
    for note in notes:
        assert o2c.associations("notes", note["id"], "companies") == [company]
        assert o2c.associations("notes", note["id"], "deals") == [deal]
    meetings = [m for m in o2c.objects("meetings") if m["properties"].get("oa_instance_code") == visit]
    assert len(meetings) == 1
    assert o2c.deal(deal)["oa_approval_status"] == "APPROVED"
    assert o2c.pending() == []
    before = o2c.crm_writes()
    counts = o2c.sync()
    assert counts.get("written", 0) == 0
    assert o2c.crm_writes() == before


@pytest.mark.parametrize("step", ["activities_upserted", "associations_sent", "activities_committed"])
def test_a_crash_around_an_archive_archives_once_and_audits_once(o2c: O2C, step: str) -> None:  # noqa: F811
    o2c.cfg = oa_to_crm.with_overrides(o2c.cfg, revoked_activities="remove")
    company, _ = o2c.c2o.customer()
    expense = o2c.expense(company)
    o2c.act("approve", expense)
    o2c.sync()
    assert o2c.activity("notes", expense) is not None
    o2c.act("revoke", expense)
    o2c.discover()
    checkpoint = crash_at(step)
    with pytest.raises(Crash):
        o2c.load(checkpoint=checkpoint)
    o2c.sync()  # the rerun
    o2c.sync()  # and one more: nothing left to do
    assert o2c.activity("notes", expense) is None
    archived = o2c.sims.crm.admin("GET", "/_sim/objects/notes?archived=true&limit=10000")
    assert isinstance(archived, dict)
    assert [o["properties"].get("oa_instance_code") for o in archived["results"]] == [expense]
    assert [a["record_ids"]["instance_code"] for a in o2c.audit("archive")] == [expense]
    assert o2c.pending() == []

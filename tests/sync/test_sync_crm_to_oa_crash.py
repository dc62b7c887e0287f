"""A crash at each step of a run, then a rerun: zero lost, zero duplicate instances, every write-back done."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.sync.sync_c2o_world import C2O

from bridge.sync import crm_to_oa

DEALS = 5


class Crash(RuntimeError):
    """The worker died here."""


def crash_at(step: str, occurrence: int):  # type: ignore[no-untyped-def]
    seen: Counter[str] = Counter()

    def checkpoint(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == occurrence:
            raise Crash(step)

    checkpoint.seen = seen  # type: ignore[attr-defined]
    return checkpoint


def assert_exactly_once(c2o: C2O, deals: list[str]) -> None:
    by_deal = Counter(i["widgets"]["deal_id"] for i in c2o.instances())
    assert by_deal == Counter(deals), "every deal has exactly one 立项申请"
    for deal in deals:
        link = c2o.project_link(deal)
        assert link is not None
        assert link.state is not None
        assert link.state["writeback"] == "done"
        assert c2o.crm_object("deals", deal)["oa_instance_code"] == link.oa_id
    assert c2o.pending() == []
    creates = Counter(a["record_ids"]["deal_id"] for a in c2o.audit("create_instance") if a["outcome"] == "ok")
    assert creates == Counter(deals), "one audit entry per instance, as the OA saw it"


@pytest.mark.parametrize(
    ("step", "occurrence"),
    [
        ("extract_page_committed:deal", 1),
        ("intents_saved", 1),
        ("instance_created", 1),
        ("instance_created", 3),
        ("instance_read", 2),
        ("links_committed", 1),
        ("writeback_sent", 1),
        ("writeback_committed", 1),
    ],
)
def test_crash_then_rerun_creates_each_instance_exactly_once(c2o: C2O, step: str, occurrence: int) -> None:
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, create_chunk=2)
    company, _ = c2o.customer()
    deals = [c2o.create_deal(company, stage="contractsent", amount=f"{100000 + n}.00") for n in range(DEALS)]
    checkpoint = crash_at(step, occurrence)

    def run() -> None:
        c2o.extract(checkpoint=checkpoint)
        c2o.tick(61)
        c2o.load(checkpoint=checkpoint)

    with pytest.raises(Crash):
        run()
    # The rerun (Airflow's retry or the next run).
    c2o.tick(1)
    c2o.extract()
    c2o.tick(61)
    c2o.load()
    assert_exactly_once(c2o, deals)
    # And once more: nothing moves.
    c2o.tick(61)
    _extracted, loaded = c2o.sync()
    assert loaded.counts.get("written", 0) == 0
    assert_exactly_once(c2o, deals)


@pytest.mark.parametrize("step", ["notice_intent_saved", "notice_created", "notice_committed"])
def test_crash_around_a_notice_then_rerun_sends_it_exactly_once(c2o: C2O, step: str) -> None:
    company, _ = c2o.customer()
    deal = c2o.create_deal(company, stage="contractsent", amount="100000.00")
    c2o.sync()
    c2o.edit("deals", deal, {"amount": "120000.00"})
    c2o.tick(5)
    c2o.extract()
    c2o.tick(61)
    with pytest.raises(Crash):
        c2o.load(checkpoint=crash_at(step, 1))
    c2o.tick(61)
    c2o.load()
    c2o.tick(61)
    c2o.sync()
    notices = c2o.instances("contract_amount_notice")
    assert [(n["widgets"]["old_amount"], n["widgets"]["new_amount"]) for n in notices] == [(100000.0, 120000.0)]
    link = c2o.project_link(deal)
    assert link is not None
    assert link.state is not None
    assert link.state["notices"] == 1
    assert c2o.pending() == []


def test_a_create_whose_answer_is_lost_is_not_duplicated(c2o: C2O) -> None:
    """The OA commits the instance and the connection drops (Feishu 60012 on the retry)."""
    company, _ = c2o.customer()
    deals = [c2o.create_deal(company, stage="contractsent") for _ in range(3)]
    c2o.sims.oa.admin("POST", "/_sim/faults", {"kind": "drop_after", "path": "^/open-apis/approval/v4/instances$",
                                               "method": "POST", "count": 2})
    c2o.sync()
    stats = c2o.sims.oa.admin("GET", "/_sim/stats")
    assert isinstance(stats, dict)
    assert stats["faults_fired"], "the fault fired"
    assert_exactly_once(c2o, deals)


def test_a_stage_left_after_a_crash_adopts_or_abandons_the_intent(c2o: C2O) -> None:
    company, _ = c2o.customer()
    sent, unsent = c2o.create_deal(company, stage="contractsent"), c2o.create_deal(company, stage="contractsent")
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, create_chunk=2)
    c2o.extract()
    c2o.tick(61)
    with pytest.raises(Crash):
        c2o.load(checkpoint=crash_at("instance_created", 1))  # the first reached the OA, the second did not
    for deal in (sent, unsent):
        c2o.edit("deals", deal, {"dealstage": "decisionmakerboughtin"})
    c2o.tick(5)
    _, loaded = c2o.sync()
    assert loaded.counts["intents_adopted"] == 1
    assert loaded.counts["intents_abandoned"] == 1
    assert [i["widgets"]["deal_id"] for i in c2o.instances()] == [sent]
    assert c2o.project_link(sent) is not None
    assert c2o.project_link(unsent) is None
    assert c2o.crm_object("deals", sent)["oa_instance_code"]

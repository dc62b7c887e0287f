"""The suites over a seeded hub: every defect found with its record ids and owner; scores, trend, storage."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bridge import runkinds
from bridge.hub import engine as hub_engine
from bridge.quality import check_results, failing_checks, latest_day, latest_scores, score_trend
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, HealthRun, run_checks
from sandbox.common.world import COMPANY_ID_BASE

from .conftest import (
    BACKLOG_REASON,
    BACKLOG_SIZE,
    DAY,
    NOW,
    Seeded,
    notice,
    restage_deal,
    set_last_success,
    stage_instances,
)

CFG = HealthSettings(failing_ids_kept=500)  # keep every failing id of the small world for the assertions

# World defect kind -> the checks that must flag the record (``World.defects()``).
WORLD_DEFECT_CHECKS = {
    "missing_uscc": ["company.uscc.required"],
    "bad_uscc": ["company.uscc.format"],
    "bad_phone": ["company.phone.format"],
    "dup_variant": ["company.name.unique", "company.uscc.unique", "company.customer.duplicate_customer"],
    "bad_mobile": ["contact.mobile.format"],
    "missing_mobile": ["contact.mobile.required"],
    "missing_amount": ["deal.contract_amount.required"],
    "negative_amount": ["deal.contract_amount.format"],
    "unmapped_stage": ["deal.stage.value_map"],
    "missing_customer_link": ["{entity}.customer_id.customer_exists"],
}
# Dirt the cleaners remove while staging: not a defect in the hub, so no check may flag it.
CLEANED_DEFECTS = {
    "mobile_formatted": "contact.mobile.format",
    "mobile_full_width": "contact.mobile.format",
    "email_upper": "contact.email.format",
    "full_width_name": "company.name.unique",
}


def _run(seeded: Seeded, data_dir: Path, day=DAY, now=NOW, cfg: HealthSettings = CFG,  # type: ignore[no-untyped-def]
         build_docs: bool = True, save: bool = True) -> HealthRun:
    return run_checks(seeded.engine(), day=day, run_id=f"test__{day}", now=now, dictionary=seeded.dictionary,
                      cfg=cfg, output=HealthOutput(data_dir, build_docs, save))


@pytest.fixture(scope="module")
def baseline(seeded_template: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seeded, HealthRun, Path]]:
    """One run over a private copy of the seeded hub, shared by the read-only tests of this module."""
    folder = tmp_path_factory.mktemp("baseline")
    shutil.copyfile(seeded_template.url.removeprefix("sqlite:///"), folder / "hub.sqlite")
    seeded = replace(seeded_template, url=f"sqlite:///{folder / 'hub.sqlite'}")
    run = _run(seeded, folder / "data")
    yield seeded, run, folder / "data"
    hub_engine.dispose_engines()


def _world_records(world):  # type: ignore[no-untyped-def]
    """(object type, id) -> (entity, data owner) of every world record."""
    found = {}
    for obj in [*world.iter_companies(), *world.iter_contacts(), *world.iter_deals()]:
        entity = {"companies": "company", "contacts": "contact", "deals": "deal"}[obj.object_type]
        found[(obj.object_type, obj.id)] = (entity, obj.properties.get("hubspot_owner_id"), obj)
    for inst in world.iter_oa_instances():
        found[("instances", inst.instance_code)] = (inst.approval, inst.user_id, inst)
    return found


@pytest.mark.parametrize("kind", sorted(WORLD_DEFECT_CHECKS))
def test_every_world_defect_is_found_with_its_id_and_owner(baseline, kind: str) -> None:  # type: ignore[no-untyped-def]
    seeded, run, _ = baseline
    defects = seeded.world.defects().get(kind, [])
    assert defects, f"the seeded world has no {kind} record: make the fixture world dirtier"
    records = _world_records(seeded.world)
    for object_type, record_id in defects:
        entity, owner, obj = records[(object_type, record_id)]
        expected = [c.format(entity=entity) for c in WORLD_DEFECT_CHECKS[kind]]
        if kind == "dup_variant" and record_id == str(COMPANY_ID_BASE + 1):
            expected = ["company.phone.format"]  # the first company cannot duplicate an earlier one
        for check_id in expected:
            outcome = run.outcome(check_id)
            assert not outcome.success, check_id
            assert record_id in outcome.failing_ids, f"{kind} {record_id} not among the failing ids of {check_id}"
            assert outcome.failing_owners.get(owner or "-", 0) >= 1, f"{check_id}: owner {owner} not counted"
        if kind == "dup_variant" and "_duplicate_of" in obj.properties:
            assert obj.properties["_duplicate_of"] in run.outcome("company.customer.duplicate_customer").failing_ids


@pytest.mark.parametrize("kind", sorted(CLEANED_DEFECTS))
def test_dirt_the_cleaners_remove_is_not_flagged(baseline, kind: str) -> None:  # type: ignore[no-untyped-def]
    seeded, run, _ = baseline
    defects = seeded.world.defects().get(kind, [])
    assert defects, f"the seeded world has no {kind} record"
    outcome = run.outcome(CLEANED_DEFECTS[kind])
    for _, record_id in defects:
        assert record_id not in outcome.failing_ids


def test_injected_cross_system_defects_are_found(baseline) -> None:  # type: ignore[no-untyped-def]
    seeded, run, _ = baseline
    dup = run.outcome("company.customer.duplicate_customer")
    assert {seeded.duplicate_company, seeded.duplicate_of} <= set(dup.failing_ids)
    assert dup.failing_owners[seeded.duplicate_owner] >= 2
    assert seeded.duplicate_company in run.outcome("company.name.unique").failing_ids  # 星辰科技（北京）有限公司

    links = run.outcome("expense_claim.customer_id.customer_exists")
    assert {seeded.expense_no_customer, seeded.expense_unknown_customer} <= set(links.failing_ids)
    assert links.failing_owners[seeded.expense_applicant] >= 2
    required = run.outcome("expense_claim.customer_id.required")
    assert seeded.expense_no_customer in required.failing_ids
    assert seeded.expense_unknown_customer not in required.failing_ids

    deal_exists = run.outcome("project_initiation.deal_id.deal_exists")
    assert deal_exists.failing_ids == [seeded.unlinked_project]  # every world 立项申请 names a real deal

    half = run.outcome("project_initiation.deal_project.link_complete")
    assert half.failing_ids == [seeded.half_link_deal]
    assert half.evaluated == 1

    amounts = run.outcome("deal.contract_amount.amount_consistent")
    assert seeded.mismatch_deal in amounts.failing_ids
    assert amounts.failing_owners[seeded.mismatch_owner] >= 1
    assert amounts.evaluated > 3  # the world's live 立项申请 pairs are compared too, and agree

    assert not run.outcome("sync.crm_to_oa.freshness").success  # last success 3 hours ago
    assert run.outcome("sync.crm_to_oa.freshness").failing_ids == ["crm_to_oa"]
    assert run.outcome("sync.oa_to_crm.freshness").success

    backlog = run.outcome(f"quarantine.{BACKLOG_REASON}.backlog")
    assert not backlog.success
    assert backlog.evaluated == backlog.failed == BACKLOG_SIZE
    assert backlog.failing_owners == {seeded.backlog_owner: BACKLOG_SIZE}
    assert backlog.failing_ids[0] == f"5100000{BACKLOG_SIZE - 1:04d}"  # oldest first
    assert run.outcome("quarantine.invalid_format.backlog").success  # 2 entries, under the threshold


def test_gx_and_row_detail_agree_on_every_check(baseline) -> None:  # type: ignore[no-untyped-def]
    _, run, _ = baseline
    row_checks = [o for o in run.outcomes if o.check.row_level]
    assert len(row_checks) > 80
    for o in row_checks:
        assert o.error is None, (o.check.check_id, o.error)
        assert o.gx_unexpected == o.failed, o.check.check_id
        assert o.success == (o.failed == 0), o.check.check_id
        assert sum(o.failing_owners.values()) == o.failed, o.check.check_id
        assert sum(o.evaluated_owners.values()) == o.evaluated, o.check.check_id


def test_results_scores_and_docs_are_stored(baseline) -> None:  # type: ignore[no-untyped-def]
    seeded, run, data_dir = baseline
    with seeded.engine().connect() as conn:
        assert latest_day(conn) == DAY
        stored = check_results(conn, DAY)
        failing = failing_checks(conn)
        overall = latest_scores(conn, "overall")
        owners = {s.scope: s for s in latest_scores(conn, "data_owner")}
        departments = {s.scope for s in latest_scores(conn, "department")}
    assert len(stored) == len(run.outcomes)
    assert {r.check_id for r in failing} == {o.check.check_id for o in run.failing}
    mismatch = next(r for r in failing if r.check_id == "deal.contract_amount.amount_consistent")
    assert mismatch.failing_owners[seeded.mismatch_owner] >= 1
    assert seeded.mismatch_deal in mismatch.failing_ids
    assert overall[0].score == run.overall
    assert 0 < run.overall < 100
    assert overall[0].failed_checks == len(run.failing)
    assert departments == {"sales", "finance", "pmo", "admin"}
    assert owners[seeded.mismatch_owner].score < 100
    assert (data_dir / "data_docs" / "index.html").is_file()
    index = (data_dir / "data_docs" / "index.html").read_text(encoding="utf-8")
    assert "dictionary.company" in index
    assert "cross.consistency" in index


def test_failing_ids_are_bounded_and_shared_between_owners(seeded: Seeded, tmp_path: Path) -> None:
    run = _run(seeded, tmp_path / "data", cfg=HealthSettings(failing_ids_kept=3), build_docs=False, save=False)
    links = run.outcome("expense_claim.customer_id.customer_exists")
    assert links.failed > 3
    assert len(links.failing_ids) == 3
    owners_with_failures = [o for o, n in links.failing_owners.items() if n]
    assert len(owners_with_failures) >= 3, "the fixture should spread these failures over several applicants"
    records = {i.instance_code: i.user_id for i in seeded.world.iter_oa_instances()}
    records[seeded.expense_no_customer] = records[seeded.expense_unknown_customer] = seeded.expense_applicant
    assert len({records[i] for i in links.failing_ids}) == 3, "one example per owner before a second of anyone"


def test_fixing_defects_raises_the_scores_and_the_trend_shows_it(seeded: Seeded, tmp_path: Path) -> None:
    first = _run(seeded, tmp_path / "data", build_docs=False)
    # Finance corrects the deals' amounts; the OA receives the amount notice; the CRM → OA sync runs again.
    world = seeded.world
    fixed = [seeded_id for kind in ("missing_amount", "negative_amount") for _, seeded_id in world.defects()[kind]]
    for deal_id in fixed:
        restage_deal(seeded, int(deal_id) - 50_000_000_001, amount="88000.00")
    linked = {str(w["value"]) for i in world.iter_oa_instances() if i.approval == "project_initiation"
              for w in i.form if w["id"] == "deal_id"}
    notices = [notice(world, 40 + n, deal_id, "0", "88000.00") for n, deal_id in enumerate(sorted(linked & set(fixed)))]
    notices.append(notice(world, 39, seeded.mismatch_deal, seeded.extra["mismatch_old_amount"], seeded.mismatch_amount))
    stage_instances(seeded, notices)
    set_last_success(seeded, runkinds.CRM_TO_OA, NOW + timedelta(days=1) - timedelta(minutes=3))
    day2 = DAY + timedelta(days=1)
    second = _run(seeded, tmp_path / "data", day=day2, now=NOW + timedelta(days=1), build_docs=False)

    assert first.outcome("deal.contract_amount.required").failed > 0
    for check_id in ("deal.contract_amount.required", "deal.contract_amount.format",
                     "deal.contract_amount.amount_consistent", "sync.crm_to_oa.freshness"):
        assert second.outcome(check_id).success, check_id
    score = {(s.scope_type, s.scope): s.score for s in second.scores}
    before = {(s.scope_type, s.scope): s.score for s in first.scores}
    for scope in (("overall", "all"), ("entity", "deal"), ("department", "finance"), ("data_owner", seeded.mismatch_owner)):
        assert score[scope] > before[scope], scope
    assert score[("entity", "company")] == before[("entity", "company")]  # nothing changed there

    with seeded.engine().connect() as conn:
        trend = score_trend(conn, days=30)
        dept_trend = score_trend(conn, days=30, scope_type="department", scope="finance")
        assert {r.check_id for r in failing_checks(conn, day2)} == {o.check.check_id for o in second.failing}
        assert len(score_trend(conn, days=1)) == 1
    assert [(t.day, t.score) for t in trend] == [(DAY, first.overall), (day2, second.overall)]
    assert dept_trend[0].score < dept_trend[1].score


def test_a_rerun_on_the_same_day_replaces_that_days_rows(seeded: Seeded, tmp_path: Path) -> None:
    _run(seeded, tmp_path / "data", build_docs=False)
    again = _run(seeded, tmp_path / "data", build_docs=False)
    with seeded.engine().connect() as conn:
        assert len(check_results(conn, DAY)) == len(again.outcomes)
        assert len(score_trend(conn)) == 1


def test_sampling_bounds_the_rows_validated_and_reports_the_cost(seeded: Seeded, tmp_path: Path) -> None:
    cfg = HealthSettings(max_rows_per_suite=40, failing_ids_kept=500)
    run = _run(seeded, tmp_path / "data", cfg=cfg, build_docs=False, save=False)
    costs = {c.frame: c for c in run.costs}
    assert costs["deal"].sampled
    assert costs["deal"].read_rows == costs["deal"].total_rows > 100
    assert 20 <= costs["deal"].rows <= 60
    assert not costs["project_initiation"].sampled
    again = _run(seeded, tmp_path / "data", cfg=cfg, build_docs=False, save=False)
    assert run.outcome("deal.contract_amount.format").failing_ids == again.outcome("deal.contract_amount.format").failing_ids
    assert run.outcome("deal.contract_amount.format").evaluated < 100
    # cross-system checks are never sampled
    assert seeded.mismatch_deal in run.outcome("deal.contract_amount.amount_consistent").failing_ids


def test_an_empty_hub_and_odd_payloads_do_not_break_a_run(tmp_path: Path, dictionary) -> None:  # type: ignore[no-untyped-def]
    from bridge.hub import store
    from bridge.hub.store import SnapshotRow

    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    hub = hub_engine.ensure_schema(url)
    empty = run_checks(hub, day=DAY, run_id="empty", now=NOW, dictionary=dictionary, cfg=CFG,
                       output=HealthOutput(tmp_path / "data", build_docs=False))
    # 2026-11-26: past 1 November and the pinned chinesecalendar has no 2027 yet, so the calendar check fails too.
    assert [o.check.check_id for o in empty.failing] == ["sync.crm_to_oa.freshness", "sync.oa_to_crm.freshness",
                                                         "calendar.holidays.coverage"]
    assert {s.scope_type for s in empty.scores} == {"overall"}  # nothing evaluated, nothing to score per entity
    with hub.begin() as conn:
        store.upsert_snapshots(conn, "crm", "company", [
            SnapshotRow("1", "h1", {"crm_id": {"x": 1}, "name": ["a"], "uscc": 12, "_invalid": "oops"}, 1, None),
            SnapshotRow("2", "h2", {"crm_id": "2", "name": "北京星辰科技有限公司", "uscc": "not a code",
                                    "phone": "\x00", "_invalid": {"phone": {"nested": True}}}, 1, "o"),
        ])
    odd = run_checks(hub, day=DAY, run_id="odd", now=NOW, dictionary=dictionary, cfg=CFG,
                     output=HealthOutput(tmp_path / "data", build_docs=False))
    assert odd.outcome("company.uscc.format").failing_ids == ["1", "2"]
    assert odd.outcome("company.phone.format").failing_ids == ["2"]
    assert odd.outcome("company.owner_id.required").failed == 2
    assert all(o.error is None for o in odd.outcomes)

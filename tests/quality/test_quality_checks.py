"""Checks generated from the dictionary, the frame columns they read, and the pure helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.dictionary
from bridge.dictionary import Dictionary
from bridge.dictionary.formats import FORMAT_CLEANERS, normalize_company_name
from bridge.hub.store import REASON_CODES
from bridge.quality.checks import ID_COLUMN, OWNER_COLUMN, all_checks, dictionary_checks
from bridge.quality.config import HealthSettings, HealthSettingsError, from_mapping
from bridge.quality.frames import (
    EntityRows,
    FormatVerdicts,
    canonical_datetime_ok,
    duplicate_clusters,
    sample_keep,
)
from bridge.quality.results import balanced_ids
from bridge.quality.run import HealthOutput, run_checks

from .conftest import DAY, NOW, Seeded


def test_every_rule_of_the_dictionary_becomes_a_check(dictionary: Dictionary) -> None:
    checks = {c.check_id: c for c in dictionary_checks(dictionary)}
    expected: set[str] = set()
    for name, entity in dictionary.entities.items():
        for f in entity.fields.values():
            if f.derive is not None:
                continue
            expected |= {f"{name}.{f.name}.required"} if f.required else set()
            expected |= {f"{name}.{f.name}.format"} if f.format else set()
            expected |= {f"{name}.{f.name}.value_map"} if f.value_map else set()
            expected |= {f"{name}.{f.name}.unique"} if f.unique else set()
    assert set(checks) == expected
    assert checks["company.uscc.format"].rule == "uscc"
    assert checks["company.uscc.format"].department == "finance"
    assert checks["deal.stage.value_map"].kwargs["value_set"] == list(dictionary.value_maps["deal_stage"].canonical_values)
    assert all("请" in c.fix and c.label for c in checks.values())  # staff read what to do, in Chinese


def test_cross_checks_cover_links_consistency_freshness_and_backlog(dictionary: Dictionary) -> None:
    ids = {c.check_id for c in all_checks(dictionary, HealthSettings(), REASON_CODES)}
    assert {"company.customer.duplicate_customer", "expense_claim.customer_id.customer_exists",
            "travel_request.customer_id.customer_exists", "visit_plan.customer_id.customer_exists",
            "project_initiation.deal_id.deal_exists", "project_initiation.deal_project.link_complete",
            "deal.contract_amount.amount_consistent", "sync.crm_to_oa.freshness", "sync.oa_to_crm.freshness"} <= ids
    assert {f"quarantine.{r}.backlog" for r in REASON_CODES} <= ids
    cfg = HealthSettings(freshness_max_minutes={"crm_to_oa": 15}, backlog_max={"default": 5, "hostile_input": 0})
    by_id = {c.check_id: c for c in all_checks(dictionary, cfg, REASON_CODES)}
    assert by_id["sync.crm_to_oa.freshness"].kwargs["max_value"] == 15
    assert by_id["sync.oa_to_crm.freshness"].kwargs["max_value"] == 60
    assert by_id["quarantine.hostile_input.backlog"].kwargs["max_value"] == 0
    assert by_id["quarantine.unmapped_value.backlog"].kwargs["max_value"] == 5


def test_adding_a_required_rule_to_the_dictionary_adds_a_failing_expectation(
        seeded: Seeded, tmp_path: Path) -> None:
    path = tmp_path / "dictionary.yaml"
    shutil.copyfile(bridge.dictionary.default_path(), path)
    text = path.read_text(encoding="utf-8")
    line = "job_title:   {label: 职务, type: string, crm: jobtitle, owner: sales, system_of_record: crm}"
    assert line in text, "the shipped dictionary changed: adjust this test's edit"
    path.write_text(text.replace(line, line.replace("crm: jobtitle,", "crm: jobtitle, required: true,")),
                    encoding="utf-8")
    edited = bridge.dictionary.build(path)
    assert "contact.job_title.required" not in {c.check_id for c in dictionary_checks(seeded.dictionary)}
    assert "contact.job_title.required" in {c.check_id for c in dictionary_checks(edited)}

    run = run_checks(seeded.engine(), day=DAY, run_id="t", now=NOW, dictionary=edited,
                     cfg=HealthSettings(failing_ids_kept=100),
                     output=HealthOutput(tmp_path / "data", build_docs=False, save=False))
    outcome = run.outcome("contact.job_title.required")
    assert not outcome.success
    assert outcome.failing_ids == [seeded.contact_without_title]
    assert outcome.failing_owners == {seeded.world.contact(0).properties["hubspot_owner_id"]: 1}
    assert outcome.evaluated == 2 * 60 + 1


def _plain(series) -> list[object]:  # type: ignore[no-untyped-def]
    import pandas as pd

    return [None if pd.isna(v) else v for v in series.astype(object).tolist()]


def _rows(dictionary: Dictionary, entity: str) -> EntityRows:
    return EntityRows(dictionary, entity, dictionary_checks(dictionary, [entity]), company_ids={"300"})


def test_formats_are_checked_on_the_offending_value_when_there_is_one(dictionary: Dictionary) -> None:
    rows = _rows(dictionary, "contact")
    base = {"crm_id": "1", "last_name": "王", "company_id": "300", "modified_at": "2026-11-26T10:25:01.123+00:00"}
    rows.add("1", "o1", {**base, "mobile": "13812345678"})
    rows.add("2", "o1", {**base, "mobile": None, "_invalid": {"mobile": "1381234"}, "_problems": ["invalid_format"]})
    rows.add("3", None, {**base, "mobile": None})
    frame = rows.frame()
    assert list(frame[ID_COLUMN]) == ["1", "2", "3"]
    assert list(frame[OWNER_COLUMN]) == ["o1", "o1", "-"]
    assert _plain(frame["mobile"]) == [True, True, None]  # present unless missing: a bad value is not a missing one
    assert _plain(frame["mobile__format"]) == [True, False, None]


def test_the_associated_company_must_be_live_and_a_missing_one_is_left_to_required(dictionary: Dictionary) -> None:
    checks = [c for c in all_checks(dictionary, HealthSettings()) if c.frame == "contact"]
    rows = EntityRows(dictionary, "contact", checks, company_ids={"300", "301"}, merged_company_ids=frozenset({"301"}))
    for sid, company in (("1", "300"), ("2", "301"), ("3", "399"), ("4", None)):
        rows.add(sid, "o", {"crm_id": sid, "company_id": company})
    frame = rows.frame()
    # live / merged away / archived or unknown (not among the hub's live companies) / no association at all
    assert _plain(frame["company_id__live"]) == [True, False, False, None]
    assert _plain(frame["company_id"]) == [True, True, True, None]  # the required check's column


def test_a_project_initiation_of_an_archived_deal_fails_only_while_it_claims_it_unlinked(
        dictionary: Dictionary) -> None:
    checks = [c for c in all_checks(dictionary, HealthSettings()) if c.frame == "project_initiation"]
    rows = EntityRows(dictionary, "project_initiation", checks)
    for code, deal, status in (("P1", "51", "PENDING"), ("P2", "52", "CANCELED"), ("P3", "52", "APPROVED"),
                               ("P4", "52", "APPROVED"), ("P5", "59", "PENDING")):
        rows.add(code, "u", {"instance_code": code, "deal_id": deal, "approval_status": status})
    assert rows.ids_naming({"52"}) == ["P2", "P3", "P4"]
    rows.resolve_deals({"51"}, archived={"52"}, linked={"P3"})
    # live deal / archived, withdrawn / archived, linked (the orphan check's) / archived, unlinked, live / missing
    assert _plain(rows.frame()["deal_id__exists"]) == [True, None, None, False, False]


def test_value_map_checks_see_the_unmapped_source_value(dictionary: Dictionary) -> None:
    rows = _rows(dictionary, "deal")
    rows.add("1", "o", {"stage": "won"})
    rows.add("2", "o", {"stage": None, "_invalid": {"stage": "legacy_stage_7"}})
    assert rows.frame()["stage__value"].tolist() == ["won", "legacy_stage_7"]


def test_unique_text_is_compared_normalised(dictionary: Dictionary) -> None:
    rows = _rows(dictionary, "company")
    rows.add("1", "o", {"name": "星辰科技（北京）有限责任公司", "uscc": "91110105MA01ABCD1X"})
    rows.add("2", "o", {"name": "北京星辰科技有限公司", "uscc": None})
    frame = rows.frame()
    assert frame["name__key"].tolist() == [normalize_company_name("北京星辰科技有限公司")] * 2
    assert frame["uscc__key"].tolist()[0] == "91110105MA01ABCD1X"


@settings(max_examples=300, deadline=None)
@given(rule=st.sampled_from(sorted(FORMAT_CLEANERS)),
       value=st.one_of(st.text(max_size=30), st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
                       st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)))
def test_format_verdicts_agree_with_the_dictionary_cleaners(rule: str, value: str) -> None:
    cleaned, issue = FORMAT_CLEANERS[rule](value)
    verdicts = FormatVerdicts()
    assert verdicts.ok(rule, value) == (issue is None and cleaned is not None)
    assert verdicts.ok(rule, value) == verdicts.ok(rule, value)  # memoised answer is the same


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+00:00", fullmatch=True)
       | st.datetimes().map(lambda t: t.isoformat(timespec="milliseconds") + "+00:00"))
def test_the_canonical_datetime_shortcut_gives_the_cleaners_verdict(value: str) -> None:
    cleaned, issue = FORMAT_CLEANERS["datetime_tz"](value)
    assert canonical_datetime_ok(value) == (issue is None and cleaned is not None)
    assert FormatVerdicts().ok("datetime_tz", value) == (issue is None and cleaned is not None)


keys = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))


@given(st.lists(st.tuples(keys, keys), max_size=30))
def test_duplicate_clusters_join_records_sharing_a_name_or_a_credit_code(pairs: list[tuple[str | None, str | None]]) -> None:
    ids = [f"id{i}" for i in range(len(pairs))]
    clusters = duplicate_clusters(ids, [p[0] for p in pairs], [p[1] for p in pairs])
    for i, (name_i, uscc_i) in enumerate(pairs):
        for j, (name_j, uscc_j) in enumerate(pairs):
            if (name_i is not None and name_i == name_j) or (uscc_i is not None and uscc_i == uscc_j):
                assert clusters[i] == clusters[j]
        if name_i is None and uscc_i is None:
            assert clusters.count(clusters[i]) == 1  # a record with no key is its own customer


@given(st.lists(st.sampled_from(["o1", "o2", "o3", "o4"]), max_size=40), st.integers(min_value=1, max_value=10))
def test_balanced_ids_share_the_examples_between_owners(owners: list[str], kept: int) -> None:
    ids = [str(i) for i in range(len(owners))]
    chosen = balanced_ids(ids, owners, kept)
    assert len(chosen) == min(kept, len(ids))
    assert len(set(chosen)) == len(chosen)
    per_owner = {o: sum(1 for c in chosen if owners[int(c)] == o) for o in set(owners)}
    for a in per_owner:
        for b in per_owner:
            if per_owner[b] > per_owner[a] + 1:  # b got a second round while a still had failures to show
                assert per_owner[a] == owners.count(a)


def test_sampling_is_deterministic_and_about_the_right_size() -> None:
    ids = [str(50_000_000_000 + i) for i in range(20_000)]
    kept = [i for i in ids if sample_keep(i, 0.1)]
    assert 1_700 < len(kept) < 2_300
    assert kept == [i for i in ids if sample_keep(i, 0.1)]
    assert all(sample_keep(i, 1.0) for i in ids[:100])


def test_settings_are_validated_with_the_key_in_the_message() -> None:
    cfg = from_mapping({"max_rows_per_suite": 1000, "freshness_max_minutes": {"oa_to_crm": 90},
                        "ops_recipients": ["ops@example.com"]})
    assert cfg.max_rows_per_suite == 1000
    assert cfg.freshness_limit("oa_to_crm") == 90
    assert cfg.freshness_limit("crm_to_oa") == 60
    assert cfg.ops_recipients == ("ops@example.com",)
    for bad, key in (({"failing_ids_kept": 0}, "failing_ids_kept"), ({"notify": "yes"}, "notify"),
                     ({"backlog_max": {"default": -1}}, "backlog_max.default"),
                     ({"ops_recipients": ["not-an-address"]}, "ops_recipients")):
        with pytest.raises(HealthSettingsError, match=key):
            from_mapping(bad)


def test_the_gx_session_lets_go_of_each_validated_frame(tmp_path: Path) -> None:
    """Frames are validated one at a time so that memory is bounded by the largest: GX must not keep them."""
    import gc
    import weakref

    import pandas as pd

    from bridge.quality.checks import NOT_NULL, Check
    from bridge.quality.gx import GxSession

    session = GxSession("test")
    check = Check("e.c.required", "dictionary.e", "e", "e", "c", "required", None, "c", NOT_NULL, label="必填")
    frame = pd.DataFrame({ID_COLUMN: pd.array(["1", "2"], dtype="string"), OWNER_COLUMN: pd.Categorical(["o", "o"]),
                          "c": pd.array([True, None], dtype="boolean")})
    alive = weakref.ref(frame)
    verdict = session.validate("e", frame, [check])["e.c.required"]
    assert not verdict.success
    assert verdict.unexpected_count == 1
    assert verdict.partial_ids == ["2"]
    del frame
    gc.collect()
    assert alive() is None
    index = session.build_docs(tmp_path / "docs")
    assert index.is_file()
    assert "dictionary.e" in index.read_text(encoding="utf-8")


def test_sync_freshness_reads_what_the_syncs_write_and_counts_a_waiting_change(tmp_path: Path) -> None:
    """The sync frame's lag: minutes since the last successful run, or the oldest unsent change's wait."""
    from datetime import timedelta

    from bridge import runkinds
    from bridge.context import RunContext
    from bridge.hub import engine as hub_engine
    from bridge.hub import store
    from bridge.quality.frames import NEVER_MINUTES, sync_frame
    from bridge.sync.frame import RunSummary, store_run_summary

    hub = hub_engine.ensure_schema(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    ctx = RunContext("crm_to_oa_sync", "r1", "summarise", 1, "bridge-service")
    with hub.begin() as conn:
        store_run_summary(conn, ctx, RunSummary(runkinds.CRM_TO_OA, "success", {"read": 1}),
                          started_at=NOW - timedelta(minutes=11), now=NOW - timedelta(minutes=10))
        store_run_summary(conn, ctx, RunSummary(runkinds.CRM_TO_OA, "failed", {}), started_at=NOW - timedelta(minutes=2),
                          now=NOW - timedelta(minutes=1))
        # A change read 45 minutes ago and deferred since (the OA was down): newer runs succeeded meanwhile.
        store.enqueue_changes(conn, "crm_to_oa", [("deal", "D-1", "h1")], NOW - timedelta(minutes=45), 60, 150)
    with hub.connect() as conn:
        frame, found = sync_frame(conn, ["crm_to_oa", "oa_to_crm"], NOW)
    row = frame.data.iloc[0]
    assert row["crm_to_oa__age_minutes"] == 45.0  # the waiting change, not the 10 minutes since the last success
    assert row["oa_to_crm__age_minutes"] == NEVER_MINUTES  # never ran
    assert found["crm_to_oa"].minutes_since_success == 10.0
    assert (found["crm_to_oa"].unsent, found["crm_to_oa"].due) == (1, 1)
    with pytest.raises(ValueError, match="not a sync run kind"), hub.begin() as conn:
        store_run_summary(conn, ctx, RunSummary("crm_to_oa", "success", {}))  # the spelling no reader reads
    hub.dispose()

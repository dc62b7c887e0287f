"""The pure parts of the migration: parameters, chunk planning, de-duplication rules, cleaning counts, report."""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.dictionary
from bridge import permissions
from bridge.migration import clean, dedupe, plan, report
from bridge.migration.counts import EntityCounts, totals
from bridge.migration.params import (
    CONFIRM_TEXT,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    MigrationParams,
    ParamsError,
    day_start_ms,
    safe_run_dir_name,
)
from bridge.migration.runs import Chunk
from bridge.migration.writeback import primary_links
from sandbox.common.world import uscc_check_char

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def valid_uscc(n: int) -> str:
    first17 = f"91110000{n:09d}"[:17]
    return first17 + uscc_check_char(first17)


# ---------------------------------------------------------------- parameters


def test_params_resolve_the_range_in_beijing_time() -> None:
    p = MigrationParams.from_mapping(
        {
            "date_from": "2025-01-01",
            "date_to": "2025-06-30",
            "archive_before": "2025-03-01",
            "chunk_size": 500,
            "dry_run": True,
            "entities": ["deal", "company"],
        },
        NOW,
    )
    assert p.entities == ("company", "deal")  # canonical order, whatever the form's order
    assert p.crm_from_ms == p.oa_from_ms == int(datetime(2024, 12, 31, 16, 0, tzinfo=UTC).timestamp() * 1000)
    assert p.to_ms == int(
        datetime(2025, 6, 30, 16, 0, tzinfo=UTC).timestamp() * 1000
    )  # end of the 30th, +08:00
    assert p.archive_before_ms == day_start_ms(datetime(2025, 3, 1).date())
    assert p.dry_run is True
    assert MigrationParams.from_stored(p.as_dict()) == p


def test_params_defaults_end_at_the_plan_time() -> None:
    p = MigrationParams.from_mapping({}, NOW)
    assert p.to_ms == int(NOW.timestamp() * 1000)
    assert p.crm_from_ms == 0
    assert p.archive_before_ms is None
    assert p.chunk_size == 10_000
    assert len(p.entities) == 7
    assert p.archived_records == "migrate"
    skip = MigrationParams.from_mapping({"archived_records": "skip"}, NOW)
    assert skip.archived_records == "skip"
    assert MigrationParams.from_stored(skip.as_dict()) == skip
    older = {k: v for k, v in p.as_dict().items() if k != "archived_records"}  # a run planned before the Param
    assert MigrationParams.from_stored(older).archived_records == "migrate"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"entities": []}, "「迁移哪些数据」（entities）的值 [] 不可用：至少选一项"),
        ({"entities": ["deals"]}, "至少选一项，可选：company（客户（CRM））"),
        (
            {"date_from": "2025-13-01"},
            "「起始日期」（date_from）的值 “2025-13-01” 不可用：不是日历上存在的日期",
        ),
        (
            {"date_from": "yesterday"},
            "「起始日期」（date_from）的值 “yesterday” 不可用：应为 YYYY-MM-DD 格式的日期",
        ),
        (
            {"date_to": "2025-01-31T00:00garbage"},
            "「截止日期」（date_to）的值 “2025-01-31T00:00garbage” 不可用",
        ),
        (
            {"date_from": "2025-02-01", "date_to": "2025-01-01"},
            "2025-02-01 晚于「截止日期」（date_to）2025-01-01",
        ),
        ({"chunk_size": 5}, "「每批记录数」（chunk_size）的值 5 不可用：应为 20 到 200000 之间的整数"),
        ({"chunk_size": -5}, "「每批记录数」（chunk_size）的值 -5 不可用：应为 20 到 200000 之间的整数"),
        ({"chunk_size": 200_001}, "的值 200001 不可用：应为 20 到 200000 之间的整数"),
        ({"chunk_size": "many"}, "的值 “many” 不可用：应为 20 到 200000 之间的整数"),
        ({"chunk_size": 40.5}, "的值 40.5 不可用"),
        (
            {"dry_run": "no"},
            "「试运行」（dry_run）的值 “no” 不可用：应为 true（试运行，默认）或 false（正式迁移）",
        ),
        (
            {"dry_run": False},
            "正式迁移需要确认：关闭了「试运行」，但参数「确认正式迁移」（confirm_load）没有填写",
        ),
        ({"dry_run": False, "confirm_load": "yes"}, "「确认正式迁移」（confirm_load）的值 “yes” 不可用"),
        ({"chunksize": 40}, "未知的参数 chunksize"),
        (
            {"archived_records": "delete"},
            "「CRM 中已删除的记录」（archived_records）的值 “delete” 不可用：只能是 migrate（迁移为归档，默认）或 skip",
        ),
        ({"archived_records": 1}, "「CRM 中已删除的记录」（archived_records）的值 1 不可用"),
    ],
)
def test_params_errors_say_which_field_the_value_and_what_is_allowed(
    raw: dict[str, object], words: str
) -> None:
    with pytest.raises(ParamsError) as caught:
        MigrationParams.from_mapping(raw, NOW)
    assert words in str(caught.value)


def test_params_never_clamp_and_a_real_load_needs_the_confirmation() -> None:
    assert MigrationParams.from_mapping({}, NOW).dry_run is True  # the default is a dry run
    for size in (MIN_CHUNK_SIZE - 1, 0, -5, MAX_CHUNK_SIZE + 1):
        with pytest.raises(ParamsError):
            MigrationParams.from_mapping({"chunk_size": size}, NOW)
    assert MigrationParams.from_mapping({"chunk_size": MIN_CHUNK_SIZE}, NOW).chunk_size == MIN_CHUNK_SIZE
    real = MigrationParams.from_mapping({"dry_run": False, "confirm_load": CONFIRM_TEXT}, NOW)
    assert real.dry_run is False
    assert (
        MigrationParams.from_mapping({"dry_run": "false", "confirm_load": CONFIRM_TEXT}, NOW).dry_run is False
    )


def test_run_dir_names_are_safe_and_distinct() -> None:
    a = safe_run_dir_name("manual__2026-11-26T10:00:00+00:00")
    b = safe_run_dir_name("manual__2026-11-26T10:00:00-00:00")
    assert a != b
    assert all(c.isalnum() or c in "._-" for c in a)
    assert safe_run_dir_name("../../etc") not in ("..", "../../etc")
    assert safe_run_dir_name("plain_run-1") == "plain_run-1"


# ---------------------------------------------------------------- planning


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=9_999), max_size=400), st.integers(min_value=1, max_value=60)
)
def test_split_range_covers_every_record_once_in_bounded_chunks(stamps: list[int], size: int) -> None:
    calls = Counter[str]()

    def count(a: int, b: int) -> int:
        calls["probe"] += 1
        return sum(1 for s in stamps if a <= s < b)

    parts = plan.split_range(count, 0, 10_000, size)
    probes = calls["probe"]
    assert probes <= 1 + 14 * max(1, len(set(stamps)))  # each probe halves a range of 10,000 ms: depth <= 14
    assert sum(n for _, _, n in parts) == len(stamps)
    for (_, b, _), (a2, _, _) in itertools.pairwise(parts):
        assert b == a2  # contiguous: nothing between two chunks is left out
    if parts:
        assert parts[0][0] == 0
        assert parts[-1][1] == 10_000
    for a, b, n in parts:
        assert n == count(a, b)
        assert (
            n <= size or len({s for s in stamps if a <= s < b}) == 1
        )  # only a single millisecond may exceed


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.integers(min_value=0, max_value=500), st.integers(min_value=1, max_value=80), max_size=60
    ),
    st.integers(min_value=1, max_value=200),
)
def test_windows_cover_the_range_without_gaps(hours: dict[int, int], size: int) -> None:
    lo, hi = 0, 501 * plan.HOUR_MS - 1
    buckets = {h * plan.HOUR_MS: n for h, n in hours.items()}
    windows = plan.windows_from_buckets(buckets, lo, hi, size)
    if not buckets:
        assert windows == []
        return
    assert windows[0][0] == lo
    assert windows[-1][1] == hi
    for (_, end, _), (start, _, _) in itertools.pairwise(windows):
        assert start == end + 1  # Feishu windows are inclusive: consecutive, never overlapping
    assert sum(n for _, _, n in windows) == sum(buckets.values())
    for start, end, n in windows:
        inside = sum(v for h, v in buckets.items() if start <= h <= end)
        assert inside == n
        assert n <= size or sum(1 for h in buckets if start <= h <= end) == 1


def test_small_chunks_share_a_task_large_ones_have_their_own() -> None:
    refs = [{"entity": "visit_plan", "chunk_no": i, "planned": n} for i, n in enumerate([5, 7, 3, 50, 2, 1])]
    groups = plan.group_chunks(refs, 20)
    assert [[r["chunk_no"] for r in g] for g in groups] == [[0, 1, 2], [3], [4, 5]]
    assert [r for g in groups for r in g] == refs  # every chunk once, in order


# ---------------------------------------------------------------- de-duplication


def _index(rows: list[tuple[int, int, str, str]]) -> dedupe.CustomerIndex:
    index = dedupe.CustomerIndex()
    for crm_id, created, name, uscc in rows:
        index.add(str(crm_id), created, created + 10, name, uscc)
    return index


def test_same_credit_code_is_one_customer_and_the_oldest_is_kept() -> None:
    code = valid_uscc(1)
    index = _index(
        [
            (5, 3000, "北京星辰科技有限公司", code),
            (3, 9000, "星辰科技（北京）有限责任公司", f" {code.lower()} "),
            (9, 1000, "完全不同的名字有限公司", code),
        ]
    )
    assert index.merges() == [("9", "3", dedupe.EXACT_KEY), ("9", "5", dedupe.EXACT_KEY)]


def test_name_variants_merge_when_credit_codes_do_not_conflict() -> None:
    code = valid_uscc(2)
    index = _index(
        [
            (1, 1000, "北京星辰科技有限公司", code),
            (2, 2000, "　星辰科技(北京)有限责任公司 ", ""),  # no credit code: compatible
            (
                3,
                3000,
                "星辰科技【北京】有限公司",
                "911100000000000000",
            ),  # invalid check character: compatible
            (4, 4000, "ＡＢＣ科技有限公司", ""),
            (5, 5000, "ABC科技有限责任公司", ""),
        ]
    )
    assert index.merges() == [
        ("1", "2", dedupe.NAME_USCC),
        ("1", "3", dedupe.NAME_USCC),
        ("4", "5", dedupe.NAME_USCC),
    ]


def test_two_valid_different_codes_under_one_name_are_never_merged() -> None:
    index = _index(
        [
            (1, 1000, "上海联创软件有限公司", valid_uscc(3)),
            (2, 2000, "上海联创软件有限责任公司", valid_uscc(4)),
            (3, 3000, "上海联创软件有限公司", ""),
        ]
    )  # ambiguous: which of the two? left alone
    assert index.merges() == []


def test_a_record_read_twice_is_not_a_duplicate_and_ranges_limit_the_merged() -> None:
    code = valid_uscc(5)
    index = _index(
        [(7, 1000, "甲有限公司", code), (7, 1000, "甲有限公司", code), (8, 2000, "乙有限公司", code)]
    )
    assert index.merges() == [("7", "8", dedupe.EXACT_KEY)]
    assert index.merges(modified_from=5000) == []  # 8 was modified at 2010: outside the range
    assert index.bytes_used() == 3 * 5 * 8


def test_chains_join_through_both_keys() -> None:
    code = valid_uscc(6)
    index = _index(
        [
            (1, 500, "南京华信科技有限公司", code),
            (2, 600, "华信科技（南京）有限责任公司", ""),
            (3, 700, "南京华信科技股份公司", code),
        ]
    )
    assert index.merges() == [("1", "2", dedupe.NAME_USCC), ("1", "3", dedupe.EXACT_KEY)]


# ---------------------------------------------------------------- cleaning counts


def test_cleaned_fields_count_cleaning_not_mapping() -> None:
    d = bridge.dictionary.load()
    obj = {
        "id": "1",
        "properties": {
            "lastname": " 张",
            "firstname": "伟",
            "mobilephone": "+86 138-1234-5678",
            "email": " ZHANG.WEI@EXAMPLE.CN",
            "associatedcompanyid": "3",
            "hs_lastmodifieddate": "2026-01-01T00:00:00.000Z",
            "jobtitle": "经理",
        },
    }
    result = d.from_crm("contact", obj)
    assert result.record["mobile"] == "13812345678"
    assert result.record["email"] == "zhang.wei@example.cn"
    assert sorted(clean.cleaned_fields(d.entity("contact"), clean.crm_raw(obj), result.record)) == [
        "email",
        "last_name",
        "mobile",
    ]
    deal = {
        "id": "2",
        "properties": {
            "dealname": "项目",
            "dealstage": "closedwon",
            "amount": "¥1,234.5",
            "hs_lastmodifieddate": "2026-01-01T00:00:00.000Z",
        },
    }
    mapped = d.from_crm("deal", deal)
    assert mapped.record["contract_amount"] == "1234.50"
    assert clean.cleaned_fields(d.entity("deal"), clean.crm_raw(deal), mapped.record) == ["contract_amount"]


# ---------------------------------------------------------------- write-back choice


def test_the_newest_live_project_is_written_back() -> None:
    rows = [
        ["D1", "I-old", "P1", "APPROVED", None, "2025-01-01T00:00:00.000+00:00"],
        ["D1", "I-new-rejected", "P2", "REJECTED", None, "2025-06-01T00:00:00.000+00:00"],
        ["D1", "I-mid", "P3", "PENDING", None, "2025-03-01T00:00:00.000+00:00"],
        ["D2", "I-x", "P4", "DELETED", None, "2025-01-01T00:00:00.000+00:00"],
    ]
    best = primary_links(rows)
    assert best["D1"][1] == "I-mid"
    assert best["D2"][1] == "I-x"  # only closed ones: the newest of them


# ---------------------------------------------------------------- report


def test_report_csv_is_excel_safe_and_masked() -> None:
    d = bridge.dictionary.load()
    policy = permissions.load(dictionary=d)
    params = MigrationParams.from_mapping({"entities": ["company"]}, NOW)
    counts = EntityCounts("company", read=3, written=1, merged=1)
    counts.quarantined["expectation_failed"] = 1
    counts.example("quarantined.expectation_failed", {"id": "=cmd|' /C calc'!A0", "message": "@SUM(1)"})
    chunk = Chunk("r", "company", 0, 0, 1, "done", counts.as_counts(), counts.examples, NOW)
    merge = dedupe.Merge(
        "1", "2", dedupe.EXACT_KEY, "甲有限公司", "甲有限责任公司", valid_uscc(7), valid_uscc(7)
    )
    built = report.collect("r", params, [chunk], [merge], "success", NOW, NOW)
    assert totals(built.entities)["quarantined"] == 1
    text = report.render_csv(built, d, policy)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert all(not cell.startswith(("=", "@", "+")) for row in rows for cell in row)
    assert valid_uscc(7) not in text  # credit codes masked (id_number) in the merge list
    assert any(row[0] == "客户合并" and row[5] == "2" for row in rows)
    html = report.render_html(built, d, policy)
    assert "历史迁移报告" in html
    assert valid_uscc(7) not in html
    assert "甲有限责任公司" in html
    assert "calc&#39;!A0" in html  # escaped by the template's autoescape

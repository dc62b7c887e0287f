"""Pure helpers of the pages: durations, trends, paging, masks in free text, CSRF tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ui import display
from bridge.ui.auth import CsrfGuard


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 秒"),
        (0.4, "不到 1 秒"),
        (59.9, "59 秒"),
        (61, "1 分 1 秒"),
        (3600, "1 小时"),
        (3725, "1 小时 2 分"),
        (90061, "1 天 1 小时"),
        (86400 * 3, "3 天"),
        (-5, "0 秒"),
        (None, "-"),
    ],
)
def test_duration_text(seconds: float | None, text: str) -> None:
    assert display.duration_text(seconds) == text


def test_local_time_is_beijing_time() -> None:
    assert display.local_time(datetime(2026, 11, 26, 0, 30, tzinfo=UTC)) == "2026-11-26 08:30:00"
    assert display.local_time(None) == "-"
    assert display.business_today(datetime(2026, 11, 26, 17, 0, tzinfo=UTC)) == date(2026, 11, 27)


def test_trend_places_days_and_clamps_scores() -> None:
    end = date(2026, 11, 30)
    series = {
        end: 100.0,
        end - timedelta(days=29): 0.0,
        end - timedelta(days=1): 250.0,
        end - timedelta(days=30): 50.0,
    }  # the last one is outside the window
    t = display.trend(series, end, days=30, width=116, height=20)
    points = [tuple(map(float, p.split(","))) for p in t.points.split()]
    assert points == [(0.0, 20.0), (112.0, 0.0), (116.0, 0.0)]
    assert t.days == 3
    assert t.latest == 100.0
    assert t.previous == 100.0  # 250 clamped


def test_trend_scale_starts_at_80_unless_a_score_is_lower() -> None:
    end = date(2026, 11, 30)
    good = display.trend({end - timedelta(days=1): 80.0, end: 90.0}, end, days=2, width=10, height=20)
    assert good.points == "0.0,20.0 10.0,10.0"  # 80 at the bottom, 90 half way
    low = display.trend({end - timedelta(days=1): 55.0, end: 100.0}, end, days=2, width=10, height=20)
    assert low.points == "0.0,18.0 10.0,0.0"  # the box starts at 50: 55 is a tenth up


def test_trend_delta() -> None:
    end = date(2026, 11, 30)
    assert display.trend({end: 90.0, end - timedelta(days=3): 92.5}, end).delta == -2.5
    assert display.trend({end: 90.0}, end).delta is None
    assert display.trend({}, end).points == ""


@given(total=st.integers(0, 10_000), size=st.integers(1, 200), number=st.integers(1, 500))
def test_paging_is_consistent(total: int, size: int, number: int) -> None:
    page = display.Page(number, size, total)
    assert page.pages >= 1
    assert page.offset == (number - 1) * size
    if number <= page.pages and total:
        assert 1 <= page.first_row <= page.last_row <= total
        assert page.last_row - page.first_row + 1 <= size
    assert page.has_next == (number < page.pages)


@given(
    prefix=st.text(alphabet="客户联系人电话：abc ,;()", max_size=10),
    mobile=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    local=st.from_regex(r"[a-z][a-z0-9._]{0,12}", fullmatch=True),
    suffix=st.text(alphabet="客户联系人电话：abc ,;()", max_size=10),
)
def test_scrub_masks_mobiles_and_emails_in_free_text(
    prefix: str, mobile: str, local: str, suffix: str
) -> None:
    email = f"{local}@example.com"
    out = display.scrub_personal(f"{prefix}{mobile} {email}{suffix}")
    assert mobile not in out
    assert email not in out
    assert f"{mobile[:3]}****{mobile[-4:]}" in out
    assert "@example.com" in out


def test_scrub_leaves_ids_and_amounts_alone() -> None:
    for text in (
        "商机 D-1234567 金额 12345678901.50 元，项目编号 PRJ-2026-0001",
        "记录 C-1001 缺少行业",
        "统一社会信用代码 91110108MA01ABCD2X 校验位错误",
        "实例 138123456789012 不存在",
    ):
        assert display.scrub_personal(text) == text


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    from bridge import permissions

    return permissions.load()


STAGED_DEAL = {
    "crm_id": "90000000004",
    "deal_name": "测试项目",
    "stage": "contract",
    "contract_amount": None,
    "owner_id": "70000001",
    "project_no": "PRJ-1",
    "_invalid": {"contract_amount": "-172100.00"},
    "_problems": ["invalid_format"],
}


def test_payload_view_filters_the_record_and_its_invalid_values_by_role(policy) -> None:  # type: ignore[no-untyped-def]
    employee = display.payload_view(policy, "deal", STAGED_DEAL, "employee", {"70000001": "彭明"})
    assert [(r.label, r.text) for r in employee.rows] == [("项目编号", "PRJ-1")]
    assert all(r.invalid is None for r in employee.rows)
    assert employee.hidden == 6  # crm_id, deal_name, stage, contract_amount, owner_id + the invalid amount
    assert employee.problems == ["格式不正确"]
    manager = display.payload_view(policy, "deal", STAGED_DEAL, "sales_manager", {"70000001": "彭明"})
    rows = {r.code: r for r in manager.rows}
    assert rows["contract_amount"].label == "合同金额"
    assert rows["contract_amount"].invalid == "-172100.00"
    assert rows["stage"].text == "合同签订"
    assert rows["stage"].detail == "contract"
    assert rows["owner_id"].text == "彭明"
    assert rows["owner_id"].detail == "70000001"
    assert manager.hidden == 0


def test_payload_view_masks_phones_by_role_and_scrubs_free_text(policy) -> None:  # type: ignore[no-untyped-def]
    contact = {
        "crm_id": "C-1",
        "mobile": "13812345678",
        "job_title": "请致电 13900001111",
        "email": "li@corp.cn",
    }
    pm = {r.code: r.text for r in display.payload_view(policy, "contact", contact, "project_manager").rows}
    assert pm["mobile"] == "138****5678"
    assert pm["email"] == "l***@corp.cn"
    assert pm["job_title"] == "请致电 139****1111"
    sm = {r.code: r.text for r in display.payload_view(policy, "contact", contact, "sales_manager").rows}
    assert sm["mobile"] == "13812345678"  # 销售主管 sees the contact phone in clear
    assert sm["job_title"] == "请致电 139****1111"  # a phone typed into free text is still scrubbed
    assert display.payload_view(policy, "contact", contact, "employee").rows == []
    unknown = display.payload_view(policy, "no_such_entity", contact, "management")
    assert unknown.rows == []
    assert not unknown.known_entity


def test_messages_hide_the_quoted_value_from_roles_that_may_not_see_the_field(policy) -> None:  # type: ignore[no-untyped-def]
    message = "商机「90000000004」的「合同金额」（contract_amount）格式不对：「-172100.00」金额不能为负数。"
    assert not display.field_visible_in_clear(policy, "deal", "contract_amount", "employee")
    assert display.field_visible_in_clear(policy, "deal", "contract_amount", "finance")
    assert not display.field_visible_in_clear(policy, "contact", "mobile", "project_manager")  # masked only
    hidden = display.redact_message(message, False, keep=("90000000004", "合同金额"))
    assert hidden == "商机「90000000004」的「合同金额」（contract_amount）格式不对：「***」金额不能为负数。"
    assert display.redact_message(message, True) == message


def test_amounts_counts_and_headlines_read_as_staff_write_them() -> None:
    assert display.yuan(11440100.0) == "¥11,440,100.00"
    assert display.yuan("-172100.5") == "-¥172,100.50"
    assert display.yuan(None) == "-"
    assert display.number(1303) == "1,303"
    figures = {"won_amount_day": 11440100.0, "new_deals_day": 4, "as_of": "2026-11-26T00:00:00+00:00"}
    assert display.headline(figures, amounts_visible=True) == [
        ("当日成交金额", "¥11,440,100.00"),
        ("当日新增商机", "4"),
        ("数据截至", "2026-11-26 08:00"),
    ]
    assert display.headline(figures, amounts_visible=False)[0] == ("当日成交金额", "无权查看")
    rows = display.count_rows(
        {
            "read": 1303,
            "read_deal": 2,
            "quarantined_invalid_format": 1,
            "api_calls_by_endpoint": {"crm": {"/a": 3, "/b": 1}, "oa": {}},
            "tags": ["x"],
        }
    )
    assert rows == [
        ("读取", "read", "1,303"),
        ("读取商机", "read_deal", "2"),
        ("隔离：格式不正确", "quarantined_invalid_format", "1"),
        ("接口调用（CRM）", "api_calls_by_endpoint.crm", "4"),
        ("接口调用（OA）", "api_calls_by_endpoint.oa", "0"),
        ("tags", "tags", "1"),
    ]
    assert display.stream_label("crm.deal") == "CRM 商机"
    assert display.stream_label("oa.expense_claim.created") == "OA 费用报销（按创建时间）"


def test_validation_errors_in_chinese() -> None:
    err = {
        "type": "int_parsing",
        "loc": ("path", "entry_id"),
        "msg": "Input should be a valid integer",
        "input": "abc",
    }
    assert display.validation_problem(err) == "隔离记录编号应为整数（收到「abc」）"
    assert (
        display.validation_problem({"type": "missing", "loc": ("query", "run_id"), "input": None})
        == "运行编号不能缺少"
    )
    assert (
        display.validation_problem({"type": "weird", "loc": ("query", "x"), "input": 1})
        == "参数 x 取值不符合要求（收到「1」）"
    )


def test_labels_fall_back_to_the_code() -> None:
    assert display.reason_label("owner_not_in_oa") == "负责人不在 OA 中（owner_not_in_oa）"
    assert display.reason_label("brand_new_reason") == "brand_new_reason"
    assert display.entity_label("deal") == "商机（deal）"
    assert display.resolution_label(None) == "待处理"
    assert set(display.REASON_ADVICE) >= {"missing_required", "owner_not_in_oa", "expectation_failed"}


def test_counts_text() -> None:
    assert display.counts_text({"created": 3, "by_entity": {"deal": 2}}) == "新建 3，by_entity 2"
    assert display.counts_text({}) == "-"
    long = display.counts_text({f"k{i}": i for i in range(15)}, limit=12)
    assert long.endswith("其余项目 另 3 项")


def test_csrf_tokens_are_per_user_and_expire() -> None:
    guard = CsrfGuard(b"secret", window_seconds=100)
    token = guard.token("alice", now=1_000)
    assert guard.valid("alice", token, now=1_050)
    assert guard.valid("alice", token, now=1_150)  # previous window still accepted
    assert not guard.valid("alice", token, now=1_250)
    assert not guard.valid("bob", token, now=1_050)
    assert not guard.valid("alice", None, now=1_050)
    assert not CsrfGuard(b"other").valid("alice", token, now=1_050)


def test_every_count_the_writers_name_has_a_chinese_label() -> None:
    """Counts from the CRM → OA decisions and the data-health run read as labels, never as code names."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "plugins" / "bridge"
    reasons = set(
        re.findall(
            r'Decision\(\s*"[a-z_]+",\s*"([a-z_]+)"', (root / "sync" / "crm_to_oa" / "decide.py").read_text()
        )
    )
    assert len(reasons) >= 10
    codes = {f"decision_{r}" for r in reasons} | {
        "baseline_only",
        "problems_not_for_oa",
        "nothing",
        "planned",
        "unresolved_owners",
        "departments_without_email",
        "overall_score",
        "seconds",
        "rows",
    }
    unlabeled = sorted(c for c in codes if display.count_label(c) == c)
    assert unlabeled == []

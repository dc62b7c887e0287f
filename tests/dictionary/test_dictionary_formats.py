"""Format rules and cleaners: realistic dirty values, and properties over generated ones."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.dictionary import formats as fm
from sandbox.common.world import make_uscc
from sandbox.common.world import uscc_check_char as world_check_char

FULL = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}


def full_width(text: str) -> str:
    return "".join(FULL.get(c, c) for c in text)


def rejected(cleaner: Callable[[object], fm.Cleaned], raw: object, code: str) -> fm.FormatIssue:
    """The issue ``cleaner`` reports for ``raw``: no value, and the problem ``code``."""
    value, issue = cleaner(raw)
    assert value is None
    assert issue is not None
    assert issue.code == code
    return issue


# ---------------------------------------------------------------- text
def test_half_width_and_trim() -> None:
    assert fm.to_half_width("ＡＢＣ１２３＠（）　") == "ABC123@() "
    assert fm.clean_text("  星辰科技　") == ("星辰科技", None)
    assert fm.clean_text("   ") == (None, None)
    assert fm.clean_text(None) == (None, None)
    assert fm.clean_text(42) == ("42", None)


@pytest.mark.parametrize("bad", [{"a": 1}, [1], True, float("nan"), "x" * 70_000, "a\x00b"])
def test_text_hostile(bad: object) -> None:
    rejected(fm.clean_text, bad, fm.HOSTILE)


# ---------------------------------------------------------------- mobile
@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+86 138-1234-5678", "+86 13812345678", "008613812345678", "8613812345678",
     "１３８１２３４５６７８", "138 1234 5678", " 138-1234-5678 ", "(+86)138.1234.5678", "＋８６ １３８１２３４５６７８"],
)
def test_mobile_dirty_but_valid(raw: str) -> None:
    assert fm.clean_mobile(raw) == ("13812345678", None)


@pytest.mark.parametrize("raw", ["12345", "1381234567", "138123456789", "12812345678", "010-12345678", "abc"])
def test_mobile_invalid(raw: str) -> None:
    issue = rejected(fm.clean_mobile, raw, fm.INVALID)
    assert "手机号" in issue.message
    assert raw.strip() in issue.message


@given(
    digits=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    prefix=st.sampled_from(["", "+86", "+86 ", "0086", "86"]),
    sep=st.sampled_from(["", " ", "-"]),
    wide=st.booleans(),
)
def test_mobile_property(digits: str, prefix: str, sep: str, wide: bool) -> None:
    raw = prefix + sep.join([digits[:3], digits[3:7], digits[7:]])
    if wide:
        raw = full_width(raw)
    assert fm.clean_mobile(raw) == (digits, None)


# ---------------------------------------------------------------- phone
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("010-12345678", "010-12345678"), ("055-87654321", "055-87654321"), ("0571-8765432", "0571-8765432"),
     ("(010)12345678", "010-12345678"), ("01012345678", "010-12345678"), ("057187654321", "0571-87654321"),
     ("010-12345678 转 123", "010-12345678-123"), ("400-810-8888", "400-810-8888"),
     ("+86 138 1234 5678", "13812345678"), ("０１０－１２３４５６７８", "010-12345678")],
)
def test_phone_valid(raw: str, expected: str) -> None:
    assert fm.clean_phone(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["12345", "010-123", "phone", "1234567890123456"])
def test_phone_invalid(raw: str) -> None:
    rejected(fm.clean_phone, raw, fm.INVALID)


# ---------------------------------------------------------------- e-mail
@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" ZHANG.SAN@Example.COM ", "zhang.san@example.com"), ("ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ", "zhang@example.cn"),
     ("mailto:li@qq.com", "li@qq.com"), ("wang+crm@corp.example.com", "wang+crm@corp.example.com")],
)
def test_email_valid(raw: str, expected: str) -> None:
    assert fm.clean_email(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["zhang", "zhang@", "@example.com", "a@b", "a..b@example.com", "a@-x.com", "a b@x.com"])
def test_email_invalid(raw: str) -> None:
    rejected(fm.clean_email, raw, fm.INVALID)


@given(local=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?", fullmatch=True),
       domain=st.from_regex(r"[a-z0-9]{1,10}\.(com|cn|net)", fullmatch=True))
def test_email_property_case_and_space_insensitive(local: str, domain: str) -> None:
    email = f"{local}@{domain}"
    assert fm.clean_email(f"  {email.upper()} ") == (email, None)


# ---------------------------------------------------------------- USCC
def test_uscc_check_char_agrees_with_the_world_generator() -> None:
    rng = random.Random(7)
    for _ in range(300):
        code = make_uscc(rng, "110105")
        assert fm.uscc_check_char(code[:17]) == world_check_char(code[:17]) == code[17]
        assert fm.clean_uscc(code) == (code, None)


def test_uscc_known_real_code() -> None:
    # A published code (GB 32100 worked example shape): the check character must be recomputed exactly.
    body = "91350100M000100Y4"
    code = body + fm.uscc_check_char(body)
    assert fm.clean_uscc(code.lower()) == (code, None)
    assert fm.clean_uscc(" " + full_width(code) + " ") == (code, None)


def test_uscc_wrong_check_digit_length_and_alphabet() -> None:
    code = make_uscc(random.Random(1), "310115")
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    issue = rejected(fm.clean_uscc, wrong, fm.INVALID)
    assert f"第 18 位应为 {code[-1]}" in issue.message
    assert "18 位" in (fm.clean_uscc(code[:-1])[1] or fm.FormatIssue("", "")).message
    with_o = code[:10] + "O" + code[11:]
    assert "I、O、S、V、Z" in (fm.clean_uscc(with_o)[1] or fm.FormatIssue("", "")).message


def test_uscc_organisation_code_check_is_optional() -> None:
    # GB 11714 example: organisation code D2143569-? ; build a USCC around a body whose org check we know.
    body8 = "D2143569"
    org = fm.org_code_check_char(body8)
    first17 = "91110105" + body8 + org
    good = first17 + fm.uscc_check_char(first17)
    assert fm.clean_uscc(good, check_org_code=True) == (good, None)
    other = "1" if org != "1" else "2"
    bad17 = "91110105" + body8 + other
    bad = bad17 + fm.uscc_check_char(bad17)
    assert fm.clean_uscc(bad) == (bad, None)  # off by default
    assert fm.clean_uscc(bad, check_org_code=True)[1] is not None


@given(st.text(alphabet=fm.USCC_CHARS, min_size=8, max_size=8), st.sampled_from(["110105", "440305", "330106"]),
       st.sampled_from("159Y"))
def test_uscc_property_valid_and_single_error_detected(body: str, division: str, authority: str) -> None:
    first17 = authority + "1" + division + body + "0"
    code = first17 + fm.uscc_check_char(first17)
    assert fm.clean_uscc(code) == (code, None)
    # Any single changed character among the first 17 is caught by the check character.
    for position in (0, 9, 16):
        replacement = next(c for c in fm.USCC_CHARS if c != code[position] and (position != 0 or c in "159Y"))
        mutated = code[:position] + replacement + code[position + 1 :]
        assert fm.clean_uscc(mutated)[0] is None


# ---------------------------------------------------------------- amounts
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1234.5", "1234.50"), ("¥1,234.50", "1234.50"), ("￥１２３４", "1234.00"), ("1234元", "1234.00"),
     (1234, "1234.00"), (1234.567, "1234.57"), (Decimal("0.005"), "0.01"), ("0", "0.00"), ("-0", "0.00"),
     ("1E+5", "100000.00"), ("1000000000000", "1000000000000.00"), (" 77100.00 ", "77100.00")],
)
def test_amount_valid(raw: object, expected: str) -> None:
    assert fm.clean_amount(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [("-5.00", fm.INVALID), ("1000000000000.01", fm.INVALID), ("1e400", fm.INVALID), ("abc", fm.INVALID),
     ("12.3.4", fm.INVALID), ("NaN", fm.HOSTILE), ("Infinity", fm.HOSTILE), ("-inf", fm.HOSTILE),
     (float("nan"), fm.HOSTILE), (float("inf"), fm.HOSTILE), (True, fm.HOSTILE), ({"v": 1}, fm.HOSTILE),
     ("9" * 100, fm.HOSTILE)],
)
def test_amount_rejected(raw: object, code: str) -> None:
    rejected(fm.clean_amount, raw, code)


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False))
def test_amount_property_round_trip(number: Decimal) -> None:
    text, issue = fm.clean_amount(str(number))
    assert issue is None
    assert text is not None
    assert Decimal(text) == number
    assert len(text.split(".")[1]) == 2
    assert fm.clean_amount(f"¥{number:,}") == (text, None)
    assert fm.clean_amount(text) == (text, None)  # idempotent


# ---------------------------------------------------------------- dates and times
SH = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    "raw",
    ["2026-11-26", "2026/11/26", "2026.11.26", "2026年11月26日", "20261126", "2026-11-26T00:00:00+08:00",
     "2026-11-25T16:00:00.000Z", "2026-11-26T23:59:59+08:00", "1795622400000", 1795622400000,
     "２０２６－１１－２６", "2026-11-26 10:00:00"],
)
def test_date_variants(raw: object) -> None:
    assert fm.clean_date(raw) == ("2026-11-26", None)


def test_date_uses_shanghai_for_instants() -> None:
    # 17:00 UTC is already the next day in Shanghai.
    assert fm.clean_date("2026-11-26T17:00:00Z") == ("2026-11-27", None)
    # HubSpot date properties are midnight UTC: the same calendar date.
    assert fm.clean_date("2026-11-26T00:00:00.000Z") == ("2026-11-26", None)


@pytest.mark.parametrize("raw", ["2026-13-01", "2026-02-30", "tomorrow", "12345", "1800-01-01", "99999999"])
def test_date_invalid(raw: str) -> None:
    rejected(fm.clean_date, raw, fm.INVALID)


@pytest.mark.parametrize(
    "raw",
    ["2026-11-26T10:25:01.123Z", "2026-11-26T18:25:01.123+08:00", "1795688701123", 1795688701123,
     "2026-11-26 18:25:01.123"],
)
def test_datetime_variants(raw: object) -> None:
    assert fm.clean_datetime(raw) == ("2026-11-26T10:25:01.123+00:00", None)


def test_datetime_zero_and_empty_are_none() -> None:
    assert fm.clean_datetime("0") == (None, None)  # Feishu end_time of a pending instance
    assert fm.clean_datetime("") == (None, None)
    assert fm.clean_datetime("2026-11-26") == ("2026-11-25T16:00:00.000+00:00", None)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_datetime_property_all_wire_forms_agree(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    canonical = fm.clean_datetime(str(ms))[0]
    assert canonical is not None
    assert fm.clean_datetime(moment.isoformat().replace("+00:00", "Z")) == (canonical, None)
    assert fm.clean_datetime(moment.astimezone(SH).isoformat()) == (canonical, None)
    assert fm.datetime_to_ms(canonical) == ms
    assert fm.ms_to_datetime(ms) == canonical
    assert fm.clean_datetime(fm.datetime_to_crm(canonical)) == (canonical, None)
    day = fm.clean_date(str(ms))[0]
    assert day == moment.astimezone(SH).date().isoformat()
    assert fm.clean_date(fm.date_to_rfc3339(day)) == (day, None)
    assert fm.clean_date(fm.date_to_crm(day)) == (day, None)
    assert fm.clean_date(fm.date_to_crm_instant(day)) == (day, None)


# ---------------------------------------------------------------- company names
@pytest.mark.parametrize(
    "variant",
    ["北京星辰科技有限公司", "北京星辰科技有限责任公司", " 北京星辰科技有限公司　", "星辰科技（北京）有限公司",
     "星辰科技(北京)有限责任公司", "北京星辰科技 有限公司", "星辰科技有限（北京）责任公司", "北京星辰科技【北京】有限公司"],
)
def test_company_name_variants_share_a_key(variant: str) -> None:
    assert fm.normalize_company_name(variant) == fm.normalize_company_name("北京星辰科技有限公司")


def test_company_name_different_companies_differ() -> None:
    key = fm.normalize_company_name
    assert key("北京星辰科技有限公司") != key("上海星辰科技有限公司")
    assert key("北京星辰科技有限公司") != key("北京星辰软件有限公司")
    assert key("北京星辰科技股份有限公司") != key("北京星辰科技有限公司")
    assert key("ａｂｃ科技有限公司") == key("ABC科技有限公司")


def test_company_name_world_duplicates_match(world: object) -> None:
    from sandbox.common.world import World

    assert isinstance(world, World)
    pairs = 0
    for obj in world.iter_companies():
        original = obj.properties.get("_duplicate_of")
        if original:
            index = int(original) - 30_000_000_001
            assert fm.normalize_company_name(obj.properties["name"]) == \
                fm.normalize_company_name(world.company(index).properties["name"])
            pairs += 1
    assert pairs >= 5


# ---------------------------------------------------------------- never raise
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.decimals(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(JSONISH, st.sampled_from(sorted({**fm.FORMAT_CLEANERS, **{"t_" + k: v for k, v in fm.TYPE_CLEANERS.items()}})))
def test_cleaners_never_raise(value: object, name: str) -> None:
    cleaner = {**fm.FORMAT_CLEANERS, **{"t_" + k: v for k, v in fm.TYPE_CLEANERS.items()}}[name]
    cleaned, issue = cleaner(value)
    assert cleaned is None or issue is None
    if issue is not None:
        assert issue.code in (fm.INVALID, fm.HOSTILE)
        assert issue.message

"""Format rules and cleaners of the data dictionary (pure functions).

Every cleaner takes a raw value as a vendor sends it and returns
``(cleaned, issue)``: ``cleaned`` is the canonical value (``None`` when empty
or unusable) and ``issue`` is ``None`` or a :class:`FormatIssue` with the
quarantine reason code (``invalid_format`` for a value a person typed wrong,
``hostile_input`` for a value no person types: wrong JSON type, NUL bytes,
NaN, 64 KiB strings) and a Chinese message that says what a valid value
looks like. Cleanable dirt is cleaned silently: ``+86 138-1234-5678`` and
full-width digits are a fine mobile number, ``12345`` is not.

Canonical forms (docs/architecture.md "Canonical records"): amounts are the
``str`` of a 2-decimal ``Decimal``; dates ``YYYY-MM-DD`` in Asia/Shanghai;
datetimes ISO 8601 in UTC with milliseconds and ``+00:00``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991
MAX_TEXT_CHARS = 65_536  # strings longer than 64 KiB are hostile input, not data
MAX_AMOUNT = Decimal(10) ** 12
_CENT = Decimal("0.01")

INVALID = "invalid_format"
HOSTILE = "hostile_input"


@dataclass(frozen=True, slots=True)
class FormatIssue:
    """Why a value was rejected: a quarantine reason code and a Chinese message."""

    code: str
    message: str


Cleaned = tuple[Any, FormatIssue | None]


def _show(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _invalid(value: object, what: str) -> FormatIssue:
    return FormatIssue(INVALID, f"「{_show(value)}」{what}")


# ---------------------------------------------------------------- text
_HALF_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_HALF_WIDTH[0x3000] = 0x20  # ideographic space
_HALF_WIDTH[0xFFE5] = ord("¥")  # full-width yen sign


def to_half_width(text: str) -> str:
    """Full-width ASCII (ＡＢＣ１２３＠（）and the ideographic space) → half-width."""
    return text.translate(_HALF_WIDTH)


def clean_text(value: object) -> Cleaned:
    """Trimmed text; ``None`` for empty. Numbers become their text; other JSON types are hostile."""
    if type(value) is str and len(value) <= MAX_TEXT_CHARS // 4 and "\x00" not in value:  # the common case
        return (value.strip() or None), None
    if value is None:
        return None, None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None, FormatIssue(HOSTILE, f"数值 {value!r} 不是有效的文本；请在源系统中修正该值。")
        text = repr(value)
    else:
        return None, FormatIssue(
            HOSTILE, f"值的类型为 {type(value).__name__}，应为文本；请在源系统中修正该值。"
        )
    if len(text) > MAX_TEXT_CHARS // 4 and len(text.encode("utf-8")) > MAX_TEXT_CHARS:
        return None, FormatIssue(HOSTILE, f"文本长度 {len(text)} 字符，超过 64 KiB 上限；请缩短后再保存。")
    if "\x00" in text:
        return None, FormatIssue(HOSTILE, "文本含有 NUL 控制字符；请在源系统中删除后再保存。")
    text = text.strip()
    return (text or None), None


# ---------------------------------------------------------------- phones
_PHONE_NOISE = re.compile(r"[\s\-()（）.·/]")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_COUNTRY_PREFIX = re.compile(r"^(?:\+86|0086|\+0086)")
_EXTENSION = re.compile(r"^(.*?)\s*(?:转|分机|ext\.?|x|#)\s*(\d{1,6})$", re.IGNORECASE)
_LANDLINE_SPLIT = re.compile(r"\(?(0\d{2,3})\)?(?:[\s\-]+|(?<=\)))(\d{7,8})(?:[\s\-]+(\d{1,6}))?")
_LANDLINE_DIGITS = re.compile(r"0\d{9,11}")
_SERVICE_NUMBER = re.compile(r"([48]00)(\d{3})(\d{4})")


def _mobile_digits(text: str) -> str:
    digits = _PHONE_NOISE.sub("", to_half_width(text))
    digits = _COUNTRY_PREFIX.sub("", digits)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def clean_mobile(value: object) -> Cleaned:
    """Chinese mainland mobile number → 11 digits ``1[3-9]xxxxxxxxx`` (+86, spaces, dashes, full-width removed)."""
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    digits = _mobile_digits(text)
    if _MOBILE.fullmatch(digits):
        return digits, None
    return None, _invalid(text, "不是有效的中国大陆手机号：应为 11 位数字、以 13–19 开头，如 13812345678。")


def clean_phone(value: object) -> Cleaned:
    """A mobile number, or a landline ``0AA(A)-NNNNNNN(N)[-ext]``, or a 400/800 service number."""
    mobile, issue = clean_mobile(value)
    if mobile is not None or issue is None:
        return mobile, issue
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    half = to_half_width(text).strip()
    main, ext = half, None
    m = _EXTENSION.match(half)
    if m:
        main, ext = m.group(1), m.group(2)
    if _COUNTRY_PREFIX.match(main):
        main = _COUNTRY_PREFIX.sub("", main).strip()
        if not main.startswith("0") and not main.startswith("("):
            main = "0" + main
    split = _LANDLINE_SPLIT.fullmatch(main)
    if split:
        area, number = split.group(1), split.group(2)
        ext = ext or split.group(3)
    else:
        only = _PHONE_NOISE.sub("", main)
        service = _SERVICE_NUMBER.fullmatch(only)
        if service and not ext:
            return "-".join(service.groups()), None
        if not _LANDLINE_DIGITS.fullmatch(only):
            return None, _invalid(
                text,
                "不是有效的电话号码：应为手机号（如 13812345678）或带区号的座机（如 010-12345678、0571-87654321）。",
            )
        cut = 3 if only[1] in "12" else 4
        area, number = only[:cut], only[cut:]
        if not 7 <= len(number) <= 8:
            return None, _invalid(text, "座机号码位数不对：区号后应为 7–8 位号码，如 010-12345678。")
    phone = f"{area}-{number}"
    return (phone + f"-{ext}" if ext else phone), None


# ---------------------------------------------------------------- e-mail
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def clean_email(value: object) -> Cleaned:
    """E-mail address: trimmed, half-width, lower-case, syntax checked."""
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    email = to_half_width(text).strip().lower()
    if email.startswith("mailto:"):
        email = email[7:]
    if len(email) <= 254 and _EMAIL.fullmatch(email):
        return email, None
    return None, _invalid(text, "不是有效的邮箱地址：应形如 zhang.san@example.com。")


# ---------------------------------------------------------------- USCC
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015: no I, O, S, V, Z
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARS)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_AUTHORITIES = frozenset("123456789ANY")
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUE = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}  # GB 11714


def uscc_check_char(first17: str) -> str:
    """The 18th (check) character of a 统一社会信用代码 (GB 32100-2015)."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def org_code_check_char(body8: str) -> str:
    """Check character of the 9-character organisation code inside a USCC (GB 11714)."""
    c9 = 11 - sum(_ORG_VALUE[c] * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return "X" if c9 == 10 else ("0" if c9 == 11 else str(c9))


def clean_uscc(value: object, *, check_org_code: bool = False) -> Cleaned:
    """统一社会信用代码: 18 characters of the GB 32100 alphabet with a valid check character.

    ``check_org_code`` also verifies the embedded organisation-code check
    character (positions 9–17, GB 11714); off by default because some
    issuers' legacy codes do not satisfy it.
    """
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    code = re.sub(r"[\s\-]", "", to_half_width(text)).upper()
    if len(code) != 18:
        return None, _invalid(text, f"不是有效的统一社会信用代码：应为 18 位，实际 {len(code)} 位。")
    bad = sorted({c for c in code if c not in _USCC_VALUE})
    if bad:
        return None, _invalid(
            text, f"含有统一社会信用代码不允许的字符 {''.join(bad)}（不使用 I、O、S、V、Z）；请核对营业执照。"
        )
    if code[0] not in _USCC_AUTHORITIES or not code[2:8].isdigit():
        return None, _invalid(
            text, "不是有效的统一社会信用代码：第 1 位登记管理部门代码或第 3–8 位行政区划码不正确。"
        )
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return None, _invalid(
            text, f"校验位错误：第 18 位应为 {expected}，实际为 {code[17]}；请按营业执照核对全部 18 位。"
        )
    if check_org_code and code[16] != org_code_check_char(code[8:16]):
        return None, _invalid(text, "组织机构代码（第 9–17 位）校验位错误；请按营业执照核对。")
    return code, None


# ---------------------------------------------------------------- amounts
_AMOUNT_NOISE = re.compile(r"[\s,_]|^(?:¥|RMB|CNY)|元$", re.IGNORECASE)


def parse_amount(value: object) -> tuple[Decimal | None, FormatIssue | None]:
    """A CNY amount as a 2-decimal ``Decimal`` in [0, 10^12]; NaN, infinities and junk are refused."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, FormatIssue(HOSTILE, "金额的类型为布尔值，应为数字；请在源系统中修正。")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None, FormatIssue(HOSTILE, f"金额 {value!r} 不是有限数值；请在源系统中修正。")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > 64:
            return None, FormatIssue(
                HOSTILE, f"金额文本长度 {len(value)}，不是合理的金额；请在源系统中修正。"
            )
        text = _AMOUNT_NOISE.sub("", to_half_width(value).strip())
        if not text:
            return None, None
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None, _invalid(value, "不是有效的金额：应为数字，如 1234.50。")
    else:
        return None, FormatIssue(
            HOSTILE, f"金额的类型为 {type(value).__name__}，应为数字；请在源系统中修正。"
        )
    if not number.is_finite():
        return None, FormatIssue(
            HOSTILE, f"金额 {_show(value)} 不是有限数值（NaN/Infinity）；请在源系统中修正。"
        )
    if number < 0:
        return None, _invalid(value, "金额不能为负数；请在源系统中改为实际金额。")
    if number > MAX_AMOUNT:
        return None, _invalid(value, "金额超出上限（1 万亿元）；请核对是否多输了位数。")
    return number.quantize(_CENT, rounding=ROUND_HALF_UP) + 0, None


def clean_amount(value: object) -> Cleaned:
    """CNY amount → canonical string ``"1234.50"``."""
    number, issue = parse_amount(value)
    return (None if number is None else str(number)), issue


# ---------------------------------------------------------------- dates and times
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DATE_CN = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_MIN_YEAR, _MAX_YEAR = 1900, 2200


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _parse_instant(value: object) -> tuple[datetime | date | None, FormatIssue | None]:
    """A point in time (aware datetime), a calendar date, or why not. Naive times are Asia/Shanghai."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, FormatIssue(HOSTILE, "日期时间的类型为布尔值；请在源系统中修正。")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)), None
    if isinstance(value, date):
        return value, None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None, FormatIssue(HOSTILE, f"日期时间的类型为 {type(value).__name__}，应为文本或毫秒时间戳。")
    if len(value) > 64:
        return None, FormatIssue(
            HOSTILE, f"日期时间文本长度 {len(value)}，不是合理的日期；请在源系统中修正。"
        )
    text = to_half_width(value).strip()
    if not text or text == "0":  # Feishu sends "0" for "not yet" (end_time of a pending instance)
        return None, None
    try:
        if text.isdigit() and len(text) != 8:  # 8 digits are a compact date (20261126)
            if not 12 <= len(text) <= 13:
                return None, _invalid(
                    value, "不是有效的毫秒时间戳或日期：应形如 2026-11-26 或 1764124800000。"
                )
            return _from_ms(int(text)), None
        for pattern in (_DATE, _DATE_CN, _DATE_COMPACT):
            m = pattern.fullmatch(text)
            if m:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3))), None
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith(("Z", "z")) else text)
    except (ValueError, OverflowError):
        return None, _invalid(
            value, "不是有效的日期时间：应形如 2026-11-26、2026-11-26T10:25:00+08:00 或毫秒时间戳。"
        )
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)), None


def _year_ok(day: date) -> bool:
    return _MIN_YEAR <= day.year <= _MAX_YEAR


def _hubspot_instant(value: object) -> datetime | None:
    """Fast path for HubSpot's own ``2026-11-26T10:25:01.123Z`` (most values of a sync); None otherwise."""
    if type(value) is str and len(value) == 24 and value[10] == "T" and value[19] == "." and value[23] == "Z":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def clean_date(value: object) -> Cleaned:
    """A business date → ``YYYY-MM-DD`` (instants are read in Asia/Shanghai)."""
    fast = _hubspot_instant(value)
    if fast is not None and _MIN_YEAR < fast.year < _MAX_YEAR:
        return fast.astimezone(SHANGHAI).date().isoformat(), None
    parsed, issue = _parse_instant(value)
    if issue or parsed is None:
        return None, issue
    day = parsed.astimezone(SHANGHAI).date() if isinstance(parsed, datetime) else parsed
    if not _year_ok(day):
        return None, _invalid(value, f"日期年份 {day.year} 不合理（应在 {_MIN_YEAR}–{_MAX_YEAR} 之间）。")
    return day.isoformat(), None


def clean_datetime(value: object) -> Cleaned:
    """A point in time → ``YYYY-MM-DDTHH:MM:SS.mmm+00:00`` (a bare date is midnight Asia/Shanghai)."""
    fast = _hubspot_instant(value)
    if fast is not None and _MIN_YEAR < fast.year < _MAX_YEAR:
        return f"{value[:23]}+00:00", None  # type: ignore[index]
    parsed, issue = _parse_instant(value)
    if issue or parsed is None:
        return None, issue
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day, tzinfo=SHANGHAI)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        return None, _invalid(value, "日期时间超出范围。")
    if not _year_ok(utc):
        return None, _invalid(value, f"日期时间年份 {utc.year} 不合理（应在 {_MIN_YEAR}–{_MAX_YEAR} 之间）。")
    return utc.isoformat(timespec="milliseconds"), None


def clean_integer(value: object) -> Cleaned:
    """Whole number (HubSpot sends numbers as strings)."""
    if isinstance(value, bool):
        return None, FormatIssue(HOSTILE, "整数的类型为布尔值；请在源系统中修正。")
    if isinstance(value, int):
        return value, None
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    half = to_half_width(text).replace(",", "")
    if re.fullmatch(r"[+-]?\d{1,18}", half):
        return int(half), None
    return None, _invalid(text, "不是有效的整数。")


_TRUE = frozenset({"true", "1", "yes", "y", "是", "对"})
_FALSE = frozenset({"false", "0", "no", "n", "否", "不"})


def clean_boolean(value: object) -> Cleaned:
    """Yes/no (HubSpot booleans are the strings ``"true"``/``"false"``)."""
    if isinstance(value, bool):
        return value, None
    text, issue = clean_text(value)
    if issue or text is None:
        return None, issue
    low = to_half_width(text).lower()
    if low in _TRUE:
        return True, None
    if low in _FALSE:
        return False, None
    return None, _invalid(text, "不是有效的是/否值（应为 true 或 false）。")


# ---------------------------------------------------------------- canonical → wire
def datetime_to_ms(canonical: str) -> int:
    """Epoch milliseconds of a canonical datetime (watermarks and source modification times)."""
    return (datetime.fromisoformat(canonical) - _EPOCH) // timedelta(milliseconds=1)


def ms_to_datetime(ms: int) -> str:
    """Canonical datetime of epoch milliseconds."""
    return _from_ms(ms).isoformat(timespec="milliseconds")


def date_to_rfc3339(canonical: str) -> str:
    """Feishu date widget value of a canonical date: midnight Asia/Shanghai."""
    return f"{canonical}T00:00:00+08:00"


def date_to_crm(canonical: str) -> str:
    """HubSpot date property value: the ISO date (HubSpot stores dates as midnight UTC)."""
    return canonical


def datetime_to_crm(canonical: str) -> str:
    """HubSpot datetime property value: ISO 8601 UTC with milliseconds and ``Z``."""
    utc = datetime.fromisoformat(canonical).astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def date_to_crm_instant(canonical: str) -> str:
    """A business date as a HubSpot datetime (midnight Asia/Shanghai), e.g. an activity's time."""
    day = date.fromisoformat(canonical)
    return datetime_to_crm(datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).isoformat())


# ---------------------------------------------------------------- company names
_BRACKETED = re.compile(r"[(\[【]([^()\[\]【】]*)[)\]】]")
_ANY_SPACE = re.compile(r"\s+")


def normalize_company_name(name: str) -> str:
    """De-duplication key of a company name; not for display.

    ``星辰科技（北京）有限责任公司``, ``北京星辰科技有限公司`` and
    `` 北京星辰科技有限公司　`` give the same key: half-width, no spaces,
    bracketed parts (usually the city) moved to the front, 有限责任公司 → 有限公司,
    Latin letters upper-case.
    """
    text = _ANY_SPACE.sub("", to_half_width(name))
    parts = _BRACKETED.findall(text)
    text = _BRACKETED.sub("", text)
    for part in reversed(parts):
        if part and not text.startswith(part):
            text = part + text
    return text.replace("有限责任公司", "有限公司").upper()


# ---------------------------------------------------------------- registry
FORMAT_CLEANERS: dict[str, Callable[[object], Cleaned]] = {
    "mobile_cn": clean_mobile,
    "phone_cn": clean_phone,
    "email": clean_email,
    "uscc": clean_uscc,
    "cny_amount": clean_amount,
    "date": clean_date,
    "datetime_tz": clean_datetime,
}

TYPE_CLEANERS: dict[str, Callable[[object], Cleaned]] = {
    "string": clean_text,
    "text": clean_text,
    "enum": clean_text,
    "integer": clean_integer,
    "amount": clean_amount,
    "date": clean_date,
    "datetime": clean_datetime,
    "boolean": clean_boolean,
}

# Which formats a field type may carry.
FORMATS_FOR_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"mobile_cn", "phone_cn", "email", "uscc"}),
    "text": frozenset(),
    "enum": frozenset(),
    "integer": frozenset(),
    "amount": frozenset({"cny_amount"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime_tz"}),
    "boolean": frozenset(),
}

"""Pure presentation helpers of the bridge pages: times, durations, labels, masks, trends, paging.

No I/O: every function takes data and returns data, so the pages' wording and
the masking rules are tested without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge.hub.store import DIRECTION_LABELS, REASON_LABELS, RESOLUTION_LABELS
from bridge.permissions import mask_email, mask_mobile

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")

ENTITY_LABELS = {
    "company": "客户",
    "contact": "联系人",
    "deal": "商机",
    "owner": "负责人",
    "project_initiation": "立项申请",
    "expense_claim": "费用报销",
    "travel_request": "差旅申请",
    "visit_plan": "客户拜访计划",
    "contract_amount_notice": "合同金额变更通知",
}
SCOPE_LABELS = {"overall": "总体", "entity": "对象", "department": "部门", "data_owner": "数据责任人"}
RUN_KIND_LABELS = {
    "crm_to_oa": "CRM → OA 同步",
    "oa_to_crm": "OA → CRM 同步",
    "migration": "历史迁移",
    "data_health": "数据健康检查",
    "report": "经营日报",
}
RUN_STATUS_LABELS = {
    "running": "运行中",
    "success": "成功",
    "failed": "失败",
    "queued": "排队中",
    "dry_run": "试运行",
}
# What a person does about each reason, shown next to the entry's own message.
REASON_ADVICE = {
    "missing_required": "请数据责任人在来源系统补齐该必填项，保存后下次同步会自动重试。",
    "invalid_format": "请按提示在来源系统更正格式（如手机号 11 位、统一社会信用代码 18 位），保存后自动重试。",
    "unmapped_value": "该取值在数据字典中没有对应项：请改用允许的取值，或请管理员在 include/dictionary.yaml 中补充值映射。",
    "invalid_transition": "状态不能这样变更：请确认来源系统中的状态是否填错，更正后自动重试。",
    "owner_not_in_oa": "该负责人在 OA 中找不到账号：请在 OA 开通账号（手机号或邮箱需一致），或在 CRM 中更换负责人。",
    "missing_customer_link": "记录没有关联客户：请在 CRM 中为商机关联公司后自动重试。",
    "vendor_rejected": "对方系统拒绝了写入：请按说明中的对方提示处理，确认可以重试后由管理员释放。",
    "duplicate_id": "发现重复记录：请在来源系统合并或删除重复项，确认后由管理员释放。",
    "hostile_input": "记录中有可疑内容（如超长文本或脚本）：请在来源系统清理后由管理员释放。",
    "expectation_failed": "历史数据未通过校验：请按说明更正来源数据后重新运行历史迁移。",
}

# Headline figures of the 08:00 report (report_run.figures), in the order the list shows them.
FIGURE_LABELS = {
    "won_amount_day": "当日成交金额（元）",
    "won_amount_mtd": "本月成交金额（元）",
    "won_amount_ytd": "本年成交金额（元）",
    "new_deals_day": "当日新增商机",
    "new_deals_mtd": "本月新增商机",
    "open_pipeline_amount": "在途商机金额（元）",
    "contracts_not_approved": "已签约未审批",
    "quarantine_open": "隔离区待处理",
    "health_score": "数据健康得分",
    "as_of": "数据截至",
}

_MOBILE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d{9}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def local_time(at: datetime | None, with_seconds: bool = True) -> str:
    """A UTC datetime as Beijing time text; ``-`` when missing."""
    if at is None:
        return "-"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def from_epoch_ms(value_ms: int) -> datetime:
    return datetime.fromtimestamp(value_ms / 1000, tz=UTC)


def business_today(now: datetime | None = None) -> date:
    """Today in Asia/Shanghai: the date of today's 08:00 report."""
    return (now or datetime.now(UTC)).astimezone(BUSINESS_TZ).date()


def duration_text(seconds: float | None) -> str:
    """``3 天 2 小时`` / ``5 分 12 秒``: the two largest units, Chinese."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 0:
        return "0 秒"
    total = int(seconds)
    units = (("天", 86400), ("小时", 3600), ("分", 60), ("秒", 1))
    parts: list[str] = []
    for label, size in units:
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append(f"{amount} {label}")
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0 ")) or "0 秒"


def reason_label(code: str) -> str:
    label = REASON_LABELS.get(code)
    return f"{label}（{code}）" if label else code


def entity_label(entity: str) -> str:
    label = ENTITY_LABELS.get(entity)
    return f"{label}（{entity}）" if label else entity


def direction_label(direction: str) -> str:
    return DIRECTION_LABELS.get(direction, direction)


def resolution_label(resolution: str | None) -> str:
    if resolution is None:
        return "待处理"
    return RESOLUTION_LABELS.get(resolution, resolution)


def scrub_personal(text: str) -> str:
    """Mask anything shaped like a mobile number or an e-mail address inside free text.

    Defence in depth for the quarantine pages: the policy's ``mask_all`` masks
    the fields it knows; a phone number typed into a free-text field (a note,
    a vendor's error message) is caught here.
    """
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _MOBILE.sub(lambda m: mask_mobile(m.group(0)), text)


def show_value(value: Any) -> str:
    """A payload value as display text (already masked by the policy), personal patterns scrubbed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Mapping | list | tuple):
        import json

        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=isinstance(value, Mapping))
    else:
        text = str(value)
    return scrub_personal(text)


def masked_payload(
    mask_all: Callable[[str, Mapping[str, Any]], Mapping[str, Any]],
    entity: str,
    payload: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """``(field, text)`` rows of a quarantined record with the policy's masks and the scrub applied."""
    masked = mask_all(entity, payload)
    return [(str(key), show_value(value)) for key, value in masked.items()]


def headline(figures: Mapping[str, Any] | None, limit: int = 8) -> list[tuple[str, str]]:
    """``(label, value)`` of a report's headline figures: known ones first, in a fixed order."""
    figures = figures or {}
    rows = [(label, show_value(figures[key])) for key, label in FIGURE_LABELS.items()
            if key in figures and figures[key] is not None]
    rows += [(key, show_value(value)) for key, value in sorted(figures.items())
             if key not in FIGURE_LABELS and value is not None and not isinstance(value, Mapping | list)]
    return rows[:limit]


def counts_text(counts: Mapping[str, Any] | None, limit: int = 12) -> str:
    """``created=3, updated=5`` for a run's counts (nested values flattened one level)."""
    if not counts:
        return "-"
    parts: list[str] = []
    for key, value in counts.items():
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            parts.append(f"{key}: {{{inner}}}")
        else:
            parts.append(f"{key}={value}")
    text = "，".join(parts[:limit])
    return text + (f"，…（另 {len(parts) - limit} 项）" if len(parts) > limit else "")


# ---------------------------------------------------------------- trends


@dataclass(frozen=True)
class Trend:
    """A 0..100 score over days, drawn as an SVG polyline (no script, no external asset)."""

    points: str  # "x,y x,y ..." for <polyline points=...>
    latest: float | None
    previous: float | None
    days: int  # days with a value

    @property
    def delta(self) -> float | None:
        if self.latest is None or self.previous is None:
            return None
        return round(self.latest - self.previous, 1)


def trend(
    series: Mapping[date, float], end: date, days: int = 30, width: int = 120, height: int = 28
) -> Trend:
    """The last ``days`` days up to ``end`` of a score series as polyline points.

    Days without a value are skipped (the line joins the neighbours); a score
    is clamped into 0..100 so a bad row cannot draw outside the box. The box
    spans ``floor`` (80, or lower in steps of 10 to fit the lowest score) to
    100, so the day-to-day movement of good scores stays visible.
    """
    start = end - timedelta(days=days - 1)
    values = sorted((d, min(100.0, max(0.0, float(v)))) for d, v in series.items() if start <= d <= end)
    step = width / max(days - 1, 1)
    floor = min([80.0] + [math.floor(v / 10) * 10.0 for _, v in values])
    span = max(100.0 - floor, 1.0)
    coords = []
    for day, score in values:
        x = (day - start).days * step
        y = height - (score - floor) / span * height
        coords.append(f"{x:.1f},{y:.1f}")
    latest = values[-1][1] if values else None
    previous = values[-2][1] if len(values) >= 2 else None
    return Trend(points=" ".join(coords), latest=latest, previous=previous, days=len(values))


# ---------------------------------------------------------------- paging


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_row(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """The query string of ``params`` with ``changes`` applied; empty values dropped."""
    from urllib.parse import urlencode

    merged = {**params, **changes}
    return urlencode([(k, str(v)) for k, v in merged.items() if v not in (None, "")])


def distinct_sorted(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def first_lines(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_class(score: float | None) -> str:
    """CSS class of a health score: good ≥ 95, fair ≥ 80, else poor."""
    if score is None:
        return "muted"
    if score >= 95:
        return "good"
    if score >= 80:
        return "fair"
    return "poor"


def lag_class(seconds: float | None, warn: float = 300, alarm: float = 3600) -> str:
    """CSS class of a lag: the sync promise is 5 minutes."""
    if seconds is None:
        return "muted"
    if seconds <= warn:
        return "good"
    if seconds <= alarm:
        return "fair"
    return "poor"


def sorted_items(mapping: Mapping[str, Any] | None) -> Sequence[tuple[str, Any]]:
    return sorted((mapping or {}).items())
